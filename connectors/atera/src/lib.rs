//! Atera (API v3) connector: tickets (full listing on the first run, then `/tickets/lastmodified`),
//! ticket comments, `get` by ticket id and a writing `add-comment` action. Holds no credentials:
//! the host's gate injects `X-API-KEY: <key>` or `Authorization: Bearer <token>`.
//!
//! Settings: `base_url` (e.g. `https://app.atera.com`; a trailing `/api/v3` is ignored) and, for
//! `add-comment`, `technician_email` (the Atera technician its comments are written as: Atera
//! refuses a technician comment that names no technician).

use airlock_sdk::serde_json::{self, Value, json};
use airlock_sdk::text::parse_rfc3339;
use airlock_sdk::{ActionInfo, BaseUrl, Connector, ConnectorInfo, Document, Error, HealthStatus};
use airlock_sdk::{Request, Result, SyncPage, acl, cursor, html_to_text, ids};
use serde::{Deserialize, Serialize};

struct Atera;

airlock_sdk::export_connector!(Atera);

/// Atera's largest page (`itemsInPage`).
const PAGE: &str = "50";
/// Technicians of the Atera account read every ticket and internal comment (docs/connectors/atera.md).
const TECHNICIANS: &str = "atera-technicians";
/// Tickets whose comments one `comments` sync call fetches.
const TICKETS_PER_CALL: usize = 10;
/// Upper bound on comment pages fetched for one ticket.
const MAX_COMMENT_PAGES: usize = 40;

/// A technician comment on a ticket. (The host checks `add-comment` input against the schema
/// derived from this type before the action runs or is queued.)
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AddComment {
    /// The Atera ticket id.
    #[schemars(range(min = 1))]
    ticket_id: u64,
    /// The comment text (not blank).
    #[schemars(length(min = 1))]
    comment: String,
    /// Internal (technicians only) rather than visible to the end user.
    #[serde(default)]
    is_internal: bool,
}

impl Connector for Atera {
    fn info() -> ConnectorInfo {
        let about = "Atera RMM/PSA tickets and their comments";
        let tickets = "Tickets (title, first and last comments). Full listing on the first run, \
                       then tickets modified since the last run; one page per call.";
        let comments = "Comments of every ticket (a full pass each run, ten tickets per call).";
        let add = "Add a technician comment to a ticket (internal when `is_internal`).";
        ConnectorInfo::new("atera", env!("CARGO_PKG_VERSION"), about)
            .stream("tickets", tickets)
            .stream("comments", comments)
            .action(ActionInfo::new::<AddComment>("add-comment", add).writes())
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Config::load()?;
        let probe = Request::get(cfg.api("/tickets")).query("page", "1");
        probe.query("itemsInPage", "1").send()?;
        let message = format!("Atera at {} accepted the credentials", cfg.base_url);
        Ok(HealthStatus::ok(message))
    }

    fn get(id: String) -> Result<Document> {
        let (cfg, id) = (Config::load()?, ticket_id(&id)?);
        let url = cfg.api(&format!("/tickets/{id}"));
        Ok(Request::get(url).send()?.json::<Ticket>()?.document(&cfg))
    }

    /// `principal` is the caller's Atera end-user id or email (`[connector.users]`): Atera
    /// gives an API key no per-technician view, so only the ticket's own end user is known.
    fn check_permission(principal: String, id: String) -> Result<bool> {
        let (readers, p) = (Self::get(id)?.acl, principal.trim());
        Ok(acl::email(p).is_some_and(|e| readers.contains(&e)) || readers.contains(&acl::user(p)))
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        let (cfg, cursor) = (Config::load()?, cursor.as_deref());
        match stream.as_str() {
            "tickets" => sync_tickets(&cfg, cursor::position(cursor)?),
            "comments" => sync_comments(&cfg, cursor::position(cursor)?),
            _ => Err(Error::unknown_stream(&stream, ["tickets", "comments"])),
        }
    }

    fn invoke(action: String, input: String) -> Result<String> {
        let input: AddComment = airlock_sdk::action_input(&action, "add-comment", &input)?;
        if input.comment.trim().is_empty() {
            return Err(Error::invalid_input("`comment` must not be blank"));
        }
        let cfg = Config::load()?;
        let Some(technician) = cfg.technician_email.as_ref().filter(|e| e.contains('@')) else {
            return Err(Error::invalid_input(
                "add-comment needs the connector setting `technician_email` (the Atera \
                 technician the comment is written as)",
            ));
        };
        let (ticket, internal) = (input.ticket_id, input.is_internal);
        let body = json!({"CommentText": input.comment,
            "TechnicianCommentDetails": {"TechnicianEmail": technician, "IsInternal": internal}});
        let url = cfg.api(&format!("/tickets/{ticket}/comments"));
        let reply = Request::post(url).json(&body).send()?;
        let upstream: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let out = json!({"ticket_id": ticket, "added": true, "is_internal": internal,
            "upstream": upstream});
        Ok(out.to_string())
    }
}

/// Connector settings, read from the host on every call (instances are stateless).
#[derive(Deserialize)]
struct Config {
    /// Site root (without `/api/v3`).
    base_url: BaseUrl,
    technician_email: Option<String>,
}

impl Config {
    fn load() -> Result<Config> {
        airlock_sdk::settings::load_site("/api/v3")
    }

    fn api(&self, path: &str) -> String {
        self.base_url.join(&format!("/api/v3{path}"))
    }

    /// One page of the listing at `path` (`date` first, as `/tickets/lastmodified` wants it).
    fn list(&self, path: &str, date: Option<&str>, page: &str) -> Request {
        let request = Request::get(self.api(path)).query_opt("date", date);
        request.query("page", page).query("itemsInPage", PAGE)
    }

    /// A `nextLink` from the upstream, accepted only under the site's `/api/v3` (so a reply
    /// cannot steer the connector elsewhere); `None` when empty.
    fn next_link<T>(&self, page: &Envelope<T>) -> Result<Option<String>> {
        let api = self.base_url.under("/api/v3");
        api.follow_opt("/", page.next_link.as_deref())
    }
}

/// A ticket id (`7` or `ticket:7`): only digits, so ids cannot smuggle path segments or query
/// strings into URLs.
fn ticket_id(id: &str) -> Result<u64> {
    let id = id.trim();
    let id = id.strip_prefix("ticket:").unwrap_or(id).trim();
    let n = id.parse().ok().filter(|_| ids::is_numeric(id));
    n.ok_or_else(|| Error::invalid_input(format!("not a numeric ticket id: {id:?}")))
}

/// `tickets` cursor. `next` is the nextLink of the run in progress (it carries the run's own
/// `date`); `watermark` is where the next run's `/tickets/lastmodified?date=` starts, set when a
/// run starts to the upstream's clock (its `Date` header), so changes during the run are caught.
#[derive(Default, Debug, PartialEq, Serialize, Deserialize)]
struct TicketCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    watermark: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

fn sync_tickets(cfg: &Config, mut cursor: TicketCursor) -> Result<SyncPage> {
    let (fresh, since) = (cursor.next.is_none(), cursor.watermark.as_deref());
    let path = since.map_or("/tickets", |_| "/tickets/lastmodified");
    let first = || cfg.list(path, since, "1");
    let reply = cursor.next.take().map_or_else(first, Request::get).send()?;
    let now = reply.date();
    cursor.watermark = now.filter(|_| fresh).or(cursor.watermark);
    let page: Envelope<Ticket> = reply.json()?;
    cursor.next = cfg.next_link(&page)?.filter(|_| !page.items.is_empty());
    // No Date header: fall back to the newest date seen (safe, may refetch a little).
    let dates = page.items.iter().flat_map(Ticket::dates);
    cursor.watermark = cursor.watermark.or_else(|| newest(dates));
    let done = cursor.next.is_none();
    let upserts = page.items.into_iter().map(|t| t.document(cfg)).collect();
    Ok(SyncPage::next(upserts, &cursor).done(done))
}

/// `comments` cursor: the ticket listing page (1-based), the index of the next ticket on it, and
/// the id of the last ticket done (preferred over the index: a listing that repeats a record
/// from the previous page would shift the index and skip a ticket).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct CommentCursor {
    page: u32,
    index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
}

impl Default for CommentCursor {
    fn default() -> Self {
        let (page, index, after) = (1, 0, None);
        CommentCursor { page, index, after }
    }
}

fn sync_comments(cfg: &Config, at: CommentCursor) -> Result<SyncPage> {
    let list = cfg.list("/tickets", None, &at.page.max(1).to_string());
    let page: Envelope<Ticket> = list.send()?.json()?;
    let items = &page.items;
    let position = |id| items.iter().rposition(|t: &Ticket| t.ticket_id == id);
    let start = at.after.and_then(position).map_or(at.index, |pos| pos + 1);
    let end = (start + TICKETS_PER_CALL).min(items.len());
    let (mut upserts, mut last) = (Vec::new(), at.after);
    for t in items.get(start..end).unwrap_or_default() {
        let comments = ticket_comments(cfg, t.ticket_id)?.into_iter().enumerate();
        upserts.extend(comments.map(|(i, c)| c.document(t, i + 1, cfg)));
        last = Some(t.ticket_id);
    }
    let more = !page.next_link.as_deref().unwrap_or("").trim().is_empty();
    let (more, mut next) = (more && !items.is_empty(), CommentCursor::default());
    if end < items.len() {
        (next.page, next.index, next.after) = (at.page, end, last);
    } else if more {
        next.page = at.page + 1;
    } // else the next run makes a fresh pass
    Ok(SyncPage::next(upserts, &next).done(end >= items.len() && !more))
}

/// All comments of `ticket`, oldest first, following nextLink.
fn ticket_comments(cfg: &Config, ticket: u64) -> Result<Vec<Comment>> {
    let mut request = cfg.list(&format!("/tickets/{ticket}/comments"), None, "1");
    let mut out = Vec::new();
    for _ in 0..MAX_COMMENT_PAGES {
        let page: Envelope<Comment> = request.send()?.json()?;
        let next = cfg.next_link(&page)?.filter(|_| !page.items.is_empty());
        // Comments have no id, so positions are their identity: a record the listing repeats
        // (identical in every field) must not shift them.
        for c in page.items {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        let Some(next) = next else { return Ok(out) };
        request = Request::get(next);
    }
    airlock_sdk::log::warn!("ticket {ticket}: stopped after {MAX_COMMENT_PAGES} comment pages");
    Ok(out)
}

/// The newest of `dates` (compared as instants; unparseable ones skipped), as sent.
fn newest<'a>(dates: impl Iterator<Item = &'a String>) -> Option<String> {
    let dated = dates.filter_map(|d| Some((parse_rfc3339(d)?, d)));
    dated.max_by_key(|(ms, _)| *ms).map(|(_, d)| d.clone())
}

// ---- Upstream shapes (tolerant: every field but the id may be missing or null) -----------------

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Ticket {
    #[serde(rename = "TicketID")]
    ticket_id: u64,
    ticket_number: Option<Value>,
    ticket_title: Option<String>,
    ticket_status: Option<String>,
    ticket_priority: Option<String>,
    ticket_type: Option<String>,
    ticket_created_date: Option<String>,
    ticket_resolved_date: Option<String>,
    #[serde(rename = "CustomerID")]
    customer_id: Option<Value>,
    customer_name: Option<String>,
    #[serde(rename = "EndUserID")]
    end_user_id: Option<Value>,
    end_user_email: Option<String>,
    end_user_first_name: Option<String>,
    end_user_last_name: Option<String>,
    technician_email: Option<String>,
    first_comment: Option<String>,
    last_end_user_comment: Option<String>,
    last_technician_comment: Option<String>,
    last_end_user_comment_timestamp: Option<String>,
    last_technician_comment_timestamp: Option<String>,
}

impl Ticket {
    /// Who may read the ticket: the account's technicians, the people of its customer
    /// (`group:atera-customer:ID`) and its end user (by email, and as `user:END-USER-ID`).
    fn acl(&self) -> Vec<String> {
        let customer = acl::id("group:atera-customer:", self.customer_id.as_ref());
        let email = self.end_user_email.as_deref().and_then(acl::email);
        let user = acl::id("user:", self.end_user_id.as_ref());
        acl::of([Some(acl::group(TECHNICIANS)), customer, email, user])
    }

    /// The ticket's dates: created, resolved, last end-user and technician comments.
    fn dates(&self) -> impl Iterator<Item = &String> {
        let created = [&self.ticket_created_date, &self.ticket_resolved_date];
        let commented = [
            &self.last_end_user_comment_timestamp,
            &self.last_technician_comment_timestamp,
        ];
        created.into_iter().chain(commented).flatten()
    }

    /// First comment, then the last end-user and technician comments when they differ from it.
    fn body(&self) -> String {
        let (first, user) = (&self.first_comment, &self.last_end_user_comment);
        let comments = [first, user, &self.last_technician_comment];
        let mut parts: Vec<&str> = Vec::new();
        for c in comments.into_iter().flatten().map(|c| c.trim()) {
            if !c.is_empty() && !parts.contains(&c) {
                parts.push(c);
            }
        }
        parts.join("\n\n")
    }

    /// Metadata keeps what an application needs to act on a ticket without another call: who
    /// raised it (the end user's email is the key for a directory lookup), its number and type,
    /// the customer, and when it was created and last changed. Atera has no modified-date field;
    /// `modified_at` is the newest of the ticket's dates, the same instant as `updated_at`.
    fn document(self, cfg: &Config) -> Document {
        let modified = newest(self.dates());
        let names = [&self.end_user_first_name, &self.end_user_last_name];
        let name = names.into_iter().flatten().map(|n| n.trim());
        let name = name.filter(|n| !n.is_empty()).collect::<Vec<_>>().join(" ");
        let meta = json!({"status": self.ticket_status, "priority": self.ticket_priority,
            "customer": self.customer_name, "technician": self.technician_email,
            "ticket_number": self.ticket_number, "ticket_type": self.ticket_type,
            "customer_id": self.customer_id, "end_user_id": self.end_user_id,
            "end_user_email": self.end_user_email, "end_user_name": (!name.is_empty()).then_some(name),
            "created_at": self.ticket_created_date, "modified_at": modified});
        let (id, title) = (self.ticket_id, self.ticket_title.as_deref().unwrap_or(""));
        Document::new("ticket", id.to_string(), title)
            .acl(self.acl())
            .body(self.body())
            .url(cfg.base_url.join(&format!("/new/ticket/{id}")))
            .updated_at(modified.unwrap_or_default())
            .metadata(meta)
    }
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct Comment {
    date: Option<String>,
    comment: Option<String>,
    comment_html: Option<String>,
    #[serde(default)]
    is_internal: bool,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

impl Comment {
    /// Comments have no id upstream: the document id is `{ticket}-{position}` (1-based, oldest
    /// first), stable because comments are only ever appended. Readers: the ticket's, or the
    /// technicians alone for an internal comment.
    fn document(self, t: &Ticket, position: usize, cfg: &Config) -> Document {
        let (ticket, internal) = (t.ticket_id, vec![acl::group(TECHNICIANS)]);
        let names = [self.first_name.as_deref(), self.last_name.as_deref()];
        let author = names.into_iter().flatten().collect::<Vec<_>>().join(" ");
        let meta = json!({"ticket_id": ticket, "is_internal": self.is_internal,
            "email": self.email, "author": author});
        let html = self.comment_html.as_deref().unwrap_or("");
        let text = self.comment.filter(|c| !c.trim().is_empty());
        let id = format!("{ticket}-{position}");
        Document::new("comment", id, format!("Comment on ticket {ticket}"))
            .body(text.unwrap_or_else(|| html_to_text(html)))
            .url(cfg.base_url.join(&format!("/new/ticket/{ticket}")))
            .acl(if self.is_internal { internal } else { t.acl() })
            .updated_at(self.date.unwrap_or_default())
            .metadata(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::text::http_date_to_rfc3339;

    fn cfg() -> Config {
        let base_url = BaseUrl::parse("http://127.0.0.1:8784").unwrap();
        let technician_email = None;
        Config {
            base_url,
            technician_email,
        }
    }

    #[test]
    fn tickets_map() {
        let v = json!({
            "TicketID": 7, "TicketTitle": "VPN down", "TicketStatus": "Open",
            "TicketPriority": "High", "TicketCreatedDate": "2025-01-02T03:04:05Z",
            "TicketNumber": 1007, "TicketType": "Problem", "CustomerID": 12, "EndUserID": 40,
            "EndUserEmail": "ann@acme.example", "EndUserFirstName": "Ann", "EndUserLastName": "Lee",
            "TicketResolvedDate": null, "CustomerName": "Acme", "TechnicianEmail": "t@x",
            "FirstComment": "It broke", "LastEndUserComment": "Still broken",
            "LastTechnicianComment": "It broke", "LastEndUserCommentTimestamp": "2025-02-01T00:00:00Z",
            "Unknown": 1});
        let t: Ticket = serde_json::from_value(v.clone()).unwrap();
        let d = t.document(&cfg());
        let readers = [
            "ann@acme.example",
            "group:atera-customer:12",
            "group:atera-technicians",
            "user:40",
        ];
        assert_eq!(d.acl, readers);
        assert_eq!((d.id.as_str(), d.title.as_str()), ("7", "VPN down"));
        assert_eq!(d.body, "It broke\n\nStill broken");
        assert_eq!(d.updated_at, "2025-02-01T00:00:00Z");
        let meta: Value = serde_json::from_str(&d.metadata).unwrap();
        assert_eq!(
            meta,
            json!({"status": "Open", "priority": "High", "customer": "Acme", "technician": "t@x",
                "ticket_number": 1007, "ticket_type": "Problem", "customer_id": 12,
                "end_user_id": 40, "end_user_email": "ann@acme.example", "end_user_name": "Ann Lee",
                "created_at": "2025-01-02T03:04:05Z", "modified_at": "2025-02-01T00:00:00Z"})
        );
        let c: Comment = serde_json::from_value(json!({"Date": "2025-01-01T00:00:00Z",
            "Comment": "", "CommentHtml": "<p>a &amp; b</p>", "IsInternal": true,
            "FirstName": "Ann", "LastName": null}))
        .unwrap();
        let t: Ticket = serde_json::from_value(v).unwrap();
        let d = c.document(&t, 2, &cfg());
        assert_eq!((d.id.as_str(), d.body.as_str()), ("7-2", "a & b"));
        assert_eq!(
            d.acl,
            ["group:atera-technicians"],
            "internal: technicians only"
        );
        let public: Comment = serde_json::from_value(json!({"Comment": "hi"})).unwrap();
        assert_eq!(public.document(&t, 3, &cfg()).acl, readers);
    }

    #[test]
    fn cursors_links_and_dates() {
        let decode = |c| cursor::decode::<TicketCursor>(c).map(Option::unwrap_or_default);
        assert_eq!(decode(None).unwrap(), TicketCursor::default());
        let c = TicketCursor {
            watermark: Some("2025-01-01T00:00:00Z".into()),
            next: None,
        };
        assert_eq!(
            cursor::encode(&c),
            r#"{"watermark":"2025-01-01T00:00:00Z"}"#
        );
        let comments = cursor::decode::<CommentCursor>(None).unwrap();
        assert_eq!(comments.unwrap_or_default().page, 1);
        assert!(matches!(decode(Some("x")), Err(Error::InvalidInput(_))));
        assert_eq!(
            http_date_to_rfc3339("Wed, 25 Nov 2026 23:18:39 GMT").as_deref(),
            Some("2026-11-25T23:18:39Z")
        );
        assert_eq!(http_date_to_rfc3339("yesterday"), None);
        let page = |l: &str| Envelope::<Ticket> {
            items: vec![],
            next_link: Some(l.into()),
        };
        let next = cfg().next_link(&page("http://127.0.0.1:8784/api/v3/tickets?page=2"));
        assert!(next.unwrap().is_some());
        assert!(cfg().next_link(&page("")).unwrap().is_none());
        assert!(cfg().next_link(&page("https://evil/api/v3/x")).is_err());
        assert_eq!(ticket_id(" ticket:42 ").unwrap(), 42);
        for bad in ["", "1/2", "-1", "+1", "a", "99999999999999999999"] {
            assert!(ticket_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_comment_schema_and_input() {
        let info = Atera::info();
        let action = &info.actions[0];
        assert_eq!((action.name.as_str(), action.writes), ("add-comment", true));
        let schema: Value = serde_json::from_str(&action.input_schema).unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["ticket_id", "comment"]));
        assert_eq!(schema["additionalProperties"], false);
        let props = &schema["properties"];
        assert_eq!(
            (&props["ticket_id"]["type"], &props["ticket_id"]["minimum"]),
            (&json!("integer"), &json!(1))
        );
        assert_eq!(
            (&props["comment"]["type"], &props["comment"]["minLength"]),
            (&json!("string"), &json!(1))
        );
        assert_eq!(
            (
                &props["is_internal"]["type"],
                &props["is_internal"]["default"]
            ),
            (&json!("boolean"), &json!(false))
        );
        let streams: Vec<_> = info.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(streams, ["tickets", "comments"]);
        let input: AddComment = airlock_sdk::input(r#"{"ticket_id": 7, "comment": "hi"}"#).unwrap();
        assert_eq!((input.ticket_id, input.is_internal), (7, false));
        for bad in [
            r#"{"ticket_id": 7}"#,
            r#"{"ticket_id": 7, "comment": "a", "x": 1}"#,
        ] {
            assert!(airlock_sdk::input::<AddComment>(bad).is_err(), "{bad}");
        }
    }
}
