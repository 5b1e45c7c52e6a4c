//! The push subscriptions Airlock keeps alive at upstreams (Graph change notifications), one per
//! connector: which subscription it made, for what, and until when, so a restart renews that
//! one instead of leaving it behind and making another.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// One kept subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub connector: String,
    /// The upstream's subscription id.
    pub id: String,
    pub resource: String,
    pub notification_url: String,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339: when it was made or last renewed.
    pub renewed_at: String,
}

pub fn get(conn: &Connection, connector: &str) -> rusqlite::Result<Option<Kept>> {
    conn.query_row(
        "SELECT connector, id, resource, notification_url, expires_at, renewed_at
         FROM hook_subscriptions WHERE connector = ?1",
        [connector],
        |r| {
            Ok(Kept {
                connector: r.get(0)?,
                id: r.get(1)?,
                resource: r.get(2)?,
                notification_url: r.get(3)?,
                expires_at: r.get(4)?,
                renewed_at: r.get(5)?,
            })
        },
    )
    .optional()
}

pub fn put(conn: &Connection, k: &Kept) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO hook_subscriptions (connector, id, resource, notification_url, expires_at, renewed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(connector) DO UPDATE SET id = ?2, resource = ?3, notification_url = ?4,
             expires_at = ?5, renewed_at = ?6",
        params![k.connector, k.id, k.resource, k.notification_url, k.expires_at, k.renewed_at],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, connector: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM hook_subscriptions WHERE connector = ?1",
        [connector],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_subscription_is_replaced_not_duplicated() {
        let dir = tempfile::tempdir().expect("dir");
        let conn = crate::store::open(dir.path()).expect("store");
        assert_eq!(get(&conn, "msgraph").expect("get"), None);
        let mut k = Kept {
            connector: "msgraph".into(),
            id: "sub-1".into(),
            resource: "users".into(),
            notification_url: "https://a.example/v1/hooks/msgraph".into(),
            expires_at: "2026-12-06T00:00:00Z".into(),
            renewed_at: "2026-12-04T00:00:00Z".into(),
        };
        put(&conn, &k).expect("put");
        k.expires_at = "2026-12-07T00:00:00Z".into();
        put(&conn, &k).expect("renew");
        assert_eq!(get(&conn, "msgraph").expect("get"), Some(k));
        delete(&conn, "msgraph").expect("delete");
        assert_eq!(get(&conn, "msgraph").expect("get"), None);
    }
}
