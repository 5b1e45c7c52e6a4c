//! `make bench`: 1,000 concurrent `POST /v1/search` requests against the real daemon
//! (`target/release/airlock serve`) on loopback, each on its own connection, over 100,000
//! documents. Reports errors, p50/p99/max latency and the daemon's peak memory, against two
//! baselines measured in the same run: the same queries straight on the store, and one at a
//! time through the API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::runtime::model::Document;
use airlock::store::documents::{self, Query};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

mod common;
use common::{Rng, VOCAB, word};

const DOCS: usize = 100_000;
const CONCURRENT: usize = 1000;
/// The burst's p99 when the goal was set (issue 17), on this bench's corpus and machine class:
/// the goal is under half of it.
const ISSUE_P99_MS: f64 = 1677.0;

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
}

/// The kernel's count of connections dropped because a listen queue was full (machine-wide,
/// Linux): each one costs its client a SYN retransmit, a second.
fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// One or two words from the middle of the frequency range, as people search.
fn query_text(words: &[String], rng: &mut Rng) -> String {
    let n = 1 + rng.next() % 2;
    (0..n)
        .map(|_| words[50 + (rng.next() as usize) % 5000].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

async fn search(c: &Client, url: &str, token: &str, q: &str) -> Result<usize, String> {
    let body = serde_json::json!({ "query": q, "limit": 20 }).to_string();
    let req = http::Request::post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = c.request(req).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(v["hits"].as_array().map_or(0, Vec::len))
}

fn main() -> anyhow::Result<()> {
    let bin = common::artifact("release/airlock")?;
    let component = common::artifact("wasm32-wasip2/release/zendesk.wasm")?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut conn = airlock::store::open(&data)?;
    let words: Vec<String> = (0..VOCAB).map(word).collect();
    let mut rng = Rng(7);
    let t = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..DOCS {
        let mut text = |n: usize| {
            (0..n)
                .map(|_| words[rng.word()].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        batch.push(Document {
            id: i.to_string(),
            kind: "ticket".into(),
            title: text(4),
            body: text(40),
            url: None,
            updated_at: "2026-01-01T00:00:00Z".into(),
            metadata: serde_json::json!({}).into(),
            acl: vec![],
        });
        if batch.len() == 10_000 {
            let tx = conn.transaction()?;
            documents::apply_page(&tx, "zendesk", &batch, &[], "now")?;
            tx.commit()?;
            batch.clear();
        }
    }
    let load = t.elapsed();
    let (_, token) = airlock::store::tokens::create(&mut conn, "bench", "default", &[], false)?;

    // Baseline 1: the same kind of query straight on the store, one at a time.
    let mut direct = Vec::with_capacity(CONCURRENT);
    for _ in 0..CONCURRENT {
        let q = query_text(&words, &mut rng);
        let t = Instant::now();
        documents::search(
            &conn,
            &Query {
                text: &q,
                limit: 20,
                connectors: Some(&["zendesk".to_string()]),
                // The documents carry no ACL and the daemon's zendesk is declared tenant-wide.
                readers: Some(&documents::Readers::names(&["bench"], &["zendesk"])),
                ..Default::default()
            },
        )?;
        direct.push(t.elapsed());
    }
    drop(conn);
    direct.sort();
    println!(
        "API search: {DOCS} documents loaded in {:.1}s",
        load.as_secs_f64()
    );

    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n[[connector]]\nid = \"zendesk\"\npermissions = \"tenant\"\ncomponent = {:?}\n",
            component.display().to_string()
        ),
    )?;
    let (mut child, addr) = common::serve(&bin, &config)?;
    let pid = child.id();
    let url = format!("http://{addr}/v1/search");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        // Baseline 2: one at a time through the API (one kept-alive connection).
        let c = client();
        let mut sequential = Vec::with_capacity(CONCURRENT);
        let mut rng = Rng(11);
        for _ in 0..CONCURRENT {
            let q = query_text(&words, &mut rng);
            let t = Instant::now();
            search(&c, &url, &token, &q)
                .await
                .map_err(|e| anyhow::anyhow!("sequential search: {e}"))?;
            sequential.push(t.elapsed());
        }
        sequential.sort();
        let rss_before = peak_rss_mib(pid);

        // 1,000 at once, each on its own connection, released together.
        let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT));
        let overflows_before = listen_overflows();
        let started = Instant::now();
        let tasks: Vec<_> = (0..CONCURRENT)
            .map(|i| {
                let (barrier, url, token) = (barrier.clone(), url.clone(), token.clone());
                let q = query_text(&words, &mut Rng(1000 + i as u64));
                tokio::spawn(async move {
                    let c = client();
                    barrier.wait().await;
                    let t = Instant::now();
                    let r = search(&c, &url, &token, &q).await;
                    (t.elapsed(), r)
                })
            })
            .collect();
        let mut times = Vec::with_capacity(CONCURRENT);
        let mut errors = Vec::new();
        let mut hits = 0usize;
        for t in tasks {
            let (d, r) = t.await?;
            times.push(d);
            match r {
                Ok(n) => hits += n,
                Err(e) => errors.push(e),
            }
        }
        let wall = started.elapsed();
        let overflows = overflows_before.zip(listen_overflows()).map(|(a, b)| b - a);
        times.sort();
        anyhow::Ok((sequential, rss_before, times, errors, hits, wall, overflows))
    });
    let rss_after = peak_rss_mib(pid);
    let _ = child.kill();
    let _ = child.wait();
    let (sequential, rss_before, times, errors, hits, wall, overflows) = result?;

    println!(
        "  baseline, store direct:        p50 {:.2} ms  p99 {:.2} ms",
        percentile(&direct, 0.5),
        percentile(&direct, 0.99)
    );
    println!(
        "  baseline, API one at a time:   p50 {:.2} ms  p99 {:.2} ms",
        percentile(&sequential, 0.5),
        percentile(&sequential, 0.99)
    );
    println!(
        "  {CONCURRENT} concurrent via API:    p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  wall {:.2}s ({:.0} req/s)  errors {}  avg hits {:.1}",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
        wall.as_secs_f64(),
        CONCURRENT as f64 / wall.as_secs_f64(),
        errors.len(),
        hits as f64 / CONCURRENT as f64
    );
    let p99 = percentile(&times, 0.99);
    println!(
        "  goal: p99 < {:.0} ms (half of {ISSUE_P99_MS:.0} ms, the figure this bench gave when the goal was set): {:.2}x that figure, {} ; {:.1}x the one-at-a-time p99",
        ISSUE_P99_MS / 2.0,
        p99 / ISSUE_P99_MS,
        if p99 < ISSUE_P99_MS / 2.0 {
            "met"
        } else {
            "missed"
        },
        p99 / percentile(&sequential, 0.99)
    );
    println!("  daemon peak RSS: {rss_before:.0} MiB before the burst, {rss_after:.0} MiB after");
    // A full accept queue shows as a second-long tail (`[server] listen_backlog`).
    match overflows {
        Some(n) => println!("  listen-queue overflows during the burst: {n}"),
        None => {
            println!("  listen-queue overflows during the burst: unknown (no /proc/net/netstat)")
        }
    }
    if let Some(e) = errors.first() {
        anyhow::bail!(
            "{} of {CONCURRENT} requests failed, first: {e}",
            errors.len()
        );
    }
    Ok(())
}
