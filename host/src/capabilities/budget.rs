//! A grant's rate budget, shared by every invocation and sync that uses the grant: a token bucket
//! (governor), a concurrency cap, and an adaptive pause that a 429/503 `Retry-After` or an
//! exhausted `X-RateLimit-Remaining` puts on the whole grant, not just the request that saw it.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::grant::Resilience;

/// The longest pause an upstream can impose on a grant (a lying `Retry-After` must not park a
/// grant for days).
const MAX_PAUSE: Duration = Duration::from_secs(3600);

pub struct GrantBudget {
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
    slots: Arc<Semaphore>,
    concurrency: u32,
    paused_until: Mutex<Option<Instant>>,
}

/// Why a request may not go now: how long until it could.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NotBefore {
    /// The grant is paused by the upstream's own signal.
    Paused(Duration),
    /// The token bucket or the concurrency cap would make the caller wait this long at least.
    Budget(Duration),
}

impl NotBefore {
    pub fn wait(&self) -> Duration {
        match self {
            NotBefore::Paused(d) | NotBefore::Budget(d) => *d,
        }
    }
}

impl GrantBudget {
    pub fn new(r: &Resilience) -> GrantBudget {
        let period = Duration::from_secs_f64(1.0 / r.rate_per_second).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(r.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        GrantBudget {
            limiter: RateLimiter::direct(quota),
            clock: DefaultClock::default(),
            slots: Arc::new(Semaphore::new(r.concurrency as usize)),
            concurrency: r.concurrency,
            paused_until: Mutex::new(None),
        }
    }

    /// Waits for a token and a concurrency slot, unless that wait would end after `deadline`:
    /// then it says how long the caller would have to wait, without waiting. `waited` grows by
    /// the time actually spent waiting.
    pub async fn acquire(
        &self,
        deadline: Instant,
        waited: &mut Duration,
    ) -> Result<OwnedSemaphorePermit, NotBefore> {
        loop {
            let now = Instant::now();
            if let Some(left) = self.paused_for() {
                if now + left > deadline {
                    return Err(NotBefore::Paused(left));
                }
                tokio::time::sleep(left).await;
                *waited += left;
                continue;
            }
            match self.limiter.check() {
                Ok(()) => break,
                Err(not_until) => {
                    let w = not_until.wait_time_from(self.clock.now());
                    if now + w > deadline {
                        return Err(NotBefore::Budget(w));
                    }
                    tokio::time::sleep(w).await;
                    *waited += w;
                }
            }
        }
        let started = Instant::now();
        match tokio::time::timeout_at(deadline.into(), self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => {
                *waited += started.elapsed();
                Ok(permit)
            }
            // Closed semaphore cannot happen (never closed); a timeout means the cap is saturated.
            _ => Err(NotBefore::Budget(Duration::from_secs(1))),
        }
    }

    /// Pauses the whole grant for `d` (capped), extending any pause already in force.
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d.min(MAX_PAUSE);
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
    }

    /// Time left on the pause, if one is in force.
    pub fn paused_for(&self) -> Option<Duration> {
        let p = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        p.and_then(|until| until.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// Requests in flight through this grant now.
    pub fn in_flight(&self) -> u32 {
        self.concurrency
            .saturating_sub(self.slots.available_permits() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(rate: f64, burst: u32, concurrency: u32) -> GrantBudget {
        GrantBudget::new(&Resilience {
            rate_per_second: rate,
            burst,
            concurrency,
            ..Resilience::default()
        })
    }

    #[tokio::test]
    async fn burst_goes_at_once_then_the_bucket_refuses_to_wait_past_the_deadline() {
        let b = budget(1.0, 3, 10);
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        let mut permits = Vec::new();
        for _ in 0..3 {
            permits.push(b.acquire(deadline, &mut waited).await.expect("burst"));
        }
        assert_eq!(b.in_flight(), 3);
        match b.acquire(deadline, &mut waited).await {
            Err(NotBefore::Budget(w)) => assert!(w > Duration::from_millis(500), "{w:?}"),
            other => panic!("expected a budget refusal, got {other:?}"),
        }
        assert!(waited < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_pause_holds_every_caller_and_reports_time_left() {
        let b = budget(1000.0, 1000, 10);
        b.pause(Duration::from_secs(60));
        // A shorter pause never shortens a longer one.
        b.pause(Duration::from_secs(1));
        let left = b.paused_for().expect("paused");
        assert!(left > Duration::from_secs(58), "{left:?}");
        let mut waited = Duration::ZERO;
        let r = b
            .acquire(Instant::now() + Duration::from_secs(30), &mut waited)
            .await;
        assert!(matches!(r, Err(NotBefore::Paused(d)) if d > Duration::from_secs(58)));
    }

    #[tokio::test]
    async fn a_short_pause_is_waited_out() {
        let b = budget(1000.0, 1000, 10);
        b.pause(Duration::from_millis(50));
        let mut waited = Duration::ZERO;
        let started = Instant::now();
        let _permit = b
            .acquire(Instant::now() + Duration::from_secs(5), &mut waited)
            .await
            .expect("acquired after the pause");
        assert!(started.elapsed() >= Duration::from_millis(45));
        assert!(waited >= Duration::from_millis(45));
    }

    #[tokio::test]
    async fn the_concurrency_cap_holds_callers_until_a_slot_frees() {
        let b = Arc::new(budget(1000.0, 1000, 1));
        let mut waited = Duration::ZERO;
        let first = b
            .acquire(Instant::now() + Duration::from_secs(5), &mut waited)
            .await
            .expect("first");
        let r = b
            .acquire(Instant::now() + Duration::from_millis(50), &mut waited)
            .await;
        assert!(
            r.is_err(),
            "second caller must not get a slot while the first holds it"
        );
        drop(first);
        let _permit = b
            .acquire(Instant::now() + Duration::from_secs(1), &mut waited)
            .await
            .expect("slot freed");
    }
}
