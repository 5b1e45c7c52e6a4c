//! Record and replay (`airlock record`, `--replay`): a cassette recorded from a fake holds no
//! planted canary secret in any encoding and no OAuth access token, and replaying it alone —
//! the fake stopped, no secret in the vault — gives the same documents, the same action output
//! and a passing conformance run, while grants still apply and unrecorded requests fail clearly.

use std::path::{Path, PathBuf};
use std::process::Output;

use airlock_tests::*;
use base64::Engine as _;
use fake_saas::{MsGraphOptions, ZendeskOptions, spawn_zendesk};

const CANARY_ZENDESK: &str = "canary-zd-5e1f07aa";
const CANARY_HOSTILE: &str = "canary-hb-9c2d4411";
const CANARY_KEY: &str = "canary-key-77ab03ee";
const CANARY_GRAPH: &str = "canary-graph-c4d8e9f0";

fn addr() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// Every form a canary could leak in: plain, base64 (alone and as Basic credentials),
/// percent-encoded.
fn forms() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut v = Vec::new();
    for c in [CANARY_ZENDESK, CANARY_HOSTILE, CANARY_KEY, CANARY_GRAPH] {
        v.push(c.to_string());
        v.push(b64(c).trim_end_matches('=').to_string());
        v.push(url_encode(c));
    }
    v.push(b64(&format!("agent@example.com/token:{CANARY_ZENDESK}")));
    v.push(b64(&format!("svc@example.com:{CANARY_HOSTILE}")));
    // The Graph fake's access tokens all contain this.
    v.push("fake-graph-".into());
    v
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn assert_no_canary(path: &Path) {
    let text = std::fs::read_to_string(path).expect("cassette");
    for f in forms() {
        assert!(
            !text.contains(&f),
            "`{f}` found in {}:\n{text}",
            path.display()
        );
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the CLI off the async runtime (the in-process fakes need its threads meanwhile).
async fn airlock(env: &Env, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (config, bin) = (env.config.clone(), airlock_bin());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(&args)
            .env("AIRLOCK_CONFIG", &config)
            .env_remove("RUST_LOG")
            .output()
            .expect("run airlock")
    })
    .await
    .expect("airlock task")
}

/// Every stored document of a data directory, in a fixed order, without `synced_at`.
fn documents(env: &Env) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(env.data_dir().join("airlock.db")).expect("db");
    let mut st = conn
        .prepare(
            "SELECT connector, kind, id, title, body, COALESCE(url, ''), updated_at, metadata, acl
             FROM documents ORDER BY connector, kind, id",
        )
        .expect("prepare");
    st.query_map([], |r| {
        (0..9)
            .map(|i| r.get::<_, String>(i))
            .collect::<Result<Vec<_>, _>>()
    })
    .expect("query")
    .collect::<Result<Vec<_>, _>>()
    .expect("rows")
}

/// The fake's port no longer answers.
async fn assert_refused(addr: std::net::SocketAddr) {
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{addr} still accepts connections after the fake was dropped");
}

fn zendesk_and_hostile(base_url: &str, echo: u16) -> String {
    format!(
        r#"{zendesk}
[[connector]]
id = "hostile"
component = "{hostile}"

[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{echo}/basic/"
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "svc@example.com", password = "secret:hostile_token" }}

[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{echo}/keyed/"
allow_private = true
allow_insecure = true
auth = {{ type = "header", name = "X-API-KEY", value = "secret:hostile_key" }}
"#,
        zendesk = zendesk_config(base_url, "page_size = \"25\""),
        hostile = component("hostile").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_holds_no_canary_and_replay_alone_repeats_sync_and_actions_offline() {
    let opts = ZendeskOptions {
        api_token: CANARY_ZENDESK.into(),
        tickets: 60,
        articles: 8,
        recent_exclusion_secs: 0,
        ..ZendeskOptions::default()
    };
    let fake = spawn_zendesk(addr(), opts).await.expect("fake");
    let fake_addr = fake.addr;
    let echo = spawn_echo_server().await;
    let config = zendesk_and_hostile(&fake.base_url, echo.port());
    let live = Env::new(&config);
    live.set_secret("zendesk_token", CANARY_ZENDESK);
    live.set_secret("hostile_token", CANARY_HOSTILE);
    live.set_secret("hostile_key", CANARY_KEY);
    let zd = live.dir.path().join("zendesk.json");
    let zd_s = zd.display().to_string();
    let comments = r#"{"ticket_id": 3}"#;

    // Record: health, the full sync, a search, an action.
    let out = airlock(
        &live,
        &[
            "record",
            "--connector",
            "zendesk",
            "--out",
            &zd_s,
            "--search",
            "printer",
            "--invoke",
            "ticket-comments",
            "--input",
            comments,
        ],
    )
    .await;
    assert!(out.status.success(), "record failed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("recorded ") && stdout.contains(" exchanges to "),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("recording zendesk/tickets: page 1"),
        "progress lines on stderr:\n{}",
        text(&out)
    );
    // A recording of the echo server, which answers with the credentials the gate injected.
    let hostile = live.dir.path().join("hostile.json");
    let hostile_s = hostile.display().to_string();
    let basic_url = format!("http://127.0.0.1:{}/basic/x?page=1", echo.port());
    let keyed_url = format!("http://127.0.0.1:{}/keyed/y", echo.port());
    let fetch = |u: &str| format!(r#"{{"url": "{u}"}}"#);
    let out = airlock(
        &live,
        &[
            "record",
            "--connector",
            "hostile",
            "--out",
            &hostile_s,
            "--no-sync",
            "--invoke",
            "fetch",
            "--input",
            &fetch(&basic_url),
            "--invoke",
            "fetch",
            "--input",
            &fetch(&keyed_url),
        ],
    )
    .await;
    assert!(out.status.success(), "record failed:\n{}", text(&out));

    // The canary check: no secret, encoded secret or credential header in either cassette.
    assert_no_canary(&zd);
    assert_no_canary(&hostile);
    let h = std::fs::read_to_string(&hostile).expect("cassette");
    assert!(
        h.contains("[REDACTED]"),
        "the echoed credential is replaced:\n{h}"
    );
    let z: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&zd).expect("cassette")).expect("json");
    assert_eq!(z["version"], 1);
    assert!(
        z["exchanges"].as_array().is_some_and(|e| e.len() > 3),
        "{z}"
    );
    for e in z["exchanges"].as_array().into_iter().flatten() {
        let hdrs = e["request_headers"].as_object();
        assert!(
            hdrs.is_none_or(|h| !h.contains_key("authorization")),
            "injected credentials are never recorded: {e}"
        );
    }

    // The live run to compare with: sync and the action against the fake.
    let out = airlock(&live, &["sync", "zendesk"]).await;
    assert!(out.status.success(), "live sync:\n{}", text(&out));
    let live_docs = documents(&live);
    assert!(live_docs.len() > 60, "{}", live_docs.len());
    let (ok, live_action, err) = live.invoke("zendesk", "ticket-comments", comments);
    assert!(ok, "{err}");
    let (ok, live_search, err) = live.invoke("zendesk", "search", r#"{"query": "printer"}"#);
    assert!(ok, "{err}");
    let (ok, live_fetch, err) = live.invoke("hostile", "fetch", &fetch(&basic_url));
    assert!(ok, "{err}");

    // Stop the fake: from here on nothing answers on its port.
    drop(fake);
    assert_refused(fake_addr).await;

    // Replay in a fresh data directory with no secret at all.
    let replay = Env::new(&config);
    let out = airlock(&replay, &["sync", "zendesk", "--replay", &zd_s]).await;
    assert!(out.status.success(), "replayed sync:\n{}", text(&out));
    assert_eq!(
        documents(&replay),
        live_docs,
        "replay stores exactly the live documents"
    );
    for (op, input, live_out) in [
        ("ticket-comments", comments, &live_action),
        ("search", r#"{"query": "printer"}"#, &live_search),
    ] {
        let out = airlock(
            &replay,
            &["invoke", "zendesk", op, input, "--replay", &zd_s],
        )
        .await;
        assert!(out.status.success(), "replayed {op}:\n{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(&v, live_out, "replayed {op} answers like the live run");
    }
    let out = airlock(
        &replay,
        &[
            "invoke",
            "hostile",
            "fetch",
            &fetch(&basic_url),
            "--replay",
            &hostile_s,
        ],
    )
    .await;
    assert!(out.status.success(), "replayed fetch:\n{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], live_fetch["status"]);
    assert_eq!(v["body"], live_fetch["body"]);

    // Audit rows are still written, and say the answer came from the cassette.
    let rows = audit_rows(&replay);
    assert!(
        rows.iter()
            .any(|r| r.event.decision == "allow" && r.event.reason.contains("replayed exchanges[")),
        "replayed requests are audited"
    );

    // A request the cassette never saw fails with the clear message, and is audited.
    let out = airlock(
        &replay,
        &[
            "invoke",
            "zendesk",
            "search",
            r#"{"query": "never recorded"}"#,
            "--replay",
            &zd_s,
        ],
    )
    .await;
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no recorded exchange for GET http://127.0.0.1:"),
        "{}",
        text(&out)
    );
    assert!(
        audit_rows(&replay)
            .iter()
            .any(|r| r.event.decision == "no-recording"),
        "the unmatched request is audited"
    );

    // A request outside the grant is denied in replay exactly as live, before any lookup.
    let out = airlock(
        &replay,
        &[
            "invoke",
            "hostile",
            "fetch",
            r#"{"url": "http://elsewhere.invalid/"}"#,
            "--replay",
            &hostile_s,
        ],
    )
    .await;
    let t = text(&out);
    assert!(
        t.contains("denied") || t.contains("forbidden"),
        "outside the grant is refused in replay:\n{t}"
    );
    assert!(
        audit_rows(&replay)
            .iter()
            .any(|r| r.event.decision == "deny"
                && r.event.host.as_deref() == Some("elsewhere.invalid")),
        "the denial is audited"
    );

    // A broken cassette is refused with the file and the problem.
    let bad = replay.dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"version": 7, "exchanges": []}"#).expect("write");
    let bad_s = bad.display().to_string();
    let out = airlock(
        &replay,
        &["invoke", "zendesk", "health", "{}", "--replay", &bad_s],
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&bad_s) && err.contains("version 7 is not supported"),
        "{}",
        text(&out)
    );
}

/// `airlock conformance --record` against the Graph fake (OAuth client credentials whose
/// secret is a canary), then `--replay` alone with the fake stopped and no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_recorded_with_oauth_passes_on_replay_alone() {
    let o = MsGraphOptions {
        client_secret: CANARY_GRAPH.into(),
        users: 30,
        devices: 12,
        mailboxes: 2,
        messages_per_mailbox: 8,
        events_per_mailbox: 6,
        chats: 1,
        messages_per_chat: 12,
        channels: 1,
        messages_per_channel: 6,
        drive_items: 10,
        ..MsGraphOptions::default()
    };
    let f = fake_saas::spawn_msgraph(addr(), o.clone())
        .await
        .expect("fake");
    let fake_addr = f.addr;
    let config = msgraph_config(&f, &o.client_id);
    let live = Env::new(&config);
    live.set_secret("graph_secret", CANARY_GRAPH);
    let cassette: PathBuf = live.dir.path().join("tests/cassettes/conformance.json");
    let c = cassette.display().to_string();
    let wasm = component("msgraph").display().to_string();

    let out = airlock(&live, &["conformance", &wasm, "--record", &c]).await;
    assert!(out.status.success(), "live conformance:\n{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("recorded "),
        "{}",
        text(&out)
    );
    assert!(f.truth().token_requests >= 1, "the gate fetched a token");
    assert_no_canary(&cassette);
    let t = std::fs::read_to_string(&cassette).expect("cassette");
    assert!(
        !t.contains("oauth2/v2.0/token"),
        "the gate's token requests are not recorded"
    );

    drop(f);
    assert_refused(fake_addr).await;

    let replay = Env::new(&config);
    let out = airlock(&replay, &["conformance", &wasm, "--replay", &c]).await;
    let t = text(&out);
    assert!(out.status.success(), "replayed conformance:\n{t}");
    assert!(!t.contains("FAIL "), "{t}");
    assert!(t.contains("PASS sync.resume["), "{t}");
    assert!(t.contains("PASS grants.no-denied-requests"), "{t}");
}
