//! Kept push subscriptions on PostgreSQL, mirroring `store/hook_subscriptions.rs`.

use super::PgStore;
use crate::store::hook_subscriptions::Kept;

impl PgStore {
    pub async fn kept_subscription(&self, connector: &str) -> anyhow::Result<Option<Kept>> {
        let client = self.client().await?;
        let r = client
            .query_opt(
                "SELECT connector, id, resource, notification_url, expires_at, renewed_at
                 FROM hook_subscriptions WHERE connector = $1",
                &[&connector],
            )
            .await?;
        Ok(r.map(|r| Kept {
            connector: r.get(0),
            id: r.get(1),
            resource: r.get(2),
            notification_url: r.get(3),
            expires_at: r.get(4),
            renewed_at: r.get(5),
        }))
    }

    pub async fn keep_subscription(&self, k: &Kept) -> anyhow::Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO hook_subscriptions
                   (connector, id, resource, notification_url, expires_at, renewed_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (connector) DO UPDATE SET id = $2, resource = $3,
                   notification_url = $4, expires_at = $5, renewed_at = $6",
                &[
                    &k.connector,
                    &k.id,
                    &k.resource,
                    &k.notification_url,
                    &k.expires_at,
                    &k.renewed_at,
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn forget_subscription(&self, connector: &str) -> anyhow::Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM hook_subscriptions WHERE connector = $1",
                &[&connector],
            )
            .await?;
        Ok(())
    }
}
