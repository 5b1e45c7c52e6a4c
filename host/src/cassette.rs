//! Cassettes: a connector's upstream exchanges recorded to a file and served back offline.
//!
//! Recording (`airlock record`, `airlock conformance --record`): the gate hands every exchange
//! the connector saw — its own request (never the credentials the gate injected) and the answer
//! it got — to a [`Recorder`]. [`Recorder::save`] removes every secret value the host knows and
//! writes versioned JSON with a stable layout, so a re-recording diffs cleanly.
//!
//! Replay (`--replay FILE`, or `replay = "FILE"` on a connector): the gate still enforces the
//! grants, then answers from a [`Replay`] instead of the network. Requests match on method, URL
//! and body; identical requests get their recordings in recorded order, and once those are used
//! up the last one again. An unmatched request gets a 599 with `x-airlock-gate: no-recording`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use wasmtime_wasi_http::Error as HttpError;

use crate::scrub::Scrubber;

/// The cassette format this host writes and reads.
pub const VERSION: u32 = 1;

/// Status of the gate's answer to a request the cassette has no recording for.
pub const NO_RECORDING_STATUS: u16 = 599;

/// Headers never written to a cassette: credentials (whoever set them), and framing headers
/// (the replayed body carries its own length). `Date` stays: connectors use it as the upstream's
/// clock (watermarks, `updated-at` of snapshot records).
const DROPPED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// How a connector's gate uses a cassette (chosen per connector when the daemon starts).
#[derive(Clone)]
pub enum CassetteMode {
    /// Send upstream as usual and hand every exchange to this recorder.
    Record(Arc<Recorder>),
    /// Answer from this file instead of the network.
    Replay(PathBuf),
}

impl fmt::Debug for CassetteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CassetteMode::Record(_) => f.write_str("Record"),
            CassetteMode::Replay(p) => write!(f, "Replay({})", p.display()),
        }
    }
}

/// The cassette each connector uses, chosen when the daemon starts (the CLI's `--record` and
/// `--replay`); a connector absent here uses its config's `replay = "FILE"`, if any.
pub type Cassettes = std::collections::BTreeMap<String, CassetteMode>;

/// Every connector of `ids` on the cassette `mode`.
pub fn for_each(ids: &[String], mode: &CassetteMode) -> Cassettes {
    ids.iter().map(|id| (id.clone(), mode.clone())).collect()
}

/// What the gate holds: a recorder, or a loaded cassette.
pub enum GateCassette {
    Record(Arc<Recorder>),
    Replay(Arc<Replay>),
}

// ---- the file ---------------------------------------------------------------------------------

/// A cassette file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cassette {
    pub version: u32,
    /// The connector id it was recorded from (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    #[serde(default)]
    pub exchanges: Vec<Exchange>,
}

/// One request the connector sent and what it got back: a response (`status`, headers, body) or
/// a transport `error`. Bodies are text when UTF-8, else base64 (`*_body_base64`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, HeaderValues>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_headers: BTreeMap<String, HeaderValues>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body_base64: Option<String>,
    /// The transport error the connector got instead of a response (`connection-refused`,
    /// `response-timeout`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A header's value, or its values when it was repeated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValues {
    One(String),
    Many(Vec<String>),
}

impl HeaderValues {
    fn values(&self) -> Vec<&str> {
        match self {
            HeaderValues::One(v) => vec![v.as_str()],
            HeaderValues::Many(vs) => vs.iter().map(String::as_str).collect(),
        }
    }
}

// ---- recording --------------------------------------------------------------------------------

/// What the connector got for a recorded request.
pub enum Outcome {
    Response {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Error(String),
}

struct Captured {
    method: String,
    url: String,
    request_headers: HeaderMap,
    request_body: Bytes,
    outcome: Outcome,
    /// The gate's credential headers (its grants' auth headers), dropped like the fixed list.
    credential_headers: Vec<HeaderName>,
}

/// Collects exchanges in the order the connector saw them; scrubs when saving.
pub struct Recorder {
    scrubber: Scrubber,
    captured: Mutex<Vec<Captured>>,
}

impl Recorder {
    /// `scrubber` must be the host's (it learns every secret and OAuth token as they appear).
    pub fn new(scrubber: Scrubber) -> Recorder {
        Recorder {
            scrubber,
            captured: Mutex::new(Vec::new()),
        }
    }

    /// Adds one exchange. `request_headers` are the connector's own (the gate removed any
    /// credential header before this); `credential_headers` are dropped from both sides anyway.
    pub fn record(
        &self,
        method: &str,
        url: &str,
        request_headers: HeaderMap,
        request_body: Bytes,
        outcome: Outcome,
        credential_headers: Vec<HeaderName>,
    ) {
        let c = Captured {
            method: method.to_string(),
            url: url.to_string(),
            request_headers,
            request_body,
            outcome,
            credential_headers,
        };
        if let Ok(mut v) = self.captured.lock() {
            v.push(c);
        }
    }

    /// How many exchanges were recorded so far.
    pub fn len(&self) -> usize {
        self.captured.lock().map(|v| v.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cassette, every secret value the scrubber knows replaced by `[REDACTED]`.
    pub fn cassette(&self, connector: &str) -> Cassette {
        let captured = self.captured.lock();
        let exchanges = match &captured {
            Ok(v) => v.iter().map(|c| self.exchange(c)).collect(),
            Err(_) => Vec::new(),
        };
        Cassette {
            version: VERSION,
            connector: Some(connector.to_string()),
            exchanges,
        }
    }

    /// The cassette as pretty JSON, scrubbed (field by field, then the text once more, so a
    /// secret that only appears once escaped or split across fields is caught too).
    pub fn to_json(&self, connector: &str) -> String {
        let text = serde_json::to_string_pretty(&self.cassette(connector))
            .unwrap_or_else(|e| format!("{{\"error\": \"cassette not serializable: {e}\"}}"));
        let mut text = self.scrubber.scrub(&text);
        text.push('\n');
        text
    }

    /// Writes the cassette to `path` (through a temporary file, so a failed write leaves no
    /// half cassette). Returns the number of exchanges.
    pub fn save(&self, path: &Path, connector: &str) -> Result<usize, String> {
        let n = self.len();
        let text = self.to_json(connector);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), path.display()))?;
        Ok(n)
    }

    fn exchange(&self, c: &Captured) -> Exchange {
        let s = &self.scrubber;
        let mut e = Exchange {
            method: c.method.clone(),
            url: s.scrub(&c.url),
            request_headers: self.headers(&c.request_headers, &c.credential_headers),
            ..Exchange::default()
        };
        (e.request_body, e.request_body_base64) = self.body(&c.request_body);
        match &c.outcome {
            Outcome::Response {
                status,
                headers,
                body,
            } => {
                e.status = Some(status.as_u16());
                e.response_headers = self.headers(headers, &c.credential_headers);
                (e.response_body, e.response_body_base64) = self.body(body);
            }
            Outcome::Error(kind) => e.error = Some(kind.clone()),
        }
        e
    }

    fn headers(&self, h: &HeaderMap, credentials: &[HeaderName]) -> BTreeMap<String, HeaderValues> {
        let mut out: BTreeMap<String, HeaderValues> = BTreeMap::new();
        for (name, value) in h {
            if DROPPED_HEADERS.contains(&name.as_str()) || credentials.contains(name) {
                continue;
            }
            let v = self
                .scrubber
                .scrub(&String::from_utf8_lossy(value.as_bytes()));
            match out.remove(name.as_str()) {
                None => out.insert(name.to_string(), HeaderValues::One(v)),
                Some(HeaderValues::One(first)) => {
                    out.insert(name.to_string(), HeaderValues::Many(vec![first, v]))
                }
                Some(HeaderValues::Many(mut vs)) => {
                    vs.push(v);
                    out.insert(name.to_string(), HeaderValues::Many(vs))
                }
            };
        }
        out
    }

    /// (text, base64): empty bodies are left out.
    fn body(&self, b: &[u8]) -> (Option<String>, Option<String>) {
        if b.is_empty() {
            return (None, None);
        }
        let clean = self.scrubber.scrub_bytes(b);
        match String::from_utf8(clean) {
            Ok(text) => (Some(text), None),
            Err(e) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
            ),
        }
    }
}

// ---- replay -----------------------------------------------------------------------------------

/// What a recorded request is answered with.
pub enum Answer {
    Response {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Error(String),
}

/// Which recording a request got.
pub struct Served<'a> {
    /// Position in the file's `exchanges`, from 0.
    pub index: usize,
    pub answer: &'a Answer,
    /// Every recording of this request was already served; this is the last one again.
    pub repeat: bool,
}

type Key = (String, String, Bytes);

/// A loaded cassette, served in recorded order per request.
pub struct Replay {
    path: PathBuf,
    answers: Vec<Answer>,
    /// Per (method, url, body): the indexes of its recordings and how many were served.
    queues: Mutex<HashMap<Key, (Vec<usize>, usize)>>,
}

impl Replay {
    /// Reads and checks a cassette; errors name the file and, where there is one, the exchange.
    pub fn load(path: &Path) -> Result<Replay, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cassette {}: cannot read: {e}", path.display()))?;
        Replay::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Replay, String> {
        let file = path.display();
        // Read the version first so a future format gets a clear message, not a field error.
        let version = serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| format!("cassette {file}: not JSON: {e}"))?
            .get("version")
            .cloned();
        match version {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(VERSION)) => {}
            Some(v) => {
                return Err(format!(
                    "cassette {file}: version {v} is not supported (this airlock reads version {VERSION})"
                ));
            }
            None => {
                return Err(format!(
                    "cassette {file}: no \"version\" field (expected {VERSION})"
                ));
            }
        }
        let cassette: Cassette = serde_json::from_str(text)
            .map_err(|e| format!("cassette {file}: not a cassette: {e}"))?;
        let mut answers = Vec::with_capacity(cassette.exchanges.len());
        let mut queues: HashMap<Key, (Vec<usize>, usize)> = HashMap::new();
        for (i, e) in cassette.exchanges.iter().enumerate() {
            let (key, answer) =
                check(e).map_err(|m| format!("cassette {file}: exchanges[{i}]: {m}"))?;
            queues.entry(key).or_default().0.push(i);
            answers.push(answer);
        }
        Ok(Replay {
            path: path.to_path_buf(),
            answers,
            queues: Mutex::new(queues),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// The recording for this request, if there is one.
    pub fn next(&self, method: &str, url: &str, body: &[u8]) -> Option<Served<'_>> {
        let key = (
            method.to_ascii_uppercase(),
            url.to_string(),
            Bytes::copy_from_slice(body),
        );
        let mut queues = self.queues.lock().ok()?;
        let (items, served) = queues.get_mut(&key)?;
        let last = items.len().checked_sub(1)?;
        let repeat = *served > last;
        let index = items[(*served).min(last)];
        *served += 1;
        Some(Served {
            index,
            answer: self.answers.get(index)?,
            repeat,
        })
    }
}

/// Validates one exchange and turns it into its match key and answer.
fn check(e: &Exchange) -> Result<(Key, Answer), String> {
    let method = http::Method::from_bytes(e.method.as_bytes())
        .map_err(|_| format!("method `{}` is not an HTTP method", e.method))?;
    e.url
        .parse::<http::Uri>()
        .map_err(|err| format!("url `{}` is not a URL: {err}", e.url))?;
    let body = decode_body(
        &e.request_body,
        &e.request_body_base64,
        "request_body",
        "request_body_base64",
    )?;
    let key = (method.as_str().to_string(), e.url.clone(), body);
    let answer = match (e.status, &e.error) {
        (Some(_), Some(_)) => {
            return Err("has both `status` and `error`; a request got one or the other".into());
        }
        (None, None) => return Err("needs a `status` (a response) or an `error`".into()),
        (None, Some(kind)) => {
            if error_code(kind).is_none() {
                return Err(format!(
                    "error `{kind}` is not one of {}",
                    ERROR_NAMES.join(", ")
                ));
            }
            if !e.response_headers.is_empty()
                || e.response_body.is_some()
                || e.response_body_base64.is_some()
            {
                return Err("an `error` exchange has no response headers or body".into());
            }
            Answer::Error(kind.clone())
        }
        (Some(s), None) => {
            let status =
                StatusCode::from_u16(s).map_err(|_| format!("status {s} is not an HTTP status"))?;
            let body = decode_body(
                &e.response_body,
                &e.response_body_base64,
                "response_body",
                "response_body_base64",
            )?;
            let mut headers = HeaderMap::new();
            for (name, values) in &e.response_headers {
                let n = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("response header name `{name}` is not valid"))?;
                for v in values.values() {
                    let v = HeaderValue::from_str(v)
                        .map_err(|_| format!("response header `{name}` has an invalid value"))?;
                    headers.append(n.clone(), v);
                }
            }
            // Framing headers are not recorded; give the connector the one a live answer has.
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            Answer::Response {
                status,
                headers,
                body,
            }
        }
    };
    Ok((key, answer))
}

fn decode_body(
    text: &Option<String>,
    b64: &Option<String>,
    text_key: &str,
    b64_key: &str,
) -> Result<Bytes, String> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(format!("has both `{text_key}` and `{b64_key}`")),
        (Some(t), None) => Ok(Bytes::from(t.clone().into_bytes())),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map(Bytes::from)
            .map_err(|e| format!("`{b64_key}` is not base64: {e}")),
        (None, None) => Ok(Bytes::new()),
    }
}

// ---- transport errors -------------------------------------------------------------------------

const ERROR_NAMES: [&str; 7] = [
    "request-denied",
    "connection-refused",
    "protocol-error",
    "response-timeout",
    "response-body-size",
    "response-incomplete",
    "internal-error",
];

/// The cassette name of a transport error the gate answered with.
pub fn error_name(e: &HttpError) -> &'static str {
    match e {
        HttpError::HttpRequestDenied => "request-denied",
        HttpError::ConnectionRefused => "connection-refused",
        HttpError::HttpProtocolError => "protocol-error",
        HttpError::HttpResponseTimeout => "response-timeout",
        HttpError::HttpResponseBodySize(_) => "response-body-size",
        HttpError::HttpResponseIncomplete => "response-incomplete",
        _ => "internal-error",
    }
}

/// The transport error a recorded `error` replays as.
pub fn error_code(name: &str) -> Option<HttpError> {
    Some(match name {
        "request-denied" => HttpError::HttpRequestDenied,
        "connection-refused" => HttpError::ConnectionRefused,
        "protocol-error" => HttpError::HttpProtocolError,
        "response-timeout" => HttpError::HttpResponseTimeout,
        "response-body-size" => HttpError::HttpResponseBodySize(None),
        "response-incomplete" => HttpError::HttpResponseIncomplete,
        "internal-error" => HttpError::InternalError(Some("recorded internal error".into())),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn ok(body: &str) -> Outcome {
        Outcome::Response {
            status: StatusCode::OK,
            headers: headers(&[("content-type", "application/json")]),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn saved_cassette_holds_no_secret_in_any_encoding_or_credential_header() {
        let s = Scrubber::new();
        s.add("canary-tok-81f2aa");
        s.add_basic("me@example.com", "canary-pw-33c9d1");
        let rec = Recorder::new(s.clone());
        let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
        rec.record(
            "POST",
            "https://api.example.com/x?key=canary-tok-81f2aa",
            headers(&[
                ("accept", "application/json"),
                ("x-custom-auth", "whatever"),
                ("cookie", "session=abc"),
                ("x-note", "sent canary-tok-81f2aa"),
            ]),
            Bytes::from(format!("secret={}", b64("canary-tok-81f2aa"))),
            Outcome::Response {
                status: StatusCode::OK,
                headers: headers(&[
                    ("set-cookie", "sid=canary"),
                    (
                        "x-echo",
                        &format!("Basic {}", b64("me@example.com:canary-pw-33c9d1")),
                    ),
                ]),
                body: Bytes::from("you sent canary-pw-33c9d1 and canary-tok-81f2aa"),
            },
            vec![HeaderName::from_static("x-custom-auth")],
        );
        let text = rec.to_json("acme");
        for needle in [
            "canary-tok-81f2aa",
            "canary-pw-33c9d1",
            b64("canary-tok-81f2aa")
                .trim_end_matches('=')
                .to_string()
                .as_str(),
            b64("me@example.com:canary-pw-33c9d1").as_str(),
            "x-custom-auth",
            "set-cookie",
            "cookie",
            "session=abc",
        ] {
            assert!(!text.contains(needle), "`{needle}` in\n{text}");
        }
        assert!(text.contains("[REDACTED]"), "{text}");
        assert!(text.contains("\"version\": 1"), "{text}");
        // What remains is a valid cassette.
        Replay::parse(&text, Path::new("t.json")).expect("parses");
    }

    #[test]
    fn identical_requests_replay_in_recorded_order_then_repeat_the_last() {
        let rec = Recorder::new(Scrubber::new());
        for body in ["first", "second"] {
            rec.record(
                "GET",
                "https://a.example/x",
                HeaderMap::new(),
                Bytes::new(),
                ok(body),
                vec![],
            );
        }
        rec.record(
            "POST",
            "https://a.example/x",
            HeaderMap::new(),
            Bytes::from("q=1"),
            ok("posted"),
            vec![],
        );
        let r = Replay::parse(&rec.to_json("a"), Path::new("t.json")).expect("parse");
        let body = |s: Option<Served<'_>>| match s.map(|s| (s.answer, s.repeat)) {
            Some((Answer::Response { body, .. }, repeat)) => {
                (String::from_utf8_lossy(body).to_string(), repeat)
            }
            _ => ("<none>".to_string(), false),
        };
        assert_eq!(
            body(r.next("GET", "https://a.example/x", b"")),
            ("first".into(), false)
        );
        assert_eq!(
            body(r.next("GET", "https://a.example/x", b"")),
            ("second".into(), false)
        );
        assert_eq!(
            body(r.next("GET", "https://a.example/x", b"")),
            ("second".into(), true)
        );
        // Body and method are part of the match.
        assert_eq!(
            body(r.next("POST", "https://a.example/x", b"q=1")),
            ("posted".into(), false)
        );
        assert!(r.next("POST", "https://a.example/x", b"q=2").is_none());
        assert!(r.next("GET", "https://a.example/x?page=2", b"").is_none());
    }

    #[test]
    fn binary_bodies_round_trip_as_base64_and_errors_as_names() {
        let rec = Recorder::new(Scrubber::new());
        rec.record(
            "GET",
            "https://a.example/bin",
            HeaderMap::new(),
            Bytes::new(),
            Outcome::Response {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: Bytes::from_static(&[0xff, 0x00, 0xfe]),
            },
            vec![],
        );
        rec.record(
            "GET",
            "https://a.example/down",
            HeaderMap::new(),
            Bytes::new(),
            Outcome::Error(error_name(&HttpError::ConnectionRefused).into()),
            vec![],
        );
        let text = rec.to_json("a");
        assert!(text.contains("response_body_base64"), "{text}");
        let r = Replay::parse(&text, Path::new("t.json")).expect("parse");
        match r
            .next("GET", "https://a.example/bin", b"")
            .map(|s| s.answer)
        {
            Some(Answer::Response { body, headers, .. }) => {
                assert_eq!(&body[..], &[0xff, 0x00, 0xfe]);
                assert_eq!(
                    headers.get("content-length").map(|v| v.as_bytes()),
                    Some(&b"3"[..])
                );
            }
            _ => panic!("no binary answer"),
        }
        assert!(matches!(
            r.next("GET", "https://a.example/down", b"").map(|s| s.answer),
            Some(Answer::Error(k)) if k == "connection-refused"
        ));
    }

    #[test]
    fn malformed_cassettes_are_refused_with_the_file_and_the_problem() {
        let p = Path::new("tests/cassettes/x.json");
        let err = |text: &str| match Replay::parse(text, p) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e,
        };
        assert!(err("{").contains("cassette tests/cassettes/x.json: not JSON"));
        assert!(err(r#"{"exchanges": []}"#).contains("no \"version\""));
        assert!(err(r#"{"version": 2, "exchanges": []}"#).contains("version 2 is not supported"));
        assert!(err(r#"{"version": 1, "exchanges": [], "extra": 1}"#).contains("not a cassette"));
        let e = err(r#"{"version": 1, "exchanges": [{"method": "GET", "url": "https://a/"}]}"#);
        assert!(e.contains("exchanges[0]: needs a `status`"), "{e}");
        let e = err(
            r#"{"version": 1, "exchanges": [{"method": "GET", "url": "https://a/", "status": 200, "response_body_base64": "***"}]}"#,
        );
        assert!(
            e.contains("exchanges[0]: `response_body_base64` is not base64"),
            "{e}"
        );
        let e = err(
            r#"{"version": 1, "exchanges": [{"method": "GET", "url": "https://a/", "error": "gremlins"}]}"#,
        );
        assert!(e.contains("error `gremlins` is not one of"), "{e}");
        let e = err(
            r#"{"version": 1, "exchanges": [{"method": "G T", "url": "https://a/", "status": 200}]}"#,
        );
        assert!(e.contains("is not an HTTP method"), "{e}");
        let ok = Replay::parse(r#"{"version": 1, "exchanges": []}"#, p).expect("empty is fine");
        assert!(ok.is_empty());
    }
}
