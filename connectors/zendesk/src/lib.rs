//! Zendesk Support and Help Center connector: incremental exports of tickets, ticket comments and
//! Help Center articles, live search, `get` by id and a read-only `ticket-comments` action. Holds
//! no credentials: the host's gate injects Basic (`{email}/token:{api_token}`) or Bearer.
//!
//! Settings: `base_url` (e.g. `https://acme.zendesk.com`), optional `page_size` (tickets per
//! incremental export page, 1..=1000, default 1000).

use airlock_sdk::json::{array, first, pick, text};
use airlock_sdk::serde_json::{Value, json};
use airlock_sdk::text::or;
use airlock_sdk::{
    ActionInfo, BaseUrl, Connector, ConnectorInfo, Document, DocumentRef, Error, HealthStatus,
    Request, Result, SearchRequest, SearchResult, SyncPage, cursor, html_to_text, ids, paging, url,
};
use serde::{Deserialize, Serialize};

struct Zendesk;

airlock_sdk::export_connector!(Zendesk);

/// Zendesk search serves at most this many results per query and answers 422 beyond.
const SEARCH_MAX: u32 = 1000;
const STREAMS: [&str; 3] = ["tickets", "comments", "articles"];
/// Upper bound on comment pages fetched for one ticket (100 comments each).
const MAX_COMMENT_PAGES: usize = 100;

/// All comments of one ticket (id, author_id, public, created_at, body).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CommentsInput {
    #[schemars(range(min = 1))]
    ticket_id: u64,
}

impl Connector for Zendesk {
    fn info() -> ConnectorInfo {
        let about = "Zendesk Support tickets and comments, Help Center articles";
        let tickets = "Tickets (subject, description); deleted tickets become deletes. \
                       Cursor-based incremental export, one page per call.";
        let comments = "Ticket comments from the incremental ticket events export (time-based).";
        let articles = "Help Center articles as plain text, incremental by update time.";
        let action = "All comments of one ticket (id, author_id, public, created_at, body).";
        ConnectorInfo::new("zendesk", env!("CARGO_PKG_VERSION"), about)
            .stream("tickets", tickets)
            .stream("comments", comments)
            .stream("articles", articles)
            .action(ActionInfo::new::<CommentsInput>("ticket-comments", action))
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Config::load()?;
        // Search always requires authentication (public Help Center listings do not).
        let probe = [("query", "type:ticket"), ("per_page", "1")];
        cfg.get("/search.json", &probe).send()?;
        let message = format!("Zendesk at {} accepted the credentials", cfg.base_url);
        Ok(HealthStatus::ok(message))
    }

    fn search(request: SearchRequest) -> Result<SearchResult> {
        let (cfg, query) = (Config::load()?, request.query_text()?);
        let per_page = request.limit_or(25, 100);
        let page = cursor::number(request.cursor.as_deref(), 1)?;
        let (mut hits, mut next_cursor) = (Vec::new(), None);
        if page.saturating_mul(per_page) <= SEARCH_MAX {
            let (n, p) = (per_page.to_string(), page.to_string());
            let query = [("query", query), ("per_page", &n), ("page", &p)];
            let reply: Page = cfg.get("/search.json", &query).send()?.json()?;
            let more = reply.next_page.is_some() && !reply.items.is_empty();
            hits = search_hits(&reply.items, &cfg)?;
            let next = paging::next_page_number(page, per_page, more, SEARCH_MAX);
            next_cursor = next.map(|p| p.to_string());
        }
        Ok(SearchResult { hits, next_cursor })
    }

    fn get(id: String) -> Result<Document> {
        let cfg = Config::load()?;
        match parse_ref(&id)? {
            Ref::Ticket(id) => {
                let reply = cfg.get(&format!("/tickets/{id}.json"), &[]).send()?;
                ticket(&reply.json_at("/ticket")?, &cfg)
            }
            Ref::Article(id) => {
                let path = format!("/help_center/articles/{id}.json");
                let reply = cfg.get(&path, &[]).send()?;
                article(&reply.json_at("/article")?)
            }
            Ref::Comment(ticket, id) => ticket_comments(&cfg, ticket)?
                .iter()
                .find(|c| c["id"].as_u64() == Some(id))
                .and_then(|c| comment(c, ticket, "", &cfg))
                .ok_or_else(|| Error::not_found(format!("no comment {id} on ticket {ticket}"))),
        }
    }

    /// Zendesk exposes no per-user read check to an API client; the connector syncs with agent
    /// scope, so every valid id is readable by every principal of the tenant (acl is `[]`).
    fn check_permission(_principal: String, id: String) -> Result<bool> {
        parse_ref(&id).map(|_| true)
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        let position: SyncCursor = cursor::position(cursor.as_deref())?;
        let (cfg, start) = (Config::load()?, position.start_time.unwrap_or(0));
        match stream.as_str() {
            "tickets" => sync_tickets(&cfg, position),
            "comments" => {
                let path = "/incremental/ticket_events.json?include=comment_events";
                time_sync(&cfg, path, start, true, |e| event_comments(e, &cfg))
            }
            "articles" => {
                let path = "/help_center/incremental/articles.json";
                time_sync(&cfg, path, start, false, |a| Ok(vec![article(a)?]))
            }
            _ => Err(Error::unknown_stream(&stream, STREAMS)),
        }
    }

    fn invoke(action: String, input: String) -> Result<String> {
        let input = airlock_sdk::action_input(&action, "ticket-comments", &input);
        let CommentsInput { ticket_id } = input?;
        let summary = |c: &Value| {
            let plain = c.get("plain_body").filter(|b| b.is_string());
            json!({"id": c["id"], "author_id": c["author_id"], "public": c["public"],
                "created_at": c["created_at"], "body": plain.unwrap_or(&c["body"])})
        };
        let comments = ticket_comments(&Config::load()?, ticket_id)?;
        let comments: Vec<Value> = comments.iter().map(summary).collect();
        Ok(json!({"ticket_id": ticket_id, "comments": comments}).to_string())
    }
}

/// Connector settings, read from the host on every call (instances are stateless).
#[derive(Deserialize)]
struct Config {
    /// Site root (a trailing `/api/v2` is dropped on load).
    base_url: BaseUrl,
    /// Tickets per incremental export page, clamped to 1..=1000; default 1000.
    page_size: Option<u32>,
}

impl Config {
    fn load() -> Result<Config> {
        let cfg: Config = airlock_sdk::settings::load()?;
        let base_url = cfg.base_url.without_suffix("/api/v2");
        Ok(Config { base_url, ..cfg })
    }

    /// An absolute URL for an API `path` (relative to `/api/v2`).
    fn api(&self, path: &str) -> String {
        self.base_url.join(&format!("/api/v2{path}"))
    }

    fn ticket_url(&self, id: u64) -> String {
        self.base_url.join(&format!("/agent/tickets/{id}"))
    }

    /// A GET of the API `path` with the parameters `query`.
    fn get(&self, path: &str, query: &[(&str, &str)]) -> Request {
        Request::get(self.api(path)).queries(query)
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
    let (kind, n) = match id.split_once(':') {
        Some(pair) => pair,
        None if id.contains('-') => ("comment", id),
        None => ("ticket", id),
    };
    match (kind, n.split_once('-')) {
        ("ticket", _) => number(n).map(Ref::Ticket),
        ("article", _) => number(n).map(Ref::Article),
        ("comment", Some((t, c))) => Ok(Ref::Comment(number(t)?, number(c)?)),
        ("comment", None) => Err(Error::invalid_input(format!("not a comment id: {n:?}"))),
        _ => Err(Error::invalid_input(format!(
            "unknown id kind in {id:?} (ticket:, article:, comment:)"
        ))),
    }
}

/// A numeric Zendesk id (digits only, no sign or spaces) that fits a `u64`.
fn number(s: &str) -> Result<u64> {
    let n = s.parse().ok().filter(|_| ids::is_numeric(s));
    n.ok_or_else(|| Error::invalid_input(format!("not a Zendesk id: {s:?}")))
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

fn sync_tickets(cfg: &Config, position: SyncCursor) -> Result<SyncPage> {
    let per_page = cfg.page_size.unwrap_or(1000).clamp(1, 1000).to_string();
    let start = position.start_time.unwrap_or(0).to_string();
    let at = match &position.c {
        Some(c) => ("cursor", c.as_str()),
        None => ("start_time", start.as_str()),
    };
    let query = [("per_page", per_page.as_str()), at];
    let reply = cfg.get("/incremental/tickets/cursor.json", &query).send()?;
    ticket_page(reply.json()?, cfg, position)
}

fn ticket_page(export: Page, cfg: &Config, previous: SyncCursor) -> Result<SyncPage> {
    let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
    for t in &export.items {
        if t["status"] == "deleted" {
            deletes.push(DocumentRef::new("ticket", record_id(t)?.to_string()));
        } else {
            upserts.push(ticket(t, cfg)?);
        }
    }
    // Without a new cursor the next call would fetch the same page again: end the run instead,
    // keeping ours (an empty page may carry none) so the next run does not start over.
    let fresh = paging::fresh(export.after_cursor, previous.c.as_deref());
    let done = export.end_of_stream || fresh.is_none();
    let mut next = previous;
    if let Some(c) = fresh {
        (next.c, next.start_time) = (Some(c), None);
    }
    Ok(SyncPage::next(upserts, &next).deletes(deletes).done(done))
}

/// One page of a time-based export from `start`. Zendesk refuses a `start_time` less than a
/// minute old ("Too recent start_time"): nothing is new yet, so the run ends unchanged.
fn time_sync(
    cfg: &Config,
    path: &str,
    start: i64,
    heed_end: bool,
    documents: impl Fn(&Value) -> Result<Vec<Document>>,
) -> Result<SyncPage> {
    let export = match cfg.get(path, &[("start_time", &start.to_string())]).send() {
        Err(Error::InvalidInput(m)) if m.to_ascii_lowercase().contains("too recent") => {
            Page::default()
        }
        reply => reply?.json()?,
    };
    time_page(export, start, heed_end, documents)
}

/// A time-based export page, its items mapped by `documents`. The next page starts at the
/// `start_time` of `next_page` when present, else at the reply's `end_time`, never earlier than
/// `start`. The run goes on while the reply has a `next_page` that starts later than this one
/// (so a stuck upstream cannot loop), items, and (where `heed_end`) no `end_of_stream`.
fn time_page(
    export: Page,
    start: i64,
    heed_end: bool,
    documents: impl Fn(&Value) -> Result<Vec<Document>>,
) -> Result<SyncPage> {
    let more = !export.items.is_empty() && (!heed_end || !export.end_of_stream);
    let link = export.next_page.as_deref();
    let linked = link.and_then(|u| url::query_param(u, "start_time")?.parse::<i64>().ok());
    let next = linked.or(export.end_time).unwrap_or(start).max(start);
    let (c, start_time) = (None, Some(next));
    let done = !more || link.is_none() || next <= start;
    let upserts: Result<Vec<Vec<Document>>> = export.items.iter().map(documents).collect();
    let upserts = upserts?.into_iter().flatten().collect();
    Ok(SyncPage::next(upserts, &SyncCursor { c, start_time }).done(done))
}

// ---- Upstream records (tolerant: every field but the id may be missing or null) ----------------

/// A list reply: the items under the endpoint's own key, and the paging fields the endpoint has
/// (`after_cursor`/`end_of_stream`: tickets export; `next_page`/`end_time`: time-based exports
/// and search; `meta`: comments).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Page {
    #[serde(alias = "tickets", alias = "ticket_events", alias = "articles")]
    #[serde(alias = "results", alias = "comments")]
    items: Vec<Value>,
    after_cursor: Option<String>,
    end_of_stream: bool,
    next_page: Option<String>,
    end_time: Option<i64>,
    meta: CommentMeta,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CommentMeta {
    has_more: bool,
    after_cursor: Option<String>,
}

/// The numeric `id` a ticket or an article cannot do without (its absence fails the page).
fn record_id(record: &Value) -> Result<u64> {
    let id = record["id"].as_u64();
    id.ok_or_else(|| Error::upstream("a Zendesk record without a numeric `id`"))
}

fn ticket(t: &Value, cfg: &Config) -> Result<Document> {
    let id = record_id(t)?;
    let keys = "status,priority,type,requester_id,assignee_id,organization_id";
    let tags = json!({"tags": t.get("tags").unwrap_or(&json!([]))});
    let doc = Document::new("ticket", id.to_string(), text(t, "/subject"))
        .body(text(t, "/description"))
        .url(cfg.ticket_url(id))
        .updated_at(first(t, "/updated_at|/created_at"));
    Ok(doc.metadata(pick(t, keys, tags)))
}

fn article(a: &Value) -> Result<Document> {
    let meta = json!({"section_id": a["section_id"], "locale": a["locale"],
        "draft": a["draft"] == true});
    let doc = Document::new("article", record_id(a)?.to_string(), text(a, "/title"))
        .body(html_to_text(&text(a, "/body")))
        .url_opt(a["html_url"].as_str())
        .updated_at(first(a, "/updated_at|/created_at"));
    Ok(doc.metadata(meta))
}

/// Search results as documents: tickets and articles; other result types are skipped.
fn search_hits(items: &[Value], cfg: &Config) -> Result<Vec<Document>> {
    let hit = |item: &Value| match item["result_type"].as_str() {
        Some("ticket") => Some(ticket(item, cfg)),
        Some("article") => Some(article(item)),
        _ => None,
    };
    items.iter().filter_map(hit).collect()
}

/// The comments among the child events of a ticket event (the export marks their type in
/// `event_type`, the comments API in `type`).
fn event_comments(event: &Value, cfg: &Config) -> Result<Vec<Document>> {
    let no_ticket = || Error::upstream("a Zendesk ticket event without a numeric `ticket_id`");
    let ticket = event["ticket_id"].as_u64().ok_or_else(no_ticket)?;
    let at = text(event, "/created_at");
    let is_comment = |c: &&Value| first(c, "/event_type|/type") == "Comment";
    let comments = array(event, "/child_events").filter(is_comment);
    let documents = comments.filter_map(|c| comment(c, ticket, &at, cfg));
    Ok(documents.collect())
}

/// A comment of `ticket` as a document (`None` without an id); `at` is the time of its ticket
/// event, for a child event that carries none of its own.
fn comment(c: &Value, ticket: u64, at: &str, cfg: &Config) -> Option<Document> {
    let id = format!("{ticket}-{}", c["id"].as_u64()?);
    let meta = json!({"ticket_id": ticket, "public": c["public"], "author_id": c["author_id"]});
    let doc = Document::new("comment", id, format!("Comment on ticket {ticket}"))
        .body(first(c, "/plain_body|/body"))
        .url(cfg.ticket_url(ticket))
        .updated_at(or(text(c, "/created_at"), at));
    Some(doc.metadata(meta))
}

/// All comments of `ticket`, following `meta.after_cursor` while `meta.has_more`.
fn ticket_comments(cfg: &Config, ticket: u64) -> Result<Vec<Value>> {
    let path = format!("/tickets/{ticket}/comments.json");
    paging::collect(&path, MAX_COMMENT_PAGES, None, |after: &Option<String>| {
        let at = after.as_deref().map(|a| ("page[after]", a));
        let query: Vec<_> = [("page[size]", "100")].into_iter().chain(at).collect();
        let page: Page = cfg.get(&path, &query).send()?.json()?;
        let next = page.meta.after_cursor.filter(|_| page.meta.has_more);
        Ok((page.items, next.map(Some)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::serde_json;

    fn cfg() -> Config {
        let base_url = BaseUrl::parse("http://127.0.0.1:8782").unwrap();
        Config {
            base_url,
            page_size: Some(1000),
        }
    }

    /// The position `sync` reads from a stored cursor.
    fn decode(c: Option<&str>) -> Result<SyncCursor> {
        Ok(cursor::decode(c)?.unwrap_or_default())
    }

    fn at(start_time: i64) -> SyncCursor {
        SyncCursor {
            c: None,
            start_time: Some(start_time),
        }
    }

    #[test]
    fn cursors() {
        assert_eq!(decode(None).unwrap(), SyncCursor::default());
        let c = decode(Some(r#"{"c":"abc"}"#)).unwrap();
        assert_eq!((c.c.as_deref(), c.start_time), (Some("abc"), None));
        assert_eq!(cursor::encode(&c), r#"{"c":"abc"}"#);
        assert_eq!(cursor::encode(&at(17)), r#"{"start_time":17}"#);
        assert!(matches!(decode(Some("x")), Err(Error::InvalidInput(_))));
        let next = "https://a.zendesk.com/api/v2/incremental/ticket_events.json?start_time=90";
        let start_at = |t: i64| cursor::encode(&at(t));
        // The next start: `start_time` of next_page, else end_time, else the current start.
        assert_eq!(time(Some(next), Some(80), 10, true).0, start_at(90));
        assert_eq!(time(None, Some(80), 10, true).0, start_at(80));
        assert_eq!(time(None, None, 10, true).0, start_at(10));
        let (cursor, done) = time(Some(next), Some(80), 10, true);
        assert!(!done);
        assert_eq!(cursor, r#"{"start_time":90}"#);
        assert!(time(None, Some(80), 10, true).1);
        assert!(time(Some(next), Some(80), 10, false).1);
        assert!(time(Some(next), None, 90, true).1); // no progress
        // `end_of_stream` ends a run only where the export is said to have one.
        let page = |v: Value| serde_json::from_value::<Page>(v).unwrap();
        let eos = json!({"articles": [{}], "next_page": next, "end_of_stream": true});
        let none = |_: &Value| Ok(vec![]);
        assert!(time_page(page(eos.clone()), 10, true, none).unwrap().done);
        assert!(!time_page(page(eos), 10, false, none).unwrap().done);
    }

    /// `time_page` over a reply with one item (`more`) or none: (next cursor, done).
    fn time(link: Option<&str>, end_time: Option<i64>, start: i64, more: bool) -> (String, bool) {
        let items = if more { vec![json!({})] } else { vec![] };
        let reply = json!({"ticket_events": items, "next_page": link, "end_time": end_time});
        let page: Page = serde_json::from_value(reply).unwrap();
        let page = time_page(page, start, true, |_| Ok(vec![])).unwrap();
        (page.next_cursor.unwrap(), page.done)
    }

    fn export(v: Value) -> Page {
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
        let prev = decode(Some(r#"{"c":"n1"}"#)).unwrap();
        let out = ticket_page(
            export(json!({"tickets": [], "end_of_stream": true})),
            &cfg(),
            prev,
        )
        .unwrap();
        assert!(out.done && out.upserts.is_empty());
        assert_eq!(out.next_cursor.as_deref(), Some(r#"{"c":"n1"}"#));
        // A repeated cursor without end_of_stream must not loop.
        let prev = decode(Some(r#"{"c":"n1"}"#)).unwrap();
        let same = export(json!({"tickets": [], "after_cursor": "n1", "end_of_stream": false}));
        assert!(ticket_page(same, &cfg(), prev).unwrap().done);
        // A ticket without an id fails the page rather than vanishing.
        let bad = export(json!({"tickets": [{"subject": "no id"}], "after_cursor": "n2"}));
        assert!(matches!(
            ticket_page(bad, &cfg(), SyncCursor::default()),
            Err(Error::Upstream(_))
        ));
    }

    #[test]
    fn comments_and_articles() {
        let event = json!({
            "id": 1, "ticket_id": 7, "created_at": "2025-01-01T00:00:00Z", "event_type": "Audit",
            "child_events": [
                {"id": 11, "event_type": "Comment", "body": "<b>x</b>", "plain_body": "x",
                 "public": false, "author_id": 3},
                {"id": 12, "event_type": "Change", "field_name": "status", "value": "open"}
            ]
        });
        let docs = event_comments(&event, &cfg()).unwrap();
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

        let reply: Page = serde_json::from_value(json!({"results": [
            {"result_type": "user", "id": 1, "name": "u"},
            {"result_type": "article", "id": 5, "title": "T", "body": "<p>a &amp; b</p>",
             "html_url": "https://h/hc/a/5", "section_id": 2, "locale": "en-us", "draft": false,
             "updated_at": "2025-01-01T00:00:00Z"},
            {"result_type": "ticket", "id": 6, "subject": "S", "status": "open"}
        ], "next_page": null}))
        .unwrap();
        let docs = search_hits(&reply.items, &cfg()).unwrap();
        let [doc, ticket] = &docs[..] else { panic!() };
        assert_eq!((ticket.kind.as_str(), ticket.id.as_str()), ("ticket", "6"));
        let meta: Value = serde_json::from_str(&ticket.metadata).unwrap();
        assert_eq!(
            meta["tags"],
            json!([]),
            "a ticket without tags has none, not null"
        );
        assert_eq!(meta["priority"], Value::Null);
        assert_eq!(
            (doc.kind.as_str(), doc.id.as_str(), doc.body.as_str()),
            ("article", "5", "a & b")
        );
        assert_eq!(doc.url.as_deref(), Some("https://h/hc/a/5"));
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
