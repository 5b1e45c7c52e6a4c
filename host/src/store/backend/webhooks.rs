//! The webhook outbox and kept push subscriptions on either backend. Sending claims due
//! deliveries (see [`crate::store::webhooks::claim`]), so several daemons on one PostgreSQL
//! database send each delivery once.

use super::Store;
use crate::store::hook_subscriptions::{self as kept, Kept};
use crate::store::webhooks::{self as outbox, Delivery, Filter, Summary};

impl Store {
    /// Makes the webhook cursors match the configured webhooks (see [`outbox::reconcile`]).
    pub async fn reconcile_webhooks(&self, webhooks: &[String]) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let n = webhooks.to_vec();
                db.run(move |c| Ok(outbox::reconcile(c, &n)?)).await
            }
            Store::Postgres(pg) => pg.reconcile_webhooks(webhooks).await,
        }
    }

    /// Turns new changes into deliveries of one webhook (see [`outbox::fan_out`]).
    pub async fn fan_out_webhook(
        &self,
        webhook: &str,
        connectors: &[String],
        kinds: &[String],
        limit: usize,
        now_ms: i64,
    ) -> anyhow::Result<usize> {
        let now = crate::store::now_rfc3339();
        match self {
            Store::Sqlite(db) => {
                let (w, c, k) = (webhook.to_string(), connectors.to_vec(), kinds.to_vec());
                db.run(move |conn| {
                    let f = Filter {
                        webhook: &w,
                        connectors: &c,
                        kinds: &k,
                    };
                    Ok(outbox::fan_out(conn, &f, limit, now_ms, &now)?)
                })
                .await
            }
            Store::Postgres(pg) => {
                pg.fan_out_webhook(webhook, connectors, kinds, limit, now_ms, &now)
                    .await
            }
        }
    }

    /// Claims up to `limit` due deliveries until `until_ms` (see [`outbox::claim`]).
    pub async fn claim_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
        until_ms: i64,
    ) -> anyhow::Result<Vec<Delivery>> {
        match self {
            Store::Sqlite(db) => {
                db.run(move |c| Ok(outbox::claim(c, now_ms, limit, until_ms)?))
                    .await
            }
            Store::Postgres(pg) => pg.claim_deliveries(now_ms, limit, until_ms).await,
        }
    }

    /// When the next pending delivery is due (Unix ms).
    pub async fn next_delivery_due(&self) -> anyhow::Result<Option<i64>> {
        match self {
            Store::Sqlite(db) => db.read(|c| Ok(outbox::next_due(c)?)).await,
            Store::Postgres(pg) => pg.next_delivery_due().await,
        }
    }

    /// Records one attempt's outcome (see [`outbox::settle`]).
    pub async fn settle_delivery(
        &self,
        id: &str,
        status: Option<u16>,
        error: Option<&str>,
        retry_at_ms: Option<i64>,
    ) -> anyhow::Result<()> {
        let now = crate::store::now_rfc3339();
        match self {
            Store::Sqlite(db) => {
                let (i, e) = (id.to_string(), error.map(str::to_string));
                db.run(move |c| {
                    Ok(outbox::settle(
                        c,
                        &i,
                        status,
                        e.as_deref(),
                        retry_at_ms,
                        &now,
                    )?)
                })
                .await
            }
            Store::Postgres(pg) => {
                pg.settle_delivery(id, status, error, retry_at_ms, &now)
                    .await
            }
        }
    }

    /// A webhook's deliveries, newest first, optionally of one status.
    pub async fn webhook_deliveries(
        &self,
        webhook: &str,
        status: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<Delivery>> {
        match self {
            Store::Sqlite(db) => {
                let (w, s) = (webhook.to_string(), status.map(str::to_string));
                db.read(move |c| Ok(outbox::list(c, &w, s.as_deref(), limit)?))
                    .await
            }
            Store::Postgres(pg) => pg.webhook_deliveries(webhook, status, limit).await,
        }
    }

    /// How each of `webhooks` is doing, in order.
    pub async fn webhook_summaries(&self, webhooks: &[String]) -> anyhow::Result<Vec<Summary>> {
        match self {
            Store::Sqlite(db) => {
                let names = webhooks.to_vec();
                db.read(move |c| {
                    names
                        .iter()
                        .map(|n| Ok(outbox::summary(c, n)?))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
                .await
            }
            Store::Postgres(pg) => {
                let mut out = Vec::with_capacity(webhooks.len());
                for w in webhooks {
                    out.push(pg.webhook_summary(w).await?);
                }
                Ok(out)
            }
        }
    }

    /// Puts a dead delivery back in line, due at `now_ms`; false when there was none.
    pub async fn retry_delivery(
        &self,
        webhook: &str,
        id: &str,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        match self {
            Store::Sqlite(db) => {
                let (w, i) = (webhook.to_string(), id.to_string());
                db.run(move |c| Ok(outbox::retry(c, &w, &i, now_ms)?)).await
            }
            Store::Postgres(pg) => pg.retry_delivery(webhook, id, now_ms).await,
        }
    }

    // ---- kept push subscriptions ----

    pub async fn kept_subscription(&self, connector: &str) -> anyhow::Result<Option<Kept>> {
        match self {
            Store::Sqlite(db) => {
                let c = connector.to_string();
                db.read(move |conn| Ok(kept::get(conn, &c)?)).await
            }
            Store::Postgres(pg) => pg.kept_subscription(connector).await,
        }
    }

    /// Records (or replaces) the subscription kept for its connector.
    pub async fn keep_subscription(&self, k: &Kept) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let k = k.clone();
                db.run(move |conn| Ok(kept::put(conn, &k)?)).await
            }
            Store::Postgres(pg) => pg.keep_subscription(k).await,
        }
    }

    pub async fn forget_subscription(&self, connector: &str) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let c = connector.to_string();
                db.run(move |conn| Ok(kept::delete(conn, &c)?)).await
            }
            Store::Postgres(pg) => pg.forget_subscription(connector).await,
        }
    }
}
