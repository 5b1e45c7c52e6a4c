//! People's connections to upstreams on either backend (see [`crate::store::connections`]).

use super::Store;
use crate::store::connections::{self as conns, PendingConnect, UserConnection};

impl Store {
    /// Records a connect in progress under the SHA-256 of its `state`.
    pub async fn put_pending_connect(
        &self,
        state_hash: &str,
        p: PendingConnect,
    ) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let h = state_hash.to_string();
                db.run(move |c| conns::put_pending(c, &h, &p)).await
            }
            Store::Postgres(pg) => pg.put_pending_connect(state_hash, &p).await,
        }
    }

    /// Takes a connect in progress once (None: unknown, used or expired).
    pub async fn take_pending_connect(
        &self,
        state_hash: &str,
    ) -> anyhow::Result<Option<PendingConnect>> {
        match self {
            Store::Sqlite(db) => {
                let h = state_hash.to_string();
                db.run(move |c| conns::take_pending(c, &h)).await
            }
            Store::Postgres(pg) => pg.take_pending_connect(state_hash).await,
        }
    }

    pub async fn put_user_connection(&self, u: UserConnection) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => db.run(move |c| conns::put(c, &u)).await,
            Store::Postgres(pg) => pg.put_user_connection(&u).await,
        }
    }

    pub async fn user_connection(
        &self,
        connector: &str,
        principal: &str,
    ) -> anyhow::Result<Option<UserConnection>> {
        match self {
            Store::Sqlite(db) => {
                let (c1, p) = (connector.to_string(), principal.to_string());
                db.read(move |c| conns::get(c, &c1, &p)).await
            }
            Store::Postgres(pg) => pg.user_connection(connector, principal).await,
        }
    }

    pub async fn user_connections(&self, principal: &str) -> anyhow::Result<Vec<UserConnection>> {
        match self {
            Store::Sqlite(db) => {
                let p = principal.to_string();
                db.read(move |c| conns::of_principal(c, &p)).await
            }
            Store::Postgres(pg) => pg.user_connections(principal).await,
        }
    }

    /// Replaces the tokens only if the connection is still at `version` (see [`conns::rotate`]).
    pub async fn rotate_user_connection(
        &self,
        connector: &str,
        principal: &str,
        version: i64,
        sealed: (Vec<u8>, Vec<u8>),
        expires_ms: Option<i64>,
    ) -> anyhow::Result<bool> {
        match self {
            Store::Sqlite(db) => {
                let (c1, p) = (connector.to_string(), principal.to_string());
                db.run(move |c| {
                    conns::rotate(c, &c1, &p, version, (&sealed.0, &sealed.1), expires_ms)
                })
                .await
            }
            Store::Postgres(pg) => {
                pg.rotate_user_connection(connector, principal, version, &sealed, expires_ms)
                    .await
            }
        }
    }

    pub async fn remove_user_connection(
        &self,
        connector: &str,
        principal: &str,
    ) -> anyhow::Result<Option<UserConnection>> {
        match self {
            Store::Sqlite(db) => {
                let (c1, p) = (connector.to_string(), principal.to_string());
                db.run(move |c| conns::remove(c, &c1, &p)).await
            }
            Store::Postgres(pg) => pg.remove_user_connection(connector, principal).await,
        }
    }
}
