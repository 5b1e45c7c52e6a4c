//! Enterprise networks, end to end on loopback: an upstream whose certificate comes from a
//! private CA (made here with rcgen, served with tokio-rustls) is refused with a certificate
//! error until `[outbound] ca_file` or the grant's `tls = { ca_file }` names the CA; an egress
//! proxy (a small CONNECT proxy written here, counting what it tunnels) carries the calls while
//! the grants and address rules still judge the target; `NO_PROXY` hosts go direct; and `/mcp`
//! answers a `Host` listed in `[server] public_hosts` and still refuses any other.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::test_pki::{TestPki as Pki, make_pki};
use airlock::runtime::connector::{InvokeError, Op};
use airlock_tests::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "tls-test-bearer-8d1f0c";

// ---- a TLS upstream with a private CA's certificate --------------------------------------------

/// What the TLS upstream saw: each request's head (request line and headers).
type Heads = Arc<Mutex<Vec<String>>>;

/// An HTTPS server on loopback answering every request with a small JSON document.
async fn spawn_tls_server(pki: &Pki) -> (SocketAddr, Heads) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
        .expect("server cert");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads: Heads = Arc::default();
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                // A refused handshake (the client does not trust us) simply ends here.
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                while let Some(head) = read_head(&mut tls).await {
                    seen.lock().expect("heads").push(head);
                    let body = json!({"ok": true, "items": [{"id": 1}]}).to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if tls.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, heads)
}

/// Reads one request head (to the blank line); None at end of stream.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

// ---- a counting egress proxy --------------------------------------------------------------------

/// What the proxy was asked for: `CONNECT host:port` tunnels and absolute-form request lines.
#[derive(Default)]
struct ProxyLog {
    connects: Vec<String>,
    requests: Vec<String>,
}

/// A forward proxy: CONNECT opens a tunnel to the named target; an absolute-form request is
/// passed on as it came (the echo server behind it shows what arrived). Every connection's
/// first request is logged.
async fn spawn_proxy() -> (SocketAddr, Arc<Mutex<ProxyLog>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    let log: Arc<Mutex<ProxyLog>> = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log2.clone();
            tokio::spawn(async move {
                let Some(head) = read_head(&mut client).await else {
                    return;
                };
                let line = head.lines().next().unwrap_or_default().to_string();
                let mut parts = line.split(' ');
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if method == "CONNECT" {
                    log.lock().expect("log").connects.push(target.to_string());
                    let Ok(mut up) = tokio::net::TcpStream::connect(target).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                    }
                } else {
                    log.lock().expect("log").requests.push(line.clone());
                    let authority = target
                        .strip_prefix("http://")
                        .and_then(|r| r.split('/').next())
                        .unwrap_or_default()
                        .to_string();
                    let Ok(mut up) = tokio::net::TcpStream::connect(authority).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    if up.write_all(head.as_bytes()).await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                    }
                }
            });
        }
    });
    (addr, log)
}

// ---- helpers ------------------------------------------------------------------------------------

/// The hostile connector (raw wasi:http `fetch`) and a bearer grant to `url`, plus `extra` on
/// the grant and `top` before everything (an `[outbound]` section).
fn config(top: &str, grants: &[(&str, &str)]) -> String {
    let mut s = format!(
        "{top}\n[[connector]]\nid = \"hostile\"\ncomponent = \"{}\"\n",
        component("hostile").display()
    );
    for (url, extra) in grants {
        s.push_str(&format!(
            "\n[[grant]]\nconnector = \"hostile\"\nurl = \"{url}\"\nallow_private = true\n\
             auth = {{ type = \"bearer\", token = \"secret:tls_token\" }}\n{extra}\n"
        ));
    }
    s
}

/// An Env whose config may name `ca.pem` (written beside it) and whose vault has the token.
fn env_with(config_body: &str, pki: &Pki) -> Env {
    let env = Env::new(config_body);
    std::fs::write(env.dir.path().join("ca.pem"), &pki.ca_pem).expect("ca.pem");
    env.set_secret("tls_token", TOKEN);
    env
}

async fn fetch(a: &airlock::app::Airlock, url: &str) -> Result<Value, InvokeError> {
    a.invoke(
        "hostile",
        Op::Action {
            name: "fetch".into(),
            input: json!({ "url": url }),
        },
    )
    .await
}

fn error_text(r: &Result<Value, InvokeError>) -> String {
    match r {
        Err(InvokeError::Connector(c)) => format!("{}: {}", c.code, c.message),
        other => panic!("expected a connector error, got {other:?}"),
    }
}

/// Every audit row's reason, and whether any row or the reasons mention the token.
fn reasons(a: &airlock::app::Airlock, env: &Env) -> Vec<String> {
    a.flush();
    let rows = audit_rows(env);
    let all = format!("{rows:?}");
    assert!(!all.contains(TOKEN), "the token reached an audit row");
    rows.iter()
        .filter(|r| r.event.event == "http")
        .map(|r| format!("{} {}", r.event.decision, r.event.reason))
        .collect()
}

// ---- custom CA ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_refused_until_ca_file_names_it() {
    let pki = make_pki("Airlock test private CA");
    let (addr, heads) = spawn_tls_server(&pki).await;
    let url = format!("https://localhost:{}/api/items", addr.port());
    let grant_url = format!("https://localhost:{}/api/", addr.port());

    // No CA file: a certificate error, named as such, before any byte of the request (and so
    // the token) left.
    let env = env_with(&config("", &[(&grant_url, "")]), &pki);
    let a = start_in_process(&env).await;
    let r = fetch(&a, &url).await;
    let err = error_text(&r);
    let why = reasons(&a, &env);
    assert!(err.contains("TlsCertificateError"), "{err} {why:?}");
    assert!(!err.contains(TOKEN));
    assert!(
        why.iter().any(|r| r.contains("invalid peer certificate")
            && r.contains("UnknownIssuer")
            && r.contains("ca_file")),
        "{why:?}"
    );
    assert!(
        heads.lock().expect("heads").is_empty(),
        "a request went out"
    );
    drop(a);

    // `[outbound] ca_file`: trusted for every grant; the call succeeds with the credential.
    let env = env_with(
        &config("[outbound]\nca_file = \"ca.pem\"\n", &[(&grant_url, "")]),
        &pki,
    );
    let a = start_in_process(&env).await;
    let v = fetch(&a, &url)
        .await
        .expect("fetch with [outbound] ca_file");
    assert_eq!(v["status"], 200, "{v}");
    assert!(
        v["body"]
            .as_str()
            .unwrap_or_default()
            .contains("\"ok\":true"),
        "{v}"
    );
    let seen = heads.lock().expect("heads").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains(&format!("Bearer {TOKEN}")), "{seen:?}");
    drop(a);

    // A grant's own `tls = { ca_file }` trusts the CA for that grant only: the same server
    // reached as 127.0.0.1 through a grant without it is still refused.
    let ip_grant = format!("https://127.0.0.1:{}/api/", addr.port());
    let env = env_with(
        &config(
            "",
            &[
                (&grant_url, "tls = { ca_file = \"ca.pem\" }"),
                (&ip_grant, ""),
            ],
        ),
        &pki,
    );
    let a = start_in_process(&env).await;
    let v = fetch(&a, &url)
        .await
        .expect("fetch with the grant's ca_file");
    assert_eq!(v["status"], 200, "{v}");
    let r = fetch(&a, &format!("https://127.0.0.1:{}/api/items", addr.port())).await;
    assert!(error_text(&r).contains("TlsCertificateError"), "{r:?}");
    assert_eq!(heads.lock().expect("heads").len(), 2);
}

#[test]
fn a_ca_file_that_is_missing_or_holds_no_certificate_stops_the_config() {
    let pki = make_pki("Airlock test private CA");
    for (top, extra, want) in [
        (
            "[outbound]\nca_file = \"nope.pem\"\n",
            "",
            "outbound.ca_file: cannot read",
        ),
        (
            "",
            "tls = { ca_file = \"nope.pem\" }",
            "grant[0].tls.ca_file: cannot read",
        ),
        (
            "",
            "tls = { ca_file = \"empty.pem\" }",
            "holds no certificate",
        ),
    ] {
        let env = Env::new(&config(top, &[("https://localhost:9/", extra)]));
        std::fs::write(env.dir.path().join("ca.pem"), &pki.ca_pem).expect("ca.pem");
        std::fs::write(env.dir.path().join("empty.pem"), "not a certificate\n").expect("write");
        let out = env.airlock(&["config", "check"], None);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        assert!(text.contains(want), "want `{want}` in: {text}");
    }
}

// ---- egress proxy -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_through_the_proxy_and_the_grants_still_judge_the_target() {
    let pki = make_pki("Airlock test private CA");
    let (tls, heads) = spawn_tls_server(&pki).await;
    let echo = spawn_echo_server().await;
    let (proxy, log) = spawn_proxy().await;
    let top = format!(
        "[outbound]\nca_file = \"ca.pem\"\nproxy = \"http://{proxy}\"\nno_proxy = [\"direct.test\"]\n\
         [resolve]\n\"direct.test\" = \"127.0.0.1\"\n\"public-only.test\" = \"127.0.0.1\"\n"
    );
    let env = env_with(
        &config(
            &top,
            &[
                (&format!("https://localhost:{}/api/", tls.port()), ""),
                (
                    &format!("http://127.0.0.1:{}/", echo.port()),
                    "allow_insecure = true",
                ),
                (
                    &format!("http://direct.test:{}/", echo.port()),
                    "allow_insecure = true",
                ),
            ],
        ),
        &pki,
    );
    // A grant without allow_private to a name that resolves to loopback.
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        format!(
            "{text}\n[[grant]]\nconnector = \"hostile\"\nurl = \"http://public-only.test:{}/\"\n",
            echo.port()
        ),
    )
    .expect("config");
    let a = start_in_process(&env).await;

    // HTTPS: one CONNECT to the target's name; TLS end to end (the CA file checks the server).
    let v = fetch(&a, &format!("https://localhost:{}/api/items", tls.port()))
        .await
        .expect("https through the proxy");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(
        log.lock().expect("log").connects,
        [format!("localhost:{}", tls.port())]
    );
    assert_eq!(heads.lock().expect("heads").len(), 1);

    // Plain http: an absolute-form request to the proxy.
    let v = fetch(&a, &format!("http://127.0.0.1:{}/plain?x=1", echo.port()))
        .await
        .expect("http through the proxy");
    let body = v["body"].as_str().unwrap_or_default();
    assert!(
        body.starts_with(&format!(
            "GET http://127.0.0.1:{}/plain?x=1 HTTP/1.1",
            echo.port()
        )),
        "{body}"
    );
    assert_eq!(log.lock().expect("log").requests.len(), 1);

    // Outside the grants: denied by the gate, the proxy never hears of it.
    let r = fetch(&a, "https://elsewhere.example.com/").await;
    assert!(error_text(&r).contains("denied"), "{r:?}");
    // A name that resolves to loopback, on a grant without allow_private: the address rules
    // judge the target, not the proxy, so this is refused before the proxy is asked.
    let r = fetch(&a, &format!("http://public-only.test:{}/", echo.port())).await;
    assert!(error_text(&r).contains("denied"), "{r:?}");
    // A no_proxy host goes direct.
    let v = fetch(&a, &format!("http://direct.test:{}/d", echo.port()))
        .await
        .expect("no_proxy host");
    assert!(
        v["body"]
            .as_str()
            .unwrap_or_default()
            .starts_with("GET /d HTTP/1.1"),
        "{v}"
    );
    {
        let log = log.lock().expect("log");
        assert_eq!(log.connects.len(), 1, "{:?}", log.connects);
        assert_eq!(log.requests.len(), 1, "{:?}", log.requests);
    }
    let why = reasons(&a, &env);
    assert!(
        why.iter().any(|r| r.starts_with("deny")
            && r.contains("public-only.test")
            && r.contains("loopback")),
        "{why:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_environment_is_honoured_and_no_proxy_bypasses_it() {
    let pki = make_pki("Airlock test private CA");
    let (tls, heads) = spawn_tls_server(&pki).await;
    let (proxy, log) = spawn_proxy().await;
    let env = env_with(
        &config(
            "[outbound]\nca_file = \"ca.pem\"\n",
            &[(&format!("https://localhost:{}/api/", tls.port()), "")],
        ),
        &pki,
    );
    let input = json!({ "url": format!("https://localhost:{}/api/items", tls.port()) }).to_string();
    let invoke = |vars: &[(&str, String)]| {
        let mut cmd = std::process::Command::new(airlock_bin());
        cmd.args(["invoke", "hostile", "fetch", &input])
            .env("AIRLOCK_CONFIG", &env.config)
            .env_remove("RUST_LOG");
        for v in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            cmd.env_remove(v);
        }
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("airlock invoke");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let out = invoke(&[("HTTPS_PROXY", format!("http://{proxy}"))]);
    assert!(out.contains("\\\"ok\\\":true"), "{out}");
    assert_eq!(log.lock().expect("log").connects.len(), 1);
    let out = invoke(&[
        ("HTTPS_PROXY", format!("http://{proxy}")),
        ("NO_PROXY", "example.org, localhost".into()),
    ]);
    assert!(out.contains("\\\"ok\\\":true"), "{out}");
    assert_eq!(
        log.lock().expect("log").connects.len(),
        1,
        "NO_PROXY went through the proxy"
    );
    assert_eq!(heads.lock().expect("heads").len(), 2);

    // `proxy_from_env = false` ignores the environment; a bad proxy variable is a config error.
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        text.replace("[outbound]\n", "[outbound]\nproxy_from_env = false\n"),
    )
    .expect("config");
    invoke(&[("HTTPS_PROXY", format!("http://{proxy}"))]);
    assert_eq!(log.lock().expect("log").connects.len(), 1);
    std::fs::write(&env.config, &text).expect("config");
    let out = std::process::Command::new(airlock_bin())
        .args(["config", "check"])
        .env("AIRLOCK_CONFIG", &env.config)
        .env("HTTPS_PROXY", "http://user:pw-9f8e7d@127.0.0.1:3128")
        .output()
        .expect("config check");
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && err.contains("HTTPS_PROXY"),
        "{err}"
    );
    assert!(!err.contains("pw-9f8e7d"), "{err}");
}

// ---- /mcp public hosts --------------------------------------------------------------------------

/// POSTs an MCP `initialize` to `/mcp` with this `Host` header; the status.
async fn mcp_status(base: &str, host: &str, token: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp).await;
    let text = String::from_utf8_lossy(&resp);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_answers_a_configured_public_host_and_refuses_others() {
    let env = Env::new("");
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        text.replacen(
            "[server]\n",
            "[server]\npublic_hosts = [\"airlock.example.com\"]\n",
            1,
        ),
    )
    .expect("config");
    let d = env.serve();
    assert_eq!(
        mcp_status(&d.base, "airlock.example.com", &d.token).await,
        200
    );
    assert_eq!(
        mcp_status(&d.base, "AIRLOCK.example.com:443", &d.token).await,
        200
    );
    assert_eq!(mcp_status(&d.base, "localhost", &d.token).await, 200);
    assert_eq!(mcp_status(&d.base, "evil.example.com", &d.token).await, 403);
    assert_eq!(
        mcp_status(&d.base, "airlock.example.com.evil.net", &d.token).await,
        403
    );
}
