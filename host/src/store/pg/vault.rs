//! The secret vault's storage on PostgreSQL: sealed values only (nonce and AES-256-GCM
//! ciphertext, see `store/vault.rs`). Every daemon decrypts with the same master key, handed to
//! each the same way as for one daemon (`AIRLOCK_MASTER_KEY` or `AIRLOCK_MASTER_KEY_FILE`; a key
//! file generated in one data directory is that daemon's alone).

use super::PgStore;
use crate::store::vault::Sealed;

impl PgStore {
    pub async fn put_sealed(&self, name: &str, s: &Sealed) -> anyhow::Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO secrets (name, nonce, ciphertext, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce,
                   ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
                &[&name, &s.nonce, &s.ciphertext, &crate::store::now_rfc3339()],
            )
            .await?;
        Ok(())
    }

    pub async fn sealed(&self, name: &str) -> anyhow::Result<Option<Sealed>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT nonce, ciphertext FROM secrets WHERE name = $1",
                &[&name],
            )
            .await?;
        Ok(row.map(|r| Sealed {
            nonce: r.get(0),
            ciphertext: r.get(1),
        }))
    }

    /// Names and last-update times; never values.
    pub async fn secret_names(&self) -> anyhow::Result<Vec<(String, String)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, updated_at FROM secrets ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn remove_secret(&self, name: &str) -> anyhow::Result<bool> {
        let client = self.client().await?;
        Ok(client
            .execute("DELETE FROM secrets WHERE name = $1", &[&name])
            .await?
            > 0)
    }
}
