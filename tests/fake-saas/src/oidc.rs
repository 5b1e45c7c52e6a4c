//! An OpenID Connect provider and OAuth 2.0 authorization server, as an MCP client and a resource
//! server meet it: discovery (`/.well-known/openid-configuration` and
//! `/.well-known/oauth-authorization-server`, whose `issuer` is the fake's base URL), the signing
//! keys (`/discovery/keys`, a JWK set), dynamic client registration (`POST /register`, public
//! clients), the authorization endpoint (`GET /authorize`: code flow with PKCE S256 only; the
//! person is signed in at once — the one set by [`RunningFake::sign_in_as`], Ada by default —
//! and redirected back with a one-time code) and the token endpoint (`POST /token`: the code and
//! its verifier for an ES256 access token whose `aud` is the `resource` asked for, RFC 8707).
//! With `openid` among the scopes, the token response also carries an id_token for the client
//! (`aud` its id, the `nonce` of the authorization request): a relying party signs people in
//! with it. A confidential client ([`RunningFake::add_client`]) must send its secret.
//! Tests may also mint tokens directly ([`RunningFake::mint`]); `rotate_key` switches to a new
//! key, published beside the old one, as identity providers do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::server::{self, Core, FakeState, RunningFake};

/// One signing key: its id, and the PKCS#8 document ring signs with.
struct Key {
    kid: String,
    pkcs8: Vec<u8>,
}

impl Key {
    fn new(kid: &str) -> Key {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("a P-256 key")
            .as_ref()
            .to_vec();
        Key {
            kid: kid.into(),
            pkcs8,
        }
    }

    fn pair(&self) -> EcdsaKeyPair {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.pkcs8,
            &SystemRandom::new(),
        )
        .expect("our own key")
    }

    /// The public key as a JWK: the uncompressed point is 0x04 || X || Y.
    fn jwk(&self) -> Value {
        let pair = self.pair();
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    }
}

/// Shared state of a running OIDC provider fake.
pub struct Oidc {
    core: Core,
    base_url: String,
    /// Published keys; the last one signs.
    keys: Mutex<Vec<Key>>,
    /// Registered clients: id → redirect URIs.
    clients: Mutex<HashMap<String, Vec<String>>>,
    /// Confidential clients' secrets: id → secret.
    secrets: Mutex<HashMap<String, String>>,
    /// Codes not yet exchanged.
    codes: Mutex<HashMap<String, Grant>>,
    /// Who `/authorize` signs in: the claims every token it leads to carries.
    person: Mutex<Value>,
}

/// What an authorization code stands for.
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    resource: Option<String>,
    nonce: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).expect("random");
    hex::encode(b)
}

/// `POST /register` (RFC 7591): public clients with their redirect URIs.
async fn register(State(o): State<Arc<Oidc>>, Json(v): Json<Value>) -> Response {
    let uris = crate::notify::strings(&v["redirect_uris"]);
    if uris.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uris is required",
        );
    }
    let id = format!("client-{}", random_id());
    lock(&o.clients).insert(id.clone(), uris.clone());
    let mut out = v.clone();
    out["client_id"] = json!(id);
    out["client_id_issued_at"] = json!(crate::common::now_ms() / 1000);
    out["token_endpoint_auth_method"] = json!("none");
    (StatusCode::CREATED, Json(out)).into_response()
}

/// `GET /authorize`: checks the client, its redirect URI and PKCE, signs the person in and
/// redirects back with a code.
async fn authorize(
    State(o): State<Arc<Oidc>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (client_id, redirect_uri) = (get("client_id"), get("redirect_uri"));
    let known = lock(&o.clients)
        .get(&client_id)
        .is_some_and(|uris| uris.contains(&redirect_uri));
    if !known {
        // Never redirect to a URI the client did not register.
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unknown client or redirect_uri",
        );
    }
    if get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the code flow with PKCE S256 is required",
        );
    }
    let code = random_id();
    lock(&o.codes).insert(
        code.clone(),
        Grant {
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge: get("code_challenge"),
            scope: get("scope"),
            resource: q.get("resource").cloned(),
            nonce: q.get("nonce").cloned(),
        },
    );
    let mut back = format!("{redirect_uri}?code={code}");
    if let Some(state) = q.get("state") {
        let state: String = form_urlencoded::byte_serialize(state.as_bytes()).collect();
        back.push_str(&format!("&state={state}"));
    }
    (StatusCode::FOUND, [(header::LOCATION, back)]).into_response()
}

/// `POST /token`: an authorization code and its PKCE verifier for an access token.
async fn token(State(o): State<Arc<Oidc>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "authorization_code only",
        );
    }
    let Some(g) = lock(&o.codes).remove(&get("code")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used code",
        );
    };
    use sha2::Digest as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let verifier = b64(&sha2::Sha256::digest(get("code_verifier").as_bytes()));
    if g.client_id != get("client_id")
        || g.redirect_uri != get("redirect_uri")
        || verifier != g.challenge
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "client, redirect_uri or code_verifier does not match",
        );
    }
    if let Some(secret) = lock(&o.secrets).get(&g.client_id)
        && *secret != get("client_secret")
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let openid = g.scope.split_whitespace().any(|s| s == "openid");
    let now = crate::common::now_ms() / 1000;
    let id_token = openid.then(|| {
        let mut claims = lock(&o.person).clone();
        claims["iss"] = json!(o.base_url);
        claims["aud"] = json!(g.client_id);
        claims["iat"] = json!(now);
        claims["exp"] = json!(now + 600);
        if let Some(n) = &g.nonce {
            claims["nonce"] = json!(n);
        }
        sign(lock(&o.keys).last().expect("a key"), &claims)
    });
    // A sign-in only (no resource asked for): the access token is for the client itself.
    let resource = f.get("resource").cloned().or(g.resource);
    let resource = match (resource, openid) {
        (Some(r), _) => Some(r),
        (None, true) => Some(g.client_id.clone()),
        (None, false) => None,
    };
    let Some(resource) = resource else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "name the resource (RFC 8707)",
        );
    };
    let mut claims = lock(&o.person).clone();
    claims["iss"] = json!(o.base_url);
    claims["aud"] = json!(resource);
    claims["scp"] = json!(g.scope);
    claims["client_id"] = json!(g.client_id);
    claims["iat"] = json!(now);
    claims["nbf"] = json!(now - 5);
    claims["exp"] = json!(now + 600);
    let keys = lock(&o.keys);
    let access = sign(keys.last().expect("a key"), &claims);
    let mut reply = json!({"access_token": access, "token_type": "Bearer", "expires_in": 600, "scope": g.scope});
    if let Some(t) = id_token {
        reply["id_token"] = json!(t);
    }
    Json(reply).into_response()
}

impl FakeState for Oidc {
    fn core(&self) -> &Core {
        &self.core
    }
}

async fn count(State(o): State<Arc<Oidc>>, req: Request, next: Next) -> Response {
    o.core.record(req.uri().path());
    next.run(req).await
}

async fn discovery(State(o): State<Arc<Oidc>>) -> Json<Value> {
    let b = &o.base_url;
    Json(json!({
        "issuer": b,
        "jwks_uri": format!("{b}/discovery/keys"),
        "authorization_endpoint": format!("{b}/authorize"),
        "token_endpoint": format!("{b}/token"),
        "registration_endpoint": format!("{b}/register"),
        "grant_types_supported": ["authorization_code"],
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn keys(State(o): State<Arc<Oidc>>) -> Json<Value> {
    let keys: Vec<Value> = o
        .keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(Key::jwk)
        .collect();
    Json(json!({ "keys": keys }))
}

/// Starts the provider on `listen` (port 0 picks a free port); its issuer is its base URL.
pub async fn spawn_oidc(listen: SocketAddr) -> std::io::Result<RunningFake<Oidc>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let state = Arc::new(Oidc {
        core: Core::new(None),
        base_url: base_url.clone(),
        keys: Mutex::new(vec![Key::new("key-1")]),
        clients: Mutex::default(),
        secrets: Mutex::default(),
        codes: Mutex::default(),
        person: Mutex::new(
            json!({"sub": "00u-ada", "preferred_username": "ada.adams@contoso.com",
            "groups": ["eng"]}),
        ),
    });
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/register", post(register))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/discovery/keys", get(keys))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state.clone());
    Ok(server::start(listener, base_url, state, router))
}

impl RunningFake<Oidc> {
    /// The issuer (`iss`) of the tokens it mints.
    pub fn issuer(&self) -> String {
        self.base_url.clone()
    }

    /// An ES256 JWT with `claims`, signed with the current key.
    pub fn mint(&self, claims: &Value) -> String {
        let keys = self.state.keys.lock().unwrap_or_else(|e| e.into_inner());
        let key = keys.last().expect("a key");
        sign(key, claims)
    }

    /// A token signed with a key the provider never published (a forger's).
    pub fn mint_with_unpublished_key(&self, claims: &Value) -> String {
        sign(&Key::new("key-1"), claims)
    }

    /// The person `/authorize` signs in from now on (their claims: `sub`, `preferred_username`,
    /// `groups`, ...).
    pub fn sign_in_as(&self, claims: Value) {
        *lock(&self.state.person) = claims;
    }

    /// Registers a confidential client (a relying party that signs people in with its secret).
    pub fn add_client(&self, id: &str, secret: &str, redirect_uris: &[String]) {
        lock(&self.state.clients).insert(id.to_string(), redirect_uris.to_vec());
        lock(&self.state.secrets).insert(id.to_string(), secret.to_string());
    }

    /// Publishes a new key and signs with it from now on (the old one stays published).
    pub fn rotate_key(&self) {
        let mut keys = self.state.keys.lock().unwrap_or_else(|e| e.into_inner());
        let n = keys.len() + 1;
        keys.push(Key::new(&format!("key-{n}")));
    }
}

fn sign(key: &Key, claims: &Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": key.kid});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key
        .pair()
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("signing");
    format!("{input}.{}", b64(sig.as_ref()))
}
