//! The webhook outbox on PostgreSQL, mirroring `store/webhooks.rs`, for several daemons at once:
//! a webhook's fan-out locks its cursor row (one daemon turns a change into a delivery, once),
//! and sending claims due deliveries with `FOR UPDATE SKIP LOCKED`, pushing each one's next
//! attempt past the claim, so two daemons never send the same delivery together.

use deadpool_postgres::GenericClient;

use super::PgStore;
use super::changes::{self, Follow};
use crate::store::changes::Page;
use crate::store::webhooks::{Delivery, Summary};

const COLUMNS: &str = "id, webhook, connector, change_seq, payload, status, attempts, \
                       next_attempt_ms, last_status, last_error, created_at, delivered_at";

fn row(r: &tokio_postgres::Row) -> Delivery {
    let attempts: i32 = r.get(6);
    let last_status: Option<i32> = r.get(8);
    Delivery {
        id: r.get(0),
        webhook: r.get(1),
        connector: r.get(2),
        change_seq: r.get(3),
        payload: r.get(4),
        status: r.get(5),
        attempts: attempts.max(0) as u32,
        next_attempt_ms: r.get(7),
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: r.get(9),
        created_at: r.get(10),
        delivered_at: r.get(11),
    }
}

impl PgStore {
    /// See [`crate::store::webhooks::reconcile`].
    pub async fn reconcile_webhooks(&self, webhooks: &[String]) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let last = changes::last_seq(&tx).await?;
        tx.execute(
            "INSERT INTO webhook_cursors (webhook, cursor) SELECT w, $2 FROM unnest($1::text[]) w
             ON CONFLICT (webhook) DO NOTHING",
            &[&webhooks, &last],
        )
        .await?;
        tx.execute(
            "DELETE FROM webhook_cursors WHERE NOT (webhook = ANY($1::text[]))",
            &[&webhooks],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// See [`crate::store::webhooks::fan_out`]; the cursor row is locked for the transaction,
    /// so daemons fanning out the same webhook together take turns.
    pub async fn fan_out_webhook(
        &self,
        webhook: &str,
        connectors: &[String],
        kinds: &[String],
        limit: usize,
        now_ms: i64,
        now: &str,
    ) -> anyhow::Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT cursor FROM webhook_cursors WHERE webhook = $1 FOR UPDATE",
                &[&webhook],
            )
            .await?
        else {
            return Ok(0);
        };
        let cursor: i64 = row.get(0);
        let everyone = |_: &str, _: &[String]| true;
        let mut follow = Follow {
            after: cursor,
            within: Some(connectors),
            connector: None,
            kind: None,
            limit,
            visible: &everyone,
        };
        let page = match changes::read(&tx, &follow).await? {
            Ok(page) => page,
            Err(first) => {
                follow.after = first - 1;
                changes::read(&tx, &follow).await?.unwrap_or(Page {
                    changes: Vec::new(),
                    next: cursor,
                })
            }
        };
        if page.next == cursor {
            return Ok(0);
        }
        let (mut ids, mut conns, mut seqs, mut payloads) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for c in page.changes {
            if !kinds.is_empty() && !kinds.contains(&c.kind) {
                continue;
            }
            let payload = serde_json::json!({
                "type": format!("document.{}", c.op),
                "timestamp": c.committed_at,
                "data": {"seq": c.seq, "connector": c.connector, "stream": c.stream,
                         "kind": c.kind, "id": c.id, "op": c.op,
                         "committed_at": c.committed_at},
            });
            ids.push(format!(
                "msg_{}",
                ulid::Ulid::new().to_string().to_lowercase()
            ));
            conns.push(c.connector);
            seqs.push(c.seq);
            payloads.push(payload.to_string());
        }
        if !ids.is_empty() {
            tx.execute(
                "INSERT INTO webhook_deliveries (id, webhook, connector, change_seq, payload,
                   status, attempts, next_attempt_ms, created_at)
                 SELECT i, $1, c, s, p, 'pending', 0, $2, $3
                 FROM unnest($4::text[], $5::text[], $6::bigint[], $7::text[]) AS x(i, c, s, p)",
                &[&webhook, &now_ms, &now, &ids, &conns, &seqs, &payloads],
            )
            .await?;
        }
        tx.execute(
            "UPDATE webhook_cursors SET cursor = $2 WHERE webhook = $1",
            &[&webhook, &page.next],
        )
        .await?;
        tx.commit().await?;
        Ok(ids.len())
    }

    /// See [`crate::store::webhooks::claim`]: rows another daemon is claiming right now are
    /// skipped, and a row it has claimed is no longer due.
    pub async fn claim_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
        until_ms: i64,
    ) -> anyhow::Result<Vec<Delivery>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "UPDATE webhook_deliveries w SET next_attempt_ms = $3
                     FROM (SELECT id FROM webhook_deliveries
                           WHERE status = 'pending' AND next_attempt_ms <= $1
                           ORDER BY change_seq, id LIMIT $2 FOR UPDATE SKIP LOCKED) due
                     WHERE w.id = due.id
                     RETURNING {}",
                    COLUMNS
                        .split(", ")
                        .map(|c| format!("w.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[&now_ms, &(limit as i64), &until_ms],
            )
            .await?;
        let mut claimed: Vec<Delivery> = rows.iter().map(row).collect();
        claimed.sort_by(|a, b| (a.change_seq, &a.id).cmp(&(b.change_seq, &b.id)));
        Ok(claimed)
    }

    pub async fn next_delivery_due(&self) -> anyhow::Result<Option<i64>> {
        let client = self.client().await?;
        let r = client
            .query_one(
                "SELECT MIN(next_attempt_ms) FROM webhook_deliveries WHERE status = 'pending'",
                &[],
            )
            .await?;
        Ok(r.get(0))
    }

    /// See [`crate::store::webhooks::settle`].
    pub async fn settle_delivery(
        &self,
        id: &str,
        status: Option<u16>,
        error: Option<&str>,
        retry_at_ms: Option<i64>,
        now: &str,
    ) -> anyhow::Result<()> {
        let state = match (error, retry_at_ms) {
            (None, _) => "delivered",
            (Some(_), Some(_)) => "pending",
            (Some(_), None) => "dead",
        };
        let status = status.map(i32::from);
        let client = self.client().await?;
        client
            .execute(
                "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1,
                   last_status = $3, last_error = $4,
                   next_attempt_ms = COALESCE($5, next_attempt_ms),
                   delivered_at = CASE WHEN $2 = 'delivered' THEN $6 ELSE delivered_at END
                 WHERE id = $1 AND status = 'pending'",
                &[&id, &state, &status, &error, &retry_at_ms, &now],
            )
            .await?;
        Ok(())
    }

    pub async fn webhook_deliveries(
        &self,
        webhook: &str,
        status: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<Delivery>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM webhook_deliveries
                     WHERE webhook = $1 AND ($2::text IS NULL OR status = $2)
                     ORDER BY change_seq DESC, id DESC LIMIT $3"
                ),
                &[&webhook, &status, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(row).collect())
    }

    pub async fn webhook_summary(&self, webhook: &str) -> anyhow::Result<Summary> {
        let client = self.client().await?;
        let mut s = Summary::default();
        for r in client
            .query(
                "SELECT status, COUNT(*) FROM webhook_deliveries WHERE webhook = $1
                 GROUP BY status",
                &[&webhook],
            )
            .await?
        {
            let (status, n): (String, i64) = (r.get(0), r.get(1));
            let n = n.max(0) as u64;
            match status.as_str() {
                "pending" => s.pending = n,
                "delivered" => s.delivered = n,
                _ => s.dead += n,
            }
        }
        let r = client
            .query_one(
                "SELECT (SELECT cursor FROM webhook_cursors WHERE webhook = $1),
                        (SELECT last_error FROM webhook_deliveries
                         WHERE webhook = $1 AND last_error IS NOT NULL
                         ORDER BY change_seq DESC LIMIT 1),
                        (SELECT MAX(delivered_at) FROM webhook_deliveries WHERE webhook = $1)",
                &[&webhook],
            )
            .await?;
        s.cursor = r.get(0);
        s.last_error = r.get(1);
        s.last_delivered_at = r.get(2);
        Ok(s)
    }

    /// See [`crate::store::webhooks::retry`].
    pub async fn retry_delivery(
        &self,
        webhook: &str,
        id: &str,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0,
                   next_attempt_ms = $3
                 WHERE webhook = $1 AND id = $2 AND status = 'dead'",
                &[&webhook, &id, &now_ms],
            )
            .await?;
        Ok(n == 1)
    }
}
