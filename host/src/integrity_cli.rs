//! `airlock sign` and `airlock verify`: make a minisign key pair, sign a component (writing
//! `FILE.minisig` beside it), and check a component the way the daemon will before loading it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::config::Config;
use crate::integrity::{self, Integrity, Trust, TrustedKey};

/// Writes a new key pair: `key` (the secret key, mode 0600, never overwritten) and `key.pub`.
/// Returns the public key line for `[trust] keys`.
pub fn generate_key(key: &Path) -> anyhow::Result<String> {
    let password = std::env::var(integrity::SIGN_PASSWORD_ENV).unwrap_or_default();
    let (sk, pk_file, line, id) = integrity::generate(&password).map_err(anyhow::Error::msg)?;
    let pub_path = with_suffix(key, ".pub");
    if pub_path.exists() {
        bail!("{} exists; not overwriting it", pub_path.display());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(key)
        .with_context(|| format!("cannot create {} (it must not exist yet)", key.display()))?;
    f.write_all(sk.as_bytes())?;
    f.sync_all()?;
    std::fs::write(&pub_path, pk_file)
        .with_context(|| format!("cannot write {}", pub_path.display()))?;
    eprintln!(
        "wrote secret key {} ({}) and public key {} (key id {id})",
        key.display(),
        if password.is_empty() {
            format!(
                "not encrypted: set {} to encrypt it",
                integrity::SIGN_PASSWORD_ENV
            )
        } else {
            "encrypted".to_string()
        },
        pub_path.display()
    );
    Ok(line)
}

/// Signs `file` with the secret key at `key`; returns the signature file written.
pub fn sign(key: &Path, file: &Path) -> anyhow::Result<PathBuf> {
    let sk = integrity::load_secret_key(key).map_err(anyhow::Error::msg)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let sig = integrity::sign(&sk, &bytes, &name).map_err(anyhow::Error::msg)?;
    let out = integrity::signature_path(file);
    std::fs::write(&out, sig).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

/// What `airlock verify` found.
pub struct Verified {
    pub sha256: String,
    /// The id of the trusted key that signed the file.
    pub signer: String,
}

/// Checks `file` like the daemon does: its signature against `keys` (or, with none given, the
/// config's `[trust] keys`), the config's `require_signature`, and the `sha256` pin of every
/// configured connector whose component is this file (or `sha256` when given).
pub fn verify(
    file: &Path,
    keys: &[String],
    sha256: Option<&str>,
    config: Option<&Config>,
) -> anyhow::Result<Verified> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut trust = match config {
        Some(c) if keys.is_empty() => c.trust.clone(),
        _ => Trust::default(),
    };
    for (i, k) in keys.iter().enumerate() {
        let text = match std::fs::read_to_string(k) {
            Ok(t) => t,
            Err(_) => k.clone(),
        };
        trust
            .keys
            .push(TrustedKey::parse(&text).map_err(|m| anyhow::anyhow!("--key #{}: {m}", i + 1))?);
    }
    if trust.keys.is_empty() {
        bail!(
            "no trusted key: give --key (a minisign public key or .pub file) or a config with [trust] keys"
        );
    }
    if let Some(d) = sha256 {
        let want = integrity::parse_sha256(d).map_err(anyhow::Error::msg)?;
        let got = integrity::sha256_hex(&bytes);
        if want != got {
            bail!(
                "{} does not match --sha256: expected sha256 {want}, actual sha256 {got}",
                file.display()
            );
        }
    }
    // Every connector of the config that loads this very file, with its pin.
    let same_file = |c: &Path| std::fs::canonicalize(c).ok() == std::fs::canonicalize(file).ok();
    for c in config.map(|c| c.connectors.as_slice()).unwrap_or_default() {
        if c.sha256.is_some() && same_file(&c.component) {
            Integrity {
                connector: c.id.clone(),
                sha256: c.sha256.clone(),
                trust: Trust::default(),
            }
            .check(file, &bytes)
            .map_err(anyhow::Error::msg)?;
        }
    }
    let sig_path = integrity::signature_path(file);
    let sig = match std::fs::read_to_string(&sig_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} is not signed (no {}); sign it with `airlock sign --key KEY {}`",
            file.display(),
            sig_path.display(),
            file.display()
        ),
        Err(e) => bail!("cannot read {}: {e}", sig_path.display()),
    };
    let signer = integrity::verify(&trust.keys, &bytes, &sig)
        .map_err(|why| anyhow::anyhow!("{}: signature refused: {why}", file.display()))?;
    Ok(Verified {
        sha256: integrity::sha256_hex(&bytes),
        signer,
    })
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
