//! Write approvals: an action marked `writes`, asked for through the API or CLI, becomes a
//! pending approval (who asked, which action, its input) unless every writes grant of its
//! connector says `writes_preapproved = true`; even then the run itself is not approved, so the
//! gate lets its writes through only the grants that pre-approve them. Whoever asked may not
//! approve their own request unless `[approvals] allow_self_approval = true`. Approving runs it once, with the approval's id as the
//! invocation id, so the approval, its decision and the audit rows of the calls it made share one
//! id. A decision is taken atomically (`pending` → `approved`/`denied`), so replaying an
//! approval never runs the action twice.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::app::Airlock;
use crate::runtime::connector::{InvokeError, Op};
use crate::runtime::context::{self, CallContext};
use crate::runtime::model::ConnectorError;
use crate::store::audit::AuditEvent;
use crate::store::now_rfc3339;

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

/// What asking for an operation produced.
pub enum Requested {
    /// It ran (not a write action, or pre-approved).
    Done(serde_json::Value),
    /// It waits for an approval.
    Pending(Box<Approval>),
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

fn insert(conn: &mut Connection, a: &Approval) -> anyhow::Result<()> {
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
fn decide(
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

fn finish(
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

/// Whether `action` of connector or route `id` writes (any connector of a route counts).
pub fn action_writes(a: &Airlock, id: &str, action: &str) -> bool {
    let ids: Vec<String> = match a.config().route(id) {
        Some(r) => r.connectors.clone(),
        None => vec![id.to_string()],
    };
    ids.iter().any(|c| {
        a.connector(c)
            .is_ok_and(|c| c.info.actions.iter().any(|x| x.name == action && x.writes))
    })
}

/// The connectors behind `id` that have no grant with `writes = true`: a write action of
/// theirs could never write, so asking an admin to approve it would only waste a decision.
fn without_write_grant(a: &Airlock, id: &str) -> Vec<String> {
    let config = a.config();
    let ids: Vec<String> = match config.route(id) {
        Some(r) => r.connectors.clone(),
        None => vec![id.to_string()],
    };
    ids.into_iter()
        .filter(|c| !config.grants.iter().any(|g| g.connector == *c && g.writes))
        .collect()
}

/// Whether the action may skip the approval queue: every connector behind `id` has writes
/// grants and every one of them pre-approves writes. One pre-approved grant says nothing about
/// the others, so a connector that mixes them queues for approval.
fn preapproved(a: &Airlock, id: &str) -> bool {
    let config = a.config();
    let ids: Vec<String> = match config.route(id) {
        Some(r) => r.connectors.clone(),
        None => vec![id.to_string()],
    };
    ids.iter().all(|c| {
        let mut writes = config
            .grants
            .iter()
            .filter(|g| g.connector == *c && g.writes);
        let mut any = false;
        writes.all(|g| {
            any = true;
            g.writes_preapproved
        }) && any
    })
}

/// An `approval` row; `by` is who asked (`pending`) or who decided (the rest).
fn audit(a: &Airlock, approval: &Approval, by: &str, decision: &str, reason: String) {
    a.audit.record(AuditEvent {
        connector: approval.connector.clone(),
        invocation: approval.id.clone(),
        event: "approval".into(),
        decision: decision.into(),
        reason,
        principal: Some(by.to_string()),
        ..Default::default()
    });
}

/// Runs `op` on connector or route `id` for a requester (API principal or CLI user): a write
/// action becomes a pending approval; anything else runs at once, with writes refused.
pub async fn request(
    a: &Airlock,
    requested_by: &str,
    tenant: &str,
    id: &str,
    op: Op,
) -> Result<Requested, InvokeError> {
    if let Op::Action { name, input } = &op
        && action_writes(a, id, name)
    {
        let cannot = without_write_grant(a, id);
        if !cannot.is_empty() {
            let message = format!(
                "action `{name}` writes, and no grant of {} allows writes (add a grant with `writes = true`); nothing was queued for approval",
                cannot
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            a.audit.record(AuditEvent {
                connector: id.to_string(),
                invocation: ulid::Ulid::new().to_string(),
                event: "approval".into(),
                decision: "deny".into(),
                reason: message.clone(),
                principal: Some(requested_by.to_string()),
                ..Default::default()
            });
            return Err(InvokeError::Connector(ConnectorError {
                code: "forbidden".into(),
                message,
                retry_after: None,
            }));
        }
        if preapproved(a, id) {
            // Not an approved run: the gate checks `writes_preapproved` on the grant each write
            // goes through.
            let v =
                context::with(CallContext::requested().by(requested_by), a.invoke(id, op)).await?;
            return Ok(Requested::Done(v));
        }
        let mut input = input.clone();
        a.scrubber.scrub_json(&mut input);
        let approval = Approval {
            id: ulid::Ulid::new().to_string(),
            created_at: now_rfc3339(),
            requested_by: requested_by.to_string(),
            tenant: tenant.to_string(),
            connector: id.to_string(),
            action: name.clone(),
            input,
            status: "pending".into(),
            decided_by: None,
            decided_at: None,
            result: None,
            error: None,
        };
        let row = approval.clone();
        a.db.run(move |conn| insert(conn, &row))
            .await
            .map_err(|e| InvokeError::Trap {
                message: format!("cannot record the approval: {e:#}"),
            })?;
        audit(
            a,
            &approval,
            requested_by,
            "pending",
            format!("`{requested_by}` asked to run write action `{name}`"),
        );
        return Ok(Requested::Pending(Box::new(approval)));
    }
    let v = context::with(CallContext::requested().by(requested_by), a.invoke(id, op)).await?;
    Ok(Requested::Done(v))
}

/// Approves a pending approval and runs its action once. Returns the approval as it ended.
pub async fn approve(a: &Airlock, id: &str, by: &str) -> Result<Approval, ApprovalError> {
    let (id_owned, by_owned) = (id.to_string(), by.to_string());
    let not_self = !a.config().approvals.allow_self_approval;
    let approval =
        a.db.run(move |conn| Ok(decide(conn, &id_owned, "approved", &by_owned, not_self)))
            .await??;
    audit(a, &approval, by, "approved", format!("approved by `{by}`"));
    let op = Op::Action {
        name: approval.action.clone(),
        input: approval.input.clone(),
    };
    // The run is the decider's doing: its rows name who approved it.
    let outcome = context::with(
        CallContext::approved(&approval.id).by(by),
        a.invoke(&approval.connector, op),
    )
    .await
    .map_err(|e| e.to_string());
    let (id_owned, o) = (approval.id.clone(), outcome.clone());
    a.db.run(move |conn| finish(conn, &id_owned, &o)).await?;
    match &outcome {
        Ok(_) => audit(a, &approval, by, "ok", "the approved action ran".into()),
        Err(e) => audit(
            a,
            &approval,
            by,
            "error",
            format!("the approved action failed: {e}"),
        ),
    }
    let id_owned = approval.id.clone();
    a.db.run(move |conn| get(conn, &id_owned))
        .await?
        .ok_or_else(|| ApprovalError::NotFound(approval.id.clone()))
}

/// Denies a pending approval: its action never runs.
pub async fn deny(a: &Airlock, id: &str, by: &str) -> Result<Approval, ApprovalError> {
    let (id_owned, by_owned) = (id.to_string(), by.to_string());
    // Withdrawing one's own request is fine.
    let approval =
        a.db.run(move |conn| Ok(decide(conn, &id_owned, "denied", &by_owned, false)))
            .await??;
    audit(a, &approval, by, "denied", format!("denied by `{by}`"));
    Ok(approval)
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
