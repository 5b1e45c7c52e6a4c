//! Airlock as its own OAuth authorization server (`[oauth] authorization_server = "self"`): the
//! official Python MCP SDK signs a person in with their API token — identified by a client ID
//! metadata document, and by dynamic registration — and searches as them; refresh tokens rotate
//! and a replayed one ends the whole sign-in; wrong PKCE verifiers, redirect URIs, resources,
//! tampered, expired and other-audience tokens are refused with the spec's errors; revoking
//! (at the revocation endpoint, or the API token itself) ends the sessions; the API token pasted
//! at the sign-in page never reaches the log.

use std::collections::{BTreeMap, HashMap};

use airlock_tests::*;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ADA: &str = "ada.adams@contoso.com";
const REDIRECT: &str = "http://127.0.0.1:1/callback";

/// Acme's pages about zeppelins (one for group `eng`, one for Bob) and Beta's; the resource is
/// the URL clients use (the SDK checks they match), so the daemon listens on a known port.
fn setup() -> (Env, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = format!(
        "{}\n[oauth]\nauthorization_server = \"self\"\nresource = \"{base}/mcp\"\nallow_insecure = true\nallow_loopback_client_ids = true\n",
        two_tenant_config()
    );
    let env = Env::new(&config);
    env.listen_at(port);
    store_docs(
        &env,
        "a1",
        &[
            doc("plan", "Zeppelin plan", "zeppelin zeppelin", &["eng"]),
            doc("secret", "Zeppelin note", "only bob reads this", &["bob"]),
        ],
    );
    store_docs(&env, "b1", &[doc("beta", "Beta zeppelin", "zeppelin", &[])]);
    (env, base)
}

struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    /// Every `Set-Cookie` as `name=value` (headers keeps only the last).
    cookies: Vec<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn location(&self) -> HashMap<String, String> {
        let loc = self.headers.get("location").cloned().unwrap_or_default();
        let q = loc.split_once('?').map(|(_, q)| q).unwrap_or("");
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8_lossy()
                    .to_string();
                (k.to_string(), v)
            })
            .collect()
    }
}

async fn send(
    method: &str,
    url: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
) -> Answer {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let body = match form {
        Some(f) => {
            req = req.header("content-type", "application/x-www-form-urlencoded");
            encode(f)
        }
        None => String::new(),
    };
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("http");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let cookies = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_string)
        .collect();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        cookies,
        body: String::from_utf8_lossy(&bytes).to_string(),
    }
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let e = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", e(k), e(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

const VERIFIER: &str = "a-verifier-of-forty-three-characters-or-more-0123456789";

fn challenge(verifier: &str) -> String {
    b64(&Sha256::digest(verifier.as_bytes()))
}

fn hidden(page: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + needle.len();
    page[at..].split('"').next().unwrap_or("").to_string()
}

/// A client registered dynamically with [`REDIRECT`].
async fn register(base: &str) -> String {
    let (status, v) = http(
        "POST",
        &format!("{base}/oauth/register"),
        Some(json!({"client_name": "tester", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v["client_id"].as_str().expect("client_id").to_string()
}

/// `GET /oauth/authorize` with the usual parameters, `extra` replacing or adding some.
async fn authorize(base: &str, client: &str, extra: &[(&str, &str)]) -> Answer {
    let c = challenge(VERIFIER);
    let resource = format!("{base}/mcp");
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("state", "st-1"),
        ("code_challenge", &c),
        ("code_challenge_method", "S256"),
        ("resource", &resource),
        ("scope", "search read"),
    ];
    for (k, v) in extra {
        params.retain(|(p, _)| p != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    send(
        "GET",
        &format!("{base}/oauth/authorize?{}", encode(&params)),
        None,
        None,
    )
    .await
}

/// Posts the sign-in form of `page` with `token` (the browser sends the page's cookie).
async fn sign_in(base: &str, page: &Answer, token: &str) -> Answer {
    let cookie = page
        .headers
        .get("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("csrf cookie")
        .to_string();
    let (request, csrf) = (hidden(&page.body, "request"), hidden(&page.body, "csrf"));
    send(
        "POST",
        &format!("{base}/oauth/authorize"),
        Some(&cookie),
        Some(&[
            ("request", &request),
            ("csrf", &csrf),
            ("token", token),
            ("decision", "allow"),
        ]),
    )
    .await
}

/// A code for `client` signed in with `token`.
async fn code(base: &str, client: &str, token: &str) -> String {
    let page = authorize(base, client, &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let back = sign_in(base, &page, token).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let q = back.location();
    assert_eq!(q.get("state").map(String::as_str), Some("st-1"));
    assert_eq!(q.get("iss"), Some(&base.to_string()), "RFC 9207 iss");
    q["code"].clone()
}

async fn exchange(base: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let a = send("POST", &format!("{base}/oauth/token"), None, Some(pairs)).await;
    if a.status == 200 {
        assert_eq!(
            a.headers.get("cache-control").map(String::as_str),
            Some("no-store")
        );
    }
    (a.status, a.json())
}

async fn by_code(
    base: &str,
    client: &str,
    code: &str,
    verifier: &str,
    redirect: &str,
) -> (u16, Value) {
    let resource = format!("{base}/mcp");
    exchange(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("client_id", client),
            ("code_verifier", verifier),
            ("resource", &resource),
        ],
    )
    .await
}

async fn refresh(base: &str, client: &str, token: &str) -> (u16, Value) {
    exchange(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client),
        ],
    )
    .await
}

/// What `/v1/search` answers an access token, with its challenge.
async fn search_with(base: &str, token: &str) -> (u16, String) {
    let (status, headers, _) = http_raw("GET", &format!("{base}/v1/changes"), Some(token)).await;
    (
        status,
        headers.get("www-authenticate").cloned().unwrap_or_default(),
    )
}

fn run_python(args: &[&str]) -> Value {
    let python = root().join("target/polyglot/venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test` (it installs the Python MCP SDK)",
        python.display()
    );
    let out = std::process::Command::new(&python)
        .arg(root().join("tests/integration/python/mcp_oauth_self_client.py"))
        .args(args)
        .output()
        .expect("run the Python client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python client failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("the client's JSON")
}

/// The official Python MCP SDK (PyPI `mcp`, in target/polyglot/venv) signs Ada in at Airlock's
/// own authorization server, once by a client ID metadata document and once by dynamic
/// registration, and searches and runs an action as her; its refresh token rotates, and the
/// spent one presented again ends the sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_mcp_sdk_signs_in_at_airlocks_own_server_and_works_as_the_person() {
    let (env, base) = setup();
    let canary = env.create_token(ADA, "acme", &["eng"], false);
    let d = env.serve();
    let mcp = format!("{base}/mcp");

    let (status, prm) = http(
        "GET",
        &format!("{base}/.well-known/oauth-protected-resource/mcp"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{prm}");
    assert_eq!(
        prm["authorization_servers"],
        json!([base]),
        "Airlock names itself"
    );
    let (status, asm) = http(
        "GET",
        &format!("{base}/.well-known/oauth-authorization-server"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{asm}");
    assert_eq!(asm["issuer"], base.as_str());
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(asm["client_id_metadata_document_supported"], true);

    let mut refresh_tokens = Vec::new();
    for mode in ["cimd", "dcr"] {
        let tools = run_python(&[&mcp, &canary, mode, "zeppelin", "a1__echo", r#"{"x": 1}"#]);
        let got = &tools;
        assert_eq!(got["search_is_error"], false, "{mode}: {got}");
        let search = got["search"].to_string();
        assert!(search.contains("plan"), "{mode}: {got}");
        assert!(
            !search.contains("secret") && !search.contains("beta"),
            "{mode}: {got}"
        );
        assert_eq!(got["action_is_error"], false, "{mode}: {got}");
        assert_eq!(got["scope"], "search read actions writes", "{mode}: {got}");
        assert_eq!(got["iss"], base.as_str(), "{mode}");
        let client_id = got["client_id"].as_str().unwrap_or_default().to_string();
        match mode {
            "cimd" => assert!(client_id.ends_with("/oauth/client.json"), "{got}"),
            _ => assert!(client_id.starts_with("dcr_"), "{got}"),
        }
        let csp = got["csp"].as_str().unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(
            got["tools"].as_array().is_some_and(
                |t| t.iter().any(|t| t == "a1__echo") && !t.iter().any(|t| t == "b1__echo")
            ),
            "{got}"
        );
        let access = got["access_token"]
            .as_str()
            .expect("access token")
            .to_string();
        // The access token is a JWT for this resource naming Ada.
        let payload: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(access.split('.').nth(1).expect("payload"))
                .expect("base64"),
        )
        .expect("claims");
        assert_eq!(payload["aud"], mcp.as_str());
        assert_eq!(payload["sub"], ADA);
        assert_eq!(payload["tenant"], "acme");
        refresh_tokens.push((
            client_id,
            got["refresh_token"].as_str().expect("refresh").to_string(),
            access,
        ));
    }

    // Refresh: rotated on use; the spent one presented again revokes the whole family.
    let (client, first, access) = refresh_tokens[0].clone();
    let (status, v) = refresh(&base, &client, &first).await;
    assert_eq!(status, 200, "{v}");
    let second = v["refresh_token"].as_str().expect("rotated").to_string();
    assert_ne!(second, first);
    assert_eq!(
        search_with(&base, v["access_token"].as_str().unwrap_or(""))
            .await
            .0,
        200
    );
    let (status, v) = refresh(&base, &client, &first).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    let (status, v) = refresh(&base, &client, &second).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "the family: {v}"
    );
    let (status, challenge) = search_with(&base, &access).await;
    assert_eq!(status, 401, "access tokens of the family end too");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // The other sign-in (the DCR client) is untouched.
    let (client2, refresh2, _) = refresh_tokens[1].clone();
    assert_eq!(refresh(&base, &client2, &refresh2).await.0, 200);

    let log = d.stop();
    let rows = audit_rows(&env);
    assert!(
        rows.iter().any(|r| r.event.connector == "a1"
            && r.event.principal.as_deref() == Some(format!("oauth:{ADA}").as_str())),
        "the action's rows name the signed-in person"
    );
    let signed_in = rows
        .iter()
        .filter(|r| {
            r.event.event == "oauth-sign-in"
                && r.event.decision == "allow"
                && r.event.principal.as_deref() == Some(format!("oauth:{ADA}").as_str())
        })
        .count();
    assert_eq!(signed_in, 2, "each sign-in is audited");
    assert!(
        rows.iter()
            .any(|r| r.event.event == "oauth-revoked" && r.event.reason.contains("replayed")),
        "the replay that ended a grant is audited"
    );
    assert!(
        !rows.iter().any(|r| r.event.reason.contains(&canary)),
        "the API token in an audit row"
    );
    assert!(!log.contains(&canary), "the API token in the daemon's log");
    for (_, r, a) in &refresh_tokens {
        assert!(
            !log.contains(r.as_str()) && !log.contains(a.as_str()),
            "a token in the log"
        );
    }
}

/// What the spec says an authorization server must refuse, refused with its errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_server_refuses_what_the_spec_says_it_must() {
    let (env, base) = setup();
    let canary = env.create_token(ADA, "acme", &["eng"], false);
    let d = env.serve();
    let client = register(&base).await;

    // Registration: redirect URIs that are neither https nor loopback are refused.
    let (status, v) = http(
        "POST",
        &format!("{base}/oauth/register"),
        Some(json!({"redirect_uris": ["http://evil.example/cb"]}).to_string()),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_redirect_uri")),
        "{v}"
    );

    // A redirect URI not the client's, exactly: refused here, never redirected to.
    for wrong in [
        "http://127.0.0.1:1/callback/x",
        "http://127.0.0.1:2/callback",
    ] {
        let a = authorize(&base, &client, &[("redirect_uri", wrong)]).await;
        assert_eq!(a.status, 400, "{wrong}: {}", a.body);
        assert!(!a.headers.contains_key("location"));
    }
    // An unknown client, or a metadata document URL that is not allowed: refused here.
    assert_eq!(authorize(&base, "dcr_nobody", &[]).await.status, 400);
    assert_eq!(
        authorize(&base, "http://10.1.2.3/client.json", &[])
            .await
            .status,
        400
    );
    // No PKCE, plain PKCE, another resource, none of our scopes: back to the client with the error.
    for (extra, error) in [
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (
            vec![("resource", "https://another.example/mcp")],
            "invalid_target",
        ),
        (vec![("scope", "openid profile")], "invalid_scope"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
    ] {
        let a = authorize(&base, &client, &extra).await;
        assert_eq!(a.status, 303, "{extra:?}: {}", a.body);
        let q = a.location();
        assert_eq!(q.get("error").map(String::as_str), Some(error), "{extra:?}");
        assert_eq!(q.get("state").map(String::as_str), Some("st-1"));
    }

    // The page: strict CSP, no framing, a SameSite cookie; a post without that cookie is
    // refused; a wrong token shows the page again.
    let page = authorize(&base, &client, &[]).await;
    assert_eq!(page.status, 200);
    let csp = &page.headers["content-security-policy"];
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self' http://127.0.0.1"),
        "{csp}"
    );
    assert!(
        page.body.contains("tester") && page.body.contains("search"),
        "consent names the client and scopes"
    );
    let cookie = &page.headers["set-cookie"];
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let forged = send(
        "POST",
        &format!("{base}/oauth/authorize"),
        None,
        Some(&[
            ("request", &hidden(&page.body, "request")),
            ("csrf", &hidden(&page.body, "csrf")),
            ("token", &canary),
            ("decision", "allow"),
        ]),
    )
    .await;
    assert_eq!(forged.status, 403, "no CSRF cookie: {}", forged.body);
    let wrong = sign_in(&base, &page, "alk_not-a-token").await;
    assert_eq!(wrong.status, 200);
    assert!(wrong.body.contains("not valid"), "{}", wrong.body);
    let back = sign_in(&base, &page, &canary).await;
    assert_eq!(back.status, 303, "the same sign-in goes on: {}", back.body);

    // A wrong PKCE verifier, or another redirect URI: invalid_grant.
    let c = back.location()["code"].clone();
    let (status, v) = by_code(&base, &client, &c, &format!("{VERIFIER}x"), REDIRECT).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    let c = code(&base, &client, &canary).await;
    let (status, v) = by_code(&base, &client, &c, VERIFIER, "http://127.0.0.1:1/other").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    // Another resource: invalid_target.
    let c = code(&base, &client, &canary).await;
    let (status, v) = exchange(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
            ("client_id", &client),
            ("code_verifier", VERIFIER),
            ("resource", "https://another.example/mcp"),
        ],
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_target")),
        "{v}"
    );
    // The right one: tokens. Replaying the code revokes what it gave.
    let (status, tokens) = by_code(&base, &client, &c, VERIFIER, REDIRECT).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "search read");
    let access = tokens["access_token"].as_str().expect("access").to_string();
    assert_eq!(search_with(&base, &access).await.0, 200);
    let (status, v) = by_code(&base, &client, &c, VERIFIER, REDIRECT).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    assert_eq!(
        search_with(&base, &access).await.0,
        401,
        "a replayed code ends its grant"
    );

    // Tampered, expired and other-audience tokens: 401 invalid_token with the reason.
    let c = code(&base, &client, &canary).await;
    let (_, tokens) = by_code(&base, &client, &c, VERIFIER, REDIRECT).await;
    let access = tokens["access_token"].as_str().expect("access").to_string();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).expect("payload"))
            .expect("b64"),
    )
    .expect("claims");
    let parts: Vec<&str> = access.split('.').collect();
    let mut richer = claims.clone();
    richer["groups"] = json!(["eng", "bob"]);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(richer.to_string().as_bytes()),
        parts[2]
    );
    // The installation's own key (sealed in its store), to sign tokens that only fail on
    // their claims.
    let store = airlock::store::backend::Store::open(&env.data_dir(), None)
        .await
        .expect("store");
    let key = airlock::api::authorization::keys::load_or_make(&store, &env.data_dir())
        .await
        .expect("key");
    let mut expired = claims.clone();
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    let mut other = claims.clone();
    other["aud"] = json!("https://another.example/mcp");
    for (what, token, wants) in [
        ("tampered", tampered, "signature"),
        ("expired", key.sign(&expired).expect("sign"), "expired"),
        (
            "another audience",
            key.sign(&other).expect("sign"),
            "another resource",
        ),
    ] {
        let (status, challenge) = search_with(&base, &token).await;
        assert_eq!(status, 401, "{what}");
        assert!(
            challenge.contains("error=\"invalid_token\"") && challenge.contains(wants),
            "{what}: {challenge}"
        );
    }
    assert_eq!(search_with(&base, &access).await.0, 200);
    let (status, headers, _) = http_raw("GET", &format!("{base}/v1/audit"), Some(&access)).await;
    assert_eq!(
        status, 403,
        "admin routes never take access tokens: {headers:?}"
    );

    // Revocation (RFC 7009): the refresh token ends the sign-in, access token included.
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let r = send(
        "POST",
        &format!("{base}/oauth/revoke"),
        None,
        Some(&[("token", &refresh_token), ("client_id", &client)]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(refresh(&base, &client, &refresh_token).await.0, 400);
    assert_eq!(search_with(&base, &access).await.0, 401);

    // Revoking the API token ends every sign-in made with it.
    let c = code(&base, &client, &canary).await;
    let (_, tokens) = by_code(&base, &client, &c, VERIFIER, REDIRECT).await;
    let access = tokens["access_token"].as_str().expect("access").to_string();
    assert_eq!(search_with(&base, &access).await.0, 200);
    let out = env.airlock(&["tokens", "revoke", ADA], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, challenge) = search_with(&base, &access).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("revoked"), "{challenge}");
    let (status, v) = refresh(
        &base,
        &client,
        tokens["refresh_token"].as_str().unwrap_or(""),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );

    let log = d.stop();
    assert!(!log.contains(&canary), "the API token in the daemon's log");
    assert!(
        !log.contains("alr_") && !log.contains("alc_"),
        "a refresh token or code in the log"
    );
}

/// Runs the MCP Inspector CLI (npm `@modelcontextprotocol/inspector`, in target/inspector) on
/// `/mcp` with `args`, as the person's browser: when it prints the authorization URL, opens the
/// sign-in page, pastes `token` and follows the redirect to the CLI's loopback callback.
/// Returns what the CLI printed (JSON).
async fn inspector(base: &str, token: &str, args: &[&str]) -> Value {
    use tokio::io::AsyncBufReadExt as _;
    let bin = root().join("target/inspector/node_modules/.bin/mcp-inspector");
    assert!(
        bin.exists(),
        "{} missing: run `make test` (it installs the MCP Inspector)",
        bin.display()
    );
    let home = tempfile::tempdir().expect("home");
    // No real browser: the test is the browser.
    let fake_bin = home.path().join("bin");
    std::fs::create_dir_all(&fake_bin).expect("bin");
    let opener = fake_bin.join("xdg-open");
    std::fs::write(&opener, "#!/bin/sh\nexit 0\n").expect("xdg-open");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!(
        "{}:{}",
        fake_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let callback = format!("http://127.0.0.1:{}/oauth/callback", free_port());
    let mut child = tokio::process::Command::new(&bin)
        .arg("--cli")
        .arg(format!("{base}/mcp"))
        .args(args)
        .args(["--callback-url", &callback])
        .env("HOME", home.path())
        .env("PATH", path)
        .env("MCP_AUTO_OPEN_ENABLED", "true")
        .env("MCP_INSPECTOR_SECRET_STORE", "memory")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the MCP Inspector CLI");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = String::new();
    let url = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if let Some((_, rest)) = line.split_once("navigate to: ") {
                return Some(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("the Inspector asked for no sign-in: {seen}"));
    let page = send("GET", &url, None, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let back = sign_in(base, &page, token).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let to = back.headers.get("location").cloned().unwrap_or_default();
    assert!(to.starts_with(&callback), "{to}");
    assert_eq!(
        send("GET", &to, None, None).await.status,
        200,
        "the CLI's callback"
    );
    let rest = tokio::spawn(async move {
        let mut s = String::new();
        while let Ok(Some(l)) = lines.next_line().await {
            s.push_str(&l);
            s.push('\n');
        }
        s
    });
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the Inspector finishes")
        .expect("Inspector output");
    let stderr = rest.await.unwrap_or_default();
    assert!(out.status.success(), "Inspector failed: {seen}{stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("Inspector JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The MCP Inspector CLI, a client nobody here wrote, signs in at Airlock's own authorization
/// server (dynamic registration, code flow with PKCE, its own loopback callback) and calls
/// `search` and an action as the person, who is named in the audit rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_inspector_cli_signs_in_at_airlocks_own_server_and_searches_as_the_person() {
    let (env, base) = setup();
    let canary = env.create_token(ADA, "acme", &["eng"], false);
    let d = env.serve();
    let found = inspector(
        &base,
        &canary,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "search",
            "--tool-arg",
            "query=zeppelin",
        ],
    )
    .await;
    let text = found.to_string();
    assert!(text.contains("plan"), "{found}");
    assert!(
        !text.contains("secret") && !text.contains("beta"),
        "{found}"
    );
    let echoed = inspector(
        &base,
        &canary,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "a1__echo",
            "--tool-arg",
            "x=1",
        ],
    )
    .await;
    assert_ne!(echoed["isError"], true, "{echoed}");
    let log = d.stop();
    assert!(
        audit_rows(&env).iter().any(|r| r.event.connector == "a1"
            && r.event.principal.as_deref() == Some(format!("oauth:{ADA}").as_str())),
        "the action's rows name the signed-in person"
    );
    assert!(!log.contains(&canary), "the API token in the daemon's log");
}

/// Two daemons on one PostgreSQL database behind one address act as one authorization server:
/// the sign-in page shown by one is answered at the other, the code is exchanged at either, and
/// the access token (signed with the one key kept sealed in the store) works at both; `airlock
/// oauth grants` lists the sign-in and `airlock oauth revoke PRINCIPAL` ends it at both at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_database_act_as_one_authorization_server() {
    let pg = tokio::task::spawn_blocking(pg_cluster::PgCluster::start)
        .await
        .unwrap();
    pg.create_database("signin").unwrap();
    let url = pg.url_of("signin");
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    // Both name the same resource: the address clients use (the load balancer's; A's here).
    let config = format!(
        "[store]\nurl = \"{url}\"\n{}\n[oauth]\nauthorization_server = \"self\"\nresource = \"{base_a}/mcp\"\nallow_insecure = true\nallow_loopback_client_ids = true\n",
        two_tenant_config()
    );
    let (a, b) = (Env::new(&config), Env::new(&config));
    a.listen_at(port_a);
    b.listen_at(port_b);
    let api_token = a.create_token(ADA, "acme", &["eng"], false);
    // Every daemon of an installation is handed the same vault master key.
    let master = "07".repeat(32);
    let env = [("AIRLOCK_MASTER_KEY", master.as_str())];
    let (da, db) = (a.serve_with(&env), b.serve_with(&env));

    let client = register(&base_b).await;
    let page = authorize(&base_a, &client, &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // The form goes to B (the browser's next request reached the other daemon).
    let back = sign_in(&base_b, &page, &api_token).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let code = back.location()["code"].clone();
    // The same form posted again (to A) signs in no second time.
    let again = sign_in(&base_a, &page, &api_token).await;
    assert_eq!(again.status, 400, "{}", again.body);
    let (status, tokens) = by_code(&base_a, &client, &code, VERIFIER, REDIRECT).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().expect("access").to_string();
    assert_eq!(search_with(&base_a, &access).await.0, 200);
    assert_eq!(
        search_with(&base_b, &access).await.0,
        200,
        "B checks A's token"
    );
    let (s_a, jwks_a) = http("GET", &format!("{base_a}/oauth/jwks"), None).await;
    let (s_b, jwks_b) = http("GET", &format!("{base_b}/oauth/jwks"), None).await;
    assert_eq!((s_a, s_b), (200, 200));
    assert_eq!(jwks_a, jwks_b, "one key for the installation");
    for e in [&a, &b] {
        assert!(
            !e.data_dir().join("oauth-signing-key.p8").exists(),
            "the key is not a file in a data directory"
        );
    }

    let listed = b.airlock(&["oauth", "grants", "--json"], None);
    assert!(listed.status.success(), "{listed:?}");
    let grants: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(grants.as_array().map(Vec::len), Some(1), "{grants}");
    assert_eq!(grants[0]["principal"], ADA);
    assert_eq!(grants[0]["client_id"], client.as_str());
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(!text.contains(&api_token) && !text.contains(&access));
    let revoked = a.airlock(&["oauth", "revoke", ADA], None);
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(search_with(&base_a, &access).await.0, 401);
    assert_eq!(search_with(&base_b, &access).await.0, 401, "ended at both");
    let refreshed = refresh(&base_b, &client, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.0, 400, "{}", refreshed.1);
    let none = a.airlock(&["oauth", "grants"], None);
    assert!(String::from_utf8_lossy(&none.stdout).contains("no live sign-ins"));
    let all = a.airlock(&["oauth", "grants", "--all"], None);
    assert!(
        String::from_utf8_lossy(&all.stdout).contains("revoked by"),
        "{all:?}"
    );
    let unknown = a.airlock(&["oauth", "revoke", "nobody"], None);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no live sign-in"));
    for log in [da.stop(), db.stop()] {
        assert!(!log.contains(&api_token) && !log.contains(&access));
    }
}

/// What a browser page at `origin` may read: the preflight's answer for `path`.
async fn preflight(base: &str, path: &str, origin: &str) -> Option<String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = hyper::Request::builder()
        .method("OPTIONS")
        .uri(format!("{base}{path}"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = client.request(req).await.expect("http");
    resp.headers()
        .get("access-control-allow-origin")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
}

/// A browser-based MCP client at any origin may discover the authorization server and use its
/// token endpoint; the API and `/mcp` answer only `[server] cors_origins`; the sign-in page no
/// other origin at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_pages_reach_the_oauth_endpoints_from_any_origin_and_the_api_only_from_listed_ones()
{
    let (env, base) = setup();
    let text = std::fs::read_to_string(&env.config).unwrap().replacen(
        "data_dir = \"data\"\n",
        "data_dir = \"data\"\ncors_origins = [\"https://app.example\"]\n",
        1,
    );
    std::fs::write(&env.config, text).unwrap();
    let _d = env.serve();
    let evil = "https://evil.example";
    for open in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/oauth/token",
        "/oauth/register",
        "/oauth/revoke",
    ] {
        assert_eq!(
            preflight(&base, open, evil).await.as_deref(),
            Some(evil),
            "{open}"
        );
    }
    for api in ["/mcp", "/v1/search"] {
        assert_eq!(
            preflight(&base, api, "https://app.example")
                .await
                .as_deref(),
            Some("https://app.example"),
            "{api}"
        );
        assert_eq!(preflight(&base, api, evil).await, None, "{api}");
    }
    assert_eq!(preflight(&base, "/oauth/authorize", evil).await, None);
    assert_eq!(
        preflight(&base, "/oauth/authorize", "https://app.example").await,
        None
    );
    // A real answer (not only the preflight) carries the header and exposes the challenge.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("{base}/mcp"))
        .header("origin", "https://app.example")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    let resp = client.request(req).await.expect("http");
    assert_eq!(resp.status(), 401);
    let h = resp.headers();
    assert_eq!(
        h.get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(&b"https://app.example"[..])
    );
    let exposed = h
        .get("access-control-expose-headers")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_lowercase())
        .unwrap_or_default();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
}

/// The cookie named `name` among those a page set.
fn cookie_named(page: &Answer, name: &str) -> String {
    page.cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", page.cookies))
        .clone()
}

/// Airlock's own server signs people in through the company's OpenID Connect provider: the
/// page offers only "Sign in with …" (no token field), the provider's sign-in comes back to
/// `/oauth/callback`, the id_token is checked (signature, issuer, audience, nonce) and its person
/// searches with their groups; a provider link finished in another browser signs nobody in; an
/// id_token that names nobody is refused; the client secret never reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_the_companys_openid_provider_and_searches_as_themselves() {
    const SECRET: &str = "upstream-client-secret-canary-7f3a";
    let idp = fake_saas::spawn_oidc("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("oidc fake");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    idp.add_client(
        "airlock-signin",
        SECRET,
        &[format!("{base}/oauth/callback")],
    );
    idp.sign_in_as(json!({"sub": "00u-ada", "preferred_username": ADA, "groups": ["eng"]}));
    let config = format!(
        "{}\n[oauth]\nauthorization_server = \"self\"\nresource = \"{base}/mcp\"\nallow_insecure = true\n\n[oauth.upstream]\nissuer = \"{}\"\nclient_id = \"airlock-signin\"\nclient_secret = \"secret:signin\"\ntenant = \"acme\"\ndisplay_name = \"Contoso\"\nallow_private = true\nallow_insecure = true\n",
        two_tenant_config(),
        idp.issuer()
    );
    let env = Env::new(&config);
    env.listen_at(port);
    env.set_secret("signin", SECRET);
    store_docs(
        &env,
        "a1",
        &[
            doc("plan", "Zeppelin plan", "zeppelin zeppelin", &["eng"]),
            doc("secret", "Zeppelin note", "only bob reads this", &["bob"]),
        ],
    );
    let api_token = env.create_token(ADA, "acme", &["eng"], false);
    let d = env.serve();
    let client = register(&base).await;

    // The page: only the organisation's sign-in.
    let page = authorize(&base, &client, &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Sign in with Contoso"), "{}", page.body);
    assert!(!page.body.contains("name=\"token\""), "no token field");
    let csp = page.headers["content-security-policy"].clone();
    assert!(
        csp.contains(&idp.issuer()),
        "form-action allows the provider: {csp}"
    );
    let (csrf_cookie, bind_cookie) = (
        cookie_named(&page, "airlock_oauth_csrf"),
        cookie_named(&page, "airlock_oauth_bind"),
    );
    let (request, csrf) = (hidden(&page.body, "request"), hidden(&page.body, "csrf"));
    let form = |decision: &'static str| {
        vec![
            ("request", request.clone()),
            ("csrf", csrf.clone()),
            ("token", api_token.clone()),
            ("decision", decision.to_string()),
        ]
    };
    let post = |decision: &'static str| {
        let f = form(decision);
        let base = base.clone();
        let cookie = csrf_cookie.clone();
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send(
                "POST",
                &format!("{base}/oauth/authorize"),
                Some(&cookie),
                Some(&pairs),
            )
            .await
        }
    };
    // The token form is off when the organisation signs people in.
    let refused = post("allow").await;
    assert_eq!(refused.status, 400, "{}", refused.body);

    let to_idp = post("upstream").await;
    assert_eq!(to_idp.status, 303, "{}", to_idp.body);
    let idp_url = to_idp.headers["location"].clone();
    assert!(idp_url.starts_with(&idp.issuer()), "{idp_url}");
    for p in [
        "nonce=",
        "code_challenge_method=S256",
        "scope=openid",
        "state=",
    ] {
        assert!(idp_url.contains(p), "{p} in {idp_url}");
    }
    let from_idp = send("GET", &idp_url, None, None).await;
    assert_eq!(from_idp.status, 302, "{}", from_idp.body);
    let callback = from_idp.headers["location"].clone();
    assert!(
        callback.starts_with(&format!("{base}/oauth/callback?")),
        "{callback}"
    );

    // Finished in another browser (no bind cookie): nobody is signed in.
    let elsewhere = send("GET", &callback, None, None).await;
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.body);
    assert!(
        elsewhere.body.contains("another browser"),
        "{}",
        elsewhere.body
    );

    // The browser that started it finishes it.
    let back = send("GET", &callback, Some(&bind_cookie), None).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let q = back.location();
    assert_eq!(q.get("state").map(String::as_str), Some("st-1"), "{q:?}");
    let (status, v) = by_code(&base, &client, &q["code"], VERIFIER, REDIRECT).await;
    assert_eq!(status, 200, "{v}");
    let access = v["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let (status, hits) = http_auth(
        "POST",
        &format!("{base}/v1/search"),
        Some(&access),
        Some(json!({"query": "zeppelin"}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{hits}");
    let text = hits.to_string();
    assert!(
        text.contains("Zeppelin plan"),
        "eng may read the plan: {text}"
    );
    assert!(
        !text.contains("Zeppelin note"),
        "only bob reads the note: {text}"
    );
    // The same callback again: the sign-in is spent.
    let again = send("GET", &callback, Some(&bind_cookie), None).await;
    assert_eq!(again.status, 400, "{}", again.body);

    // A person the provider names by no configured claim is refused back to the client.
    idp.sign_in_as(json!({"sub": "00u-nobody"}));
    let page = authorize(&base, &client, &[]).await;
    let bind = cookie_named(&page, "airlock_oauth_bind");
    let (request, csrf) = (hidden(&page.body, "request"), hidden(&page.body, "csrf"));
    let to_idp = send(
        "POST",
        &format!("{base}/oauth/authorize"),
        Some(&cookie_named(&page, "airlock_oauth_csrf")),
        Some(&[
            ("request", &request),
            ("csrf", &csrf),
            ("decision", "upstream"),
        ]),
    )
    .await;
    let from_idp = send("GET", &to_idp.headers["location"], None, None).await;
    let back = send("GET", &from_idp.headers["location"], Some(&bind), None).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let q = back.location();
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("access_denied"),
        "{q:?}"
    );
    assert!(q["error_description"].contains("names nobody"), "{q:?}");

    let log = d.stop();
    assert!(!log.contains(SECRET), "the client secret is in the log");
    let rows = audit_rows(&env);
    assert!(
        rows.iter().any(|r| r.event.event == "oauth-sign-in"
            && r.event.decision == "allow"
            && r.event.principal.as_deref() == Some(&format!("oauth:{ADA}"))),
        "the sign-in is audited under the person"
    );
    assert!(
        rows.iter()
            .any(|r| r.event.event == "oauth-sign-in" && r.event.reason.contains("another browser")),
        "the other browser's attempt is audited"
    );
    let all = serde_json::to_string(&rows).expect("rows");
    assert!(
        !all.contains(SECRET),
        "the client secret is in an audit row"
    );
}
