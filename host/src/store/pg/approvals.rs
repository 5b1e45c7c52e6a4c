//! Write approvals on PostgreSQL, mirroring `store/approvals.rs`: a decision is one conditional
//! UPDATE (`pending` → `approved`/`denied`), so when two daemons are asked to approve the same
//! request at once, exactly one takes the decision and runs the action.

use super::PgStore;
use crate::store::approvals::{Approval, ApprovalError};

const COLUMNS: &str = "id, created_at, requested_by, tenant, connector, action, input, status, \
                       decided_by, decided_at, result, error";

fn read(r: &tokio_postgres::Row) -> Approval {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Approval {
        id: r.get(0),
        created_at: r.get(1),
        requested_by: r.get(2),
        tenant: r.get(3),
        connector: r.get(4),
        action: r.get(5),
        input: json(r.get(6)).unwrap_or(serde_json::Value::Null),
        status: r.get(7),
        decided_by: r.get(8),
        decided_at: r.get(9),
        result: json(r.get(10)),
        error: r.get(11),
    }
}

impl PgStore {
    pub async fn approval(&self, id: &str) -> anyhow::Result<Option<Approval>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(read))
    }

    pub async fn approvals(
        &self,
        tenant: Option<&str>,
        status: Option<&str>,
    ) -> anyhow::Result<Vec<Approval>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM approvals WHERE ($1::text IS NULL OR tenant = $1)
                     AND ($2::text IS NULL OR status = $2)
                     ORDER BY created_at DESC, id DESC LIMIT 1000"
                ),
                &[&tenant, &status],
            )
            .await?;
        Ok(rows.iter().map(read).collect())
    }

    pub async fn insert_approval(&self, a: &Approval) -> anyhow::Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO approvals (id, created_at, requested_by, tenant, connector, action, input, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')",
                &[
                    &a.id,
                    &a.created_at,
                    &a.requested_by,
                    &a.tenant,
                    &a.connector,
                    &a.action,
                    &a.input.to_string(),
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn decide_approval(
        &self,
        id: &str,
        to: &str,
        by: &str,
        not_by_requester: bool,
    ) -> Result<Approval, ApprovalError> {
        let client = self.client().await?;
        let decided = client
            .query_opt(
                &format!(
                    "UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4
                     WHERE id = $1 AND status = 'pending' AND (NOT $5 OR requested_by <> $3)
                     RETURNING {COLUMNS}"
                ),
                &[
                    &id,
                    &to,
                    &by,
                    &crate::store::now_rfc3339(),
                    &not_by_requester,
                ],
            )
            .await
            .map_err(anyhow::Error::from)?;
        if let Some(row) = decided {
            return Ok(read(&row));
        }
        let a = self
            .approval(id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(id.into()))?;
        if a.status == "pending" {
            return Err(ApprovalError::SelfApproval {
                id: id.into(),
                by: by.into(),
            });
        }
        Err(ApprovalError::AlreadyDecided {
            id: id.into(),
            status: a.status,
        })
    }

    pub async fn finish_approval(
        &self,
        id: &str,
        outcome: &Result<serde_json::Value, String>,
    ) -> anyhow::Result<()> {
        let (status, result, error) = match outcome {
            Ok(v) => ("executed", Some(v.to_string()), None),
            Err(e) => ("failed", None, Some(e.clone())),
        };
        let client = self.client().await?;
        client
            .execute(
                "UPDATE approvals SET status = $2, result = $3, error = $4 WHERE id = $1",
                &[&id, &status, &result, &error],
            )
            .await?;
        Ok(())
    }
}
