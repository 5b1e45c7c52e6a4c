//! Connectors written in other languages against the same contract: the Python Zendesk
//! connector (componentize-py) and the JavaScript Confluence connector (componentize-js), built
//! by `make polyglot` into target/polyglot/. Each loads in the host, passes every conformance
//! rule against its fake, syncs the fake's records into the store, runs its action and maps
//! upstream failures to the contract's error variants. One test prints their size and load time
//! beside a Rust connector's.
//!
//! The tests take turns (`SERIAL`): a Python component takes seconds of Cranelift on both cores,
//! and two such compiles at once would only make each one, and the timings, worse.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;
use std::time::Instant;

use airlock::store::documents;
use airlock_tests::*;
use fake_saas::faults::{FaultKind, FaultPlan};
use fake_saas::{ConfluenceOptions, ZendeskOptions, spawn_confluence, spawn_zendesk};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A component built by `make polyglot`.
fn polyglot(name: &str) -> PathBuf {
    let p = root().join(format!("target/polyglot/{name}.wasm"));
    assert!(
        p.exists(),
        "{} missing: run `make polyglot` (`make test` builds it first)",
        p.display()
    );
    p
}

fn addr() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the CLI off the async runtime: the fakes need its threads while the child runs.
async fn airlock(env: &Env, args: &[&str]) -> Output {
    let config = env.config.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(airlock_bin())
            .args(&args)
            .env("AIRLOCK_CONFIG", config)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run airlock")
    })
    .await
    .expect("airlock task")
}

/// Every conformance rule passed, and the stream and action rules did run.
fn assert_conformance_passes(out: &Output, stream: &str, action: &str) {
    let t = text(out);
    println!("{t}");
    assert!(out.status.success(), "conformance failed:\n{t}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("FAIL ") && !stdout.contains("SKIP "),
        "{t}"
    );
    for rule in [
        "PASS load:".to_string(),
        "PASS info.well-formed:".into(),
        "PASS info.action-schemas:".into(),
        "PASS health:".into(),
        format!("PASS sync.terminates[{stream}]:"),
        format!("PASS sync.documents[{stream}]:"),
        format!("PASS sync.resume[{stream}]:"),
        "PASS search.well-formed:".into(),
        "PASS errors.unknown-stream:".into(),
        "PASS errors.unknown-action:".into(),
        "PASS errors.get-unknown-id:".into(),
        format!("PASS errors.invalid-input[{action}]:"),
        "PASS grants.no-denied-requests:".into(),
    ] {
        assert!(stdout.contains(&rule), "missing `{rule}`:\n{t}");
    }
}

/// `airlock invoke ID OP INPUT` failed with the contract error `variant` (the CLI prints
/// `error: VARIANT: ...`).
async fn assert_invoke_error(env: &Env, id: &str, op: &str, input: &str, variant: &str) -> String {
    let out = airlock(env, &["invoke", id, op, input]).await;
    let t = text(&out);
    assert!(!out.status.success(), "{id} {op} succeeded:\n{t}");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{t}"));
    assert!(
        line.starts_with(&format!("error: {variant}")),
        "{id} {op}: expected {variant}, got `{line}`"
    );
    line.to_string()
}

/// A failure the fake injects into every matching request from now on.
fn always(kind: FaultKind, paths: &[&str]) -> FaultPlan {
    FaultPlan {
        rate: 1.0,
        kinds: vec![kind],
        paths: paths.iter().map(|p| p.to_string()).collect(),
        retry_after_secs: 7,
        ..FaultPlan::default()
    }
}

/// One connector entry and its grant, with the default memory limit (64 MiB is enough for the
/// interpreters at these page sizes) and the Rust connectors' generous test timeout. Retries are off so that an injected failure reaches
/// the connector as the upstream sent it (the gate would otherwise retry 429/5xx first).
fn entry(
    id: &str,
    wasm: &str,
    settings: &str,
    grant_url: &str,
    methods: &str,
    auth: &str,
) -> String {
    format!(
        r#"
[[connector]]
id = "{id}"
component = "{wasm}"
limits = {{ timeout = "60s" }}
[connector.settings]
{settings}

[[grant]]
connector = "{id}"
url = "{grant_url}"
methods = {methods}
allow_private = true
retry = {{ attempts = 1 }}
allow_insecure = true
auth = {auth}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_zendesk_passes_conformance_syncs_runs_its_action_and_maps_errors() {
    let _turn = SERIAL.lock().await;
    let opts = ZendeskOptions {
        tickets: 130,
        recent_exclusion_secs: 0,
        ..ZendeskOptions::default()
    };
    let f = spawn_zendesk(addr(), opts.clone()).await.expect("fake");
    let base = &f.base_url;
    let wasm = polyglot("python_zendesk").display().to_string();
    let settings = format!("base_url = \"{base}\"\npage_size = \"40\"");
    let api = format!("{base}/api/v2/");
    let basic = |secret: &str| {
        format!(
            "{{ type = \"basic\", username = \"{}/token\", password = \"secret:{secret}\" }}",
            opts.email
        )
    };
    let env = Env::new(&format!(
        "{}{}{}",
        entry(
            "pyzd",
            &wasm,
            &settings,
            &api,
            "[\"GET\"]",
            &basic("zendesk_token")
        ),
        // The same component with a credential the fake rejects, and with a grant that covers
        // single tickets only, so that search is refused by the gate.
        entry(
            "pyzd-badauth",
            &wasm,
            &settings,
            &api,
            "[\"GET\"]",
            &basic("wrong_token")
        ),
        entry(
            "pyzd-narrow",
            &wasm,
            &settings,
            &format!("{base}/api/v2/tickets/"),
            "[\"GET\"]",
            &basic("zendesk_token")
        ),
    ));
    env.set_secret("zendesk_token", &opts.api_token);
    env.set_secret("wrong_token", "not-the-zendesk-token");

    // Conformance compiles the component into the env's cache; every later call loads it from
    // there, so this test pays for one compile.
    let out = airlock(&env, &["conformance", &wasm, "--connector", "pyzd"]).await;
    assert_conformance_passes(&out, "tickets", "ticket-comments");

    // A sync stores exactly the fake's tickets.
    let out = airlock(&env, &["sync", "pyzd"]).await;
    assert!(out.status.success(), "sync failed:\n{}", text(&out));
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let docs = documents::all(&conn, "pyzd", Some("ticket")).expect("docs");
    let truth = f.truth();
    let stored: BTreeSet<(String, String, String, String)> = docs
        .iter()
        .map(|d| {
            (
                d.id.clone(),
                d.title.clone(),
                d.updated_at.clone(),
                norm(&d.body),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String, String)> = truth
        .tickets
        .iter()
        .map(|t| {
            let id = t.id.to_string();
            (
                id,
                t.subject.clone(),
                t.updated_at.clone(),
                norm(&t.description),
            )
        })
        .collect();
    assert_eq!(stored.len(), docs.len(), "a ticket stored twice");
    assert_eq!(stored, expected);

    // The action returns the ticket's comments as the fake has them.
    let ticket = &truth.tickets[0];
    let input = format!("{{\"ticket_id\": {}}}", ticket.id);
    let (ok, v, err) = env.invoke("pyzd", "ticket-comments", &input);
    assert!(ok, "ticket-comments failed: {err}");
    let ids: Vec<u64> = v["comments"]
        .as_array()
        .expect("comments")
        .iter()
        .filter_map(|c| c["id"].as_u64())
        .collect();
    let want: Vec<u64> = ticket.comments.iter().map(|c| c.id).collect();
    assert_eq!(ids, want);
    assert_eq!(v["comments"][0]["body"], ticket.comments[0].body.as_str());

    // Upstream failures become the contract's error variants.
    assert_invoke_error(&env, "pyzd", "get", r#"{"id": "999999"}"#, "not-found").await;
    assert_invoke_error(
        &env,
        "pyzd",
        "get",
        r#"{"id": "../admin"}"#,
        "invalid-input",
    )
    .await;
    assert_invoke_error(&env, "pyzd-badauth", "health", "{}", "unauthorized").await;
    assert_invoke_error(&env, "pyzd-narrow", "health", "{}", "forbidden").await;
    let get = format!("{{\"id\": \"{}\"}}", ticket.id);
    f.set_faults(always(FaultKind::BadGateway, &["/api/v2/tickets/"]));
    assert_invoke_error(&env, "pyzd", "get", &get, "upstream").await;
    f.set_faults(always(FaultKind::RateLimited, &["/api/v2/tickets/"]));
    let line = assert_invoke_error(&env, "pyzd", "get", &get, "rate-limited").await;
    assert!(line.contains('7'), "Retry-After 7 is not in `{line}`");
    f.set_faults(FaultPlan::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_confluence_passes_conformance_syncs_runs_its_action_and_maps_errors() {
    let _turn = SERIAL.lock().await;
    let opts = ConfluenceOptions::default();
    let f = spawn_confluence(addr(), opts.clone()).await.expect("fake");
    let base = &f.base_url;
    let wasm = polyglot("js_confluence").display().to_string();
    let settings = format!("base_url = \"{base}\"\npage_limit = \"30\"");
    let wiki = format!("{base}/wiki/");
    let basic = |secret: &str| {
        format!(
            "{{ type = \"basic\", username = \"{}\", password = \"secret:{secret}\" }}",
            opts.email
        )
    };
    // check-permission is its only POST.
    let methods =
        "[\"GET\", \"POST\"]\nexact_paths = [\"/wiki/rest/api/content/*/permission/check\"]";
    let env = Env::new(&format!(
        "{}{}",
        entry(
            "jscf",
            &wasm,
            &settings,
            &wiki,
            methods,
            &basic("confluence_token")
        ),
        entry(
            "jscf-badauth",
            &wasm,
            &settings,
            &wiki,
            methods,
            &basic("wrong_token")
        ),
    ));
    env.set_secret("confluence_token", &opts.api_token);
    env.set_secret("wrong_token", "not-the-confluence-token");

    let out = airlock(&env, &["conformance", &wasm, "--connector", "jscf"]).await;
    assert_conformance_passes(&out, "pages", "spaces");

    // A sync stores exactly the fake's current pages.
    let out = airlock(&env, &["sync", "jscf"]).await;
    assert!(out.status.success(), "sync failed:\n{}", text(&out));
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let docs = documents::all(&conn, "jscf", Some("page")).expect("docs");
    let truth = f.truth();
    let stored: BTreeSet<(String, String, String)> = docs
        .iter()
        .map(|d| (d.id.clone(), d.title.clone(), d.updated_at.clone()))
        .collect();
    let expected: BTreeSet<(String, String, String)> = truth
        .pages
        .iter()
        .filter(|p| p.status == "current")
        .map(|p| (p.id.clone(), p.title.clone(), p.version_created_at.clone()))
        .collect();
    assert_eq!(stored.len(), docs.len(), "a page stored twice");
    assert_eq!(stored, expected);

    // The action lists the fake's spaces.
    let (ok, v, err) = env.invoke("jscf", "spaces", "{}");
    assert!(ok, "spaces failed: {err}");
    let keys: BTreeSet<String> = v
        .as_array()
        .expect("spaces")
        .iter()
        .filter_map(|s| s["key"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = truth.spaces.iter().map(|s| s.key.clone()).collect();
    assert_eq!(keys, want);

    // check-permission is a POST (sent with fetch, through the gate): the fake's read
    // restriction decides.
    let restricted = truth
        .pages
        .iter()
        .find(|p| !p.read_restricted_to.is_empty() && !p.readers.is_empty())
        .expect("a restricted page");
    for (principal, allowed) in [
        (restricted.readers[0].as_str(), true),
        ("557058:not-a-reader", false),
    ] {
        let input = format!(
            "{{\"principal\": \"{principal}\", \"id\": \"{}\"}}",
            restricted.id
        );
        let (ok, v, err) = env.invoke("jscf", "check-permission", &input);
        assert!(ok, "check-permission failed: {err}");
        assert_eq!(
            v["allowed"], allowed,
            "{principal} on page {}",
            restricted.id
        );
    }

    // Upstream failures become the contract's error variants.
    assert_invoke_error(&env, "jscf", "get", r#"{"id": "999999999"}"#, "not-found").await;
    assert_invoke_error(&env, "jscf", "get", r#"{"id": "1/../x"}"#, "invalid-input").await;
    assert_invoke_error(&env, "jscf-badauth", "health", "{}", "unauthorized").await;
    let get = format!("{{\"id\": \"{}\"}}", docs[0].id);
    f.set_faults(always(FaultKind::BadGateway, &["/wiki/api/v2/pages/"]));
    assert_invoke_error(&env, "jscf", "get", &get, "upstream").await;
    f.set_faults(always(FaultKind::RateLimited, &["/wiki/api/v2/pages/"]));
    let line = assert_invoke_error(&env, "jscf", "get", &get, "rate-limited").await;
    assert!(line.contains('7'), "Retry-After 7 is not in `{line}`");
    f.set_faults(FaultPlan::default());
}

/// `airlock check --json FILE` in a throwaway host (no compile cache): the component's size,
/// Cranelift's compile time as the host reports it, and the wall time of the whole load
/// (process start, compile, instantiate, `info`).
async fn measure(wasm: PathBuf) -> (f64, f64, f64) {
    let size_mb = std::fs::metadata(&wasm).expect("wasm").len() as f64 / 1e6;
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(airlock_bin())
            .args(["check", "--json"])
            .arg(&wasm)
            .env_remove("RUST_LOG")
            .output()
            .expect("airlock check")
    })
    .await
    .expect("check task");
    let wall = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "check failed:\n{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("check JSON");
    assert_eq!(v["ok"], true, "{v}");
    let compile = v["compile"]["millis"].as_f64().expect("compile millis") / 1000.0;
    (size_mb, compile, wall)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polyglot_components_load_and_report_size_and_load_time_beside_rust() {
    let _turn = SERIAL.lock().await;
    let mut line = Vec::new();
    for (label, wasm) in [
        ("python-zendesk", polyglot("python_zendesk")),
        ("js-confluence", polyglot("js_confluence")),
        ("rust zendesk", component("zendesk")),
        ("rust confluence", component("confluence")),
    ] {
        let (size, compile, wall) = measure(wasm).await;
        line.push(format!(
            "{label} {size:.1} MB, load {wall:.1} s (compile {compile:.1} s)"
        ));
    }
    // Printed for the record (`cargo test -- --nocapture`): an uncached load is what the first
    // start of a daemon, or each test's fresh data directory, pays once per component.
    println!("polyglot: {}", line.join("; "));
}
