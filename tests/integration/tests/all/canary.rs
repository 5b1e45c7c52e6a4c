//! Canary secrets planted in the vault appear in no stdout, stderr, log, audit row, response or
//! file of the data directory — even when an upstream echoes the credential back.

use airlock_tests::*;
use base64::Engine as _;
use fake_saas::{ConfluenceOptions, spawn_confluence};
use serde_json::json;

const CANARY_CONF: &str = "canary-conf-2f9d81aa";
const CANARY_HOST: &str = "canary-host-77c3e5bb";
const CANARY_KEY: &str = "canary-key-0b1e44cc";

fn forms() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut v = Vec::new();
    for c in [CANARY_CONF, CANARY_HOST, CANARY_KEY] {
        v.push(c.to_string());
        v.push(b64(c).trim_end_matches('=').to_string());
    }
    v.push(b64(&format!("demo@example.com:{CANARY_CONF}")));
    v.push(b64(&format!("svc@example.com:{CANARY_HOST}")));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_never_leave_the_vault() {
    let opts = ConfluenceOptions {
        api_token: CANARY_CONF.into(),
        ..ConfluenceOptions::default()
    };
    let fake = spawn_confluence("127.0.0.1:0".parse().expect("addr"), opts)
        .await
        .expect("fake");
    let echo = spawn_echo_server().await;
    let body = format!(
        r#"{conf}
[[connector]]
id = "hostile"
component = "{hostile}"

[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{port}/basic/"
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "svc@example.com", password = "secret:hostile_token" }}

[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{port}/keyed/"
allow_private = true
allow_insecure = true
auth = {{ type = "header", name = "X-API-KEY", value = "secret:hostile_key" }}
"#,
        conf = confluence_config(&fake.base_url),
        hostile = component("hostile").display(),
        port = echo.port()
    );
    let env = Env::new(&body);
    env.set_secret("confluence_token", CANARY_CONF);
    env.set_secret("hostile_token", CANARY_HOST);
    env.set_secret("hostile_key", CANARY_KEY);

    let mut outputs: Vec<(String, String)> = Vec::new();
    let d = env.serve();
    let calls = [
        ("confluence", "health", json!({})),
        (
            "confluence",
            "search",
            json!({"query": "quarterly airlock review"}),
        ),
        ("confluence", "get", json!({"id": "1"})),
        ("confluence", "sync", json!({"stream": "pages"})),
        (
            "hostile",
            "fetch",
            json!({"url": format!("http://127.0.0.1:{}/basic/x?token=abc", echo.port())}),
        ),
        (
            "hostile",
            "fetch",
            json!({"url": format!("http://127.0.0.1:{}/keyed/y", echo.port())}),
        ),
        (
            "hostile",
            "fetch",
            json!({"url": "http://elsewhere.invalid/"}),
        ),
        ("hostile", "secret", json!({"name": "hostile_token"})),
        ("hostile", "secret", json!({"name": "confluence_token"})),
        (
            "hostile",
            "log",
            json!({"level": "error", "message": "trying to log things"}),
        ),
    ];
    let mut echoed = 0;
    for (c, op, input) in calls {
        let (status, v) = d.invoke(c, op, input.clone()).await;
        let text = v.to_string();
        if op == "fetch" && status == 200 {
            // The upstream really received the injected credential; the host scrubbed the echo.
            assert!(
                text.contains("[REDACTED]"),
                "echo should contain a scrubbed credential: {text}"
            );
            echoed += 1;
        }
        outputs.push((format!("response {c} {op} {input}"), text));
    }
    assert_eq!(
        echoed, 2,
        "both credentialed fetches reached the echo server"
    );
    for args in [
        vec!["audit", "tail", "-n", "1000"],
        vec!["audit", "tail", "-n", "1000", "--json"],
        vec!["audit", "verify"],
        vec!["secrets", "list"],
        vec!["invoke", "confluence", "search", r#"{"query":"airlock"}"#],
        vec![
            "invoke",
            "hostile",
            "fetch",
            &format!(r#"{{"url":"http://127.0.0.1:{}/basic/z"}}"#, echo.port()),
        ],
    ] {
        let out = env.airlock(&args, None);
        outputs.push((
            format!("stdout of {args:?}"),
            String::from_utf8_lossy(&out.stdout).to_string(),
        ));
        outputs.push((
            format!("stderr of {args:?}"),
            String::from_utf8_lossy(&out.stderr).to_string(),
        ));
    }
    let log = d.stop();
    assert!(
        log.contains("outbound request denied"),
        "the daemon log is captured: {log}"
    );
    outputs.push(("daemon log".into(), log));

    for f in forms() {
        for (what, text) in &outputs {
            assert!(
                !text.contains(&f),
                "canary form `{f}` leaked in {what}:\n{text}"
            );
        }
        for (path, bytes) in all_files(&env.data_dir()) {
            assert!(
                !contains(&bytes, &f),
                "canary form `{f}` found in {}",
                path.display()
            );
        }
    }
}
