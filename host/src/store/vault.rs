//! The secret vault: values encrypted with AES-256-GCM (the secret's name is bound as associated
//! data) under a master key from `AIRLOCK_MASTER_KEY` or a generated key file (mode 0600).

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use rusqlite::{Connection, OptionalExtension, params};

/// Environment variable holding the master key (64 hex digits or base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "AIRLOCK_MASTER_KEY";
/// Key file inside the data directory, used when the environment variable is unset.
pub const KEY_FILE: &str = "master.key";

/// Secret names: letters, digits, `_`, `-`, `.`; at most 128.
pub fn validate_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid secret name (letters, digits, '_', '-', '.'; at most 128)"
        ))
    }
}

pub struct Vault {
    cipher: Aes256Gcm,
}

impl Vault {
    /// Loads the master key (creating the key file on first use).
    pub fn open(data_dir: &Path) -> anyhow::Result<Vault> {
        let key = load_master_key(data_dir)?;
        Ok(Vault {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        })
    }

    pub fn set(&self, conn: &Connection, name: &str, value: &str) -> anyhow::Result<()> {
        validate_name(name).map_err(|m| anyhow!(m))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| anyhow!("encryption failed"))?;
        conn.execute(
            "INSERT INTO secrets (name, nonce, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET nonce = ?2, ciphertext = ?3, updated_at = ?4",
            params![name, nonce.as_slice(), ct, super::now_rfc3339()],
        )?;
        Ok(())
    }

    /// The decrypted value, or None when no such secret exists.
    pub fn get(&self, conn: &Connection, name: &str) -> anyhow::Result<Option<String>> {
        let row: Option<(Vec<u8>, Vec<u8>)> = conn
            .query_row(
                "SELECT nonce, ciphertext FROM secrets WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((nonce, ct)) = row else {
            return Ok(None);
        };
        if nonce.len() != 12 {
            bail!("secret `{name}` is corrupted (bad nonce)");
        }
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow!("cannot decrypt secret `{name}`: wrong master key or corrupted data")
            })?;
        Ok(Some(String::from_utf8(pt).context("secret is not UTF-8")?))
    }

    /// Names and last-update times; never values.
    pub fn list(conn: &Connection) -> anyhow::Result<Vec<(String, String)>> {
        let mut stmt = conn.prepare("SELECT name, updated_at FROM secrets ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a secret; false when it did not exist.
    pub fn remove(conn: &Connection, name: &str) -> anyhow::Result<bool> {
        Ok(conn.execute("DELETE FROM secrets WHERE name = ?1", [name])? > 0)
    }
}

fn load_master_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
        return parse_key(text.trim())
            .with_context(|| format!("{MASTER_KEY_ENV} is not a valid key"));
    }
    super::ensure_data_dir(data_dir)?;
    let path = data_dir.join(KEY_FILE);
    if path.exists() {
        super::require_owner_only(&path)?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return parse_key(text.trim())
            .with_context(|| format!("{} is not a valid key", path.display()));
    }
    let key: [u8; 32] = Aes256Gcm::generate_key(&mut OsRng).into();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write as _;
    let mut f = opts
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{}", hex::encode(key))?;
    f.sync_all()?;
    Ok(key)
}

fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(text)?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| anyhow!("expected 64 hex digits or base64 of 32 bytes"))?
    };
    bytes
        .try_into()
        .map_err(|_| anyhow!("expected 32 bytes (64 hex digits or base64)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_ciphertext_hides_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(dir.path()).unwrap();
        let v = Vault::open(dir.path()).unwrap();
        v.set(&conn, "tok", "canary-value-123").unwrap();
        assert_eq!(
            v.get(&conn, "tok").unwrap().as_deref(),
            Some("canary-value-123")
        );
        let raw = std::fs::read(crate::store::db_path(dir.path())).unwrap();
        let wal = std::fs::read(dir.path().join("airlock.db-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(!bytes.windows(16).any(|w| w == b"canary-value-123"));
        }
        assert_eq!(Vault::list(&conn).unwrap()[0].0, "tok");
        assert!(Vault::remove(&conn, "tok").unwrap());
        assert!(v.get(&conn, "tok").unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_0600_and_a_loose_mode_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Vault::open(dir.path()).unwrap();
        let p = dir.path().join(KEY_FILE);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Vault::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("0644"), "{e}");
    }

    #[test]
    fn a_value_moved_to_another_name_does_not_decrypt() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(dir.path()).unwrap();
        let v = Vault::open(dir.path()).unwrap();
        v.set(&conn, "a", "value-aaaaaa").unwrap();
        conn.execute(
            "INSERT INTO secrets SELECT 'b', nonce, ciphertext, updated_at FROM secrets WHERE name='a'",
            [],
        )
        .unwrap();
        assert!(v.get(&conn, "b").is_err());
    }
}
