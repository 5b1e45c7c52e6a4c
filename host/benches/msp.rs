//! `make bench`: an MSP's node. A generated config of N tenants, each with its own seven
//! connectors (confluence, zendesk, jira, atera, azure, msgraph, openai) and its own secrets,
//! no sync schedule, started by `airlock serve` from a warm compile cache.
//!
//! Figures: time until the daemon serves, resident and virtual memory once idle, and the cost of
//! one more idle connector (`(RSS_N - RSS_base) / (connectors_N - connectors_base)`), for the
//! baseline (`MSP_BASE_TENANTS`, default 10) and the scale (`MSP_TENANTS`, default 1,000)
//! measured in the same run; plus the demo config's warm start (9 connectors).

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// The per-tenant connectors: id suffix, component, the grant's path, its auth (with `{S}` for
/// the tenant's secret reference).
const KINDS: [(&str, &str, &str, &str); 7] = [
    (
        "confluence",
        "confluence",
        "/wiki/",
        r#"{ type = "basic", username = "svc@example.com", password = "{S}" }"#,
    ),
    (
        "zendesk",
        "zendesk",
        "/api/v2/",
        r#"{ type = "basic", username = "agent@example.com/token", password = "{S}" }"#,
    ),
    (
        "jira",
        "jira_servicedesk",
        "/rest/",
        r#"{ type = "basic", username = "svc@example.com", password = "{S}" }"#,
    ),
    (
        "atera",
        "atera",
        "/api/v3/",
        r#"{ type = "header", name = "X-API-KEY", value = "{S}" }"#,
    ),
    (
        "azure",
        "azure",
        "/subscriptions/",
        r#"{ type = "oauth2", token_url = "http://127.0.0.1:9/t/oauth2/v2.0/token", client_id = "c", client_secret = "{S}", scope = "https://management.azure.com/.default" }"#,
    ),
    (
        "msgraph",
        "msgraph",
        "/v1.0/",
        r#"{ type = "oauth2", token_url = "http://127.0.0.1:9/t/oauth2/v2.0/token", client_id = "c", client_secret = "{S}", scope = "https://graph.microsoft.com/.default" }"#,
    ),
    (
        "openai",
        "openai",
        "/v1/",
        r#"{ type = "bearer", token = "{S}" }"#,
    ),
];

/// Writes the config of `tenants` tenants under `dir` and returns it with the environment that
/// holds every tenant's secrets (one distinct value per connector, as an MSP would have).
fn generate(
    dir: &Path,
    tenants: usize,
    port: u16,
) -> anyhow::Result<(std::path::PathBuf, Vec<(String, String)>)> {
    let wasm = common::artifact("wasm32-wasip2/release")?;
    let mut t = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\n\n[limits]\nmemory_mib = 64\n"
    );
    let mut env = Vec::new();
    for n in 0..tenants {
        let tenant = format!("t{n:04}");
        for (i, (kind, file, path, auth)) in KINDS.iter().enumerate() {
            let id = format!("{tenant}-{kind}");
            let var = format!("MSP_{}_{}", tenant.to_uppercase(), kind.to_uppercase());
            env.push((
                var.clone(),
                format!("msp-secret-{tenant}-{kind}-{:08x}", n * 7 + i),
            ));
            let upstream = 9000 + (n % 500) as u16;
            writeln!(
                t,
                "\n[[connector]]\nid = \"{id}\"\ntenant = \"{tenant}\"\ncomponent = \"{}/{file}.wasm\"\n[connector.settings]\nbase_url = \"http://127.0.0.1:{upstream}\"",
                wasm.display()
            )?;
            writeln!(
                t,
                "[[grant]]\nconnector = \"{id}\"\nurl = \"http://127.0.0.1:{upstream}{path}\"\nallow_private = true\nallow_insecure = true\nauth = {}",
                auth.replace("{S}", &format!("env:{var}"))
            )?;
        }
    }
    let path = dir.join(format!("msp-{tenants}.toml"));
    std::fs::write(&path, t)?;
    Ok((path, env))
}

/// One process's figures.
struct Start {
    connectors: usize,
    ready: Duration,
    rss_kib: u64,
    vm_kib: u64,
}

/// `VmRSS` and `VmSize` of `pid`, in KiB.
fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmSize:")?))
}

/// Starts the daemon on `config` (its compile cache already warm), waits until it serves, lets
/// it settle and reads its memory.
fn start(config: &Path, env: &[(String, String)], connectors: usize) -> anyhow::Result<Start> {
    let bin = common::artifact("release/airlock")?;
    let began = Instant::now();
    let (mut child, _addr) = common::serve_within(&bin, config, Duration::from_secs(600), env)?;
    let ready = began.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (rss_kib, vm_kib) = memory(child.id())?;
    let _ = child.kill();
    let _ = child.wait();
    Ok(Start {
        connectors,
        ready,
        rss_kib,
        vm_kib,
    })
}

/// Generates, warms the compile cache with one start, then measures a second start.
fn measure(dir: &Path, tenants: usize) -> anyhow::Result<Start> {
    let (config, env) = generate(dir, tenants, free_port()?)?;
    let warm = generate(dir, 1, free_port()?)?;
    start(&warm.0, &warm.1, 7)?;
    start(&config, &env, tenants * KINDS.len())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// 7,000 due sync runs from 1,000 tenants (7 streams each) plus one tenant with a backlog of
/// 3,000 streams queued first, through 16 slots (2 per tenant), each run 1 ms: how long the
/// ordinary tenants' runs wait with the fair slots, against a first-come-first-served semaphore
/// of the same 16 slots (the baseline).
fn scheduler_waits() -> anyhow::Result<()> {
    use airlock::fair_slots::{Caps, FairSlots};
    use std::sync::Arc;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let run = Duration::from_millis(1);
    let tenants: Vec<String> = std::iter::repeat_n("backlog".to_string(), 3000)
        .chain((0..1000).flat_map(|t| std::iter::repeat_n(format!("t{t:04}"), 7)))
        .collect();
    let waits = |fair: bool| -> anyhow::Result<Vec<Duration>> {
        rt.block_on(async {
            let slots = FairSlots::new(Caps {
                max_running: 16,
                max_per_tenant: 2,
            });
            let fifo = Arc::new(tokio::sync::Semaphore::new(16));
            let start = Instant::now();
            let mut tasks = Vec::new();
            for tenant in tenants.iter().cloned() {
                let (slots, fifo) = (slots.clone(), fifo.clone());
                tasks.push(tokio::spawn(async move {
                    let asked = Instant::now();
                    let wait = if fair {
                        let _slot = slots.acquire(&tenant).await;
                        let w = asked.elapsed();
                        tokio::time::sleep(run).await;
                        w
                    } else {
                        let _permit = fifo.acquire().await;
                        let w = asked.elapsed();
                        tokio::time::sleep(run).await;
                        w
                    };
                    (tenant, wait)
                }));
            }
            let mut ordinary = Vec::new();
            for t in tasks {
                let (tenant, wait) = t.await?;
                if tenant != "backlog" {
                    ordinary.push(wait);
                }
            }
            let _ = start;
            ordinary.sort();
            Ok(ordinary)
        })
    };
    let fifo = waits(false)?;
    let fair = waits(true)?;
    let p = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    for (label, v) in [("first come first served", &fifo), ("fair slots", &fair)] {
        println!(
            "scheduler {label}: ordinary tenants' runs wait p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            p(v, 0.5),
            p(v, 0.9),
            p(v, 0.99),
            p(v, 1.0)
        );
    }
    println!(
        "scheduler ratio: ordinary tenants' p50 wait {:.2}x the first-come-first-served baseline (behind a 3,000-stream backlog)",
        p(&fair, 0.5) / p(&fifo, 0.5)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    scheduler_waits()?;
    let tenants: usize = std::env::var("MSP_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let base_tenants: usize = std::env::var("MSP_BASE_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir()?;
    let base = measure(dir.path(), base_tenants)?;
    let scale = measure(dir.path(), tenants)?;
    for (label, s) in [("base", &base), ("scale", &scale)] {
        println!(
            "msp {label}: {} connectors, serving after {:.2} s, idle RSS {:.0} MiB, virtual {:.1} GiB",
            s.connectors,
            s.ready.as_secs_f64(),
            mib(s.rss_kib),
            mib(s.vm_kib) / 1024.0
        );
    }
    let per = (scale.rss_kib.saturating_sub(base.rss_kib)) as f64
        / (scale.connectors - base.connectors).max(1) as f64;
    println!(
        "msp ratio: start {:.1}x the base for {:.0}x the connectors; {:.0} KiB RSS per idle connector beyond the shared code (goal <= 100 KiB; <= 10 s and <= 500 MiB at 7,000)",
        scale.ready.as_secs_f64() / base.ready.as_secs_f64(),
        scale.connectors as f64 / base.connectors as f64,
        per
    );

    // The demo config's warm start: what `make run` waits for after the first build.
    let demo = common::artifact("../examples/demo.toml")?;
    let demo_dir = tempfile::tempdir()?;
    let (text, secrets) = vault_refs_to_env(&std::fs::read_to_string(&demo)?);
    let text = text
        .replace(
            "../target/",
            &format!("{}/", common::artifact("")?.display()),
        )
        .replace("data_dir = \"../.airlock/demo\"", "data_dir = \"data\"")
        .replace("127.0.0.1:7700", &format!("127.0.0.1:{}", free_port()?));
    let demo_config = demo_dir.path().join("demo.toml");
    std::fs::write(&demo_config, text)?;
    start(&demo_config, &secrets, 9)?;
    let mut times = Vec::new();
    for _ in 0..3 {
        times.push(start(&demo_config, &secrets, 9)?);
    }
    times.sort_by_key(|s| s.ready);
    let mid = &times[1];
    println!(
        "demo warm start: 9 connectors serving after {:.0} ms (median of 3; goal <= 150 ms), idle RSS {:.0} MiB",
        mid.ready.as_secs_f64() * 1000.0,
        mib(mid.rss_kib)
    );
    Ok(())
}

/// The demo's `secret:NAME` references (vault entries that `make run` sets) as `env:` ones with
/// values, so a fresh data dir loads every connector.
fn vault_refs_to_env(text: &str) -> (String, Vec<(String, String)>) {
    let mut out = String::new();
    let mut env = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("\"secret:") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + "\"secret:".len()..];
        let end = tail.find('"').unwrap_or(tail.len());
        let var = format!("DEMO_{}", tail[..end].to_uppercase());
        out.push_str(&format!("\"env:{var}"));
        env.push((var, format!("demo-bench-secret-{}", env.len())));
        rest = &tail[end..];
    }
    out.push_str(rest);
    (out, env)
}
