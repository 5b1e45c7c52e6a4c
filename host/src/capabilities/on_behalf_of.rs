//! On-behalf-of upstream tokens (`auth = { type = "oauth2-obo", … }`, OAuth 2.0 on-behalf-of as
//! Microsoft Entra ID implements it): when a person reached Airlock with an access token of the
//! company's identity provider (`[oauth]`, external), the gate trades that token (the
//! `assertion`) at the provider's token endpoint for an upstream token of the same person
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
//! `requested_token_use=on_behalf_of`) and injects it — no separate connect flow. Never another
//! person's token: the assertion and the cache are looked up by the invocation's own principal,
//! and an invocation without one (a sync) is refused.
//!
//! The resource server remembers each person's latest verified access token (in memory, until
//! it expires, only when some grant uses on-behalf-of): the invocation's requests leave from the
//! gate, far from the HTTP request that carried it. Issued tokens are kept per (grant, person)
//! until shortly before they expire. Assertions, client secret and issued tokens are registered
//! with the scrubber and never logged.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderValue, header};
use serde_json::Value;

use super::grant::OboConfig;
use super::net::UpstreamClient;
use super::oauth_exchange::send;
use crate::scrub::Scrubber;

/// Use an issued token until this long before it expires (at most half its life).
const MARGIN: Duration = Duration::from_secs(120);
/// At most this many people's assertions are remembered (expired ones go first, then the
/// oldest).
const MAX_REMEMBERED: usize = 100_000;

/// A person's latest verified access token and when it expires (unix seconds).
struct Assertion {
    token: String,
    exp: i64,
}

/// Assertions by principal label (`oauth:NAME`).
static ASSERTIONS: LazyLock<Mutex<HashMap<String, Assertion>>> = LazyLock::new(Default::default);

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Remembers `token`, just verified for `principal` and valid until `exp`, as the assertion an
/// on-behalf-of exchange for them sends.
pub fn remember(principal: &str, token: &str, exp: i64) {
    let mut map = ASSERTIONS.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_REMEMBERED {
        let now = now_s();
        map.retain(|_, a| a.exp > now);
    }
    if map.len() >= MAX_REMEMBERED
        && let Some(oldest) = map
            .iter()
            .min_by_key(|(_, a)| a.exp)
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
    map.insert(
        principal.to_string(),
        Assertion {
            token: token.to_string(),
            exp,
        },
    );
}

fn assertion_of(principal: &str) -> Option<(String, i64)> {
    let map = ASSERTIONS.lock().unwrap_or_else(|e| e.into_inner());
    map.get(principal).map(|a| (a.token.clone(), a.exp))
}

/// Why no on-behalf-of token can be had. Messages never carry a token.
#[derive(Debug, thiserror::Error)]
pub enum OboError {
    #[error(
        "the grant acts on behalf of the signed-in person (oauth2-obo), and an invocation without one (a scheduled or background sync) has none; sync through a grant with the connector's own credentials"
    )]
    NoPrincipal,
    #[error(
        "`{0}` did not sign in with an access token of the identity provider (on-behalf-of trades that token; API tokens and the own authorization server's tokens cannot be traded)"
    )]
    NoAssertion(String),
    #[error("`{0}`'s access token has expired: sign in again")]
    Expired(String),
    #[error("{0}")]
    Failed(String),
}

/// A token exchange made, for the audit log (the gate writes it as an `oauth-token` row).
pub struct Exchange {
    pub url: http::Uri,
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
}

/// One `oauth2-obo` grant: its application at the identity provider and the tokens issued so far.
pub struct OboGrant {
    pub connector: String,
    config: Arc<OboConfig>,
    client_secret: String,
    client: UpstreamClient,
    scrubber: Scrubber,
    /// Issued tokens by principal, with when to stop using them.
    issued: tokio::sync::Mutex<HashMap<String, (HeaderValue, Instant)>>,
}

impl OboGrant {
    pub fn new(
        connector: &str,
        config: Arc<OboConfig>,
        client_secret: String,
        client: UpstreamClient,
        scrubber: Scrubber,
    ) -> OboGrant {
        scrubber.add(&client_secret);
        OboGrant {
            connector: connector.to_string(),
            config,
            client_secret,
            client,
            scrubber,
            issued: Default::default(),
        }
    }

    /// The `Authorization` value for `principal`: the kept token while fresh, else a new
    /// exchange of their assertion. `on_exchange` hears of each exchange made.
    pub async fn header_for(
        &self,
        principal: Option<&str>,
        on_exchange: impl FnOnce(Exchange),
    ) -> Result<HeaderValue, OboError> {
        let Some(principal) = super::principal::somebody(principal) else {
            return Err(OboError::NoPrincipal);
        };
        // One exchange at a time per grant: concurrent calls of one person wait for the first.
        let mut issued = self.issued.lock().await;
        if let Some((v, until)) = issued.get(principal)
            && Instant::now() < *until
        {
            return Ok(v.clone());
        }
        let (assertion, exp) =
            assertion_of(principal).ok_or_else(|| OboError::NoAssertion(principal.to_string()))?;
        if exp <= now_s() {
            return Err(OboError::Expired(principal.to_string()));
        }
        self.scrubber.add(&assertion);
        let started = Instant::now();
        let result = self.exchange(&assertion).await;
        on_exchange(Exchange {
            url: self
                .config
                .token_url
                .as_str()
                .parse()
                .unwrap_or_else(|_| http::Uri::from_static("/")),
            status: result.as_ref().map_or_else(|(s, _)| *s, |_| Some(200)),
            latency: started.elapsed(),
            error: result.as_ref().err().map(|(_, m)| m.clone()),
        });
        let (token, life) = result.map_err(|(_, m)| {
            OboError::Failed(format!(
                "the identity provider refused to exchange `{principal}`'s access token for a `{}` token ({m})",
                self.connector
            ))
        })?;
        self.scrubber
            .add_expiring(&token, Instant::now() + life + Duration::from_secs(3600));
        let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| OboError::Failed("the issued token is not a valid header value".into()))?;
        v.set_sensitive(true);
        let until = Instant::now() + life.saturating_sub(MARGIN.min(life / 2));
        issued.retain(|_, (_, u)| Instant::now() < *u);
        issued.insert(principal.to_string(), (v.clone(), until));
        Ok(v)
    }

    /// The exchange itself: the new token and its lifetime, or the status and a safe message.
    async fn exchange(&self, assertion: &str) -> Result<(String, Duration), (Option<u16>, String)> {
        let c = &self.config;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("requested_token_use", "on_behalf_of")
            .append_pair("client_id", &c.client_id)
            .append_pair("client_secret", &self.client_secret)
            .append_pair("assertion", assertion)
            .append_pair("scope", &c.scopes.join(" "))
            .finish();
        let req = http::Request::post(c.token_url.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(body.into_bytes())
            .map_err(|e| (None, format!("cannot build the request: {e}")))?;
        let resp = send(&self.client, req)
            .await
            .map_err(|m| (None, self.scrubber.scrub(&m)))?;
        let status = resp.status().as_u16();
        let v: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        if !resp.status().is_success() {
            let why = match (v["error"].as_str(), v["error_description"].as_str()) {
                (Some(e), Some(d)) => format!("{e}: {}", first_line(d)),
                (Some(e), None) => e.to_string(),
                _ => format!("the token endpoint answered {status}"),
            };
            return Err((Some(status), self.scrubber.scrub(&why)));
        }
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or((Some(status), "the answer has no access_token".to_string()))?
            .to_string();
        let life = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(300).min(86_400));
        Ok((token, life))
    }
}

/// Entra's descriptions run on with trace and correlation ids on later lines.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_assertion_is_the_persons_latest_and_only_theirs() {
        remember("oauth:ada@obo.test", "first", 100);
        remember("oauth:ada@obo.test", "second", 200);
        remember("oauth:bob@obo.test", "bobs", 300);
        assert_eq!(
            assertion_of("oauth:ada@obo.test"),
            Some(("second".to_string(), 200))
        );
        assert_eq!(assertion_of("oauth:eve@obo.test"), None);
    }

    #[test]
    fn only_the_first_line_of_a_provider_description_is_kept() {
        assert_eq!(
            first_line("AADSTS50013: Assertion audience does not match.\r\nTrace ID: x"),
            "AADSTS50013: Assertion audience does not match."
        );
    }
}
