//! Resilience at the gate, end to end against the fakes' fault knobs: chaos syncs of every
//! stream converge on what a clean sync stores with bounded retry amplification; an upstream's
//! 60 s `Retry-After` pauses the whole grant; the breaker opens, fails fast and closes again;
//! retries stay on idempotent methods and transient statuses; the GET cache saves requests.

use std::collections::BTreeMap;
use std::time::Duration;

use airlock::app::Airlock;
use airlock::runtime::connector::Op;
use airlock::store::documents;
use airlock::sync::RunEnd;
use airlock_tests::*;
use fake_saas::server::FakeState;
use fake_saas::{
    AteraOptions, AzureOptions, ConfluenceOptions, FaultKind, FaultPlan, JiraOptions,
    MsGraphOptions, RunningFake, ZendeskOptions, spawn_atera, spawn_azure, spawn_confluence,
    spawn_jira, spawn_msgraph, spawn_zendesk,
};
use serde_json::{Value, json};

/// What the chaos test needs of any fake.
trait Upstream {
    fn set_faults(&self, plan: FaultPlan);
    fn total_requests(&self) -> u64;
    fn faults(&self) -> u64;
}

impl<S: FakeState> Upstream for RunningFake<S> {
    fn set_faults(&self, plan: FaultPlan) {
        RunningFake::set_faults(self, plan)
    }
    fn total_requests(&self) -> u64 {
        self.requests().total
    }
    fn faults(&self) -> u64 {
        self.faults_injected().total
    }
}

fn addr() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// One connector against its fake: the fake, the config, and the secrets it needs.
struct Case {
    id: &'static str,
    fake: Box<dyn Upstream>,
    config: String,
    secrets: Vec<(&'static str, String)>,
    /// Kinds whose `updated_at` is the sync time (the upstream has none), so not compared.
    synced_at_kinds: &'static [&'static str],
}

async fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    let o = ConfluenceOptions {
        pages: 150,
        ..ConfluenceOptions::default()
    };
    let f = spawn_confluence(addr(), o.clone())
        .await
        .expect("confluence");
    out.push(Case {
        id: "confluence",
        config: confluence_config(&f.base_url).replace(
            "[connector.settings]\n",
            "[connector.settings]\npage_limit = \"10\"\n",
        ),
        secrets: vec![("confluence_token", o.api_token)],
        fake: Box::new(f),
        synced_at_kinds: &[],
    });

    let o = ZendeskOptions {
        tickets: 500,
        articles: 60,
        recent_exclusion_secs: 0,
        ..ZendeskOptions::default()
    };
    let f = spawn_zendesk(addr(), o.clone()).await.expect("zendesk");
    out.push(Case {
        id: "zendesk",
        config: zendesk_config(&f.base_url, "page_size = \"25\""),
        secrets: vec![("zendesk_token", o.api_token)],
        fake: Box::new(f),
        synced_at_kinds: &[],
    });

    let o = JiraOptions {
        requests: 80,
        articles: 15,
        ..JiraOptions::default()
    };
    let f = spawn_jira(addr(), o.clone()).await.expect("jira");
    out.push(Case {
        id: "jira",
        config: jira_config(&f.base_url),
        secrets: vec![("jira_token", o.api_token)],
        fake: Box::new(f),
        synced_at_kinds: &[],
    });

    let o = AteraOptions {
        tickets: 120,
        ..AteraOptions::default()
    };
    let f = spawn_atera(addr(), o.clone()).await.expect("atera");
    out.push(Case {
        id: "atera",
        config: format!(
            r#"
[[connector]]
id = "atera"
component = "{}"
limits = {{ timeout = "60s" }}
[connector.settings]
base_url = "{base}"

[[grant]]
connector = "atera"
url = "{base}/api/v3/"
methods = ["GET"]
allow_private = true
allow_insecure = true
auth = {{ type = "header", name = "X-API-KEY", value = "secret:atera_key" }}
"#,
            component("atera").display(),
            base = f.base_url
        ),
        secrets: vec![("atera_key", o.api_key)],
        fake: Box::new(f),
        synced_at_kinds: &[],
    });

    let o = AzureOptions {
        vms: 60,
        ..AzureOptions::default()
    };
    let f = spawn_azure(addr(), o.clone()).await.expect("azure");
    out.push(Case {
        id: "azure",
        config: azure_config(&f.base_url, &f.token_url(), &o.subscription, &o.client_id),
        secrets: vec![("azure_secret", o.client_secret)],
        fake: Box::new(f),
        synced_at_kinds: &[],
    });
    let o = MsGraphOptions::default();
    let f = spawn_msgraph(addr(), o.clone()).await.expect("msgraph");
    out.push(Case {
        id: "msgraph",
        config: msgraph_config(&f, &o.client_id),
        secrets: vec![("graph_secret", o.client_secret)],
        fake: Box::new(f),
        synced_at_kinds: &["user"],
    });
    out
}

type Snapshot = BTreeMap<(String, String), (String, String, Option<String>, String)>;

fn snapshot(env: &Env, connector: &str, synced_at_kinds: &[&str]) -> Snapshot {
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    documents::all(&conn, connector, None)
        .expect("documents")
        .into_iter()
        .map(|d| {
            (
                (d.kind.clone(), d.id.clone()),
                (
                    d.title,
                    d.body,
                    d.url,
                    if synced_at_kinds.contains(&d.kind.as_str()) {
                        String::new()
                    } else {
                        d.updated_at
                    },
                ),
            )
        })
        .collect()
}

/// Syncs every stream until each is done, tolerating failed and rate-limited runs (each run
/// resumes from the last committed cursor). Returns (runs, failed runs, rate-limited runs).
async fn sync_until_done(a: &Airlock, connector: &str) -> (u32, u32, u32) {
    let (mut runs, mut failed, mut limited) = (0, 0, 0);
    for stream in a.streams_of(connector, None).expect("streams") {
        let mut done = false;
        for _ in 0..200 {
            runs += 1;
            match a.sync_stream(connector, &stream, false, |_| {}).await {
                Ok(r) if r.end == RunEnd::Done => {
                    done = true;
                    break;
                }
                Ok(r) => {
                    limited += 1;
                    if let RunEnd::RateLimited { retry_after_secs } = r.end {
                        assert!(retry_after_secs <= 60, "{retry_after_secs}");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => failed += 1,
            }
        }
        assert!(done, "{connector}/{stream} never finished under chaos");
    }
    (runs, failed, limited)
}

fn env_with(case: &Case) -> Env {
    let env = Env::new(&case.config);
    for (k, v) in &case.secrets {
        env.set_secret(k, v);
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_syncs_of_every_stream_end_equal_to_a_clean_sync_with_bounded_amplification() {
    let mut report = Vec::new();
    for (n, case) in cases().await.into_iter().enumerate() {
        // The minimum: a clean sync of every stream.
        let clean_env = env_with(&case);
        let clean = start_in_process(&clean_env).await;
        let before = case.fake.total_requests();
        let (runs, failed, _) = sync_until_done(&clean, case.id).await;
        assert_eq!(failed, 0, "{}: clean sync failed", case.id);
        let needed = case.fake.total_requests() - before;
        let expected = snapshot(&clean_env, case.id, case.synced_at_kinds);
        assert!(
            !expected.is_empty(),
            "{}: clean sync stored nothing",
            case.id
        );
        drop(clean);

        // The same data under 20% seeded faults of every kind, into a fresh store.
        case.fake.set_faults(FaultPlan {
            latency_ms: 50,
            ..FaultPlan::chaos(1000 + n as u64, 0.2)
        });
        let chaos_env = env_with(&case);
        let chaos = start_in_process(&chaos_env).await;
        let before = case.fake.total_requests();
        let (chaos_runs, failed, limited) = sync_until_done(&chaos, case.id).await;
        let sent = case.fake.total_requests() - before;
        let faults = case.fake.faults();
        case.fake.set_faults(FaultPlan::default());
        eprintln!("{}: needed {needed}, sent {sent}, {faults} faults", case.id);
        assert!(
            faults > 0,
            "{}: no faults were injected in {sent} requests (needed {needed})",
            case.id
        );

        let got = snapshot(&chaos_env, case.id, case.synced_at_kinds);
        assert_eq!(
            got.len(),
            expected.len(),
            "{}: document count under chaos",
            case.id
        );
        let differ: Vec<_> = expected
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k:?}: clean {v:?}, chaos {:?}", got.get(k)))
            .chain(
                got.keys()
                    .filter(|k| !expected.contains_key(*k))
                    .map(|k| format!("{k:?}: only under chaos")),
            )
            .take(5)
            .collect();
        assert!(
            differ.is_empty(),
            "{}: documents differ under chaos:\n{}",
            case.id,
            differ.join("\n")
        );
        let amplification = sent as f64 / needed as f64;
        report.push(format!(
            "{}: needed {needed} requests ({runs} runs), sent {sent} under chaos ({faults} faults, {chaos_runs} runs, {failed} failed, {limited} rate-limited): {amplification:.2}x",
            case.id
        ));
        assert!(
            amplification <= 1.5,
            "{}: retry amplification {amplification:.2} > 1.5\n{}",
            case.id,
            report.join("\n")
        );
    }
    eprintln!("{}", report.join("\n"));
}

fn hostile_against(base: &str, grant_extra: &str) -> String {
    format!(
        r#"
[[connector]]
id = "probe"
component = "{}"

[[grant]]
connector = "probe"
url = "{base}/wiki/"
methods = ["GET", "POST"]
exact_paths = ["/wiki/api/v2/spaces"]
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "demo@example.com", password = "secret:confluence_token" }}
{grant_extra}
"#,
        component("hostile").display()
    )
}

async fn fetch(a: &Airlock, input: Value) -> Value {
    a.invoke(
        "probe",
        Op::Action {
            name: "fetch".into(),
            input,
        },
    )
    .await
    .expect("fetch action")
}

fn header<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v["headers"].as_array()?.iter().find_map(|h| {
        (h[0].as_str()?.eq_ignore_ascii_case(name))
            .then(|| h[1].as_str())
            .flatten()
    })
}

async fn confluence() -> RunningFake<fake_saas::confluence::Confluence> {
    spawn_confluence(
        addr(),
        ConfluenceOptions {
            pages: 10,
            ..ConfluenceOptions::default()
        },
    )
    .await
    .expect("fake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60s_retry_after_pauses_the_whole_grant_for_every_invocation_and_sync() {
    let f = confluence().await;
    let env = Env::new(&format!(
        "{}{}",
        hostile_against(&f.base_url, ""),
        confluence_config(&f.base_url)
    ));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    let url = f.url("/wiki/api/v2/spaces");

    f.set_faults(FaultPlan {
        rate: 1.0,
        kinds: vec![FaultKind::RateLimited],
        retry_after_secs: 60,
        max_faults: 1,
        ..FaultPlan::default()
    });
    let first = fetch(&a, json!({ "url": url })).await;
    assert_eq!(first["status"], 429, "{first}");
    assert_eq!(f.requests().total, 1);

    // The upstream is healthy again, but the grant waits out its minute: 20 concurrent
    // invocations send nothing and are answered rate-limited at once.
    let started = std::time::Instant::now();
    let calls = (0..20).map(|_| fetch(&a, json!({ "url": url })));
    let answers = futures::future::join_all(calls).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    for r in &answers {
        assert_eq!(r["status"], 429, "{r}");
        assert_eq!(header(r, "x-airlock-gate"), Some("rate-limited"), "{r}");
        let secs: u64 = header(r, "retry-after")
            .and_then(|s| s.parse().ok())
            .expect("retry-after");
        assert!((50..=60).contains(&secs), "{secs}");
    }
    assert_eq!(f.requests().total, 1, "nothing sent during the pause");

    // Another connector's grant on the same upstream is not paused (budgets are per grant),
    // and its sync, once that grant is paused too, ends cleanly rate-limited.
    f.set_faults(FaultPlan {
        rate: 1.0,
        kinds: vec![FaultKind::RateLimited],
        retry_after_secs: 60,
        max_faults: 1,
        ..FaultPlan::default()
    });
    let r = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect("sync ends cleanly");
    assert!(
        matches!(r.end, RunEnd::RateLimited { retry_after_secs } if (50..=60).contains(&retry_after_secs)),
        "{r:?}"
    );
    a.flush();
    let rows = audit_rows(&env);
    let limited = rows
        .iter()
        .filter(|r| r.event.event == "http" && r.event.decision == "rate-limited")
        .count();
    assert!(limited >= 20, "{limited} rate-limited audit rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_on_a_dead_upstream_fails_fast_and_closes_after_recovery() {
    let f = confluence().await;
    let env = Env::new(&hostile_against(
        &f.base_url,
        "retry = { attempts = 1 }\nbreaker = { failures = 3, cooldown = \"400ms\" }",
    ));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    let url = f.url("/wiki/api/v2/spaces");
    f.set_faults(FaultPlan {
        rate: 1.0,
        kinds: vec![FaultKind::BadGateway],
        ..FaultPlan::default()
    });
    for _ in 0..3 {
        assert_eq!(fetch(&a, json!({ "url": url })).await["status"], 502);
    }
    // What GET /v1/connectors reports.
    let status = |a: &Airlock| {
        a.statuses()
            .into_iter()
            .find(|s| s.id == "probe")
            .expect("probe")
            .grants
    };
    assert_eq!(status(&a)[0].breaker, "open");
    // Open: fail fast, nothing reaches the upstream.
    for _ in 0..5 {
        let r = fetch(&a, json!({ "url": url })).await;
        assert_eq!(r["status"], 503, "{r}");
        assert_eq!(header(&r, "x-airlock-gate"), Some("circuit-open"));
    }
    assert_eq!(f.requests().total, 3);
    let metrics = a.metrics.render();
    assert!(
        metrics.contains(r#"airlock_breaker_state{connector="probe",grant="grant-0"} 1"#),
        "{metrics}"
    );

    // The upstream recovers; after the cool-down one probe goes through and closes the circuit.
    f.set_faults(FaultPlan::default());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = fetch(&a, json!({ "url": url })).await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(status(&a)[0].breaker, "closed");
    assert_eq!(fetch(&a, json!({ "url": url })).await["status"], 200);
    assert_eq!(f.requests().total, 5);
    let metrics = a.metrics.render();
    for to in ["open", "half-open", "closed"] {
        assert!(
            metrics.contains(&format!(
                r#"airlock_breaker_transitions_total{{connector="probe",grant="grant-0",outcome="{to}"}} 1"#
            )),
            "{to}: {metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idempotent_requests_are_retried_and_only_on_transient_failures() {
    let f = confluence().await;
    let env = Env::new(&hostile_against(
        &f.base_url,
        "retry = { attempts = 3, backoff = \"10ms\" }\nbreaker = { failures = 100 }",
    ));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    let url = f.url("/wiki/api/v2/spaces");
    let faults = |kind, max| FaultPlan {
        rate: 1.0,
        kinds: vec![kind],
        max_faults: max,
        ..FaultPlan::default()
    };

    // Two transient failures, then success: the GET succeeds on its third attempt.
    for kind in [
        FaultKind::BadGateway,
        FaultKind::ResetMidBody,
        FaultKind::RateLimitedBare,
    ] {
        f.reset_requests();
        f.set_faults(faults(kind, 2));
        let r = fetch(&a, json!({ "url": url })).await;
        assert_eq!(r["status"], 200, "{kind:?}: {r}");
        assert_eq!(f.requests().total, 3, "{kind:?}");
    }
    // Always failing: bounded attempts.
    f.reset_requests();
    f.set_faults(faults(FaultKind::GatewayTimeout, 0));
    assert_eq!(fetch(&a, json!({ "url": url })).await["status"], 504);
    assert_eq!(f.requests().total, 3);
    // POST is not idempotent: one attempt.
    f.reset_requests();
    let r = fetch(&a, json!({ "url": url, "method": "POST", "body": "{}" })).await;
    assert_eq!(r["status"], 504);
    assert_eq!(f.requests().total, 1);
    // 401/403/404 and other 4xx are never retried.
    f.set_faults(FaultPlan::default());
    f.reset_requests();
    let r = fetch(&a, json!({ "url": f.url("/wiki/api/v2/pages/999999999") })).await;
    assert_eq!(r["status"], 404, "{r}");
    assert_eq!(f.requests().total, 1);
    let metrics = a.metrics.render();
    assert!(
        metrics.contains(r#"airlock_outbound_retries_total{connector="probe",grant="grant-0"}"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_gets_are_served_by_the_gate_per_credential() {
    let f = confluence().await;
    let env = Env::new(&hostile_against(&f.base_url, "cache_ttl = \"60s\""));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    let url = f.url("/wiki/api/v2/spaces");
    let one = fetch(&a, json!({ "url": url })).await;
    let two = fetch(&a, json!({ "url": url })).await;
    assert_eq!(one["status"], 200);
    assert_eq!(one["body"], two["body"]);
    assert_eq!(f.requests().total, 1, "the second GET came from the cache");
    // A POST is never cached.
    fetch(&a, json!({ "url": url, "method": "POST", "body": "{}" })).await;
    assert_eq!(f.requests().total, 2);
    a.flush();
    let rows = audit_rows(&env);
    assert!(
        rows.iter()
            .any(|r| r.event.reason.contains("served from the response cache")),
        "cache hits are audited"
    );
    assert!(a.metrics.render().contains(
        r#"airlock_response_cache_total{connector="probe",grant="grant-0",outcome="hit"} 1"#
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_get_is_not_served_under_another_credential() {
    let f = fake_saas::spawn_msgraph(
        "127.0.0.1:0".parse().expect("addr"),
        fake_saas::MsGraphOptions::default(),
    )
    .await
    .expect("msgraph");
    // Every token lives one second: the gate fetches a new one, a new credential, for the
    // third request.
    f.set_token_lifetime_secs(1);
    let o = fake_saas::MsGraphOptions::default();
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "probe"
component = "{}"

[[grant]]
connector = "probe"
url = "{base}/v1.0/"
methods = ["GET"]
allow_private = true
allow_insecure = true
cache_ttl = "60s"
auth = {{ type = "oauth2", token_url = "{token_url}", client_id = "{client}", client_secret = "secret:graph_secret", scope = "https://graph.microsoft.com/.default" }}
"#,
        component("hostile").display(),
        base = f.base_url,
        token_url = f.token_url(),
        client = o.client_id,
    ));
    env.set_secret("graph_secret", &o.client_secret);
    let a = start_in_process(&env).await;
    let url = format!("{}/v1.0/users", f.base_url);
    let one = fetch(&a, json!({ "url": url })).await;
    let two = fetch(&a, json!({ "url": url })).await;
    assert_eq!(one["status"], 200, "{one}");
    assert_eq!(one["body"], two["body"]);
    assert_eq!(
        f.requests_to("/v1.0/users"),
        1,
        "the second GET came from the cache"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let three = fetch(&a, json!({ "url": url })).await;
    assert_eq!(three["status"], 200, "{three}");
    assert_eq!(f.token_requests(), 2, "a new token for the third request");
    assert_eq!(
        f.requests_to("/v1.0/users"),
        2,
        "the answer cached under the old token is not served under the new one"
    );
}

/// Issue: a sync run was seen making fewer attempts under `429 + Retry-After` than an action.
/// Both go through the same gate with the same deadline: the attempts must be the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_page_and_an_action_make_the_same_attempts_under_a_retry_after() {
    let f = confluence().await;
    let env = Env::new(&format!(
        "{}\n{}",
        confluence_config(&f.base_url),
        hostile_against(&f.base_url, "")
    ));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    let plan = FaultPlan {
        rate: 1.0,
        kinds: vec![FaultKind::RateLimited],
        paths: vec!["/wiki/api/v2/pages".into()],
        retry_after_secs: 2,
        ..FaultPlan::default()
    };

    f.set_faults(plan.clone());
    f.reset_requests();
    let r = fetch(&a, json!({ "url": f.url("/wiki/api/v2/pages") })).await;
    assert_eq!(r["status"], 429, "{r}");
    let action_attempts = f.requests().total;

    f.set_faults(plan);
    f.reset_requests();
    let run = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect("a rate limit is not an error");
    assert!(matches!(run.end, RunEnd::RateLimited { .. }), "{run:?}");
    let sync_attempts = f.requests().total;

    assert_eq!(action_attempts, 3, "the documented default: 3 attempts");
    assert_eq!(
        sync_attempts, action_attempts,
        "a sync page gets the same retries as an action"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syncs_requests_wait_for_their_turns_as_background_work() {
    let f = spawn_confluence(
        addr(),
        ConfluenceOptions {
            pages: 60,
            ..ConfluenceOptions::default()
        },
    )
    .await
    .expect("fake");
    // A slow grant (4/s, no burst) and small pages: each page's request queues for its turn.
    let body = confluence_config(&f.base_url)
        .replace(
            "allow_private = true",
            "allow_private = true\nrate = { per_second = 4, burst = 1 }",
        )
        .replace("base_url = ", "page_limit = \"10\"\nbase_url = ");
    let env = Env::new(&body);
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = std::sync::Arc::new(start_in_process(&env).await);
    let syncing = {
        let a = a.clone();
        tokio::spawn(async move { a.sync_stream("confluence", "pages", false, |_| {}).await })
    };
    let (mut background, mut interactive) = (0, 0);
    while !syncing.is_finished() {
        for s in a.statuses() {
            for g in &s.grants {
                background = background.max(g.queued_background);
                interactive = interactive.max(g.queued_interactive);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    syncing.await.expect("task").expect("sync");
    assert!(
        background >= 1,
        "the sync's requests never queued as background work"
    );
    assert_eq!(
        interactive, 0,
        "a sync's request queued as interactive work"
    );
}

/// A success that declares JSON but does not parse (cut short, or a proxy's error page) is an
/// upstream fault a GET may ask again: for a small answer, and for a large one (a sync page,
/// whose JSON the gate checks alongside its secret scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_success_cut_short_or_garbled_is_asked_again_small_or_large() {
    let o = ZendeskOptions {
        tickets: 400,
        recent_exclusion_secs: 0,
        ..ZendeskOptions::default()
    };
    let f = spawn_zendesk(addr(), o.clone()).await.expect("fake");
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "probe"
component = "{}"

[[grant]]
connector = "probe"
url = "{}/api/v2/"
allow_private = true
allow_insecure = true
retry = {{ attempts = 3, backoff = "10ms" }}
breaker = {{ failures = 100 }}
auth = {{ type = "basic", username = "{}/token", password = "secret:zendesk_token" }}
"#,
        component("hostile").display(),
        f.base_url,
        o.email
    ));
    env.set_secret("zendesk_token", &o.api_token);
    let a = start_in_process(&env).await;
    let small = f.url("/api/v2/tickets/1.json");
    let large = f.url("/api/v2/incremental/tickets/cursor.json?per_page=400&start_time=0");
    for (url, at_least) in [(small, 64), (large, 128 * 1024)] {
        for kind in [FaultKind::Truncated, FaultKind::Malformed] {
            f.reset_requests();
            f.set_faults(FaultPlan {
                rate: 1.0,
                kinds: vec![kind],
                max_faults: 2,
                ..FaultPlan::default()
            });
            let r = fetch(&a, json!({ "url": url })).await;
            assert_eq!(r["status"], 200, "{kind:?} {url}");
            let body = r["body"].as_str().expect("body");
            assert!(body.len() >= at_least, "{url}: {} bytes", body.len());
            serde_json::from_str::<Value>(body).expect("the answer handed over is whole JSON");
            assert_eq!(f.requests().total, 3, "{kind:?} {url}");
        }
        // Always garbled: the attempts run out and the last answer is handed over as it came.
        f.reset_requests();
        f.set_faults(FaultPlan {
            rate: 1.0,
            kinds: vec![FaultKind::Malformed],
            max_faults: 0,
            ..FaultPlan::default()
        });
        let r = fetch(&a, json!({ "url": url })).await;
        assert_eq!(r["status"], 200, "{url}");
        assert!(
            r["body"]
                .as_str()
                .is_some_and(|b| b.contains("upstream hiccup"))
        );
        assert_eq!(f.requests().total, 3, "{url}");
        f.set_faults(FaultPlan::default());
    }
    a.flush();
    let rows = audit_rows(&env);
    assert!(
        rows.iter().any(|r| r
            .event
            .reason
            .contains("declared JSON but is malformed or truncated")),
        "no retry row names the malformed answer"
    );
}
