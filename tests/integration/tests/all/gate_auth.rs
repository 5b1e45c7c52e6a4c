//! The gate's credential injection and upstream limits, seen from both ends: what the `hostile`
//! connector gets back, and what loopback servers written here actually received on the wire.
//! OAuth2 client-credentials tokens are fetched once, shared by concurrent callers and refreshed
//! after expiry; a failing token endpoint is a clear error that leaks nothing; oversized
//! responses, redirects and silent upstreams are contained; Bearer and custom-header credentials
//! arrive exactly as configured.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock::runtime::connector::{InvokeError, Op};
use airlock::store::audit::AuditRow;
use airlock_tests::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---- a recording loopback HTTP/1.1 server ------------------------------------------------------

/// One request as it arrived on the wire.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    /// Path with query, as sent.
    target: String,
    /// Header names lowercased, values raw.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

impl Seen {
    /// Every value of header `name` (case-insensitive).
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name`; panics when it is repeated.
    fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "header {name} sent {} times", all.len());
        all.first().copied()
    }
}

/// What the server does with a request.
enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// Send the body with chunked transfer encoding (no content-length).
        chunked: bool,
        delay: Duration,
    },
    /// Keep the connection open and never answer.
    Hang,
}

impl Reply {
    fn status(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Respond {
            status,
            headers: vec![],
            body: body.into(),
            chunked: false,
            delay: Duration::ZERO,
        }
    }

    fn json(status: u16, v: &Value) -> Reply {
        Reply::status(status, v.to_string()).header("content-type", "application/json")
    }

    fn header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    fn chunked(mut self) -> Reply {
        if let Reply::Respond { chunked, .. } = &mut self {
            *chunked = true;
        }
        self
    }

    fn delayed(mut self, d: Duration) -> Reply {
        if let Reply::Respond { delay, .. } = &mut self {
            *delay = d;
        }
        self
    }
}

type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

/// A loopback server that records every request it gets and answers with `handler(request,
/// n)`, `n` counting requests from 1.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn spawn(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = seen.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_connection(sock, seen2.clone(), handler.clone()));
            }
        });
        Server { addr, seen }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    fn hits(&self) -> usize {
        self.seen.lock().expect("seen").len()
    }
}

async fn serve_connection(
    mut sock: tokio::net::TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Arc<Handler>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_string();
        let target = request_line.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        // Body (the gate buffers request bodies, so it always sends a content-length).
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < len {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..len).collect();
        let req = Seen {
            method,
            target,
            headers,
            body,
            at: Instant::now(),
        };
        let n = {
            let mut s = seen.lock().expect("seen");
            s.push(req.clone());
            s.len()
        };
        match handler(&req, n) {
            Reply::Hang => {
                // Hold the socket open without ever writing.
                std::future::pending::<()>().await;
            }
            Reply::Respond {
                status,
                headers,
                body,
                chunked,
                delay,
            } => {
                tokio::time::sleep(delay).await;
                let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                for (n, v) in &headers {
                    out.push_str(&format!("{n}: {v}\r\n"));
                }
                let mut bytes;
                if chunked {
                    out.push_str("transfer-encoding: chunked\r\n\r\n");
                    bytes = out.into_bytes();
                    for c in body.chunks(700) {
                        bytes.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                        bytes.extend_from_slice(c);
                        bytes.extend_from_slice(b"\r\n");
                    }
                    bytes.extend_from_slice(b"0\r\n\r\n");
                } else {
                    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
                    bytes = out.into_bytes();
                    bytes.extend_from_slice(&body);
                }
                if sock.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        _ => "Status",
    }
}

// ---- helpers ------------------------------------------------------------------------------------

fn connector(limits: &str) -> String {
    format!(
        "[[connector]]\nid = \"hostile\"\ncomponent = \"{}\"\n{limits}\n",
        component("hostile").display()
    )
}

async fn fetch(a: &airlock::app::Airlock, input: Value) -> Result<Value, InvokeError> {
    a.invoke(
        "hostile",
        Op::Action {
            name: "fetch".into(),
            input,
        },
    )
    .await
}

fn get(url: &str) -> Value {
    json!({ "url": url })
}

/// An `upstream` connector error (what the hostile connector makes of a wasi:http error code).
fn upstream_error(r: &Result<Value, InvokeError>) -> String {
    match r {
        Err(InvokeError::Connector(c)) if c.code == "upstream" => c.message.clone(),
        other => panic!("expected an upstream error, got {other:?}"),
    }
}

fn rows_of<'a>(rows: &'a [AuditRow], event: &str) -> Vec<&'a AuditRow> {
    rows.iter().filter(|r| r.event.event == event).collect()
}

fn summary(rows: &[AuditRow]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{} {} {:?} {:?} {}",
                r.event.event, r.event.decision, r.event.path, r.event.status, r.event.reason
            )
        })
        .collect()
}

/// Percent-encoding as in an `application/x-www-form-urlencoded` body.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes an `application/x-www-form-urlencoded` body into its pairs, in order.
fn form_decode(body: &[u8]) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                    out.push(u8::from_str_radix(hex, 16).expect("percent escape"));
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).expect("utf-8 form value")
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

/// Asserts that no audit row and no connector output holds any of `values`.
fn assert_nowhere(rows: &[AuditRow], outputs: &[String], values: &[&str]) {
    for r in rows {
        let line = serde_json::to_string(r).unwrap_or_default();
        for v in values {
            assert!(!line.contains(v), "`{v}` in audit row: {line}");
        }
    }
    for o in outputs {
        for v in values {
            assert!(!o.contains(v), "`{v}` in connector output: {o}");
        }
    }
}

/// Whatever the connector got, as text (result or error).
fn output(r: &Result<Value, InvokeError>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => format!("{e} / {e:?}"),
    }
}

// ---- OAuth2 -------------------------------------------------------------------------------------

/// Has characters that must be percent-encoded in a form body, to prove the encoding too.
const GRAPH_SECRET: &str = "graph-client/secret+value=4471";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Lifetime of the tokens the fake issues; refresh is due at 90 % of it (3.6 s).
const TOKEN_SECS: u64 = 4;

fn oauth_config(token: &Server, upstream: &Server) -> String {
    format!(
        r#"{connector}
[[grant]]
connector = "hostile"
url = "{graph}"
methods = ["GET"]
allow_private = true
allow_insecure = true
auth = {{ type = "oauth2", token_url = "{token_url}", client_id = "cid", client_secret = "secret:graph_secret", scope = "{GRAPH_SCOPE}" }}
"#,
        connector = connector(""),
        graph = upstream.url("/graph/"),
        token_url = token.url("/tenant/oauth2/v2.0/token"),
    )
}

/// The upstream reports the Authorization header it got in its body (which the host must scrub
/// before the connector sees it).
async fn auth_echo_server() -> Server {
    Server::spawn(|s: &Seen, _| {
        Reply::status(
            200,
            format!("authorization: {}", s.one("authorization").unwrap_or("-")),
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oauth2_token_is_fetched_once_reused_and_refreshed_after_expiry() {
    // Answers slowly so that concurrent callers with a cold cache really overlap.
    let token = Server::spawn(|_, n| {
        Reply::json(
            200,
            &json!({
                "token_type": "Bearer",
                "expires_in": TOKEN_SECS,
                "access_token": format!("tok-{n}-secretish"),
            }),
        )
        .delayed(Duration::from_millis(300))
    })
    .await;
    let upstream = auth_echo_server().await;
    let env = Env::new(&oauth_config(&token, &upstream));
    env.set_secret("graph_secret", GRAPH_SECRET);
    let a = Arc::new(start_in_process(&env).await);
    let mut outputs = Vec::new();

    // 10 concurrent calls with an empty cache: one token request, all wait for it.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..10 {
        let a = a.clone();
        let url = upstream.url(&format!("/graph/v1.0/me?i={i}"));
        set.spawn(async move { fetch(&a, get(&url)).await });
    }
    while let Some(r) = set.join_next().await {
        let r = r.expect("join");
        outputs.push(output(&r));
        let v = r.expect("concurrent fetch");
        assert_eq!(v["status"], 200, "{v}");
        // The upstream echoed the token; the connector only sees it redacted.
        assert_eq!(v["body"], "authorization: Bearer [REDACTED]", "{v}");
    }
    assert_eq!(token.hits(), 1, "token requests for 10 concurrent calls");

    // Sequential calls reuse the cached token.
    for i in 0..3 {
        let r = fetch(&a, get(&upstream.url(&format!("/graph/v1.0/users/{i}")))).await;
        outputs.push(output(&r));
        assert_eq!(r.expect("sequential fetch")["status"], 200);
    }
    assert_eq!(token.hits(), 1, "token requests after 13 calls");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 13);
    for s in &seen {
        assert_eq!(
            s.one("authorization"),
            Some("Bearer tok-1-secretish"),
            "{} {}",
            s.method,
            s.target
        );
    }

    // The token request itself: a client-credentials form POST to the configured URL.
    let t = &token.seen()[0];
    assert_eq!(t.method, "POST");
    assert_eq!(t.target, "/tenant/oauth2/v2.0/token");
    assert_eq!(
        t.one("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        t.one("authorization").is_none(),
        "token request carried an Authorization header"
    );
    let mut form = form_decode(&t.body);
    form.sort();
    let want = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        form,
        vec![
            want("client_id", "cid"),
            want("client_secret", GRAPH_SECRET),
            want("grant_type", "client_credentials"),
            want("scope", GRAPH_SCOPE),
        ],
        "form body: {}",
        String::from_utf8_lossy(&t.body)
    );

    // Past the token's expiry the next call fetches a new one, exactly once.
    let issued = t.at;
    let elapsed = issued.elapsed();
    assert!(
        elapsed < Duration::from_millis(3300),
        "the calls before expiry took {elapsed:?}; too slow for this test's timing"
    );
    tokio::time::sleep(Duration::from_secs(TOKEN_SECS) + Duration::from_millis(500) - elapsed)
        .await;
    let r = fetch(&a, get(&upstream.url("/graph/v1.0/me"))).await;
    outputs.push(output(&r));
    assert_eq!(r.expect("fetch after expiry")["status"], 200);
    assert_eq!(token.hits(), 2, "token requests after expiry");
    assert_eq!(
        upstream
            .seen()
            .last()
            .and_then(|s| s.one("authorization").map(str::to_string)),
        Some("Bearer tok-2-secretish".to_string())
    );
    // ... and the new token is shared again.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..5 {
        let a = a.clone();
        let url = upstream.url(&format!("/graph/v1.0/groups/{i}"));
        set.spawn(async move { fetch(&a, get(&url)).await });
    }
    while let Some(r) = set.join_next().await {
        let r = r.expect("join");
        outputs.push(output(&r));
        assert_eq!(r.expect("fetch with refreshed token")["status"], 200);
    }
    assert_eq!(token.hits(), 2, "token requests after refresh");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 19);
    for s in &seen[14..] {
        assert_eq!(s.one("authorization"), Some("Bearer tok-2-secretish"));
    }

    a.flush();
    let rows = audit_rows(&env);
    let tok_rows = rows_of(&rows, "oauth-token");
    assert_eq!(tok_rows.len(), 2, "{:#?}", summary(&rows));
    for r in &tok_rows {
        assert_eq!(r.event.decision, "ok");
        assert_eq!(r.event.status, Some(200));
        assert_eq!(r.event.method.as_deref(), Some("POST"));
        assert_eq!(r.event.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(r.event.port, Some(token.port()));
        assert_eq!(r.event.path.as_deref(), Some("/tenant/oauth2/v2.0/token"));
    }
    let http_rows = rows_of(&rows, "http");
    assert_eq!(http_rows.len(), 19, "{:#?}", summary(&rows));
    assert!(http_rows.iter().all(|r| r.event.decision == "allow"));

    let secret_forms = [
        GRAPH_SECRET.to_string(),
        form_encode(GRAPH_SECRET),
        "tok-1-secretish".to_string(),
        "tok-2-secretish".to_string(),
    ];
    let secret_forms: Vec<&str> = secret_forms.iter().map(String::as_str).collect();
    assert_nowhere(&rows, &outputs, &secret_forms);
    // Nor is a token or the secret in plain text in any file of the data directory.
    for (path, bytes) in all_files(&env.data_dir()) {
        for v in &secret_forms {
            assert!(!contains(&bytes, v), "`{v}` in {}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_failure_is_a_clear_error_not_a_leak() {
    // A careless identity provider that echoes the client secret, plain and form-encoded.
    let token = Server::spawn(|_, _| {
        Reply::json(
            401,
            &json!({
                "error": "invalid_client",
                "error_description": format!(
                    "bad secret {GRAPH_SECRET} (form {})",
                    form_encode(GRAPH_SECRET)
                ),
            }),
        )
    })
    .await;
    let upstream = auth_echo_server().await;
    let env = Env::new(&oauth_config(&token, &upstream));
    env.set_secret("graph_secret", GRAPH_SECRET);
    let a = start_in_process(&env).await;

    let r = fetch(&a, get(&upstream.url("/graph/v1.0/me"))).await;
    let message = upstream_error(&r);
    assert!(
        message.contains("credentials unavailable"),
        "error does not name the failure: {message}"
    );
    let text = output(&r);
    assert!(token.hits() >= 1, "the token endpoint was never asked");
    // Without credentials nothing goes upstream.
    assert_eq!(upstream.hits(), 0, "request sent without a token");

    a.flush();
    let rows = audit_rows(&env);
    let tok_rows = rows_of(&rows, "oauth-token");
    assert_eq!(tok_rows.len(), 1, "{:#?}", summary(&rows));
    let t = &tok_rows[0].event;
    assert_eq!(t.decision, "error");
    assert_eq!(t.status, Some(401));
    assert!(
        t.reason.contains("token endpoint answered 401") && t.reason.contains("bad secret"),
        "{}",
        t.reason
    );
    let http_rows = rows_of(&rows, "http");
    assert_eq!(http_rows.len(), 1, "{:#?}", summary(&rows));
    let h = &http_rows[0].event;
    assert_eq!(h.decision, "error");
    assert!(
        h.reason.contains("credentials for grant[0] unavailable")
            && h.reason.contains("token endpoint answered 401"),
        "{}",
        h.reason
    );
    assert_eq!(h.path.as_deref(), Some("/graph/v1.0/me"));
    let invoke_rows = rows_of(&rows, "invoke");
    assert!(
        invoke_rows
            .iter()
            .any(|r| r.event.decision == "error" && r.event.reason.contains("credentials")),
        "{:#?}",
        summary(&rows)
    );
    assert_nowhere(&rows, &[text], &[GRAPH_SECRET, &form_encode(GRAPH_SECRET)]);
}

// ---- response size, redirects, timeouts ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_larger_than_the_cap_is_refused() {
    // /len/N answers N bytes with a content-length; /chunked/N the same without one.
    let upstream = Server::spawn(|s: &Seen, _| {
        let mut parts = s.target.trim_start_matches('/').split('/');
        let kind = parts.next().unwrap_or_default();
        let n: usize = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let reply = Reply::status(200, vec![b'x'; n]);
        if kind == "chunked" {
            reply.chunked()
        } else {
            reply
        }
    })
    .await;
    let env = Env::new(&format!(
        "{}\n[[grant]]\nconnector = \"hostile\"\nurl = \"{}\"\nallow_private = true\n",
        connector("limits = { max_response_bytes = 1000 }"),
        upstream.url("/"),
    ));
    let a = start_in_process(&env).await;

    for (path, fits) in [
        ("/len/500", true),
        ("/len/1000", true),
        ("/len/1001", false),
        ("/len/5000", false),
        ("/chunked/800", true),
        ("/chunked/5000", false),
    ] {
        let r = fetch(&a, get(&upstream.url(path))).await;
        if fits {
            let v = r.unwrap_or_else(|e| panic!("{path}: {e:?}"));
            let n: usize = path
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap();
            assert_eq!(v["status"], 200, "{path}");
            assert_eq!(v["body"].as_str().map(str::len), Some(n), "{path}");
        } else {
            let m = upstream_error(&r);
            assert!(m.contains("HttpResponseBodySize"), "{path}: {m}");
        }
    }
    assert_eq!(upstream.hits(), 6);

    a.flush();
    let rows = audit_rows(&env);
    let http_rows = rows_of(&rows, "http");
    for path in ["/len/1001", "/len/5000", "/chunked/5000"] {
        let r = http_rows
            .iter()
            .find(|r| r.event.path.as_deref() == Some(path))
            .unwrap_or_else(|| panic!("no row for {path}: {:#?}", summary(&rows)));
        assert_eq!(r.event.decision, "error", "{path}");
        assert_eq!(r.event.status, Some(200), "{path}");
        assert!(
            r.event.reason.contains("larger than 1000 bytes"),
            "{path}: {}",
            r.event.reason
        );
    }
    for path in ["/len/500", "/len/1000", "/chunked/800"] {
        assert!(
            http_rows
                .iter()
                .any(|r| r.event.path.as_deref() == Some(path) && r.event.decision == "allow"),
            "{path}: {:#?}",
            summary(&rows)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_returned_not_followed() {
    let elsewhere = Server::spawn(|_, _| Reply::status(200, "the secret place")).await;
    let target = elsewhere.url("/secret-place");
    let t2 = target.clone();
    let upstream = Server::spawn(move |s: &Seen, _| {
        let status = match s.target.as_str() {
            "/r/302" => 302,
            "/r/301" => 301,
            _ => 307,
        };
        Reply::status(status, "").header("location", &t2)
    })
    .await;
    // Both servers are granted, so a follower inside the gate would not be stopped by policy.
    let env = Env::new(&format!(
        r#"{}
[[grant]]
connector = "hostile"
url = "{}"
methods = ["GET", "POST"]
exact_paths = ["/r/307"]
allow_private = true

[[grant]]
connector = "hostile"
url = "{}"
methods = ["GET", "POST"]
exact_paths = ["/secret-place"]
allow_private = true
"#,
        connector(""),
        upstream.url("/r/"),
        elsewhere.url("/"),
    ));
    let a = start_in_process(&env).await;

    for (path, method, status) in [
        ("/r/302", "GET", 302),
        ("/r/301", "GET", 301),
        ("/r/307", "POST", 307),
    ] {
        let v = fetch(
            &a,
            json!({"url": upstream.url(path), "method": method, "body": "payload"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(v["status"], status, "{path}: {v}");
        let location: Vec<&str> = v["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| {
                h[0].as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("location"))
            })
            .filter_map(|h| h[1].as_str())
            .collect();
        assert_eq!(location, vec![target.as_str()], "{path}: {v}");
    }
    assert_eq!(upstream.hits(), 3);
    assert_eq!(elsewhere.hits(), 0, "the gate followed a redirect");

    // Positive control: the connector may follow it itself, through the gate.
    let v = fetch(&a, get(&target)).await.expect("manual follow");
    assert_eq!(v["body"], "the secret place");
    assert_eq!(elsewhere.hits(), 1);

    a.flush();
    let rows = audit_rows(&env);
    let http_rows = rows_of(&rows, "http");
    assert_eq!(http_rows.len(), 4, "{:#?}", summary(&rows));
    for (path, status) in [("/r/302", 302), ("/r/301", 301), ("/r/307", 307)] {
        assert!(
            http_rows
                .iter()
                .any(|r| r.event.path.as_deref() == Some(path)
                    && r.event.status == Some(status)
                    && r.event.decision == "allow"),
            "{path}: {:#?}",
            summary(&rows)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_timeout_on_a_slow_upstream() {
    // /hang accepts and never answers; /slow answers after 300 ms.
    let upstream = Server::spawn(|s: &Seen, _| {
        if s.target.starts_with("/hang") {
            Reply::Hang
        } else {
            Reply::status(200, "late but fine").delayed(Duration::from_millis(300))
        }
    })
    .await;
    let env = Env::new(&format!(
        "{}\n[[grant]]\nconnector = \"hostile\"\nurl = \"{}\"\nallow_private = true\n",
        connector(r#"limits = { first_byte_timeout = "1s", timeout = "5s" }"#),
        upstream.url("/"),
    ));
    let a = start_in_process(&env).await;

    let started = Instant::now();
    let r = fetch(&a, get(&upstream.url("/hang"))).await;
    let took = started.elapsed();
    let m = upstream_error(&r);
    assert!(m.contains("HttpResponseTimeout"), "{m}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "the upstream timeout took {took:?}"
    );
    assert_eq!(upstream.hits(), 1, "the request never reached the upstream");

    // Within the limit a slow upstream is fine, so the limit is what stopped the first call.
    let v = fetch(&a, get(&upstream.url("/slow")))
        .await
        .expect("slow but in time");
    assert_eq!(v["body"], "late but fine");

    a.flush();
    let rows = audit_rows(&env);
    let hang = rows_of(&rows, "http")
        .into_iter()
        .find(|r| r.event.path.as_deref() == Some("/hang"))
        .unwrap_or_else(|| panic!("no row for /hang: {:#?}", summary(&rows)));
    assert_eq!(hang.event.decision, "error");
    assert!(
        hang.event.reason.contains("no response headers within 1s"),
        "{}",
        hang.event.reason
    );
    // It was the upstream limit, not the invocation deadline.
    assert!(
        rows_of(&rows, "invoke")
            .iter()
            .all(|r| !r.event.reason.contains("deadline")),
        "{:#?}",
        summary(&rows)
    );
}

// ---- static credentials -------------------------------------------------------------------------

const BEARER: &str = "bearer-token-value-6190";
const API_KEY: &str = "api-key-value-3357";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_and_custom_header_auth_are_injected() {
    // Echoes every header it got, so the host's scrubbing of the response shows too.
    let upstream = Server::spawn(|s: &Seen, _| {
        let lines: Vec<String> = s.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        Reply::status(200, lines.join("\n"))
    })
    .await;
    let env = Env::new(&format!(
        r#"{}
[[grant]]
connector = "hostile"
url = "{}"
allow_private = true
allow_insecure = true
auth = {{ type = "bearer", token = "secret:b" }}

[[grant]]
connector = "hostile"
url = "{}"
allow_private = true
allow_insecure = true
auth = {{ type = "header", name = "api-key", value = "secret:k" }}

[[grant]]
connector = "hostile"
url = "{}"
allow_private = true
"#,
        connector(""),
        upstream.url("/bearer/"),
        upstream.url("/keyed/"),
        upstream.url("/plain/"),
    ));
    env.set_secret("b", BEARER);
    env.set_secret("k", API_KEY);
    let a = start_in_process(&env).await;
    let mut outputs = Vec::new();

    for path in ["/bearer/x", "/keyed/x", "/plain/x"] {
        let r = fetch(&a, get(&upstream.url(path))).await;
        outputs.push(output(&r));
        let v = r.unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(v["status"], 200, "{path}");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    let by_path = |p: &str| {
        seen.iter()
            .find(|s| s.target == p)
            .unwrap_or_else(|| panic!("upstream never saw {p}"))
    };
    let bearer = by_path("/bearer/x");
    assert_eq!(
        bearer.one("authorization"),
        Some(format!("Bearer {BEARER}").as_str())
    );
    assert!(bearer.all("api-key").is_empty(), "{:?}", bearer.headers);
    let keyed = by_path("/keyed/x");
    assert_eq!(keyed.one("api-key"), Some(API_KEY));
    assert!(keyed.all("authorization").is_empty(), "{:?}", keyed.headers);
    let plain = by_path("/plain/x");
    assert!(
        plain.all("authorization").is_empty() && plain.all("api-key").is_empty(),
        "{:?}",
        plain.headers
    );

    // The connector may not set the custom auth header itself, on any grant.
    for path in ["/keyed/y", "/plain/y"] {
        let r = fetch(
            &a,
            json!({"url": upstream.url(path), "headers": [["api-key", "guest-chosen"]]}),
        )
        .await;
        outputs.push(output(&r));
        assert!(
            matches!(&r, Err(InvokeError::Connector(c)) if c.code == "forbidden"),
            "{path}: {r:?}"
        );
    }
    assert_eq!(
        upstream.hits(),
        3,
        "a request with a guest-set api-key went out"
    );

    a.flush();
    let rows = audit_rows(&env);
    assert!(
        rows_of(&rows, "header")
            .iter()
            .any(|r| r.event.decision == "deny" && r.event.reason.contains("`api-key`")),
        "{:#?}",
        summary(&rows)
    );
    // The upstream echoed both values back; the connector saw neither.
    assert_nowhere(&rows, &outputs, &[BEARER, API_KEY]);
    assert!(
        outputs.iter().any(|o| o.contains("Bearer [REDACTED]")),
        "{outputs:?}"
    );
}

// ---- regression tests for host bugs found while writing this file --------------------------------

/// The token request goes through the grant's pool, but hyper never resolves an IP literal, so
/// the resolver's address check does not see a literal `token_url` host, and http.rs only checks
/// literals of the request URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_token_url_on_a_literal_loopback_ip_needs_allow_private() {
    let token = Server::spawn(|_, n| {
        Reply::json(
            200,
            &json!({"token_type": "Bearer", "expires_in": 3600, "access_token": format!("tok-{n}-secretish")}),
        )
    })
    .await;
    let upstream = auth_echo_server().await;
    let token_url = token.url("/token");
    let env = Env::new(&format!(
        r#"[limits]
connect_timeout = "1s"

{connector}
[resolve]
"api.test" = "192.0.2.10"

[[grant]]
connector = "hostile"
url = "http://api.test/public/"
allow_insecure = true
auth = {{ type = "oauth2", token_url = "{token_url}", client_id = "cid", client_secret = "secret:graph_secret" }}

[[grant]]
connector = "hostile"
url = "{private}"
allow_private = true
allow_insecure = true
auth = {{ type = "oauth2", token_url = "{token_url}", client_id = "cid", client_secret = "secret:graph_secret" }}
"#,
        connector = connector(""),
        private = upstream.url("/private/"),
    ));
    env.set_secret("graph_secret", GRAPH_SECRET);
    let a = start_in_process(&env).await;

    // A grant without allow_private may not fetch its token from a loopback address.
    let r = fetch(&a, get("http://api.test/public/me")).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(
        token.hits(),
        0,
        "token fetched from 127.0.0.1 without allow_private"
    );
    // With allow_private the same endpoint works (so the policy is what refused it).
    let v = fetch(&a, get(&upstream.url("/private/me")))
        .await
        .expect("private grant");
    assert_eq!(v["status"], 200);
    assert_eq!(token.hits(), 1);

    a.flush();
    let rows = audit_rows(&env);
    let tok = rows_of(&rows, "oauth-token");
    assert!(
        tok.iter()
            .any(|r| r.event.decision != "ok" && r.event.reason.contains("loopback")),
        "{:#?}",
        summary(&rows)
    );
}

/// `Instant::now() + Duration::from_secs(expires_in)` overflows and panics for a huge value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_token_lifetime_does_not_crash_the_invocation() {
    let token = Server::spawn(|_, _| {
        Reply::status(
            200,
            r#"{"token_type":"Bearer","expires_in":18446744073709551615,"access_token":"tok-long-secretish"}"#,
        )
    })
    .await;
    let upstream = auth_echo_server().await;
    let env = Env::new(&oauth_config(&token, &upstream));
    env.set_secret("graph_secret", GRAPH_SECRET);
    let a = Arc::new(start_in_process(&env).await);
    for _ in 0..2 {
        let a = a.clone();
        let url = upstream.url("/graph/me");
        let r = tokio::spawn(async move { fetch(&a, get(&url)).await })
            .await
            .expect("the invocation panicked");
        assert_eq!(r.expect("fetch")["status"], 200);
    }
    assert_eq!(token.hits(), 1, "the long-lived token is cached");
}
