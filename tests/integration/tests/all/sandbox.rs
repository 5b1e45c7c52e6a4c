//! A hostile connector is denied or contained at every turn, each denial is audited with its
//! reason, and the daemon keeps serving a well-behaved connector meanwhile.

use airlock::runtime::connector::{InvokeError, Op};
use airlock_tests::*;
use serde_json::json;

const HOSTILE_PW: &str = "hostile-basic-pw-4821";
const REVEALABLE: &str = "revealable-value-5512";

fn config(echo_port: u16) -> String {
    format!(
        r#"
[[connector]]
id = "hostile"
component = "{hostile}"
limits = {{ timeout = "2s", memory_mib = 32 }}

[resolve]
"meta.test" = "169.254.169.254"
"inside.test" = "10.0.0.7"
"loop.test" = "127.0.0.1"

[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{echo_port}/api/"
methods = ["GET"]
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "svc@example.com", password = "secret:hostile_pw" }}

[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{echo_port}/keyed/"
allow_private = true
reveal = true
allow_insecure = true
auth = {{ type = "header", name = "X-API-KEY", value = "secret:hostile_revealable" }}

[[grant]]
connector = "hostile"
url = "http://meta.test:{echo_port}/"
[[grant]]
connector = "hostile"
url = "http://inside.test:{echo_port}/"
[[grant]]
connector = "hostile"
url = "http://loop.test:{echo_port}/"
[[grant]]
connector = "hostile"
url = "http://localhost:{echo_port}/"
[[grant]]
connector = "hostile"
url = "http://127.0.0.2:{echo_port}/"
"#,
        hostile = component("hostile").display()
    )
}

async fn fetch(
    a: &airlock::app::Airlock,
    input: serde_json::Value,
) -> Result<serde_json::Value, InvokeError> {
    a.invoke(
        "hostile",
        Op::Action {
            name: "fetch".into(),
            input,
        },
    )
    .await
}

fn forbidden(r: &Result<serde_json::Value, InvokeError>) -> bool {
    matches!(r, Err(InvokeError::Connector(c)) if c.code == "forbidden")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_denied_and_audited_with_reasons() {
    let echo = spawn_echo_server().await;
    let env = Env::new(&config(echo.port()));
    env.set_secret("hostile_pw", HOSTILE_PW);
    env.set_secret("hostile_revealable", REVEALABLE);
    env.set_secret("other_connector_token", "other-token-value-7788");
    let a = start_in_process(&env).await;
    let base = format!("http://127.0.0.1:{}", echo.port());

    // Positive control: a granted request goes through with credentials injected by the host.
    let ok = fetch(&a, json!({"url": format!("{base}/api/items?q=1")}))
        .await
        .expect("granted fetch");
    assert_eq!(ok["status"], 200);
    let seen = ok["body"].as_str().unwrap_or_default().to_ascii_lowercase();
    assert!(
        seen.contains("authorization: basic [redacted]"),
        "upstream saw: {seen}"
    );

    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            json!({"url": "http://example.invalid/x"}),
            "no grant for host example.invalid",
        ),
        (
            json!({"url": format!("{base}/admin")}),
            "outside the granted prefix",
        ),
        (
            json!({"url": format!("{base}/api/items"), "method": "DELETE"}),
            "method DELETE is not granted",
        ),
        (
            json!({"url": format!("{base}/api/..;/admin")}),
            "path refused",
        ),
        (
            json!({"url": format!("http://loop.test:{}/", echo.port())}),
            "a loopback address",
        ),
        (
            json!({"url": format!("http://localhost:{}/", echo.port())}),
            "a loopback address",
        ),
        (
            json!({"url": format!("http://inside.test:{}/", echo.port())}),
            "a private address",
        ),
        (
            json!({"url": format!("http://meta.test:{}/", echo.port())}),
            "cloud metadata",
        ),
        (
            json!({"url": format!("http://127.0.0.2:{}/", echo.port())}),
            "a loopback address",
        ),
        (
            json!({"url": format!("https://127.0.0.1:{}/api/x", echo.port())}),
            "granted only as http",
        ),
    ];
    for (input, _) in &cases {
        let r = fetch(&a, input.clone()).await;
        assert!(forbidden(&r), "{input}: expected forbidden, got {r:?}");
    }

    // The connector may not set credentials of its own.
    for h in [
        "authorization",
        "Cookie",
        "proxy-authorization",
        "x-api-key",
    ] {
        let r = fetch(
            &a,
            json!({"url": format!("{base}/api/x"), "headers": [[h, "Bearer stolen"]]}),
        )
        .await;
        assert!(forbidden(&r), "{h}: {r:?}");
    }

    // secret(): another connector's secret, an own secret without reveal, and the positive case.
    let s = |name: &str| {
        a.invoke(
            "hostile",
            Op::Action {
                name: "secret".into(),
                input: json!({"name": name}),
            },
        )
    };
    let other = s("other_connector_token").await;
    assert!(forbidden(&other), "{other:?}");
    let own = s("hostile_pw").await;
    assert!(forbidden(&own), "{own:?}");
    let revealed = s("hostile_revealable").await.expect("revealable secret");
    // The guest got the value; the host still scrubs it from the response it returns.
    assert_eq!(revealed["value"], "[REDACTED]");

    a.flush();
    let rows = audit_rows(&env);
    // One deny row per refused request, in order, each naming that request and its reason.
    let denies: Vec<_> = rows
        .iter()
        .filter(|r| r.event.event == "http" && r.event.decision == "deny")
        .collect();
    assert_eq!(
        denies.len(),
        cases.len(),
        "{:#?}",
        denies.iter().map(|r| &r.event.reason).collect::<Vec<_>>()
    );
    for ((input, reason), row) in cases.iter().zip(&denies) {
        let url = input["url"].as_str().unwrap_or_default();
        let host = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split([':', '/']).next())
            .unwrap_or_default();
        assert!(
            row.event.reason.contains(reason),
            "the deny row for {input} says `{}`, not `{reason}`",
            row.event.reason
        );
        assert_eq!(
            row.event.host.as_deref(),
            Some(host),
            "{input}: {:?}",
            row.event
        );
        assert_eq!(
            row.event.method.as_deref(),
            Some(input["method"].as_str().unwrap_or("GET")),
            "{input}"
        );
    }
    for h in [
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
    ] {
        assert!(
            rows.iter()
                .any(|r| r.event.event == "header" && r.event.reason.contains(&format!("`{h}`"))),
            "no header deny row for {h}"
        );
    }
    assert!(rows.iter().any(|r| r.event.event == "secret"
        && r.event.decision == "deny"
        && r.event.reason.contains("not referenced")));
    assert!(rows.iter().any(|r| r.event.event == "secret"
        && r.event.decision == "deny"
        && r.event.reason.contains("not revealable")));
    assert!(
        rows.iter()
            .any(|r| r.event.event == "secret" && r.event.decision == "allow")
    );
    // Query values are never recorded.
    assert!(
        rows.iter()
            .all(|r| !r.event.path.as_deref().unwrap_or("").contains('?'))
    );
    for r in &rows {
        let line = serde_json::to_string(r).unwrap_or_default();
        assert!(
            !line.contains(HOSTILE_PW) && !line.contains(REVEALABLE),
            "secret in audit row: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_loops_host_blocking_and_memory_bombs_are_contained() {
    let echo = spawn_echo_server().await;
    let env = Env::new(&config(echo.port()));
    env.set_secret("hostile_pw", HOSTILE_PW);
    env.set_secret("hostile_revealable", REVEALABLE);
    let a = start_in_process(&env).await;
    let act = |name: &str, input: serde_json::Value| {
        a.invoke(
            "hostile",
            Op::Action {
                name: name.into(),
                input,
            },
        )
    };

    let t = std::time::Instant::now();
    let r = act("spin", json!({})).await;
    assert!(matches!(r, Err(InvokeError::Timeout { .. })), "{r:?}");
    assert!(
        t.elapsed().as_secs_f64() < 10.0,
        "spin took {:?}",
        t.elapsed()
    );

    let r = act("sleep", json!({"secs": 3600})).await;
    assert!(matches!(r, Err(InvokeError::Timeout { .. })), "{r:?}");

    let r = act("alloc", json!({"mib": 256})).await;
    assert!(
        matches!(r, Err(InvokeError::MemoryLimit { mib: 32 })),
        "{r:?}"
    );
    // Within the limit the same action succeeds, so the limit is what stopped it.
    let r = act("alloc", json!({"mib": 8})).await.expect("8 MiB fits");
    assert_eq!(r["allocated_mib"], 8);

    // The instance is fresh each time: the connector still works after every failure.
    let r = act("echo", json!({"hello": "world"})).await.expect("echo");
    assert_eq!(r["hello"], "world");
    // ...and no guest state survives a call: a static counter reads 1 on every call.
    for _ in 0..3 {
        let r = act("count", json!({})).await.expect("count");
        assert_eq!(r["calls_in_this_instance"], 1, "{r}");
    }
    a.flush();
    let rows = audit_rows(&env);
    assert!(
        rows.iter()
            .any(|r| r.event.event == "invoke" && r.event.reason.contains("deadline"))
    );
    assert!(
        rows.iter()
            .any(|r| r.event.event == "invoke" && r.event.reason.contains("memory limit"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_keeps_serving_others_while_a_connector_spins() {
    let echo = spawn_echo_server().await;
    let body = format!(
        "{}\n[[connector]]\nid = \"echoer\"\ncomponent = \"{}\"\n",
        config(echo.port()),
        component("hostile").display()
    );
    let env = Env::new(&body);
    env.set_secret("hostile_pw", HOSTILE_PW);
    env.set_secret("hostile_revealable", REVEALABLE);
    let d = env.serve();
    let (base, token) = (d.base.clone(), d.token.clone());
    let spin = tokio::spawn(async move {
        http_auth(
            "POST",
            &format!("{base}/v1/connectors/hostile/invoke"),
            Some(&token),
            Some(json!({"op": "spin", "input": {}}).to_string()),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for i in 0..20 {
        let (status, v) = d.invoke("echoer", "echo", json!({"i": i})).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["result"]["i"], i);
    }
    let (status, v) = spin.await.expect("join");
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["error"]["code"], "timeout");
    let (status, v) = d.get("/v1/connectors").await;
    assert_eq!(status, 200);
    assert_eq!(v["connectors"].as_array().map(Vec::len), Some(2));
}

/// `VmSize` of process `pid` in GiB (Linux).
fn virtual_gib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize");
    kib >> 20
}

/// `[server] memory_reservation = "4GiB"` trades address space for faster guest code: every
/// pool slot reserves 4 GiB (the default reserves the memory limit), and the connector's memory
/// limit still stops a guest that asks for more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4gib_reservation_reserves_4gib_a_slot_and_the_memory_limit_still_holds() {
    let echo = spawn_echo_server().await;
    let env = Env::new(&config(echo.port()));
    env.set_secret("hostile_pw", HOSTILE_PW);
    env.set_secret("hostile_revealable", REVEALABLE);
    let bounded = env.serve();
    let bounded_gib = virtual_gib(bounded.child.id());
    let log = bounded.stop();
    assert!(log.contains("guest code checks its bounds"), "{log}");

    let text = std::fs::read_to_string(&env.config).expect("config");
    let text = text.replacen(
        "data_dir = \"data\"\n",
        "data_dir = \"data\"\nmemory_reservation = \"4GiB\"\n",
        1,
    );
    std::fs::write(&env.config, text).expect("config");
    let d = env.serve();
    // 512 memory slots (256 instances × 2) of 4 GiB each: 2 TiB, where the limit's 64 MiB
    // slots are some tens of GiB.
    let reserved_gib = virtual_gib(d.child.id());
    assert!(
        reserved_gib >= 2048 && bounded_gib < 512,
        "virtual memory: {reserved_gib} GiB with 4 GiB slots, {bounded_gib} GiB bounded"
    );
    assert!(
        d.log().contains("no bounds checks in guest code"),
        "{}",
        d.log()
    );

    let (status, v) = d.invoke("hostile", "alloc", json!({"mib": 256})).await;
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"]["code"], "memory-limit", "{v}");
    let (status, v) = d.invoke("hostile", "alloc", json!({"mib": 8})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["allocated_mib"], 8);
    let (status, v) = d.invoke("hostile", "echo", json!({"hello": "world"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["hello"], "world");
}
