//! The last hour, minute by minute, kept in memory for the dashboard's charts: per grant the
//! outbound requests, errors and latency (fed where the gate settles each request), and per
//! stream the records sync committed (fed by the sync loop). Prometheus keeps history for those
//! who run one; these rings let the daemon draw its own last hour without one.
//!
//! Bounded twice: each ring has one slot per minute of the hour, reused as the minutes go round,
//! and its key is a configured connector with a configured grant or declared stream name (never a
//! value a guest or caller picks), so the number of rings is bounded by the config. A ring with
//! nothing left in the hour (its connector was removed by a reload) is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Minutes kept, the current (partial) one included.
pub const MINUTES: usize = 60;

/// Upper bounds of the latency buckets in milliseconds; one more bucket holds the slower rest.
pub const LATENCY_BOUNDS_MS: [u64; 4] = [50, 200, 1000, 5000];

const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// One minute of one grant's outbound requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestMinute {
    pub requests: u64,
    /// Requests not answered with a status below 400: refused, failed, rate-limited, breaker
    /// open, or answered 4xx/5xx.
    pub errors: u64,
    /// Requests that carry a latency (all but the gate's own faults), and its sum and maximum.
    pub timed: u64,
    pub latency_ms_sum: u64,
    pub latency_ms_max: u64,
    /// Timed requests by latency, per [`LATENCY_BOUNDS_MS`] (the last one: slower than all).
    pub latency_buckets: [u64; BUCKETS],
}

impl RequestMinute {
    fn add(&mut self, error: bool, latency: Option<Duration>) {
        self.requests += 1;
        self.errors += u64::from(error);
        if let Some(l) = latency {
            let ms = u64::try_from(l.as_millis()).unwrap_or(u64::MAX);
            self.timed += 1;
            self.latency_ms_sum = self.latency_ms_sum.saturating_add(ms);
            self.latency_ms_max = self.latency_ms_max.max(ms);
            let i = LATENCY_BOUNDS_MS
                .iter()
                .position(|b| ms <= *b)
                .unwrap_or(LATENCY_BOUNDS_MS.len());
            self.latency_buckets[i] += 1;
        }
    }

    /// Folds another minute in (for the hour's totals).
    pub fn merge(&mut self, o: &RequestMinute) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.timed += o.timed;
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(o.latency_ms_sum);
        self.latency_ms_max = self.latency_ms_max.max(o.latency_ms_max);
        for (a, b) in self.latency_buckets.iter_mut().zip(o.latency_buckets) {
            *a += b;
        }
    }

    /// Mean latency in milliseconds, when any request was timed.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.timed > 0).then(|| self.latency_ms_sum as f64 / self.timed as f64)
    }

    /// An upper estimate of the 95th percentile: the bound of the bucket where 95 % of the timed
    /// requests are reached, never above the slowest one seen.
    pub fn p95_ms(&self) -> Option<u64> {
        if self.timed == 0 {
            return None;
        }
        let want = (self.timed * 95).div_ceil(100);
        let mut seen = 0;
        for (i, n) in self.latency_buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                let bound = LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(u64::MAX);
                return Some(bound.min(self.latency_ms_max));
            }
        }
        Some(self.latency_ms_max)
    }
}

/// One minute of one stream's sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncMinute {
    /// Upserts plus deletes of the pages committed.
    pub records: u64,
    pub pages: u64,
}

/// One slot per minute of the hour; a slot holding an older minute is cleared when its turn
/// comes again, and skipped when read.
#[derive(Clone, Debug)]
pub struct MinuteRing<B> {
    slots: [(Option<u64>, B); MINUTES],
}

impl<B: Default + Copy> Default for MinuteRing<B> {
    fn default() -> Self {
        MinuteRing {
            slots: [(None, B::default()); MINUTES],
        }
    }
}

impl<B: Default + Copy> MinuteRing<B> {
    /// Changes minute `minute`'s bucket (minutes since the Unix epoch).
    pub fn add(&mut self, minute: u64, f: impl FnOnce(&mut B)) {
        let slot = &mut self.slots[(minute % MINUTES as u64) as usize];
        if slot.0 != Some(minute) {
            *slot = (Some(minute), B::default());
        }
        f(&mut slot.1);
    }

    /// The hour ending with minute `now`, oldest first: one bucket per minute, empty where
    /// nothing happened.
    pub fn hour(&self, now: u64) -> Vec<B> {
        let first = (now + 1).saturating_sub(MINUTES as u64);
        (first..=now)
            .map(|m| match self.slots[(m % MINUTES as u64) as usize] {
                (Some(at), b) if at == m => b,
                _ => B::default(),
            })
            .collect()
    }

    /// Whether nothing of the hour ending with `now` is left.
    pub fn is_stale(&self, now: u64) -> bool {
        let first = (now + 1).saturating_sub(MINUTES as u64);
        !self
            .slots
            .iter()
            .any(|(m, _)| m.is_some_and(|m| (first..=now).contains(&m)))
    }
}

/// Rings by connector, then grant or stream: two levels so that the common case (a ring that
/// exists) is found by `&str` without allocating a key on every request.
struct Rings<B>(Mutex<HashMap<String, HashMap<String, MinuteRing<B>>>>);

impl<B: Default + Copy> Rings<B> {
    fn add(&self, connector: &str, name: &str, minute: u64, f: impl FnOnce(&mut B)) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ring) = map.get_mut(connector).and_then(|m| m.get_mut(name)) {
            ring.add(minute, f);
            return;
        }
        // A new ring: the moment to let go of those that have nothing left in the hour.
        Self::drop_stale(&mut map, minute);
        map.entry(connector.to_string())
            .or_default()
            .entry(name.to_string())
            .or_default()
            .add(minute, f);
    }

    fn drop_stale(map: &mut HashMap<String, HashMap<String, MinuteRing<B>>>, now: u64) {
        for rings in map.values_mut() {
            rings.retain(|_, r| !r.is_stale(now));
        }
        map.retain(|_, rings| !rings.is_empty());
    }

    fn hour(&self, now: u64) -> Vec<Series<B>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Self::drop_stale(&mut map, now);
        let mut out: Vec<Series<B>> = map
            .iter()
            .flat_map(|(c, rings)| {
                rings.iter().map(move |(n, r)| Series {
                    connector: c.clone(),
                    name: n.clone(),
                    minutes: r.hour(now),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.connector, &a.name).cmp(&(&b.connector, &b.name)));
        out
    }
}

impl<B> Default for Rings<B> {
    fn default() -> Self {
        Rings(Mutex::new(HashMap::new()))
    }
}

/// One ring's hour: `minutes` oldest first, the current minute last.
#[derive(Clone, Debug)]
pub struct Series<B> {
    pub connector: String,
    /// The grant's or the stream's name.
    pub name: String,
    pub minutes: Vec<B>,
}

/// The daemon's last hour of outbound requests per grant and sync throughput per stream.
#[derive(Default)]
pub struct LastHour {
    requests: Rings<RequestMinute>,
    syncs: Rings<SyncMinute>,
}

/// The current minute since the Unix epoch.
pub fn minute_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

impl LastHour {
    /// One outbound request of `grant` (`none`: no grant matched) that ended now.
    pub fn request(&self, connector: &str, grant: &str, error: bool, latency: Option<Duration>) {
        self.request_at(minute_now(), connector, grant, error, latency);
    }

    pub fn request_at(
        &self,
        minute: u64,
        connector: &str,
        grant: &str,
        error: bool,
        latency: Option<Duration>,
    ) {
        self.requests
            .add(connector, grant, minute, |b| b.add(error, latency));
    }

    /// One sync page of `records` (upserts + deletes) committed now.
    pub fn sync_page(&self, connector: &str, stream: &str, records: u64) {
        self.sync_page_at(minute_now(), connector, stream, records);
    }

    pub fn sync_page_at(&self, minute: u64, connector: &str, stream: &str, records: u64) {
        self.syncs.add(connector, stream, minute, |b| {
            b.records += records;
            b.pages += 1;
        });
    }

    /// Every grant with requests in the hour ending with minute `now`.
    pub fn requests(&self, now: u64) -> Vec<Series<RequestMinute>> {
        self.requests.hour(now)
    }

    /// Every stream with pages in the hour ending with minute `now`.
    pub fn syncs(&self, now: u64) -> Vec<Series<SyncMinute>> {
        self.syncs.hour(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 29_000_000; // a minute in 2025

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn requests_of_one_minute_share_a_bucket_and_the_next_minute_starts_another() {
        let h = LastHour::default();
        h.request_at(T, "jira", "api", false, ms(40));
        h.request_at(T, "jira", "api", true, ms(300));
        h.request_at(T + 1, "jira", "api", false, ms(10));
        let s = h.requests(T + 1);
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].connector.as_str(), s[0].name.as_str()),
            ("jira", "api")
        );
        assert_eq!(s[0].minutes.len(), MINUTES);
        let (prev, last) = (s[0].minutes[MINUTES - 2], s[0].minutes[MINUTES - 1]);
        assert_eq!((prev.requests, prev.errors, prev.timed), (2, 1, 2));
        assert_eq!((prev.latency_ms_sum, prev.latency_ms_max), (340, 300));
        assert_eq!(prev.latency_buckets, [1, 0, 1, 0, 0]);
        assert_eq!(
            (last.requests, last.errors, last.latency_ms_sum),
            (1, 0, 10)
        );
        assert!(s[0].minutes[..MINUTES - 2].iter().all(|m| m.requests == 0));
    }

    #[test]
    fn grants_and_streams_are_kept_apart() {
        let h = LastHour::default();
        h.request_at(T, "jira", "api", false, ms(1));
        h.request_at(T, "jira", "none", true, None);
        h.request_at(T, "zendesk", "api", false, ms(1));
        h.sync_page_at(T, "jira", "issues", 40);
        h.sync_page_at(T, "jira", "issues", 10);
        let names: Vec<_> = h
            .requests(T)
            .iter()
            .map(|s| format!("{}/{}", s.connector, s.name))
            .collect();
        assert_eq!(names, ["jira/api", "jira/none", "zendesk/api"]);
        let syncs = h.syncs(T);
        assert_eq!(syncs.len(), 1);
        assert_eq!(
            syncs[0].minutes[MINUTES - 1],
            SyncMinute {
                records: 50,
                pages: 2
            }
        );
        // A request the gate refused before timing it counts, but not in the latency.
        let none = &h.requests(T)[1].minutes[MINUTES - 1];
        assert_eq!((none.requests, none.errors, none.timed), (1, 1, 0));
        assert_eq!(none.mean_ms(), None);
    }

    #[test]
    fn minutes_older_than_the_hour_drop_out() {
        let h = LastHour::default();
        h.request_at(T, "jira", "api", false, ms(5));
        h.request_at(T + 30, "jira", "api", false, ms(5));
        // 59 minutes later the first is the oldest minute shown; one more and it is gone.
        let s = h.requests(T + 59);
        assert_eq!(s[0].minutes[0].requests, 1);
        let s = h.requests(T + 60);
        assert_eq!(s[0].minutes.iter().map(|m| m.requests).sum::<u64>(), 1);
        // Its slot, reused an hour later, starts empty rather than adding to the old count.
        h.request_at(T + 60, "jira", "api", false, ms(5));
        let s = h.requests(T + 60);
        assert_eq!(s[0].minutes[MINUTES - 1].requests, 1);
        // Nothing left within the hour: the ring itself goes.
        assert!(h.requests(T + 30 + 60 + 60).is_empty());
    }

    #[test]
    fn the_ring_never_grows_past_an_hour_however_long_it_runs() {
        let mut r = MinuteRing::<SyncMinute>::default();
        for m in T..T + 24 * 60 {
            r.add(m, |b| b.records += m - T);
        }
        let now = T + 24 * 60 - 1;
        let hour = r.hour(now);
        assert_eq!(hour.len(), MINUTES);
        assert_eq!(r.slots.len(), MINUTES);
        // Exactly the last 60 minutes, in order.
        let want: Vec<u64> = (now + 1 - MINUTES as u64..=now).map(|m| m - T).collect();
        assert_eq!(hour.iter().map(|b| b.records).collect::<Vec<_>>(), want);
    }

    #[test]
    fn a_stale_ring_is_dropped_when_a_new_one_is_added() {
        let h = LastHour::default();
        h.sync_page_at(T, "old", "s", 1);
        h.sync_page_at(T + 61, "new", "s", 1);
        let map = h.syncs.0.lock().expect("lock");
        assert_eq!(map.len(), 1);
        assert!(
            map.get("new")
                .is_some_and(|m| m.len() == 1 && m.contains_key("s"))
        );
    }

    #[test]
    fn p95_is_the_bound_of_the_bucket_reaching_95_percent_capped_by_the_slowest() {
        let mut m = RequestMinute::default();
        for _ in 0..95 {
            m.add(false, ms(20));
        }
        for _ in 0..5 {
            m.add(false, ms(3000));
        }
        assert_eq!(m.p95_ms(), Some(50));
        m.add(false, ms(3000));
        assert_eq!(
            m.p95_ms(),
            Some(3000),
            "past 95 % in the 1-5 s bucket, capped by the max"
        );
        let mut fast = RequestMinute::default();
        fast.add(false, ms(7));
        assert_eq!(fast.p95_ms(), Some(7));
        assert_eq!(fast.mean_ms(), Some(7.0));
        let mut slow = RequestMinute::default();
        slow.add(false, ms(9000));
        assert_eq!(slow.p95_ms(), Some(9000));
        let mut total = RequestMinute::default();
        total.merge(&m);
        total.merge(&fast);
        assert_eq!((total.requests, total.latency_ms_max), (102, 3000));
    }
}
