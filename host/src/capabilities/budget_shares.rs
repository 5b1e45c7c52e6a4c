//! Grant rate budgets shared by several daemons on one PostgreSQL store: a grant's `rate` is the
//! limit of the whole deployment. Every daemon that holds a grant (has its connector loaded)
//! keeps a row alive for it and runs its local budget at `1 / holders` of the rate and burst;
//! a daemon that dies stops renewing and its share returns to the others after [`TTL`]. A pause
//! an upstream's 429 / `Retry-After` put on a grant on one daemon is published and applied by
//! every other daemon within one [`ROUND`].
//!
//! Why shares rather than one token bucket row in the database: a row updated per upstream
//! request puts a database round trip and a hot row lock on every outbound call, and the local
//! queue (interactive first, round robin among callers) would no longer decide who goes next.
//! With shares the hot path stays in memory and the database sees one small exchange per daemon
//! per second. The cost: a daemon's unused share is not lent to a busy one (N daemons with one
//! busy grant send at most rate/N each), and when a daemon joins, the others learn of it within
//! one round, so for up to a second the deployment may exceed the rate by the newcomer's share.
//! Breaker state stays per daemon: a breaker protects against an upstream failing *this*
//! daemon's calls (its network path, its DNS), and opening it a few calls later on another
//! daemon costs only those calls.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::budget::{GrantBudget, WeakBudget};
use crate::store::backend::Store;

/// How often a daemon renews its shares and reads the others'.
pub const ROUND: Duration = Duration::from_secs(1);
/// How long a share outlives its daemon's last renewal.
pub const TTL: Duration = Duration::from_secs(5);

/// The budgets this daemon holds, by grant key (`connector/grant`).
#[derive(Default)]
pub struct BudgetShares {
    held: Mutex<Vec<Held>>,
}

struct Held {
    key: String,
    budget: WeakBudget,
    /// The end of the latest pause published or received, so a pause is shared once.
    known_pause: Option<Instant>,
}

impl BudgetShares {
    pub fn new() -> BudgetShares {
        BudgetShares::default()
    }

    /// Takes part in the exchange with `budget` under `key` until the budget is dropped.
    pub fn hold(&self, key: String, budget: &GrantBudget) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|h| h.budget.upgrade().is_some());
        held.push(Held {
            key,
            budget: budget.downgrade(),
            known_pause: None,
        });
    }

    /// One exchange with the store: renew this daemon's shares, publish new pauses, and set
    /// each held budget to its share and the pauses others published.
    pub async fn round(&self, store: &Store, owner: &str) -> anyhow::Result<()> {
        let (keys, pauses) = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            held.retain(|h| h.budget.upgrade().is_some());
            let now = Instant::now();
            let mut keys: Vec<String> = held.iter().map(|h| h.key.clone()).collect();
            keys.sort();
            keys.dedup();
            let mut pauses = Vec::new();
            for h in held.iter_mut() {
                let Some(until) = h.budget.upgrade().and_then(|b| b.paused_until()) else {
                    continue;
                };
                if h.known_pause
                    .is_none_or(|k| until > k + Duration::from_millis(50))
                {
                    pauses.push((h.key.clone(), until.saturating_duration_since(now)));
                    h.known_pause = Some(until);
                }
            }
            (keys, pauses)
        };
        let round = store.share_round(owner, &keys, &pauses, TTL).await?;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for h in held.iter_mut() {
            let Some(budget) = h.budget.upgrade() else {
                continue;
            };
            // Not counted yet (the row was written this round): count this daemon at least.
            let holders = round.holders.get(&h.key).copied().unwrap_or(1).max(1);
            budget.set_share(1.0 / f64::from(holders));
            if let Some(left) = round.paused.get(&h.key) {
                let until = now + *left;
                if h.known_pause
                    .is_none_or(|k| until > k + Duration::from_millis(50))
                {
                    budget.pause(*left);
                    h.known_pause = Some(until);
                }
            }
        }
        Ok(())
    }

    /// Runs the exchange every [`ROUND`] until the task is aborted; a failed round keeps the
    /// shares in force (logged once per outage, not every second).
    pub async fn run(self: std::sync::Arc<Self>, store: Store, owner: String) {
        let mut failing = false;
        let mut tick = tokio::time::interval(ROUND);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.round(&store, &owner).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("rate shares: the store answers again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        "rate shares: cannot reach the store ({e:#}); keeping the shares in force"
                    );
                }
                Err(_) => {}
            }
        }
    }
}
