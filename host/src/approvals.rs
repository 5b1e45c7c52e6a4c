//! Write approvals: an action marked `writes`, asked for through the API or CLI, becomes a
//! pending approval (who asked, which action, its input) unless every writes grant of its
//! connector says `writes_preapproved = true`; even then the run itself is not approved, so the
//! gate lets its writes through only the grants that pre-approve them. Whoever asked may not
//! approve their own request unless `[approvals] allow_self_approval = true`. Approving runs it once, with the approval's id as the
//! invocation id, so the approval, its decision and the audit rows of the calls it made share one
//! id. A decision is taken atomically (`pending` → `approved`/`denied`), so replaying an
//! approval never runs the action twice.

use crate::app::Airlock;
use crate::model::ConnectorError;
use crate::runtime::connector::{InvokeError, Op};
use crate::runtime::context::{self, CallContext};
pub use crate::store::approvals::{Approval, ApprovalError};
use crate::store::audit::AuditEvent;

/// What asking for an operation produced.
pub enum Requested {
    /// It ran (not a write action, or pre-approved).
    Done(serde_json::Value),
    /// It waits for an approval.
    Pending(Box<Approval>),
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
    // Input that fails the action's declared schema is refused before anything is queued.
    a.check_input(id, &op)?;
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
            a.audit_durable().await?;
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
        let approval = Approval::pending(requested_by, tenant, id, name, input);
        a.store
            .insert_approval(&approval)
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
        // The 202 leaves only once the request's row is durable: a crash right after the
        // answer must not leave an approval the audit trail never saw asked.
        a.audit_durable().await?;
        return Ok(Requested::Pending(Box::new(approval)));
    }
    let v = context::with(CallContext::requested().by(requested_by), a.invoke(id, op)).await?;
    Ok(Requested::Done(v))
}

/// Approves a pending approval and runs its action once. Returns the approval as it ended.
pub async fn approve(a: &Airlock, id: &str, by: &str) -> Result<Approval, ApprovalError> {
    let not_self = !a.config().approvals.allow_self_approval;
    let approval = a
        .store
        .decide_approval(id, "approved", by, not_self)
        .await?;
    audit(a, &approval, by, "approved", format!("approved by `{by}`"));
    let op = Op::Action {
        name: approval.action.clone(),
        input: approval.input.clone(),
    };
    // The run is the decider's doing: its rows name who approved it.
    let outcome = if approval.action == crate::proxy::APPROVAL_ACTION {
        // A write a caller sent through the egress proxy: sent now, once.
        crate::proxy::run_approved(a, &approval, by)
            .await
            .map_err(|e| e.to_string())
    } else {
        context::with(
            CallContext::approved(&approval.id).by(by),
            a.invoke(&approval.connector, op),
        )
        .await
        .map_err(|e| e.to_string())
    };
    a.store.finish_approval(&approval.id, &outcome).await?;
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
    // The approval's answer leaves only once its rows (the run's and its outcome's) are durable.
    a.audit_durable()
        .await
        .map_err(|e| ApprovalError::Store(e.into()))?;
    a.store
        .approval(&approval.id)
        .await?
        .ok_or_else(|| ApprovalError::NotFound(approval.id.clone()))
}

/// Denies a pending approval: its action never runs.
pub async fn deny(a: &Airlock, id: &str, by: &str) -> Result<Approval, ApprovalError> {
    // Withdrawing one's own request is fine.
    let approval = a.store.decide_approval(id, "denied", by, false).await?;
    audit(a, &approval, by, "denied", format!("denied by `{by}`"));
    Ok(approval)
}
