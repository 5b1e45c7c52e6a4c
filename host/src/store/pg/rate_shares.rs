//! Shared rate budgets on PostgreSQL: each daemon that holds a grant keeps a row alive for it,
//! and takes `1 / (live rows)` of the grant's rate; a grant paused by an upstream's 429 on one
//! daemon is paused on all. Times are the database's clock, so daemons whose clocks differ agree.

use std::collections::HashMap;
use std::time::Duration;

use super::PgStore;

/// What one round of the share exchange tells a daemon, per grant key it holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ShareRound {
    /// Daemons holding the grant now (this one included).
    pub holders: HashMap<String, u32>,
    /// Pauses in force on grants this daemon holds, as time left.
    pub paused: HashMap<String, Duration>,
}

impl PgStore {
    /// Keeps `owner`'s rows alive for `keys` for `ttl` (and drops its rows for other keys),
    /// publishes `pauses` (key, time left; a longer pause already in force stays), and reads
    /// back the holders and pauses of `keys`.
    pub async fn share_round(
        &self,
        owner: &str,
        keys: &[String],
        pauses: &[(String, Duration)],
        ttl: Duration,
    ) -> anyhow::Result<ShareRound> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM rate_shares WHERE (owner = $1 AND NOT (grant_key = ANY($2)))
                    OR seen_until < clock_timestamp() - interval '10 minutes'",
                &[&owner, &keys],
            )
            .await?;
        client
            .execute(
                "INSERT INTO rate_shares (grant_key, owner, seen_until)
                 SELECT k, $2, clock_timestamp() + make_interval(secs => $3)
                 FROM unnest($1::text[]) AS k
                 ON CONFLICT (grant_key, owner) DO UPDATE SET seen_until = excluded.seen_until",
                &[&keys, &owner, &ttl.as_secs_f64()],
            )
            .await?;
        if !pauses.is_empty() {
            let (pk, left): (Vec<&str>, Vec<f64>) = pauses
                .iter()
                .map(|(k, d)| (k.as_str(), d.as_secs_f64()))
                .unzip();
            client
                .execute(
                    "INSERT INTO grant_pauses (grant_key, paused_until)
                     SELECT k, clock_timestamp() + make_interval(secs => s)
                     FROM unnest($1::text[], $2::float8[]) AS t(k, s)
                     ON CONFLICT (grant_key) DO UPDATE
                       SET paused_until = GREATEST(grant_pauses.paused_until, excluded.paused_until)",
                    &[&pk, &left],
                )
                .await?;
        }
        let mut round = ShareRound::default();
        for row in client
            .query(
                "SELECT grant_key, count(*) FROM rate_shares
                 WHERE grant_key = ANY($1) AND seen_until > clock_timestamp() GROUP BY grant_key",
                &[&keys],
            )
            .await?
        {
            let n: i64 = row.get(1);
            round
                .holders
                .insert(row.get(0), u32::try_from(n).unwrap_or(u32::MAX));
        }
        for row in client
            .query(
                "SELECT grant_key, EXTRACT(EPOCH FROM paused_until - clock_timestamp())::float8
                 FROM grant_pauses WHERE grant_key = ANY($1) AND paused_until > clock_timestamp()",
                &[&keys],
            )
            .await?
        {
            let secs: f64 = row.get(1);
            if let Ok(d) = Duration::try_from_secs_f64(secs) {
                round.paused.insert(row.get(0), d);
            }
        }
        Ok(round)
    }

    /// Drops `owner`'s rows at a clean shutdown, so the others take its share at once.
    pub async fn leave_shares(&self, owner: &str) -> anyhow::Result<()> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM rate_shares WHERE owner = $1", &[&owner])
            .await?;
        Ok(())
    }
}
