//! Credential injection at the gate: HTTP Basic, Bearer, a custom header (`X-API-KEY`,
//! `api-key`, ...) and OAuth2 client-credentials with a cached token refreshed shortly before it
//! expires. Connectors never see any of these values.
//!
//! The token endpoint is the identity provider of the whole organisation, so a connector must
//! not be able to hammer it through the gate: one fetch is in flight per credential (others
//! wait for its result, and it finishes even if the invocation that started it ends), it runs
//! under the host's own timeout (never the guest's), it spends the grant's rate budget, and
//! after a failure further fetches wait out an exponential backoff instead of re-posting the
//! client secret on every request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};

use super::grant::{AuthConfig, BasicPart};
use crate::scrub::Scrubber;

use super::budget::GrantBudget;
use super::net::UpstreamClient;
use super::secrets::SecretValues;

/// Refresh this long before the token's stated expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
/// The first wait after a failed token fetch; it doubles with each further failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A grant's credentials, ready to inject.
pub enum GrantAuth {
    None,
    /// A static header (Basic, Bearer or custom), prepared once.
    Static {
        name: HeaderName,
        value: HeaderValue,
    },
    OAuth2(OAuth2),
    /// The calling person's own token (`oauth2-user`, see `delegated`); built by the loader,
    /// which holds the store, and injected by the gate, which knows the caller.
    User(Arc<super::delegated::UserGrant>),
    /// The signed-in person's token traded on their behalf (`oauth2-obo`), injected by the gate.
    OnBehalfOf(Arc<super::on_behalf_of::OboGrant>),
    /// Replay: no secret is resolved and nothing is injected (no request leaves the host), but
    /// the header stays forbidden to the connector exactly as live.
    Withheld(Option<HeaderName>),
}

pub struct OAuth2 {
    endpoint: Arc<TokenEndpoint>,
    state: Arc<tokio::sync::Mutex<TokenState>>,
}

/// Where and how a token is asked for.
struct TokenEndpoint {
    token_url: http::Uri,
    form: String,
    scrubber: Scrubber,
}

/// The answer every caller waiting on one fetch shares.
type TokenResult = Result<HeaderValue, String>;

#[derive(Default)]
struct TokenState {
    cached: Option<CachedToken>,
    /// The fetch in flight, which callers join instead of starting their own.
    in_flight: Option<Shared<BoxFuture<'static, TokenResult>>>,
    /// Failures in a row, and until when no fetch is tried (with the last error).
    failures: u32,
    backoff: Option<(Instant, String)>,
}

struct CachedToken {
    header: HeaderValue,
    refresh_at: Instant,
}

/// What a token fetch reports for the audit log.
pub struct TokenFetch {
    pub url: http::Uri,
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
}

/// What bounds a token fetch: the host's own timeout, and the grant's budget (spent by the
/// fetch, waited for no later than `deadline`).
pub struct TokenLimits<'a> {
    pub timeout: Duration,
    pub budget: &'a GrantBudget,
    pub deadline: Instant,
}

impl GrantAuth {
    /// Prepares the credentials; errors name the missing reference.
    pub fn build(
        auth: &AuthConfig,
        secrets: &SecretValues,
        scrubber: &Scrubber,
    ) -> Result<GrantAuth, String> {
        let get = |r| {
            secrets
                .get(r)
                .map(str::to_string)
                .ok_or_else(|| format!("{r} could not be resolved"))
        };
        let sensitive = |mut v: HeaderValue| {
            v.set_sensitive(true);
            v
        };
        Ok(match auth {
            AuthConfig::None => GrantAuth::None,
            AuthConfig::Basic { username, password } => {
                let part = |p: &BasicPart| -> Result<String, String> {
                    match p {
                        BasicPart::Literal(v) => Ok(v.clone()),
                        BasicPart::Secret(r) => secrets
                            .get(r)
                            .map(str::to_string)
                            .ok_or_else(|| format!("{r} could not be resolved")),
                    }
                };
                let (username, password) = (part(username)?, part(password)?);
                scrubber.add_basic(&username, &password);
                let enc = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                GrantAuth::Static {
                    name: header::AUTHORIZATION,
                    value: sensitive(
                        HeaderValue::from_str(&format!("Basic {enc}"))
                            .map_err(|_| "basic credentials are not a valid header".to_string())?,
                    ),
                }
            }
            AuthConfig::Bearer { token } => GrantAuth::Static {
                name: header::AUTHORIZATION,
                value: sensitive(
                    HeaderValue::from_str(&format!("Bearer {}", get(token)?))
                        .map_err(|_| format!("{token} is not a valid header value"))?,
                ),
            },
            AuthConfig::Header { name, value } => GrantAuth::Static {
                name: name.clone(),
                value: sensitive(
                    HeaderValue::from_str(&get(value)?)
                        .map_err(|_| format!("{value} is not a valid header value"))?,
                ),
            },
            AuthConfig::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let secret = get(client_secret)?;
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "client_credentials");
                form.append_pair("client_id", client_id);
                form.append_pair("client_secret", &secret);
                if let Some(s) = scope {
                    form.append_pair("scope", s);
                }
                GrantAuth::OAuth2(OAuth2 {
                    endpoint: Arc::new(TokenEndpoint {
                        token_url: token_url
                            .as_str()
                            .parse()
                            .map_err(|_| "auth.token_url is not a valid URI".to_string())?,
                        form: form.finish(),
                        scrubber: scrubber.clone(),
                    }),
                    state: Arc::default(),
                })
            }
            AuthConfig::OAuth2User(_) => {
                return Err("oauth2-user credentials need the daemon's store".into());
            }
            AuthConfig::OnBehalfOf(_) => {
                return Err("oauth2-obo credentials are built with their client".into());
            }
        })
    }

    /// The credentials of `auth` for replay: never resolved, never sent.
    pub fn withheld(auth: &AuthConfig) -> GrantAuth {
        GrantAuth::Withheld(match auth {
            AuthConfig::None => None,
            AuthConfig::Header { name, .. } => Some(name.clone()),
            _ => Some(header::AUTHORIZATION),
        })
    }

    /// The header this grant's credentials travel in (guests may not set it).
    pub fn header_name(&self) -> Option<HeaderName> {
        match self {
            GrantAuth::None => None,
            GrantAuth::Withheld(name) => name.clone(),
            GrantAuth::Static { name, .. } => Some(name.clone()),
            GrantAuth::OAuth2(_) | GrantAuth::User(_) | GrantAuth::OnBehalfOf(_) => {
                Some(header::AUTHORIZATION)
            }
        }
    }

    /// Whether requests through this grant carry a credential the gate injects (their answers
    /// may echo it back).
    pub fn injects(&self) -> bool {
        matches!(
            self,
            GrantAuth::Static { .. }
                | GrantAuth::OAuth2(_)
                | GrantAuth::User(_)
                | GrantAuth::OnBehalfOf(_)
        )
    }

    /// Sets the credentials on `headers`. For OAuth2 this may fetch a token first, within
    /// `limits`; the fetch is reported through `on_fetch` for auditing.
    pub async fn apply(
        &self,
        headers: &mut HeaderMap,
        client: &UpstreamClient,
        allow_private: bool,
        limits: TokenLimits<'_>,
        on_fetch: impl FnOnce(TokenFetch) + Send + 'static,
    ) -> Result<(), String> {
        match self {
            GrantAuth::None | GrantAuth::Withheld(_) => Ok(()),
            GrantAuth::Static { name, value } => {
                headers.insert(name.clone(), value.clone());
                Ok(())
            }
            GrantAuth::OAuth2(o) => {
                let v = o.token(client, allow_private, limits, on_fetch).await?;
                headers.insert(header::AUTHORIZATION, v);
                Ok(())
            }
            // The gate asks the grant itself, with the caller (see http/credentials.rs).
            GrantAuth::User(_) | GrantAuth::OnBehalfOf(_) => {
                Err("a person's token needs the caller".into())
            }
        }
    }
}

impl OAuth2 {
    /// The cached token, or the result of the one fetch in flight, or of a new fetch when none
    /// is in flight and no backoff is in force.
    async fn token(
        &self,
        client: &UpstreamClient,
        allow_private: bool,
        limits: TokenLimits<'_>,
        on_fetch: impl FnOnce(TokenFetch) + Send + 'static,
    ) -> TokenResult {
        let shared = {
            let mut st = self.state.lock().await;
            let now = Instant::now();
            if let Some(t) = &st.cached
                && now < t.refresh_at
            {
                return Ok(t.header.clone());
            }
            match st.in_flight.clone() {
                Some(f) => f,
                None => {
                    if let Some((until, error)) = &st.backoff
                        && now < *until
                    {
                        return Err(format!(
                            "{error}; token requests paused for {}s after {} failure(s)",
                            until.duration_since(now).as_secs() + 1,
                            st.failures
                        ));
                    }
                    // The fetch spends the grant's budget like any request (held while it
                    // runs); it unblocks every caller of the grant, so it does not queue as
                    // background work even when a sync needs it.
                    let mut waited = Duration::ZERO;
                    let permit = limits
                        .budget
                        .acquire(
                            super::budget::Class::Interactive,
                            "oauth-token",
                            limits.deadline,
                            &mut waited,
                        )
                        .await
                        .map_err(|nb| {
                            format!(
                                "no rate budget left for a token request for {}s",
                                nb.wait().as_secs() + 1
                            )
                        })?;
                    let f = self.spawn_fetch(
                        client.clone(),
                        allow_private,
                        limits.timeout,
                        permit,
                        on_fetch,
                    );
                    st.in_flight = Some(f.clone());
                    f
                }
            }
        };
        shared.await
    }

    /// Runs one fetch on its own task (it completes, and its result is kept, even when the
    /// invocation that started it is stopped) and records its outcome before callers see it.
    fn spawn_fetch(
        &self,
        client: UpstreamClient,
        allow_private: bool,
        timeout: Duration,
        permit: tokio::sync::OwnedSemaphorePermit,
        on_fetch: impl FnOnce(TokenFetch) + Send + 'static,
    ) -> Shared<BoxFuture<'static, TokenResult>> {
        let endpoint = self.endpoint.clone();
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let result = endpoint.fetch(&client, allow_private, timeout).await;
            drop(permit);
            let (status, error) = match &result {
                Ok((_, s)) => (Some(*s), None),
                Err((s, e)) => (*s, Some(e.clone())),
            };
            on_fetch(TokenFetch {
                url: endpoint.token_url.clone(),
                status,
                latency: started.elapsed(),
                error,
            });
            let mut st = state.lock().await;
            st.in_flight = None;
            match result {
                Ok((tok, _)) => {
                    let header = tok.header.clone();
                    st.cached = Some(tok);
                    st.failures = 0;
                    st.backoff = None;
                    Ok(header)
                }
                Err((_, e)) => {
                    st.failures = st.failures.saturating_add(1);
                    let wait = backoff(st.failures);
                    st.backoff = Some((Instant::now() + wait, e.clone()));
                    Err(e)
                }
            }
        });
        async move {
            task.await
                .unwrap_or_else(|e| Err(format!("token request did not complete: {e}")))
        }
        .boxed()
        .shared()
    }
}

/// How long to wait before the next token fetch after `failures` failures in a row.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1u32 << doublings)
        .min(MAX_BACKOFF)
}

impl TokenEndpoint {
    async fn fetch(
        &self,
        client: &UpstreamClient,
        allow_private: bool,
        timeout: Duration,
    ) -> Result<(CachedToken, u16), (Option<u16>, String)> {
        // A literal IP never reaches the resolver's check; apply the same rule here.
        if let Some(host) = self.token_url.host()
            && let Ok(ip) = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
            && let Some(class) = super::net::check_ip(ip, allow_private)
        {
            return Err((
                None,
                format!("token endpoint {ip} is {class}; the grant does not allow it"),
            ));
        }
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.token_url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(self.form.clone())))
            .map_err(|e| (None, format!("cannot build token request: {e}")))?;
        let resp = tokio::time::timeout(timeout, client.request(req))
            .await
            .map_err(|_| {
                (
                    None,
                    format!("token endpoint did not answer within {timeout:?}"),
                )
            })?
            .map_err(|e| {
                let msg = match super::net::find_address_denied(&e) {
                    Some(d) => format!("token endpoint refused: {d}; the grant does not allow it"),
                    None => format!("token request failed: {}", super::net::error_chain(&e)),
                };
                (None, self.scrubber.scrub(&msg))
            })?;
        let status = resp.status().as_u16();
        let body = tokio::time::timeout(
            timeout,
            Limited::new(resp.into_body(), MAX_TOKEN_RESPONSE).collect(),
        )
        .await
        .map_err(|_| (Some(status), "token response timed out".to_string()))?
        .map_err(|e| (Some(status), format!("token response unreadable: {e}")))?
        .to_bytes();
        #[derive(serde::Deserialize)]
        struct TokenReply {
            access_token: Option<String>,
            token_type: Option<String>,
            expires_in: Option<serde_json::Value>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let reply: TokenReply = serde_json::from_slice(&body).map_err(|_| {
            (
                Some(status),
                format!(
                    "token endpoint answered {status} with a body that is not a token response"
                ),
            )
        })?;
        let Some(token) = reply.access_token.filter(|_| (200..300).contains(&status)) else {
            let detail = reply
                .error_description
                .or(reply.error)
                .unwrap_or_else(|| "no access_token".into());
            return Err((
                Some(status),
                self.scrubber
                    .scrub(&format!("token endpoint answered {status}: {detail}")),
            ));
        };
        if let Some(tt) = &reply.token_type
            && !tt.eq_ignore_ascii_case("bearer")
        {
            return Err((Some(status), format!("unsupported token_type `{tt}`")));
        }
        // expires_in is a number, or a string of one on some servers.
        let secs = match &reply.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(3600),
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3600),
            _ => 3600,
        };
        // Cap absurd lifetimes (and keep Instant arithmetic from overflowing).
        let lifetime = Duration::from_secs(secs.clamp(1, 30 * 86_400));
        // Scrubbed until an hour past its expiry, then forgotten (tokens are refreshed forever).
        self.scrubber
            .add_expiring(&token, Instant::now() + lifetime);
        let margin = REFRESH_MARGIN.min(lifetime / 10);
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            (
                Some(status),
                "access token is not a valid header value".to_string(),
            )
        })?;
        header.set_sensitive(true);
        Ok((
            CachedToken {
                header,
                refresh_at: Instant::now() + lifetime - margin,
            },
            status,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_two_seconds_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(9), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
