//! A grant's rate budget, shared by every invocation and sync that uses the grant: a rate
//! schedule (GCRA: the rate with a burst allowance), a concurrency cap, and an adaptive pause that
//! a 429/503 `Retry-After` or an exhausted `X-RateLimit-Remaining` puts on the whole grant.
//!
//! **Turns, not a lottery.** A caller that cannot go at once joins a queue and sleeps until it is
//! handed its turn: a concurrency slot at a time the rate allows. While anyone waits, one
//! dispatcher task per grant hands the turns out (it ends when the queue empties), so nobody
//! re-checks a limiter and races the others for the token it frees. The order:
//! - **Interactive work first** (API and MCP invocations, approved writes, live search), then
//!   **background** (syncs), but the background keeps a share of the turns while both wait
//!   (`background_share`, default 20%), so a person's request is not stuck behind a 100,000-record
//!   sync and the sync still progresses.
//! - **Round-robin among callers** (principals) within a class, each caller's own requests in
//!   the order they asked: no caller takes more than its share while others wait.
//!
//! A caller whose turn would come after its deadline (estimated from the queue ahead of it) is
//! told at once how long it would have to wait, without taking a place in the queue.
//!
//! Hand-written rather than governor's limiter: governor answers "not before T" to each caller
//! separately, which is exactly the race that starved callers; a queue with classes and
//! round-robin is what this needs, and GCRA itself is two lines of arithmetic.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::grant::Resilience;

/// The longest pause an upstream can impose on a grant (a lying `Retry-After` must not park a
/// grant for days).
const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// How late the dispatcher's timer may wake without the rate losing that time (tokio's timer
/// has a resolution of a millisecond).
const LATE_WAKE: Duration = Duration::from_millis(2);

/// Who is asking, for the order of turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Class {
    /// A person or an application waiting for the answer.
    #[default]
    Interactive,
    /// Syncs: nobody waits on one request.
    Background,
}

impl Class {
    fn lane(self) -> usize {
        match self {
            Class::Interactive => 0,
            Class::Background => 1,
        }
    }
}

/// Clones are handles to the same budget.
#[derive(Clone)]
pub struct GrantBudget {
    inner: Arc<Inner>,
}

/// A budget held without keeping it alive (the share exchange forgets a budget whose gate a
/// reload dropped).
#[derive(Clone)]
pub struct WeakBudget(std::sync::Weak<Inner>);

impl WeakBudget {
    pub fn upgrade(&self) -> Option<GrantBudget> {
        self.0.upgrade().map(|inner| GrantBudget { inner })
    }
}

struct Inner {
    /// The grant's whole rate and burst; the schedule in force is this daemon's share of them.
    rate_per_second: f64,
    burst: u32,
    background_share: f64,
    slots: Arc<Semaphore>,
    concurrency: u32,
    paused_until: Mutex<Option<Instant>>,
    queue: Mutex<Queue>,
}

struct Queue {
    /// Time between requests at the sustained rate (of this daemon's share).
    interval: Duration,
    /// How far ahead of the schedule a request may go (the burst allowance).
    tolerance: Duration,
    /// GCRA's theoretical arrival time: a request conforms at `t` when `t + tolerance >= tat`.
    tat: Instant,
    lanes: [Lane; 2],
    /// Whether a dispatcher task is running (it stops when the queue is empty).
    dispatching: bool,
    /// Weighted round-robin between the classes while both wait: each contended turn adds
    /// `background_share`; a full credit gives the turn to the background.
    background_credit: f64,
}

/// One class's waiters: callers in round-robin order, each with its requests in order.
#[derive(Default)]
struct Lane {
    order: VecDeque<Arc<str>>,
    by_caller: HashMap<Arc<str>, VecDeque<Waiter>>,
    len: usize,
}

struct Waiter {
    asked: Instant,
    deadline: Instant,
    turn: oneshot::Sender<OwnedSemaphorePermit>,
}

impl Waiter {
    fn gone(&self, now: Instant) -> bool {
        self.turn.is_closed() || self.deadline <= now
    }
}

impl Lane {
    fn push(&mut self, caller: &str, w: Waiter) {
        let key: Arc<str> = Arc::from(caller);
        let q = self.by_caller.entry(key.clone()).or_default();
        if q.is_empty() {
            self.order.push_back(key);
        }
        q.push_back(w);
        self.len += 1;
    }

    /// The next live waiter in round-robin order; waiters that gave up or expired are dropped.
    fn pop(&mut self, now: Instant) -> Option<Waiter> {
        while let Some(caller) = self.order.pop_front() {
            let Some(q) = self.by_caller.get_mut(&caller) else {
                continue;
            };
            let mut found = None;
            while let Some(w) = q.pop_front() {
                self.len -= 1;
                if !w.gone(now) {
                    found = Some(w);
                    break;
                }
            }
            if q.is_empty() {
                self.by_caller.remove(&caller);
            } else {
                self.order.push_back(caller);
            }
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Drops every waiter that gave up or expired.
    fn purge(&mut self, now: Instant) {
        let mut dropped = 0;
        self.by_caller.retain(|_, q| {
            let before = q.len();
            q.retain(|w| !w.gone(now));
            dropped += before - q.len();
            !q.is_empty()
        });
        let by_caller = &self.by_caller;
        self.order.retain(|c| by_caller.contains_key(c));
        self.len -= dropped;
    }

    fn oldest(&self) -> Option<Instant> {
        self.by_caller
            .values()
            .filter_map(|q| q.front().map(|w| w.asked))
            .min()
    }
}

impl Queue {
    fn waiting(&self) -> usize {
        self.lanes[0].len + self.lanes[1].len
    }
}

/// Why a request may not go now: how long until it could.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NotBefore {
    /// The grant is paused by the upstream's own signal.
    Paused(Duration),
    /// The rate or the concurrency cap would make the caller wait this long at least.
    Budget(Duration),
}

impl NotBefore {
    pub fn wait(&self) -> Duration {
        match self {
            NotBefore::Paused(d) | NotBefore::Budget(d) => *d,
        }
    }
}

/// Waiting callers of a grant, for the API and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueueState {
    pub interactive: usize,
    pub background: usize,
    /// How long the longest-waiting caller has waited.
    pub oldest_wait: Option<Duration>,
}

impl GrantBudget {
    pub fn new(r: &Resilience) -> GrantBudget {
        let (interval, tolerance) = schedule(r.rate_per_second, r.burst, 1.0);
        GrantBudget {
            inner: Arc::new(Inner {
                rate_per_second: r.rate_per_second,
                burst: r.burst,
                background_share: r.background_share.clamp(0.0, 1.0),
                slots: Arc::new(Semaphore::new(r.concurrency as usize)),
                concurrency: r.concurrency,
                paused_until: Mutex::new(None),
                queue: Mutex::new(Queue {
                    interval,
                    tolerance,
                    tat: Instant::now(),
                    lanes: [Lane::default(), Lane::default()],
                    dispatching: false,
                    background_credit: 0.0,
                }),
            }),
        }
    }

    /// Waits for this caller's turn (a concurrency slot at a time the rate allows), unless it
    /// would come after `deadline`: then it says how long the caller would have to wait, without
    /// waiting. `waited` grows by the time actually spent waiting.
    pub async fn acquire(
        &self,
        class: Class,
        caller: &str,
        deadline: Instant,
        waited: &mut Duration,
    ) -> Result<OwnedSemaphorePermit, NotBefore> {
        let inner = &self.inner;
        while let Some(left) = self.paused_for() {
            if Instant::now() + left > deadline {
                return Err(NotBefore::Paused(left));
            }
            tokio::time::sleep(left).await;
            *waited += left;
        }
        let asked = Instant::now();
        let turn = {
            let mut q = inner.lock_queue();
            let now = Instant::now();
            // Nobody waits and the rate allows it: go now.
            if q.waiting() == 0
                && now + q.tolerance >= q.tat
                && let Ok(permit) = inner.slots.clone().try_acquire_owned()
            {
                q.tat = q.tat.max(now) + q.interval;
                return Ok(permit);
            }
            for lane in &mut q.lanes {
                lane.purge(now);
            }
            let eta = inner.eta(&q, class, now);
            if eta > deadline {
                return Err(NotBefore::Budget(eta - now));
            }
            let (tx, rx) = oneshot::channel();
            q.lanes[class.lane()].push(
                caller,
                Waiter {
                    asked,
                    deadline,
                    turn: tx,
                },
            );
            if !q.dispatching {
                q.dispatching = true;
                tokio::spawn(dispatch(inner.clone()));
            }
            rx
        };
        match tokio::time::timeout_at(deadline.into(), turn).await {
            Ok(Ok(permit)) => {
                *waited += asked.elapsed();
                Ok(permit)
            }
            // The estimate was too kind (others ahead were served first, or a pause came):
            // the caller's place is dropped with the receiver.
            _ => {
                *waited += asked.elapsed();
                Err(NotBefore::Budget(inner.lock_queue().interval))
            }
        }
    }

    /// Pauses the whole grant for `d` (capped), extending any pause already in force.
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d.min(MAX_PAUSE);
        let mut p = self
            .inner
            .paused_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
    }

    pub fn downgrade(&self) -> WeakBudget {
        WeakBudget(Arc::downgrade(&self.inner))
    }

    /// Runs this budget at `share` (0 < share ≤ 1) of the grant's rate and burst: what one of
    /// several daemons sharing the grant may send (see [`super::budget_shares`]). The schedule
    /// changes at once; requests already granted stay granted.
    pub fn set_share(&self, share: f64) {
        let share = if share.is_finite() {
            share.clamp(1e-6, 1.0)
        } else {
            1.0
        };
        let (interval, tolerance) = schedule(self.inner.rate_per_second, self.inner.burst, share);
        let mut q = self.inner.lock_queue();
        q.interval = interval;
        q.tolerance = tolerance;
    }

    /// The sustained rate this budget runs at now (its share of the grant's), per second.
    pub fn rate_now(&self) -> f64 {
        1.0 / self.inner.lock_queue().interval.as_secs_f64()
    }

    /// The pause in force, as the instant it ends (to share it with other daemons).
    pub fn paused_until(&self) -> Option<Instant> {
        let p = *self
            .inner
            .paused_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.filter(|until| *until > Instant::now())
    }

    /// Time left on the pause, if one is in force.
    pub fn paused_for(&self) -> Option<Duration> {
        self.inner.paused_for()
    }

    /// Requests in flight through this grant now.
    pub fn in_flight(&self) -> u32 {
        self.inner
            .concurrency
            .saturating_sub(self.inner.slots.available_permits() as u32)
    }

    /// Who waits for a turn now, and the longest wait so far.
    pub fn queue(&self) -> QueueState {
        let q = self.inner.lock_queue();
        let now = Instant::now();
        let oldest = q.lanes.iter().filter_map(Lane::oldest).min();
        QueueState {
            interactive: q.lanes[0].len,
            background: q.lanes[1].len,
            oldest_wait: oldest.map(|t| now.saturating_duration_since(t)),
        }
    }
}

/// GCRA's spacing and burst tolerance for `share` of a grant's rate and burst (a share of the
/// burst is at least one request: every daemon may send).
fn schedule(rate_per_second: f64, burst: u32, share: f64) -> (Duration, Duration) {
    // Capped at a day: an Instant plus an unbounded interval would overflow.
    let interval = Duration::try_from_secs_f64(1.0 / (rate_per_second * share))
        .unwrap_or(Duration::MAX)
        .clamp(Duration::from_nanos(1), Duration::from_secs(86_400));
    let burst = ((f64::from(burst.max(1)) * share).floor() as u32).max(1);
    (interval, interval.saturating_mul(burst - 1))
}

impl Inner {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn paused_for(&self) -> Option<Duration> {
        let p = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        p.and_then(|until| until.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// When the rate next allows a request.
    fn next_conforming(&self, q: &Queue, now: Instant) -> Instant {
        q.tat.checked_sub(q.tolerance).map_or(now, |t| t.max(now))
    }

    /// When a new waiter of `class` would get its turn: the turns of those ahead of it (its own
    /// class, and the other class's part of the turns while both wait) at the rate's spacing.
    fn eta(&self, q: &Queue, class: Class, now: Instant) -> Instant {
        let (own, other) = match class {
            Class::Interactive => (q.lanes[0].len, q.lanes[1].len),
            Class::Background => (q.lanes[1].len, q.lanes[0].len),
        };
        let share = match class {
            Class::Interactive => 1.0 - self.background_share,
            Class::Background => self.background_share,
        };
        let turns_ahead = if other == 0 {
            own as f64
        } else if share > 0.0 {
            (own as f64 + 1.0) / share - 1.0
        } else {
            (own + other) as f64
        };
        let turns_ahead = turns_ahead.min((own + other) as f64).ceil() as u32;
        self.next_conforming(q, now) + q.interval.saturating_mul(turns_ahead)
    }

    /// The next waiter: interactive first, but while both classes wait every
    /// 1/`background_share`-th turn goes to the background (weighted round-robin).
    fn pick(&self, q: &mut Queue, now: Instant) -> Option<Waiter> {
        for lane in &mut q.lanes {
            lane.purge(now);
        }
        let both = q.lanes[0].len > 0 && q.lanes[1].len > 0;
        let class = if both {
            q.background_credit = (q.background_credit + self.background_share).min(1.0);
            if q.background_credit >= 1.0 - 1e-9 {
                q.background_credit -= 1.0;
                Class::Background
            } else {
                Class::Interactive
            }
        } else if q.lanes[0].len > 0 {
            Class::Interactive
        } else {
            Class::Background
        };
        q.lanes[class.lane()].pop(now)
    }
}

/// Hands out turns while anyone waits: a concurrency slot first (so the turn goes to whoever
/// is first when one frees), then the rate's next time, then the waiter chosen at that moment.
async fn dispatch(inner: Arc<Inner>) {
    loop {
        let Ok(permit) = inner.slots.clone().acquire_owned().await else {
            return;
        };
        loop {
            if let Some(left) = inner.paused_for() {
                tokio::time::sleep(left).await;
                continue;
            }
            let wait = {
                let mut q = inner.lock_queue();
                for lane in &mut q.lanes {
                    lane.purge(Instant::now());
                }
                if q.waiting() == 0 {
                    q.dispatching = false;
                    return;
                }
                let now = Instant::now();
                inner
                    .next_conforming(&q, now)
                    .saturating_duration_since(now)
            };
            if wait.is_zero() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let mut q = inner.lock_queue();
        let now = Instant::now();
        match inner.pick(&mut q, now) {
            Some(w) => {
                let tat = q.tat;
                // The turn was due at the schedule's time, and timers wake a little late: the
                // schedule advances from when it was due (not from the late wake-up), or the
                // rate would fall short by the timer's lateness on every turn.
                q.tat = tat.max(now.checked_sub(LATE_WAKE).unwrap_or(now)) + q.interval;
                // A waiter that gave up between the pick and now frees its turn again.
                if w.turn.send(permit).is_err() {
                    q.tat = tat;
                }
            }
            None if q.waiting() == 0 => {
                q.dispatching = false;
                return;
            }
            None => {}
        }
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

    async fn take(
        b: &GrantBudget,
        class: Class,
        caller: &str,
        within: Duration,
    ) -> Result<OwnedSemaphorePermit, NotBefore> {
        let mut waited = Duration::ZERO;
        b.acquire(class, caller, Instant::now() + within, &mut waited)
            .await
    }

    #[tokio::test]
    async fn burst_goes_at_once_then_the_bucket_refuses_to_wait_past_the_deadline() {
        let b = budget(1.0, 3, 10);
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        let mut permits = Vec::new();
        for _ in 0..3 {
            permits.push(
                b.acquire(Class::Interactive, "a", deadline, &mut waited)
                    .await
                    .expect("burst"),
            );
        }
        assert_eq!(b.in_flight(), 3);
        match b
            .acquire(Class::Interactive, "a", deadline, &mut waited)
            .await
        {
            Err(NotBefore::Budget(w)) => assert!(w > Duration::from_millis(500), "{w:?}"),
            other => panic!("expected a budget refusal, got {other:?}"),
        }
        assert!(waited < Duration::from_millis(50));
        assert_eq!(
            b.queue(),
            QueueState::default(),
            "a refused caller takes no place"
        );
    }

    #[tokio::test]
    async fn a_share_of_the_grant_cuts_its_burst_and_rate_alike() {
        let b = budget(2.0, 6, 100);
        b.set_share(1.0 / 3.0);
        let mut held = Vec::new();
        for i in 0..2 {
            let within = Duration::from_millis(10);
            held.push(
                take(&b, Class::Interactive, "a", within)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("a third of a burst of 6 is 2, request {i} refused: {e:?}")
                    }),
            );
        }
        match take(&b, Class::Interactive, "a", Duration::from_millis(10)).await {
            // A third of 2/s is one request every 1.5 s.
            Err(NotBefore::Budget(w)) => assert!(w > Duration::from_millis(1200), "{w:?}"),
            other => panic!("expected a budget refusal, got {other:?}"),
        }
        b.set_share(1.0);
        let b2 = budget(2.0, 6, 100);
        b2.set_share(0.0);
        let first = take(&b2, Class::Interactive, "a", Duration::from_millis(10)).await;
        assert!(first.is_ok(), "every share lets at least one request go");
    }

    #[tokio::test]
    async fn a_pause_holds_every_caller_and_reports_time_left() {
        let b = budget(1000.0, 1000, 10);
        b.pause(Duration::from_secs(60));
        // A shorter pause never shortens a longer one.
        b.pause(Duration::from_secs(1));
        let left = b.paused_for().expect("paused");
        assert!(left > Duration::from_secs(58), "{left:?}");
        let r = take(&b, Class::Interactive, "a", Duration::from_secs(30)).await;
        assert!(matches!(r, Err(NotBefore::Paused(d)) if d > Duration::from_secs(58)));
    }

    #[tokio::test]
    async fn a_short_pause_is_waited_out() {
        let b = budget(1000.0, 1000, 10);
        b.pause(Duration::from_millis(50));
        let mut waited = Duration::ZERO;
        let started = Instant::now();
        let _permit = b
            .acquire(
                Class::Interactive,
                "a",
                Instant::now() + Duration::from_secs(5),
                &mut waited,
            )
            .await
            .expect("acquired after the pause");
        assert!(started.elapsed() >= Duration::from_millis(45));
        assert!(waited >= Duration::from_millis(45));
    }

    #[tokio::test]
    async fn the_concurrency_cap_holds_callers_until_a_slot_frees() {
        let b = Arc::new(budget(1000.0, 1000, 1));
        let first = take(&b, Class::Interactive, "a", Duration::from_secs(5))
            .await
            .expect("first");
        let r = take(&b, Class::Interactive, "b", Duration::from_millis(50)).await;
        assert!(
            r.is_err(),
            "second caller must not get a slot while the first holds it"
        );
        drop(first);
        let _permit = take(&b, Class::Interactive, "b", Duration::from_secs(1))
            .await
            .expect("slot freed");
    }

    /// Starts `n` waiters of `class`/`caller` one after another (each queued before the next)
    /// and returns, in the order they were served, the labels they carry.
    async fn serve_order(b: &Arc<GrantBudget>, asks: &[(Class, &str)]) -> Vec<String> {
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, (class, caller)) in asks.iter().enumerate() {
            let (b, served) = (b.clone(), served.clone());
            let (class, caller) = (*class, caller.to_string());
            tasks.push(tokio::spawn(async move {
                let p = take(&b, class, &caller, Duration::from_secs(10))
                    .await
                    .expect("turn");
                served.lock().unwrap().push(format!("{caller}{i}"));
                drop(p);
            }));
            // Queued before the next one asks.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for t in tasks {
            t.await.expect("task");
        }
        Arc::try_unwrap(served).unwrap().into_inner().unwrap()
    }

    #[tokio::test]
    async fn waiters_are_served_in_the_order_they_asked() {
        // 100/s, burst 1: one turn every 10 ms, so everyone after the first queues.
        let b = Arc::new(budget(100.0, 1, 16));
        let asks: Vec<(Class, &str)> = (0..8).map(|_| (Class::Interactive, "same")).collect();
        let order = serve_order(&b, &asks).await;
        let want: Vec<String> = (0..8).map(|i| format!("same{i}")).collect();
        assert_eq!(order, want);
    }

    #[tokio::test]
    async fn callers_take_turns_round_robin_within_a_class() {
        let b = Arc::new(budget(100.0, 1, 16));
        // `greedy` queues four requests before `polite` asks once: polite is served second
        // of the queued ones, not fifth.
        let asks = [
            (Class::Interactive, "greedy"),
            (Class::Interactive, "greedy"),
            (Class::Interactive, "greedy"),
            (Class::Interactive, "greedy"),
            (Class::Interactive, "greedy"),
            (Class::Interactive, "polite"),
        ];
        let order = serve_order(&b, &asks).await;
        let polite = order.iter().position(|s| s == "polite5").expect("served");
        assert!(polite <= 3, "{order:?}");
    }

    #[tokio::test]
    async fn interactive_work_goes_ahead_of_background_which_keeps_its_share() {
        let b = Arc::new(GrantBudget::new(&Resilience {
            rate_per_second: 200.0,
            burst: 1,
            concurrency: 16,
            background_share: 0.25,
            ..Resilience::default()
        }));
        // The first call takes the one burst token; 20 background then 20 interactive queue.
        let mut asks = vec![(Class::Interactive, "first")];
        asks.extend((0..20).map(|_| (Class::Background, "sync")));
        asks.extend((0..20).map(|_| (Class::Interactive, "person")));
        let order = serve_order(&b, &asks).await;
        // Once people wait, they get most turns, and the sync still gets some.
        let first_person = order
            .iter()
            .position(|s| s.starts_with("person"))
            .expect("p");
        let window = &order[first_person..first_person + 20];
        let syncs = window.iter().filter(|s| s.starts_with("sync")).count();
        assert!(
            (2..=8).contains(&syncs),
            "{syncs} sync turns among 20 contended: {order:?}"
        );
        let last_person = order
            .iter()
            .rposition(|s| s.starts_with("person"))
            .expect("p");
        let syncs_before_last_person = order[..last_person]
            .iter()
            .filter(|s| s.starts_with("sync"))
            .count();
        assert!(
            syncs_before_last_person < 20,
            "people waited behind the whole sync: {order:?}"
        );
    }

    #[tokio::test]
    async fn the_queue_is_visible_while_callers_wait() {
        let b = Arc::new(budget(10.0, 1, 16));
        let _first = take(&b, Class::Interactive, "a", Duration::from_secs(1))
            .await
            .expect("first");
        let waiting = {
            let b = b.clone();
            tokio::spawn(async move {
                take(&b, Class::Background, "s", Duration::from_secs(5))
                    .await
                    .is_ok()
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        let q = b.queue();
        assert_eq!((q.interactive, q.background), (0, 1));
        assert!(
            q.oldest_wait
                .is_some_and(|w| w >= Duration::from_millis(20)),
            "{q:?}"
        );
        assert!(waiting.await.expect("task"));
        assert_eq!(b.queue().background, 0);
    }
}
