//! The denial budget of one invocation: a connector that keeps asking for what it may not have
//! would otherwise write an audit row per attempt (a 30 s invocation could write a million).
//! The first `limit` denials are audited one by one; the next one stops the invocation: from
//! then on the gate refuses every request without a row, the invocation ends with an error,
//! and one summary row says how many requests went unrecorded.

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug)]
pub struct DenialBudget {
    limit: u32,
    denied: AtomicU32,
    /// Requests refused without a row once the budget was spent.
    suppressed: AtomicU32,
}

/// What to do with one denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Within the budget: audit it as usual.
    Record,
    /// Past the budget: refuse without a row.
    Suppress,
}

impl DenialBudget {
    pub fn new(limit: u32) -> DenialBudget {
        DenialBudget {
            limit: limit.max(1),
            denied: AtomicU32::new(0),
            suppressed: AtomicU32::new(0),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one denial.
    pub fn spend(&self) -> Spend {
        let n = self
            .denied
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n <= self.limit {
            Spend::Record
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            Spend::Suppress
        }
    }

    /// A request refused because the invocation is stopped (counted, never audited).
    pub fn refuse(&self) {
        self.suppressed.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the budget is spent and the invocation must stop.
    pub fn stopped(&self) -> bool {
        self.denied.load(Ordering::Relaxed) > self.limit
    }

    /// Requests refused without a row.
    pub fn suppressed(&self) -> u32 {
        self.suppressed.load(Ordering::Relaxed)
    }
}

tokio::task_local! {
    /// The budget of the invocation whose request the gate is handling (the gate's send future
    /// runs on its own task, so it is set around that future).
    pub static CURRENT: std::sync::Arc<DenialBudget>;
}

/// The budget of the request being handled, if any.
pub fn current() -> Option<std::sync::Arc<DenialBudget>> {
    CURRENT.try_with(std::sync::Arc::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_n_denials_are_recorded_then_the_invocation_stops() {
        let b = DenialBudget::new(3);
        for _ in 0..3 {
            assert_eq!(b.spend(), Spend::Record);
            assert!(!b.stopped());
        }
        assert_eq!(b.spend(), Spend::Suppress);
        assert!(b.stopped());
        b.refuse();
        b.refuse();
        assert_eq!(b.suppressed(), 3);
    }
}
