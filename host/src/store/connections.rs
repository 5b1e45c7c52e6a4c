//! People's connections to upstreams (delegated OAuth, `capabilities::delegated`): per
//! (connector, principal) the person's upstream tokens, sealed by the vault's key before they
//! reach the store (so this module only ever sees ciphertext), with the access token's expiry and
//! a version that makes a refresh-token rotation a compare-and-swap; and the pending connects,
//! each a single-use `state` (kept as its SHA-256) bound to the principal that started it, with
//! the sealed PKCE verifier. SQLite here, PostgreSQL in `pg/connections.rs`.

use rusqlite::{Connection as Conn, OptionalExtension, params};

/// One person's connection, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConnection {
    pub connector: String,
    pub principal: String,
    /// The vault's nonce and ciphertext of the tokens (never the values).
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// When the access token expires (Unix ms); None: the upstream did not say.
    pub expires_ms: Option<i64>,
    /// The scopes the upstream granted, space-separated.
    pub scopes: String,
    /// Bumped by every write: a rotation replaces only the version it read.
    pub version: i64,
    pub connected_at: String,
    pub updated_at: String,
}

/// A connect in progress, until its callback comes back (or it expires).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConnect {
    pub connector: String,
    pub principal: String,
    /// The sealed PKCE code verifier.
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub expires_ms: i64,
}

pub(crate) fn now_ms() -> i64 {
    super::oauth_grants::now_ms()
}

pub fn put_pending(c: &Conn, state_hash: &str, p: &PendingConnect) -> anyhow::Result<()> {
    // Old, never-finished connects go with each new one.
    c.execute(
        "DELETE FROM connection_states WHERE expires_ms < ?1",
        [now_ms()],
    )?;
    c.execute(
        "INSERT INTO connection_states (hash, connector, principal, nonce, ciphertext, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            state_hash,
            p.connector,
            p.principal,
            p.nonce,
            p.ciphertext,
            p.expires_ms
        ],
    )?;
    Ok(())
}

/// Takes a pending connect once: the row goes whether or not it is still fresh.
pub fn take_pending(c: &Conn, state_hash: &str) -> anyhow::Result<Option<PendingConnect>> {
    let p = c
        .query_row(
            "DELETE FROM connection_states WHERE hash = ?1
             RETURNING connector, principal, nonce, ciphertext, expires_ms",
            [state_hash],
            |r| {
                Ok(PendingConnect {
                    connector: r.get(0)?,
                    principal: r.get(1)?,
                    nonce: r.get(2)?,
                    ciphertext: r.get(3)?,
                    expires_ms: r.get(4)?,
                })
            },
        )
        .optional()?;
    Ok(p.filter(|p| p.expires_ms >= now_ms()))
}

const COLUMNS: &str = "connector, principal, nonce, ciphertext, expires_ms, scopes, version, connected_at, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserConnection> {
    Ok(UserConnection {
        connector: r.get(0)?,
        principal: r.get(1)?,
        nonce: r.get(2)?,
        ciphertext: r.get(3)?,
        expires_ms: r.get(4)?,
        scopes: r.get(5)?,
        version: r.get(6)?,
        connected_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

/// Stores a fresh connection (a reconnect replaces the old one).
pub fn put(c: &Conn, u: &UserConnection) -> anyhow::Result<()> {
    let now = super::now_rfc3339();
    c.execute(
        "INSERT INTO user_connections
           (connector, principal, nonce, ciphertext, expires_ms, scopes, version, connected_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)
         ON CONFLICT (connector, principal) DO UPDATE SET nonce = ?3, ciphertext = ?4,
           expires_ms = ?5, scopes = ?6, version = user_connections.version + 1,
           connected_at = ?7, updated_at = ?7",
        params![
            u.connector,
            u.principal,
            u.nonce,
            u.ciphertext,
            u.expires_ms,
            u.scopes,
            now
        ],
    )?;
    Ok(())
}

pub fn get(c: &Conn, connector: &str, principal: &str) -> anyhow::Result<Option<UserConnection>> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM user_connections WHERE connector = ?1 AND principal = ?2"),
        [connector, principal],
        row,
    )
    .optional()?)
}

pub fn of_principal(c: &Conn, principal: &str) -> anyhow::Result<Vec<UserConnection>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM user_connections WHERE principal = ?1 ORDER BY connector"
    ))?;
    let rows = st.query_map([principal], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces the tokens after a refresh, only if the row is still at `version` (a rotation
/// another task or daemon made first wins; so does a disconnect). Whether it was replaced.
pub fn rotate(
    c: &Conn,
    connector: &str,
    principal: &str,
    version: i64,
    sealed: (&[u8], &[u8]),
    expires_ms: Option<i64>,
) -> anyhow::Result<bool> {
    let n = c.execute(
        "UPDATE user_connections SET nonce = ?4, ciphertext = ?5, expires_ms = ?6,
           version = version + 1, updated_at = ?7
         WHERE connector = ?1 AND principal = ?2 AND version = ?3",
        params![
            connector,
            principal,
            version,
            sealed.0,
            sealed.1,
            expires_ms,
            super::now_rfc3339()
        ],
    )?;
    Ok(n == 1)
}

/// Removes a connection; returns it (its refresh token is revoked upstream after).
pub fn remove(
    c: &Conn,
    connector: &str,
    principal: &str,
) -> anyhow::Result<Option<UserConnection>> {
    Ok(c.query_row(
        &format!(
            "DELETE FROM user_connections WHERE connector = ?1 AND principal = ?2 RETURNING {COLUMNS}"
        ),
        [connector, principal],
        row,
    )
    .optional()?)
}
