//! Zendesk Support and Help Center connector: incremental exports of tickets, ticket comments and
//! Help Center articles, live search, `get` by id and a read-only `ticket-comments` action. Holds
//! no credentials: the host's gate injects Basic (`{email}/token:{api_token}`) or Bearer.
//!
//! Settings: `base_url` (e.g. `https://acme.zendesk.com`), optional `page_size` (tickets per
//! incremental export page, 1..=1000, default 1000).

use std::collections::BTreeSet;

use airlock_sdk::export::{self, Position};
use airlock_sdk::json::{Text, array, first, first_of, text, typed_text};
use airlock_sdk::paging::{Next, PageNumber, Pages};
use airlock_sdk::prelude::*;
use airlock_sdk::text::or;
use serde::Deserialize;

struct Zendesk;

airlock_sdk::export_connector!(Zendesk);

/// Zendesk search serves at most this many results per query and answers 422 beyond.
const SEARCH_MAX: u32 = 1000;
/// The ticket events export, with the comments each event added.
const EVENTS: &str = "/incremental/ticket_events.json?include=comment_events";
const ARTICLES: &str = "/help_center/incremental/articles.json";
/// Upper bound on comment pages fetched for one ticket (100 comments each).
const MAX_COMMENT_PAGES: usize = 100;
/// Agents whose role reads every ticket (admins, agents without restrictions).
const AGENTS: &str = "zendesk-agents";
/// ACL prefixes: the agents of a Zendesk group, the users of an organization.
const GROUP: &str = "group:zendesk-group:";
const ORG: &str = "group:zendesk-org:";

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
                       Cursor-based incremental export, up to eight pages per call.";
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
        Ok(HealthStatus::accepted("Zendesk", &cfg.base_url))
    }

    fn search(request: SearchRequest) -> Result<SearchResult> {
        let (cfg, query) = (Config::load()?, request.query_text()?);
        PageNumber::of(&request, 25, 100, SEARCH_MAX)?.search(|at| {
            let (n, p) = (at.per_page.to_string(), at.page.to_string());
            let query = [("query", query), ("per_page", &n), ("page", &p)];
            let reply: Page = cfg.get("/search.json", &query).send()?.json()?;
            let more = reply.next_page.is_some() && !reply.items.is_empty();
            let hits = search_hits(&reply.items, &Access::of(&cfg, &reply.items)?, &cfg)?;
            Ok((hits, more))
        })
    }

    fn get(id: String) -> Result<Document> {
        let cfg = Config::load()?;
        match ids::typed(&id, &KINDS)? {
            ("ticket", n) => {
                let t = cfg.get(&format!("/tickets/{}.json", n[0]), &[]).send()?;
                let t: Value = t.json_at("/ticket")?;
                let access = Access::of(&cfg, std::slice::from_ref(&t))?;
                ticket(&typed_text(&t.to_string())?, &access, &cfg)
            }
            ("article", n) => {
                let path = format!("/help_center/articles/{}.json", n[0]);
                let a = cfg.get(&path, &[]).send()?.json_at("/article")?;
                article(&a, &Access::of(&cfg, std::slice::from_ref(&a))?)
            }
            (_, n) => {
                // As for an event that changes the ticket's readers: its comments, with its ACL.
                let event = json!({"ticket_id": n[0], "child_events": [{"event_type": "Cc"}]});
                let id = format!("{}-{}", n[0], n[1]);
                let comments = event_comments(&[event], &cfg)?;
                let found = comments.into_iter().find(|d| d.id == id);
                found.ok_or_else(|| Error::not_found(format!("no comment {id}")))
            }
        }
    }

    /// `principal` is the caller's Zendesk user id (`[connector.users]`). Yes only when the
    /// record's ACL names that user or is open to everyone signed in; access through a group
    /// (agents, organizations, segments) is not known for one user here, so it is no.
    fn check_permission(principal: String, id: String) -> Result<bool> {
        let readers = Self::get(id)?.acl;
        Ok(acl::allows(&readers, &[acl::user(principal.trim())]))
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        let position: Position = cursor::position(cursor.as_deref())?;
        let (cfg, start) = (Config::load()?, position.start());
        match stream.as_str() {
            "tickets" => sync_tickets(&cfg, position),
            "comments" | "articles" => sync_times(&cfg, &stream, start),
            _ => Err(Self::info().unknown_stream(&stream)),
        }
    }

    fn invoke(action: String, input: String) -> Result<String> {
        let CommentsInput { ticket_id } = action_input(&action, "ticket-comments", &input)?;
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
    /// Tickets per incremental export page.
    #[serde(default)]
    page_size: PageSize<1000, 1000>,
}

impl Config {
    fn load() -> Result<Config> {
        settings::load_site("/api/v2")
    }

    fn ticket_url(&self, id: u64) -> String {
        self.base_url.join(&format!("/agent/tickets/{id}"))
    }

    /// A GET of the API `path` with the parameters `query`.
    fn get(&self, path: &str, query: &[(&str, &str)]) -> Request {
        self.base_url.under("/api/v2").get(path).queries(query)
    }

    /// The records of a `show_many` endpoint (`ids`: at most 100, comma-separated).
    fn many(&self, path: &str, ids: &str) -> Result<Vec<Value>> {
        let page: Page = self.get(path, &[("ids", ids)]).send()?.json()?;
        Ok([page.items, page.organizations].concat())
    }
}

/// The kinds of ids `get` and `check-permission` take: `123` / `ticket:123`, `article:123`,
/// `123-456` / `comment:123-456` (ticket, comment). Digits only, so ids cannot smuggle path
/// segments or query strings into URLs.
const KINDS: [(&str, usize); 3] = [("ticket", 1), ("article", 1), ("comment", 2)];

// ---- Sync -------------------------------------------------------------------------------------
//
// A call returns what it read, and the host commits it together with the returned cursor, so a
// crash or a 429 resumes from the last committed call. A tickets call reads up to eight export
// pages (asking for more for up to 5 s), asking for each next page while the last becomes
// documents; the other streams read one page a call. Cursors are `airlock_sdk::export::Position`s:
//   tickets   {"c": after_cursor} (cursor-based export; the first run starts at start_time=0);
//   comments, articles {"start_time": unix seconds} (time-based exports).
// A finished run's cursor continues with newer changes on the next run. Tickets changed again
// during a run show up twice; upserts are idempotent.

fn sync_tickets(cfg: &Config, position: Position) -> Result<SyncPage> {
    let n = cfg.page_size.get().to_string();
    // The organizations of the page's tickets come with it (a sideload): no extra request.
    let query = [("per_page", &*n), ("include", "organizations")];
    let request = |at: &Position| at.ask(cfg.get("/incremental/tickets/cursor.json", &query));
    // Up to eight export pages a call (1,000 tickets each by default): the next page is asked
    // for while the last becomes documents, so the upstream's time and the connector's overlap.
    export::cursor_pages(position, 8, request, |reply, page| {
        let mut export: Page<Ticket> = reply.json()?;
        let orgs = std::mem::take(&mut export.organizations);
        let orgs_of = export.items.iter().map(|t| raw::u64(t.organization_id));
        let access = Access::with(cfg, orgs_of.flatten().collect(), vec![], orgs)?;
        ticket_page(&export, &access, cfg, page)?;
        Ok((export.after_cursor, export.end_of_stream))
    })
}

/// A page's tickets as upserts, its deleted tickets as deletes, added to `to`.
fn ticket_page(e: &Page<Ticket>, access: &Access, cfg: &Config, to: &mut SyncPage) -> Result<()> {
    let (upserts, deletes) = (&mut to.upserts, &mut to.deletes);
    for t in &e.items {
        match raw::str(t.status).as_deref() == Some("deleted") {
            true => deletes.push(DocumentRef::new("ticket", record_id(t)?.to_string())),
            false => upserts.push(ticket(t, access, cfg)?),
        }
    }
    Ok(())
}

/// The documents of a page of a time-based export's records.
type Mapping = fn(&[Value], &Config) -> Result<Vec<Document>>;

/// One page of a time-based export from `start`: `comments` from the ticket events (whose
/// `end_of_stream` ends a run), or `articles`. Zendesk refuses a `start_time` less than a minute
/// old ("Too recent start_time"): nothing is new yet, so the page is empty.
fn sync_times(cfg: &Config, stream: &str, start: i64) -> Result<SyncPage> {
    let (path, heed_end, map): (_, _, Mapping) = match stream {
        "comments" => (EVENTS, true, event_comments),
        _ => (ARTICLES, false, articles),
    };
    let reply = cfg.get(path, &[("start_time", &start.to_string())]).send();
    let export: Page = export::unless_too_recent(reply)?;
    let upserts = map(&export.items, cfg)?;
    Ok(time_page(&export, start, heed_end, upserts))
}

/// The sync page of a time-based export page read from `start`, its items mapped to `upserts`.
/// The next page starts at the `start_time` of `next_page` when present, else at the reply's
/// `end_time`, never earlier than `start`. The run goes on while the reply has a `next_page`
/// that starts later than this one (so a stuck upstream cannot loop), items, and (where
/// `heed_end`) no `end_of_stream`; an empty page ends the run unchanged.
fn time_page(export: &Page, start: i64, heed_end: bool, upserts: Vec<Document>) -> SyncPage {
    let more = !export.items.is_empty() && (!heed_end || !export.end_of_stream);
    let link = export.next_page.as_deref();
    let (next, done) = Position::after_time(start, link, export.end_time, more);
    SyncPage::next(upserts, &next).done(done)
}

// ---- Upstream records (tolerant: every field but the id may be missing or null) ----------------

/// A list reply: the items under the endpoint's own key, and the paging fields the endpoint has
/// (`after_cursor`/`end_of_stream`: tickets export; `next_page`/`end_time`: time-based exports
/// and search).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Page<T = Value> {
    #[serde(alias = "tickets", alias = "ticket_events", alias = "articles")]
    #[serde(alias = "results")]
    items: Vec<T>,
    /// Sideloaded (`include=organizations`) or asked by id (`show_many`).
    organizations: Vec<Value>,
    after_cursor: Option<String>,
    end_of_stream: bool,
    next_page: Option<String>,
    end_time: Option<i64>,
}

/// A ticket: the fields its document and its readers are made of, borrowed from the reply. An
/// export sends some 35 fields per ticket: building a `Value` of each was most of an unchanged
/// re-sync's time. Text reads any scalar; the metadata and ACL fields stay the reply's text.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Ticket<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    subject: Text<'a>,
    description: Text<'a>,
    updated_at: Text<'a>,
    created_at: Text<'a>,
    status: Option<&'a RawValue>,
    priority: Option<&'a RawValue>,
    #[serde(rename = "type")]
    kind: Option<&'a RawValue>,
    requester_id: Option<&'a RawValue>,
    assignee_id: Option<&'a RawValue>,
    organization_id: Option<&'a RawValue>,
    group_id: Option<&'a RawValue>,
    tags: Option<&'a RawValue>,
    follower_ids: Option<&'a RawValue>,
    email_cc_ids: Option<&'a RawValue>,
    collaborator_ids: Option<&'a RawValue>,
}

/// The numeric `id` a ticket cannot do without (its absence fails the page).
fn record_id(t: &Ticket) -> Result<u64> {
    t.id.ok_or_else(|| Error::upstream("an upstream ticket without a numeric `id`"))
}

fn ticket(t: &Ticket, access: &Access, cfg: &Config) -> Result<Document> {
    let id = record_id(t)?;
    // Keys in order, as the metadata has them (no sorting per record).
    let meta = airlock_sdk::raw_fields!({"assignee_id": t.assignee_id,
        "organization_id": t.organization_id, "priority": t.priority, "requester_id": t.requester_id,
        "status": t.status, "tags": t.tags.or(raw::empty_array()), "type": t.kind});
    Ok(Document::new("ticket", id.to_string(), &*t.subject)
        .body(&*t.description)
        .url(cfg.ticket_url(id))
        .updated_at(first_of([&*t.updated_at, &t.created_at]))
        .metadata_raw(meta)
        .acl(readers(t, access, true)))
}

fn article(a: &Value, access: &Access) -> Result<Document> {
    let meta = json!({"section_id": a["section_id"], "locale": a["locale"],
        "draft": a["draft"] == true});
    let id = json::required_u64(a, "/id")?;
    let doc = Document::new("article", id.to_string(), text(a, "/title"))
        .body(html_to_text(&text(a, "/body")))
        .url_opt(a["html_url"].as_str())
        .updated_at(first(a, "/updated_at|/created_at"));
    let segment = a["user_segment_id"].as_u64();
    let segment = segment.map(|s| access.segments.iter().find(|g| g["id"] == s));
    let readers = segment.map_or_else(|| vec![acl::EVERYONE.into()], segment_readers);
    Ok(doc.metadata(meta).acl(readers))
}

/// A page of articles as documents.
fn articles(items: &[Value], cfg: &Config) -> Result<Vec<Document>> {
    let access = Access::of(cfg, items)?;
    items.iter().map(|a| article(a, &access)).collect()
}

/// Search results as documents: tickets and articles; other result types are skipped.
fn search_hits(items: &[Value], access: &Access, cfg: &Config) -> Result<Vec<Document>> {
    let hit = |item: &Value| match item["result_type"].as_str() {
        Some("ticket") => Some(typed_text(&item.to_string()).and_then(|t| ticket(&t, access, cfg))),
        Some("article") => Some(article(item, access)),
        _ => None,
    };
    items.iter().filter_map(hit).collect()
}

// ---- Permissions (docs/connectors/zendesk.md) -------------------------------------------------

/// What a page's ACLs need beyond its records: the organizations among them that share their
/// tickets (their ids), and the Help Center user segments its articles name.
struct Access {
    /// The ids (JSON text) of those organizations: a set every ticket of a page looks its own
    /// organization up in, by id (an entry's long common prefix made each comparison slow).
    shared: BTreeSet<String>,
    segments: Vec<Value>,
}

impl Access {
    fn of(cfg: &Config, records: &[Value]) -> Result<Access> {
        let ids = |key: &str| records.iter().filter_map(|r| r[key].as_u64()).collect();
        let (orgs, segs) = (ids("organization_id"), ids("user_segment_id"));
        Self::with(cfg, orgs, segs, Vec::new())
    }

    /// The access of records naming organizations `wanted` and user segments `segs`, with
    /// `orgs` already at hand (sideloaded): only other organizations are asked for.
    fn with(cfg: &Config, wanted: Vec<u64>, segs: Vec<u64>, orgs: Vec<Value>) -> Result<Access> {
        let path = "/organizations/show_many.json";
        let orgs = paging::by_ids_besides(wanted, orgs, 100, |ids| cfg.many(path, ids))?;
        let shared = orgs.iter().filter(|o| o["shared_tickets"] == true);
        let shared = shared.flat_map(|o| acl::at(o, "", "/id")).collect();
        let segments = paging::by_ids(segs, 1, |id| {
            let path = format!("/help_center/user_segments/{id}.json");
            Ok(vec![cfg.get(&path, &[]).send()?.json_at("/user_segment")?])
        })?;
        Ok(Access { shared, segments })
    }
}

/// Who reads ticket `t` (or, when not `public`, its internal notes): agents who read every
/// ticket, the agents of its group, its assignee and followers; for public content also the
/// requester, the CCs and, when its organization shares tickets, that organization's users.
fn readers(t: &Ticket, access: &Access, public: bool) -> Vec<String> {
    let mut out = acl::each_raw("user:", [t.assignee_id, t.follower_ids]);
    acl::extend_raw(&mut out, GROUP, [t.group_id]);
    out.push(["group:", AGENTS].concat()); // `acl::group` without `format!`, once a ticket
    if public {
        let people = [t.requester_id, t.email_cc_ids, t.collaborator_ids];
        acl::extend_raw(&mut out, "user:", people);
        let org = acl::each_raw(ORG, [t.organization_id]).into_iter();
        out.extend(org.filter(|o| access.shared.contains(&o[ORG.len()..])));
    }
    acl::of(out)
}

/// Who views an article restricted to user segment `s` (`None`: not found): the segment's
/// groups and organizations, else agents (`staff`) or everyone signed in. Tags cannot be matched
/// to a principal, so a segment with tags is read by no one here (fail closed).
fn segment_readers(s: Option<&Value>) -> Vec<String> {
    let tagged = s.is_none_or(|s| !acl::at(s, "", "/tags|/or_tags").is_empty());
    let s = s.unwrap_or(&Value::Null);
    let mut out = acl::at(s, GROUP, "/group_ids");
    out.extend(acl::at(s, ORG, "/organization_ids"));
    // No groups or organizations named: everyone of the user type.
    let staff = (s["user_type"] == "staff").then(|| acl::group(AGENTS));
    let all = staff.unwrap_or_else(|| acl::EVERYONE.into());
    let all = Some(all).filter(|_| out.is_empty());
    acl::of(out.into_iter().chain(all).filter(|_| !tagged))
}

/// The comments of a page of ticket events, with the ACL of their ticket as it is now. An event
/// that may change who reads the ticket (see [`changes_readers`]) brings all the ticket's
/// comments again, with the new ACL.
fn event_comments(events: &[Value], cfg: &Config) -> Result<Vec<Document>> {
    let ids = events.iter().filter_map(|e| e["ticket_id"].as_u64());
    let tickets = paging::by_ids(ids, 100, |ids| cfg.many("/tickets/show_many.json", ids))?;
    let (access, mut again, mut out) = (Access::of(cfg, &tickets)?, BTreeSet::new(), Vec::new());
    let texts: Vec<String> = tickets.iter().map(Value::to_string).collect();
    let tickets: Vec<Ticket> = texts.iter().map(|t| typed_text(t)).collect::<Result<_>>()?;
    let is_comment = |c: &&Value| first(c, "/event_type|/type") == "Comment";
    for e in events {
        let id = json::required_u64(e, "/ticket_id")?;
        let t = tickets.iter().find(|t| t.id == Some(id));
        let children = array(e, "/child_events");
        let comments: Vec<Value> = match children.clone().any(changes_readers) {
            true if again.insert(id) => ticket_comments(cfg, id)?,
            _ => children.filter(is_comment).cloned().collect(),
        };
        let at = text(e, "/created_at");
        let Some(t) = t else { continue }; // no ticket (deleted): no readers to copy
        for c in &comments {
            out.extend(comment(c, t, &access, &at, cfg));
        }
    }
    Ok(out)
}

/// Child events that may change who reads a ticket or a comment (besides a `Change` of a field
/// named in [`READER_FIELDS`]): CCs, followers, a comment made private.
const READER_EVENTS: &str = "EmailCcChange FollowerChange Cc CommentPrivacyChange";
const READER_FIELDS: &str =
    "requester_id organization_id group_id assignee_id collaborator_ids email_cc_ids follower_ids";

/// Whether a child event may change who reads the ticket or a comment.
fn changes_readers(c: &Value) -> bool {
    let kind = text(c, "/event_type");
    let field = |f: &str| c["field_name"] == f || c.get(f).is_some();
    let changed = kind == "Change" && READER_FIELDS.split(' ').any(field);
    changed || READER_EVENTS.split(' ').any(|k| k == kind)
}

/// A comment of ticket `t` as a document (`None` without an id); `at` is the time of its ticket
/// event, for a child event that carries none of its own.
fn comment(c: &Value, t: &Ticket, access: &Access, at: &str, cfg: &Config) -> Option<Document> {
    let ticket = t.id?;
    let id = format!("{ticket}-{}", c["id"].as_u64()?);
    let meta = json!({"ticket_id": ticket, "public": c["public"], "author_id": c["author_id"]});
    let doc = Document::new("comment", id, format!("Comment on ticket {ticket}"))
        .body(first(c, "/plain_body|/body"))
        .url(cfg.ticket_url(ticket))
        .updated_at(or(text(c, "/created_at"), at));
    let readers = readers(t, access, c["public"] == true);
    Some(doc.metadata(meta).acl(readers))
}

/// All comments of `ticket`, following `meta.after_cursor` while `meta.has_more`.
fn ticket_comments(cfg: &Config, ticket: u64) -> Result<Vec<Value>> {
    let path = format!("/tickets/{ticket}/comments.json");
    let next = Next::cursor_while("/meta/after_cursor", "page[after]", "/meta/has_more");
    let pages = Pages::new(cfg.get(&path, &[("page[size]", "100")]), next);
    pages.collect(&path, "/comments", MAX_COMMENT_PAGES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::serde_json;

    fn cfg() -> Config {
        let base_url = BaseUrl::parse("http://127.0.0.1:8782").unwrap();
        Config {
            base_url,
            page_size: PageSize::default(),
        }
    }

    /// No organization shares tickets, no segments.
    fn open() -> Access {
        Access {
            shared: BTreeSet::new(),
            segments: vec![],
        }
    }

    /// The position `sync` reads from a stored cursor.
    fn decode(c: Option<&str>) -> Result<Position> {
        cursor::position(c)
    }

    fn at(start_time: i64) -> Position {
        Position::at(start_time)
    }

    #[test]
    fn cursors() {
        assert_eq!(decode(None).unwrap(), Position::default());
        let c = decode(Some(r#"{"c":"abc"}"#)).unwrap();
        assert_eq!((c.cursor.as_deref(), c.start_time), (Some("abc"), None));
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
        assert!(time_page(&page(eos.clone()), 10, true, vec![]).done);
        assert!(!time_page(&page(eos), 10, false, vec![]).done);
    }

    /// `time_page` over a reply with one item (`more`) or none: (next cursor, done).
    fn time(link: Option<&str>, end_time: Option<i64>, start: i64, more: bool) -> (String, bool) {
        let items = if more { vec![json!({})] } else { vec![] };
        let reply = json!({"ticket_events": items, "next_page": link, "end_time": end_time});
        let page: Page = serde_json::from_value(reply).unwrap();
        let page = time_page(&page, start, true, vec![]);
        (page.next_cursor.unwrap(), page.done)
    }

    /// An export page parsed from the text of `v` as `sync` parses a reply (borrowing from it;
    /// the text lives as long as the test).
    fn export(v: Value) -> Page<Ticket<'static>> {
        let body: &'static str = Box::leak(v.to_string().into_boxed_str());
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn ticket_metadata_is_the_text_a_json_object_of_its_fields_gives() {
        let page = export(json!({
            "tickets": [
                {"id": 1, "status": "open", "priority": null, "type": "incident",
                 "requester_id": 3, "assignee_id": 410000000983_u64, "organization_id": 9,
                 "tags": ["hw", "café \"x\""]},
                {"id": 2, "status": {"odd": [1, 2.5]}, "tags": null},
                {"id": 3}
            ],
            "after_cursor": "n1", "end_of_stream": true
        }));
        // Each field as a `Value` (null when missing), tags `[]` when missing or null.
        let value = |raw: Option<&RawValue>| {
            raw.map_or(Value::Null, |r| serde_json::from_str(r.get()).unwrap())
        };
        for t in &page.items {
            let tags = t.tags.map_or(json!([]), |r| value(Some(r)));
            let before = json!({"status": value(t.status), "priority": value(t.priority),
                "type": value(t.kind), "requester_id": value(t.requester_id),
                "assignee_id": value(t.assignee_id), "organization_id": value(t.organization_id),
                "tags": tags});
            let doc = ticket(t, &open(), &cfg()).unwrap();
            assert_eq!(doc.metadata, before.to_string());
        }
    }

    #[test]
    fn ticket_pages() {
        let page = export(json!({
            "tickets": [
                {"id": 7, "subject": "Printer", "description": "It is on fire", "status": "open",
                 "priority": null, "type": "incident", "requester_id": 3, "assignee_id": null,
                 "organization_id": 9, "tags": ["hw"], "updated_at": "2025-01-02T03:04:05Z",
                 "custom_fields": [{"id": 1, "value": null}]},
                {"id": 8, "subject": null, "status": "deleted", "updated_at": "2025-01-03T00:00:00Z"},
                {"id": 9, "subject": 42, "description": "two\nlines", "created_at": "2025-01-04",
                 "updated_at": " ", "via": {"channel": "web", "source": {"from": {}}}}
            ],
            "after_cursor": "n1", "end_of_stream": false
        }));
        let out = page_of(&page).unwrap();
        let [doc, odd] = &out.upserts[..] else {
            panic!()
        };
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
        // Text is read as before: any scalar, a blank time falls back to the creation time, no
        // tags are `[]` and missing fields are null.
        assert_eq!(
            (
                odd.title.as_str(),
                odd.body.as_str(),
                odd.updated_at.as_str()
            ),
            ("42", "two\nlines", "2025-01-04")
        );
        let meta: Value = serde_json::from_str(&odd.metadata).unwrap();
        assert_eq!(
            meta,
            json!({"status": null, "priority": null, "type": null, "requester_id": null,
                   "assignee_id": null, "organization_id": null, "tags": []})
        );
        assert_eq!(odd.acl, ["group:zendesk-agents"]);
        let [del] = &out.deletes[..] else { panic!() };
        assert_eq!((del.kind.as_str(), del.id.as_str()), ("ticket", "8"));

        // Where the export goes on is `Position::after_cursor`'s (the SDK's tests).
        // A ticket without an id fails the page rather than vanishing.
        let bad = export(json!({"tickets": [{"subject": "no id"}], "after_cursor": "n2"}));
        assert!(matches!(page_of(&bad), Err(Error::Upstream(_))));
    }

    /// The sync page `ticket_page` makes of an export page (every ticket readable).
    fn page_of(export: &Page<Ticket>) -> Result<SyncPage> {
        let mut page = SyncPage::next(vec![], &Position::default());
        ticket_page(export, &open(), &cfg(), &mut page).map(|()| page)
    }

    #[test]
    fn comments_and_articles() {
        let t = json!({"id": 7, "requester_id": 3, "email_cc_ids": [4], "organization_id": 9,
            "group_id": 2, "assignee_id": 5});
        let text = t.to_string();
        let t: Ticket = typed_text(&text).unwrap();
        let shared = BTreeSet::from(["9".to_string()]);
        let access = Access {
            shared,
            segments: vec![],
        };
        let note = json!({"id": 11, "event_type": "Comment", "body": "<b>x</b>",
            "plain_body": "x", "public": false, "author_id": 3});
        let doc = &comment(&note, &t, &access, "2025-01-01T00:00:00Z", &cfg()).unwrap();
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
        // An internal note is the agents'; a public comment also its requester's, CCs' and
        // (when it shares tickets) its organization's.
        let agents = ["group:zendesk-agents", "group:zendesk-group:2", "user:5"];
        assert_eq!(doc.acl, agents);
        let public = comment(&json!({"id": 12, "public": true}), &t, &access, "", &cfg());
        let everyone_of_it = [
            &agents[..2],
            &["group:zendesk-org:9", "user:3", "user:4", "user:5"],
        ];
        assert_eq!(public.unwrap().acl, everyone_of_it.concat());
        let closed = Access {
            shared: BTreeSet::new(),
            segments: vec![],
        };
        assert!(!readers(&t, &closed, true).contains(&"group:zendesk-org:9".to_string()));
        // Which events may change readers.
        assert!(changes_readers(
            &json!({"event_type": "Change", "field_name": "organization_id"})
        ));
        assert!(changes_readers(
            &json!({"event_type": "Change", "requester_id": 3})
        ));
        assert!(changes_readers(&json!({"event_type": "EmailCcChange"})));
        assert!(!changes_readers(
            &json!({"event_type": "Change", "field_name": "status"})
        ));
        assert!(!changes_readers(
            &json!({"event_type": "Comment", "public": true})
        ));
        // Help Center user segments.
        let seg = |v: Value| segment_readers(Some(&v));
        assert_eq!(seg(json!({"user_type": "staff"})), ["group:zendesk-agents"]);
        let grouped =
            json!({"user_type": "signed_in_users", "group_ids": [2], "organization_ids": [9]});
        assert_eq!(
            seg(grouped),
            ["group:zendesk-group:2", "group:zendesk-org:9"]
        );
        assert_eq!(
            seg(json!({"user_type": "signed_in_users"})),
            [acl::EVERYONE]
        );
        assert_eq!(
            seg(json!({"user_type": "signed_in_users", "tags": ["vip"]})),
            [acl::NOBODY]
        );
        assert_eq!(segment_readers(None), [acl::NOBODY]);

        let reply: Page = serde_json::from_value(json!({"results": [
            {"result_type": "user", "id": 1, "name": "u"},
            {"result_type": "article", "id": 5, "title": "T", "body": "<p>a &amp; b</p>",
             "html_url": "https://h/hc/a/5", "section_id": 2, "locale": "en-us", "draft": false,
             "updated_at": "2025-01-01T00:00:00Z"},
            {"result_type": "ticket", "id": 6, "subject": "S", "status": "open"}
        ], "next_page": null}))
        .unwrap();
        let docs = search_hits(&reply.items, &closed, &cfg()).unwrap();
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
        let kind = |id: &str| ids::typed(id, &KINDS).map(|(k, _)| k);
        assert_eq!(kind("123").unwrap(), "ticket");
        assert_eq!(kind("article:9").unwrap(), "article");
        assert_eq!(kind("7-11").unwrap(), "comment");
        assert!(matches!(kind("user:1"), Err(Error::InvalidInput(_))));
    }
}
