//! A connector that breaks one contract rule on demand, used by the conformance kit's tests.
//!
//! Setting `fault` selects the bug (default `none`, a well-behaved connector):
//!
//! - `cursor-loop`: page 2 of `items` is not done and hands back the cursor it was given;
//! - `bad-schema`: the `echo` action's input schema is not valid JSON Schema;
//! - `outside-grant`: every `sync` page also requests `{base_url}/admin/export`, outside the
//!   `{base_url}/api/` grant, and ignores the gate's refusal;
//! - `resume-duplicates`: each page after the first repeats the last record of the page before
//!   (an inclusive-boundary bug), so resuming from a committed cursor returns a committed record;
//! - `wrong-error`: an unknown action answers `internal` instead of `not-found`;
//! - `sdk-health`: `health()` answers like the SDK's default (`ok`, without a request);
//! - `search-refuses`: `search` answers `invalid-input` to every query (a broken search, not a
//!   connector without one);
//! - `chatty-progress`: every `sync` page reports progress 1000 times (and once for a stream it
//!   is not syncing), to prove the host's progress log rate limit and stream check.
//!
//! Being an SDK connector, it targets the SDK's contract (0.2.0) and reports `host.progress`
//! once per `items` page: `done` = items so far, `total` = all items, message `page N of 3`.
//!
//! Setting `base_url` is where it sends its (allowed) requests: `GET {base_url}/api/health` and
//! `GET {base_url}/api/items?page=N`; any 200 answer will do.

use airlock_sdk::serde_json::{self, Value, json};
use airlock_sdk::{
    ActionInfo, Connector, ConnectorInfo, Document, Error, HealthStatus, Request, Result,
    SearchRequest, SearchResult, StreamInfo, SyncPage,
};

struct Broken;

airlock_sdk::export_connector!(Broken);

const PAGES: u32 = 3;
const PER_PAGE: u32 = 2;

fn fault() -> String {
    airlock_sdk::setting("fault").unwrap_or_else(|| "none".into())
}

fn base() -> Result<String> {
    Ok(airlock_sdk::require_setting("base_url")?
        .trim_end_matches('/')
        .to_owned())
}

/// Starts `GET {base}/api/leaked?page=N` and never waits for it or drops its handles: the
/// request's resources stay in the instance's table when the page returns.
fn leak_request(base: &str, page: u32) -> Result<()> {
    use airlock_sdk::bindings::wasi::http::{outgoing_handler, types};
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| Error::invalid_input("base_url without a scheme"))?;
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let request = types::OutgoingRequest::new(types::Fields::new());
    let scheme = match scheme {
        "https" => types::Scheme::Https,
        _ => types::Scheme::Http,
    };
    let path = format!("/{prefix}/api/leaked?page={page}").replace("//", "/");
    let refused = |what: &str| Error::internal(format!("host refused the {what}"));
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| refused("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| refused("authority"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| refused("path"))?;
    let body = request.body().map_err(|()| refused("body"))?;
    let future = outgoing_handler::handle(request, None)
        .map_err(|e| Error::internal(format!("request refused: {e:?}")))?;
    std::mem::forget(types::OutgoingBody::finish(body, None));
    std::mem::forget(future);
    Ok(())
}

/// `sync` calls this instance has answered.
static SYNC_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn doc(n: u32) -> Document {
    Document {
        id: n.to_string(),
        kind: "item".into(),
        title: format!("Item {n}"),
        body: format!("Body of item {n}"),
        url: None,
        updated_at: format!("2024-05-01T10:00:{n:02}Z"),
        metadata: "{}".into(),
        acl: vec![],
    }
}

impl Connector for Broken {
    fn info() -> ConnectorInfo {
        let schema = if fault() == "bad-schema" {
            r#"{"type": "objekt", "required": "text"}"#
        } else {
            r#"{"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}"#
        };
        ConnectorInfo {
            name: "broken".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Breaks one contract rule on demand (setting `fault`)".into(),
            streams: vec![StreamInfo {
                name: "items".into(),
                description: format!("{} pages of {PER_PAGE} items", PAGES),
            }],
            actions: vec![ActionInfo {
                name: "echo".into(),
                description: "Returns its `text`.".into(),
                input_schema: schema.into(),
                writes: false,
            }],
        }
    }

    fn health() -> Result<HealthStatus> {
        if fault() == "sdk-health" {
            // What the SDK's default health() answers: ok, without asking anything.
            return Ok(HealthStatus {
                ok: true,
                message: "ok".into(),
            });
        }
        Request::get(format!("{}/api/health", base()?)).send()?;
        Ok(HealthStatus {
            ok: true,
            message: "reachable".into(),
        })
    }

    fn search(request: SearchRequest) -> Result<SearchResult> {
        let _ = request;
        if fault() == "search-refuses" {
            return Err(Error::invalid_input("query syntax not accepted"));
        }
        // The SDK's default answer of a connector without search.
        Err(Error::invalid_input(
            "this connector does not support `search`",
        ))
    }

    fn get(id: String) -> Result<Document> {
        match id.parse::<u32>() {
            Ok(n) if (1..=PAGES * PER_PAGE).contains(&n) => Ok(doc(n)),
            _ => Err(Error::not_found(format!("no item {id:?}"))),
        }
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        if stream != "items" {
            return Err(Error::invalid_input(format!("unknown stream `{stream}`")));
        }
        let page = match cursor.as_deref() {
            None => 1,
            Some(c) => c
                .strip_prefix("page:")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| (1..=PAGES + 1).contains(n))
                .ok_or_else(|| Error::invalid_input(format!("invalid cursor {c:?}")))?,
        };
        let base = base()?;
        let fault = fault();
        if fault == "outside-grant" {
            // Phones home outside its grant and carries on when the gate refuses.
            let _ = Request::get(format!("{base}/admin/export")).send();
        }
        if page > PAGES {
            // An incremental run after the last page: nothing new.
            return Ok(SyncPage {
                upserts: vec![],
                deletes: vec![],
                next_cursor: cursor,
                done: true,
            });
        }
        Request::get(format!("{base}/api/items"))
            .query("page", page.to_string())
            .send()?;
        if airlock_sdk::setting("leak_request").as_deref() == Some("true") {
            leak_request(&base, page)?;
        }
        let first = (page - 1) * PER_PAGE + 1;
        let mut upserts: Vec<Document> = (first..first + PER_PAGE).map(doc).collect();
        // Which call of this instance's life this page was (the host keeps a sync run's
        // instance from page to page while they end well).
        let calls = SYNC_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if calls > 1 && airlock_sdk::setting("panic_when_reused").as_deref() == Some("true") {
            panic!("this instance answered a sync call before");
        }
        if airlock_sdk::setting("count_sync_calls").as_deref() == Some("true") {
            for d in &mut upserts {
                d.metadata = json!({ "instance_sync_calls": calls }).to_string();
            }
        }
        if fault == "resume-duplicates" && page > 1 {
            upserts.insert(0, doc(first - 1));
        }
        let done = u64::from(first + PER_PAGE - 1);
        let total = Some(u64::from(PAGES * PER_PAGE));
        let note = format!("page {page} of {PAGES}");
        if fault == "chatty-progress" {
            airlock_sdk::progress_with_message("not-this-stream", done, total, "ignored");
            for _ in 0..1000 {
                airlock_sdk::progress_with_message("items", done, total, &note);
            }
        } else {
            airlock_sdk::progress_with_message("items", done, total, &note);
        }
        let next = if fault == "cursor-loop" && page == 2 {
            page
        } else {
            page + 1
        };
        Ok(SyncPage {
            upserts,
            deletes: vec![],
            next_cursor: Some(format!("page:{next}")),
            done: page == PAGES,
        })
    }

    fn invoke(action: String, input: String) -> Result<String> {
        if action != "echo" {
            return Err(if fault() == "wrong-error" {
                Error::internal(format!("crashed on `{action}`"))
            } else {
                Error::not_found(format!("unknown action `{action}`"))
            });
        }
        let input: Value = serde_json::from_str(&input)
            .map_err(|e| Error::invalid_input(format!("input is not JSON: {e}")))?;
        let text = input
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid_input("`text` (string) is required"))?;
        Ok(json!({ "text": text }).to_string())
    }
}
