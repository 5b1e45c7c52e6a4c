//! `make bench`: sync throughput of real `airlock serve` processes, 100,000 Zendesk tickets over
//! six connectors (one stream each, so there is work to split): one daemon on SQLite, one
//! daemon on PostgreSQL, and three daemons sharing one PostgreSQL database (each stream run by
//! one daemon at a time through its lease). Records/s and the ratios, from one run.
//!
//! Every daemon runs at most two of the tenant's streams at once (`[scheduler]
//! max_running_per_tenant`, the default), so three daemons can run six where one runs two. The
//! connector is compiled once before any run and its compile cache copied into every daemon's
//! data directory, and the daemons of a run are started together, so none of them syncs alone
//! while another compiles. The clock starts when every daemon listens and stops when every
//! stream has finished; records committed before the start are left out (and reported).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use airlock::store::Db;
use airlock::store::backend::Store;
use airlock::store::pg::PgStore;

const CONNECTORS: usize = 6;
const TICKETS_EACH: usize = 16_667;
const TOKEN: &str = "demo-zendesk-token";

fn config(store_url: Option<&str>, base: &str, zendesk: &std::path::Path) -> String {
    let mut text = String::from("[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n");
    if let Some(url) = store_url {
        text += &format!("[store]\nurl = \"{url}\"\n");
    }
    text += "[scheduler]\nmax_running_per_tenant = 2\n";
    for i in 1..=CONNECTORS {
        text += &format!(
            r#"[[connector]]
id = "zd{i}"
component = "{}"
sync = {{ interval = "1h", streams = ["tickets"] }}
[connector.settings]
base_url = "{base}"
[[grant]]
connector = "zd{i}"
url = "{base}/api/v2/"
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "agent@example.com/token", password = "env:AIRLOCK_BENCH_ZD" }}
"#,
            zendesk.display()
        );
    }
    text
}

/// Tickets stored, streams finished and when the last of them finished (the store's own time
/// of the run's end, so the figure does not depend on how often this polls).
async fn progress(store: &Store) -> anyhow::Result<(i64, usize, Option<SystemTime>)> {
    let states = store.sync_states().await?;
    let tickets = states.iter().filter(|s| s.stream == "tickets");
    let records = tickets.clone().map(|s| s.records).sum();
    let finished: Vec<SystemTime> = tickets
        .filter_map(|s| s.last_success_at.as_deref())
        .filter_map(|t| humantime::parse_rfc3339(t).ok())
        .collect();
    Ok((records, finished.len(), finished.iter().max().copied()))
}

struct Run {
    records: i64,
    secs: f64,
    /// Committed before the last daemon listened (left out of the figure).
    early: i64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.records as f64 / self.secs
    }
}

/// Starts `daemons` serve processes on `store_url` (SQLite in the first one's data directory
/// when None) and measures them syncing every stream.
async fn run(
    daemons: usize,
    store_url: Option<&str>,
    base: &str,
    zendesk: &std::path::Path,
    warm_cache: &std::path::Path,
) -> anyhow::Result<Run> {
    let bin = common::artifact("release/airlock")?;
    let env = [("AIRLOCK_BENCH_ZD".to_string(), TOKEN.to_string())];
    let dirs: Vec<tempfile::TempDir> = (0..daemons)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    let mut starting = Vec::new();
    for d in &dirs {
        let path = d.path().join("airlock.toml");
        std::fs::write(&path, config(store_url, base, zendesk))?;
        copy_dir(warm_cache, &d.path().join("data").join("compile-cache"))?;
        starting.push(common::spawn_serve(&bin, &path, &env)?);
    }
    // Kill every daemon if one of them fails to start.
    let mut children = Vec::new();
    let mut waiting = Vec::new();
    for (child, listening) in starting {
        children.push(KillOnDrop(child));
        waiting.push(listening);
    }
    for listening in waiting {
        common::wait_listening(&listening, Duration::from_secs(180))?;
    }
    let started = SystemTime::now();
    let store = match store_url {
        Some(url) => Store::Postgres(Arc::new(PgStore::open(url).await?)),
        None => Store::Sqlite(Arc::new(Db::open(&dirs[0].path().join("data"))?)),
    };
    let (before, _, _) = progress(&store).await?;
    let total = (CONNECTORS * TICKETS_EACH) as i64;
    let deadline = Instant::now() + Duration::from_secs(900);
    let ended = loop {
        let (records, done, last) = progress(&store).await?;
        if done == CONNECTORS
            && records == total
            && let Some(last) = last
        {
            break last;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not finished in time: {records} of {total} records, {done} streams done"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let secs = ended.duration_since(started)?.as_secs_f64();
    drop(children);
    Ok(Run {
        records: total - before,
        secs,
        early: before,
    })
}

/// Compiles the connector once: a daemon with no sync schedule starts (filling its compile
/// cache) and is stopped. Returns the directory holding that cache.
fn warm_compile_cache(
    base: &str,
    zendesk: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<std::path::PathBuf> {
    let bin = common::artifact("release/airlock")?;
    let path = dir.join("airlock.toml");
    let text = config(None, base, zendesk).replace(
        "sync = { interval = \"1h\", streams = [\"tickets\"] }\n",
        "",
    );
    anyhow::ensure!(!text.contains("sync ="), "the warm-up config still syncs");
    std::fs::write(&path, text)?;
    let env = [("AIRLOCK_BENCH_ZD".to_string(), TOKEN.to_string())];
    let (child, listening) = common::spawn_serve(&bin, &path, &env)?;
    let child = KillOnDrop(child);
    common::wait_listening(&listening, Duration::from_secs(300))?;
    drop(child);
    let cache = dir.join("data").join("compile-cache");
    anyhow::ensure!(cache.is_dir(), "no compile cache in {}", cache.display());
    Ok(cache)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// A daemon killed when the run ends (or fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let pg = match tokio::task::spawn_blocking(pg_cluster::PgCluster::try_start).await? {
        Ok(pg) => pg,
        Err(e) => {
            println!("daemons: skipped (no PostgreSQL here: {e})");
            return Ok(());
        }
    };
    let zendesk = common::artifact("wasm32-wasip2/release/zendesk.wasm")?;
    let tickets = TICKETS_EACH.to_string();
    let fake = common::spawn_fake(&[
        "zendesk",
        "--tickets",
        &tickets,
        "--recent-exclusion-secs",
        "0",
    ])?;
    let base = fake.base_url.clone();
    let total = CONNECTORS * TICKETS_EACH;
    println!(
        "daemons: {total} Zendesk tickets over {CONNECTORS} connectors, real `airlock serve` processes"
    );
    let warm_dir = tempfile::tempdir()?;
    let warm = warm_compile_cache(&base, &zendesk, warm_dir.path())?;
    let sqlite = run(1, None, &base, &zendesk, &warm).await?;
    println!(
        "  sqlite, 1 daemon       {:>8.0} records/s  ({} records in {:.1} s; {} before the clock)",
        sqlite.rate(),
        sqlite.records,
        sqlite.secs,
        sqlite.early
    );
    let mut pg_runs = Vec::new();
    for (daemons, db) in [(1, "one"), (3, "three")] {
        pg.create_database(db).map_err(anyhow::Error::msg)?;
        let r = run(daemons, Some(&pg.url_of(db)), &base, &zendesk, &warm).await?;
        println!(
            "  postgres, {daemons} daemon(s) {:>8.0} records/s  ({} records in {:.1} s, {} before the clock; {:.2}x sqlite)",
            r.rate(),
            r.records,
            r.secs,
            r.early,
            r.rate() / sqlite.rate()
        );
        pg_runs.push(r);
    }
    println!(
        "  postgres 3 vs 1 daemon: {:.2}x (a machine with {} cores runs all of them)",
        pg_runs[1].rate() / pg_runs[0].rate(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(())
}
