//! Atera (API v3) connector: tickets (full listing on the first run, then `/tickets/lastmodified`),
//! ticket comments, `get` by ticket id and a writing `add-comment` action. Holds no credentials:
//! the host's gate injects `X-API-KEY: <key>` or `Authorization: Bearer <token>`.
//!
//! Settings: `base_url` (e.g. `https://app.atera.com`; a trailing `/api/v3` is ignored) and, for
//! `add-comment`, `technician_email` (the Atera technician its comments are written as: Atera
//! refuses a technician comment that names no technician).

use airlock_sdk::serde_json::{self, Value, json};
use airlock_sdk::text::parse_rfc3339;
use airlock_sdk::{
    ActionInfo, Connector, ConnectorInfo, Document, Error, HealthStatus, Request, Result,
    StreamInfo, SyncPage, html_to_text, url,
};
use serde::{Deserialize, Serialize};

struct Atera;

airlock_sdk::export_connector!(Atera);

/// Atera's largest page (`itemsInPage`).
const PAGE: u32 = 50;
/// Tickets whose comments one `comments` sync call fetches.
const TICKETS_PER_CALL: usize = 10;
/// Upper bound on comment pages fetched for one ticket.
const MAX_COMMENT_PAGES: usize = 40;

impl Connector for Atera {
    fn info() -> ConnectorInfo {
        let stream = |name: &str, description: &str| StreamInfo {
            name: name.into(),
            description: description.into(),
        };
        ConnectorInfo {
            name: "atera".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Atera RMM/PSA tickets and their comments".into(),
            streams: vec![
                stream(
                    "tickets",
                    "Tickets (title, first and last comments). Full listing on the first run, then \
                     tickets modified since the last run; one page per call.",
                ),
                stream(
                    "comments",
                    "Comments of every ticket (a full pass each run, ten tickets per call).",
                ),
            ],
            actions: vec![ActionInfo {
                name: "add-comment".into(),
                description: "Add a technician comment to a ticket (internal when `is_internal`)."
                    .into(),
                input_schema: json!({"type": "object", "required": ["ticket_id", "comment"],
                    "properties": {"ticket_id": {"type": "integer", "minimum": 1},
                        "comment": {"type": "string", "minLength": 1},
                        "is_internal": {"type": "boolean", "default": false}},
                    "additionalProperties": false})
                .to_string(),
                writes: true,
            }],
        }
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Config::load()?;
        Request::get(cfg.api("/tickets"))
            .query("page", "1")
            .query("itemsInPage", "1")
            .send()?;
        let message = format!("Atera at {} accepted the credentials", cfg.base);
        Ok(HealthStatus { ok: true, message })
    }

    fn get(id: String) -> Result<Document> {
        let cfg = Config::load()?;
        let id = id.trim();
        let id = numeric(id.strip_prefix("ticket:").unwrap_or(id))?;
        let ticket: Ticket = Request::get(cfg.api(&format!("/tickets/{id}")))
            .send()?
            .json()?;
        Ok(ticket.document(&cfg))
    }

    fn check_permission(_principal: String, id: String) -> Result<bool> {
        numeric(id.trim().strip_prefix("ticket:").unwrap_or(id.trim())).map(|_| true)
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        let cfg = Config::load()?;
        match stream.as_str() {
            "tickets" => sync_tickets(&cfg, decode(cursor.as_deref())?),
            "comments" => sync_comments(&cfg, decode(cursor.as_deref())?),
            _ => Err(Error::invalid_input(format!(
                "unknown stream `{stream}` (this connector has `tickets`, `comments`)"
            ))),
        }
    }

    fn invoke(action: String, input: String) -> Result<String> {
        if action != "add-comment" {
            return Err(Error::not_found(format!("unknown action `{action}`")));
        }
        let input: Value = serde_json::from_str(&input)
            .map_err(|e| Error::invalid_input(format!("input is not JSON: {e}")))?;
        let ticket = match input.get("ticket_id") {
            Some(Value::Number(n)) => numeric(&n.to_string())?,
            Some(Value::String(s)) => numeric(s)?,
            _ => return Err(Error::invalid_input("`ticket_id` (integer) is required")),
        };
        let comment = input.get("comment").and_then(Value::as_str).unwrap_or("");
        if comment.trim().is_empty() {
            return Err(Error::invalid_input(
                "`comment` (non-empty string) is required",
            ));
        }
        let internal = match input.get("is_internal") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Error::invalid_input("`is_internal` must be a boolean")),
        };
        let cfg = Config::load()?;
        let technician = technician_email()?;
        let body = json!({"CommentText": comment,
            "TechnicianCommentDetails": {"TechnicianEmail": technician, "IsInternal": internal}});
        let reply = Request::post(cfg.api(&format!("/tickets/{ticket}/comments")))
            .json(&body)
            .send()?;
        let upstream: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        Ok(
            json!({"ticket_id": ticket, "added": true, "is_internal": internal,
            "upstream": upstream})
            .to_string(),
        )
    }
}

/// The `technician_email` setting: Atera needs the technician a comment is written as.
fn technician_email() -> Result<String> {
    airlock_sdk::setting("technician_email")
        .map(|e| e.trim().to_owned())
        .filter(|e| e.contains('@'))
        .ok_or_else(|| {
            Error::invalid_input(
                "add-comment needs the connector setting `technician_email` (the Atera \
                 technician the comment is written as)",
            )
        })
}

/// Connector settings, read from the host on every call (instances are stateless).
struct Config {
    /// Site root without a trailing slash or `/api/v3`.
    base: String,
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
        let base = base.strip_suffix("/api/v3").unwrap_or(base).to_owned();
        Ok(Config { base })
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v3{path}", self.base)
    }

    fn ticket_url(&self, id: u64) -> String {
        format!("{}/new/ticket/{id}", self.base)
    }

    /// A `nextLink` from the upstream, accepted only on the configured site (so a reply cannot
    /// steer the connector elsewhere); `None` when empty.
    fn next_link(&self, page: &Envelope<impl Sized>) -> Result<Option<String>> {
        let link = page.next_link.as_deref().map(str::trim).unwrap_or("");
        if link.is_empty() {
            return Ok(None);
        }
        let link = url::resolve(&self.api("/"), link);
        if !link.starts_with(&format!("{}/api/v3/", self.base)) {
            return Err(Error::upstream(format!(
                "nextLink leaves {}: {}",
                self.base,
                url::path(&link)
            )));
        }
        Ok(Some(link))
    }
}

/// Only digits, so ids cannot smuggle path segments or query strings into URLs.
fn numeric(s: &str) -> Result<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid_input(format!(
            "not a numeric ticket id: {s:?}"
        )));
    }
    s.parse()
        .map_err(|_| Error::invalid_input(format!("ticket id out of range: {s}")))
}

fn decode<T: Default + for<'de> Deserialize<'de>>(cursor: Option<&str>) -> Result<T> {
    match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        None => Ok(T::default()),
        Some(c) => serde_json::from_str(c)
            .map_err(|e| Error::invalid_input(format!("invalid cursor {c:?}: {e}"))),
    }
}

fn encode(cursor: &impl Serialize) -> Result<String> {
    serde_json::to_string(cursor).map_err(|e| Error::internal(format!("cursor: {e}")))
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
    let reply = match cursor.next.take() {
        Some(next) => Request::get(next).send()?,
        None => {
            let request = match &cursor.watermark {
                None => Request::get(cfg.api("/tickets")),
                Some(w) => Request::get(cfg.api("/tickets/lastmodified")).query("date", w),
            };
            let reply = request
                .query("page", "1")
                .query("itemsInPage", PAGE.to_string())
                .send()?;
            if let Some(now) = reply.header("date").and_then(http_date_to_rfc3339) {
                cursor.watermark = Some(now);
            }
            reply
        }
    };
    let page: Envelope<Ticket> = reply.json()?;
    cursor.next = cfg.next_link(&page)?;
    if cursor.watermark.is_none() {
        // No Date header: fall back to the newest date seen (safe, may refetch a little).
        cursor.watermark = page
            .items
            .iter()
            .filter_map(Ticket::updated_at)
            .max_by_key(|d| parse_rfc3339(d).unwrap_or(i64::MIN));
    }
    let done = cursor.next.is_none() || page.items.is_empty();
    if done {
        cursor.next = None;
    }
    Ok(SyncPage {
        upserts: page.items.into_iter().map(|t| t.document(cfg)).collect(),
        deletes: Vec::new(),
        next_cursor: Some(encode(&cursor)?),
        done,
    })
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
        CommentCursor {
            page: 1,
            index: 0,
            after: None,
        }
    }
}

fn sync_comments(cfg: &Config, cursor: CommentCursor) -> Result<SyncPage> {
    let page: Envelope<Ticket> = Request::get(cfg.api("/tickets"))
        .query("page", cursor.page.max(1).to_string())
        .query("itemsInPage", PAGE.to_string())
        .send()?
        .json()?;
    let start = cursor
        .after
        .and_then(|id| page.items.iter().rposition(|t| t.ticket_id == id))
        .map_or(cursor.index, |pos| pos + 1);
    let end = (start + TICKETS_PER_CALL).min(page.items.len());
    let mut upserts = Vec::new();
    let mut last = cursor.after;
    for ticket in page.items.get(start..end).unwrap_or_default() {
        let comments = ticket_comments(cfg, ticket.ticket_id)?;
        let docs = comments.into_iter().enumerate();
        upserts.extend(docs.map(|(i, c)| c.document(ticket.ticket_id, i + 1, cfg)));
        last = Some(ticket.ticket_id);
    }
    let more_pages = !page.next_link.as_deref().unwrap_or("").trim().is_empty();
    let (next, done) = if end < page.items.len() {
        (
            CommentCursor {
                page: cursor.page,
                index: end,
                after: last,
            },
            false,
        )
    } else if more_pages && !page.items.is_empty() {
        (
            CommentCursor {
                page: cursor.page + 1,
                index: 0,
                after: None,
            },
            false,
        )
    } else {
        (CommentCursor::default(), true) // the next run makes a fresh pass
    };
    Ok(SyncPage {
        upserts,
        deletes: Vec::new(),
        next_cursor: Some(encode(&next)?),
        done,
    })
}

/// All comments of `ticket`, oldest first, following nextLink.
fn ticket_comments(cfg: &Config, ticket: u64) -> Result<Vec<Comment>> {
    let mut request = Request::get(cfg.api(&format!("/tickets/{ticket}/comments")))
        .query("page", "1")
        .query("itemsInPage", PAGE.to_string());
    let mut out = Vec::new();
    for _ in 0..MAX_COMMENT_PAGES {
        let page: Envelope<Comment> = request.send()?.json()?;
        let empty = page.items.is_empty();
        let next = cfg.next_link(&page)?;
        // Comments have no id, so positions are their identity: a record the listing repeats
        // (identical in every field) must not shift them.
        for c in page.items {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        match next {
            Some(next) if !empty => request = Request::get(next),
            _ => return Ok(out),
        }
    }
    airlock_sdk::log::warn!("ticket {ticket}: stopped after {MAX_COMMENT_PAGES} comment pages");
    Ok(out)
}

/// `Wed, 25 Nov 2026 23:18:39 GMT` (RFC 9110 IMF-fixdate) as `2026-11-25T23:18:39Z`.
fn http_date_to_rfc3339(value: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? + 1;
    let (day, year): (u32, u32) = (day.parse().ok()?, year.parse().ok()?);
    let out = format!("{year:04}-{month:02}-{day:02}T{time}Z");
    parse_rfc3339(&out).map(|_| out)
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
    ticket_title: Option<String>,
    ticket_status: Option<String>,
    ticket_priority: Option<String>,
    ticket_created_date: Option<String>,
    ticket_resolved_date: Option<String>,
    customer_name: Option<String>,
    technician_email: Option<String>,
    first_comment: Option<String>,
    last_end_user_comment: Option<String>,
    last_technician_comment: Option<String>,
    last_end_user_comment_timestamp: Option<String>,
    last_technician_comment_timestamp: Option<String>,
}

impl Ticket {
    /// The newest of the ticket's dates (created, resolved, last comments), as sent.
    fn updated_at(&self) -> Option<String> {
        [
            &self.ticket_created_date,
            &self.ticket_resolved_date,
            &self.last_end_user_comment_timestamp,
            &self.last_technician_comment_timestamp,
        ]
        .into_iter()
        .flatten()
        .filter_map(|d| Some((parse_rfc3339(d)?, d)))
        .max_by_key(|(ms, _)| *ms)
        .map(|(_, d)| d.clone())
    }

    /// First comment, then the last end-user and technician comments when they differ from it.
    fn body(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        let comments = [
            &self.first_comment,
            &self.last_end_user_comment,
            &self.last_technician_comment,
        ];
        for c in comments.into_iter().flatten().map(|c| c.trim()) {
            if !c.is_empty() && !parts.contains(&c) {
                parts.push(c);
            }
        }
        parts.join("\n\n")
    }

    fn document(self, cfg: &Config) -> Document {
        let meta = json!({"status": self.ticket_status, "priority": self.ticket_priority,
            "customer": self.customer_name, "technician": self.technician_email});
        Document {
            id: self.ticket_id.to_string(),
            kind: "ticket".into(),
            body: self.body(),
            updated_at: self.updated_at().unwrap_or_default(),
            title: self.ticket_title.unwrap_or_default(),
            url: Some(cfg.ticket_url(self.ticket_id)),
            metadata: meta.to_string(),
            acl: Vec::new(),
        }
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
    /// first), stable because comments are only ever appended.
    fn document(self, ticket: u64, position: usize, cfg: &Config) -> Document {
        let author = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let meta = json!({"ticket_id": ticket, "is_internal": self.is_internal,
            "email": self.email, "author": author});
        let body = match self.comment.filter(|c| !c.trim().is_empty()) {
            Some(c) => c,
            None => html_to_text(self.comment_html.as_deref().unwrap_or("")),
        };
        Document {
            id: format!("{ticket}-{position}"),
            kind: "comment".into(),
            title: format!("Comment on ticket {ticket}"),
            body,
            url: Some(cfg.ticket_url(ticket)),
            updated_at: self.date.unwrap_or_default(),
            metadata: meta.to_string(),
            acl: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let base = "http://127.0.0.1:8784".into();
        Config { base }
    }

    #[test]
    fn tickets_map() {
        let t: Ticket = serde_json::from_value(json!({
            "TicketID": 7, "TicketTitle": "VPN down", "TicketStatus": "Open",
            "TicketPriority": "High", "TicketCreatedDate": "2025-01-02T03:04:05Z",
            "TicketResolvedDate": null, "CustomerName": "Acme", "TechnicianEmail": "t@x",
            "FirstComment": "It broke", "LastEndUserComment": "Still broken",
            "LastTechnicianComment": "It broke", "LastEndUserCommentTimestamp": "2025-02-01T00:00:00Z",
            "Unknown": 1}))
        .unwrap();
        let d = t.document(&cfg());
        assert_eq!((d.id.as_str(), d.title.as_str()), ("7", "VPN down"));
        assert_eq!(d.body, "It broke\n\nStill broken");
        assert_eq!(d.updated_at, "2025-02-01T00:00:00Z");
        let meta: Value = serde_json::from_str(&d.metadata).unwrap();
        assert_eq!(
            meta,
            json!({"status": "Open", "priority": "High", "customer": "Acme", "technician": "t@x"})
        );
        let c: Comment = serde_json::from_value(json!({"Date": "2025-01-01T00:00:00Z",
            "Comment": "", "CommentHtml": "<p>a &amp; b</p>", "IsInternal": true,
            "FirstName": "Ann", "LastName": null}))
        .unwrap();
        let d = c.document(7, 2, &cfg());
        assert_eq!((d.id.as_str(), d.body.as_str()), ("7-2", "a & b"));
    }

    #[test]
    fn cursors_links_and_dates() {
        assert_eq!(
            decode::<TicketCursor>(None).unwrap(),
            TicketCursor::default()
        );
        let c = TicketCursor {
            watermark: Some("2025-01-01T00:00:00Z".into()),
            next: None,
        };
        assert_eq!(
            encode(&c).unwrap(),
            r#"{"watermark":"2025-01-01T00:00:00Z"}"#
        );
        assert_eq!(decode::<CommentCursor>(None).unwrap().page, 1);
        assert!(decode::<TicketCursor>(Some("x")).is_err());
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
        for bad in ["", "1/2", "-1", "a"] {
            assert!(numeric(bad).is_err(), "{bad}");
        }
    }
}
