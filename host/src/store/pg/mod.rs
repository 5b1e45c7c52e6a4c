//! The PostgreSQL backend: the store shared by several daemons (`[store] url =
//! "postgres://…"`). A pool of async connections (tokio-postgres + deadpool), numbered
//! migrations applied under an advisory lock so daemons starting together migrate once, and one
//! module per area mirroring the SQLite ones beside it. Search uses PostgreSQL's own full-text
//! search (tsvector, GIN, ts_rank); see `documents.rs` for how it matches the SQLite index.

pub mod approvals;
pub mod audit;
pub mod changes;
pub mod commit_notify;
pub mod connections;
pub mod copy;
pub mod documents;
pub mod embeddings;
pub mod hook_subscriptions;
pub mod leases;
pub mod oauth_grants;
pub mod oauth_signin;
pub mod rate_shares;
pub mod sync_state;
pub mod tls;
pub mod tokens;
pub mod vault;
pub mod webhooks;

use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Schema migrations, applied in order; the index + 1 is the schema version. Each area's
/// tables arrive with the slice that ports it; the SQLite numbering is independent.
const MIGRATIONS: &[&str] = &[
    // 1: documents with their full-text index, the change feed, per-stream sync state, sync
    // job leases, API tokens. Times the API shows are RFC 3339 text as in SQLite, so both
    // backends answer alike; lease expiry uses the database's clock (one clock for every daemon).
    r#"
    CREATE TABLE documents (
        rid          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        connector    TEXT NOT NULL,
        kind         TEXT NOT NULL,
        id           TEXT NOT NULL,
        title        TEXT NOT NULL,
        body         TEXT NOT NULL,
        url          TEXT,
        updated_at   TEXT NOT NULL,
        metadata     TEXT NOT NULL,
        acl          JSONB NOT NULL,
        synced_at    TEXT NOT NULL,
        stream       TEXT,
        invocation   TEXT,
        content_hash TEXT,
        -- Words split on every non-alphanumeric character, as SQLite's unicode61 tokenizer
        -- does, so both backends find the same documents; titles weigh more (A) than bodies.
        tsv tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('simple', regexp_replace(title, '[^[:alnum:]]+', ' ', 'g')), 'A') ||
            setweight(to_tsvector('simple', regexp_replace(body, '[^[:alnum:]]+', ' ', 'g')), 'B')
        ) STORED,
        UNIQUE (connector, kind, id)
    );
    CREATE INDEX documents_tsv ON documents USING GIN (tsv);
    CREATE INDEX documents_stream ON documents (connector, stream);
    CREATE TABLE changes (
        seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        connector    TEXT NOT NULL,
        stream       TEXT,
        kind         TEXT NOT NULL,
        id           TEXT NOT NULL,
        op           TEXT NOT NULL,
        acl          JSONB NOT NULL DEFAULT '[]',
        committed_at TEXT NOT NULL
    );
    CREATE INDEX changes_committed ON changes (committed_at);
    CREATE TABLE changes_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pruned_through BIGINT NOT NULL
    );
    -- How far each webhook's fan-out has read the feed: pruning keeps what it has not read.
    CREATE TABLE webhook_cursors (webhook TEXT PRIMARY KEY, cursor BIGINT NOT NULL);
    CREATE TABLE sync_state (
        connector          TEXT NOT NULL,
        stream             TEXT NOT NULL,
        cursor             TEXT,
        cursor_updated_at  TEXT,
        cursor_invocation  TEXT,
        last_success_at    TEXT,
        last_error         TEXT,
        last_error_at      TEXT,
        resume_after       TEXT,
        last_run_upserts   BIGINT NOT NULL DEFAULT 0,
        last_run_deletes   BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (connector, stream)
    );
    CREATE TABLE sync_jobs (
        connector   TEXT NOT NULL,
        stream      TEXT NOT NULL,
        owner       TEXT,
        fence       BIGINT NOT NULL DEFAULT 0,
        lease_until TIMESTAMPTZ,
        PRIMARY KEY (connector, stream)
    );
    CREATE TABLE api_tokens (
        id          TEXT PRIMARY KEY,
        hash        TEXT NOT NULL UNIQUE,
        principal   TEXT NOT NULL,
        tenant      TEXT NOT NULL,
        groups      JSONB NOT NULL,
        admin       BOOLEAN NOT NULL,
        proxy       JSONB NOT NULL DEFAULT '[]',
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    CREATE INDEX api_tokens_principal ON api_tokens (principal);
    "#,
    // 2: the secret vault (sealed values only; see store/vault.rs).
    r#"
    CREATE TABLE secrets (
        name        TEXT PRIMARY KEY,
        nonce       BYTEA NOT NULL,
        ciphertext  BYTEA NOT NULL,
        updated_at  TEXT NOT NULL
    );
    "#,
    // 3: write approvals (see store/approvals.rs).
    r#"
    CREATE TABLE approvals (
        id            TEXT PRIMARY KEY,
        created_at    TEXT NOT NULL,
        requested_by  TEXT NOT NULL,
        tenant        TEXT NOT NULL,
        connector     TEXT NOT NULL,
        action        TEXT NOT NULL,
        input         TEXT NOT NULL,
        status        TEXT NOT NULL,
        decided_by    TEXT,
        decided_at    TEXT,
        result        TEXT,
        error         TEXT
    );
    CREATE INDEX approvals_status ON approvals (tenant, status);
    "#,
    // 4: the audit log, one hash chain per writing process (see pg/audit.rs for why and for
    // the order readers merge the chains in). Same columns and hashes as SQLite's `audit`.
    r#"
    CREATE TABLE audit (
        chain       TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        ts          TEXT NOT NULL,
        connector   TEXT NOT NULL,
        invocation  TEXT NOT NULL,
        event       TEXT NOT NULL,
        decision    TEXT NOT NULL,
        reason      TEXT NOT NULL,
        method      TEXT,
        scheme      TEXT,
        host        TEXT,
        port        INTEGER,
        path        TEXT,
        status      INTEGER,
        latency_ms  DOUBLE PRECISION,
        bytes       BIGINT,
        prev_hash   TEXT NOT NULL,
        hash        TEXT NOT NULL,
        principal   TEXT,
        PRIMARY KEY (chain, seq)
    );
    CREATE INDEX audit_merged ON audit (ts, chain, seq);
    CREATE INDEX audit_connector ON audit (connector, ts);
    CREATE INDEX audit_principal ON audit (principal, ts);
    CREATE INDEX audit_invoked ON audit (invocation) WHERE event = 'invoke';
    CREATE TABLE audit_heads (
        chain       TEXT PRIMARY KEY,
        seq         BIGINT NOT NULL,
        hash        TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    "#,
    // 5 (after the audit migration): the webhook outbox's deliveries (its cursors came with 1),
    // kept push subscriptions, and Airlock's own OAuth authorization server (store/webhooks.rs,
    // store/hook_subscriptions.rs, store/oauth_grants.rs).
    r#"
    CREATE TABLE webhook_deliveries (
        id              TEXT PRIMARY KEY,
        webhook         TEXT NOT NULL,
        connector       TEXT NOT NULL,
        change_seq      BIGINT NOT NULL,
        payload         TEXT NOT NULL,
        status          TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms BIGINT NOT NULL,
        last_status     INTEGER,
        last_error      TEXT,
        created_at      TEXT NOT NULL,
        delivered_at    TEXT
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_ms);
    CREATE INDEX webhook_deliveries_of ON webhook_deliveries (webhook, change_seq);
    CREATE TABLE hook_subscriptions (
        connector        TEXT PRIMARY KEY,
        id               TEXT NOT NULL,
        resource         TEXT NOT NULL,
        notification_url TEXT NOT NULL,
        expires_at       TEXT NOT NULL,
        renewed_at       TEXT NOT NULL
    );
    CREATE TABLE oauth_clients (
        id            TEXT PRIMARY KEY,
        name          TEXT,
        redirect_uris TEXT NOT NULL,
        created_at    TEXT NOT NULL
    );
    CREATE TABLE oauth_grants (
        id           TEXT PRIMARY KEY,
        client_id    TEXT NOT NULL,
        api_token_id TEXT NOT NULL,
        scopes       TEXT NOT NULL,
        resource     TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        revoked_at   TEXT,
        revoked_why  TEXT
    );
    CREATE INDEX oauth_grants_of_token ON oauth_grants (api_token_id);
    CREATE TABLE oauth_codes (
        hash           TEXT PRIMARY KEY,
        grant_id       TEXT NOT NULL,
        redirect_uri   TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        expires_ms     BIGINT NOT NULL,
        used_at        TEXT
    );
    CREATE TABLE oauth_refresh_tokens (
        hash       TEXT PRIMARY KEY,
        grant_id   TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        used_at    TEXT
    );
    CREATE INDEX oauth_refresh_tokens_of ON oauth_refresh_tokens (grant_id);
    "#,
    // 6: shared rate budgets: which daemons hold each grant (each takes an equal share of its
    // rate), and the pause an upstream's 429 put on a grant (see store/pg/rate_shares.rs).
    r#"
    CREATE TABLE rate_shares (
        grant_key   TEXT NOT NULL,
        owner       TEXT NOT NULL,
        seen_until  TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (grant_key, owner)
    );
    CREATE TABLE grant_pauses (
        grant_key     TEXT PRIMARY KEY,
        paused_until  TIMESTAMPTZ NOT NULL
    );
    "#,
    // 7: the own authorization server's signing key (sealed) and waiting sign-ins (see
    // store/oauth_signin.rs), shared by every daemon of the installation.
    r#"
    CREATE TABLE oauth_signing_key (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        nonce      BYTEA NOT NULL,
        ciphertext BYTEA NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE oauth_pending (
        id_hash    TEXT PRIMARY KEY,
        request    TEXT NOT NULL,
        csrf_hash  TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        tries      INTEGER NOT NULL DEFAULT 0
    );
    "#,
    // 8: semantic search (store/pg/embeddings.rs): each document's chunks with their vectors
    // (little-endian f32 bytes, as in SQLite), and the content hash and model they were made
    // from; both cascade from their document.
    r#"
    CREATE TABLE chunks (
        connector TEXT NOT NULL,
        kind      TEXT NOT NULL,
        id        TEXT NOT NULL,
        seq       INTEGER NOT NULL,
        model     TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        text      TEXT NOT NULL,
        vector    BYTEA NOT NULL,
        PRIMARY KEY (connector, kind, id, seq),
        FOREIGN KEY (connector, kind, id) REFERENCES documents (connector, kind, id) ON DELETE CASCADE
    );
    CREATE INDEX chunks_by_text ON chunks (model, text_hash);
    CREATE TABLE chunked_documents (
        connector TEXT NOT NULL,
        kind      TEXT NOT NULL,
        id        TEXT NOT NULL,
        model     TEXT NOT NULL,
        doc_hash  TEXT NOT NULL,
        PRIMARY KEY (connector, kind, id),
        FOREIGN KEY (connector, kind, id) REFERENCES documents (connector, kind, id) ON DELETE CASCADE
    );
    "#,
    // 9: people's connections to upstreams (delegated OAuth, store/pg/connections.rs).
    r#"
    CREATE TABLE user_connections (
        connector    TEXT NOT NULL,
        principal    TEXT NOT NULL,
        nonce        BYTEA NOT NULL,
        ciphertext   BYTEA NOT NULL,
        expires_ms   BIGINT,
        scopes       TEXT NOT NULL,
        version      BIGINT NOT NULL,
        connected_at TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        PRIMARY KEY (connector, principal)
    );
    CREATE INDEX user_connections_of ON user_connections (principal);
    CREATE TABLE connection_states (
        hash       TEXT PRIMARY KEY,
        connector  TEXT NOT NULL,
        principal  TEXT NOT NULL,
        nonce      BYTEA NOT NULL,
        ciphertext BYTEA NOT NULL,
        expires_ms BIGINT NOT NULL
    );
    "#,
    // 10: grants of people signed in through the company's OpenID Connect provider (see the
    // SQLite migration 18).
    r#"
    ALTER TABLE oauth_grants ADD COLUMN person TEXT;
    ALTER TABLE oauth_grants ADD COLUMN person_tenant TEXT;
    ALTER TABLE oauth_grants ADD COLUMN person_groups JSONB;
    "#,
    // 11: signed checkpoints of the audit chains, kept beside them so that `audit verify` on any
    // machine checks every daemon's (store/pg/audit.rs; SQLite keeps its one chain's in a file).
    r#"
    CREATE TABLE audit_checkpoints (
        chain      TEXT NOT NULL,
        seq        BIGINT NOT NULL,
        hash       TEXT NOT NULL,
        time       TEXT NOT NULL,
        signature  TEXT NOT NULL,
        key_id     TEXT NOT NULL,
        PRIMARY KEY (chain, seq, key_id)
    );
    "#,
];

/// Serialises migrations of daemons that start together (any constant both sides agree on).
const MIGRATION_LOCK: i64 = 0x6169726c6f636b; // "airlock"

/// How many connections one daemon keeps at most.
const POOL_SIZE: usize = 16;

/// A pool of connections to one PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    /// The parsed URL, for connections of their own outside the pool (the audit writer's, the
    /// change-feed listener's).
    config: tokio_postgres::Config,
    /// TLS as the URL's `sslmode` / `sslrootcert` ask (see `tls.rs`), for those connections too.
    tls: MakeRustlsConnect,
    /// The URL without its password, for messages.
    shown: String,
    /// Woken when any daemon commits to the change feed (see `commit_notify.rs`).
    committed: std::sync::Arc<tokio::sync::Notify>,
    listener: tokio::sync::OnceCell<commit_notify::OwnedTask>,
}

impl PgStore {
    /// Connects (lazily: the pool opens connections on demand) and applies pending migrations.
    pub async fn open(url: &str) -> anyhow::Result<PgStore> {
        let store = PgStore::connect(url)?;
        store.migrate().await?;
        Ok(store)
    }

    /// The pool alone, without migrating (`airlock store migrate` migrates explicitly).
    pub fn connect(url: &str) -> anyhow::Result<PgStore> {
        let shown = redact_url(url);
        let (url, settings) =
            tls::split_url(url).map_err(|e| anyhow::anyhow!("store url {shown}: {e}"))?;
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| anyhow::anyhow!("store url {shown} is not a PostgreSQL URL: {e}"))?;
        let tls = settings
            .connector()
            .map_err(|e| anyhow::anyhow!("store url {shown}: {e}"))?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(30)))
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .with_context(|| format!("cannot set up a connection pool for {shown}"))?;
        Ok(PgStore {
            pool,
            shown,
            config,
            tls,
            committed: Default::default(),
            listener: tokio::sync::OnceCell::new(),
        })
    }

    /// A connection from the pool, with a message naming the database when none can be had.
    pub async fn client(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| self.unreachable(&e))
    }

    /// "cannot reach PostgreSQL at HOST: why", a TLS failure said as such (the URL shown
    /// without its password; no error here carries it).
    pub(crate) fn unreachable(&self, e: &(dyn std::error::Error + 'static)) -> anyhow::Error {
        match tls::explain(e) {
            Some(why) => anyhow::anyhow!("cannot reach PostgreSQL at {}: {why}", self.shown),
            None => anyhow::anyhow!("cannot reach PostgreSQL at {}: {e}", self.shown),
        }
    }

    /// Applies pending migrations; returns the schema version now in place.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .await?;
        let current: i32 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await?
            .get(0);
        let current = current as usize;
        if current > MIGRATIONS.len() {
            anyhow::bail!(
                "PostgreSQL schema version {current} at {} is newer than this airlock supports ({}); upgrade airlock",
                self.shown,
                MIGRATIONS.len()
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            tx.batch_execute(sql)
                .await
                .with_context(|| format!("migration {} failed", i + 1))?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(MIGRATIONS.len())
    }

    /// The schema version the database has (0: never migrated).
    pub async fn version(&self) -> anyhow::Result<usize> {
        let client = self.client().await?;
        let exists: bool = client
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
            .await?
            .get(0);
        if !exists {
            return Ok(0);
        }
        let row = client
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await?;
        Ok(row.get::<_, i32>(0) as usize)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// The connection settings (they hold the password: never show them).
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector for connections outside the pool.
    pub(crate) fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`: the store URL may carry a
/// password, which no message may show.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            // A password may also come as a query parameter (`?password=`).
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        // Not a URL (a key=value connection string): show nothing of it.
        Err(_) => "(the configured PostgreSQL connection string)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_store_urls_are_never_shown() {
        let shown =
            redact_url("postgres://airlock:hunter2@db.example:5432/airlock?sslmode=disable");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.example:5432/airlock"), "{shown}");
        let shown = redact_url("postgres://db/airlock?password=hunter2&user=a");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!redact_url("host=db password=hunter2").contains("hunter2"));
    }
}
