//! The secret vault: values encrypted with AES-256-GCM (the secret's name is bound as associated
//! data) under a master key from `AIRLOCK_MASTER_KEY`, a file named by `AIRLOCK_MASTER_KEY_FILE`
//! or a generated key file in the data directory (mode 0600).

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use rusqlite::{Connection, OptionalExtension, params};

/// Environment variable holding the master key (64 hex digits or base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "AIRLOCK_MASTER_KEY";
/// Environment variable naming a file that holds the master key: how a service manager hands
/// it over without putting it in the environment (systemd `LoadCredential=`, container secrets).
pub const MASTER_KEY_FILE_ENV: &str = "AIRLOCK_MASTER_KEY_FILE";
/// Key file inside the data directory, used when neither environment variable is set.
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

/// A secret as stored: its nonce and ciphertext (never the value).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Stores a sealed secret (SQLite; `pg/vault.rs` for PostgreSQL).
pub fn put_sealed(conn: &Connection, name: &str, s: &Sealed) -> anyhow::Result<()> {
    conn.execute(
        "INSERT INTO secrets (name, nonce, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO UPDATE SET nonce = ?2, ciphertext = ?3, updated_at = ?4",
        params![name, s.nonce, s.ciphertext, super::now_rfc3339()],
    )?;
    Ok(())
}

/// A stored secret's nonce and ciphertext.
pub fn sealed(conn: &Connection, name: &str) -> anyhow::Result<Option<Sealed>> {
    Ok(conn
        .query_row(
            "SELECT nonce, ciphertext FROM secrets WHERE name = ?1",
            [name],
            |r| {
                Ok(Sealed {
                    nonce: r.get(0)?,
                    ciphertext: r.get(1)?,
                })
            },
        )
        .optional()?)
}

impl Vault {
    /// Loads the master key (creating the key file on first use).
    pub fn open(data_dir: &Path) -> anyhow::Result<Vault> {
        let key = load_master_key(data_dir)?;
        Ok(Vault {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        })
    }

    /// Encrypts `value` for the secret `name` (the name is bound as associated data, so a
    /// ciphertext moved to another name does not decrypt).
    pub fn seal(&self, name: &str, value: &str) -> anyhow::Result<Sealed> {
        validate_name(name).map_err(|m| anyhow!(m))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| anyhow!("encryption failed"))?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts what [`Vault::seal`] made for `name`.
    pub fn unseal(&self, name: &str, sealed: &Sealed) -> anyhow::Result<String> {
        if sealed.nonce.len() != 12 {
            bail!("secret `{name}` is corrupted (bad nonce)");
        }
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow!("cannot decrypt secret `{name}`: wrong master key or corrupted data")
            })?;
        String::from_utf8(pt).context("secret is not UTF-8")
    }

    pub fn set(&self, conn: &Connection, name: &str, value: &str) -> anyhow::Result<()> {
        put_sealed(conn, name, &self.seal(name, value)?)
    }

    /// The decrypted value, or None when no such secret exists.
    pub fn get(&self, conn: &Connection, name: &str) -> anyhow::Result<Option<String>> {
        match sealed(conn, name)? {
            Some(s) => self.unseal(name, &s).map(Some),
            None => Ok(None),
        }
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
    let key = std::env::var(MASTER_KEY_ENV).ok();
    let file = std::env::var_os(MASTER_KEY_FILE_ENV).map(PathBuf::from);
    master_key_from(key, file, data_dir)
}

/// The key from the environment's value, else the file it names, else the data directory's key
/// file (created on first use). Both variables at once is refused rather than guessed at.
fn master_key_from(
    key: Option<String>,
    file: Option<PathBuf>,
    data_dir: &Path,
) -> anyhow::Result<[u8; 32]> {
    match (key, file) {
        (Some(_), Some(_)) => {
            bail!("set {MASTER_KEY_ENV} or {MASTER_KEY_FILE_ENV}, not both")
        }
        (Some(text), None) => {
            return parse_key(text.trim())
                .with_context(|| format!("{MASTER_KEY_ENV} is not a valid key"));
        }
        // The same rule as the data directory's key file: nobody else may read it.
        (None, Some(path)) => {
            super::require_owner_only(&path)
                .with_context(|| format!("{MASTER_KEY_FILE_ENV}={}", path.display()))?;
            return read_key_file(&path);
        }
        (None, None) => {}
    }
    super::ensure_data_dir(data_dir)?;
    let path = data_dir.join(KEY_FILE);
    if path.exists() {
        super::require_owner_only(&path)?;
        return read_key_file(&path);
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

fn read_key_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_key(text.trim()).with_context(|| format!("{} is not a valid key", path.display()))
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

    /// A key file handed over by the service manager (`LoadCredential=`): used as given, never
    /// written to the data directory; the env value and the file at once are refused.
    #[cfg(unix)]
    #[test]
    fn the_master_key_file_variable_names_the_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let file = dir.path().join("master-key");
        let hex_key = "ab".repeat(32);
        std::fs::write(&file, format!("{hex_key}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        let key = master_key_from(None, Some(file.clone()), &data).unwrap();
        assert_eq!(key, [0xab; 32]);
        assert!(!data.join(KEY_FILE).exists(), "a key file was generated");

        let e = master_key_from(Some(hex_key.clone()), Some(file.clone()), &data).unwrap_err();
        assert!(format!("{e:#}").contains("not both"), "{e:#}");

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = format!(
            "{:#}",
            master_key_from(None, Some(file.clone()), &data).unwrap_err()
        );
        assert!(e.contains(MASTER_KEY_FILE_ENV) && e.contains("0644"), "{e}");

        let e = format!(
            "{:#}",
            master_key_from(None, Some(dir.path().join("absent")), &data).unwrap_err()
        );
        assert!(e.contains("absent"), "{e}");

        // A bad key is named by its file, its content never shown.
        std::fs::write(&file, "not-a-key-canary").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = format!(
            "{:#}",
            master_key_from(None, Some(file), &data).unwrap_err()
        );
        assert!(e.contains("master-key") && !e.contains("canary"), "{e}");
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
