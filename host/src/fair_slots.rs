//! Fair admission of runs (scheduled sync runs, and invocations: two separate sets of slots): at
//! most `max_running` at once on the node and at most `max_per_tenant` for any one tenant, and
//! when runs wait, free slots go to the waiting tenants in turn (round robin), so one tenant's
//! backlog never delays another tenant's run by more than one run per tenant ahead of it. Within
//! a tenant, runs go first come, first served.
//!
//! Written here rather than taken from a crate: tokio's semaphore is fair only in arrival order
//! (a tenant with 500 due streams would queue ahead of everyone), and the limiter crates pace
//! rates, not concurrency.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The caps (from `[scheduler]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub max_running: usize,
    pub max_per_tenant: usize,
}

pub struct FairSlots {
    state: Mutex<State>,
}

struct State {
    caps: Caps,
    running: usize,
    per_tenant: HashMap<String, usize>,
    waiting: HashMap<String, VecDeque<oneshot::Sender<Slot>>>,
    /// Tenants with waiters, in the order they are served next.
    turn: VecDeque<String>,
}

/// A running slot; dropping it frees the slot for the next tenant in turn.
pub struct Slot {
    slots: Arc<FairSlots>,
    tenant: String,
    /// False for a slot whose hand-over failed (its waiter had gone): its count was already
    /// taken back under the lock.
    armed: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.slots.release(&self.tenant);
        }
    }
}

impl FairSlots {
    pub fn new(caps: Caps) -> Arc<FairSlots> {
        Arc::new(FairSlots {
            state: Mutex::new(State {
                caps,
                running: 0,
                per_tenant: HashMap::new(),
                waiting: HashMap::new(),
                turn: VecDeque::new(),
            }),
        })
    }

    /// New caps (a reload); runs already going keep their slots.
    pub fn set_caps(self: &Arc<Self>, caps: Caps) {
        if let Ok(mut s) = self.state.lock() {
            s.caps = caps;
            s.dispatch(self);
        }
    }

    /// Waits for a slot for a run of `tenant`.
    pub async fn acquire(self: &Arc<Self>, tenant: &str) -> Slot {
        let rx = {
            let Ok(mut s) = self.state.lock() else {
                // A poisoned lock means a panic elsewhere; run rather than stall every sync.
                return Slot {
                    slots: self.clone(),
                    tenant: tenant.to_string(),
                    armed: false,
                };
            };
            let queued = s.waiting.get(tenant).is_some_and(|q| !q.is_empty());
            if !queued && s.has_room(tenant) {
                s.take(tenant);
                return Slot {
                    slots: self.clone(),
                    tenant: tenant.to_string(),
                    armed: true,
                };
            }
            let (tx, rx) = oneshot::channel();
            let q = s.waiting.entry(tenant.to_string()).or_default();
            q.push_back(tx);
            if q.len() == 1 {
                s.turn.push_back(tenant.to_string());
            }
            rx
        };
        match rx.await {
            Ok(slot) => slot,
            // The sender is only dropped with the whole FairSlots: nothing to wait for.
            Err(_) => Slot {
                slots: self.clone(),
                tenant: tenant.to_string(),
                armed: false,
            },
        }
    }

    fn release(self: &Arc<Self>, tenant: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.give_back(tenant);
            s.dispatch(self);
        }
    }

    /// Per tenant with runs going or waiting: (tenant, running, waiting), for metrics. A
    /// waiter that gave up (its caller timed out) is not counted, though it stays queued until
    /// its turn comes.
    pub fn by_tenant(&self) -> Vec<(String, usize, usize)> {
        let Ok(s) = self.state.lock() else {
            return Vec::new();
        };
        let mut out: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        for (tenant, n) in &s.per_tenant {
            out.entry(tenant).or_default().0 = *n;
        }
        for (tenant, q) in &s.waiting {
            let live = q.iter().filter(|tx| !tx.is_closed()).count();
            if live > 0 {
                out.entry(tenant).or_default().1 = live;
            }
        }
        out.into_iter()
            .map(|(t, (running, waiting))| (t.to_string(), running, waiting))
            .collect()
    }

    /// (running, waiting) runs, for metrics and tests.
    pub fn load(&self) -> (usize, usize) {
        self.state
            .lock()
            .map(|s| (s.running, s.waiting.values().map(VecDeque::len).sum()))
            .unwrap_or((0, 0))
    }
}

impl State {
    fn has_room(&self, tenant: &str) -> bool {
        self.running < self.caps.max_running
            && self.per_tenant.get(tenant).copied().unwrap_or(0) < self.caps.max_per_tenant
    }

    fn take(&mut self, tenant: &str) {
        self.running += 1;
        *self.per_tenant.entry(tenant.to_string()).or_default() += 1;
    }

    fn give_back(&mut self, tenant: &str) {
        self.running = self.running.saturating_sub(1);
        if let Some(n) = self.per_tenant.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_tenant.remove(tenant);
            }
        }
    }

    /// Hands free slots to waiting tenants in turn until no waiting tenant has room.
    fn dispatch(&mut self, slots: &Arc<FairSlots>) {
        let mut passed = 0;
        while self.running < self.caps.max_running && passed < self.turn.len() {
            let Some(tenant) = self.turn.pop_front() else {
                break;
            };
            if !self.has_room(&tenant) {
                self.turn.push_back(tenant);
                passed += 1;
                continue;
            }
            passed = 0;
            let next = self.waiting.get_mut(&tenant).and_then(VecDeque::pop_front);
            if let Some(tx) = next {
                self.take(&tenant);
                let slot = Slot {
                    slots: slots.clone(),
                    tenant: tenant.clone(),
                    armed: true,
                };
                if let Err(mut unwanted) = tx.send(slot) {
                    // The waiter gave up (its task was cancelled): take the slot back here,
                    // under the lock, instead of in its Drop.
                    unwanted.armed = false;
                    self.give_back(&tenant);
                }
            }
            if self.waiting.get(&tenant).is_some_and(|q| !q.is_empty()) {
                self.turn.push_back(tenant);
            } else {
                self.waiting.remove(&tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn caps(max_running: usize, max_per_tenant: usize) -> Caps {
        Caps {
            max_running,
            max_per_tenant,
        }
    }

    #[tokio::test]
    async fn caps_hold_globally_and_per_tenant() {
        let slots = FairSlots::new(caps(3, 2));
        let a1 = slots.acquire("a").await;
        let _a2 = slots.acquire("a").await;
        assert_eq!(slots.load(), (2, 0));
        let s = slots.clone();
        let a3 = tokio::spawn(async move { s.acquire("a").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.load(), (2, 1), "a third run of tenant a waits");
        let _b1 = slots.acquire("b").await;
        assert_eq!(slots.load(), (3, 1), "tenant b still gets the last slot");
        drop(a1);
        let _a3 = a3.await.unwrap();
        assert_eq!(slots.load(), (3, 0));
    }

    #[tokio::test]
    async fn a_tenant_with_a_backlog_does_not_delay_the_others() {
        // One slot; tenant "big" queues 50 runs first, then 5 small tenants queue one each.
        let slots = FairSlots::new(caps(1, 1));
        let first = slots.acquire("big").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let mut spawn = |tenant: String| {
            let (s, o) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = s.acquire(&tenant).await;
                o.lock().unwrap().push(tenant);
                tokio::task::yield_now().await;
            }));
        };
        for _ in 0..50 {
            spawn("big".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..5 {
            spawn(format!("small{i}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.len(), 55);
        for i in 0..5 {
            let at = order
                .iter()
                .position(|t| *t == format!("small{i}"))
                .unwrap();
            assert!(
                at <= 2 * (i + 1),
                "small{i} ran at position {at} of {order:?}: it waited behind big's backlog"
            );
        }
    }

    #[tokio::test]
    async fn waiting_runs_are_counted_per_tenant_and_a_waiter_that_gave_up_is_not() {
        let slots = FairSlots::new(caps(4, 1));
        let _a = slots.acquire("a").await;
        let _b = slots.acquire("b").await;
        let mut waiters = Vec::new();
        for _ in 0..3 {
            let s = slots.clone();
            waiters.push(tokio::spawn(async move { s.acquire("a").await }));
        }
        let s = slots.clone();
        let gave_up = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(10), s.acquire("b")).await
        });
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(gave_up.await.unwrap().is_err(), "b's second run timed out");
        assert_eq!(
            slots.by_tenant(),
            vec![("a".to_string(), 1, 3), ("b".to_string(), 1, 0)]
        );
        for w in waiters {
            w.abort();
        }
    }

    #[tokio::test]
    async fn a_cancelled_waiter_does_not_leak_its_slot() {
        let slots = FairSlots::new(caps(1, 1));
        let held = slots.acquire("a").await;
        let s = slots.clone();
        let gone = tokio::spawn(async move { s.acquire("b").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(5), slots.acquire("c")).await;
        assert!(again.is_ok(), "the slot came back");
        assert_eq!(slots.load(), (1, 0));
    }
}
