//! The own authorization server's signing key and waiting sign-ins on either backend (see
//! [`crate::store::oauth_signin`]).

use super::Store;
use crate::store::oauth_signin::{self as signin, Pending};
use crate::store::vault::Sealed;

impl Store {
    /// The sealed access-token signing key, if one was made.
    pub async fn oauth_signing_key(&self) -> anyhow::Result<Option<Sealed>> {
        match self {
            Store::Sqlite(db) => db.read(|c| Ok(signin::signing_key(c)?)).await,
            Store::Postgres(pg) => pg.oauth_signing_key().await,
        }
    }

    /// Stores `key` unless one is stored already (read the stored one back after).
    pub async fn offer_oauth_signing_key(&self, key: &Sealed) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let k = key.clone();
                db.run(move |c| Ok(signin::offer_signing_key(c, &k)?)).await
            }
            Store::Postgres(pg) => pg.offer_oauth_signing_key(key).await,
        }
    }

    /// Records a waiting sign-in; false when `max` are waiting.
    pub async fn put_oauth_pending(
        &self,
        id: &str,
        request: &str,
        csrf: &str,
        ttl_ms: i64,
        max: i64,
    ) -> anyhow::Result<bool> {
        match self {
            Store::Sqlite(db) => {
                let (i, r, k) = (id.to_string(), request.to_string(), csrf.to_string());
                db.run(move |c| Ok(signin::put_pending(c, &i, &r, &k, ttl_ms, max)?))
                    .await
            }
            Store::Postgres(pg) => pg.put_oauth_pending(id, request, csrf, ttl_ms, max).await,
        }
    }

    pub async fn oauth_pending(&self, id: &str) -> anyhow::Result<Option<Pending>> {
        match self {
            Store::Sqlite(db) => {
                let i = id.to_string();
                db.read(move |c| Ok(signin::pending(c, &i)?)).await
            }
            Store::Postgres(pg) => pg.oauth_pending(id).await,
        }
    }

    /// One more wrong token for a waiting sign-in; the count (None when it is gone).
    pub async fn add_oauth_pending_try(&self, id: &str) -> anyhow::Result<Option<u32>> {
        match self {
            Store::Sqlite(db) => {
                let i = id.to_string();
                db.run(move |c| Ok(signin::add_try(c, &i)?)).await
            }
            Store::Postgres(pg) => pg.add_oauth_pending_try(id).await,
        }
    }

    /// Ends a waiting sign-in; true for the one caller that ended it.
    pub async fn take_oauth_pending(&self, id: &str) -> anyhow::Result<bool> {
        match self {
            Store::Sqlite(db) => {
                let i = id.to_string();
                db.run(move |c| Ok(signin::take_pending(c, &i)?)).await
            }
            Store::Postgres(pg) => pg.take_oauth_pending(id).await,
        }
    }
}
