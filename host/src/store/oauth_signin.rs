//! What Airlock's own OAuth authorization server keeps between requests besides grants
//! (`oauth_grants.rs`), in the store rather than in one daemon's memory or data directory, so
//! several daemons behind one address act as one authorization server:
//!
//! - **the access-token signing key**, sealed with the vault's master key (which every daemon
//!   of an installation shares already), made once: the first daemon's offer wins and the others
//!   read it back;
//! - **sign-ins waiting for the person** (between the sign-in page and its form), so the form
//!   may be posted to another daemon than the one that showed the page, and a restart loses
//!   none. Only digests of the request id and of the CSRF token are kept.

use rusqlite::{Connection, OptionalExtension, params};

use super::oauth_grants::now_ms;
use super::tokens::hash_token;
use super::vault::Sealed;

/// The name the signing key is sealed under (bound as associated data: a sealed secret moved
/// here does not decrypt as the key).
pub const SIGNING_KEY_NAME: &str = "airlock.oauth-signing-key";

/// The sealed signing key, if one was made.
pub fn signing_key(conn: &Connection) -> rusqlite::Result<Option<Sealed>> {
    conn.query_row(
        "SELECT nonce, ciphertext FROM oauth_signing_key WHERE id = 1",
        [],
        |r| {
            Ok(Sealed {
                nonce: r.get(0)?,
                ciphertext: r.get(1)?,
            })
        },
    )
    .optional()
}

/// Stores `key` unless a key is stored already (then the stored one stays).
pub fn offer_signing_key(conn: &Connection, key: &Sealed) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO oauth_signing_key (id, nonce, ciphertext, created_at)
         VALUES (1, ?1, ?2, ?3)",
        params![key.nonce, key.ciphertext, super::now_rfc3339()],
    )?;
    Ok(())
}

/// A sign-in waiting for the person, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// What the page was asked for (the authorization server's own JSON; opaque here).
    pub request: String,
    pub csrf_hash: String,
    pub tries: u32,
}

/// Records a waiting sign-in under `id` (stored hashed) for `ttl_ms`, unless `max` are waiting
/// (expired ones are dropped first); false then.
pub fn put_pending(
    conn: &mut Connection,
    id: &str,
    request: &str,
    csrf: &str,
    ttl_ms: i64,
    max: i64,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction()?;
    let now = now_ms();
    tx.execute("DELETE FROM oauth_pending WHERE expires_ms <= ?1", [now])?;
    let n: i64 = tx.query_row("SELECT COUNT(*) FROM oauth_pending", [], |r| r.get(0))?;
    if n >= max {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO oauth_pending (id_hash, request, csrf_hash, expires_ms, tries)
         VALUES (?1, ?2, ?3, ?4, 0)",
        params![hash_token(id), request, hash_token(csrf), now + ttl_ms],
    )?;
    tx.commit()?;
    Ok(true)
}

/// The waiting sign-in `id`; None when unknown or expired.
pub fn pending(conn: &Connection, id: &str) -> rusqlite::Result<Option<Pending>> {
    conn.query_row(
        "SELECT request, csrf_hash, tries FROM oauth_pending
         WHERE id_hash = ?1 AND expires_ms > ?2",
        params![hash_token(id), now_ms()],
        |r| {
            Ok(Pending {
                request: r.get(0)?,
                csrf_hash: r.get(1)?,
                tries: r.get(2)?,
            })
        },
    )
    .optional()
}

/// Counts one more wrong token for `id`; the count after it (None when the sign-in is gone).
pub fn add_try(conn: &Connection, id: &str) -> rusqlite::Result<Option<u32>> {
    conn.query_row(
        "UPDATE oauth_pending SET tries = tries + 1 WHERE id_hash = ?1 RETURNING tries",
        [hash_token(id)],
        |r| r.get(0),
    )
    .optional()
}

/// Ends the waiting sign-in `id`; true for the one caller that ended it (so a form posted twice,
/// to one daemon or two, signs in once).
pub fn take_pending(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "DELETE FROM oauth_pending WHERE id_hash = ?1 AND expires_ms > ?2",
        params![hash_token(id), now_ms()],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(dir.path()).unwrap();
        (dir, conn)
    }

    #[test]
    fn the_first_offered_signing_key_stays() {
        let (_d, conn) = db();
        assert!(signing_key(&conn).unwrap().is_none());
        let a = Sealed {
            nonce: vec![1; 12],
            ciphertext: vec![2; 40],
        };
        let b = Sealed {
            nonce: vec![3; 12],
            ciphertext: vec![4; 40],
        };
        offer_signing_key(&conn, &a).unwrap();
        offer_signing_key(&conn, &b).unwrap();
        assert!(
            signing_key(&conn).unwrap() == Some(a),
            "the first offer stays"
        );
    }

    #[test]
    fn a_waiting_sign_in_is_taken_once_counts_tries_and_expires() {
        let (_d, mut conn) = db();
        assert!(put_pending(&mut conn, "req1", "{}", "csrf1", 60_000, 10).unwrap());
        let p = pending(&conn, "req1").unwrap().unwrap();
        assert_eq!(p.csrf_hash, hash_token("csrf1"));
        assert_eq!(p.tries, 0);
        assert_eq!(add_try(&conn, "req1").unwrap(), Some(1));
        assert_eq!(add_try(&conn, "req1").unwrap(), Some(2));
        assert!(take_pending(&conn, "req1").unwrap());
        assert!(!take_pending(&conn, "req1").unwrap(), "taken once");
        assert_eq!(pending(&conn, "req1").unwrap(), None);
        // Expired: invisible, and dropped to make room.
        assert!(put_pending(&mut conn, "old", "{}", "c", -1, 10).unwrap());
        assert_eq!(pending(&conn, "old").unwrap(), None);
        assert!(!take_pending(&conn, "old").unwrap());
        assert!(put_pending(&mut conn, "a", "{}", "c", 60_000, 1).unwrap());
        assert!(
            !put_pending(&mut conn, "b", "{}", "c", 60_000, 1).unwrap(),
            "full"
        );
    }
}
