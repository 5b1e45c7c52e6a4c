//! Zendesk Support and Help Center connector: incremental exports of tickets, ticket comments and
//! Help Center articles, live search, `get` by id and a read-only `ticket-comments` action. Holds
//! no credentials: the host's gate injects Basic (`{email}/token:{api_token}`) or Bearer.
//!
//! Settings: `base_url` (e.g. `https://acme.zendesk.com`), optional `page_size` (tickets per
//! incremental export page, 1..=1000, default 1000).

use airlock_sdk::serde_json::{self, Value, json};
use airlock_sdk::{
    ActionInfo, Connector, ConnectorInfo, Document, DocumentRef, Error, HealthStatus, Request,
    Result, SearchRequest, SearchResult, StreamInfo, SyncPage, html_to_text, url,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

struct Zendesk;

airlock_sdk::export_connector!(Zendesk);

/// Zendesk search serves at most this many results per query and answers 422 beyond.
const SEARCH_MAX: u32 = 1000;
/// Upper bound on comment pages fetched for one ticket (100 comments each).
const MAX_COMMENT_PAGES: usize = 100;

impl Connector for Zendesk {
    fn info() -> ConnectorInfo {
        let stream = |name: &str, description: &str| StreamInfo {
            name: name.into(),
            description: description.into(),
        };
        ConnectorInfo {
            name: "zendesk".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Zendesk Support tickets and comments, Help Center articles".into(),
            streams: vec![
                stream(
                    "tickets",
                    "Tickets (subject, description); deleted tickets become deletes. Cursor-based \
                     incremental export, one page per call.",
                ),
                stream(
                    "comments",
                    "Ticket comments from the incremental ticket events export (time-based).",
                ),
                stream(
                    "articles",
                    "Help Center articles as plain text, incremental by update time.",
                ),
            ],
            actions: vec![ActionInfo {
                name: "ticket-comments".into(),
                description:
                    "All comments of one ticket (id, author_id, public, created_at, body).".into(),
                input_schema: json!({"type": "object", "required": ["ticket_id"],
                    "properties": {"ticket_id": {"type": "integer", "minimum": 1}},
                    "additionalProperties": false})
                .to_string(),
                writes: false,
            }],
        }
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Config::load()?;
        // Search always requires authentication (public Help Center listings do not).
        Request::get(cfg.api("/search.json"))
            .query("query", "type:ticket")
            .query("per_page", "1")
            .send()?;
        Ok(HealthStatus {
            ok: true,
            message: format!("Zendesk at {} accepted the credentials", cfg.base),
        })
    }

    fn search(request: SearchRequest) -> Result<SearchResult> {
        let cfg = Config::load()?;
        let query = request.query.trim();
        if query.is_empty() {
            return Err(Error::invalid_input("search query is empty"));
        }
        let per_page = if request.limit == 0 {
            25
        } else {
            request.limit.min(100)
        };
        let page = match request.cursor.as_deref() {
            None => 1,
            Some(c) => c
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| Error::invalid_input(format!("invalid search cursor: {c:?}")))?,
        };
        if page.saturating_mul(per_page) > SEARCH_MAX {
            let (hits, next_cursor) = (Vec::new(), None);
            return Ok(SearchResult { hits, next_cursor });
        }
        let reply: SearchReply = Request::get(cfg.api("/search.json"))
            .query("query", query)
            .query("per_page", per_page.to_string())
            .query("page", page.to_string())
            .send()?
            .json()?;
        let more = reply.next_page.is_some() && !reply.results.is_empty();
        let hits = reply.results.into_iter().filter_map(|i| i.document(&cfg));
        let hits = hits.collect();
        let next_cursor = next_search_page(page, per_page, more).map(|p| p.to_string());
        Ok(SearchResult { hits, next_cursor })
    }

    fn get(id: String) -> Result<Document> {
        let cfg = Config::load()?;
        match parse_ref(&id)? {
            Ref::Ticket(id) => {
                let reply: TicketReply = Request::get(cfg.api(&format!("/tickets/{id}.json")))
                    .send()?
                    .json()?;
                Ok(reply.ticket.document(&cfg))
            }
            Ref::Article(id) => {
                let path = format!("/help_center/articles/{id}.json");
                let reply: ArticleReply = Request::get(cfg.api(&path)).send()?.json()?;
                Ok(reply.article.document())
            }
            Ref::Comment(ticket, id) => ticket_comments(&cfg, ticket)?
                .into_iter()
                .find(|c| c.id == Some(id))
                .and_then(|c| c.document(ticket, None, &cfg))
                .ok_or_else(|| Error::not_found(format!("no comment {id} on ticket {ticket}"))),
        }
    }

    /// Zendesk exposes no per-user read check to an API client; the connector syncs with agent
    /// scope, so every valid id is readable by every principal of the tenant (acl is `[]`).
    fn check_permission(_principal: String, id: String) -> Result<bool> {
        parse_ref(&id).map(|_| true)
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        let cursor = SyncCursor::decode(cursor.as_deref())?;
        match stream.as_str() {
            "tickets" => sync_tickets(&Config::load()?, cursor),
            "comments" => sync_comments(&Config::load()?, cursor),
            "articles" => sync_articles(cursor),
            _ => Err(Error::invalid_input(format!(
                "unknown stream `{stream}` (this connector has `tickets`, `comments`, `articles`)"
            ))),
        }
    }

    fn invoke(action: String, input: String) -> Result<String> {
        if action != "ticket-comments" {
            return Err(Error::not_found(format!("unknown action `{action}`")));
        }
        let input: Value = serde_json::from_str(&input)
            .map_err(|e| Error::invalid_input(format!("input is not JSON: {e}")))?;
        let ticket = match input.get("ticket_id") {
            Some(Value::Number(n)) => numeric(&n.to_string())?,
            Some(Value::String(s)) => numeric(s)?,
            _ => return Err(Error::invalid_input("`ticket_id` (integer) is required")),
        };
        let comments: Vec<Value> = ticket_comments(&Config::load()?, ticket)?
            .into_iter()
            .map(|c| {
                json!({"id": c.id, "author_id": c.author_id, "public": c.public,
                       "created_at": c.created_at, "body": c.plain_body.or(c.body)})
            })
            .collect();
        Ok(json!({"ticket_id": ticket, "comments": comments}).to_string())
    }
}

/// Connector settings, read from the host on every call (instances are stateless).
struct Config {
    /// Site root without a trailing slash or `/api/v2`.
    base: String,
    page_size: u32,
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
        let base = base.strip_suffix("/api/v2").unwrap_or(base).to_owned();
        let page_size = match airlock_sdk::setting("page_size") {
            None => 1000,
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| {
                    Error::invalid_input(format!("setting `page_size` is not a number: {v}"))
                })?
                .clamp(1, 1000),
        };
        Ok(Config { base, page_size })
    }

    /// An absolute URL for an API `path` (relative to `/api/v2`).
    fn api(&self, path: &str) -> String {
        format!("{}/api/v2{path}", self.base)
    }

    fn ticket_url(&self, id: u64) -> String {
        format!("{}/agent/tickets/{id}", self.base)
    }
}

/// What an id passed to `get` or `check-permission` names.
#[derive(Debug, PartialEq)]
enum Ref {
    Ticket(u64),
    Article(u64),
    /// Ticket id, comment id (document id `{ticket}-{comment}`).
    Comment(u64, u64),
}

/// `123` / `ticket:123`, `article:123`, `123-456` / `comment:123-456`. Only digits are accepted,
/// so ids cannot smuggle path segments or query strings into URLs.
fn parse_ref(id: &str) -> Result<Ref> {
    let id = id.trim();
    let comment = |s: &str| match s.split_once('-') {
        Some((t, c)) => Ok(Ref::Comment(numeric(t)?, numeric(c)?)),
        None => Err(Error::invalid_input(format!("not a comment id: {s:?}"))),
    };
    match id.split_once(':') {
        None if id.contains('-') => comment(id),
        None => numeric(id).map(Ref::Ticket),
        Some(("ticket", n)) => numeric(n).map(Ref::Ticket),
        Some(("article", n)) => numeric(n).map(Ref::Article),
        Some(("comment", n)) => comment(n),
        Some(_) => Err(Error::invalid_input(format!(
            "unknown id kind in {id:?} (ticket:, article:, comment:)"
        ))),
    }
}

fn numeric(s: &str) -> Result<u64> {
    let bad = || Error::invalid_input(format!("not a Zendesk id: {s:?}"));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

/// The page after `page`, unless the upstream has no more or it would reach past result 1000.
fn next_search_page(page: u32, per_page: u32, more: bool) -> Option<u32> {
    let next = page.checked_add(1)?;
    (more && next.saturating_mul(per_page) <= SEARCH_MAX).then_some(next)
}

// ---- Sync -------------------------------------------------------------------------------------
//
// Every call fetches exactly one upstream page; the host commits it together with the returned
// cursor, so a crash or a 429 resumes from the last committed page. Cursors are our own JSON:
//   tickets   {"c": after_cursor} (cursor-based export; the first run starts at start_time=0);
//   comments, articles {"start_time": unix seconds} (time-based exports).
// A finished run's cursor continues with newer changes on the next run. Tickets changed again
// during a run show up twice; upserts are idempotent.

#[derive(Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SyncCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_time: Option<i64>,
}

impl SyncCursor {
    fn decode(cursor: Option<&str>) -> Result<SyncCursor> {
        match cursor {
            None => Ok(SyncCursor::default()),
            Some(c) => serde_json::from_str(c)
                .map_err(|e| Error::invalid_input(format!("invalid cursor {c:?}: {e}"))),
        }
    }

    fn encode(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::internal(e.to_string()))
    }

    fn at(start_time: i64) -> SyncCursor {
        let start_time = Some(start_time);
        SyncCursor {
            c: None,
            start_time,
        }
    }
}

fn sync_tickets(cfg: &Config, cursor: SyncCursor) -> Result<SyncPage> {
    let request = Request::get(cfg.api("/incremental/tickets/cursor.json"))
        .query("per_page", cfg.page_size.to_string());
    let request = match &cursor.c {
        Some(c) => request.query("cursor", c),
        None => request.query("start_time", cursor.start_time.unwrap_or(0).to_string()),
    };
    ticket_page(request.send()?.json()?, cfg, cursor)
}

fn ticket_page(export: TicketExport, cfg: &Config, previous: SyncCursor) -> Result<SyncPage> {
    let mut out = SyncPage {
        upserts: Vec::with_capacity(export.tickets.len()),
        deletes: Vec::new(),
        next_cursor: None,
        done: export.end_of_stream,
    };
    for ticket in export.tickets {
        if ticket.status.as_deref() == Some("deleted") {
            let (kind, id) = ("ticket".into(), ticket.id.to_string());
            out.deletes.push(DocumentRef { kind, id });
        } else {
            out.upserts.push(ticket.document(cfg));
        }
    }
    let next = match export.after_cursor.filter(|c| !c.is_empty()) {
        Some(c) => SyncCursor {
            c: Some(c),
            start_time: None,
        },
        // An empty page may carry no cursor: keep ours so the next run does not start over.
        None => previous.clone(),
    };
    // Without a new cursor the next call would fetch the same page again: end the run instead.
    out.done |= next == previous;
    out.next_cursor = Some(next.encode()?);
    Ok(out)
}

fn sync_comments(cfg: &Config, cursor: SyncCursor) -> Result<SyncPage> {
    let start = cursor.start_time.unwrap_or(0);
    let request =
        Request::get(cfg.api("/incremental/ticket_events.json")).query("include", "comment_events");
    let Some(export) = time_export::<EventExport>(request, start)? else {
        return time_page(Vec::new(), None, None, start, false);
    };
    let more = !export.end_of_stream && !export.ticket_events.is_empty();
    let mut upserts = Vec::new();
    for event in export.ticket_events {
        let (ticket, at) = (event.ticket_id, event.created_at.as_deref());
        let comments = event.child_events.into_iter().filter(Comment::is_comment);
        upserts.extend(comments.filter_map(|c| c.document(ticket, at, cfg)));
    }
    let next_page = export.next_page.as_deref();
    time_page(upserts, next_page, export.end_time, start, more)
}

fn sync_articles(cursor: SyncCursor) -> Result<SyncPage> {
    let cfg = Config::load()?;
    let start = cursor.start_time.unwrap_or(0);
    let request = Request::get(cfg.api("/help_center/incremental/articles.json"));
    let Some(export) = time_export::<ArticleExport>(request, start)? else {
        return time_page(Vec::new(), None, None, start, false);
    };
    let more = !export.articles.is_empty();
    let upserts = export.articles.into_iter().map(Article::document).collect();
    let next_page = export.next_page.as_deref();
    time_page(upserts, next_page, export.end_time, start, more)
}

/// One page of a time-based export from `start`. Zendesk refuses a `start_time` less than a
/// minute old ("Too recent start_time"): nothing is new yet, so `None` ends the run unchanged.
fn time_export<T: DeserializeOwned>(request: Request, start: i64) -> Result<Option<T>> {
    match request.query("start_time", start.to_string()).send() {
        Err(Error::InvalidInput(m)) if m.to_ascii_lowercase().contains("too recent") => Ok(None),
        other => other?.json().map(Some),
    }
}

/// A time-based export page: the run goes on while the reply has a `next_page` that starts later
/// than this one (so a stuck upstream cannot loop) and `more` holds.
fn time_page(
    upserts: Vec<Document>,
    next_page: Option<&str>,
    end_time: Option<i64>,
    start: i64,
    more: bool,
) -> Result<SyncPage> {
    let next = next_start(next_page, end_time, start);
    Ok(SyncPage {
        upserts,
        deletes: Vec::new(),
        next_cursor: Some(SyncCursor::at(next).encode()?),
        done: !more || next_page.is_none() || next <= start,
    })
}

/// Start time of the next time-based export page: `start_time` of `next_page` when present, else
/// the reply's `end_time`, never earlier than the current start.
fn next_start(next_page: Option<&str>, end_time: Option<i64>, start: i64) -> i64 {
    next_page
        .and_then(|u| url::query_param(u, "start_time")?.parse::<i64>().ok())
        .or(end_time)
        .map_or(start, |t| t.max(start))
}

// ---- Upstream shapes (tolerant: every field but the id may be missing or null) -----------------

#[derive(Deserialize)]
struct TicketExport {
    #[serde(default)]
    tickets: Vec<Ticket>,
    after_cursor: Option<String>,
    #[serde(default)]
    end_of_stream: bool,
}

#[derive(Deserialize)]
struct TicketReply {
    ticket: Ticket,
}

#[derive(Deserialize)]
struct Ticket {
    id: u64,
    subject: Option<String>,
    description: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    requester_id: Option<u64>,
    assignee_id: Option<u64>,
    organization_id: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Serialize)]
struct TicketMeta<'a> {
    status: Option<&'a str>,
    priority: Option<&'a str>,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    requester_id: Option<u64>,
    assignee_id: Option<u64>,
    organization_id: Option<u64>,
    tags: &'a [String],
}

impl Ticket {
    fn document(self, cfg: &Config) -> Document {
        let meta = TicketMeta {
            status: self.status.as_deref(),
            priority: self.priority.as_deref(),
            kind: self.kind.as_deref(),
            requester_id: self.requester_id,
            assignee_id: self.assignee_id,
            organization_id: self.organization_id,
            tags: &self.tags,
        };
        let metadata = serde_json::to_string(&meta).unwrap_or_else(|_| "{}".into());
        Document {
            id: self.id.to_string(),
            kind: "ticket".into(),
            title: self.subject.unwrap_or_default(),
            body: self.description.unwrap_or_default(),
            url: Some(cfg.ticket_url(self.id)),
            updated_at: self.updated_at.or(self.created_at).unwrap_or_default(),
            metadata,
            acl: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct EventExport {
    #[serde(default)]
    ticket_events: Vec<TicketEvent>,
    next_page: Option<String>,
    end_time: Option<i64>,
    #[serde(default)]
    end_of_stream: bool,
}

#[derive(Deserialize)]
struct TicketEvent {
    ticket_id: u64,
    created_at: Option<String>,
    #[serde(default)]
    child_events: Vec<Comment>,
}

/// A comment from the comments API, or a child event of the ticket events export (which marks
/// its type in `event_type`, the comments API in `type`).
#[derive(Deserialize)]
struct Comment {
    id: Option<u64>,
    event_type: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    body: Option<String>,
    plain_body: Option<String>,
    public: Option<bool>,
    author_id: Option<i64>,
    created_at: Option<String>,
}

impl Comment {
    fn is_comment(&self) -> bool {
        self.event_type.as_deref().or(self.kind.as_deref()) == Some("Comment")
    }

    fn document(self, ticket: u64, at: Option<&str>, cfg: &Config) -> Option<Document> {
        let id = self.id?;
        let meta = json!({"ticket_id": ticket, "public": self.public, "author_id": self.author_id});
        Some(Document {
            id: format!("{ticket}-{id}"),
            kind: "comment".into(),
            title: format!("Comment on ticket {ticket}"),
            body: self.plain_body.or(self.body).unwrap_or_default(),
            url: Some(cfg.ticket_url(ticket)),
            updated_at: self
                .created_at
                .or(at.map(str::to_owned))
                .unwrap_or_default(),
            metadata: meta.to_string(),
            acl: Vec::new(),
        })
    }
}

#[derive(Deserialize)]
struct CommentPage {
    #[serde(default)]
    comments: Vec<Comment>,
    #[serde(default)]
    meta: CommentMeta,
}

#[derive(Deserialize, Default)]
struct CommentMeta {
    #[serde(default)]
    has_more: bool,
    after_cursor: Option<String>,
}

/// All comments of `ticket`, following `meta.after_cursor` while `meta.has_more`.
fn ticket_comments(cfg: &Config, ticket: u64) -> Result<Vec<Comment>> {
    let url = cfg.api(&format!("/tickets/{ticket}/comments.json"));
    let (mut out, mut after) = (Vec::new(), None::<String>);
    for _ in 0..MAX_COMMENT_PAGES {
        let page: CommentPage = Request::get(&url)
            .query("page[size]", "100")
            .query_opt("page[after]", after.as_deref())
            .send()?
            .json()?;
        out.extend(page.comments);
        match page.meta.after_cursor {
            Some(c) if page.meta.has_more && after.as_ref() != Some(&c) => after = Some(c),
            _ => return Ok(out),
        }
    }
    airlock_sdk::log::warn!("ticket {ticket}: stopped after {MAX_COMMENT_PAGES} comment pages");
    Ok(out)
}

#[derive(Deserialize)]
struct ArticleExport {
    #[serde(default)]
    articles: Vec<Article>,
    next_page: Option<String>,
    end_time: Option<i64>,
}

#[derive(Deserialize)]
struct ArticleReply {
    article: Article,
}

#[derive(Deserialize)]
struct Article {
    id: u64,
    title: Option<String>,
    body: Option<String>,
    html_url: Option<String>,
    section_id: Option<u64>,
    locale: Option<String>,
    #[serde(default)]
    draft: bool,
    created_at: Option<String>,
    updated_at: Option<String>,
}

impl Article {
    fn document(self) -> Document {
        let meta =
            json!({"section_id": self.section_id, "locale": self.locale, "draft": self.draft});
        Document {
            id: self.id.to_string(),
            kind: "article".into(),
            title: self.title.unwrap_or_default(),
            body: html_to_text(self.body.as_deref().unwrap_or("")),
            url: self.html_url,
            updated_at: self.updated_at.or(self.created_at).unwrap_or_default(),
            metadata: meta.to_string(),
            acl: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct SearchReply {
    #[serde(default)]
    results: Vec<SearchItem>,
    next_page: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "result_type", rename_all = "lowercase")]
enum SearchItem {
    Ticket(Ticket),
    Article(Article),
    #[serde(other)]
    Other,
}

impl SearchItem {
    fn document(self, cfg: &Config) -> Option<Document> {
        match self {
            SearchItem::Ticket(t) => Some(t.document(cfg)),
            SearchItem::Article(a) => Some(a.document()),
            SearchItem::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let base = "http://127.0.0.1:8782".into();
        Config {
            base,
            page_size: 1000,
        }
    }

    #[test]
    fn cursors() {
        assert_eq!(SyncCursor::decode(None).unwrap(), SyncCursor::default());
        let c = SyncCursor::decode(Some(r#"{"c":"abc"}"#)).unwrap();
        assert_eq!((c.c.as_deref(), c.start_time), (Some("abc"), None));
        assert_eq!(c.encode().unwrap(), r#"{"c":"abc"}"#);
        assert_eq!(SyncCursor::at(17).encode().unwrap(), r#"{"start_time":17}"#);
        assert!(matches!(
            SyncCursor::decode(Some("x")),
            Err(Error::InvalidInput(_))
        ));
        let next = "https://a.zendesk.com/api/v2/incremental/ticket_events.json?start_time=90";
        assert_eq!(next_start(Some(next), Some(80), 10), 90);
        assert_eq!(next_start(None, Some(80), 10), 80);
        assert_eq!(next_start(None, None, 10), 10);
        let page = time_page(vec![], Some(next), Some(80), 10, true).unwrap();
        assert!(!page.done);
        assert_eq!(page.next_cursor.as_deref(), Some(r#"{"start_time":90}"#));
        assert!(time_page(vec![], None, Some(80), 10, true).unwrap().done);
        assert!(
            time_page(vec![], Some(next), Some(80), 10, false)
                .unwrap()
                .done
        );
        assert!(time_page(vec![], Some(next), None, 90, true).unwrap().done); // no progress
    }

    fn export(v: Value) -> TicketExport {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ticket_pages() {
        let page = export(json!({
            "tickets": [
                {"id": 7, "subject": "Printer", "description": "It is on fire", "status": "open",
                 "priority": null, "type": "incident", "requester_id": 3, "assignee_id": null,
                 "organization_id": 9, "tags": ["hw"], "updated_at": "2025-01-02T03:04:05Z",
                 "custom_fields": [{"id": 1, "value": null}]},
                {"id": 8, "subject": null, "status": "deleted", "updated_at": "2025-01-03T00:00:00Z"}
            ],
            "after_cursor": "n1", "end_of_stream": false
        }));
        let out = ticket_page(page, &cfg(), SyncCursor::default()).unwrap();
        assert!(!out.done);
        assert_eq!(out.next_cursor.as_deref(), Some(r#"{"c":"n1"}"#));
        let [doc] = &out.upserts[..] else { panic!() };
        assert_eq!(
            (
                doc.id.as_str(),
                doc.kind.as_str(),
                doc.title.as_str(),
                doc.body.as_str()
            ),
            ("7", "ticket", "Printer", "It is on fire")
        );
        assert_eq!(
            doc.url.as_deref(),
            Some("http://127.0.0.1:8782/agent/tickets/7")
        );
        assert_eq!(doc.updated_at, "2025-01-02T03:04:05Z");
        let meta: Value = serde_json::from_str(&doc.metadata).unwrap();
        assert_eq!(
            meta,
            json!({"status": "open", "priority": null, "type": "incident", "requester_id": 3,
                   "assignee_id": null, "organization_id": 9, "tags": ["hw"]})
        );
        let [del] = &out.deletes[..] else { panic!() };
        assert_eq!((del.kind.as_str(), del.id.as_str()), ("ticket", "8"));

        // The end of the stream keeps the last cursor when none is sent, and ends the run.
        let prev = SyncCursor::decode(Some(r#"{"c":"n1"}"#)).unwrap();
        let out = ticket_page(
            export(json!({"tickets": [], "end_of_stream": true})),
            &cfg(),
            prev,
        )
        .unwrap();
        assert!(out.done && out.upserts.is_empty());
        assert_eq!(out.next_cursor.as_deref(), Some(r#"{"c":"n1"}"#));
        // A repeated cursor without end_of_stream must not loop.
        let prev = SyncCursor::decode(Some(r#"{"c":"n1"}"#)).unwrap();
        let same = export(json!({"tickets": [], "after_cursor": "n1", "end_of_stream": false}));
        assert!(ticket_page(same, &cfg(), prev).unwrap().done);
    }

    #[test]
    fn comments_and_articles() {
        let event: TicketEvent = serde_json::from_value(json!({
            "id": 1, "ticket_id": 7, "created_at": "2025-01-01T00:00:00Z", "event_type": "Audit",
            "child_events": [
                {"id": 11, "event_type": "Comment", "body": "<b>x</b>", "plain_body": "x",
                 "public": false, "author_id": 3},
                {"id": 12, "event_type": "Change", "field_name": "status", "value": "open"}
            ]
        }))
        .unwrap();
        let docs: Vec<Document> = event
            .child_events
            .into_iter()
            .filter(Comment::is_comment)
            .filter_map(|c| c.document(7, event.created_at.as_deref(), &cfg()))
            .collect();
        let [doc] = &docs[..] else { panic!() };
        assert_eq!(
            (
                doc.id.as_str(),
                doc.title.as_str(),
                doc.body.as_str(),
                doc.updated_at.as_str()
            ),
            ("7-11", "Comment on ticket 7", "x", "2025-01-01T00:00:00Z")
        );
        let meta: Value = serde_json::from_str(&doc.metadata).unwrap();
        assert_eq!(
            meta,
            json!({"ticket_id": 7, "public": false, "author_id": 3})
        );

        let reply: SearchReply = serde_json::from_value(json!({"results": [
            {"result_type": "user", "id": 1, "name": "u"},
            {"result_type": "article", "id": 5, "title": "T", "body": "<p>a &amp; b</p>",
             "html_url": "https://h/hc/a/5", "section_id": 2, "locale": "en-us", "draft": false,
             "updated_at": "2025-01-01T00:00:00Z"},
            {"result_type": "ticket", "id": 6, "subject": "S", "status": "open"}
        ], "next_page": null}))
        .unwrap();
        let docs: Vec<Document> = reply
            .results
            .into_iter()
            .filter_map(|r| r.document(&cfg()))
            .collect();
        let [doc, ticket] = &docs[..] else { panic!() };
        assert_eq!((ticket.kind.as_str(), ticket.id.as_str()), ("ticket", "6"));
        assert_eq!(
            (doc.kind.as_str(), doc.id.as_str(), doc.body.as_str()),
            ("article", "5", "a & b")
        );
        assert_eq!(doc.url.as_deref(), Some("https://h/hc/a/5"));
    }

    #[test]
    fn search_paging_stops_before_1000() {
        assert_eq!(next_search_page(1, 100, true), Some(2));
        assert_eq!(next_search_page(9, 100, true), Some(10));
        assert_eq!(next_search_page(10, 100, true), None);
        assert_eq!(next_search_page(33, 30, true), None); // page 34 would hold results 991..1020
        assert_eq!(next_search_page(32, 30, true), Some(33));
        assert_eq!(next_search_page(1, 25, false), None);
    }

    #[test]
    fn ids() {
        assert_eq!(parse_ref("123").unwrap(), Ref::Ticket(123));
        assert_eq!(parse_ref(" ticket:5 ").unwrap(), Ref::Ticket(5));
        assert_eq!(parse_ref("article:9").unwrap(), Ref::Article(9));
        assert_eq!(parse_ref("7-11").unwrap(), Ref::Comment(7, 11));
        assert_eq!(parse_ref("comment:7-11").unwrap(), Ref::Comment(7, 11));
        for bad in [
            "",
            "ticket:",
            "../1",
            "1/2",
            "article:1?x=1",
            "user:1",
            "1-",
            "-1",
            "+1",
        ] {
            assert!(
                matches!(parse_ref(bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
        assert!(parse_ref("99999999999999999999999").is_err());
    }
}
