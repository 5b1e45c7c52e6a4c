//! API tokens on PostgreSQL, mirroring `store/tokens.rs`: only each token's SHA-256 is stored.
//! Every daemon checks tokens against this table, so a revocation on one daemon is refused by
//! all the others from their next request.

use super::PgStore;
use crate::store::tokens::{Principal, TokenInfo, hash_token};

impl PgStore {
    pub async fn insert_token(&self, info: &TokenInfo, hash: &str) -> anyhow::Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO api_tokens (id, hash, principal, tenant, groups, admin, created_at, proxy)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &info.id,
                    &hash,
                    &info.principal,
                    &info.tenant,
                    &serde_json::to_value(&info.groups)?,
                    &info.admin,
                    &info.created_at,
                    &serde_json::to_value(&info.proxy)?,
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn authenticate(&self, token: &str) -> anyhow::Result<Option<Principal>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, principal, tenant, groups, admin, proxy FROM api_tokens
                 WHERE hash = $1 AND revoked_at IS NULL",
                &[&hash_token(token)],
            )
            .await?;
        Ok(row.map(|r| {
            let (groups, proxy): (serde_json::Value, serde_json::Value) = (r.get(3), r.get(5));
            Principal {
                token_id: r.get(0),
                name: r.get(1),
                tenant: r.get(2),
                groups: serde_json::from_value(groups).unwrap_or_default(),
                admin: r.get(4),
                // Unreadable scope: none (fail closed).
                proxy: serde_json::from_value(proxy).unwrap_or_default(),
                scopes: None,
            }
        }))
    }

    pub async fn tokens(&self) -> anyhow::Result<Vec<TokenInfo>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, principal, tenant, groups, admin, created_at, revoked_at, proxy
                 FROM api_tokens ORDER BY created_at, id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let (groups, proxy): (serde_json::Value, serde_json::Value) = (r.get(3), r.get(7));
                TokenInfo {
                    id: r.get(0),
                    principal: r.get(1),
                    tenant: r.get(2),
                    groups: serde_json::from_value(groups).unwrap_or_default(),
                    admin: r.get(4),
                    proxy: serde_json::from_value(proxy).unwrap_or_default(),
                    created_at: r.get(5),
                    revoked_at: r.get(6),
                }
            })
            .collect())
    }

    pub async fn revoke_tokens(&self, id_or_principal: &str) -> anyhow::Result<Vec<String>> {
        let client = self.client().await?;
        let now = crate::store::now_rfc3339();
        let rows = client
            .query(
                "UPDATE api_tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND
                   (id = $1 OR (principal = $1 AND NOT EXISTS (SELECT 1 FROM api_tokens WHERE id = $1)))
                 RETURNING id",
                &[&id_or_principal, &now],
            )
            .await?;
        let mut ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort();
        Ok(ids)
    }
}
