//! `make bench`: each figure is a ratio against a baseline measured in the same run.
//!
//! 1. Fresh-instance invocation of a trivial export (`echo`) through Airlock (new Store, limiter,
//!    deadline, audit row) vs instantiate-and-call of the same component in a plain wasmtime
//!    embedding that shares nothing with Airlock (`gate/bare.rs`).
//! 2. Outbound requests from a guest through the gate (grant match, auth injection, audit) to the
//!    Confluence fake vs the same requests sent directly by the host's pooled client.

#[path = "gate/bare.rs"]
mod bare;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::app::{Airlock, StartOptions};
use airlock::capabilities::net::Net;
use airlock::config::Config;
use airlock::runtime::connector::Op;
use airlock::scrub::Scrubber;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

const INVOCATIONS: usize = 3000;
const REQUESTS: usize = 4000;

/// The trivial export: the `echo` action returns its input.
fn echo() -> Op {
    Op::Action {
        name: "echo".into(),
        input: serde_json::json!({}),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let hostile = common::artifact("wasm32-wasip2/release/hostile.wasm")?;
    let fake = common::spawn_fake(&["confluence"])?;
    let base_url = fake.base_url.clone();
    let dir = tempfile::tempdir()?;
    let text = format!(
        r#"[server]
data_dir = "data"
[[connector]]
id = "bench"
component = "{}"
limits = {{ timeout = "300s" }}
[[grant]]
connector = "bench"
url = "{}/wiki/"
allow_private = true
# The bench measures the gate's own cost, not a rate budget.
rate = {{ per_second = 1000000 }}
concurrency = 1024
allow_insecure = true
auth = {{ type = "basic", username = "demo@example.com", password = "env:AIRLOCK_BENCH_TOKEN" }}
"#,
        hostile.display(),
        base_url
    );
    // SAFETY: single-threaded at this point; the variable is only read by this process.
    unsafe { std::env::set_var("AIRLOCK_BENCH_TOKEN", "demo-confluence-token") };
    let config = Config::parse(&text, &dir.path().join("airlock.toml"))?;
    let a = Airlock::start(config, Scrubber::new(), StartOptions::default()).await?;
    let c = a
        .connector("bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .clone();

    // ---- 1. invocation latency ----------------------------------------------------------------
    // The baseline: the same component in a plain wasmtime embedding of its own (`gate/bare.rs`).
    // The hostile fixture is built against the frozen 0.1.0 contract.
    let plain = bare::Bare::load(&hostile, "airlock:connector/connector@0.1.0")?;
    let bare = || plain.invoke("echo", "{}");
    for _ in 0..300 {
        bare().await?;
        c.invoke(echo()).await?;
    }
    let mut airlock_t = Vec::with_capacity(INVOCATIONS);
    let mut bare_t = Vec::with_capacity(INVOCATIONS);
    // Interleave so both see the same machine conditions.
    for _ in 0..INVOCATIONS {
        let t = Instant::now();
        bare().await?;
        bare_t.push(t.elapsed());
        let t = Instant::now();
        c.invoke(echo()).await?;
        airlock_t.push(t.elapsed());
    }
    airlock_t.sort();
    bare_t.sort();
    let (a50, a99, b50, b99) = (
        percentile(&airlock_t, 0.5),
        percentile(&airlock_t, 0.99),
        percentile(&bare_t, 0.5),
        percentile(&bare_t, 0.99),
    );
    println!(
        "fresh-instance invocation of the `echo` action ({INVOCATIONS} calls each, interleaved)"
    );
    println!(
        "  airlock  p50 {:>8.1} us   p99 {:>8.1} us",
        us(a50),
        us(a99)
    );
    println!(
        "  bare     p50 {:>8.1} us   p99 {:>8.1} us",
        us(b50),
        us(b99)
    );
    println!(
        "  ratio    p50 {:>8.2}x     p99 {:>8.2}x   (goal <= 1.2x)",
        us(a50) / us(b50),
        us(a99) / us(b99)
    );

    // ---- 2. gate throughput -------------------------------------------------------------------
    let path = "/wiki/api/v2/spaces?limit=1";
    let url = format!("{base_url}{path}");
    let net = Arc::new(Net::new(
        Default::default(),
        Duration::from_secs(5),
        &Default::default(),
    ));
    let client = net.client(true).clone();
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "demo@example.com:demo-confluence-token"
        )
    );
    let direct = |n: usize| {
        let client = client.clone();
        let url = url.clone();
        let auth = auth.clone();
        async move {
            let t = Instant::now();
            for _ in 0..n {
                let req = http::Request::get(&url)
                    .header("authorization", &auth)
                    .body(Full::new(Bytes::new()))?;
                let resp = client.request(req).await?;
                anyhow::ensure!(resp.status() == 200, "direct status {}", resp.status());
                resp.into_body().collect().await?;
            }
            anyhow::Ok(t.elapsed())
        }
    };
    let through_gate = |n: usize| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let t = Instant::now();
            let r = c
                .invoke(Op::Action {
                    name: "fetch-many".into(),
                    input: serde_json::json!({"url": url, "count": n}),
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::ensure!(r["ok"] == n, "gate run: {r}");
            anyhow::Ok(t.elapsed())
        }
    };
    direct(300).await?;
    through_gate(300).await?;
    let mut gate_best = Duration::MAX;
    let mut direct_best = Duration::MAX;
    for _ in 0..3 {
        direct_best = direct_best.min(direct(REQUESTS).await?);
        gate_best = gate_best.min(through_gate(REQUESTS).await?);
    }
    let gate_rps = REQUESTS as f64 / gate_best.as_secs_f64();
    let direct_rps = REQUESTS as f64 / direct_best.as_secs_f64();
    println!("sequential GETs to the Confluence fake ({REQUESTS} per run, best of 3)");
    println!("  through the gate  {gate_rps:>8.0} req/s");
    println!("  direct (pooled)   {direct_rps:>8.0} req/s");
    println!(
        "  ratio             {:>8.2}x   (goal <= 1.3x and >= 5000 req/s through the gate)",
        gate_best.as_secs_f64() / direct_best.as_secs_f64()
    );
    a.flush();
    Ok(())
}
