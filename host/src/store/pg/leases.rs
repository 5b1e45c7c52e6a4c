//! Sync job leases on PostgreSQL (see `store/leases.rs` for the rules). Expiry is judged by the
//! database's clock, so daemons on machines whose clocks differ still agree.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use super::PgStore;
use crate::store::leases::{Lease, LeaseInfo, lost};

impl PgStore {
    pub async fn acquire_lease(
        &self,
        connector: &str,
        stream: &str,
        owner: &str,
        ttl: Duration,
    ) -> anyhow::Result<Option<Lease>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO sync_jobs (connector, stream, owner, fence, lease_until)
                 VALUES ($1, $2, $3, 1, clock_timestamp() + make_interval(secs => $4))
                 ON CONFLICT (connector, stream) DO UPDATE
                   SET owner = excluded.owner, fence = sync_jobs.fence + 1,
                       lease_until = excluded.lease_until
                   WHERE sync_jobs.owner IS NULL OR sync_jobs.lease_until < clock_timestamp()
                 RETURNING fence",
                &[&connector, &stream, &owner, &ttl.as_secs_f64()],
            )
            .await?;
        Ok(row.map(|r| Lease {
            connector: connector.into(),
            stream: stream.into(),
            owner: owner.into(),
            fence: r.get(0),
        }))
    }

    /// Takes the lease from an owner that is known dead, if it still holds it.
    pub async fn take_over_lease(
        &self,
        connector: &str,
        stream: &str,
        dead_owner: &str,
        owner: &str,
        ttl: Duration,
    ) -> anyhow::Result<Option<Lease>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "UPDATE sync_jobs SET owner = $4, fence = fence + 1,
                   lease_until = clock_timestamp() + make_interval(secs => $5)
                 WHERE connector = $1 AND stream = $2 AND owner = $3 RETURNING fence",
                &[&connector, &stream, &dead_owner, &owner, &ttl.as_secs_f64()],
            )
            .await?;
        Ok(row.map(|r| Lease {
            connector: connector.into(),
            stream: stream.into(),
            owner: owner.into(),
            fence: r.get(0),
        }))
    }

    pub async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> anyhow::Result<bool> {
        let client = self.client().await?;
        renew(&client, lease, ttl).await
    }

    pub async fn release_lease(&self, lease: &Lease) -> anyhow::Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE sync_jobs SET owner = NULL, lease_until = NULL
                 WHERE connector = $1 AND stream = $2 AND owner = $3 AND fence = $4",
                &[&lease.connector, &lease.stream, &lease.owner, &lease.fence],
            )
            .await?;
        Ok(())
    }

    pub async fn leases(&self) -> anyhow::Result<Vec<LeaseInfo>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT connector, stream, owner, fence,
                        COALESCE(lease_until < clock_timestamp(), true)
                 FROM sync_jobs ORDER BY connector, stream",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| LeaseInfo {
                connector: r.get(0),
                stream: r.get(1),
                owner: r.get(2),
                fence: r.get(3),
                expired: r.get(4),
            })
            .collect())
    }
}

/// Extends the lease when this owner still holds it under this fence (see the SQLite side).
pub async fn renew(
    client: &impl GenericClient,
    lease: &Lease,
    ttl: Duration,
) -> anyhow::Result<bool> {
    let n = client
        .execute(
            "UPDATE sync_jobs SET lease_until = clock_timestamp() + make_interval(secs => $5)
             WHERE connector = $1 AND stream = $2 AND owner = $3 AND fence = $4",
            &[
                &lease.connector,
                &lease.stream,
                &lease.owner,
                &lease.fence,
                &ttl.as_secs_f64(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// The fencing check of a page commit, inside its transaction.
pub async fn fence(
    client: &impl GenericClient,
    lease: &Lease,
    ttl: Duration,
) -> anyhow::Result<()> {
    if renew(client, lease, ttl).await? {
        Ok(())
    } else {
        Err(lost(lease).into())
    }
}
