//! Airlock's own OAuth authorization server's clients, grants, codes and refresh tokens on
//! PostgreSQL, mirroring `store/oauth_grants.rs` with the same rules. A code or refresh token
//! is used under a row lock (`FOR UPDATE`), so two daemons given the same one at once accept it
//! once: the second sees it spent, a replay, which revokes the grant.

use deadpool_postgres::GenericClient;

use super::PgStore;
use crate::store::oauth_grants::{
    CODE_PREFIX, Client, Grant, GrantInfo, LIST_GRANTS, LIVE_GRANT, NewGrant, REFRESH_PREFIX,
    Redeemed, Refused, new_secret, now_ms,
};
use crate::store::tokens::{Principal, hash_token};

async fn live_grant(c: &impl GenericClient, id: &str) -> anyhow::Result<Option<Grant>> {
    let r = c.query_opt(LIVE_GRANT, &[&id]).await?;
    Ok(r.map(|r| {
        let (scopes, groups): (String, serde_json::Value) = (r.get(2), r.get(7));
        let scopes: Vec<String> = scopes.split_whitespace().map(str::to_string).collect();
        Grant {
            id: r.get(0),
            client_id: r.get(1),
            scopes: scopes.clone(),
            resource: r.get(3),
            principal: Principal {
                token_id: r.get(4),
                name: r.get(5),
                tenant: r.get(6),
                groups: serde_json::from_value(groups).unwrap_or_default(),
                admin: false,
                proxy: Vec::new(),
                scopes: Some(scopes),
            },
        }
    }))
}

async fn revoke_in(c: &impl GenericClient, grant_id: &str, why: &str) -> anyhow::Result<bool> {
    let n = c
        .execute(
            "UPDATE oauth_grants SET revoked_at = $2, revoked_why = $3
             WHERE id = $1 AND revoked_at IS NULL",
            &[&grant_id, &crate::store::now_rfc3339(), &why],
        )
        .await?;
    if n > 0 {
        tracing::warn!(grant = grant_id, "OAuth grant revoked: {why}");
    }
    Ok(n > 0)
}

async fn issue_refresh(
    c: &impl GenericClient,
    grant_id: &str,
    ttl_ms: i64,
) -> anyhow::Result<String> {
    let token = new_secret(REFRESH_PREFIX);
    c.execute(
        "INSERT INTO oauth_refresh_tokens (hash, grant_id, expires_ms) VALUES ($1, $2, $3)",
        &[&hash_token(&token), &grant_id, &(now_ms() + ttl_ms)],
    )
    .await?;
    Ok(token)
}

impl PgStore {
    pub async fn oauth_grants(&self) -> anyhow::Result<Vec<GrantInfo>> {
        let c = self.client().await?;
        let rows = c.query(LIST_GRANTS, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| GrantInfo {
                id: r.get(0),
                client_id: r.get(1),
                client_name: r.get(2),
                principal: r.get(3),
                tenant: r.get(4),
                api_token_id: r.get(5),
                scopes: r
                    .get::<_, String>(6)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
                created_at: r.get(7),
                revoked_at: r.get(8),
                revoked_why: r.get(9),
                api_token_revoked: r.get::<_, Option<bool>>(10).unwrap_or(true),
            })
            .collect())
    }

    pub async fn oauth_client(&self, id: &str) -> anyhow::Result<Option<Client>> {
        let client = self.client().await?;
        let r = client
            .query_opt(
                "SELECT id, name, redirect_uris FROM oauth_clients WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(r.map(|r| {
            let uris: String = r.get(2);
            Client {
                id: r.get(0),
                name: r.get(1),
                redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
            }
        }))
    }

    /// Registers a client unless `max` are registered already (None then).
    pub async fn register_oauth_client(
        &self,
        name: Option<&str>,
        redirect_uris: &[String],
        max: i64,
    ) -> anyhow::Result<Option<Client>> {
        let c = Client {
            id: format!("dcr_{}", ulid::Ulid::new().to_string().to_lowercase()),
            name: name.map(str::to_string),
            redirect_uris: redirect_uris.to_vec(),
        };
        let client = self.client().await?;
        // One statement: the count and the insert see the same rows (daemons registering at
        // once may pass the bound by a few, never by many).
        let n = client
            .execute(
                "INSERT INTO oauth_clients (id, name, redirect_uris, created_at)
                 SELECT $1, $2, $3, $4 WHERE (SELECT COUNT(*) FROM oauth_clients) < $5",
                &[
                    &c.id,
                    &c.name,
                    &serde_json::to_string(&c.redirect_uris)?,
                    &crate::store::now_rfc3339(),
                    &max,
                ],
            )
            .await?;
        Ok((n == 1).then_some(c))
    }

    pub async fn start_oauth_grant(&self, g: &NewGrant<'_>) -> anyhow::Result<(String, String)> {
        let id = format!("grt_{}", ulid::Ulid::new().to_string().to_lowercase());
        let code = new_secret(CODE_PREFIX);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO oauth_grants (id, client_id, api_token_id, scopes, resource, created_at,
                person, person_tenant, person_groups)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &id,
                &g.client_id,
                &g.api_token_id,
                &g.scopes.join(" "),
                &g.resource,
                &crate::store::now_rfc3339(),
                &g.person.map(|p| p.name.as_str()),
                &g.person.map(|p| p.tenant.as_str()),
                &g.person.map(|p| serde_json::json!(p.groups)),
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO oauth_codes (hash, grant_id, redirect_uri, code_challenge, expires_ms)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &hash_token(&code),
                &id,
                &g.redirect_uri,
                &g.code_challenge,
                &(now_ms() + g.code_ttl_ms),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok((id, code))
    }

    pub async fn live_oauth_grant(&self, id: &str) -> anyhow::Result<Option<Grant>> {
        let client = self.client().await?;
        live_grant(&client, id).await
    }

    /// See [`crate::store::oauth_grants::redeem_code`].
    pub async fn redeem_oauth_code(
        &self,
        code: &str,
        client_id: &str,
    ) -> anyhow::Result<Result<Redeemed, Refused>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let hash = hash_token(code);
        let Some(r) = tx
            .query_opt(
                "SELECT grant_id, redirect_uri, code_challenge, expires_ms, used_at
                 FROM oauth_codes WHERE hash = $1 FOR UPDATE",
                &[&hash],
            )
            .await?
        else {
            return Ok(Err(Refused::Unknown));
        };
        let (grant_id, redirect_uri, code_challenge, expires_ms, used_at): (
            String,
            String,
            String,
            i64,
            Option<String>,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if used_at.is_some() {
            revoke_in(&tx, &grant_id, "authorization code replayed").await?;
            tx.commit().await?;
            return Ok(Err(Refused::Replayed));
        }
        tx.execute(
            "UPDATE oauth_codes SET used_at = $2 WHERE hash = $1",
            &[&hash, &crate::store::now_rfc3339()],
        )
        .await?;
        let grant = live_grant(&tx, &grant_id).await?;
        tx.commit().await?;
        Ok(match grant {
            _ if expires_ms < now_ms() => Err(Refused::Expired),
            None => Err(Refused::Revoked),
            Some(g) if g.client_id != client_id => Err(Refused::OtherClient),
            Some(grant) => Ok(Redeemed {
                grant,
                redirect_uri,
                code_challenge,
            }),
        })
    }

    pub async fn issue_oauth_refresh(&self, grant_id: &str, ttl_ms: i64) -> anyhow::Result<String> {
        let client = self.client().await?;
        issue_refresh(&client, grant_id, ttl_ms).await
    }

    /// See [`crate::store::oauth_grants::rotate_refresh`].
    pub async fn rotate_oauth_refresh(
        &self,
        token: &str,
        client_id: &str,
        ttl_ms: i64,
    ) -> anyhow::Result<Result<(Grant, String), Refused>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let hash = hash_token(token);
        let Some(r) = tx
            .query_opt(
                "SELECT grant_id, expires_ms, used_at FROM oauth_refresh_tokens
                 WHERE hash = $1 FOR UPDATE",
                &[&hash],
            )
            .await?
        else {
            return Ok(Err(Refused::Unknown));
        };
        let (grant_id, expires_ms, used_at): (String, i64, Option<String>) =
            (r.get(0), r.get(1), r.get(2));
        let Some(grant) = live_grant(&tx, &grant_id).await? else {
            return Ok(Err(Refused::Revoked));
        };
        if grant.client_id != client_id {
            return Ok(Err(Refused::OtherClient));
        }
        if used_at.is_some() {
            revoke_in(&tx, &grant_id, "rotated refresh token replayed").await?;
            tx.commit().await?;
            return Ok(Err(Refused::Replayed));
        }
        if expires_ms < now_ms() {
            return Ok(Err(Refused::Expired));
        }
        tx.execute(
            "UPDATE oauth_refresh_tokens SET used_at = $2 WHERE hash = $1",
            &[&hash, &crate::store::now_rfc3339()],
        )
        .await?;
        let next = issue_refresh(&tx, &grant_id, ttl_ms).await?;
        tx.commit().await?;
        Ok(Ok((grant, next)))
    }

    pub async fn grant_of_oauth_refresh(
        &self,
        token: &str,
    ) -> anyhow::Result<Option<(String, String)>> {
        let client = self.client().await?;
        let r = client
            .query_opt(
                "SELECT g.id, g.client_id FROM oauth_refresh_tokens r
                 JOIN oauth_grants g ON g.id = r.grant_id WHERE r.hash = $1",
                &[&hash_token(token)],
            )
            .await?;
        Ok(r.map(|r| (r.get(0), r.get(1))))
    }

    pub async fn revoke_oauth_grant(&self, grant_id: &str, why: &str) -> anyhow::Result<bool> {
        let client = self.client().await?;
        revoke_in(&client, grant_id, why).await
    }
}
