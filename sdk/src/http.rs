//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Every request passes the host's outbound gate, which checks it against the connector's grants
//! and injects credentials, so connectors never set `Authorization` themselves.
//!
//! ```ignore
//! let page: serde_json::Value = Request::get(format!("{base}/wiki/api/v2/pages"))
//!     .query("limit", "25")
//!     .send()?      // non-2xx statuses become the matching `Error` case
//!     .json()?;
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, url};

/// Largest response body accepted (bytes).
pub const MAX_BODY: usize = 32 << 20;

/// HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// The method's name, e.g. `GET`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// An outgoing request, built fluently and sent with [`Request::send`].
#[derive(Clone, Debug)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// A builder step that failed (e.g. JSON serialization); reported by `send`.
    error: Option<String>,
}

impl Request {
    /// A request with `method` to the absolute `url`. `Accept: application/json` is sent unless
    /// another `Accept` header is set.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            error: None,
        }
    }
    /// A GET request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }
    /// A POST request (other methods: [`Request::new`]).
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// Add a header (repeatable; names are case-insensitive).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Append a query parameter; key and value are percent-encoded.
    pub fn query(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.url = url::with_query(&self.url, key, value.as_ref());
        self
    }

    /// Append the query parameters `pairs`, in order.
    pub fn queries(self, pairs: &[(&str, &str)]) -> Self {
        pairs
            .iter()
            .fold(self, |r, &(key, value)| r.query(key, value))
    }

    /// Append a query parameter only when `value` is `Some`.
    pub fn query_opt(self, key: &str, value: Option<impl AsRef<str>>) -> Self {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }

    /// Set a JSON body (and `Content-Type: application/json`).
    pub fn json(self, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.body(bytes, "application/json"),
            Err(e) => Request {
                error: Some(format!("cannot serialize request body: {e}")),
                ..self
            },
        }
    }

    /// Set a raw body with its content type.
    pub fn body(mut self, bytes: Vec<u8>, content_type: &str) -> Self {
        self.body = Some(bytes);
        self.header("Content-Type", content_type)
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The full URL including the query string.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same request (method, headers, body) sent to another URL.
    pub fn with_url(&self, url: impl Into<String>) -> Self {
        Request {
            url: url.into(),
            ..self.clone()
        }
    }

    /// Send the request; any non-2xx status becomes an error (see [`status_error`]).
    pub fn send(self) -> Result<Response> {
        self.send_raw()?.error_for_status()
    }

    /// [`Request::send`] for a record that may not exist: `None` when the upstream answers 404,
    /// any other error as is.
    pub fn send_opt(self) -> Result<Option<Response>> {
        none_if_not_found(self.send())
    }

    /// Send the request and return the response whatever its status. Transport failures are
    /// still errors: a denial by the host's gate is `forbidden`, anything else `upstream`.
    pub fn send_raw(self) -> Result<Response> {
        self.start()?.wait_raw()
    }

    /// Start the request and return at once: the host sends it while the connector goes on
    /// (e.g. turning the previous page into documents), and [`InFlight::wait`] collects the
    /// answer. Errors that need no round trip (a bad URL, a header the host refuses) come here.
    pub fn start(mut self) -> Result<InFlight> {
        if let Some(e) = self.error.take() {
            return Err(Error::internal(e));
        }
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            self.headers
                .push(("Accept".into(), "application/json".into()));
        }
        transport::start(self)
    }
}

/// A request the host is sending ([`Request::start`]). Dropping it abandons the request (the
/// host still audits it).
pub struct InFlight(transport::Pending);

impl InFlight {
    /// Wait for the answer; any non-2xx status becomes an error, as with [`Request::send`].
    pub fn wait(self) -> Result<Response> {
        self.wait_raw()?.error_for_status()
    }

    /// Wait for the answer, whatever its status, as with [`Request::send_raw`].
    pub fn wait_raw(self) -> Result<Response> {
        transport::wait(self.0, None)
    }

    /// [`InFlight::wait`] for at most `limit`: without an answer by then the request is dropped
    /// (the host audits it as abandoned) and the error is `upstream`.
    pub fn wait_for(self, limit: std::time::Duration) -> Result<Response> {
        transport::wait(self.0, Some(limit))?.error_for_status()
    }
}

/// A response with its body fully read.
#[derive(Clone, Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers in order received; names as sent by the upstream (look up with [`Response::header`]).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Method of the request that produced this response.
    pub method: Method,
    /// URL of the request that produced this response.
    pub url: String,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Link` header's `rel="next"` target, resolved against this response's URL, when it
    /// stays on the same origin (scheme, host and port): a next link elsewhere is not followed.
    pub fn next_link(&self) -> Option<String> {
        let link = crate::paging::link_header_next(self.header("link")?)?;
        let next = url::resolve(&self.url, &link);
        url::same_origin(&self.url, &next).then_some(next)
    }

    /// When the upstream answered, from its `Date` header, as RFC 3339; `None` without a valid
    /// one. The `updated-at` of a record the upstream gives no modification time.
    pub fn date(&self) -> Option<String> {
        self.header("date")
            .and_then(crate::text::http_date_to_rfc3339)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Deserialize the JSON body; a body that does not match `T` is an `upstream` error. `T`
    /// may borrow from the body (`&str`, [`crate::json::Text`]): a page read into records of
    /// only the fields a connector uses, its text not copied, is much cheaper than a `Value`.
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        // One UTF-8 check of the whole body, not one per borrowed string; a body that is not
        // UTF-8 goes to `from_slice` for its error, which says where.
        let parsed = match std::str::from_utf8(&self.body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(&self.body),
        };
        parsed.map_err(|e| {
            Error::upstream(format!(
                "{} {}: unexpected response body ({e}): {}",
                self.method.as_str(),
                url::path(&self.url),
                snippet(&self.body)
            ))
        })
    }

    /// The JSON value at `pointer` in the body (a record wrapped as `{"ticket": {...}}` is at
    /// `/ticket`), deserialized; missing or not matching `T` is an `upstream` error.
    pub fn json_at<T: DeserializeOwned>(&self, pointer: &str) -> Result<T> {
        let mut body: serde_json::Value = self.json()?;
        let value = body.pointer_mut(pointer).map(serde_json::Value::take);
        let fail = |e: String| {
            let path = url::path(&self.url);
            Error::upstream(format!("{} {path}: {e}", self.method.as_str()))
        };
        let value = value.ok_or_else(|| fail(format!("no `{pointer}` in the response")))?;
        serde_json::from_value(value).map_err(|e| fail(format!("unexpected `{pointer}` ({e})")))
    }

    /// `Ok(self)` for 2xx (and other non-error) statuses, else the error from [`status_error`].
    pub fn error_for_status(self) -> Result<Self> {
        match status_error(
            self.status,
            self.header("retry-after"),
            self.method,
            &self.url,
            &self.body,
        ) {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

/// `None` for a `not-found` error, the value or any other error as is.
fn none_if_not_found<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Seconds to wait after a 429 that carries no (or an unparseable) `Retry-After`.
pub const DEFAULT_RETRY_AFTER: u32 = 60;

/// The one place HTTP statuses become contract errors; `None` for statuses below 400.
///
/// 401 → `unauthorized`, 403 → `forbidden`, 404 → `not-found`, 429 → `rate-limited` (Retry-After
/// seconds, default [`DEFAULT_RETRY_AFTER`]), 503 with Retry-After → `rate-limited`, 400/409/413/
/// 414/422 → `invalid-input`, other 4xx and 5xx → `upstream`. Messages name the method, the URL
/// path (never query values) and a snippet of the upstream's error message.
pub fn status_error(
    status: u16,
    retry_after: Option<&str>,
    method: Method,
    url: &str,
    body: &[u8],
) -> Option<Error> {
    if status < 400 {
        return None;
    }
    let seconds = retry_after.and_then(|v| v.trim().parse::<u32>().ok());
    let msg = format!(
        "HTTP {status} from {} {}: {}",
        method.as_str(),
        url::path(url),
        snippet(body)
    );
    Some(match status {
        401 => Error::Unauthorized(msg),
        403 => Error::Forbidden(msg),
        404 => Error::NotFound(msg),
        429 => Error::RateLimited(seconds.unwrap_or(DEFAULT_RETRY_AFTER)),
        503 if retry_after.is_some() => Error::RateLimited(seconds.unwrap_or(DEFAULT_RETRY_AFTER)),
        400 | 409 | 413 | 414 | 422 => Error::InvalidInput(msg),
        _ => Error::Upstream(msg),
    })
}

/// A short, single-line excerpt of an error body: the message field of common JSON error
/// envelopes when there is one, else the text (HTML stripped), cut to 200 characters.
pub fn snippet(body: &[u8]) -> String {
    const FIELDS: [&str; 10] = [
        "/message",
        "/error/message",
        "/errorMessage",
        "/errorMessages/0",
        "/errors/0/title",
        "/errors/0/message",
        "/error_description",
        "/description",
        "/detail",
        "/error",
    ];
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            FIELDS.iter().find_map(|f| {
                v.pointer(f)?
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            })
        });
    let text = match from_json {
        Some(m) => m,
        None if text.trim_start().starts_with('<') => crate::html_to_text(&text),
        None => text.into_owned(),
    };
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((i, _)) = out.char_indices().nth(200) {
        out.truncate(i);
        out.push('…');
    }
    if out.is_empty() {
        "(empty body)".into()
    } else {
        out
    }
}

/// Map a `wasi:http` transport error to a contract error.
pub fn transport_error(
    code: &crate::bindings::wasi::http::types::ErrorCode,
    method: Method,
    url: &str,
) -> Error {
    use crate::bindings::wasi::http::types::ErrorCode;
    let target = format!("{} {}", method.as_str(), url::path(url));
    match code {
        ErrorCode::HttpRequestDenied => {
            Error::forbidden(format!("request denied by host policy: {target}"))
        }
        other => Error::upstream(format!("{target}: transport error: {other:?}")),
    }
}

mod transport {
    use super::{MAX_BODY, Method, Request, Response, transport_error};
    use crate::bindings::wasi::clocks::monotonic_clock;
    use crate::bindings::wasi::http::outgoing_handler;
    use crate::bindings::wasi::http::types::{
        self as wasi, Fields, IncomingBody, OutgoingBody, OutgoingRequest, Scheme,
    };
    use crate::bindings::wasi::io::poll;
    use crate::bindings::wasi::io::streams::StreamError;
    use crate::{Error, Result, url};

    /// What a request's errors name: its method and URL (the path only, in messages).
    struct Target<'a>(Method, &'a str);

    impl Target<'_> {
        fn fail(&self, code: &wasi::ErrorCode) -> Error {
            transport_error(code, self.0, self.1)
        }

        fn internal(&self, what: &str) -> Error {
            Error::internal(format!("{} {}: {what}", self.0.as_str(), url::path(self.1)))
        }
    }

    /// A request handed to the host, with what its errors name.
    pub(super) struct Pending {
        future: outgoing_handler::FutureIncomingResponse,
        method: Method,
        url: String,
    }

    pub(super) fn start(req: Request) -> Result<super::InFlight> {
        let Request {
            method,
            url: full_url,
            headers,
            body,
            ..
        } = req;
        let target = Target(method, &full_url);
        let (fail, internal) = (
            |c: &wasi::ErrorCode| target.fail(c),
            |w: &str| target.internal(w),
        );
        let parts = url::split(&full_url).ok_or_else(|| {
            Error::invalid_input(format!("not an absolute URL: {}", url::path(&full_url)))
        })?;

        let fields = Fields::new();
        for (name, value) in &headers {
            fields
                .append(name, value.as_bytes())
                .map_err(|e| Error::invalid_input(format!("header `{name}` rejected: {e:?}")))?;
        }
        let request = OutgoingRequest::new(fields);
        let scheme = match parts.scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_owned()),
        };
        let wasi_method = match method {
            Method::Get => wasi::Method::Get,
            Method::Head => wasi::Method::Head,
            Method::Post => wasi::Method::Post,
            Method::Put => wasi::Method::Put,
            Method::Patch => wasi::Method::Patch,
            Method::Delete => wasi::Method::Delete,
        };
        request
            .set_method(&wasi_method)
            .map_err(|()| internal("method rejected"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| internal("scheme rejected"))?;
        request
            .set_authority(Some(parts.authority))
            .map_err(|()| internal("authority rejected"))?;
        request
            .set_path_with_query(Some(parts.path_and_query))
            .map_err(|()| internal("path rejected"))?;

        let outgoing = request
            .body()
            .map_err(|()| internal("request body unavailable"))?;
        let future = outgoing_handler::handle(request, None).map_err(|e| fail(&e))?;
        // If the host refuses the request (its gate, a dead connection) or the upstream answers
        // early, the body stream closes; the reason, or the answer, arrives through `future`,
        // which is why a failed write is not reported by itself.
        write_body(outgoing, body.as_deref());
        Ok(super::InFlight(Pending {
            future,
            method,
            url: full_url,
        }))
    }

    pub(super) fn wait(pending: Pending, limit: Option<std::time::Duration>) -> Result<Response> {
        let Pending {
            future,
            method,
            url: full_url,
        } = pending;
        let target = Target(method, &full_url);
        let (fail, internal) = (
            |c: &wasi::ErrorCode| target.fail(c),
            |w: &str| target.internal(w),
        );
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let until = limit.map(|d| monotonic_clock::now().saturating_add(nanos(d)));
        let incoming = loop {
            match future.get() {
                Some(result) => {
                    break result
                        .map_err(|()| internal("response already taken"))?
                        .map_err(|e| fail(&e))?;
                }
                None => match until {
                    None => future.subscribe().block(),
                    Some(at) if monotonic_clock::now() >= at => {
                        let (method, path) = (method.as_str(), url::path(&full_url));
                        return Err(Error::upstream(format!(
                            "{method} {path}: no answer within {:?}",
                            limit.unwrap_or_default()
                        )));
                    }
                    Some(at) => {
                        let (answer, timer) =
                            (future.subscribe(), monotonic_clock::subscribe_instant(at));
                        poll::poll(&[&answer, &timer]);
                    }
                },
            }
        };
        let status = incoming.status();
        let headers: Vec<(String, String)> = incoming
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let body = incoming
            .consume()
            .map_err(|()| internal("response body unavailable"))?;
        // Read in as few pieces as the host has ready (the gate holds a whole answer, so one),
        // into a buffer sized by the declared length: 64 KiB reads into a buffer that doubled as
        // it grew copied a 1 MB page twice and touched twice the fresh memory.
        let declared = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .map_or(0, |n| n.min(MAX_BODY));
        let mut bytes = Vec::new();
        {
            let stream = body
                .stream()
                .map_err(|()| internal("response body stream unavailable"))?;
            loop {
                match stream.blocking_read(MAX_BODY as u64 + 1) {
                    Ok(chunk) if bytes.is_empty() => {
                        bytes = chunk;
                        bytes.reserve(declared.saturating_sub(bytes.len()));
                    }
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(stream_error(e, &fail, &internal)),
                }
                if bytes.len() > MAX_BODY {
                    return Err(Error::upstream(format!(
                        "response body exceeds {MAX_BODY} bytes"
                    )));
                }
            }
        }
        drop(IncomingBody::finish(body));
        Ok(Response {
            status,
            headers,
            body: bytes,
            method,
            url: full_url,
        })
    }

    /// Write and finish the request body; failures surface through the response future.
    fn write_body(outgoing: OutgoingBody, body: Option<&[u8]>) {
        if let Some(bytes) = body {
            let Ok(stream) = outgoing.write() else { return };
            for chunk in bytes.chunks(4096) {
                if stream.blocking_write_and_flush(chunk).is_err() {
                    return;
                }
            }
        }
        let _ = OutgoingBody::finish(outgoing, None);
    }

    fn stream_error(
        e: StreamError,
        fail: &dyn Fn(&wasi::ErrorCode) -> Error,
        internal: &dyn Fn(&str) -> Error,
    ) -> Error {
        match e {
            StreamError::LastOperationFailed(err) => match wasi::http_error_code(&err) {
                Some(code) => fail(&code),
                None => internal(&format!("stream failed: {}", err.to_debug_string())),
            },
            StreamError::Closed => internal("stream closed early"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_link(url: &str, link: &str) -> Response {
        Response {
            status: 200,
            headers: vec![("Link".into(), link.into())],
            body: vec![],
            method: Method::Get,
            url: url.into(),
        }
    }

    #[test]
    fn next_link_resolves_the_link_header_and_stays_on_the_origin() {
        let r = with_link(
            "https://x.example.com/api/v2/items?page=1",
            r#"<https://x.example.com/api/v2/items?page=1>; rel="prev", </api/v2/items?page=2>; rel="next""#,
        );
        assert_eq!(
            r.next_link().as_deref(),
            Some("https://x.example.com/api/v2/items?page=2")
        );
        let away = with_link(
            "https://x.example.com/api/items",
            r#"<https://evil.example.net/items?page=2>; rel="next""#,
        );
        assert_eq!(away.next_link(), None);
        assert_eq!(with_link("https://x.example.com/a", "").next_link(), None);
    }
    #[test]
    fn a_wrapped_record_its_date_and_a_missing_one() {
        let mut r = with_link("https://x.example.com/api/v2/tickets/7.json?x=1", "");
        r.body = br#"{"ticket": {"id": 7, "subject": "S"}}"#.to_vec();
        r.headers
            .push(("Date".into(), "Wed, 25 Nov 2026 23:18:39 GMT".into()));
        let t: serde_json::Value = r.json_at("/ticket").unwrap();
        assert_eq!(t["id"], 7);
        assert_eq!(r.date().as_deref(), Some("2026-11-25T23:18:39Z"));
        let Err(Error::Upstream(m)) = r.json_at::<serde_json::Value>("/article") else {
            panic!("a missing record is an upstream error")
        };
        assert_eq!(
            m,
            "GET /api/v2/tickets/7.json: no `/article` in the response"
        );
        assert!(r.json_at::<u64>("/ticket").is_err());
        assert_eq!(with_link("https://x/", "").date(), None);
        assert_eq!(none_if_not_found(Ok(1)).unwrap(), Some(1));
        let gone: Result<u8> = Err(Error::not_found("x"));
        assert_eq!(none_if_not_found(gone).unwrap(), None);
        assert!(none_if_not_found::<u8>(Err(Error::upstream("x"))).is_err());
        let q = Request::get("https://h/s").queries(&[("a", "1"), ("b", "x y")]);
        assert_eq!(q.url(), "https://h/s?a=1&b=x%20y");
    }

    #[test]
    fn a_body_is_read_borrowing_its_text_and_one_that_is_not_utf8_is_an_upstream_error() {
        let mut r = with_link("https://x.example.com/api/items?page=1", "");
        r.body = r#"{"name": "caf\u00e9 é", "n": 1}"#.as_bytes().to_vec();
        #[derive(serde::Deserialize)]
        struct Item<'a> {
            #[serde(borrow)]
            name: std::borrow::Cow<'a, str>,
            n: u8,
        }
        let item: Item = r.json().unwrap();
        assert_eq!((item.name.as_ref(), item.n), ("café é", 1));
        r.body = b"{\"name\": \"caf\xe9\"}".to_vec();
        let Err(Error::Upstream(m)) = r.json::<serde_json::Value>() else {
            panic!("a body that is not UTF-8 is the upstream's error")
        };
        assert!(
            m.starts_with("GET /api/items: unexpected response body (invalid unicode"),
            "{m}"
        );
    }

    use crate::bindings::wasi::http::types::ErrorCode;

    fn err(status: u16, retry: Option<&str>, body: &str) -> Option<Error> {
        status_error(
            status,
            retry,
            Method::Get,
            "https://h.test/wiki/x?q=secret",
            body.as_bytes(),
        )
    }

    #[test]
    fn status_mapping() {
        assert!(err(200, None, "").is_none());
        assert!(err(304, None, "").is_none());
        let Some(Error::Unauthorized(m)) = err(401, None, r#"{"message":"bad token"}"#) else {
            panic!()
        };
        assert_eq!(m, "HTTP 401 from GET /wiki/x: bad token");
        assert!(!m.contains("secret"));
        assert!(matches!(err(403, None, ""), Some(Error::Forbidden(_))));
        let Some(Error::NotFound(m)) = err(
            404,
            None,
            r#"{"errors":[{"status":404,"title":"Not Found"}]}"#,
        ) else {
            panic!()
        };
        assert!(m.ends_with(": Not Found"), "{m}");
        assert!(matches!(
            err(429, Some("7"), ""),
            Some(Error::RateLimited(7))
        ));
        assert!(matches!(err(429, None, ""), Some(Error::RateLimited(60))));
        assert!(matches!(
            err(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), ""),
            Some(Error::RateLimited(60))
        ));
        assert!(matches!(
            err(503, Some("30"), ""),
            Some(Error::RateLimited(30))
        ));
        assert!(matches!(err(503, None, ""), Some(Error::Upstream(_))));
        assert!(matches!(err(400, None, ""), Some(Error::InvalidInput(_))));
        assert!(matches!(err(410, None, ""), Some(Error::Upstream(_))));
        let Some(Error::Upstream(m)) =
            err(500, None, "<html><body><h1>Oops</h1>   broke</body></html>")
        else {
            panic!()
        };
        assert_eq!(m, "HTTP 500 from GET /wiki/x: Oops broke");
    }

    #[test]
    fn snippets() {
        assert_eq!(snippet(b""), "(empty body)");
        assert_eq!(
            snippet(br#"{"errorMessages":["JQL bad"],"errors":{}}"#),
            "JQL bad"
        );
        assert_eq!(
            snippet(br#"{"error":{"code":"x","message":"throttled"}}"#),
            "throttled"
        );
        let long = "x".repeat(500);
        assert_eq!(snippet(long.as_bytes()).chars().count(), 201);
    }

    #[test]
    fn transport_errors() {
        let e = transport_error(
            &ErrorCode::HttpRequestDenied,
            Method::Post,
            "https://h/a?k=v",
        );
        assert!(matches!(e, Error::Forbidden(m) if m == "request denied by host policy: POST /a"));
        let e = transport_error(&ErrorCode::ConnectionRefused, Method::Get, "https://h/a");
        assert!(matches!(e, Error::Upstream(m) if m.contains("ConnectionRefused")));
    }

    #[test]
    fn building() {
        let r = Request::get("https://h/a")
            .query("q", "a b")
            .query_opt("x", None::<&str>)
            .query_opt("n", Some("1"));
        assert_eq!(r.url(), "https://h/a?q=a%20b&n=1");
        let r = Request::post("https://h/a").json(&serde_json::json!({"a": 1}));
        assert_eq!(r.body.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "Content-Type" && v == "application/json")
        );
        let resp = Response {
            status: 200,
            headers: vec![("Link".into(), "x".into())],
            body: b"{\"a\":1}".to_vec(),
            method: Method::Get,
            url: "https://h/a".into(),
        };
        assert_eq!(resp.header("link"), Some("x"));
        assert_eq!(resp.json::<serde_json::Value>().unwrap()["a"], 1);
        assert!(matches!(resp.json::<Vec<u8>>(), Err(Error::Upstream(_))));
    }
}
