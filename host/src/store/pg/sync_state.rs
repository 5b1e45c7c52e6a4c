//! Per-(connector, stream) sync state on PostgreSQL, mirroring `store/sync_state.rs`.

use deadpool_postgres::GenericClient;

use super::PgStore;
use crate::store::backend::PageCommit;
use crate::store::sync_state::SyncState;

const COLUMNS: &str = "s.connector, s.stream, s.cursor, s.cursor_updated_at, s.last_success_at,
    s.last_error, s.last_error_at, s.resume_after,
    (SELECT COUNT(*) FROM documents d WHERE d.connector = s.connector AND d.stream = s.stream),
    s.last_run_upserts, s.last_run_deletes";

fn row(r: &tokio_postgres::Row) -> SyncState {
    SyncState {
        connector: r.get(0),
        stream: r.get(1),
        cursor: r.get(2),
        cursor_updated_at: r.get(3),
        last_success_at: r.get(4),
        last_error: r.get(5),
        last_error_at: r.get(6),
        resume_after: r.get(7),
        records: r.get(8),
        last_run_upserts: r.get(9),
        last_run_deletes: r.get(10),
    }
}

async fn ensure(c: &impl GenericClient, connector: &str, stream: &str) -> anyhow::Result<()> {
    c.execute(
        "INSERT INTO sync_state (connector, stream) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&connector, &stream],
    )
    .await?;
    Ok(())
}

/// The page's cursor and counts (and success, on the last page) inside its transaction.
pub async fn commit_cursor(
    tx: &impl GenericClient,
    p: &PageCommit,
    now: &str,
) -> anyhow::Result<()> {
    ensure(tx, &p.connector, &p.stream).await?;
    tx.execute(
        "UPDATE sync_state SET cursor = $3, cursor_updated_at = $4,
           last_run_upserts = CASE WHEN $7 THEN $5 ELSE last_run_upserts + $5 END,
           last_run_deletes = CASE WHEN $7 THEN $6 ELSE last_run_deletes + $6 END,
           cursor_invocation = $8
         WHERE connector = $1 AND stream = $2",
        &[
            &p.connector,
            &p.stream,
            &p.next_cursor,
            &now,
            &p.counts.upserts,
            &p.counts.deletes,
            &p.counts.first,
            &p.invocation,
        ],
    )
    .await?;
    if p.done {
        tx.execute(
            "UPDATE sync_state SET last_success_at = $3, last_error = NULL, last_error_at = NULL,
               resume_after = NULL WHERE connector = $1 AND stream = $2",
            &[&p.connector, &p.stream, &now],
        )
        .await?;
    }
    Ok(())
}

impl PgStore {
    pub async fn sync_state(
        &self,
        connector: &str,
        stream: &str,
    ) -> anyhow::Result<Option<SyncState>> {
        let client = self.client().await?;
        let r = client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM sync_state s WHERE s.connector = $1 AND s.stream = $2"
                ),
                &[&connector, &stream],
            )
            .await?;
        Ok(r.as_ref().map(row))
    }

    pub async fn sync_states(&self) -> anyhow::Result<Vec<SyncState>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM sync_state s
                     ORDER BY s.connector COLLATE \"C\", s.stream COLLATE \"C\""
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(row).collect())
    }

    pub async fn record_sync_error(
        &self,
        connector: &str,
        stream: &str,
        error: &str,
        now: &str,
    ) -> anyhow::Result<()> {
        self.update(
            connector,
            stream,
            "last_error = $3, last_error_at = $4",
            &[&error, &now],
        )
        .await
    }

    pub async fn record_rate_limited(
        &self,
        connector: &str,
        stream: &str,
        resume_after: &str,
    ) -> anyhow::Result<()> {
        self.update(connector, stream, "resume_after = $3", &[&resume_after])
            .await
    }

    pub async fn reset_cursor(&self, connector: &str, stream: &str) -> anyhow::Result<()> {
        self.update(
            connector,
            stream,
            "cursor = NULL, cursor_updated_at = NULL",
            &[],
        )
        .await
    }

    /// Sets columns of a stream's row (made first when missing) in one transaction.
    async fn update(
        &self,
        connector: &str,
        stream: &str,
        set: &str,
        values: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        ensure(&tx, connector, stream).await?;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&connector, &stream];
        params.extend_from_slice(values);
        tx.execute(
            &format!("UPDATE sync_state SET {set} WHERE connector = $1 AND stream = $2"),
            &params,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
