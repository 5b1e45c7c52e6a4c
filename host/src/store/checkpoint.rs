//! Signed checkpoints of the audit chain: the head (sequence number and hash of the newest row)
//! signed with the daemon's own Ed25519 key, so rows cut from the tail or a chain rewritten from
//! scratch no longer verify. The SQLite chain's checkpoints go to a JSON-lines file outside the
//! database; a PostgreSQL chain's go to the database beside the chain (`audit_checkpoints`,
//! `store/pg/audit.rs`), where `audit verify` on any machine sees every daemon's, and they name
//! their chain in what is signed.
//!
//! The key (`audit-signing.key`, 0600, refused if looser) is not the vault key: a checkpoint
//! proves what the log held, and must not need the secret that decrypts credentials. Its public
//! half is written beside it (`audit-signing.pub`) so an operator can keep it elsewhere and pin
//! it (`audit verify --public-key`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const KEY_FILE: &str = "audit-signing.key";
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";
pub const CHECKPOINT_FILE: &str = "audit-checkpoints.jsonl";

/// What the signature covers; the prefix keeps the key from signing anything else usefully.
/// A checkpoint of a named chain (PostgreSQL) signs the chain id too, so it cannot be moved to
/// another chain (every chain's first checkpoint signs the same genesis head).
fn signed_message(chain: Option<&str>, seq: i64, hash: &str, time: &str) -> String {
    match chain {
        None => format!("airlock-audit-checkpoint-v1\n{seq}\n{hash}\n{time}"),
        Some(chain) => format!("airlock-audit-checkpoint-v2\n{chain}\n{seq}\n{hash}\n{time}"),
    }
}

/// One line of the checkpoint file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The chain it anchors: None for the SQLite store's one chain; a PostgreSQL writer's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    pub seq: i64,
    pub hash: String,
    /// RFC 3339 UTC, when it was signed.
    pub time: String,
    /// Hex Ed25519 signature of `signed_message`.
    pub signature: String,
    /// First 16 hex digits of SHA-256 of the public key.
    pub key_id: String,
}

/// Where each checkpoint goes besides the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sink {
    /// Only the file.
    None,
    /// Also one `audit checkpoint {json}` line in the daemon's log, for a log shipper.
    #[default]
    Log,
    /// Also the JSON line on standard output.
    Stdout,
}

impl Sink {
    pub fn parse(s: &str) -> Option<Sink> {
        match s {
            "none" => Some(Sink::None),
            "log" => Some(Sink::Log),
            "stdout" => Some(Sink::Stdout),
            _ => None,
        }
    }
}

/// The key id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Signs chain heads and appends them to the checkpoint file.
pub struct CheckpointSigner {
    key: SigningKey,
    key_id: String,
    file: PathBuf,
    sink: Sink,
}

impl CheckpointSigner {
    /// Loads the signing key of `data_dir`, creating it (0600) on first use.
    pub fn open(data_dir: &Path, sink: Sink) -> anyhow::Result<CheckpointSigner> {
        let key = load_or_create_key(data_dir)?;
        let key_id = key_id(&key.verifying_key());
        Ok(CheckpointSigner {
            key,
            key_id,
            file: data_dir.join(CHECKPOINT_FILE),
            sink,
        })
    }

    /// The head the file's last line signs (read from its tail only; not verified: used to
    /// skip signing the same head twice).
    pub fn newest(&self) -> Option<(i64, String)> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut f = std::fs::File::open(&self.file).ok()?;
        let len = f.metadata().ok()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
        let mut tail = String::new();
        f.read_to_string(&mut tail).ok()?;
        let line = tail.lines().rev().find(|l| !l.trim().is_empty())?;
        let cp: Checkpoint = serde_json::from_str(line).ok()?;
        Some((cp.seq, cp.hash))
    }

    /// Signs the head `seq`/`hash` of `chain` (None: the SQLite store's one chain).
    pub fn sign(&self, chain: Option<&str>, seq: i64, hash: &str) -> Checkpoint {
        let time = super::now_rfc3339();
        let sig = self
            .key
            .sign(signed_message(chain, seq, hash, &time).as_bytes());
        Checkpoint {
            chain: chain.map(str::to_string),
            seq,
            hash: hash.to_string(),
            time,
            signature: hex::encode(sig.to_bytes()),
            key_id: self.key_id.clone(),
        }
    }

    /// Hands a stored checkpoint to the configured sink (the log or standard output).
    pub fn emit(&self, cp: &Checkpoint) {
        let Ok(line) = serde_json::to_string(cp) else {
            return;
        };
        match self.sink {
            Sink::None => {}
            Sink::Log => {
                tracing::info!(target: "airlock::audit::checkpoint", "audit checkpoint {line}")
            }
            Sink::Stdout => println!("{line}"),
        }
    }

    /// Signs `seq`/`hash` of the SQLite chain and appends the checkpoint to the file.
    pub fn checkpoint(&self, seq: i64, hash: &str) -> anyhow::Result<Checkpoint> {
        let cp = self.sign(None, seq, hash);
        let line = serde_json::to_string(&cp)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&self.file)
            .with_context(|| format!("cannot open {}", self.file.display()))?;
        // One write of the whole line: appends from several processes do not interleave.
        f.write_all(format!("{line}\n").as_bytes())?;
        f.sync_data()?;
        self.emit(&cp);
        Ok(cp)
    }
}

fn load_or_create_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    super::ensure_data_dir(data_dir)?;
    let path = data_dir.join(KEY_FILE);
    if !path.exists() {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&path) {
            Ok(mut f) => {
                writeln!(f, "{}", hex::encode(seed))?;
                f.sync_all()?;
                let key = SigningKey::from_bytes(&seed);
                std::fs::write(
                    data_dir.join(PUBLIC_KEY_FILE),
                    format!("{}\n", hex::encode(key.verifying_key().as_bytes())),
                )?;
                return Ok(key);
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
    super::require_owner_only(&path)?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{} is not 64 hex digits", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parses a hex public key (as in `audit-signing.pub`).
pub fn parse_public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("expected 64 hex digits")?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("not an Ed25519 key: {e}"))
}

/// The public key the data directory's signing key verifies with (None without a key file).
pub fn local_public_key(data_dir: &Path) -> anyhow::Result<Option<VerifyingKey>> {
    let path = data_dir.join(KEY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(load_or_create_key(data_dir)?.verifying_key()))
}

/// Each parsed checkpoint with whether its signature verifies, and the numbers of the lines
/// that do not parse.
pub type CheckpointLines = (Vec<(Checkpoint, bool)>, Vec<usize>);

/// The checkpoint file's lines: each parsed one with whether its signature verifies under `key`,
/// and the numbers of lines that do not parse. None when the file does not exist.
pub fn read_all(data_dir: &Path, key: &VerifyingKey) -> anyhow::Result<Option<CheckpointLines>> {
    let path = data_dir.join(CHECKPOINT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Checkpoint>(line) {
            Ok(cp) => {
                let ok = verify_one(&cp, key);
                out.push((cp, ok));
            }
            Err(_) => bad.push(i + 1),
        }
    }
    Ok(Some((out, bad)))
}

/// Whether a checkpoint's signature verifies under `key`.
pub fn verify_one(cp: &Checkpoint, key: &VerifyingKey) -> bool {
    let Some(sig) = hex::decode(&cp.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
    else {
        return false;
    };
    key.verify(
        signed_message(cp.chain.as_deref(), cp.seq, &cp.hash, &cp.time).as_bytes(),
        &Signature::from_bytes(&sig),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_verify_under_their_key_and_not_after_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let s = CheckpointSigner::open(dir.path(), Sink::None).unwrap();
        let cp = s.checkpoint(7, "abc").unwrap();
        let key = local_public_key(dir.path()).unwrap().unwrap();
        let (all, bad) = read_all(dir.path(), &key).unwrap().unwrap();
        assert!(bad.is_empty());
        assert_eq!(all, vec![(cp.clone(), true)]);
        let mut forged = cp;
        forged.seq = 6;
        assert!(!verify_one(&forged, &key));
        // The published public key is the signing key's.
        let published = std::fs::read_to_string(dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(parse_public_key(&published).unwrap(), key);
    }

    #[test]
    fn a_chains_checkpoint_does_not_verify_for_another_chain() {
        let dir = tempfile::tempdir().unwrap();
        let s = CheckpointSigner::open(dir.path(), Sink::None).unwrap();
        let key = local_public_key(dir.path()).unwrap().unwrap();
        let cp = s.sign(Some("host:1:boot:a"), 0, "genesis");
        assert!(verify_one(&cp, &key));
        let moved = Checkpoint {
            chain: Some("host:2:boot:b".into()),
            ..cp.clone()
        };
        assert!(!verify_one(&moved, &key));
        // Nor as the SQLite chain's (no chain named).
        assert!(!verify_one(&Checkpoint { chain: None, ..cp }, &key));
    }

    #[cfg(unix)]
    #[test]
    fn the_key_is_private_and_a_looser_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        CheckpointSigner::open(dir.path(), Sink::None).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = CheckpointSigner::open(dir.path(), Sink::None)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
