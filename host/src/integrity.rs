//! Connector integrity: a component may be pinned by digest (`sha256` on its `[[connector]]`)
//! and signed with a minisign key (Ed25519) that `[trust] keys` lists; `require_signature`
//! refuses unsigned components. The checks run on the very bytes that are then compiled, so a
//! file swapped between check and load cannot slip through.
//!
//! Signatures are minisign's format (`FILE.minisig` next to the component), made by
//! `airlock sign` or the `minisign` tool; keys are minisign public keys.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A trusted minisign public key.
#[derive(Clone)]
pub struct TrustedKey {
    key: minisign::PublicKey,
}

impl TrustedKey {
    /// Parses a public key: the base64 line of a minisign `.pub` file (`RWQ...`), or the whole
    /// file's text (comment line, then the key).
    pub fn parse(text: &str) -> Result<TrustedKey, String> {
        let line = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or("");
        minisign::PublicKey::from_base64(line)
            .map(|key| TrustedKey { key })
            .map_err(|_| {
                "is not a minisign public key (the `RW...` line of a .pub file)".to_string()
            })
    }

    /// The key id as minisign prints it (16 hex digits).
    pub fn id(&self) -> String {
        key_id(self.key.keynum())
    }
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "minisign key {}", self.id())
    }
}

fn key_id(keynum: &[u8]) -> String {
    let mut le = [0u8; 8];
    for (d, s) in le.iter_mut().zip(keynum) {
        *d = *s;
    }
    format!("{:016X}", u64::from_le_bytes(le))
}

/// `[trust]`: who may sign components, and whether every component must be signed.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub keys: Vec<TrustedKey>,
    pub require_signature: bool,
}

/// What one connector's component must satisfy before it is compiled.
#[derive(Debug, Clone, Default)]
pub struct Integrity {
    /// The connector id, for messages.
    pub connector: String,
    /// Lowercase hex SHA-256 the component must have (`sha256` in its `[[connector]]`).
    pub sha256: Option<String>,
    pub trust: Trust,
}

/// Where a component's signature lives: `connector.wasm` -> `connector.wasm.minisig`.
pub fn signature_path(component: &Path) -> PathBuf {
    let mut s = component.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Validates a configured digest: 64 hex digits (any case), returned lowercase.
pub fn parse_sha256(s: &str) -> Result<String, String> {
    let t = s.trim().trim_start_matches("sha256:");
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(format!(
            "`{s}` is not a SHA-256 digest (64 hex digits; `sha256sum FILE` prints it)"
        ))
    }
}

impl Integrity {
    /// Checks `bytes` (the component read from `path`) against the pin and the trust policy.
    /// A signature file is read next to `path`. The error names the connector and, for a
    /// digest mismatch, both digests.
    pub fn check(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        self.check_digested(path, bytes, &sha256_hex(bytes))
    }

    /// [`Integrity::check`] with the digest of `bytes` (lower-case hex) already computed by
    /// whoever read them.
    pub fn check_digested(&self, path: &Path, bytes: &[u8], sha256: &str) -> Result<(), String> {
        let id = &self.connector;
        if let Some(expected) = &self.sha256 {
            let actual = sha256;
            if actual != expected {
                return Err(format!(
                    "connector `{id}`: {} does not match its pinned digest: expected sha256 {expected}, actual sha256 {actual}; refused",
                    path.display()
                ));
            }
        }
        let sig_path = signature_path(path);
        let sig_text = match std::fs::read_to_string(&sig_path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(format!(
                    "connector `{id}`: cannot read the signature {}: {e}",
                    sig_path.display()
                ));
            }
        };
        match sig_text {
            None if self.trust.require_signature => Err(format!(
                "connector `{id}`: {} is not signed (no {}) and [trust] require_signature = true; sign it with `airlock sign --key KEY {}`",
                path.display(),
                sig_path.display(),
                path.display()
            )),
            None => Ok(()),
            // A signature nobody asked to check is still checked when keys are configured: a
            // file that claims a signer must really come from it.
            Some(_) if self.trust.keys.is_empty() => Ok(()),
            Some(text) => {
                verify(&self.trust.keys, bytes, &text).map_err(|why| {
                    format!(
                        "connector `{id}`: the signature {} of {} is refused: {why}",
                        sig_path.display(),
                        path.display()
                    )
                })?;
                Ok(())
            }
        }
    }
}

/// Verifies a minisign signature of `bytes` against the trusted keys; returns the id of the key
/// that signed it.
pub fn verify(keys: &[TrustedKey], bytes: &[u8], signature: &str) -> Result<String, String> {
    let sig = minisign::SignatureBox::from_string(signature)
        .map_err(|e| format!("not a minisign signature ({e})"))?;
    let signer = key_id(sig.keynum());
    let Some(key) = keys.iter().find(|k| k.key.keynum() == sig.keynum()) else {
        let trusted: Vec<String> = keys.iter().map(TrustedKey::id).collect();
        return Err(format!(
            "signed by key {signer}, which is not in [trust] keys ({})",
            if trusted.is_empty() {
                "none configured".to_string()
            } else {
                trusted.join(", ")
            }
        ));
    };
    // Prehashed signatures only (minisign's default since 0.8): legacy ones sign the raw file.
    minisign::verify(
        &key.key,
        &sig,
        std::io::Cursor::new(bytes),
        true,
        false,
        false,
    )
    .map_err(|_| {
        format!("the file does not match the signature of key {signer} (modified after signing?)")
    })?;
    Ok(signer)
}

/// A signing key loaded from a minisign secret key file. An encrypted key's password comes from
/// `AIRLOCK_SIGN_PASSWORD` (never a prompt, so scripts and CI can sign).
pub fn load_secret_key(path: &Path) -> Result<minisign::SecretKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the secret key {}: {e}", path.display()))?;
    let password = std::env::var(SIGN_PASSWORD_ENV).unwrap_or_default();
    minisign::SecretKey::from_box(minisign::SecretKeyBox::from_string(&text).map_err(|e| e.to_string())?, Some(password))
        .map_err(|e| {
            format!(
                "{} is not a usable minisign secret key ({e}); an encrypted key needs its password in {SIGN_PASSWORD_ENV}",
                path.display()
            )
        })
}

/// The environment variable holding the password of an encrypted signing key.
pub const SIGN_PASSWORD_ENV: &str = "AIRLOCK_SIGN_PASSWORD";

/// Signs `bytes` (the file `name`) and returns the `.minisig` text.
pub fn sign(sk: &minisign::SecretKey, bytes: &[u8], name: &str) -> Result<String, String> {
    let pk = minisign::PublicKey::from_secret_key(sk).map_err(|e| e.to_string())?;
    let trusted = format!(
        "timestamp:{}\tfile:{name}\thashed",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let sig = minisign::sign(
        Some(&pk),
        sk,
        std::io::Cursor::new(bytes),
        Some(&trusted),
        Some(&format!(
            "signature from airlock secret key {}",
            key_id(pk.keynum())
        )),
    )
    .map_err(|e| format!("cannot sign: {e}"))?;
    Ok(sig.into_string())
}

/// A new key pair: (secret key file text, public key file text, public key line, key id). The
/// secret key is encrypted with `password` unless it is empty.
pub fn generate(password: &str) -> Result<(String, String, String, String), String> {
    let kp = minisign::KeyPair::generate_encrypted_keypair(Some(password.to_string()))
        .map_err(|e| format!("cannot generate a key: {e}"))?;
    let id = key_id(kp.pk.keynum());
    let sk = kp
        .sk
        .to_box(Some(&format!("airlock secret key {id}")))
        .map_err(|e| e.to_string())?
        .into_string();
    let pk_box = kp.pk.to_box().map_err(|e| e.to_string())?.into_string();
    Ok((sk, pk_box, kp.pk.to_base64(), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (minisign::SecretKey, TrustedKey) {
        let (sk, _, line, _) = generate("").expect("key");
        let sk = minisign::SecretKey::from_box(
            minisign::SecretKeyBox::from_string(&sk).unwrap(),
            Some(String::new()),
        )
        .unwrap();
        (sk, TrustedKey::parse(&line).unwrap())
    }

    fn component(dir: &Path, bytes: &[u8]) -> PathBuf {
        let p = dir.join("c.wasm");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn a_pinned_digest_refuses_any_other_byte_naming_connector_and_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let good = b"\0asm\x0d\0\x01\0component";
        let p = component(dir.path(), good);
        let pin = Integrity {
            connector: "zendesk".into(),
            sha256: Some(sha256_hex(good)),
            trust: Trust::default(),
        };
        pin.check(&p, good).expect("the pinned bytes load");
        let mut tampered = good.to_vec();
        tampered[10] ^= 1;
        let e = pin.check(&p, &tampered).unwrap_err();
        assert!(e.contains("connector `zendesk`"), "{e}");
        assert!(
            e.contains(&format!("expected sha256 {}", sha256_hex(good))),
            "{e}"
        );
        assert!(
            e.contains(&format!("actual sha256 {}", sha256_hex(&tampered))),
            "{e}"
        );
    }

    #[test]
    fn signatures_verify_only_for_the_signed_bytes_and_a_trusted_key() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"\0asm\x0d\0\x01\0signed component";
        let p = component(dir.path(), bytes);
        let (sk, key) = keypair();
        let (_, other) = keypair();
        let policy = |keys: Vec<TrustedKey>| Integrity {
            connector: "c".into(),
            sha256: None,
            trust: Trust {
                keys,
                require_signature: true,
            },
        };
        // Unsigned with require_signature: refused.
        let e = policy(vec![key.clone()]).check(&p, bytes).unwrap_err();
        assert!(
            e.contains("is not signed") && e.contains("c.wasm.minisig"),
            "{e}"
        );

        std::fs::write(signature_path(&p), sign(&sk, bytes, "c.wasm").unwrap()).unwrap();
        policy(vec![key.clone()]).check(&p, bytes).expect("signed");
        policy(vec![other.clone(), key.clone()])
            .check(&p, bytes)
            .expect("any trusted key");

        let mut tampered = bytes.to_vec();
        tampered[12] ^= 0x20;
        let e = policy(vec![key.clone()]).check(&p, &tampered).unwrap_err();
        assert!(e.contains("does not match the signature"), "{e}");
        let e = policy(vec![other.clone()]).check(&p, bytes).unwrap_err();
        assert!(e.contains("not in [trust] keys"), "{e}");
        assert!(e.contains(&key.id()) && e.contains(&other.id()), "{e}");

        // A garbled signature file is refused, not ignored.
        std::fs::write(signature_path(&p), "untrusted comment: x\nnot base64\n").unwrap();
        let e = policy(vec![key]).check(&p, bytes).unwrap_err();
        assert!(e.contains("refused"), "{e}");
    }

    #[test]
    fn digests_and_keys_are_validated() {
        let d = "A".repeat(64);
        assert_eq!(parse_sha256(&d).unwrap(), "a".repeat(64));
        assert_eq!(
            parse_sha256(&format!("sha256:{d}")).unwrap(),
            "a".repeat(64)
        );
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"g".repeat(64)).is_err());
        let (_, pub_file, line, id) = generate("").unwrap();
        assert_eq!(TrustedKey::parse(&pub_file).unwrap().id(), id);
        assert_eq!(TrustedKey::parse(&line).unwrap().id(), id);
        assert!(TrustedKey::parse("RWQnope").is_err());
    }

    #[test]
    fn an_encrypted_signing_key_needs_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, _, _, _) = generate("correct horse").unwrap();
        let p = dir.path().join("k.key");
        std::fs::write(&p, sk).unwrap();
        // (No test sets the password variable, so the empty default is tried and refused.)
        let e = load_secret_key(&p).unwrap_err();
        assert!(e.contains(SIGN_PASSWORD_ENV), "{e}");
    }
}
