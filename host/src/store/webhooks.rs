//! The webhook outbox. Committed changes (`store/changes.rs`, written in each page's
//! transaction) are fanned out to every webhook whose filters they match: the delivery rows and
//! the webhook's cursor move in one transaction, so a crash between two fan-outs repeats
//! nothing and skips nothing. Each delivery then lives on its own: `pending` (with the time of
//! its next attempt), `delivered`, or `dead` after its last attempt; a dead one may be retried
//! by hand. The change feed is not pruned past a webhook's cursor.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::changes::{self, Follow, Page};
use serde::Serialize;

/// What a webhook receives: its tenant's connectors, narrowed by connector and kind.
pub struct Filter<'a> {
    pub webhook: &'a str,
    /// Connectors whose changes it gets (already narrowed to the tenant).
    pub connectors: &'a [String],
    /// Document kinds it gets (empty: all).
    pub kinds: &'a [String],
}

/// One delivery, as the worker sends it and the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Delivery {
    /// The message id (`webhook-id`), the same on every attempt.
    pub id: String,
    pub webhook: String,
    pub connector: String,
    pub change_seq: i64,
    /// The JSON body sent.
    #[serde(skip)]
    pub payload: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    pub attempts: u32,
    /// When the next attempt is due (Unix ms), for pending ones.
    pub next_attempt_ms: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

const COLUMNS: &str = "id, webhook, connector, change_seq, payload, status, attempts, \
                       next_attempt_ms, last_status, last_error, created_at, delivered_at";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        webhook: r.get(1)?,
        connector: r.get(2)?,
        change_seq: r.get(3)?,
        payload: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        next_attempt_ms: r.get(7)?,
        last_status: r.get(8)?,
        last_error: r.get(9)?,
        created_at: r.get(10)?,
        delivered_at: r.get(11)?,
    })
}

/// Makes the cursors match the configured webhooks: a new one starts at the newest change (it
/// gets what is committed from now on), a removed one's cursor goes (so it no longer holds the
/// feed back); its deliveries stay for the record.
pub fn reconcile(conn: &mut Connection, webhooks: &[String]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let last = changes::last_seq(&tx)?;
    for w in webhooks {
        tx.execute(
            "INSERT INTO webhook_cursors (webhook, cursor) VALUES (?1, ?2)
             ON CONFLICT (webhook) DO NOTHING",
            params![w, last],
        )?;
    }
    let names = serde_json::to_string(webhooks).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "DELETE FROM webhook_cursors WHERE webhook NOT IN (SELECT value FROM json_each(?1))",
        [names],
    )?;
    tx.commit()
}

/// Turns up to `limit` changes after the webhook's cursor into deliveries (those that match its
/// filter), due at `now_ms`, and moves the cursor past every change looked at. Returns how many
/// deliveries were created.
pub fn fan_out(
    conn: &mut Connection,
    f: &Filter<'_>,
    limit: usize,
    now_ms: i64,
    now: &str,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Some(cursor) = cursor(&tx, f.webhook)? else {
        return Ok(0);
    };
    let everyone = |_: &str, _: &[String]| true;
    let mut follow = Follow {
        after: cursor,
        within: Some(f.connectors),
        connector: None,
        kind: None,
        limit,
        visible: &everyone,
    };
    let page = match changes::read(&tx, &follow)? {
        Ok(page) => page,
        // Pruned before this webhook held it back (it was added after): start at what is kept.
        Err(first) => {
            follow.after = first - 1;
            changes::read(&tx, &follow)?.unwrap_or(Page {
                changes: Vec::new(),
                next: cursor,
            })
        }
    };
    if page.next == cursor {
        return Ok(0);
    }
    let mut made = 0;
    for c in page.changes {
        if !f.kinds.is_empty() && !f.kinds.contains(&c.kind) {
            continue;
        }
        let payload = serde_json::json!({
            "type": format!("document.{}", c.op),
            "timestamp": c.committed_at,
            "data": {"seq": c.seq, "connector": c.connector, "stream": c.stream, "kind": c.kind,
                     "id": c.id, "op": c.op, "committed_at": c.committed_at},
        });
        let msg = format!("msg_{}", ulid::Ulid::new().to_string().to_lowercase());
        tx.prepare_cached(
            "INSERT INTO webhook_deliveries (id, webhook, connector, change_seq, payload, status,
               attempts, next_attempt_ms, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?7)",
        )?
        .execute(params![
            msg,
            f.webhook,
            c.connector,
            c.seq,
            payload.to_string(),
            now_ms,
            now
        ])?;
        made += 1;
    }
    let last = page.next;
    tx.execute(
        "UPDATE webhook_cursors SET cursor = ?2 WHERE webhook = ?1",
        params![f.webhook, last],
    )?;
    tx.commit()?;
    Ok(made)
}

fn cursor(tx: &Transaction<'_>, webhook: &str) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT cursor FROM webhook_cursors WHERE webhook = ?1",
        [webhook],
        |r| r.get(0),
    )
    .optional()
}

/// Pending deliveries due by `now_ms`, oldest change first.
pub fn due(conn: &Connection, now_ms: i64, limit: usize) -> rusqlite::Result<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhook_deliveries
         WHERE status = 'pending' AND next_attempt_ms <= ?1 ORDER BY change_seq, id LIMIT ?2"
    ))?;
    stmt.query_map(params![now_ms, limit as i64], read)?
        .collect()
}

/// Claims up to `limit` pending deliveries due by `now_ms`, oldest change first: each is not
/// due again before `until_ms` (its outcome, settled before then, sets the real next attempt),
/// so no other worker sends it meanwhile; one whose sender died is sent again after the claim.
pub fn claim(
    conn: &Connection,
    now_ms: i64,
    limit: usize,
    until_ms: i64,
) -> rusqlite::Result<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE webhook_deliveries SET next_attempt_ms = ?3 WHERE id IN (
           SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_ms <= ?1
           ORDER BY change_seq, id LIMIT ?2)
         RETURNING {COLUMNS}"
    ))?;
    let mut claimed: Vec<Delivery> = stmt
        .query_map(params![now_ms, limit as i64, until_ms], read)?
        .collect::<rusqlite::Result<_>>()?;
    claimed.sort_by(|a, b| (a.change_seq, &a.id).cmp(&(b.change_seq, &b.id)));
    Ok(claimed)
}

/// When the next pending delivery is due (Unix ms), if any is pending.
pub fn next_due(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT MIN(next_attempt_ms) FROM webhook_deliveries WHERE status = 'pending'",
        [],
        |r| r.get(0),
    )
}

/// One attempt's outcome: delivered, or failed with the time of the next attempt (None: that
/// was the last one, the delivery is dead).
pub fn settle(
    conn: &Connection,
    id: &str,
    status: Option<u16>,
    error: Option<&str>,
    retry_at_ms: Option<i64>,
    now: &str,
) -> rusqlite::Result<()> {
    let state = match (error, retry_at_ms) {
        (None, _) => "delivered",
        (Some(_), Some(_)) => "pending",
        (Some(_), None) => "dead",
    };
    conn.execute(
        "UPDATE webhook_deliveries SET status = ?2, attempts = attempts + 1, last_status = ?3,
           last_error = ?4, next_attempt_ms = COALESCE(?5, next_attempt_ms),
           delivered_at = CASE WHEN ?2 = 'delivered' THEN ?6 ELSE delivered_at END
         WHERE id = ?1 AND status = 'pending'",
        params![id, state, status, error, retry_at_ms, now],
    )?;
    Ok(())
}

/// Deliveries of a webhook, newest first, optionally of one status.
pub fn list(
    conn: &Connection,
    webhook: &str,
    status: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhook_deliveries WHERE webhook = ?1 AND (?2 IS NULL OR status = ?2)
         ORDER BY change_seq DESC, id DESC LIMIT ?3"
    ))?;
    stmt.query_map(params![webhook, status, limit as i64], read)?
        .collect()
}

/// How a webhook is doing: deliveries by status, its cursor, and its newest failure.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    /// The last change sequence fanned out to it.
    pub cursor: Option<i64>,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<String>,
}

pub fn summary(conn: &Connection, webhook: &str) -> rusqlite::Result<Summary> {
    let mut s = Summary::default();
    let mut stmt = conn.prepare_cached(
        "SELECT status, COUNT(*) FROM webhook_deliveries WHERE webhook = ?1 GROUP BY status",
    )?;
    for row in stmt.query_map([webhook], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
    })? {
        let (status, n) = row?;
        match status.as_str() {
            "pending" => s.pending = n,
            "delivered" => s.delivered = n,
            _ => s.dead += n,
        }
    }
    s.cursor = conn
        .query_row(
            "SELECT cursor FROM webhook_cursors WHERE webhook = ?1",
            [webhook],
            |r| r.get(0),
        )
        .optional()?;
    s.last_error = conn
        .query_row(
            "SELECT last_error FROM webhook_deliveries WHERE webhook = ?1 AND last_error IS NOT NULL
             ORDER BY change_seq DESC LIMIT 1",
            [webhook],
            |r| r.get(0),
        )
        .optional()?;
    s.last_delivered_at = conn.query_row(
        "SELECT MAX(delivered_at) FROM webhook_deliveries WHERE webhook = ?1",
        [webhook],
        |r| r.get(0),
    )?;
    Ok(s)
}

/// Puts a dead delivery back in line (due at `now_ms`, its attempts counted afresh). Returns
/// whether there was one.
pub fn retry(conn: &Connection, webhook: &str, id: &str, now_ms: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_ms = ?3
         WHERE webhook = ?1 AND id = ?2 AND status = 'dead'",
        params![webhook, id, now_ms],
    )?;
    Ok(n == 1)
}

/// The lowest webhook cursor: the change feed keeps everything after it.
pub fn lowest_cursor(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT MIN(cursor) FROM webhook_cursors", [], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::changes::{Op, record};

    fn change(c: &mut Connection, connector: &str, kind: &str, id: &str) {
        let tx = c.transaction().unwrap();
        record(
            &tx,
            (connector, Some("s")),
            Op::Upsert,
            (kind, id),
            "[]",
            "t",
        )
        .unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn fan_out_delivers_matching_changes_once_and_settles_each_delivery_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        change(&mut c, "atera", "ticket", "0");
        reconcile(&mut c, &["w".into()]).unwrap();
        // Starts after what was there.
        for (conn, kind, id) in [
            ("atera", "ticket", "1"),
            ("atera", "comment", "2"),
            ("zd", "ticket", "3"),
        ] {
            change(&mut c, conn, kind, id);
        }
        let f = Filter {
            webhook: "w",
            connectors: &["atera".into()],
            kinds: &["ticket".into()],
        };
        assert_eq!(fan_out(&mut c, &f, 100, 10, "now").unwrap(), 1);
        assert_eq!(
            fan_out(&mut c, &f, 100, 10, "now").unwrap(),
            0,
            "cursor moved"
        );
        assert_eq!(lowest_cursor(&c).unwrap(), Some(4));
        let due_now = due(&c, 10, 10).unwrap();
        assert_eq!(due_now.len(), 1);
        let d = &due_now[0];
        let v: serde_json::Value = serde_json::from_str(&d.payload).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["data"]["id"].as_str()),
            (Some("document.upsert"), Some("1"))
        );
        assert!(
            due(&c, 9, 10).unwrap().is_empty(),
            "not due before its time"
        );
        settle(&c, &d.id, Some(500), Some("HTTP 500"), Some(20), "t1").unwrap();
        assert!(due(&c, 19, 10).unwrap().is_empty());
        assert_eq!(next_due(&c).unwrap(), Some(20));
        settle(&c, &d.id, Some(503), Some("HTTP 503"), None, "t2").unwrap();
        let s = summary(&c, "w").unwrap();
        assert_eq!((s.pending, s.delivered, s.dead), (0, 0, 1));
        assert!(retry(&c, "w", &d.id, 30).unwrap());
        settle(&c, &d.id, Some(200), None, None, "t3").unwrap();
        // A settled delivery stays settled.
        settle(&c, &d.id, Some(500), Some("late"), Some(99), "t4").unwrap();
        let all = list(&c, "w", None, 10).unwrap();
        assert_eq!((all[0].status.as_str(), all[0].attempts), ("delivered", 1));
        assert_eq!(all[0].delivered_at.as_deref(), Some("t3"));
        reconcile(&mut c, &[]).unwrap();
        assert_eq!(
            lowest_cursor(&c).unwrap(),
            None,
            "a removed webhook holds nothing back"
        );
    }

    #[test]
    fn a_claimed_delivery_is_not_due_again_until_its_claim_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        reconcile(&mut c, &["w".into()]).unwrap();
        for id in ["1", "2", "3"] {
            change(&mut c, "atera", "ticket", id);
        }
        let f = Filter {
            webhook: "w",
            connectors: &["atera".into()],
            kinds: &[],
        };
        assert_eq!(fan_out(&mut c, &f, 100, 10, "now").unwrap(), 3);
        let first = claim(&c, 10, 2, 1_000).unwrap();
        let seqs: Vec<i64> = first.iter().map(|d| d.change_seq).collect();
        assert_eq!(seqs, [1, 2], "oldest change first");
        let rest = claim(&c, 10, 10, 1_000).unwrap();
        assert_eq!(rest.len(), 1, "the claimed ones are nobody else's");
        assert!(claim(&c, 999, 10, 2_000).unwrap().is_empty());
        settle(&c, &first[0].id, Some(200), None, None, "t").unwrap();
        // The sender of the others died: after the claim they are due again.
        assert_eq!(claim(&c, 1_000, 10, 3_000).unwrap().len(), 2);
    }
}
