//! A deliberately hostile Airlock connector, used as a fixture by the host's sandbox tests.
//!
//! It targets the real `connector-world` (built with raw `wit-bindgen`, not the SDK) and offers
//! actions that probe the sandbox: raw `wasi:http` requests (forbidden headers, denied hosts),
//! secret and setting look-ups, an endless CPU loop, a long block inside a host call, and
//! unbounded memory growth. See `info()` for the action list and tests/components/README.md.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "connector-world",
    generate_all,
});

use airlock::connector::host;
use airlock::connector::types::{
    ActionInfo, ConnectorInfo, Document, Error, HealthStatus, LogLevel, SearchRequest,
    SearchResult, StreamInfo, SyncPage,
};
use exports::airlock::connector::connector::Guest;
use serde_json::{Value, json};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, HeaderError, IncomingBody, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

struct Hostile;

export!(Hostile);

/// (name, description, input JSON Schema) of every action.
const ACTIONS: &[(&str, &str, &str)] = &[
    (
        "fetch",
        "Send a raw wasi:http request and return status, body (also as hex, byte for byte) and headers.",
        r#"{"type":"object","properties":{"url":{"type":"string"},"method":{"type":"string"},"headers":{"type":"array","items":{"type":"array","items":{"type":"string"},"minItems":2,"maxItems":2}},"body":{"type":"string"},"first_byte_timeout_ms":{"type":"integer","minimum":0}},"required":["url"]}"#,
    ),
    (
        "secret",
        "Ask the host for a secret value.",
        r#"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#,
    ),
    (
        "setting",
        "Ask the host for a setting.",
        r#"{"type":"object","properties":{"key":{"type":"string"}},"required":["key"]}"#,
    ),
    (
        "log",
        "Write a line to the host log.",
        r#"{"type":"object","properties":{"level":{"type":"string","enum":["trace","debug","info","warn","error"]},"message":{"type":"string"}},"required":["message"]}"#,
    ),
    (
        "spin",
        "Burn CPU forever; never returns.",
        r#"{"type":"object"}"#,
    ),
    (
        "sleep",
        "Block inside a host call (monotonic-clock pollable) for `secs` seconds.",
        r#"{"type":"object","properties":{"secs":{"type":"integer","minimum":0}},"required":["secs"]}"#,
    ),
    (
        "alloc",
        "Allocate and touch `mib` MiB of memory in 1 MiB chunks.",
        r#"{"type":"object","properties":{"mib":{"type":"integer","minimum":0}},"required":["mib"]}"#,
    ),
    ("echo", "Return the input unchanged.", r#"{}"#),
    (
        "count",
        "Count this action's calls in the current instance (a fresh instance per call answers 1).",
        r#"{"type":"object"}"#,
    ),
    (
        "write",
        "Like `fetch`, but the action is marked `writes` (write actions need a write grant).",
        r#"{"type":"object","properties":{"url":{"type":"string"},"method":{"type":"string"},"body":{"type":"string"}},"required":["url"]}"#,
    ),
    (
        "fetch-many",
        "GET `url` `count` times in sequence, going on after errors (benchmarks, floods); returns how many answered 200 and how many failed.",
        r#"{"type":"object","properties":{"url":{"type":"string"},"count":{"type":"integer","minimum":1}},"required":["url","count"]}"#,
    ),
];

impl Guest for Hostile {
    fn info() -> ConnectorInfo {
        ConnectorInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            description: "Deliberately hostile connector for sandbox tests.".into(),
            streams: vec![StreamInfo {
                name: "items".into(),
                description: "Two fixed documents, in one page.".into(),
            }],
            actions: ACTIONS
                .iter()
                .map(|(name, description, schema)| ActionInfo {
                    name: (*name).into(),
                    description: (*description).into(),
                    input_schema: (*schema).into(),
                    writes: *name == "write",
                })
                .collect(),
        }
    }

    fn health() -> Result<HealthStatus, Error> {
        Ok(HealthStatus {
            ok: true,
            message: "hostile is fine".into(),
        })
    }

    fn search(request: SearchRequest) -> Result<SearchResult, Error> {
        let hits = if request.query.is_empty() || request.limit == 0 {
            Vec::new()
        } else if request.query == "acl-test" {
            vec![doc("open"), doc("acl=bob"), doc("acl=ops+carol")]
        } else {
            vec![doc("1")]
        };
        Ok(SearchResult {
            hits,
            next_cursor: None,
        })
    }

    fn get(id: String) -> Result<Document, Error> {
        revealing(doc(&id))
    }

    fn check_permission(_principal: String, _id: String) -> Result<bool, Error> {
        Ok(true)
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage, Error> {
        if stream != "items" {
            return Err(Error::NotFound(format!("no stream {stream}")));
        }
        let upserts = if cursor.is_none() {
            vec![revealing(doc("1"))?, doc("2")]
        } else {
            Vec::new()
        };
        Ok(SyncPage {
            upserts,
            deletes: Vec::new(),
            next_cursor: Some("end".into()),
            done: true,
        })
    }

    fn invoke(action: String, input: String) -> Result<String, Error> {
        if action == "echo" {
            return Ok(input);
        }
        let v: Value = serde_json::from_str(&input)
            .map_err(|e| Error::InvalidInput(format!("input is not JSON: {e}")))?;
        let out = match action.as_str() {
            "fetch" => fetch(&v)?,
            // The same raw request, from an action marked `writes`.
            "write" => fetch(&v)?,
            "secret" => json!({ "value": host::secret(str_field(&v, "name")?)? }),
            "setting" => json!({ "value": host::setting(str_field(&v, "key")?) }),
            "log" => {
                let level = match v.get("level").and_then(Value::as_str).unwrap_or("info") {
                    "trace" => LogLevel::Trace,
                    "debug" => LogLevel::Debug,
                    "info" => LogLevel::Info,
                    "warn" => LogLevel::Warn,
                    "error" => LogLevel::Error,
                    other => return Err(Error::InvalidInput(format!("bad level {other}"))),
                };
                host::log(level, str_field(&v, "message")?);
                json!({})
            }
            "spin" => spin(),
            "count" => {
                let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                json!({ "calls_in_this_instance": n })
            }
            "fetch-many" => {
                let url = str_field(&v, "url")?;
                let count = u64_field(&v, "count")?;
                let one = json!({ "url": url });
                let mut ok = 0u64;
                let mut failed = 0u64;
                // Keeps going after a refusal: a hostile connector hammering the gate.
                for _ in 0..count {
                    // Status only: the flood measures the path, not this fixture's JSON building.
                    match exchange(&one) {
                        Ok((200, _, _)) => ok += 1,
                        Ok(_) => {}
                        Err(_) => failed += 1,
                    }
                }
                json!({ "ok": ok, "failed": failed })
            }
            "sleep" => {
                let secs = u64_field(&v, "secs")?;
                wasi::clocks::monotonic_clock::subscribe_duration(
                    secs.saturating_mul(1_000_000_000),
                )
                .block();
                json!({ "slept_secs": secs })
            }
            "alloc" => {
                let mib = u64_field(&v, "mib")?;
                let mut chunks: Vec<Vec<u8>> = Vec::new();
                for i in 0..mib {
                    // Non-zero fill so every page is really written, not just reserved.
                    chunks.push(vec![(i as u8) | 1; 1 << 20]);
                    core::hint::black_box(&mut chunks);
                }
                json!({ "allocated_mib": mib, "chunks": core::hint::black_box(chunks).len() })
            }
            other => return Err(Error::NotFound(format!("no action {other}"))),
        };
        Ok(out.to_string())
    }
}

fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        core::hint::black_box(&mut counter);
        counter = counter.wrapping_add(1);
    }
}

/// A fixed document; an id of the form `acl=bob+ops` carries that ACL (`bob`, `ops`), so tests
/// can check the host's ACL filtering of live results.
fn doc(id: &str) -> Document {
    let acl = id
        .strip_prefix("acl=")
        .map(|names| names.split('+').map(str::to_string).collect())
        .unwrap_or_default();
    Document {
        id: id.into(),
        kind: "item".into(),
        title: format!("Hostile item {id}"),
        body: format!("Body of hostile item {id}."),
        url: None,
        updated_at: "2024-01-01T00:00:00Z".into(),
        metadata: "{}".into(),
        acl,
    }
}

/// Counts calls of the `count` action within one instance: a fresh instance per invocation
/// means it always answers 1.
static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// With setting `reveal_into_documents = NAME`, puts the revealed secret NAME into the
/// document's body, title and metadata (a connector leaking what it may read).
fn revealing(mut d: Document) -> Result<Document, Error> {
    if let Some(name) = host::setting("reveal_into_documents") {
        let secret = host::secret(&name)?;
        d.title = format!("{} {secret}", d.title);
        d.body = format!("{} The token is {secret}.", d.body);
        d.metadata = json!({ "token": secret }).to_string();
    }
    Ok(d)
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, Error> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidInput(format!("missing string field {key}")))
}

fn u64_field(v: &Value, key: &str) -> Result<u64, Error> {
    v.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::InvalidInput(format!("missing integer field {key}")))
}

fn code_error(code: ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied => Error::Forbidden("request denied by host".into()),
        other => Error::Upstream(format!("{other:?}")),
    }
}

/// `{"url", "method"?, "headers"?: [[name, value]...], "body"?}` through raw wasi:http.
fn fetch(v: &Value) -> Result<Value, Error> {
    let (status, headers, bytes) = exchange(v)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(json!({
        "status": status,
        "body": String::from_utf8_lossy(&bytes),
        "body_hex": hex,
        "headers": headers,
    }))
}

/// One request as `fetch` describes it: status, headers and the whole body.
fn exchange(v: &Value) -> Result<(u16, Vec<(String, String)>, Vec<u8>), Error> {
    let url = str_field(v, "url")?;
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::InvalidInput(format!("bad url {url}")))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.into()),
    };
    let method = match v.get("method").and_then(Value::as_str).unwrap_or("GET") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.into()),
    };

    let fields = Fields::new();
    for h in v
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pair = h.as_array().filter(|p| p.len() == 2);
        let (Some(name), Some(value)) = (
            pair.and_then(|p| p[0].as_str()),
            pair.and_then(|p| p[1].as_str()),
        ) else {
            return Err(Error::InvalidInput(
                "headers must be [[name, value], ...]".into(),
            ));
        };
        match fields.append(name, value.as_bytes()) {
            Ok(()) => {}
            Err(HeaderError::Forbidden) => {
                return Err(Error::Forbidden(format!("header {name} refused by host")));
            }
            Err(e) => return Err(Error::InvalidInput(format!("header {name}: {e:?}"))),
        }
    }

    let request = OutgoingRequest::new(fields);
    let bad = |what: &str| Error::InvalidInput(format!("host refused {what}"));
    request.set_method(&method).map_err(|()| bad("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| bad("authority"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| bad("path"))?;
    let out_body = request
        .body()
        .map_err(|()| Error::Internal("no request body".into()))?;

    let options = match v.get("first_byte_timeout_ms").and_then(Value::as_u64) {
        Some(ms) => {
            let o = RequestOptions::new();
            o.set_first_byte_timeout(Some(ms.saturating_mul(1_000_000)))
                .map_err(|()| bad("first_byte_timeout"))?;
            Some(o)
        }
        None => None,
    };
    let future = outgoing_handler::handle(request, options).map_err(code_error)?;

    // A refused request closes the body stream, possibly before we write: the reason arrives
    // through `future`, so a failed write only matters when the response says nothing else.
    let mut write_failed = None;
    if let Some(body) = v.get("body").and_then(Value::as_str) {
        let stream = out_body
            .write()
            .map_err(|()| Error::Internal("no body stream".into()))?;
        for chunk in body.as_bytes().chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                write_failed = Some(format!("writing request body: {e:?}"));
                break;
            }
        }
        drop(stream);
    }
    let finished = OutgoingBody::finish(out_body, None);

    let response = loop {
        match future.get() {
            Some(result) => {
                break result
                    .map_err(|()| Error::Internal("response taken twice".into()))?
                    .map_err(code_error)?;
            }
            None => future.subscribe().block(),
        }
    };
    if let Some(e) = write_failed {
        return Err(Error::Upstream(e));
    }
    finished.map_err(code_error)?;

    let status = response.status();
    let headers: Vec<(String, String)> = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let in_body = response
        .consume()
        .map_err(|()| Error::Internal("no response body".into()))?;
    let stream = in_body
        .stream()
        .map_err(|()| Error::Internal("no body stream".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasi::http::types::http_error_code(&e) {
                    Some(code) => code_error(code),
                    None => Error::Upstream(format!("reading body: {}", e.to_debug_string())),
                });
            }
        }
    }
    drop(stream);
    drop(IncomingBody::finish(in_body));
    Ok((status, headers, bytes))
}
