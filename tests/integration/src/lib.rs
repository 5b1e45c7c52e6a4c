//! Shared harness for the end-to-end tests: where the built binaries and components are, a
//! throwaway data directory with a config, the daemon as a child process, and a small HTTP
//! client. `make test` builds everything these tests use before running them (see `built`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

mod built;
pub mod reflect;

pub use built::{airlock_bin, component, target_dir};

/// The compile cache the tests share (see [`Env::new`]).
pub fn shared_compile_cache() -> PathBuf {
    target_dir().join("tmp").join("e2e-compile-cache")
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A data directory plus config file for one test.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    /// Writes `config_body` (connectors and grants) after a `[server]` section pointing the data
    /// directory into the temp dir. Compiled components are kept in one compile cache that every
    /// test shares (the daemon's own cache, keyed by the component's bytes and the engine's
    /// settings), so the suite compiles each component once instead of once per test;
    /// [`Env::own_compile_cache`] gives a test the data directory's own.
    pub fn new(config_body: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("airlock.toml");
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\ncompile_cache = {:?}\n\n{config_body}",
            shared_compile_cache().display().to_string()
        );
        std::fs::write(&config, text).expect("write config");
        Env { dir, config }
    }

    /// Keeps this test's compiled components in its own data directory (a test of the compile
    /// cache itself must see a first compile).
    pub fn own_compile_cache(&self) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let line = format!(
            "compile_cache = {:?}\n",
            shared_compile_cache().display().to_string()
        );
        std::fs::write(&self.config, text.replacen(&line, "", 1)).expect("config");
    }

    /// Makes `airlock serve` listen on `port` (known before it starts: an upstream or a client
    /// is told the URL first); returns the daemon's base URL.
    pub fn listen_at(&self, port: u16) -> String {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let text = text.replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
            1,
        );
        std::fs::write(&self.config, text).expect("config");
        format!("http://127.0.0.1:{port}")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `airlock ARGS... --config CONFIG` with `stdin` and returns its output.
    pub fn airlock(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(airlock_bin());
        cmd.args(args)
            .env("AIRLOCK_CONFIG", &self.config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn airlock");
        {
            use std::io::Write;
            let mut si = child.stdin.take().expect("stdin");
            if let Some(s) = stdin {
                si.write_all(s.as_bytes()).expect("write stdin");
            }
        }
        child.wait_with_output().expect("airlock output")
    }

    /// Stores a secret through the CLI (value on stdin).
    pub fn set_secret(&self, name: &str, value: &str) {
        let out = self.airlock(&["secrets", "set", name], Some(value));
        assert!(
            out.status.success(),
            "secrets set failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `airlock invoke CONNECTOR OP INPUT`: (exit ok, stdout JSON or null, stderr).
    pub fn invoke(
        &self,
        connector: &str,
        op: &str,
        input: &str,
    ) -> (bool, serde_json::Value, String) {
        let out = self.airlock(&["invoke", connector, op, input], None);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let v = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
        (out.status.success(), v, stderr)
    }

    /// `airlock tokens create`: a new API token (printed once by the CLI).
    pub fn create_token(
        &self,
        principal: &str,
        tenant: &str,
        groups: &[&str],
        admin: bool,
    ) -> String {
        let groups = groups.join(",");
        let mut args = vec![
            "tokens",
            "create",
            "--principal",
            principal,
            "--tenant",
            tenant,
        ];
        if !groups.is_empty() {
            args.extend(["--groups", groups.as_str()]);
        }
        if admin {
            args.push("--admin");
        }
        let out = self.airlock(&args, None);
        assert!(
            out.status.success(),
            "tokens create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An admin token of the `default` tenant.
    pub fn admin_token(&self) -> String {
        self.create_token("test-admin", "default", &[], true)
    }

    /// Starts `airlock serve` and waits until it listens; the daemon carries an admin token of
    /// the `default` tenant for its helpers.
    pub fn serve(&self) -> Daemon {
        self.serve_with(&[])
    }

    /// [`Env::serve`] with more environment (e.g. `AIRLOCK_LOG_JSON=true`).
    pub fn serve_with(&self, vars: &[(&str, &str)]) -> Daemon {
        let token = self.admin_token();
        let mut child = Command::new(airlock_bin())
            .args(["serve", "--log-level", "debug"])
            .env("AIRLOCK_CONFIG", &self.config)
            .env_remove("RUST_LOG")
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn airlock serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(pos) = line.find("on http://")
                    && let Some(t) = tx.take()
                {
                    // The address ends where a text line does, or at a JSON line's quote.
                    let addr: String = line[pos + 10..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
                        .collect();
                    let _ = t.send(addr);
                }
                if let Ok(mut l) = log2.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!(
                    "daemon did not start; log:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                )
            });
        Daemon {
            child,
            base: format!("http://{addr}"),
            token,
            log,
        }
    }
}

/// A running `airlock serve`; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    /// An admin token of the `default` tenant.
    pub token: String,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Polls `GET /v1/sync` (every 200 ms, at most 2 minutes) until a stream named `stream` has
    /// finished a run successfully and is not running; returns how many polls it made (tests that
    /// count the daemon's requests add them).
    pub async fn wait_until_synced(&self, stream: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut polls = 0;
        loop {
            let (_, s) = self.get("/v1/sync").await;
            polls += 1;
            let done = s["streams"].as_array().is_some_and(|a| {
                a.iter().any(|s| {
                    s["stream"] == stream
                        && !s["last_success_at"].is_null()
                        && s["running"] == false
                })
            });
            if done {
                return polls;
            }
            assert!(
                Instant::now() < deadline,
                "sync of {stream} did not finish: {s}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// POST /v1/connectors/{id}/invoke.
    pub async fn invoke(
        &self,
        connector: &str,
        op: &str,
        input: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let body = serde_json::json!({ "op": op, "input": input });
        self.post(
            &format!("/v1/connectors/{connector}/invoke"),
            &body.to_string(),
        )
        .await
    }

    /// GET `path` with the daemon's admin token.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        http_auth(
            "GET",
            &format!("{}{path}", self.base),
            Some(&self.token),
            None,
        )
        .await
    }

    /// POST `body` to `path` with the daemon's admin token.
    pub async fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        http_auth(
            "POST",
            &format!("{}{path}", self.base),
            Some(&self.token),
            Some(body.to_string()),
        )
        .await
    }

    /// Stops the daemon gracefully (SIGTERM) so it flushes its audit rows.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 JSON client without a token: (status, parsed body or the text as a JSON
/// string).
pub async fn http(method: &str, url: &str, body: Option<String>) -> (u16, serde_json::Value) {
    http_auth(method, url, None, body).await
}

/// Like [`http`], with `Authorization: Bearer TOKEN` when a token is given.
pub async fn http_auth(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, serde_json::Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request");
    let resp = client.request(req).await.expect("http request");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// One request without a JSON body: (status, response headers with lowercase names, body text),
/// for tests that look at headers (`Allow`, `Content-Security-Policy`, ...).
pub async fn http_raw(
    method: &str,
    url: &str,
    token: Option<&str>,
) -> (u16, std::collections::BTreeMap<String, String>, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    let resp = client.request(req).await.expect("http request");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).to_string())
}

/// Every file under `dir`, read as bytes (for canary greps).
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

/// True when `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A loopback HTTP server that answers every request with 200 and, as the body, the request
/// line and headers it received (to prove what the gate sent upstream).
pub async fn spawn_echo_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind echo");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                loop {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let head = head
                        .split("\r\n\r\n")
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{}",
                        head.len(),
                        head
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// How a lenient Java server (Tomcat, Jetty) finds the resource for a request target: drop the
/// query, strip `;params` from every segment, percent-decode, read `\\` as `/`, then resolve `.`
/// and `..`. Deliberately more lenient than Tomcat's defaults, so that a path the gate lets
/// through and this still routes inside the prefix is safe on the real thing too.
pub fn tomcat_route(target: &str) -> String {
    let path = target.split('?').next().unwrap_or_default();
    let stripped: Vec<&str> = path
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or_default())
        .collect();
    let joined = stripped.join("/");
    let mut bytes = Vec::new();
    let b = joined.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            bytes.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        bytes.push(b[i]);
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&bytes).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// A loopback server that routes like [`tomcat_route`] and answers `routed: PATH`; the paths it
/// routed are kept for the test.
pub async fn spawn_tomcat_like_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind tomcat-like");
    let addr = listener.local_addr().expect("addr");
    let routed = Arc::new(Mutex::new(Vec::new()));
    let seen = routed.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let target = head
                        .lines()
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .unwrap_or("/")
                        .to_string();
                    let route = tomcat_route(&target);
                    seen.lock().expect("routed").push(route.clone());
                    let body = format!("routed: {route}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, routed)
}

/// Loads a config in-process (the library, not the binary).
pub async fn start_in_process(env: &Env) -> airlock::app::Airlock {
    let config = airlock::config::Config::load(&env.config).expect("config");
    airlock::app::Airlock::start(config, airlock::scrub::Scrubber::new(), Default::default())
        .await
        .expect("airlock start")
}

/// Audit rows of a data dir (flush the writer first).
pub fn audit_rows(env: &Env) -> Vec<airlock::store::audit::AuditRow> {
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    airlock::store::audit::tail(&conn, 100_000, None).expect("tail")
}

/// `http` rows the gate wrote for requests it sent upstream (flush the writer first).
pub fn sent_rows(env: &Env) -> usize {
    audit_rows(env)
        .iter()
        .filter(|r| r.event.event == "http" && r.event.status.is_some())
        .count()
}

/// Config for the Atera connector against a fake at `base`, with a writes grant (its write
/// actions wait for approval) using vault secret `atera_key`.
pub fn atera_config(base: &str) -> String {
    format!(
        r#"
[[connector]]
id = "atera"
component = "{}"
permissions = "tenant"
[connector.settings]
base_url = "{base}"
technician_email = "api.technician@msp.example"

[[grant]]
connector = "atera"
url = "{base}/api/v3/"
methods = ["GET", "POST"]
allow_private = true
writes = true
allow_insecure = true
auth = {{ type = "header", name = "X-API-KEY", value = "secret:atera_key" }}
"#,
        component("atera").display()
    )
}

/// Config for the Confluence connector against a fake at `base_url`, using vault secret
/// `confluence_token`, without permissions: the connector reads none (`permission_sync =
/// "off"`, so the tests of sync mechanics count only the page requests) and its records are
/// tenant-wide. [`confluence_permissions_config`] is the one with permissions.
pub fn confluence_config(base_url: &str) -> String {
    confluence_permissions_config(base_url)
        .replacen("component = ", "permissions = \"tenant\"\ncomponent = ", 1)
        .replacen(
            "[connector.settings]\n",
            "[connector.settings]\npermission_sync = \"off\"\n",
            1,
        )
}

/// Config for the Confluence connector with permissions, as an operator would run it: every
/// page carries its ACL (`permission_sync` left at its default, `every-run`), records are
/// per-record, and `[connector.users]` maps every seeded user's email to its accountId.
pub fn confluence_permissions_config(base_url: &str) -> String {
    let users: String = fake_saas::USER_EMAILS
        .iter()
        .zip(fake_saas::ACCOUNT_IDS)
        .map(|(email, id)| format!("\"{email}\" = \"{id}\"\n"))
        .collect();
    format!(
        r#"
[[connector]]
id = "confluence"
component = "{}"
[connector.settings]
base_url = "{base_url}"
[connector.users]
{users}

[[grant]]
connector = "confluence"
url = "{base_url}/wiki/"
methods = ["GET", "POST"]
exact_paths = ["/wiki/rest/api/content/*/permission/check"]
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "demo@example.com", password = "secret:confluence_token" }}
"#,
        component("confluence").display()
    )
}

/// Whitespace-insensitive text comparison (the fake collapses whitespace; connectors may keep
/// paragraph breaks).
pub fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Config for the Zendesk connector against a fake at `base_url`, using vault secret
/// `zendesk_token`; `settings` are extra lines for `[connector.settings]`.
pub fn zendesk_config(base_url: &str, settings: &str) -> String {
    format!(
        r#"
[[connector]]
id = "zendesk"
component = "{}"
permissions = "tenant"
limits = {{ timeout = "60s" }}
[connector.settings]
base_url = "{base_url}"
{settings}

[[grant]]
connector = "zendesk"
url = "{base_url}/api/v2/"
methods = ["GET"]
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "agent@example.com/token", password = "secret:zendesk_token" }}
"#,
        component("zendesk").display()
    )
}

/// A loopback port free now (the daemon takes it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Config for the Jira Service Management connector (id `jira`) against a fake at `base_url`,
/// read-only, using vault secret `jira_token` for the fake's default user.
pub fn jira_config(base_url: &str) -> String {
    format!(
        r#"
[[connector]]
id = "jira"
component = "{}"
permissions = "tenant"
limits = {{ timeout = "60s" }}
[connector.settings]
base_url = "{base_url}"
page_size = "40"

[[grant]]
connector = "jira"
url = "{base_url}/rest/"
methods = ["GET"]
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "demo@example.com", password = "secret:jira_token" }}
"#,
        component("jira_servicedesk").display()
    )
}

/// `config` (one connector, as the `*_config` helpers write it) with `hook = { ... }` added to
/// its connector.
pub fn with_hook(config: &str, hook: &str) -> String {
    let out = config.replacen(
        "limits = { timeout = \"60s\" }",
        &format!("limits = {{ timeout = \"60s\" }}\nhook = {hook}"),
        1,
    );
    assert!(
        out.contains("hook = "),
        "no connector limits line to add the hook after"
    );
    out
}

/// An rmcp client session on the daemon's `/mcp` with `Authorization: Bearer TOKEN`.
pub async fn mcp_http_client(
    d: &Daemon,
    token: &str,
) -> Result<rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>, String> {
    use rmcp::ServiceExt as _;
    let transport = rmcp::transport::StreamableHttpClientTransport::from_config(
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            format!("{}/mcp", d.base),
        )
        .auth_header(token.to_string()),
    );
    rmcp::model::ClientConfig::default()
        .serve(transport)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// Runs `airlock ARGS` `rounds` times, SIGKILLing each run after a seeded pseudo-random delay
/// of `min_ms..min_ms+spread_ms` if it is still running; `between(round)` runs after each round
/// (to change the upstream between crashes). Returns how many runs were actually killed.
pub fn sync_with_random_kills(
    env: &Env,
    args: &[&str],
    rounds: usize,
    (min_ms, spread_ms): (u64, u64),
    mut seed: u64,
    mut between: impl FnMut(usize),
) -> usize {
    let mut kills = 0;
    for round in 0..rounds {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = min_ms + (seed >> 33) % spread_ms;
        let mut child = Command::new(airlock_bin())
            .args(args)
            .env("AIRLOCK_CONFIG", &env.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sync");
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
        between(round);
    }
    kills
}

/// Config for the Azure connector against a fake, with an OAuth2 grant whose client secret is
/// the vault secret `azure_secret`.
pub fn azure_config(
    base_url: &str,
    token_url: &str,
    subscription: &str,
    client_id: &str,
) -> String {
    format!(
        r#"
[[connector]]
id = "azure"
component = "{}"
permissions = "tenant"
limits = {{ timeout = "60s" }}
[connector.settings]
base_url = "{base_url}"
subscription_id = "{subscription}"

[[grant]]
connector = "azure"
url = "{base_url}/subscriptions/"
methods = ["GET"]
allow_private = true
allow_insecure = true
auth = {{ type = "oauth2", token_url = "{token_url}", client_id = "{client_id}", client_secret = "secret:azure_secret", scope = "https://management.azure.com/.default" }}
"#,
        component("azure").display()
    )
}

/// Config for the Graph connector against a fake, with every mailbox, chat and channel of its
/// ground truth and an OAuth2 grant whose client secret is the vault secret `graph_secret`.
pub fn msgraph_config(f: &fake_saas::RunningFake<fake_saas::MsGraph>, client_id: &str) -> String {
    let t = f.truth();
    let list = |items: Vec<&String>| {
        let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    format!(
        r#"
[[connector]]
id = "msgraph"
component = "{component}"
permissions = "tenant"
limits = {{ timeout = "60s" }}
[connector.settings]
base_url = "{base}"
mailboxes = {mailboxes}
chats = {chats}
channels = {channels}
page_size = 20

[[grant]]
connector = "msgraph"
url = "{base}/v1.0/"
methods = ["GET", "POST"]
exact_paths = ["/v1.0/search/query"]
allow_private = true
allow_insecure = true
auth = {{ type = "oauth2", token_url = "{token_url}", client_id = "{client_id}", client_secret = "secret:graph_secret", scope = "https://graph.microsoft.com/.default" }}
"#,
        component = component("msgraph").display(),
        base = f.base_url,
        mailboxes = list(t.mailboxes.iter().collect()),
        chats = list(t.chats.keys().collect()),
        channels = list(t.channels.keys().collect()),
        token_url = f.token_url(),
    )
}

/// A page document with an ACL (empty: any principal of the tenant), for stocking the store.
pub fn doc(id: &str, title: &str, body: &str, acl: &[&str]) -> airlock::runtime::model::Document {
    airlock::runtime::model::Document {
        id: id.into(),
        kind: "page".into(),
        title: title.into(),
        body: body.into(),
        url: None,
        updated_at: "2026-01-01T00:00:00Z".into(),
        metadata: serde_json::json!({}).into(),
        acl: acl.iter().map(|s| s.to_string()).collect(),
    }
}

/// Stores documents for a connector, as a sync would.
pub fn store_docs(env: &Env, connector: &str, docs: &[airlock::runtime::model::Document]) {
    let mut conn = airlock::store::open(&env.data_dir()).expect("db");
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("tx");
    airlock::store::documents::apply_page(&tx, connector, docs, &[], "2026-01-01T00:00:00Z")
        .expect("apply");
    tx.commit().expect("commit");
}

/// Two tenants' connectors of the hostile component: `a1` (acme) and `b1` (beta), plus beta's
/// route `rb` (action `echo`).
pub fn two_tenant_config() -> String {
    format!(
        r#"
[[connector]]
id = "a1"
component = "{h}"
permissions = "tenant"
tenant = "acme"

[[connector]]
id = "b1"
component = "{h}"
permissions = "tenant"
tenant = "beta"

[[route]]
name = "rb"
action = "echo"
connectors = ["b1"]
"#,
        h = component("hostile").display()
    )
}

/// The lines of the first ```sh block after `heading`, continuation lines joined, comments and
/// blank lines dropped.
pub fn shell_block(markdown: &str, heading: &str) -> Vec<String> {
    let start = markdown
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}` in the document"));
    let rest = &markdown[start..];
    let open = rest.find("```sh\n").expect("a ```sh block") + "```sh\n".len();
    let body = &rest[open..];
    let body = &body[..body.find("```").expect("the block ends")];
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in body.lines() {
        let line = strip_comment(raw);
        let line = line.trim_end();
        if let Some(cont) = line.strip_suffix('\\') {
            current.push_str(cont);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let done = std::mem::take(&mut current);
        if !done.trim().is_empty() {
            lines.push(done.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    lines
}

/// `line` without a trailing `# comment` (a `#` outside quotes, after whitespace).
pub fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// Every ```sh block of `markdown`, each as `shell_block` reads it.
pub fn shell_blocks(markdown: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = markdown;
    while let Some(i) = rest.find("```sh\n") {
        out.push(shell_block(rest, "```sh\n"));
        rest = &rest[i + "```sh\n".len()..];
        match rest.find("```") {
            Some(j) => rest = &rest[j + 3..],
            None => break,
        }
    }
    out
}

/// Three instances of the OpenAI-compatible component: `lmstudio` (no auth), `azure-openai`
/// (`api-key` from vault secret `azure_openai_key`) and `openai` (Bearer from `openai_key`),
/// against providers at these base URLs.
pub fn openai_config(lm: &str, azure: &str, openai: &str) -> String {
    let component = component("openai");
    let c = component.display();
    format!(
        r#"
[[connector]]
id = "lmstudio"
component = "{c}"
permissions = "tenant"
[connector.settings]
flavor = "lmstudio"
base_url = "{lm}"

[[grant]]
connector = "lmstudio"
url = "{lm}/v1/"
methods = ["GET", "POST"]
exact_paths = ["/v1/chat/completions"]
allow_private = true

[[connector]]
id = "azure-openai"
component = "{c}"
permissions = "tenant"
[connector.settings]
flavor = "azure"
base_url = "{azure}"
deployment = "gpt-4o"
api_version = "2024-10-21"

[[grant]]
connector = "azure-openai"
url = "{azure}/openai/deployments/"
methods = ["POST"]
exact_paths = ["/openai/deployments/*/chat/completions"]
allow_private = true
allow_insecure = true
auth = {{ type = "header", name = "api-key", value = "secret:azure_openai_key" }}

[[connector]]
id = "openai"
component = "{c}"
permissions = "tenant"
[connector.settings]
flavor = "openai"
base_url = "{openai}/v1"
model = "gpt-4o-mini"

[[grant]]
connector = "openai"
url = "{openai}/v1/"
methods = ["GET", "POST"]
exact_paths = ["/v1/chat/completions"]
allow_private = true
allow_insecure = true
auth = {{ type = "bearer", token = "secret:openai_key" }}
"#
    )
}

/// An OpenAI-flavoured fake whose API key is `api_key`.
pub async fn openai_fake(api_key: &str) -> fake_saas::RunningFake<fake_saas::openai::OpenAi> {
    let opts = fake_saas::openai::OpenAiOptions {
        mode: fake_saas::openai::OpenAiMode::OpenAi,
        api_key: api_key.into(),
        ..fake_saas::openai::OpenAiOptions::default()
    };
    fake_saas::spawn_openai("127.0.0.1:0".parse().expect("addr"), opts)
        .await
        .expect("openai fake")
}

/// `[search.semantic]` and `[search.ask]` over an `embedder` connector (the openai component:
/// its `embed` and `chat` actions) at the OpenAI fake `base`, whose bearer key is the vault
/// secret `openai_key`.
pub fn semantic_config(base: &str) -> String {
    format!(
        r#"
[search.semantic]
connector = "embedder"
model = "text-embedding-3-small"
chunk_chars = 400
chunk_overlap = 80

[search.ask]
connector = "embedder"

[[connector]]
id = "embedder"
component = "{c}"
permissions = "tenant"
[connector.settings]
flavor = "openai"
base_url = "{base}"
model = "gpt-4o-mini"
embedding_model = "text-embedding-3-small"

[[grant]]
connector = "embedder"
url = "{base}/v1/"
methods = ["POST"]
exact_paths = ["/v1/embeddings", "/v1/chat/completions"]
allow_private = true
allow_insecure = true
auth = {{ type = "bearer", token = "secret:openai_key" }}
"#,
        c = component("openai").display()
    )
}
