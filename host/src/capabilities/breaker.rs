//! A grant's circuit breaker: after N consecutive failures (5xx, timeouts, connection errors) it
//! opens and the gate fails fast; after the cool-down one probe goes through, and its outcome
//! closes or re-opens the circuit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
    /// The gauge value in metrics: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// Whether a request may go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admit {
    Go,
    /// The circuit is open (or its probe is out): fail fast, try again after this long.
    FailFast(Duration),
}

struct Inner {
    state: BreakerState,
    consecutive: u32,
    open_until: Instant,
}

pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive: 0,
                open_until: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Asks to send one request. Returns the transition to half-open when this caller becomes
    /// the probe.
    pub fn admit(&self) -> (Admit, Option<BreakerState>) {
        let mut i = self.lock();
        match i.state {
            BreakerState::Closed => (Admit::Go, None),
            BreakerState::Open => {
                let now = Instant::now();
                if now >= i.open_until {
                    i.state = BreakerState::HalfOpen;
                    (Admit::Go, Some(BreakerState::HalfOpen))
                } else {
                    (Admit::FailFast(i.open_until - now), None)
                }
            }
            // One probe at a time; the others fail fast briefly.
            BreakerState::HalfOpen => (Admit::FailFast(Duration::from_secs(1)), None),
        }
    }

    /// The upstream answered (anything but a failure): returns the transition, if any.
    pub fn success(&self) -> Option<BreakerState> {
        let mut i = self.lock();
        i.consecutive = 0;
        if i.state != BreakerState::Closed {
            i.state = BreakerState::Closed;
            return Some(BreakerState::Closed);
        }
        None
    }

    /// A failure (5xx, timeout, connection error): returns the transition, if any.
    pub fn failure(&self) -> Option<BreakerState> {
        let mut i = self.lock();
        i.consecutive = i.consecutive.saturating_add(1);
        let open = match i.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => i.consecutive >= self.threshold,
            BreakerState::Open => false,
        };
        if open {
            i.state = BreakerState::Open;
            i.open_until = Instant::now() + self.cooldown;
            return Some(BreakerState::Open);
        }
        None
    }

    /// A probe that never reached the upstream (e.g. refused by the budget) gives its turn back.
    pub fn release_probe(&self) {
        let mut i = self.lock();
        if i.state == BreakerState::HalfOpen {
            i.state = BreakerState::Open;
            i.open_until = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_consecutive_failures_and_fails_fast() {
        let b = Breaker::new(3, Duration::from_secs(30));
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), None);
        // A success in between resets the count.
        assert_eq!(b.success(), None);
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), Some(BreakerState::Open));
        assert!(matches!(b.admit().0, Admit::FailFast(d) if d > Duration::from_secs(29)));
    }

    #[test]
    fn after_the_cooldown_one_probe_goes_and_its_outcome_decides() {
        let b = Breaker::new(1, Duration::from_millis(20));
        assert_eq!(b.failure(), Some(BreakerState::Open));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.admit(), (Admit::Go, Some(BreakerState::HalfOpen)));
        // Only one probe at a time.
        assert!(matches!(b.admit().0, Admit::FailFast(_)));
        // A failed probe re-opens...
        assert_eq!(b.failure(), Some(BreakerState::Open));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.admit().0, Admit::Go);
        // ...a successful one closes.
        assert_eq!(b.success(), Some(BreakerState::Closed));
        assert_eq!(b.admit(), (Admit::Go, None));
    }

    #[test]
    fn a_probe_that_never_went_gives_its_turn_back() {
        let b = Breaker::new(1, Duration::from_millis(1));
        b.failure();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(b.admit().0, Admit::Go);
        b.release_probe();
        assert_eq!(b.admit().0, Admit::Go);
    }
}
