//! Delegated OAuth to upstreams (`auth = { type = "oauth2-user", … }`): a person connects their
//! own upstream account once (authorization code + PKCE S256, a single-use `state` bound to the
//! principal that started the connect), and the gate then injects that person's access token
//! into the requests of invocations that run on their behalf — so the upstream itself decides
//! what they may see. Never another person's token: the token is looked up by the invocation's
//! own principal, and an invocation without one (a scheduled sync) is refused.
//!
//! Tokens are sealed with the vault's key before they reach the store (the ciphertext is bound
//! to its (connector, principal) pair) and read back on every request, so a disconnect on any
//! daemon stops the next request at once. An expired access token is refreshed under a lock per
//! connection; a rotated refresh token replaces the old one only if nobody changed the
//! connection meanwhile (compare-and-swap on its version), so the old one is never used again.
//!
//! The protocol's messages come from the `oauth2` crate; they travel through the grant's own
//! pooled client (the same address rules, private-network setting and trust as its requests).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::HeaderValue;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use sha2::{Digest, Sha256};

use super::grant::UserOAuth;
use super::net::UpstreamClient;
use super::oauth_exchange::{self, Client, NewClient, TokenReply, send};
use crate::scrub::Scrubber;
use crate::store::backend::Store;
use crate::store::connections::{PendingConnect, UserConnection};
use crate::store::vault::{Sealed, Vault};

/// How long a started connect waits for its callback.
const CONNECT_TTL: Duration = Duration::from_secs(600);
/// Refresh this long before the access token's stated expiry (at most a tenth of its life).
/// The stored expiry is the refresh time: the stated one less this margin.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The refresh lock of each (connector, principal), held weakly: gone when nobody refreshes.
type RefreshLocks = HashMap<(String, String), Weak<tokio::sync::Mutex<()>>>;

/// What every `oauth2-user` grant of the daemon shares: the store and the vault's key.
pub struct Delegated {
    store: Store,
    vault: Vault,
    /// One refresh at a time per (connector, principal) in this process.
    refreshing: std::sync::Mutex<RefreshLocks>,
}

impl Delegated {
    pub fn new(store: Store, vault: Vault) -> Delegated {
        Delegated {
            store,
            vault,
            refreshing: Default::default(),
        }
    }

    fn refresh_lock(&self, connector: &str, principal: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        let key = (connector.to_string(), principal.to_string());
        if let Some(l) = map.get(&key).and_then(Weak::upgrade) {
            return l;
        }
        let l = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key, Arc::downgrade(&l));
        l
    }

    /// The vault name a connection's tokens are sealed under: bound to connector and principal,
    /// so a row copied to another person does not decrypt.
    fn seal_name(kind: &str, a: &str, b: &str) -> String {
        let d = Sha256::digest(format!("{a}\0{b}").as_bytes());
        format!("{kind}.{}", &hex::encode(d)[..40])
    }
}

/// A person's tokens, as sealed together in one row.
#[derive(serde::Serialize, serde::Deserialize)]
struct Tokens {
    access: String,
    refresh: Option<String>,
}

/// Why a person's token cannot be used. Messages never carry a token.
#[derive(Debug, thiserror::Error)]
pub enum UserTokenError {
    #[error(
        "the grant uses the caller's own `{connector}` account (oauth2-user), and an invocation without a principal (a scheduled or background sync) has none; sync through a grant with the connector's own credentials"
    )]
    NoPrincipal { connector: String },
    #[error(
        "`{principal}` has not connected a `{connector}` account: connect at GET {path} (then retry)"
    )]
    NotConnected {
        connector: String,
        principal: String,
        path: String,
    },
    #[error("{0}")]
    Failed(String),
}

/// One `oauth2-user` grant: its upstream application, ready to connect people and inject their
/// tokens.
pub struct UserGrant {
    pub connector: String,
    config: Arc<UserOAuth>,
    client_secret: String,
    client: UpstreamClient,
    service: Arc<Delegated>,
    /// The connector's own scrubber: the gate scans its answers for these tokens (reflection),
    /// and it registers each with the daemon's scrubber too.
    scrubber: Scrubber,
}

/// Why a connect's callback connected nothing.
#[derive(Debug)]
pub enum CallbackError {
    /// The state, the code or the upstream's answer was not good (400).
    Bad(String),
    /// The account signed in upstream is not the principal's own (403): a connect link was
    /// finished by someone else.
    NotTheirs { principal: String, message: String },
}

/// The claims of an id_token or the fields of a userinfo answer that name the account.
const ACCOUNT_FIELDS: [&str; 6] = [
    "userPrincipalName",
    "mail",
    "email",
    "preferred_username",
    "upn",
    "unique_name",
];

/// A refresh made, for the audit log (the gate writes it as an `oauth-token` row).
pub struct Refresh {
    pub url: http::Uri,
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
}

/// What the upstream's token endpoint gave.
struct Issued {
    tokens: Tokens,
    expires_ms: Option<i64>,
    scopes: Option<String>,
}

/// A connection as `GET /v1/connections` shows it (never a token).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionStatus {
    pub connector: String,
    pub connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<String>,
    /// When the current access token expires (RFC 3339); it is refreshed on use after that.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refreshable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    pub connect: String,
}

impl UserGrant {
    pub fn new(
        connector: &str,
        config: Arc<UserOAuth>,
        client_secret: String,
        client: UpstreamClient,
        service: Arc<Delegated>,
        scrubber: Scrubber,
    ) -> UserGrant {
        scrubber.add(&client_secret);
        UserGrant {
            connector: connector.to_string(),
            config,
            client_secret,
            client,
            service,
            scrubber,
        }
    }

    /// Where a person connects this connector.
    pub fn connect_path(&self) -> String {
        format!("/v1/connections/{}/authorize", self.connector)
    }

    fn oauth(&self) -> Client {
        let c = &self.config;
        NewClient::new(ClientId::new(c.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.client_secret.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_auth_uri(AuthUrl::from_url(c.authorize_url.clone()))
            .set_token_uri(TokenUrl::from_url(c.token_url.clone()))
            .set_redirect_uri(RedirectUrl::from_url(c.redirect_uri.clone()))
    }

    fn seal(&self, principal: &str, t: &Tokens) -> Result<Sealed, String> {
        let name = Delegated::seal_name("conn", &self.connector, principal);
        let json = serde_json::to_string(t).map_err(|e| format!("cannot encode tokens: {e}"))?;
        self.service
            .vault
            .seal(&name, &json)
            .map_err(|e| format!("cannot seal tokens: {e:#}"))
    }

    fn unseal(&self, row: &UserConnection) -> Result<Tokens, String> {
        let name = Delegated::seal_name("conn", &self.connector, &row.principal);
        let sealed = Sealed {
            nonce: row.nonce.clone(),
            ciphertext: row.ciphertext.clone(),
        };
        let json = self
            .service
            .vault
            .unseal(&name, &sealed)
            .map_err(|e| format!("cannot read the stored connection: {e:#}"))?;
        let t: Tokens = serde_json::from_str(&json)
            .map_err(|_| "the stored connection is not readable".to_string())?;
        remember(&self.scrubber, &t, row.expires_ms);
        Ok(t)
    }

    /// A token the upstream no longer accepts (revoked): scrubbed through the grace, then
    /// forgotten. (An access token left over expires anyway.)
    fn forget(&self, token: &str) {
        self.scrubber.retire(token);
    }

    /// Starts a connect for `principal`: records the state and PKCE verifier, and returns the
    /// upstream authorize URL to send the person to.
    pub async fn authorize(
        &self,
        principal: &str,
        login_hint: Option<&str>,
    ) -> Result<String, String> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let oauth = self.oauth();
        let mut req = oauth
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.config.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge);
        if let Some(h) = login_hint {
            req = req.add_extra_param("login_hint", h.to_string());
        }
        let (url, state) = req.url();
        let state_hash = hash(state.secret());
        let name = Delegated::seal_name("connect", &self.connector, &state_hash);
        let sealed = self
            .service
            .vault
            .seal(&name, verifier.secret())
            .map_err(|e| format!("cannot seal the connect: {e:#}"))?;
        let pending = PendingConnect {
            connector: self.connector.clone(),
            principal: principal.to_string(),
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            expires_ms: now_ms() + CONNECT_TTL.as_millis() as i64,
        };
        self.service
            .store
            .put_pending_connect(&state_hash, pending)
            .await
            .map_err(|e| format!("cannot record the connect: {e:#}"))?;
        Ok(url.to_string())
    }

    /// Finishes a connect: takes the `state` once, exchanges the code with its PKCE verifier and
    /// stores the person's tokens sealed. Returns the principal that connected.
    pub async fn callback(&self, state: &str, code: &str) -> Result<String, CallbackError> {
        let state_hash = hash(state);
        let pending = self
            .service
            .store
            .take_pending_connect(&state_hash)
            .await
            .map_err(|e| CallbackError::Bad(format!("cannot read the connect: {e:#}")))?
            .filter(|p| p.connector == self.connector)
            .ok_or_else(|| {
                CallbackError::Bad(format!(
                    "unknown, used or expired `state`; start again at GET {}",
                    self.connect_path()
                ))
            })?;
        let name = Delegated::seal_name("connect", &self.connector, &state_hash);
        let verifier = self
            .service
            .vault
            .unseal(
                &name,
                &Sealed {
                    nonce: pending.nonce,
                    ciphertext: pending.ciphertext,
                },
            )
            .map_err(|e| CallbackError::Bad(format!("cannot read the connect: {e:#}")))?;
        let http = self.http();
        let reply = self
            .oauth()
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(&http)
            .await
            .map_err(|e| CallbackError::Bad(self.token_error("the code exchange", e)))?;
        let issued = self.issued(&reply, None);
        if self.config.verify_account {
            self.check_account(&pending.principal, &reply, &issued.tokens)
                .await?;
        }
        let sealed = self
            .seal(&pending.principal, &issued.tokens)
            .map_err(CallbackError::Bad)?;
        self.service
            .store
            .put_user_connection(UserConnection {
                connector: self.connector.clone(),
                principal: pending.principal.clone(),
                nonce: sealed.nonce,
                ciphertext: sealed.ciphertext,
                expires_ms: issued.expires_ms,
                scopes: issued
                    .scopes
                    .unwrap_or_else(|| self.config.scopes.join(" ")),
                version: 0,
                connected_at: String::new(),
                updated_at: String::new(),
            })
            .await
            .map_err(|e| CallbackError::Bad(format!("cannot store the connection: {e:#}")))?;
        Ok(pending.principal)
    }

    /// Whether this grant refuses a connect whose upstream account is not the principal's own.
    pub fn verifies_account(&self) -> bool {
        self.config.verify_account
    }

    /// Refuses the connect unless the account signed in upstream is `principal`'s own (its
    /// email or UPN equals the principal's email): otherwise anyone could start a connect with
    /// their own Airlock token and send the sign-in link to someone else, whose account would
    /// then answer for the sender. The tokens of a refused connect are revoked upstream.
    async fn check_account(
        &self,
        principal: &str,
        reply: &TokenReply,
        tokens: &Tokens,
    ) -> Result<(), CallbackError> {
        let Some(want) = principal_email(principal) else {
            self.revoke_issued(tokens).await;
            return Err(CallbackError::NotTheirs {
                principal: principal.to_string(),
                message: format!(
                    "`{principal}` has no email to compare the upstream account with; nothing was connected"
                ),
            });
        };
        let names = match self.account_names(reply, &tokens.access).await {
            Ok(n) => n,
            Err(e) => {
                self.revoke_issued(tokens).await;
                return Err(CallbackError::Bad(self.scrubber.scrub(&format!(
                    "cannot tell which upstream account was signed in ({e}); nothing was connected"
                ))));
            }
        };
        if names.iter().any(|n| n.eq_ignore_ascii_case(&want)) {
            return Ok(());
        }
        self.revoke_issued(tokens).await;
        let shown = if names.is_empty() {
            "an account without an email".to_string()
        } else {
            names.join(", ")
        };
        Err(CallbackError::NotTheirs {
            principal: principal.to_string(),
            message: self.scrubber.scrub(&format!(
                "the upstream account signed in ({shown}) is not `{principal}`'s own; nothing was connected (a connect link works only for the person who started it: each person starts their own at GET {})",
                self.connect_path()
            )),
        })
    }

    /// The account names (emails, UPNs; lower-cased) the upstream gives for a new token: from
    /// `userinfo_url` when the grant names one, else from the token response's id_token. The
    /// id_token came straight from the token endpoint over the grant's own connection, so its
    /// signature need not be checked (OpenID Connect Core 3.1.3.7); its audience must be us.
    async fn account_names(&self, reply: &TokenReply, access: &str) -> Result<Vec<String>, String> {
        let claims = match &self.config.userinfo_url {
            Some(url) => self.userinfo(url, access).await?,
            None => {
                let t =
                    reply.extra_fields().id_token.as_deref().ok_or(
                        "the token response has no id_token (is `openid` among the scopes?)",
                    )?;
                let claims = id_token_claims(t)?;
                let aud_ok = match &claims["aud"] {
                    serde_json::Value::String(a) => *a == self.config.client_id,
                    serde_json::Value::Array(a) => a
                        .iter()
                        .any(|x| x.as_str() == Some(self.config.client_id.as_str())),
                    _ => false,
                };
                if !aud_ok {
                    return Err("the id_token was not issued to this application".into());
                }
                claims
            }
        };
        let unverified_email = claims["email_verified"] == serde_json::Value::Bool(false);
        let mut names: Vec<String> = ACCOUNT_FIELDS
            .iter()
            .filter(|f| !(unverified_email && **f == "email"))
            .filter_map(|f| claims[*f].as_str())
            .map(|v| v.trim().to_lowercase())
            .filter(|v| v.contains('@'))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// `GET userinfo_url` with the new access token: a JSON object.
    async fn userinfo(&self, url: &url::Url, access: &str) -> Result<serde_json::Value, String> {
        let req = http::Request::builder()
            .method(http::Method::GET)
            .uri(url.as_str())
            .header(http::header::AUTHORIZATION, format!("Bearer {access}"))
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| format!("cannot build the userinfo request: {e}"))?;
        let resp = send(&self.client, req).await?;
        if !resp.status().is_success() {
            return Err(format!("userinfo_url answered {}", resp.status()));
        }
        let v: serde_json::Value = serde_json::from_slice(resp.body())
            .map_err(|_| "userinfo_url did not answer JSON".to_string())?;
        if !v.is_object() {
            return Err("userinfo_url did not answer a JSON object".into());
        }
        Ok(v)
    }

    /// Revokes the tokens of a connect that was refused (best effort: nothing was stored).
    async fn revoke_issued(&self, tokens: &Tokens) {
        let (token, hint) = match &tokens.refresh {
            Some(r) => (r.as_str(), "refresh_token"),
            None => (tokens.access.as_str(), "access_token"),
        };
        if self.revoke(token, hint).await.is_none() {
            self.forget(token);
        }
    }

    /// Spends a connect's `state` without exchanging anything (the upstream said no).
    pub async fn abandon(&self, state: &str) {
        let _ = self.service.store.take_pending_connect(&hash(state)).await;
    }

    /// Disconnects `principal`: the connection is deleted at once, then its refresh token (or
    /// access token) is revoked upstream when the grant names a `revoke_url`. Whether there was
    /// a connection, and what the upstream said when revocation failed.
    pub async fn disconnect(&self, principal: &str) -> Result<(bool, Option<String>), String> {
        let row = self
            .service
            .store
            .remove_user_connection(&self.connector, principal)
            .await
            .map_err(|e| format!("cannot remove the connection: {e:#}"))?;
        let Some(row) = row else {
            return Ok((false, None));
        };
        if self.config.revoke_url.is_none() {
            return Ok((true, None));
        }
        let tokens = match self.unseal(&row) {
            Ok(t) => t,
            Err(e) => return Ok((true, Some(e))),
        };
        let (token, hint) = match &tokens.refresh {
            Some(r) => (r.as_str(), "refresh_token"),
            None => (tokens.access.as_str(), "access_token"),
        };
        let failed = self.revoke(token, hint).await;
        if failed.is_none() {
            self.forget(token);
        }
        Ok((true, failed))
    }

    /// RFC 7009 revocation at `revoke_url` (built here: the `oauth2` crate refuses a plain-http
    /// endpoint outright, which a grant allows only with `allow_insecure`, for local fakes).
    /// What went wrong, if anything.
    async fn revoke(&self, token: &str, hint: &str) -> Option<String> {
        let url = self.config.revoke_url.as_ref()?;
        // Built in its own scope: the serializer is not `Send` and must not live across an await.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token)
                .append_pair("token_type_hint", hint)
                .append_pair("client_id", &self.config.client_id)
                .append_pair("client_secret", &self.client_secret);
            form.finish().into_bytes()
        };
        let req = http::Request::builder()
            .method(http::Method::POST)
            .uri(url.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body);
        let req = match req {
            Ok(r) => r,
            Err(e) => return Some(format!("revocation: cannot build the request: {e}")),
        };
        match send(&self.client, req).await {
            Ok(resp) if resp.status().is_success() => None,
            Ok(resp) => Some(format!(
                "revocation: the endpoint answered {}",
                resp.status()
            )),
            Err(e) => Some(self.scrubber.scrub(&format!("revocation: {e}"))),
        }
    }

    /// The principal's connection as the API shows it.
    pub async fn status(&self, principal: &str) -> Result<ConnectionStatus, String> {
        let row = self
            .service
            .store
            .user_connection(&self.connector, principal)
            .await
            .map_err(|e| format!("cannot read the connection: {e:#}"))?;
        let mut s = ConnectionStatus {
            connector: self.connector.clone(),
            connected: row.is_some(),
            connected_at: None,
            access_expires_at: None,
            refreshable: None,
            scopes: None,
            connect: self.connect_path(),
        };
        if let Some(r) = row {
            s.refreshable = Some(
                self.unseal(&r)
                    .map(|t| t.refresh.is_some())
                    .unwrap_or(false),
            );
            s.access_expires_at = r.expires_ms.map(rfc3339_ms);
            s.scopes = Some(r.scopes.split_whitespace().map(str::to_string).collect());
            s.connected_at = Some(r.connected_at);
        }
        Ok(s)
    }

    /// The `Authorization` value for `principal` (None: an invocation without one), refreshing
    /// the access token when it is about to expire. `on_refresh` hears of each refresh made.
    pub async fn header_for(
        &self,
        principal: Option<&str>,
        on_refresh: impl FnOnce(Refresh),
    ) -> Result<HeaderValue, UserTokenError> {
        let Some(principal) = super::principal::somebody(principal) else {
            return Err(UserTokenError::NoPrincipal {
                connector: self.connector.clone(),
            });
        };
        let row = self.row(principal).await?;
        let tokens = self.unseal(&row).map_err(UserTokenError::Failed)?;
        let access = if fresh(row.expires_ms) {
            tokens.access
        } else {
            self.refreshed(principal, row, on_refresh).await?
        };
        let mut v = HeaderValue::from_str(&format!("Bearer {access}")).map_err(|_| {
            UserTokenError::Failed("the access token is not a valid header value".into())
        })?;
        v.set_sensitive(true);
        Ok(v)
    }

    async fn row(&self, principal: &str) -> Result<UserConnection, UserTokenError> {
        self.service
            .store
            .user_connection(&self.connector, principal)
            .await
            .map_err(|e| UserTokenError::Failed(format!("cannot read the connection: {e:#}")))?
            .ok_or_else(|| UserTokenError::NotConnected {
                connector: self.connector.clone(),
                principal: principal.to_string(),
                path: self.connect_path(),
            })
    }

    /// Refreshes under this connection's lock; whoever stored a newer version first wins, and
    /// its token is used.
    async fn refreshed(
        &self,
        principal: &str,
        seen: UserConnection,
        on_refresh: impl FnOnce(Refresh),
    ) -> Result<String, UserTokenError> {
        let lock = self.service.refresh_lock(&self.connector, principal);
        let _held = lock.lock().await;
        let row = self.row(principal).await?;
        if row.version != seen.version && fresh(row.expires_ms) {
            return Ok(self.unseal(&row).map_err(UserTokenError::Failed)?.access);
        }
        let tokens = self.unseal(&row).map_err(UserTokenError::Failed)?;
        let Some(refresh) = tokens.refresh.clone() else {
            return Err(UserTokenError::Failed(format!(
                "`{principal}`'s `{}` access token expired and the upstream gave no refresh token: connect again at GET {}",
                self.connector,
                self.connect_path()
            )));
        };
        let http = self.http();
        let started = Instant::now();
        let result = self
            .oauth()
            .exchange_refresh_token(&RefreshToken::new(refresh))
            .request_async(&http)
            .await;
        let (status, error) = match &result {
            Ok(_) => (Some(200), None),
            Err(RequestTokenError::ServerResponse(_)) => (
                Some(400),
                Some("the token endpoint refused the refresh".to_string()),
            ),
            Err(_) => (None, Some("the refresh failed".to_string())),
        };
        on_refresh(Refresh {
            url: self
                .config
                .token_url
                .as_str()
                .parse()
                .unwrap_or_else(|_| http::Uri::from_static("/")),
            status,
            latency: started.elapsed(),
            error,
        });
        let reply = match result {
            Ok(r) => r,
            Err(e) => {
                // Another daemon may have rotated it first: its token is as good.
                let now = self.row(principal).await?;
                if now.version != row.version && fresh(now.expires_ms) {
                    return Ok(self.unseal(&now).map_err(UserTokenError::Failed)?.access);
                }
                return Err(UserTokenError::Failed(format!(
                    "{}; connect again at GET {}",
                    self.token_error("refreshing the access token", e),
                    self.connect_path()
                )));
            }
        };
        let issued = self.issued(&reply, tokens.refresh);
        let sealed = self
            .seal(principal, &issued.tokens)
            .map_err(UserTokenError::Failed)?;
        let stored = self
            .service
            .store
            .rotate_user_connection(
                &self.connector,
                principal,
                row.version,
                (sealed.nonce, sealed.ciphertext),
                issued.expires_ms,
            )
            .await
            .map_err(|e| {
                UserTokenError::Failed(format!("cannot store the refreshed token: {e:#}"))
            })?;
        if !stored {
            // Disconnected (or replaced by a reconnect) while refreshing: use what is there now.
            let now = self.row(principal).await?;
            return Ok(self.unseal(&now).map_err(UserTokenError::Failed)?.access);
        }
        Ok(issued.tokens.access)
    }

    /// The tokens of a reply; a reply without a refresh token keeps the one it was asked with.
    fn issued(&self, reply: &TokenReply, old_refresh: Option<String>) -> Issued {
        let expires_ms = reply.expires_in().map(|d| {
            let d = d.min(Duration::from_secs(30 * 86_400));
            let d = d - REFRESH_MARGIN.min(d / 10);
            now_ms() + d.as_millis() as i64
        });
        let tokens = issued_tokens(
            &self.scrubber,
            reply.access_token().secret().clone(),
            reply.refresh_token().map(|r| r.secret().clone()),
            old_refresh,
            expires_ms,
        );
        Issued {
            tokens,
            expires_ms,
            scopes: reply
                .scopes()
                .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
        }
    }

    /// The `oauth2` crate's HTTP client: the grant's pooled client, its answers' errors
    /// scrubbed.
    fn http(&self) -> impl Fn(oauth2::HttpRequest) -> oauth_exchange::Pending + use<> {
        oauth_exchange::http(self.client.clone(), self.scrubber.clone())
    }

    fn token_error(&self, what: &str, e: oauth_exchange::TokenError) -> String {
        self.scrubber.scrub(&oauth_exchange::token_error(what, e))
    }
}

/// Registers a connection's tokens with the scrubber: the access token until an hour past its
/// expiry, the refresh token until a rotation replaces it (people's tokens are refreshed all day
/// long: kept for good, every scan would grow without bound).
fn remember(scrubber: &Scrubber, t: &Tokens, expires_ms: Option<i64>) {
    match expires_ms {
        Some(exp) => {
            let left = u64::try_from(exp.saturating_sub(now_ms())).unwrap_or(0);
            let expires = Instant::now() + Duration::from_millis(left);
            scrubber.add_expiring(&t.access, expires);
        }
        None => scrubber.add(&t.access),
    }
    if let Some(r) = &t.refresh {
        scrubber.add_rotating(r);
    }
}

/// The tokens a token endpoint answered, registered with the scrubber: a reply without a
/// refresh token keeps `old_refresh`; one with a new refresh token rotated it, and the old one
/// is spent (scrubbed through the grace, then forgotten).
fn issued_tokens(
    scrubber: &Scrubber,
    access: String,
    rotated: Option<String>,
    old_refresh: Option<String>,
    expires_ms: Option<i64>,
) -> Tokens {
    if let (Some(old), Some(new)) = (&old_refresh, &rotated)
        && old != new
    {
        scrubber.retire(old);
    }
    let tokens = Tokens {
        access,
        refresh: rotated.or(old_refresh),
    };
    remember(scrubber, &tokens, expires_ms);
    tokens
}

/// Whether an access token expiring at `expires_ms` can still be sent.
fn fresh(expires_ms: Option<i64>) -> bool {
    let Some(exp) = expires_ms else {
        return true;
    };
    exp > now_ms()
}

fn hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

fn now_ms() -> i64 {
    crate::store::connections::now_ms()
}

fn rfc3339_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The email in a principal label (`token:NAME` / `oauth:NAME`), when NAME is one.
fn principal_email(label: &str) -> Option<String> {
    crate::store::tokens::name_email(label.split_once(':').map_or(label, |(_, n)| n))
}

/// The claims of a JWT's payload (not verified: see `account_names`).
fn id_token_claims(t: &str) -> Result<serde_json::Value, String> {
    let payload = t.split('.').nth(1).ok_or("the id_token is not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the id_token is not a JWT")?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "the id_token's claims are not JSON")?;
    if v.is_object() {
        Ok(v)
    } else {
        Err("the id_token's claims are not an object".into())
    }
}

/// The callback's `state` is base64url of random bytes (the `oauth2` crate's): reject anything
/// else before it reaches the store.
pub fn plausible_state(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_label_yields_an_email_only_when_its_name_is_one() {
        assert_eq!(
            principal_email("token:Ada@Contoso.com").as_deref(),
            Some("ada@contoso.com")
        );
        assert_eq!(
            principal_email("oauth:ada@contoso.com").as_deref(),
            Some("ada@contoso.com")
        );
        assert_eq!(principal_email("token:ops-bot"), None);
        assert_eq!(principal_email("token:user:x@y"), None);
    }

    #[test]
    fn a_rotated_refresh_token_is_scrubbed_daemon_wide_and_the_spent_one_forgotten_after_the_grace()
    {
        let daemon = Scrubber::new();
        let grant = daemon.scoped();
        let hour = Some(now_ms() + 3_600_000);
        let first = issued_tokens(
            &grant,
            "access-token-one-aaaa".into(),
            Some("refresh-token-one-rrrr".into()),
            None,
            hour,
        );
        let second = issued_tokens(
            &grant,
            "access-token-two-bbbb".into(),
            Some("refresh-token-two-ssss".into()),
            first.refresh,
            hour,
        );
        assert_eq!(second.refresh.as_deref(), Some("refresh-token-two-ssss"));
        // A refresh answered without a refresh token keeps the one it was asked with.
        let third = issued_tokens(
            &grant,
            "access-token-three-cc".into(),
            None,
            second.refresh.clone(),
            hour,
        );
        assert_eq!(third.refresh, second.refresh);
        let line = "refresh-token-one-rrrr refresh-token-two-ssss access-token-three-cc";
        for s in [&daemon, &grant] {
            assert_eq!(
                s.scrub(line),
                "[REDACTED] [REDACTED] [REDACTED]",
                "the rotated token like the spent one"
            );
        }
        // Past the grace the spent refresh token is forgotten; the live one and the live access
        // token stay.
        let later = Instant::now() + crate::scrub::EXPIRED_GRACE + Duration::from_secs(60);
        for s in [&daemon, &grant] {
            s.forget_expired_at(later);
            assert!(!s.finds("refresh-token-one-rrrr"), "spent: forgotten");
            assert!(s.finds("refresh-token-two-ssss"), "live: kept");
            assert!(s.finds("access-token-three-cc"));
        }
    }

    #[test]
    fn a_thousand_rotations_leave_only_the_live_refresh_token() {
        let daemon = Scrubber::new();
        let mut refresh = None;
        for i in 0..1000 {
            let t = issued_tokens(
                &daemon,
                format!("access-{i:06}-token"),
                Some(format!("refresh-{i:06}-token")),
                refresh,
                Some(now_ms() + 60_000),
            );
            refresh = t.refresh;
        }
        let later = Instant::now() + crate::scrub::EXPIRED_GRACE * 2;
        daemon.forget_expired_at(later);
        assert!(daemon.finds("refresh-000999-token"));
        assert!(!daemon.finds("refresh-000998-token"));
        let one = Scrubber::new();
        one.add("refresh-000999-token");
        assert_eq!(
            daemon.len(),
            one.len(),
            "only the live refresh token is left"
        );
    }

    #[test]
    fn id_token_claims_are_read_from_the_payload_and_anything_else_is_refused() {
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let t = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"aud":"app","preferred_username":"ada@contoso.com"}"#)
        );
        let c = id_token_claims(&t).expect("claims");
        assert_eq!(c["preferred_username"], "ada@contoso.com");
        assert!(id_token_claims("not-a-jwt").is_err());
        assert!(id_token_claims(&format!("x.{}.y", b64("[1]"))).is_err());
        assert!(id_token_claims("x.!!!.y").is_err());
    }
}
