//! People's connections to upstreams on PostgreSQL, mirroring `store/connections.rs`: a
//! pending connect is taken once (`DELETE … RETURNING`), and a rotation replaces only the
//! version it read, so two daemons refreshing one connection at once store one result.

use super::PgStore;
use crate::store::connections::{PendingConnect, UserConnection, now_ms};

const COLUMNS: &str = "connector, principal, nonce, ciphertext, expires_ms, scopes, version, connected_at, updated_at";

fn row(r: &tokio_postgres::Row) -> UserConnection {
    UserConnection {
        connector: r.get(0),
        principal: r.get(1),
        nonce: r.get(2),
        ciphertext: r.get(3),
        expires_ms: r.get(4),
        scopes: r.get(5),
        version: r.get(6),
        connected_at: r.get(7),
        updated_at: r.get(8),
    }
}

impl PgStore {
    pub async fn put_pending_connect(
        &self,
        state_hash: &str,
        p: &PendingConnect,
    ) -> anyhow::Result<()> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM connection_states WHERE expires_ms < $1",
            &[&now_ms()],
        )
        .await?;
        c.execute(
            "INSERT INTO connection_states (hash, connector, principal, nonce, ciphertext, expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &state_hash,
                &p.connector,
                &p.principal,
                &p.nonce,
                &p.ciphertext,
                &p.expires_ms,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn take_pending_connect(
        &self,
        state_hash: &str,
    ) -> anyhow::Result<Option<PendingConnect>> {
        let c = self.client().await?;
        let r = c
            .query_opt(
                "DELETE FROM connection_states WHERE hash = $1
                 RETURNING connector, principal, nonce, ciphertext, expires_ms",
                &[&state_hash],
            )
            .await?;
        Ok(r.map(|r| PendingConnect {
            connector: r.get(0),
            principal: r.get(1),
            nonce: r.get(2),
            ciphertext: r.get(3),
            expires_ms: r.get(4),
        })
        .filter(|p| p.expires_ms >= now_ms()))
    }

    pub async fn put_user_connection(&self, u: &UserConnection) -> anyhow::Result<()> {
        let c = self.client().await?;
        let now = crate::store::now_rfc3339();
        c.execute(
            "INSERT INTO user_connections
               (connector, principal, nonce, ciphertext, expires_ms, scopes, version, connected_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)
             ON CONFLICT (connector, principal) DO UPDATE SET nonce = $3, ciphertext = $4,
               expires_ms = $5, scopes = $6, version = user_connections.version + 1,
               connected_at = $7, updated_at = $7",
            &[
                &u.connector,
                &u.principal,
                &u.nonce,
                &u.ciphertext,
                &u.expires_ms,
                &u.scopes,
                &now,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn user_connection(
        &self,
        connector: &str,
        principal: &str,
    ) -> anyhow::Result<Option<UserConnection>> {
        let c = self.client().await?;
        let r = c
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM user_connections WHERE connector = $1 AND principal = $2"
                ),
                &[&connector, &principal],
            )
            .await?;
        Ok(r.as_ref().map(row))
    }

    pub async fn user_connections(&self, principal: &str) -> anyhow::Result<Vec<UserConnection>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM user_connections WHERE principal = $1 ORDER BY connector"
                ),
                &[&principal],
            )
            .await?;
        Ok(rows.iter().map(row).collect())
    }

    pub async fn rotate_user_connection(
        &self,
        connector: &str,
        principal: &str,
        version: i64,
        sealed: &(Vec<u8>, Vec<u8>),
        expires_ms: Option<i64>,
    ) -> anyhow::Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE user_connections SET nonce = $4, ciphertext = $5, expires_ms = $6,
                   version = version + 1, updated_at = $7
                 WHERE connector = $1 AND principal = $2 AND version = $3",
                &[
                    &connector,
                    &principal,
                    &version,
                    &sealed.0,
                    &sealed.1,
                    &expires_ms,
                    &crate::store::now_rfc3339(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn remove_user_connection(
        &self,
        connector: &str,
        principal: &str,
    ) -> anyhow::Result<Option<UserConnection>> {
        let c = self.client().await?;
        let r = c
            .query_opt(
                &format!(
                    "DELETE FROM user_connections WHERE connector = $1 AND principal = $2 RETURNING {COLUMNS}"
                ),
                &[&connector, &principal],
            )
            .await?;
        Ok(r.as_ref().map(row))
    }
}
