//! Talking to an upstream's OAuth endpoints as a client: the typed `oauth2` client (with
//! OpenID Connect's `id_token` kept from token responses), the HTTP adapter that sends its
//! messages through one of the host's pooled clients (address rules, private-network setting
//! and trust as configured; a timeout and a size cap), and safe messages for failures. Used by
//! delegated OAuth (`capabilities::delegated`) and by the own authorization server's upstream
//! sign-in (`api::authorization::upstream`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    EndpointNotSet, EndpointSet, RequestTokenError, StandardRevocableToken, StandardTokenResponse,
};

use super::net::UpstreamClient;
use crate::scrub::Scrubber;

const MAX_RESPONSE: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// The one field a token response carries beyond OAuth's: OpenID Connect's `id_token`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

pub type TokenReply = StandardTokenResponse<IdTokenField, BasicTokenType>;

/// A client without endpoints yet (every endpoint state defaults to not set).
pub type NewClient = oauth2::Client<
    BasicErrorResponse,
    TokenReply,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

/// A client with its authorization and token endpoints set.
pub type Client = oauth2::Client<
    BasicErrorResponse,
    TokenReply,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What an authorization server sends back to our redirect URI (RFC 6749 §4.1.2): a code, or
/// an error, with the `state` we sent.
#[derive(Debug, serde::Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Why an exchange with the upstream's OAuth endpoints did not complete.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpFailure(String);

/// What a token request through [`http()`] fails with.
pub type TokenError = RequestTokenError<HttpFailure, BasicErrorResponse>;

/// A message in flight through [`http()`].
pub type Pending = futures::future::BoxFuture<'static, Result<oauth2::HttpResponse, HttpFailure>>;

/// The `oauth2` crate's HTTP client over `client`; failures are scrubbed with `scrubber`.
pub fn http(
    client: UpstreamClient,
    scrubber: Scrubber,
) -> impl Fn(oauth2::HttpRequest) -> Pending + use<> {
    move |req: oauth2::HttpRequest| {
        let client = client.clone();
        let scrubber = scrubber.clone();
        Box::pin(async move {
            send(&client, req)
                .await
                .map_err(|m| HttpFailure(scrubber.scrub(&m)))
        })
    }
}

/// Sends one small request (token, revocation, userinfo) with a timeout and a size cap.
pub async fn send(
    client: &UpstreamClient,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, String> {
    let (parts, body) = req.into_parts();
    let req = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| format!("the token endpoint did not answer within {TIMEOUT:?}"))?
        .map_err(|e| match super::net::find_address_denied(&e) {
            Some(d) => format!("token endpoint refused: {d}; the grant does not allow it"),
            None => format!("token request failed: {}", super::net::error_chain(&e)),
        })?;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(TIMEOUT, Limited::new(body, MAX_RESPONSE).collect())
        .await
        .map_err(|_| "the token response timed out".to_string())?
        .map_err(|e| format!("the token response is unreadable: {e}"))?
        .to_bytes();
    Ok(http::Response::from_parts(parts, body.to_vec()))
}

/// A safe message for a failed token request: the upstream's error code and description,
/// never a body (callers scrub it).
pub fn token_error(what: &str, e: TokenError) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => format!(
            "{what} was refused: {}{}",
            r.error(),
            r.error_description()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
        RequestTokenError::Request(e) => format!("{what} failed: {e}"),
        RequestTokenError::Parse(_, _) => {
            format!("{what} failed: the answer is not an OAuth token response")
        }
        RequestTokenError::Other(m) => format!("{what} failed: {m}"),
    }
}
