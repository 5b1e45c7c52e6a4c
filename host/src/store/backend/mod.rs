//! The store's interface, whichever database holds it: [`Store`] is the embedded SQLite file of
//! one data directory (the default, no setup) or a PostgreSQL database several daemons share
//! (`[store] url = "postgres://…"`). Each operation here dispatches to the SQLite functions in
//! the area modules beside this file (run on the blocking pool) or to their PostgreSQL
//! counterparts in `pg/`. Both sides honour the same rules; the store tests run against both.
//!
//! Areas served through this interface so far: documents and search, sync state, sync job
//! leases, API tokens, the secret vault, write approvals, the audit log (`audit.rs`; signed
//! checkpoints are SQLite-only), change-feed readers (`changes.rs`), the webhook outbox and kept
//! push subscriptions (`webhooks.rs`), the own OAuth authorization server's grants
//! (`oauth_grants.rs`), and the daemons' shares of each grant's rate (`rate_shares.rs`).

pub mod audit;
pub mod changes;
mod connections;
mod embeddings;
mod oauth_grants;
mod oauth_signin;
mod rate_shares;
mod webhooks;
pub use rate_shares::ShareRound;

use std::sync::Arc;
use std::time::Duration;

use super::Db;
use super::approvals::{self, Approval, ApprovalError};
use super::changes as feed;
use super::documents::{self, Hit, Query, Readers};
use super::leases::{self, Lease, LeaseInfo};
use super::pg::PgStore;
use super::sync_state::{self, PageCounts, SyncState};
use super::token_cache;
use super::tokens::{self, Principal, TokenInfo};
use super::vault::{self, Vault};
use crate::model::{Document, DocumentRef};

/// Where the store is and which database holds it.
#[derive(Clone)]
pub enum Store {
    Sqlite(Arc<Db>),
    Postgres(Arc<PgStore>),
}

/// One sync page and everything committed with it, in one transaction: its upserts and deletes
/// (and their change-feed rows), the stream's next cursor and counts, success when it was the
/// last page, and the feed's pruning when due. With a lease, the commit first checks and renews it.
#[derive(Debug, Clone, Default)]
pub struct PageCommit {
    pub connector: String,
    pub stream: String,
    /// The sync call that fetched the page (`audit verify` finds data without audit rows).
    pub invocation: Option<String>,
    pub upserts: Vec<Document>,
    pub deletes: Vec<DocumentRef>,
    pub next_cursor: Option<String>,
    pub counts: PageCounts,
    pub done: bool,
    /// Prune change-feed rows committed before this time.
    pub prune_before: Option<String>,
    pub lease: Option<Lease>,
    /// How long a successful commit extends the lease.
    pub lease_ttl: Duration,
}

/// A search with owned parts (it crosses onto the blocking pool or into an async client).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: String,
    pub connector: Option<String>,
    pub kind: Option<String>,
    pub limit: usize,
    pub connectors: Option<Vec<String>>,
    pub readers: Option<Readers>,
    /// Any of the words rather than all (see [`Query::any_word`]).
    pub any_word: bool,
}

impl SearchQuery {
    pub fn as_query(&self) -> Query<'_> {
        Query {
            text: &self.text,
            connector: self.connector.as_deref(),
            kind: self.kind.as_deref(),
            limit: self.limit,
            connectors: self.connectors.as_deref(),
            readers: self.readers.as_ref(),
            any_word: self.any_word,
        }
    }
}

impl Store {
    /// Opens (and migrates) the store: PostgreSQL at `url` when given, else the SQLite file of
    /// `data_dir`.
    pub async fn open(data_dir: &std::path::Path, url: Option<&str>) -> anyhow::Result<Store> {
        match url {
            Some(url) => Ok(Store::Postgres(Arc::new(PgStore::open(url).await?))),
            None => Ok(Store::Sqlite(Arc::new(Db::open(data_dir)?))),
        }
    }

    /// Which database this is, for `status` and logs (never a password).
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(db) => format!("sqlite {}", db.path().display()),
            Store::Postgres(pg) => format!("postgres {}", pg.shown()),
        }
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                db.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
                    .await?;
                Ok(())
            }
            Store::Postgres(pg) => pg.ping().await,
        }
    }

    /// Tells change-feed readers of this process that a page was committed (on PostgreSQL the
    /// commit's NOTIFY also wakes other daemons' readers; see `pg/commit_notify.rs`).
    pub fn notify_committed(&self) {
        match self {
            Store::Sqlite(db) => db.notify_committed(),
            Store::Postgres(pg) => pg.notify_committed(),
        }
    }

    // ---- documents and search ----

    /// Commits one sync page (see [`PageCommit`]); a lost lease is a [`leases::LeaseLost`].
    pub async fn commit_page(&self, page: PageCommit) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => db.run(move |conn| commit_page_sqlite(conn, &page)).await,
            Store::Postgres(pg) => pg.commit_page(&page).await,
        }
    }

    /// Applies documents outside any stream (imports, tests).
    pub async fn put_documents(
        &self,
        connector: &str,
        upserts: Vec<Document>,
        deletes: Vec<DocumentRef>,
    ) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let connector = connector.to_string();
                db.run(move |conn| {
                    let tx =
                        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    documents::apply_page(
                        &tx,
                        &connector,
                        &upserts,
                        &deletes,
                        &super::now_rfc3339(),
                    )?;
                    tx.commit()?;
                    Ok(())
                })
                .await
            }
            Store::Postgres(pg) => pg.put_documents(connector, &upserts, &deletes).await,
        }
    }

    pub async fn document(
        &self,
        connector: &str,
        kind: &str,
        id: &str,
    ) -> anyhow::Result<Option<Document>> {
        match self {
            Store::Sqlite(db) => {
                let (c, k, i) = (connector.to_string(), kind.to_string(), id.to_string());
                db.read(move |conn| Ok(documents::get(conn, &c, &k, &i)?))
                    .await
            }
            Store::Postgres(pg) => pg.document(connector, kind, id).await,
        }
    }

    /// Every document of a connector (of one kind), ordered by kind and id.
    pub async fn documents(
        &self,
        connector: &str,
        kind: Option<&str>,
    ) -> anyhow::Result<Vec<Document>> {
        match self {
            Store::Sqlite(db) => {
                let (c, k) = (connector.to_string(), kind.map(str::to_string));
                db.read(move |conn| Ok(documents::all(conn, &c, k.as_deref())?))
                    .await
            }
            Store::Postgres(pg) => pg.documents(connector, kind).await,
        }
    }

    /// Ranked keyword search; tenant and ACL filters apply before the limit.
    pub async fn search(&self, q: SearchQuery) -> anyhow::Result<Vec<Hit>> {
        match self {
            Store::Sqlite(db) => {
                db.read(move |conn| Ok(documents::search(conn, &q.as_query())?))
                    .await
            }
            Store::Postgres(pg) => pg.search(&q).await,
        }
    }

    // ---- sync state ----

    pub async fn sync_state(
        &self,
        connector: &str,
        stream: &str,
    ) -> anyhow::Result<Option<SyncState>> {
        match self {
            Store::Sqlite(db) => {
                let (c, s) = (connector.to_string(), stream.to_string());
                db.read(move |conn| Ok(sync_state::get(conn, &c, &s)?))
                    .await
            }
            Store::Postgres(pg) => pg.sync_state(connector, stream).await,
        }
    }

    pub async fn sync_states(&self) -> anyhow::Result<Vec<SyncState>> {
        match self {
            Store::Sqlite(db) => db.read(|conn| Ok(sync_state::all(conn)?)).await,
            Store::Postgres(pg) => pg.sync_states().await,
        }
    }

    pub async fn record_sync_error(
        &self,
        connector: &str,
        stream: &str,
        error: &str,
    ) -> anyhow::Result<()> {
        let now = super::now_rfc3339();
        match self {
            Store::Sqlite(db) => {
                let (c, s, e) = (connector.to_string(), stream.to_string(), error.to_string());
                db.run(move |conn| write(conn, |tx| sync_state::record_error(tx, &c, &s, &e, &now)))
                    .await
            }
            Store::Postgres(pg) => pg.record_sync_error(connector, stream, error, &now).await,
        }
    }

    /// A rate-limited run: the stream resumes after `resume_after` (RFC 3339).
    pub async fn record_rate_limited(
        &self,
        connector: &str,
        stream: &str,
        resume_after: &str,
    ) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let (c, s, r) = (
                    connector.to_string(),
                    stream.to_string(),
                    resume_after.to_string(),
                );
                db.run(move |conn| {
                    write(conn, |tx| sync_state::record_rate_limited(tx, &c, &s, &r))
                })
                .await
            }
            Store::Postgres(pg) => {
                pg.record_rate_limited(connector, stream, resume_after)
                    .await
            }
        }
    }

    /// Forgets a stream's cursor (the next run starts over).
    pub async fn reset_cursor(&self, connector: &str, stream: &str) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let (c, s) = (connector.to_string(), stream.to_string());
                db.run(move |conn| write(conn, |tx| sync_state::reset_cursor(tx, &c, &s)))
                    .await
            }
            Store::Postgres(pg) => pg.reset_cursor(connector, stream).await,
        }
    }

    // ---- sync job leases ----

    /// Takes a job's lease when it is free or expired; None while another daemon holds it.
    pub async fn acquire_lease(
        &self,
        connector: &str,
        stream: &str,
        owner: &str,
        ttl: Duration,
    ) -> anyhow::Result<Option<Lease>> {
        match self {
            Store::Sqlite(db) => {
                let (c, s, o) = (connector.to_string(), stream.to_string(), owner.to_string());
                db.run(move |conn| Ok(leases::acquire(conn, &c, &s, &o, ttl)?))
                    .await
            }
            Store::Postgres(pg) => pg.acquire_lease(connector, stream, owner, ttl).await,
        }
    }

    /// Takes the job's lease for `owner`: when it is free or expired, when its holder is a
    /// process of this machine that no longer exists, or when the holder is `owner` itself (a
    /// run of this process that was cancelled before it released the lease: callers hold the
    /// process's own one-run-per-stream lock, so no run of theirs is live). Err(holder) while
    /// another live owner holds it.
    pub async fn claim_lease(
        &self,
        connector: &str,
        stream: &str,
        owner: &str,
        ttl: Duration,
    ) -> anyhow::Result<Result<Lease, String>> {
        if let Some(l) = self.acquire_lease(connector, stream, owner, ttl).await? {
            return Ok(Ok(l));
        }
        let holder = self
            .leases()
            .await?
            .into_iter()
            .find(|l| l.connector == connector && l.stream == stream)
            .and_then(|l| l.owner);
        let Some(holder) = holder else {
            // Released in between: try once more.
            return Ok(self
                .acquire_lease(connector, stream, owner, ttl)
                .await?
                .ok_or_else(|| "another process".to_string()));
        };
        if holder != owner && !leases::owner_is_dead(&holder) {
            return Ok(Err(holder));
        }
        let taken = match self {
            Store::Sqlite(db) => {
                let (c, s, d, o) = (
                    connector.to_string(),
                    stream.to_string(),
                    holder.clone(),
                    owner.to_string(),
                );
                db.run(move |conn| Ok(leases::take_over(conn, &c, &s, &d, &o, ttl)?))
                    .await?
            }
            Store::Postgres(pg) => {
                pg.take_over_lease(connector, stream, &holder, owner, ttl)
                    .await?
            }
        };
        Ok(taken.ok_or(holder))
    }

    /// Extends a held lease (the heartbeat while a page is fetched); false when it was lost.
    pub async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> anyhow::Result<bool> {
        match self {
            Store::Sqlite(db) => {
                let l = lease.clone();
                db.run(move |conn| Ok(leases::renew(conn, &l, ttl)?)).await
            }
            Store::Postgres(pg) => pg.renew_lease(lease, ttl).await,
        }
    }

    pub async fn release_lease(&self, lease: &Lease) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let l = lease.clone();
                db.run(move |conn| Ok(leases::release(conn, &l)?)).await
            }
            Store::Postgres(pg) => pg.release_lease(lease).await,
        }
    }

    pub async fn leases(&self) -> anyhow::Result<Vec<LeaseInfo>> {
        match self {
            Store::Sqlite(db) => db.read(|conn| Ok(leases::all(conn)?)).await,
            Store::Postgres(pg) => pg.leases().await,
        }
    }

    // ---- API tokens ----

    /// The principal of a live token; None for an unknown or revoked one.
    pub async fn authenticate(&self, token: &str) -> anyhow::Result<Option<Principal>> {
        if !token.starts_with(tokens::TOKEN_PREFIX) {
            return Ok(None);
        }
        match self {
            Store::Sqlite(db) => {
                // Counted before the lookup: a revocation during it keeps the answer uncached.
                let (key, revoked) = (token_cache::key(token), db.revoked_tokens());
                if let Some(p) = revoked.and_then(|n| db.tokens.get(&key, n)) {
                    return Ok(Some(p));
                }
                let t = token.to_string();
                let found = db
                    .read(move |conn| Ok(tokens::authenticate(conn, &t)?))
                    .await?;
                if let (Some(p), Some(n)) = (&found, revoked) {
                    db.tokens.put(key, p.clone(), n);
                }
                Ok(found)
            }
            Store::Postgres(pg) => pg.authenticate(token).await,
        }
    }

    /// Creates a token; returns its info and the token itself (shown once, stored hashed).
    pub async fn create_token(
        &self,
        principal: &str,
        tenant: &str,
        groups: &[String],
        admin: bool,
        proxy: &[String],
    ) -> anyhow::Result<(TokenInfo, String)> {
        let (info, token) = tokens::prepare(principal, tenant, groups, admin, proxy)?;
        match self {
            Store::Sqlite(db) => {
                let (i, h) = (info.clone(), tokens::hash_token(&token));
                db.run(move |conn| tokens::insert(conn, &i, &h)).await?
            }
            Store::Postgres(pg) => pg.insert_token(&info, &tokens::hash_token(&token)).await?,
        }
        Ok((info, token))
    }

    pub async fn tokens(&self) -> anyhow::Result<Vec<TokenInfo>> {
        match self {
            Store::Sqlite(db) => db.read(|conn| Ok(tokens::list(conn)?)).await,
            Store::Postgres(pg) => pg.tokens().await,
        }
    }

    /// Revokes a token by id, or every live token of a principal; returns the ids revoked.
    pub async fn revoke_tokens(&self, id_or_principal: &str) -> anyhow::Result<Vec<String>> {
        match self {
            Store::Sqlite(db) => {
                let x = id_or_principal.to_string();
                let revoked = db.run(move |conn| Ok(tokens::revoke(conn, &x)?)).await;
                db.tokens.clear();
                revoked
            }
            Store::Postgres(pg) => pg.revoke_tokens(id_or_principal).await,
        }
    }
}

/// Runs `f` in an IMMEDIATE SQLite transaction and commits it (see [`commit_page_sqlite`]).
fn write(
    conn: &mut rusqlite::Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    f(&tx)?;
    tx.commit()?;
    Ok(())
}

impl Store {
    // ---- the secret vault (values sealed with the vault's master key before they leave) ----

    pub async fn set_secret(&self, v: &Vault, name: &str, value: &str) -> anyhow::Result<()> {
        let sealed = v.seal(name, value)?;
        match self {
            Store::Sqlite(db) => {
                let n = name.to_string();
                db.run(move |conn| vault::put_sealed(conn, &n, &sealed))
                    .await
            }
            Store::Postgres(pg) => pg.put_sealed(name, &sealed).await,
        }
    }

    /// The decrypted value; None when no such secret exists.
    pub async fn secret(&self, v: &Vault, name: &str) -> anyhow::Result<Option<String>> {
        let sealed = match self {
            Store::Sqlite(db) => {
                let n = name.to_string();
                db.read(move |conn| vault::sealed(conn, &n)).await?
            }
            Store::Postgres(pg) => pg.sealed(name).await?,
        };
        sealed.map(|s| v.unseal(name, &s)).transpose()
    }

    /// Names and last-update times; never values.
    pub async fn secret_names(&self) -> anyhow::Result<Vec<(String, String)>> {
        match self {
            Store::Sqlite(db) => db.read(Vault::list).await,
            Store::Postgres(pg) => pg.secret_names().await,
        }
    }

    /// Removes a secret; false when it did not exist.
    pub async fn remove_secret(&self, name: &str) -> anyhow::Result<bool> {
        match self {
            Store::Sqlite(db) => {
                let n = name.to_string();
                db.run(move |conn| Vault::remove(conn, &n)).await
            }
            Store::Postgres(pg) => pg.remove_secret(name).await,
        }
    }
}

impl Store {
    // ---- write approvals ----

    pub async fn approval(&self, id: &str) -> anyhow::Result<Option<Approval>> {
        match self {
            Store::Sqlite(db) => {
                let i = id.to_string();
                db.read(move |conn| approvals::get(conn, &i)).await
            }
            Store::Postgres(pg) => pg.approval(id).await,
        }
    }

    /// Approvals, newest first (at most 1,000), optionally of one tenant and one status.
    pub async fn approvals(
        &self,
        tenant: Option<&str>,
        status: Option<&str>,
    ) -> anyhow::Result<Vec<Approval>> {
        match self {
            Store::Sqlite(db) => {
                let (t, s) = (tenant.map(str::to_string), status.map(str::to_string));
                db.read(move |conn| approvals::list(conn, t.as_deref(), s.as_deref()))
                    .await
            }
            Store::Postgres(pg) => pg.approvals(tenant, status).await,
        }
    }

    pub async fn insert_approval(&self, a: &Approval) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let a = a.clone();
                db.run(move |conn| approvals::insert(conn, &a)).await
            }
            Store::Postgres(pg) => pg.insert_approval(a).await,
        }
    }

    /// `pending` → `to`, atomically, on whichever daemon asks first; see
    /// [`approvals::decide`].
    pub async fn decide_approval(
        &self,
        id: &str,
        to: &str,
        by: &str,
        not_by_requester: bool,
    ) -> Result<Approval, ApprovalError> {
        match self {
            Store::Sqlite(db) => {
                let (i, t, b) = (id.to_string(), to.to_string(), by.to_string());
                db.run(move |conn| Ok(approvals::decide(conn, &i, &t, &b, not_by_requester)))
                    .await?
            }
            Store::Postgres(pg) => pg.decide_approval(id, to, by, not_by_requester).await,
        }
    }

    pub async fn finish_approval(
        &self,
        id: &str,
        outcome: &Result<serde_json::Value, String>,
    ) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let (i, o) = (id.to_string(), outcome.clone());
                db.run(move |conn| approvals::finish(conn, &i, &o)).await
            }
            Store::Postgres(pg) => pg.finish_approval(id, outcome).await,
        }
    }
}

/// The SQLite page commit: one IMMEDIATE transaction (it takes the write lock up front, waiting
/// on the busy timeout; a deferred one that upgrades from read to write fails at once when
/// another connection, such as the audit writer, committed in between).
pub fn commit_page_sqlite(conn: &mut rusqlite::Connection, p: &PageCommit) -> anyhow::Result<()> {
    let now = super::now_rfc3339();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if let Some(lease) = &p.lease {
        leases::fence(&tx, lease, p.lease_ttl)?;
    }
    documents::apply_stream_page(
        &tx,
        &p.connector,
        Some(&p.stream),
        p.invocation.as_deref(),
        &p.upserts,
        &p.deletes,
        &now,
    )?;
    sync_state::commit_cursor(
        &tx,
        &p.connector,
        &p.stream,
        p.next_cursor.as_deref(),
        p.invocation.as_deref(),
        p.counts,
        &now,
    )?;
    if p.done {
        sync_state::record_success(&tx, &p.connector, &p.stream, &now)?;
    }
    if let Some(before) = &p.prune_before {
        feed::prune(&tx, before)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stores on one file stand for the daemon and `airlock tokens revoke` (or a second
    /// daemon on the same machine).
    #[tokio::test]
    async fn a_cached_token_is_refused_at_the_next_check_after_any_process_revokes_it() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Store::Sqlite(Arc::new(Db::open(dir.path()).unwrap()));
        let cli = Store::Sqlite(Arc::new(Db::open(dir.path()).unwrap()));
        let (_, alice) = cli
            .create_token("alice", "acme", &[], false, &[])
            .await
            .unwrap();
        let (_, bob) = cli
            .create_token("bob", "acme", &[], false, &[])
            .await
            .unwrap();
        for _ in 0..2 {
            let p = daemon.authenticate(&alice).await.unwrap().expect("live");
            assert_eq!(p.name, "alice");
        }
        let Store::Sqlite(db) = &daemon else {
            unreachable!()
        };
        let n = db.revoked_tokens().expect("counted");
        assert!(
            db.tokens.get(&token_cache::key(&alice), n).is_some(),
            "cached"
        );
        // Revoked by another process: refused at once, other tokens still served.
        assert_eq!(cli.revoke_tokens("alice").await.unwrap().len(), 1);
        assert!(daemon.authenticate(&alice).await.unwrap().is_none());
        assert!(daemon.authenticate(&bob).await.unwrap().is_some());
        // Revoked by this process: its cache is cleared with it.
        assert!(daemon.authenticate(&bob).await.unwrap().is_some());
        assert_eq!(daemon.revoke_tokens("bob").await.unwrap().len(), 1);
        assert!(daemon.authenticate(&bob).await.unwrap().is_none());
        assert!(daemon.authenticate("alk_unknown").await.unwrap().is_none());
    }
}
