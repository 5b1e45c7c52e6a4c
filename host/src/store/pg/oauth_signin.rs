//! The own authorization server's signing key and waiting sign-ins on PostgreSQL, mirroring
//! `store/oauth_signin.rs`: one key for every daemon (the first offer wins), and a sign-in
//! page shown by one daemon may be answered at another; taking a sign-in is one `DELETE`, so a
//! form posted to two daemons at once signs in once.

use super::PgStore;
use crate::store::oauth_grants::now_ms;
use crate::store::oauth_signin::Pending;
use crate::store::tokens::hash_token;
use crate::store::vault::Sealed;

impl PgStore {
    pub async fn oauth_signing_key(&self) -> anyhow::Result<Option<Sealed>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT nonce, ciphertext FROM oauth_signing_key WHERE id = 1",
                &[],
            )
            .await?;
        Ok(row.map(|r| Sealed {
            nonce: r.get(0),
            ciphertext: r.get(1),
        }))
    }

    pub async fn offer_oauth_signing_key(&self, key: &Sealed) -> anyhow::Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO oauth_signing_key (id, nonce, ciphertext, created_at)
             VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
            &[&key.nonce, &key.ciphertext, &crate::store::now_rfc3339()],
        )
        .await?;
        Ok(())
    }

    pub async fn put_oauth_pending(
        &self,
        id: &str,
        request: &str,
        csrf: &str,
        ttl_ms: i64,
        max: i64,
    ) -> anyhow::Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_ms();
        tx.execute("DELETE FROM oauth_pending WHERE expires_ms <= $1", &[&now])
            .await?;
        let n: i64 = tx
            .query_one("SELECT COUNT(*) FROM oauth_pending", &[])
            .await?
            .get(0);
        if n >= max {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO oauth_pending (id_hash, request, csrf_hash, expires_ms, tries)
             VALUES ($1, $2, $3, $4, 0)",
            &[
                &hash_token(id),
                &request,
                &hash_token(csrf),
                &(now + ttl_ms),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn oauth_pending(&self, id: &str) -> anyhow::Result<Option<Pending>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT request, csrf_hash, tries FROM oauth_pending
                 WHERE id_hash = $1 AND expires_ms > $2",
                &[&hash_token(id), &now_ms()],
            )
            .await?;
        Ok(row.map(|r| Pending {
            request: r.get(0),
            csrf_hash: r.get(1),
            tries: r.get::<_, i32>(2).max(0) as u32,
        }))
    }

    pub async fn add_oauth_pending_try(&self, id: &str) -> anyhow::Result<Option<u32>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "UPDATE oauth_pending SET tries = tries + 1 WHERE id_hash = $1 RETURNING tries",
                &[&hash_token(id)],
            )
            .await?;
        Ok(row.map(|r| r.get::<_, i32>(0).max(0) as u32))
    }

    pub async fn take_oauth_pending(&self, id: &str) -> anyhow::Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM oauth_pending WHERE id_hash = $1 AND expires_ms > $2",
                &[&hash_token(id), &now_ms()],
            )
            .await?;
        Ok(n > 0)
    }
}
