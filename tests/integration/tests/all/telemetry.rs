//! OpenTelemetry export: a real daemon sends its spans over OTLP/HTTP (protobuf) to a receiver
//! on loopback. The invocation, sync page and outbound request spans arrive with the
//! invocation id, the configured service name and their parent links, and no secret; a
//! receiver that is down or never answers costs the daemon nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_tests::*;
use base64::Engine as _;
use fake_saas::{ConfluenceOptions, spawn_confluence};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CANARY: &str = "canary-otlp-7d21e0b4";

/// One POST the receiver took: path, content type, body.
type Post = (String, String, Vec<u8>);

/// An OTLP/HTTP receiver on loopback: it keeps every request and answers 200 with an empty
/// protobuf answer; with `answer = false` it reads requests and never answers.
async fn spawn_receiver(answer: bool) -> (SocketAddr, Arc<Mutex<Vec<Post>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
    let kept = posts.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf: Vec<u8> = Vec::new();
                loop {
                    // The head, then as many body bytes as it announces.
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let header = |name: &str| {
                        head.lines()
                            .filter_map(|l| l.split_once(':'))
                            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.trim().to_string())
                    };
                    let len: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + len {
                        let mut chunk = [0u8; 8192];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let body = buf[end..end + len].to_vec();
                    buf.drain(..end + len);
                    kept.lock().expect("lock").push((
                        path,
                        header("content-type").unwrap_or_default(),
                        body,
                    ));
                    if !answer {
                        // Hold the connection open without a word.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if sock.write_all(ok.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, posts)
}

fn with_telemetry(config: &str, endpoint: &str, service: &str) -> String {
    format!("{config}\n[telemetry]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"{service}\"\n")
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> &'a str {
    match attr(&span.attributes, key) {
        Some(any_value::Value::StringValue(s)) => s,
        _ => "",
    }
}

/// Runs a search and a sync of the Confluence fake through the API.
async fn search_and_sync(d: &Daemon) {
    let (status, v) = d
        .invoke("confluence", "search", json!({"query": "quarterly review"}))
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = d.post("/v1/sync/confluence", r#"{"stream":"pages"}"#).await;
    assert_eq!(status, 202, "{v}");
    d.wait_until_synced("pages").await;
}

/// The Confluence fake, taking [`CANARY`] as its API token.
macro_rules! confluence_fake {
    () => {
        spawn_confluence(
            "127.0.0.1:0".parse().expect("addr"),
            ConfluenceOptions {
                api_token: CANARY.into(),
                ..ConfluenceOptions::default()
            },
        )
        .await
        .expect("fake")
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_sync_page_and_outbound_spans_reach_an_otlp_receiver_linked_and_without_secrets()
{
    let (receiver, posts) = spawn_receiver(true).await;
    let fake = confluence_fake!();
    let env = Env::new(&with_telemetry(
        &confluence_config(&fake.base_url),
        &format!("http://{receiver}"),
        "airlock-otlp-test",
    ));
    env.set_secret("confluence_token", CANARY);
    let d = env.serve();
    search_and_sync(&d).await;
    // The daemon sends what is still queued as it stops.
    let log = d.stop();
    assert!(
        log.contains(&format!(
            "spans are exported over OTLP/HTTP to http://{receiver}/v1/traces"
        )),
        "{log}"
    );
    let rows = audit_rows(&env);
    let posts = posts.lock().expect("lock").clone();
    assert!(!posts.is_empty(), "nothing arrived; log:\n{log}");

    // (a) OTLP/HTTP with protobuf at the standard path, the configured service name on all.
    let mut spans: Vec<Span> = Vec::new();
    for (path, content_type, body) in &posts {
        assert_eq!(path, "/v1/traces");
        assert_eq!(content_type, "application/x-protobuf");
        let req = ExportTraceServiceRequest::decode(&body[..]).expect("an OTLP trace export");
        for rs in req.resource_spans {
            let resource = rs.resource.expect("a resource");
            assert_eq!(
                attr(&resource.attributes, "service.name"),
                Some(&any_value::Value::StringValue("airlock-otlp-test".into()))
            );
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (&s.span_id[..], s)).collect();
    let parent = |s: &Span| by_id.get(&s.parent_span_id[..]).copied();
    let named = |name: &'static str| spans.iter().filter(move |s| s.name == name);

    // (b) The search's invocation span carries its id and nests in its API request's span.
    let search = named("invocation")
        .find(|s| text(s, "op") == "search")
        .expect("the search's invocation span");
    let request = parent(search).expect("the search has a parent");
    assert_eq!(request.name, "request");
    assert_eq!(text(request, "route"), "/v1/connectors/{id}/invoke");
    assert_eq!(text(search, "connector"), "confluence");
    assert_eq!(text(search, "principal"), "token:test-admin");
    assert_eq!(search.trace_id, request.trace_id);

    // (c) Every outbound request's span is a child of its invocation's span, with the same
    // invocation id, and there is one per allowed request of the audit trail.
    let mut outbound: HashMap<String, usize> = HashMap::new();
    for o in named("outbound") {
        let inv = parent(o).unwrap_or_else(|| panic!("outbound without parent: {o:?}"));
        assert_eq!(inv.name, "invocation");
        assert_eq!(text(o, "invocation"), text(inv, "invocation"));
        assert_eq!(o.trace_id, inv.trace_id);
        assert_eq!((text(o, "method"), text(o, "host")), ("GET", "127.0.0.1"));
        // The grant that matched, recorded once admission found it.
        assert_eq!(
            attr(&o.attributes, "grant"),
            Some(&any_value::Value::IntValue(0))
        );
        *outbound
            .entry(text(o, "invocation").to_string())
            .or_default() += 1;
    }
    let mut allowed: HashMap<String, usize> = HashMap::new();
    for r in rows
        .iter()
        .filter(|r| r.event.event == "http" && r.event.decision == "allow")
    {
        *allowed.entry(r.event.invocation.clone()).or_default() += 1;
    }
    assert!(allowed.len() >= 2, "a search and sync pages: {allowed:?}");
    assert_eq!(outbound, allowed);
    assert!(allowed.contains_key(text(search, "invocation")));

    // (d) Each sync page of the audit trail has its span, numbered, with the page's invocation
    // span inside it.
    let pages: Vec<&str> = rows
        .iter()
        .filter(|r| r.event.event == "invoke" && r.event.reason == "sync:pages")
        .map(|r| r.event.invocation.as_str())
        .collect();
    assert!(pages.len() > 1, "several pages: {pages:?}");
    for (n, id) in pages.iter().enumerate() {
        let page = named("sync_page")
            .find(|s| text(s, "invocation") == *id)
            .unwrap_or_else(|| panic!("no span of page {id}"));
        assert_eq!(text(page, "stream"), "pages");
        assert_eq!(
            attr(&page.attributes, "page"),
            Some(&any_value::Value::IntValue(n as i64 + 1))
        );
        let inv = named("invocation")
            .find(|s| text(s, "invocation") == *id)
            .unwrap_or_else(|| panic!("no invocation span of page {id}"));
        assert_eq!(inv.parent_span_id, page.span_id, "page {id}");
        assert_eq!(text(inv, "op"), "sync:pages");
    }

    // (e) The grant's secret, plain or in its Basic header, is in no export.
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("demo@example.com:{CANARY}"));
    for (_, _, body) in &posts {
        assert!(
            !contains(body, CANARY) && !contains(body, &basic),
            "secret in an export"
        );
    }
}

/// Searches `n` times, each answered in time.
async fn searches_answer(d: &Daemon, n: usize) {
    for _ in 0..n {
        let started = Instant::now();
        let (status, v) = d
            .invoke("confluence", "search", json!({"query": "quarterly review"}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a search took {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_or_silent_never_holds_up_the_daemon() {
    let fake = confluence_fake!();
    // Down: nothing listens at the endpoint. Silent: it takes the request and never answers.
    let (silent, taken) = spawn_receiver(false).await;
    let down = format!("http://127.0.0.1:{}", free_port());
    for endpoint in [down, format!("http://{silent}")] {
        let env = Env::new(&with_telemetry(
            &confluence_config(&fake.base_url),
            &endpoint,
            "airlock",
        ));
        env.set_secret("confluence_token", CANARY);
        // Batches leave every 100 ms, so exports fail while the daemon serves.
        let d = env.serve_with(&[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
        searches_answer(&d, 8).await;
        let (status, _) = d.get("/readyz").await;
        assert_eq!(status, 200);
        // A clean stop still comes in time: the last export is given up on.
        let started = Instant::now();
        let log = d.stop();
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "stopping took {:?}",
            started.elapsed()
        );
        assert!(log.contains("shutting down"), "{log}");
        if endpoint.contains(&silent.to_string()) {
            assert!(
                !taken.lock().expect("lock").is_empty(),
                "the silent receiver was reached"
            );
        } else {
            // Said once, not once per batch.
            let failed = format!("span export to {endpoint}/v1/traces failed");
            assert_eq!(log.matches(&failed).count(), 1, "{log}");
        }
        assert!(!log.contains(CANARY));
    }
}
