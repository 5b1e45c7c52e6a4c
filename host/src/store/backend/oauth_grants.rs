//! Airlock's own OAuth authorization server's records on either backend (see
//! [`crate::store::oauth_grants`]): a code or refresh token is accepted once whichever daemon
//! is shown it.

use super::Store;
use crate::store::oauth_grants::{
    self as grants, Client, Grant, GrantInfo, NewGrant, Redeemed, Refused,
};

impl Store {
    /// Every grant, newest first (for `airlock oauth grants`).
    pub async fn oauth_grants(&self) -> anyhow::Result<Vec<GrantInfo>> {
        match self {
            Store::Sqlite(db) => db.read(|c| Ok(grants::grants(c)?)).await,
            Store::Postgres(pg) => pg.oauth_grants().await,
        }
    }

    pub async fn oauth_client(&self, id: &str) -> anyhow::Result<Option<Client>> {
        match self {
            Store::Sqlite(db) => {
                let i = id.to_string();
                db.read(move |c| Ok(grants::client(c, &i)?)).await
            }
            Store::Postgres(pg) => pg.oauth_client(id).await,
        }
    }

    /// Registers a public client unless `max` clients are registered (None then).
    pub async fn register_oauth_client(
        &self,
        name: Option<&str>,
        redirect_uris: &[String],
        max: i64,
    ) -> anyhow::Result<Option<Client>> {
        match self {
            Store::Sqlite(db) => {
                let (n, u) = (name.map(str::to_string), redirect_uris.to_vec());
                db.run(move |c| {
                    if grants::client_count(c)? >= max {
                        return Ok(None);
                    }
                    grants::register_client(c, n.as_deref(), &u).map(Some)
                })
                .await
            }
            Store::Postgres(pg) => pg.register_oauth_client(name, redirect_uris, max).await,
        }
    }

    /// Records a grant and its one-time code; returns (grant id, code).
    pub async fn start_oauth_grant(&self, g: &NewGrant<'_>) -> anyhow::Result<(String, String)> {
        match self {
            Store::Sqlite(db) => {
                let person = g.person.cloned();
                let (client, token, scopes, resource, redirect, challenge, ttl) = (
                    g.client_id.to_string(),
                    g.api_token_id.to_string(),
                    g.scopes.to_vec(),
                    g.resource.to_string(),
                    g.redirect_uri.to_string(),
                    g.code_challenge.to_string(),
                    g.code_ttl_ms,
                );
                db.run(move |c| {
                    grants::start_grant(
                        c,
                        &NewGrant {
                            client_id: &client,
                            api_token_id: &token,
                            person: person.as_ref(),
                            scopes: &scopes,
                            resource: &resource,
                            redirect_uri: &redirect,
                            code_challenge: &challenge,
                            code_ttl_ms: ttl,
                        },
                    )
                })
                .await
            }
            Store::Postgres(pg) => pg.start_oauth_grant(g).await,
        }
    }

    /// The grant when neither it nor its API token is revoked.
    pub async fn live_oauth_grant(&self, id: &str) -> anyhow::Result<Option<Grant>> {
        match self {
            Store::Sqlite(db) => {
                let i = id.to_string();
                db.read(move |c| Ok(grants::live_grant(c, &i)?)).await
            }
            Store::Postgres(pg) => pg.live_oauth_grant(id).await,
        }
    }

    /// Uses a code once (see [`grants::redeem_code`]).
    pub async fn redeem_oauth_code(
        &self,
        code: &str,
        client_id: &str,
    ) -> anyhow::Result<Result<Redeemed, Refused>> {
        match self {
            Store::Sqlite(db) => {
                let (code, cid) = (code.to_string(), client_id.to_string());
                db.run(move |c| grants::redeem_code(c, &code, &cid)).await
            }
            Store::Postgres(pg) => pg.redeem_oauth_code(code, client_id).await,
        }
    }

    pub async fn issue_oauth_refresh(&self, grant_id: &str, ttl_ms: i64) -> anyhow::Result<String> {
        match self {
            Store::Sqlite(db) => {
                let id = grant_id.to_string();
                db.run(move |c| grants::issue_refresh(c, &id, ttl_ms)).await
            }
            Store::Postgres(pg) => pg.issue_oauth_refresh(grant_id, ttl_ms).await,
        }
    }

    /// Rotates a refresh token (see [`grants::rotate_refresh`]).
    pub async fn rotate_oauth_refresh(
        &self,
        token: &str,
        client_id: &str,
        ttl_ms: i64,
    ) -> anyhow::Result<Result<(Grant, String), Refused>> {
        match self {
            Store::Sqlite(db) => {
                let (t, cid) = (token.to_string(), client_id.to_string());
                db.run(move |c| grants::rotate_refresh(c, &t, &cid, ttl_ms))
                    .await
            }
            Store::Postgres(pg) => pg.rotate_oauth_refresh(token, client_id, ttl_ms).await,
        }
    }

    /// The grant and client a refresh token belongs to (spent or not).
    pub async fn grant_of_oauth_refresh(
        &self,
        token: &str,
    ) -> anyhow::Result<Option<(String, String)>> {
        match self {
            Store::Sqlite(db) => {
                let t = token.to_string();
                db.read(move |c| Ok(grants::grant_of_refresh(c, &t)?)).await
            }
            Store::Postgres(pg) => pg.grant_of_oauth_refresh(token).await,
        }
    }

    /// Revokes a grant; whether a live one was revoked.
    pub async fn revoke_oauth_grant(&self, grant_id: &str, why: &str) -> anyhow::Result<bool> {
        match self {
            Store::Sqlite(db) => {
                let (i, w) = (grant_id.to_string(), why.to_string());
                db.run(move |c| Ok(grants::revoke_grant(c, &i, &w)?)).await
            }
            Store::Postgres(pg) => pg.revoke_oauth_grant(grant_id, why).await,
        }
    }
}
