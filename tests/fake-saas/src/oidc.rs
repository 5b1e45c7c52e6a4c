//! An OpenID Connect provider, the part a resource server meets: discovery
//! (`/.well-known/openid-configuration`, whose `issuer` is the fake's base URL) and the signing
//! keys (`/discovery/keys`, a JWK set). Access tokens are ES256 JWTs minted by the test with
//! [`RunningFake::mint`] under the fake's key (made fresh at start); `rotate_key` switches to a
//! new key, published beside the old one, as identity providers do.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
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
    });
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
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
