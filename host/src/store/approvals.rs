//! The `approvals` table: pending write actions and their decisions. A decision is taken
//! atomically (`pending` → `approved`/`denied`, in one conditional UPDATE), so replaying an
//! approval never runs the action twice. The workflow around it lives in `crate::approvals`.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::now_rfc3339;

#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub id: String,
    pub created_at: String,
    pub requested_by: String,
    pub tenant: String,
    pub connector: String,
    pub action: String,
    pub input: serde_json::Value,
    /// `pending`, `denied`, `approved` (running), `executed` (ran and answered) or `failed`
    /// (ran and failed).
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
}

impl Approval {
    /// A new pending approval of `action` on `connector` (`input` already scrubbed).
    pub fn pending(
        requested_by: &str,
        tenant: &str,
        connector: &str,
        action: &str,
        input: serde_json::Value,
    ) -> Approval {
        Approval {
            id: ulid::Ulid::new().to_string(),
            created_at: now_rfc3339(),
            requested_by: requested_by.to_string(),
            tenant: tenant.to_string(),
            connector: connector.to_string(),
            action: action.to_string(),
            input,
            status: "pending".into(),
            decided_by: None,
            decided_at: None,
            result: None,
            error: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval `{0}`")]
    NotFound(String),
    #[error("approval `{id}` was already decided ({status}); it does not run again")]
    AlreadyDecided { id: String, status: String },
    #[error(
        "`{by}` asked for approval `{id}` and may not approve it; another admin must (or set `[approvals] allow_self_approval = true`)"
    )]
    SelfApproval { id: String, by: String },
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

const COLUMNS: &str = "id, created_at, requested_by, tenant, connector, action, input, status, \
                       decided_by, decided_at, result, error";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(Approval {
        id: r.get(0)?,
        created_at: r.get(1)?,
        requested_by: r.get(2)?,
        tenant: r.get(3)?,
        connector: r.get(4)?,
        action: r.get(5)?,
        input: json(r.get(6)?).unwrap_or(serde_json::Value::Null),
        status: r.get(7)?,
        decided_by: r.get(8)?,
        decided_at: r.get(9)?,
        result: json(r.get(10)?),
        error: r.get(11)?,
    })
}

pub fn get(conn: &Connection, id: &str) -> anyhow::Result<Option<Approval>> {
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1");
    Ok(conn.query_row(&sql, params![id], read).optional()?)
}

/// Approvals, newest first, optionally of one tenant and one status.
pub fn list(
    conn: &Connection,
    tenant: Option<&str>,
    status: Option<&str>,
) -> anyhow::Result<Vec<Approval>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE (?1 IS NULL OR tenant = ?1)
         AND (?2 IS NULL OR status = ?2) ORDER BY created_at DESC, id DESC LIMIT 1000"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params![tenant, status], read)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn insert(conn: &mut Connection, a: &Approval) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO approvals (id, created_at, requested_by, tenant, connector, action, input, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
        params![
            a.id,
            a.created_at,
            a.requested_by,
            a.tenant,
            a.connector,
            a.action,
            a.input.to_string()
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// `pending` → `to`, atomically; anything else is [`ApprovalError::AlreadyDecided`]. With
/// `not_by_requester`, the one who asked cannot take the decision ([`ApprovalError::SelfApproval`]).
pub fn decide(
    conn: &mut Connection,
    id: &str,
    to: &str,
    by: &str,
    not_by_requester: bool,
) -> Result<Approval, ApprovalError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(anyhow::Error::from)?;
    let n = tx
        .execute(
            "UPDATE approvals SET status = ?2, decided_by = ?3, decided_at = ?4
             WHERE id = ?1 AND status = 'pending' AND (?5 = 0 OR requested_by != ?3)",
            params![id, to, by, now_rfc3339(), not_by_requester],
        )
        .map_err(anyhow::Error::from)?;
    tx.commit().map_err(anyhow::Error::from)?;
    let a = get(conn, id)?.ok_or_else(|| ApprovalError::NotFound(id.into()))?;
    if n == 0 && a.status == "pending" {
        return Err(ApprovalError::SelfApproval {
            id: id.into(),
            by: by.into(),
        });
    }
    if n == 0 {
        return Err(ApprovalError::AlreadyDecided {
            id: id.into(),
            status: a.status,
        });
    }
    Ok(a)
}

pub fn finish(
    conn: &mut Connection,
    id: &str,
    outcome: &Result<serde_json::Value, String>,
) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (status, result, error) = match outcome {
        Ok(v) => ("executed", Some(v.to_string()), None),
        Err(e) => ("failed", None, Some(e.clone())),
    };
    tx.execute(
        "UPDATE approvals SET status = ?2, result = ?3, error = ?4 WHERE id = ?1",
        params![id, status, result, error],
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_is_taken_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut conn = crate::store::open(dir.path()).expect("db");
        let a = Approval {
            id: "01TEST".into(),
            created_at: now_rfc3339(),
            requested_by: "cli:me".into(),
            tenant: "default".into(),
            connector: "c".into(),
            action: "write".into(),
            input: serde_json::json!({"x": 1}),
            status: "pending".into(),
            decided_by: None,
            decided_at: None,
            result: None,
            error: None,
        };
        insert(&mut conn, &a).expect("insert");
        let got = decide(&mut conn, "01TEST", "approved", "alice", true).expect("first decision");
        assert_eq!(
            (got.status.as_str(), got.decided_by.as_deref()),
            ("approved", Some("alice"))
        );
        assert!(matches!(
            decide(&mut conn, "01TEST", "approved", "alice", true),
            Err(ApprovalError::AlreadyDecided { .. })
        ));
        assert!(matches!(
            decide(&mut conn, "01TEST", "denied", "bob", false),
            Err(ApprovalError::AlreadyDecided { .. })
        ));
        assert!(matches!(
            decide(&mut conn, "nope", "denied", "bob", false),
            Err(ApprovalError::NotFound(_))
        ));
        finish(&mut conn, "01TEST", &Ok(serde_json::json!({"ok": true}))).expect("finish");
        let listed = list(&conn, Some("default"), Some("executed")).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].input, serde_json::json!({"x": 1}));
    }

    #[test]
    fn the_requester_cannot_approve_their_own_request_unless_allowed() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut conn = crate::store::open(dir.path()).expect("db");
        let mk = |id: &str| Approval {
            id: id.into(),
            created_at: now_rfc3339(),
            requested_by: "token:alice".into(),
            tenant: "default".into(),
            connector: "c".into(),
            action: "write".into(),
            input: serde_json::json!({}),
            status: "pending".into(),
            decided_by: None,
            decided_at: None,
            result: None,
            error: None,
        };
        insert(&mut conn, &mk("01SELF")).expect("insert");
        let e = decide(&mut conn, "01SELF", "approved", "token:alice", true).unwrap_err();
        assert!(matches!(e, ApprovalError::SelfApproval { .. }), "{e}");
        assert_eq!(
            get(&conn, "01SELF").expect("get").expect("row").status,
            "pending"
        );
        let ok = decide(&mut conn, "01SELF", "approved", "token:bob", true).expect("bob");
        assert_eq!(ok.decided_by.as_deref(), Some("token:bob"));
        insert(&mut conn, &mk("01SELF2")).expect("insert");
        decide(&mut conn, "01SELF2", "approved", "token:alice", false).expect("allowed by config");
    }
}
