//! Confluence Cloud connector: REST v2 for pages and spaces, v1 CQL for search and permission
//! checks. Holds no credentials: the host's gate injects HTTP Basic into every request.
//!
//! Settings: `base_url` (site root), optional `space_keys` (comma list), optional `page_limit`
//! (sync page size, default 100, at most 250).

use airlock_sdk::paging::{Next, Pages};
use airlock_sdk::serde_json::{self, Value, json};
use airlock_sdk::text::parse_rfc3339;
use airlock_sdk::{
    ActionInfo, Connector, ConnectorInfo, Document, DocumentRef, Error, HealthStatus, Request,
    Result, SearchRequest, SearchResult, StreamInfo, SyncPage, html_to_text, url,
};
use serde::{Deserialize, Deserializer, Serialize};

struct Confluence;

airlock_sdk::export_connector!(Confluence);

/// Pages modified up to this long before the previous run's watermark are fetched again, so a
/// save whose timestamp precedes one we already saw but which became visible later is not lost.
const OVERLAP_MS: i64 = 5 * 60 * 1000;

impl Connector for Confluence {
    fn info() -> ConnectorInfo {
        ConnectorInfo {
            name: "confluence".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Confluence Cloud pages: sync, live CQL search, permission checks".into(),
            streams: vec![StreamInfo {
                name: "pages".into(),
                description:
                    "Current pages with storage body as text; trashed pages become deletes. \
                              Incremental by version.createdAt."
                        .into(),
            }],
            actions: vec![ActionInfo {
                name: "spaces".into(),
                description:
                    "List the spaces the credentials can see (id, key, name, type, status).".into(),
                input_schema:
                    json!({"type": "object", "properties": {}, "additionalProperties": false})
                        .to_string(),
                writes: false,
            }],
        }
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Config::load()?;
        Request::get(cfg.url("/wiki/api/v2/spaces"))
            .query("limit", "1")
            .send()?;
        Ok(HealthStatus {
            ok: true,
            message: format!("Confluence at {} accepted the credentials", cfg.base),
        })
    }

    fn search(request: SearchRequest) -> Result<SearchResult> {
        let cfg = Config::load()?;
        let query = request.query.trim();
        if query.is_empty() {
            return Err(Error::invalid_input("search query is empty"));
        }
        let mut cql = format!("type = page AND text ~ {}", cql_string(query));
        if !cfg.space_keys.is_empty() {
            let keys: Vec<String> = cfg.space_keys.iter().map(|k| cql_string(k)).collect();
            cql.push_str(&format!(" AND space in ({})", keys.join(", ")));
        }
        let limit = if request.limit == 0 {
            25
        } else {
            request.limit.min(100)
        };
        let reply: SearchReply = Request::get(cfg.url("/wiki/rest/api/search"))
            .query("cql", &cql)
            .query("limit", limit.to_string())
            .query_opt("cursor", request.cursor.as_deref())
            .send()?
            .json()?;
        let hits: Vec<Document> = reply
            .results
            .into_iter()
            .filter_map(|hit| hit.document(&cfg))
            .collect();
        // v1 `next` is relative to `_links.base`; only its cursor matters, the query is re-sent.
        let next_cursor = reply
            .links
            .next
            .and_then(|next| url::query_param(&next, "cursor"));
        Ok(SearchResult {
            next_cursor: next_cursor.filter(|_| !hits.is_empty()),
            hits,
        })
    }

    fn get(id: String) -> Result<Document> {
        let cfg = Config::load()?;
        let path = format!("/wiki/api/v2/pages/{}", content_id(&id)?);
        let page: Page = Request::get(cfg.url(&path))
            .query("body-format", "storage")
            .send()?
            .json()?;
        Ok(page.document(&cfg))
    }

    fn check_permission(principal: String, id: String) -> Result<bool> {
        let cfg = Config::load()?;
        if principal.trim().is_empty() {
            return Err(Error::invalid_input("principal is empty"));
        }
        #[derive(Deserialize)]
        struct Reply {
            #[serde(rename = "hasPermission")]
            has_permission: bool,
        }
        let body =
            json!({"subject": {"type": "user", "identifier": principal}, "operation": "read"});
        let path = format!(
            "/wiki/rest/api/content/{}/permission/check",
            content_id(&id)?
        );
        let reply: Reply = Request::post(cfg.url(&path)).json(&body).send()?.json()?;
        Ok(reply.has_permission)
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        match stream.as_str() {
            "pages" => sync_pages(&Config::load()?, cursor.as_deref()),
            _ => Err(Error::invalid_input(format!(
                "unknown stream `{stream}` (this connector has `pages`)"
            ))),
        }
    }

    fn invoke(action: String, input: String) -> Result<String> {
        if action != "spaces" {
            return Err(Error::not_found(format!("unknown action `{action}`")));
        }
        // The schema admits only `{}`: say so instead of ignoring what the caller meant.
        match serde_json::from_str::<Value>(&input) {
            Ok(Value::Object(o)) if o.is_empty() => {}
            Ok(other) => {
                return Err(Error::invalid_input(format!(
                    "`spaces` takes no input (an empty object), got {other}"
                )));
            }
            Err(e) => return Err(Error::invalid_input(format!("input is not JSON: {e}"))),
        }
        let cfg = Config::load()?;
        let first = Request::get(cfg.url("/wiki/api/v2/spaces")).query("limit", "250");
        let mut spaces = Vec::new();
        for page in Pages::new(first, Next::BodyLink("/_links/next")).take(40) {
            let page = page?;
            let results = page
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            spaces.extend(results.map(|s| {
                json!({"id": s.get("id"), "key": s.get("key"), "name": s.get("name"),
                       "type": s.get("type"), "status": s.get("status")})
            }));
        }
        Ok(Value::Array(spaces).to_string())
    }
}

/// Connector settings, read from the host on every call (instances are stateless).
struct Config {
    /// Site root without a trailing slash or `/wiki`.
    base: String,
    space_keys: Vec<String>,
    page_limit: u32,
}

impl Config {
    fn load() -> Result<Config> {
        let base = airlock_sdk::require_setting("base_url")?;
        if url::split(&base).is_none_or(|p| !matches!(p.scheme, "http" | "https")) {
            return Err(Error::invalid_input(format!(
                "setting `base_url` is not an http(s) URL: {base}"
            )));
        }
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/wiki").unwrap_or(base).to_owned();
        let space_keys = airlock_sdk::setting("space_keys")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let page_limit = match airlock_sdk::setting("page_limit") {
            None => 100,
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| {
                    Error::invalid_input(format!("setting `page_limit` is not a number: {v}"))
                })?
                .clamp(1, 250),
        };
        Ok(Config {
            base,
            space_keys,
            page_limit,
        })
    }

    /// An absolute URL for `path` (which starts with `/wiki/`).
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Link to a page in Confluence's UI from a `webui` path (relative to `/wiki`).
    fn web_url(&self, webui: &str) -> String {
        match webui {
            w if w.starts_with("http://") || w.starts_with("https://") => w.to_owned(),
            w if w.starts_with("/wiki/") => format!("{}{w}", self.base),
            w => format!("{}/wiki{w}", self.base),
        }
    }
}

/// Content ids are numeric; checking keeps ids from smuggling path segments into URLs.
fn content_id(id: &str) -> Result<&str> {
    let id = id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid_input(format!(
            "not a Confluence content id: {id:?}"
        )));
    }
    Ok(id)
}

/// A CQL string literal.
fn cql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Search excerpts and titles mark matches with `@@@hl@@@`...`@@@endhl@@@`.
fn strip_highlight(s: &str) -> String {
    s.replace("@@@hl@@@", "").replace("@@@endhl@@@", "")
}

// ---- Sync -------------------------------------------------------------------------------------
//
// Confluence v2 has no "modified since" filter, so a run lists pages newest first
// (`sort=-modified-date`, including `trashed` ones) and stops at the first page older than the
// previous run's watermark. The cursor (our JSON, committed by the host with each page) holds:
//   next      the relative `_links.next` of the run in progress (none between runs),
//   watermark the newest `version.createdAt` at the start of the run in progress: the first item
//             of its first page,
//   since     the watermark of the last completed run.
// When a run ends (no next link, or an item older than `since - OVERLAP_MS`), the next cursor is
// `{since: watermark}`, so the following run is incremental.
//
// A run longer than one request is no snapshot: a page saved while it was under way sorts in
// front of the keyset cursor, behind us. Reporting `done` then would be a lie the host cannot
// see through, most visibly when the host resumes, after a crash, a run that began long before
// (the changes made in between are never reached, yet the stream is "caught up"). So a run that
// took more than one request ends with a probe of the newest item: if it is newer than the
// watermark, the page is not `done` and carries `{since: watermark}`, and the host goes straight
// on to the incremental run that fetches those saves. A one-request run is its own snapshot.
//
// Why this is correct when pages change between or during runs:
// - A page saved after the run started gets a `version.createdAt` newer than `watermark`; in the
//   keyset-ordered listing it moves to the front, behind us, so this run may miss it, but the
//   probe at its end notices and the next run (which stops only at items older than `watermark`)
//   fetches it before the host hears `done`. The watermark is deliberately the value seen at the
//   start, never the largest seen later, so nothing saved mid-run can be skipped by advancing
//   past it.
// - Items equal to the watermark and within OVERLAP_MS before it are fetched again (upserts are
//   idempotent), covering equal timestamps and saves that commit out of timestamp order.
// - Trashing bumps the page's version, so it surfaces like an edit and becomes a delete.
// - A crash or rate limit resumes from the committed `next`; if Confluence rejects that cursor as
//   stale (400), the run restarts from the top with the same `since`, which only re-upserts.
// - Pages purged from the trash vanish without a trace and are not seen incrementally; only a full
//   run (no cursor) reflects them, and only if the host reconciles what a full run did not return.

#[derive(Default, Serialize, Deserialize)]
struct SyncCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    watermark: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
}

fn sync_pages(cfg: &Config, cursor: Option<&str>) -> Result<SyncPage> {
    let mut state: SyncCursor = match cursor {
        Some(c) => serde_json::from_str(c)
            .map_err(|e| Error::invalid_input(format!("invalid pages cursor: {e}")))?,
        None => SyncCursor::default(),
    };
    let response = match state.next.take() {
        Some(next) => match Request::get(url::resolve(&cfg.base, &next)).send() {
            Err(Error::InvalidInput(msg)) => {
                airlock_sdk::log::warn!(
                    "restarting pages run, Confluence rejected the stored cursor: {msg}"
                );
                state.watermark = None;
                Request::get(pages_url(cfg, cfg.page_limit, true)?).send()?
            }
            other => other?,
        },
        None => {
            state.watermark = None;
            Request::get(pages_url(cfg, cfg.page_limit, true)?).send()?
        }
    };
    // The first page of a run is one upstream snapshot; a run that spans requests is not.
    let first_of_run = state.watermark.is_none();
    let list: PageList = response.json()?;
    let stop_before = state
        .since
        .as_deref()
        .and_then(parse_rfc3339)
        .map(|ms| ms - OVERLAP_MS);
    if state.watermark.is_none() {
        let first = list
            .results
            .first()
            .and_then(|p| p.version.created_at.clone());
        state.watermark = newest(first, state.since.clone());
    }
    let mut out = SyncPage {
        upserts: Vec::new(),
        deletes: Vec::new(),
        next_cursor: None,
        done: false,
    };
    let mut reached_since = false;
    for page in list.results {
        let modified = page.version.created_at.as_deref().and_then(parse_rfc3339);
        if let (Some(modified), Some(stop)) = (modified, stop_before)
            && modified < stop
        {
            reached_since = true;
            break;
        }
        match page.status.as_str() {
            "current" | "archived" => out.upserts.push(page.document(cfg)),
            _ => out.deletes.push(DocumentRef {
                kind: "page".into(),
                id: page.id,
            }),
        }
    }
    let next = if reached_since {
        None
    } else {
        list.links.next.or(response
            .header("link")
            .and_then(airlock_sdk::paging::link_header_next))
    };
    let cursor = match next {
        Some(next) => SyncCursor {
            next: Some(next),
            ..state
        },
        None => {
            // Saves made while this run was under way sort behind its keyset cursor: if there
            // are any, go on with the incremental run that fetches them instead of ending.
            out.done = first_of_run || !saved_since(cfg, state.watermark.as_deref())?;
            SyncCursor {
                next: None,
                watermark: None,
                since: state.watermark,
            }
        }
    };
    out.next_cursor =
        Some(serde_json::to_string(&cursor).map_err(|e| Error::internal(e.to_string()))?);
    Ok(out)
}

/// The later of two RFC 3339 timestamps (an unparseable one loses).
fn newest(a: Option<String>, b: Option<String>) -> Option<String> {
    let ms = |t: &Option<String>| t.as_deref().and_then(parse_rfc3339);
    if ms(&a) >= ms(&b) { a.or(b) } else { b }
}

/// Whether the newest page (current or trashed) was saved after `watermark`: one request.
fn saved_since(cfg: &Config, watermark: Option<&str>) -> Result<bool> {
    let list: PageList = Request::get(pages_url(cfg, 1, false)?).send()?.json()?;
    let newest = list
        .results
        .first()
        .and_then(|p| p.version.created_at.as_deref())
        .and_then(parse_rfc3339);
    Ok(match (newest, watermark.and_then(parse_rfc3339)) {
        (Some(newest), Some(watermark)) => newest > watermark,
        // Nothing to compare with: ending is all that is safe (another run would be the same).
        _ => false,
    })
}

/// The first page of the newest-first listing the sync walks, `limit` items, with or without
/// the storage body.
fn pages_url(cfg: &Config, limit: u32, body: bool) -> Result<String> {
    let mut request = Request::get(cfg.url("/wiki/api/v2/pages"));
    if body {
        request = request.query("body-format", "storage");
    }
    let mut request = request
        .query("limit", limit.to_string())
        .query("sort", "-modified-date")
        .query("status", "current")
        .query("status", "trashed");
    if !cfg.space_keys.is_empty() {
        request = request.query("space-id", space_ids(cfg)?.join(","));
    }
    Ok(request.url().to_owned())
}

/// Resolve `space_keys` to the numeric ids v2 filters by; an unknown key is an error.
fn space_ids(cfg: &Config) -> Result<Vec<String>> {
    let first = Request::get(cfg.url("/wiki/api/v2/spaces"))
        .query("keys", cfg.space_keys.join(","))
        .query("limit", "250");
    let mut found: Vec<(String, String)> = Vec::new();
    for page in Pages::new(first, Next::BodyLink("/_links/next")).take(10) {
        let spaces: Spaces = serde_json::from_value(page?)
            .map_err(|e| Error::upstream(format!("unexpected spaces reply: {e}")))?;
        found.extend(spaces.results.into_iter().map(|s| (s.key, s.id)));
    }
    let missing: Vec<&str> = cfg
        .space_keys
        .iter()
        .filter(|k| !found.iter().any(|(key, _)| key.eq_ignore_ascii_case(k)))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid_input(format!(
            "setting `space_keys`: no visible space with key {}",
            missing.join(", ")
        )));
    }
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

// ---- Upstream shapes (tolerant: every field but the id may be missing) -------------------------

#[derive(Deserialize, Default)]
struct Links {
    next: Option<String>,
    webui: Option<String>,
}

#[derive(Deserialize)]
struct PageList {
    #[serde(default)]
    results: Vec<Page>,
    #[serde(default, rename = "_links")]
    links: Links,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(deserialize_with = "string_or_number")]
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    title: String,
    space_id: Option<Value>,
    parent_id: Option<Value>,
    author_id: Option<String>,
    created_at: Option<String>,
    #[serde(default)]
    version: Version,
    body: Option<Value>,
    #[serde(default, rename = "_links")]
    links: Links,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Version {
    created_at: Option<String>,
    number: Option<u64>,
}

impl Page {
    fn document(self, cfg: &Config) -> Document {
        let storage = self
            .body
            .as_ref()
            .and_then(|b| b.pointer("/storage/value"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let metadata = json!({
            "spaceId": self.space_id, "status": self.status, "version": self.version.number,
            "authorId": self.author_id, "parentId": self.parent_id,
        });
        Document {
            kind: "page".into(),
            title: self.title,
            body: html_to_text(storage),
            url: self.links.webui.as_deref().map(|w| cfg.web_url(w)),
            updated_at: self
                .version
                .created_at
                .or(self.created_at)
                .unwrap_or_default(),
            metadata: metadata.to_string(),
            acl: Vec::new(),
            id: self.id,
        }
    }
}

#[derive(Deserialize)]
struct Spaces {
    #[serde(default)]
    results: Vec<Space>,
}

#[derive(Deserialize)]
struct Space {
    #[serde(deserialize_with = "string_or_number")]
    id: String,
    #[serde(default)]
    key: String,
}

#[derive(Deserialize)]
struct SearchReply {
    #[serde(default)]
    results: Vec<SearchHit>,
    #[serde(default, rename = "_links")]
    links: Links,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchHit {
    content: Option<Value>,
    title: Option<String>,
    excerpt: Option<String>,
    url: Option<String>,
    last_modified: Option<String>,
    space: Option<Value>,
}

impl SearchHit {
    /// A document for a page hit; `None` for results that are not content (users, spaces).
    fn document(self, cfg: &Config) -> Option<Document> {
        let content = self.content?;
        let id = match content.get("id")? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let title = self
            .title
            .or_else(|| content.get("title")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        let webui = self.url.or_else(|| {
            content
                .pointer("/_links/webui")?
                .as_str()
                .map(str::to_owned)
        });
        let space_key = self.space.as_ref().and_then(|s| s.get("key")).cloned();
        Some(Document {
            id,
            kind: "page".into(),
            title: strip_highlight(&title),
            body: html_to_text(&strip_highlight(self.excerpt.as_deref().unwrap_or(""))),
            url: webui.as_deref().map(|w| cfg.web_url(w)),
            updated_at: self.last_modified.unwrap_or_default(),
            metadata: json!({"spaceKey": space_key, "status": content.get("status")}).to_string(),
            acl: Vec::new(),
        })
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> core::result::Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an id, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            base: "http://127.0.0.1:8781".into(),
            space_keys: vec![],
            page_limit: 100,
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(cql_string(r#"say "hi" \ now"#), r#""say \"hi\" \\ now""#);
        assert!(content_id("../1").is_err() && content_id("").is_err());
        assert_eq!(content_id(" 123 ").ok(), Some("123"));
        assert_eq!(
            cfg().web_url("/spaces/ENG/pages/1/X"),
            "http://127.0.0.1:8781/wiki/spaces/ENG/pages/1/X"
        );
        assert_eq!(cfg().web_url("/wiki/x"), "http://127.0.0.1:8781/wiki/x");
        assert_eq!(strip_highlight("a @@@hl@@@b@@@endhl@@@"), "a b");
        let (old, new) = (
            Some("2025-01-01T00:00:00Z".to_owned()),
            Some("2025-01-01T00:00:00.5Z".to_owned()),
        );
        assert_eq!(newest(old.clone(), new.clone()), new);
        assert_eq!(newest(new.clone(), old.clone()), new);
        assert_eq!(newest(None, old.clone()), old);
    }

    #[test]
    fn page_mapping() {
        let page: Page = serde_json::from_value(json!({
            "id": "42", "status": "current", "title": "T", "spaceId": "7", "parentId": null, "authorId": "a",
            "version": {"createdAt": "2025-01-02T03:04:05.000Z", "number": 3},
            "body": {"storage": {"representation": "storage", "value": "<p>Hello &amp; bye</p>"}},
            "_links": {"webui": "/spaces/ENG/pages/42/T"}
        }))
        .unwrap();
        let doc = page.document(&cfg());
        assert_eq!(
            (doc.id.as_str(), doc.body.as_str(), doc.updated_at.as_str()),
            ("42", "Hello & bye", "2025-01-02T03:04:05.000Z")
        );
        assert_eq!(
            doc.url.as_deref(),
            Some("http://127.0.0.1:8781/wiki/spaces/ENG/pages/42/T")
        );
        let meta: Value = serde_json::from_str(&doc.metadata).unwrap();
        assert_eq!(
            meta,
            json!({"spaceId": "7", "status": "current", "version": 3, "authorId": "a", "parentId": null})
        );
        let hit: SearchHit = serde_json::from_value(json!({
            "content": {"id": "9", "type": "page"}, "title": "@@@hl@@@X@@@endhl@@@", "excerpt": "a &lt;b&gt;",
            "url": "/spaces/A/pages/9", "lastModified": "2025-01-01T00:00:00.000Z"
        }))
        .unwrap();
        let doc = hit.document(&cfg()).unwrap();
        assert_eq!((doc.title.as_str(), doc.body.as_str()), ("X", "a <b>"));
    }
}
