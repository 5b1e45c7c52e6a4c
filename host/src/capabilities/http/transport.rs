//! One upstream exchange on the pooled client: send with the first-byte timeout, read the body
//! under the response-size cap, and guard the answer before the connector sees it (decode it
//! when the request carried a credential, scrub echoed secrets, withhold what still reveals one).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::super::decode;
use super::super::net::{UpstreamClient, error_chain, find_address_denied};
use super::super::trust::find_certificate_error;
use super::ConnectorGate;

/// Why one exchange produced no response.
pub(super) enum Failure {
    /// The resolved address is not allowed for the grant.
    Denied(String),
    Failed {
        reason: String,
        code: HttpError,
        /// A connection error (refused, reset, cut mid-body): retryable for idempotent requests.
        connection: bool,
        /// The status, when headers arrived before the failure.
        status: Option<u16>,
    },
    /// The upstream answered, but the gate will not hand the answer over (a coding it cannot
    /// decode, or a secret it cannot redact). Not an upstream failure: the breaker is not fed.
    Withheld {
        reason: String,
        code: HttpError,
        status: u16,
    },
}

/// An answer the connector may have: its head, its body, whether a secret was scrubbed, and
/// whether it is a success that declares JSON but does not parse (only looked at when asked).
pub(super) type Answer = (http::response::Parts, Bytes, bool, bool);

/// A body at least this large has its JSON checked on the blocking pool while the guard scans
/// it: both read the whole body (a sync page is ~1 MB), one after the other on the request's
/// critical path otherwise. Below it, a thread hop costs more than it saves.
const CHECK_JSON_ALONGSIDE: usize = 128 * 1024;

impl ConnectorGate {
    /// One upstream exchange: send, read the (capped) body, then guard the answer. With
    /// `check_json` (the request could be retried), a success that declares JSON is parsed, so
    /// that one cut short or garbled is asked again rather than handed over.
    pub(super) async fn exchange(
        &self,
        client: &UpstreamClient,
        req: Request<Full<Bytes>>,
        timeout: Duration,
        credentialed: bool,
        check_json: bool,
    ) -> Result<Answer, Failure> {
        let (rparts, bytes) = self.fetch(client, req, timeout).await?;
        let check = |parts: &http::response::Parts| {
            check_json && parts.status.is_success() && declares_json(&parts.headers)
        };
        // Started early only when the guard scans for a revealed credential (the work to
        // overlap), and only on bytes it hands over unchanged unless it scrubs: a body under a
        // content coding may be decoded first.
        let alongside = (check(&rparts)
            && credentialed
            && !self.scrubber.is_empty()
            && bytes.len() >= CHECK_JSON_ALONGSIDE
            && !rparts.headers.contains_key(header::CONTENT_ENCODING))
        .then(|| {
            let body = bytes.clone();
            tokio::task::spawn_blocking(move || !parses_as_json(&body))
        });
        let (rparts, bytes, scrubbed) = self.guard(rparts, bytes, credentialed)?;
        let malformed = match alongside {
            _ if !check(&rparts) => false,
            Some(early) if !scrubbed => match early.await {
                Ok(malformed) => malformed,
                Err(_) => !parses_as_json(&bytes),
            },
            _ => !parses_as_json(&bytes),
        };
        Ok((rparts, bytes, scrubbed, malformed))
    }

    /// Sends and reads the whole body, within the first-byte timeout, the invocation timeout
    /// and the response-size cap.
    async fn fetch(
        &self,
        client: &UpstreamClient,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(http::response::Parts, Bytes), Failure> {
        let response = match tokio::time::timeout(timeout, client.request(req)).await {
            Err(_) => {
                return Err(Failure::Failed {
                    reason: format!("no response headers within {timeout:?}"),
                    code: HttpError::HttpResponseTimeout,
                    connection: false,
                    status: None,
                });
            }
            Ok(Err(e)) => return Err(connection_failure(&e)),
            Ok(Ok(r)) => r,
        };
        let (rparts, rbody) = response.into_parts();
        let max = self.limits.max_response_bytes;
        let status = rparts.status.as_u16();
        let read = tokio::time::timeout(self.limits.timeout, Limited::new(rbody, max).collect());
        match read.await {
            Ok(Ok(b)) => Ok((rparts, b.to_bytes())),
            Ok(Err(e))
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(Failure::Failed {
                    reason: format!("{status} response body larger than {max} bytes"),
                    code: HttpError::HttpResponseBodySize(Some(max as u64)),
                    connection: false,
                    status: Some(status),
                })
            }
            // A connection cut mid-body is a connection error: worth a retry.
            Ok(Err(e)) => Err(Failure::Failed {
                reason: format!("{status} response body failed: {e}"),
                code: HttpError::HttpResponseIncomplete,
                connection: true,
                status: Some(status),
            }),
            Err(_) => Err(Failure::Failed {
                reason: format!("{status} response body timed out"),
                code: HttpError::HttpResponseTimeout,
                connection: false,
                status: Some(status),
            }),
        }
    }

    /// What the connector may see of an answer: header values and body scrubbed of secret
    /// values; for a credentialed request the body decoded first, and the answer withheld when
    /// it still reveals the credential under an encoding that cannot be redacted in place.
    fn guard(
        &self,
        mut rparts: http::response::Parts,
        bytes: Bytes,
        credentialed: bool,
    ) -> Result<(http::response::Parts, Bytes, bool), Failure> {
        let status = rparts.status.as_u16();
        // Header values echoing a credential are scrubbed like bodies.
        if !self.scrubber.is_empty() {
            for v in rparts.headers.values_mut() {
                if let Some(clean) = self.scrubber.scrub_bytes_if_needed(v.as_bytes())
                    && let Ok(nv) = http::HeaderValue::from_bytes(&clean)
                {
                    *v = nv;
                }
            }
        }
        // Compressed, the echo of a credential would pass the scrubber untouched: decode first,
        // and refuse a coding the gate cannot decode rather than pass it through.
        let bytes = if credentialed {
            self.decode(&mut rparts.headers, bytes, status)?
        } else {
            bytes
        };
        if self.scrubber.is_empty() {
            return Ok((rparts, bytes, false));
        }
        // An upstream that echoes a credential back must not hand it to the connector.
        let (bytes, scrubbed) = match self.scrubber.scrub_bytes_if_needed(&bytes) {
            Some(clean) => (Bytes::from(clean), true),
            None => (bytes, false),
        };
        // What is left may still reveal the injected credential under an encoding that cannot
        // be redacted in place (JSON `\u` escapes, percent-encoding, quoted-printable...):
        // withhold it. (Without an injected credential there is nothing to reflect.)
        let revealed = credentialed
            .then(|| {
                rparts
                    .headers
                    .values()
                    .find_map(|v| self.scrubber.reveals(v.as_bytes()))
                    .or_else(|| match scrubbed {
                        true => self.scrubber.reveals(&bytes),
                        // The scrub just found no secret in the bytes themselves.
                        false => self.scrubber.reveals_decoded(&bytes),
                    })
            })
            .flatten();
        if let Some(how) = revealed {
            return Err(Failure::Withheld {
                reason: format!(
                    "{status} response withheld by the gate: it reveals a secret value ({how})"
                ),
                code: HttpError::InternalError(Some(
                    "response withheld by the gate: it reveals a secret value".into(),
                )),
                status,
            });
        }
        if scrubbed && rparts.headers.contains_key(header::CONTENT_LENGTH) {
            rparts
                .headers
                .insert(header::CONTENT_LENGTH, http::HeaderValue::from(bytes.len()));
        }
        Ok((rparts, bytes, scrubbed))
    }

    /// The body in its identity form, or the refusal of a coding the gate cannot read.
    fn decode(
        &self,
        headers: &mut http::HeaderMap,
        bytes: Bytes,
        status: u16,
    ) -> Result<Bytes, Failure> {
        let max = self.limits.max_response_bytes;
        decode::decode_body(headers, bytes, max).map_err(|e| {
            let code = match &e {
                decode::DecodeError::TooLarge(_) => {
                    HttpError::HttpResponseBodySize(Some(max as u64))
                }
                decode::DecodeError::Unsupported(c) | decode::DecodeError::Corrupt(c) => {
                    HttpError::HttpResponseContentCoding(Some(c.clone()))
                }
            };
            Failure::Withheld {
                reason: format!("{status} response refused by the gate: {e}"),
                code,
                status,
            }
        })
    }
}

/// A request that got no response head: an address the grant does not allow (found by the
/// resolver), or a connection failure.
fn connection_failure(e: &hyper_util::client::legacy::Error) -> Failure {
    if let Some(d) = find_address_denied(e) {
        return Failure::Denied(d.to_string());
    }
    if let Some(tls) = find_certificate_error(e) {
        // Named plainly, with the settings that fix it: the usual cause is a private CA.
        let (code, hint) = match tls {
            rustls::Error::InvalidCertificate(_) => (
                HttpError::TlsCertificateError,
                "; if the upstream's certificate comes from a private CA, name its PEM file in \
                 [outbound] ca_file or the grant's tls = { ca_file = \"...\" }",
            ),
            rustls::Error::AlertReceived(_) => (
                HttpError::TlsAlertReceived {
                    alert_id: None,
                    alert_message: None,
                },
                "",
            ),
            _ => (HttpError::TlsProtocolError, ""),
        };
        return Failure::Failed {
            reason: format!("TLS failed: {tls}{hint}"),
            code,
            connection: false,
            status: None,
        };
    }
    let code = if e.is_connect() {
        HttpError::ConnectionRefused
    } else {
        HttpError::HttpProtocolError
    };
    Failure::Failed {
        reason: format!("connection failed: {}", error_chain(e)),
        code,
        connection: true,
        status: None,
    }
}

/// Whether the `Content-Type` says JSON.
fn declares_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let ct = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            ct == "application/json" || ct.ends_with("+json")
        })
        .unwrap_or(false)
}

/// Whether a body parses as JSON; an empty one counts (nothing was cut short).
fn parses_as_json(bytes: &[u8]) -> bool {
    bytes.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

pub(super) fn build_request(parts: &http::request::Parts, body: Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req
}

/// An in-memory answer in the shape `wasi:http` hands to the guest.
pub(super) fn respond(
    status: http::StatusCode,
    headers: http::HeaderMap,
    bytes: Bytes,
) -> (
    Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
) {
    let body: WasiBody = Full::new(bytes)
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async { Ok(()) });
    (resp, io)
}
