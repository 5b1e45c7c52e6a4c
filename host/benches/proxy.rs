//! `make bench`: the egress proxy's overhead. The same Atera ticket is fetched from the fake
//! (its own process) directly and through `airlock serve`'s `/v1/proxy/zendesk/...` (the
//! connector's grant, credential injection, budget, breaker, audit row, durable before the
//! answer), one request at a time on one kept-alive connection, and then 16 at a time.
//! Reports requests/s, p50 and p99 latency of both and the ratio (goal: ≤ 1.3x). Against the
//! fake's sub-millisecond answers the ratio is the proxy's fixed cost per request (token check,
//! gate, one durable audit commit); a last run gives the upstream 20 ms of latency, as a SaaS
//! API has, to show that cost where callers meet it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

mod common;

const KEY: &str = "demo-atera-key";
const REQUESTS: usize = 2000;
const CONCURRENT: usize = 16;

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn fetch(c: &Client, url: &str, auth: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let req = http::Request::get(url)
        .header("authorization", auth)
        .body(Full::new(Bytes::new()))?;
    let resp = c.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success() && body.len() > 50,
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(t.elapsed())
}

/// `REQUESTS` requests, `width` at a time: (requests/s, p50 ms, p99 ms).
async fn run(c: &Client, url: &str, auth: &str, width: usize) -> anyhow::Result<(f64, f64, f64)> {
    run_n(c, url, auth, width, REQUESTS).await
}

async fn run_n(
    c: &Client,
    url: &str,
    auth: &str,
    width: usize,
    n: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let started = Instant::now();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n / width {
        let batch = (0..width).map(|_| fetch(c, url, auth));
        for t in futures::future::join_all(batch).await {
            times.push(t?);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    Ok((times.len() as f64 / wall, at(0.5), at(0.99)))
}

fn main() -> anyhow::Result<()> {
    let bin = common::artifact("release/airlock")?;
    let component = common::artifact("wasm32-wasip2/release/atera.wasm")?;
    // Atera: its fake sends no rate-limit headers, so the gate's adaptive pause never starts
    // (Zendesk's fake announces 700 requests a minute and the gate would honour it).
    let fake = common::spawn_fake(&["atera", "--tickets", "50"])?;
    let base = fake.base_url.clone();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let conn = airlock::store::open(&data)?;
    airlock::store::vault::Vault::open(&data)?.set(&conn, "atera_key", KEY)?;
    let mut conn = conn;
    let (_, token) = airlock::store::tokens::create_scoped(
        &mut conn,
        "bench",
        "default",
        &[],
        false,
        &["atera".to_string()],
    )?;
    drop(conn);
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
data_dir = "data"

[[connector]]
id = "atera"
component = {component:?}
[connector.settings]
base_url = "{base}"

[[grant]]
connector = "atera"
url = "{base}/api/v3/"
methods = ["GET"]
allow_private = true
allow_insecure = true
rate = {{ per_second = 100000, burst = 100000 }}
auth = {{ type = "header", name = "X-API-KEY", value = "secret:atera_key" }}
"#,
            component = component.display().to_string()
        ),
    )?;
    let (mut child, addr) = common::serve(&bin, &config)?;
    let path = "/api/v3/tickets?page=1&itemsInPage=1";
    let direct_url = format!("{base}{path}");
    let proxy_url = format!("http://{addr}/v1/proxy/atera{path}");
    let (direct_auth, proxy_auth) = (format!("Bearer {KEY}"), format!("Bearer {token}"));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let c: Client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        // Warm both paths (connections, the daemon's first audit commit).
        run(&c, &direct_url, &direct_auth, CONCURRENT).await?;
        run(&c, &proxy_url, &proxy_auth, CONCURRENT).await?;
        let mut rows = Vec::new();
        for width in [1, CONCURRENT] {
            let direct = run(&c, &direct_url, &direct_auth, width).await?;
            let proxied = run(&c, &proxy_url, &proxy_auth, width).await?;
            rows.push((format!("{width:>2} at a time"), direct, proxied));
        }
        // The same with an upstream that takes 20 ms, as a SaaS API in the same region does:
        // what a caller sees of the proxy's fixed cost in practice.
        let plan = r#"{"rate": 1.0, "kinds": ["latency"], "latency_ms": 20}"#;
        let req = http::Request::post(format!("{base}/_fake/faults"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(plan)))?;
        anyhow::ensure!(c.request(req).await?.status().is_success(), "fault plan");
        let direct = run_n(&c, &direct_url, &direct_auth, CONCURRENT, 480).await?;
        let proxied = run_n(&c, &proxy_url, &proxy_auth, CONCURRENT, 480).await?;
        rows.push((
            format!("{CONCURRENT} at a time, upstream 20 ms"),
            direct,
            proxied,
        ));
        anyhow::Ok(rows)
    });
    let _ = child.kill();
    let _ = child.wait();
    println!("egress proxy: GET {path} from the Atera fake, {REQUESTS} requests per run");
    for (what, (d_rps, d_p50, d_p99), (p_rps, p_p50, p_p99)) in result? {
        println!(
            "  {what}: direct (baseline) {d_rps:>6.0} req/s p50 {d_p50:.2} ms p99 {d_p99:.2} ms | \
             through /v1/proxy {p_rps:>6.0} req/s p50 {p_p50:.2} ms p99 {p_p99:.2} ms | ratio {:.2}x",
            d_rps / p_rps
        );
    }
    Ok(())
}
