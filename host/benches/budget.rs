//! Fairness of a grant's rate budget under contention (`make bench`): how long callers wait for
//! their turn, against the fair share the rate gives them, measured in the same run.
//!
//! 1. Greedy callers: 16 tasks on a 50/s grant (burst 1, so the steady state is measured), each
//!    asking again as soon as it is served. Fair share: 16/50 s between a caller's turns.
//! 2. Background against people: 16 background tasks saturate the grant (syncs of several
//!    streams and tenants) while one interactive caller asks every 200 ms. The interactive wait is compared
//!    with the grant's spacing (1/rate); the background's throughput with its share.
//!
//! BUDGET_SECONDS (default 30) sets each scenario's length.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airlock::capabilities::budget::{Class, GrantBudget};
use airlock::capabilities::grant::Resilience;

const RATE: f64 = 50.0;
/// What a request holds its concurrency slot for (an upstream answering quickly).
const SERVICE: Duration = Duration::from_millis(5);
/// Background tasks saturating the grant in the second scenario.
const BACKGROUND_TASKS: usize = 16;

fn budget() -> Arc<GrantBudget> {
    Arc::new(GrantBudget::new(&Resilience {
        rate_per_second: RATE,
        burst: 1,
        concurrency: 16,
        ..Resilience::default()
    }))
}

/// One request's turn: waits for it (or is refused at once past `deadline`), then holds the
/// slot for [`SERVICE`]. Returns the wait, or None when refused.
async fn turn(b: &GrantBudget, class: Class, caller: &str, deadline: Instant) -> Option<Duration> {
    let asked = Instant::now();
    let mut waited = Duration::ZERO;
    let permit = b.acquire(class, caller, deadline, &mut waited).await.ok()?;
    let wait = asked.elapsed();
    tokio::time::sleep(SERVICE).await;
    drop(permit);
    Some(wait)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn greedy(secs: u64) {
    let b = budget();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (b, stop, served) = (b.clone(), stop.clone(), served.clone());
        tasks.push(tokio::spawn(async move {
            let caller = format!("caller-{i}");
            let mut waits = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let deadline = Instant::now() + Duration::from_secs(60);
                if let Some(w) = turn(&b, Class::Interactive, &caller, deadline).await {
                    waits.push(w);
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
            waits
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let n = served.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut waits = Vec::new();
    for t in tasks {
        waits.extend(t.await.unwrap_or_default());
    }
    waits.sort();
    let fair = Duration::from_secs_f64(16.0 / RATE);
    let (p50, p99, max) = (pct(&waits, 0.5), pct(&waits, 0.99), pct(&waits, 1.0));
    println!("16 greedy callers on a {RATE}/s grant for {secs}s (burst 1)");
    println!(
        "  throughput          {:>8.1} req/s ({:+.1}% of the rate)",
        n as f64 / elapsed,
        (n as f64 / elapsed / RATE - 1.0) * 100.0
    );
    println!(
        "  fair share          {:>8.0} ms between a caller's turns",
        ms(fair)
    );
    println!(
        "  wait p50 / p99 / max {:>6.0} / {:.0} / {:.0} ms  = {:.2}x / {:.2}x / {:.2}x the fair share",
        ms(p50),
        ms(p99),
        ms(max),
        ms(p50) / ms(fair),
        ms(p99) / ms(fair),
        ms(max) / ms(fair)
    );
}

async fn background_and_people(secs: u64) {
    let b = budget();
    let stop = Arc::new(AtomicBool::new(false));
    let background = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut sync = Vec::new();
    for i in 0..BACKGROUND_TASKS {
        let (b, stop, background) = (b.clone(), stop.clone(), background.clone());
        sync.push(tokio::spawn(async move {
            let stream = format!("sync-stream-{i}");
            while !stop.load(Ordering::Relaxed) {
                let deadline = Instant::now() + Duration::from_secs(60);
                if turn(&b, Class::Background, &stream, deadline)
                    .await
                    .is_some()
                {
                    background.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut waits = Vec::new();
    let mut refused = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        match turn(&b, Class::Interactive, "person", deadline).await {
            Some(w) => waits.push(w),
            None => refused += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in sync {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    waits.sort();
    let spacing = Duration::from_secs_f64(1.0 / RATE);
    let (p50, p99) = (pct(&waits, 0.5), pct(&waits, 0.99));
    let bg_rate = background.load(Ordering::Relaxed) as f64 / elapsed;
    println!(
        "{BACKGROUND_TASKS} background tasks saturating a {RATE}/s grant, one interactive caller every 200 ms, {secs}s"
    );
    println!(
        "  interactive wait p50 / p99 {:>6.0} / {:.0} ms ({:.0} ms above the grant's spacing of {:.0} ms); {refused} refused",
        ms(p50),
        ms(p99),
        (ms(p99) - ms(spacing)).max(0.0),
        ms(spacing)
    );
    println!(
        "  background progress {:>8.1} req/s ({:.0}% of the rate)",
        bg_rate,
        bg_rate / RATE * 100.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: u64 = std::env::var("BUDGET_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    greedy(secs).await;
    background_and_people(secs).await;
}
