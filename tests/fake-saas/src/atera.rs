//! Atera API v3 fake (API-NOTES.md): paged ticket listing with absolute `nextLink` (empty on the
//! last page), `/tickets/lastmodified?date=`, single tickets, ticket comments (paged, and a POST
//! that adds one: a write, recorded in the truth), `X-API-KEY` or `Bearer` auth, RFC 7807 errors
//! and the shared 429 knob.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::{
    QueryParams, Rng, bearer_auth_ok, days_from_civil, html_escape, now_ms, rfc3339_secs,
    set_header, utc_ms,
};
use crate::control::{self, Control, Mutate, RateLimitBody};
use crate::server::{self, Core, FakeState, RunningFake};

/// Atera's largest page (`itemsInPage`, unsure) and its default.
const MAX_PAGE: usize = 50;
const DEFAULT_PAGE: usize = 20;
const FIRST_TICKET_ID: u64 = 1001;

#[derive(Clone, Debug)]
pub struct AteraOptions {
    /// Accepted as `X-API-KEY: <key>` or `Authorization: Bearer <key>`.
    pub api_key: String,
    pub tickets: usize,
    pub seed: u64,
    /// Answer every N-th upstream request with 429 + Retry-After.
    pub rate_limit_every: Option<u64>,
}

impl Default for AteraOptions {
    fn default() -> Self {
        AteraOptions {
            api_key: "demo-atera-key".into(),
            tickets: 120,
            seed: 17,
            rate_limit_every: None,
        }
    }
}

/// One ticket comment as `GET /tickets/{id}/comments` shows it (plus who wrote it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AteraTruthComment {
    pub date: String,
    pub comment: String,
    pub comment_html: String,
    pub is_internal: bool,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub by_technician: bool,
}

/// One ticket as the API shows it; `modified` is the fake's internal modification time (what
/// `/tickets/lastmodified` filters on; not a field of the API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AteraTruthTicket {
    pub id: u64,
    pub number: u64,
    pub title: String,
    pub status: String,
    pub priority: String,
    pub ticket_type: String,
    pub created: String,
    pub resolved: Option<String>,
    pub customer_id: u64,
    pub customer_name: String,
    pub end_user_id: u64,
    pub end_user_first_name: String,
    pub end_user_last_name: String,
    pub end_user_email: String,
    pub technician_email: String,
    pub first_comment: String,
    pub last_end_user_comment: String,
    pub last_technician_comment: String,
    pub last_end_user_comment_timestamp: Option<String>,
    pub last_technician_comment_timestamp: Option<String>,
    pub modified: String,
    /// Oldest first; the first is `first_comment`.
    pub comments: Vec<AteraTruthComment>,
}

/// A comment added through `POST /api/v3/tickets/{id}/comments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AteraWrite {
    pub ticket_id: u64,
    pub comment: String,
    pub is_internal: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AteraTruth {
    /// By ascending id.
    pub tickets: Vec<AteraTruthTicket>,
    /// Every accepted comment POST, in order.
    pub writes: Vec<AteraWrite>,
}

/// Body of `POST /_fake/mutate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AteraMutation {
    /// Tickets whose title and status change.
    pub update: usize,
    /// Tickets that get one more end-user comment.
    pub comment: usize,
    /// New tickets.
    pub create: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AteraMutationReport {
    pub updated: Vec<u64>,
    pub commented: Vec<u64>,
    pub created: Vec<u64>,
}

const STATUSES: [&str; 4] = ["Open", "Pending", "Resolved", "Closed"];
const PRIORITIES: [&str; 4] = ["Low", "Medium", "High", "Critical"];
const TYPES: [&str; 4] = ["Problem", "Request", "Incident", "Change"];
const CUSTOMERS: [&str; 6] = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Logistics",
    "Wayne Foods",
];
const TECHS: [(&str, &str); 3] = [("Tara", "Nguyen"), ("Omar", "Haddad"), ("Lena", "Vogel")];
/// End users: the first five people of the Microsoft Graph fake's directory (same names, same
/// `contoso.com` mail), as an MSP's customer and its Microsoft 365 tenant share them, so a
/// ticket's end user can be looked up in Graph by email.
const USERS: [(&str, &str); 5] = [
    ("Ada", "Adams"),
    ("Ben", "Adams"),
    ("Chloe", "Adams"),
    ("Dev", "Adams"),
    ("Emma", "Adams"),
];
/// The end users' mail domain (the Graph fake's).
const USER_DOMAIN: &str = "contoso.com";
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "printer", "vpn", "laptop", "outlook", "backup", "firewall", "server", "disk", "agent", "patch",
    "antivirus", "password", "license", "monitor", "switch", "router", "wifi", "update", "restart", "alert",
];

fn email(first: &str, last: &str, domain: &str) -> String {
    format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase())
}

fn sentence(rng: &mut Rng, n: u64) -> String {
    let words: Vec<&str> = (0..n).map(|_| rng.pick(WORDS)).collect();
    let mut s = words.join(" ");
    s[..1].make_ascii_uppercase();
    s + "."
}

struct Data {
    /// By ascending id; `tickets[i].id == FIRST_TICKET_ID + i`.
    tickets: Vec<(AteraTruthTicket, i64)>,
    writes: Vec<AteraWrite>,
    rng: Rng,
    last_ms: i64,
    next_action: u64,
}

fn comment(rng: &mut Rng, at: i64, tech: bool, t: &AteraTruthTicket) -> AteraTruthComment {
    let n = 6 + rng.below(10);
    let text = sentence(rng, n);
    let (first, last, mail) = if tech {
        let (f, l) = rng.pick(&TECHS);
        (f, l, email(f, l, "msp.example"))
    } else {
        let mail = t.end_user_email.clone();
        let (f, l) = USERS
            .iter()
            .copied()
            .find(|(f, l)| email(f, l, USER_DOMAIN) == mail)
            .unwrap_or(USERS[0]);
        (f, l, mail)
    };
    AteraTruthComment {
        date: rfc3339_secs(at / 1000),
        comment_html: format!("<div><p>{}</p></div>", html_escape(&text)),
        comment: text,
        is_internal: tech && rng.chance(1, 4),
        email: mail,
        first_name: first.into(),
        last_name: last.into(),
        by_technician: tech,
    }
}

/// Recomputes the fields derived from the comments.
fn refresh(t: &mut AteraTruthTicket) {
    let last = |tech: bool| t.comments.iter().rev().find(|c| c.by_technician == tech);
    let (user, tech) = (last(false).cloned(), last(true).cloned());
    t.first_comment = t
        .comments
        .first()
        .map(|c| c.comment.clone())
        .unwrap_or_default();
    t.last_end_user_comment = user.as_ref().map(|c| c.comment.clone()).unwrap_or_default();
    t.last_end_user_comment_timestamp = user.map(|c| c.date);
    t.last_technician_comment = tech.as_ref().map(|c| c.comment.clone()).unwrap_or_default();
    t.last_technician_comment_timestamp = tech.map(|c| c.date);
}

impl Data {
    fn new_ticket(&mut self, id: u64, created: i64) -> (AteraTruthTicket, i64) {
        let rng = &mut self.rng;
        let user = rng.below(USERS.len() as u64);
        let (uf, ul) = USERS[user as usize];
        let (tf, tl) = rng.pick(&TECHS);
        let customer = rng.below(CUSTOMERS.len() as u64);
        let mut t = AteraTruthTicket {
            id,
            number: id,
            title: format!(
                "{} {}",
                rng.pick(WORDS),
                rng.pick(&["down", "slow", "error", "request"])
            ),
            status: "Open".into(),
            priority: rng.pick(&PRIORITIES).into(),
            ticket_type: rng.pick(&TYPES).into(),
            created: rfc3339_secs(created / 1000),
            resolved: None,
            customer_id: 100 + customer,
            customer_name: CUSTOMERS[customer as usize].into(),
            end_user_id: 500 + user,
            end_user_first_name: uf.into(),
            end_user_last_name: ul.into(),
            end_user_email: email(uf, ul, USER_DOMAIN),
            technician_email: email(tf, tl, "msp.example"),
            first_comment: String::new(),
            last_end_user_comment: String::new(),
            last_technician_comment: String::new(),
            last_end_user_comment_timestamp: None,
            last_technician_comment_timestamp: None,
            modified: String::new(),
            comments: Vec::new(),
        };
        let first = comment(rng, created, false, &t);
        t.comments.push(first);
        refresh(&mut t);
        t.modified = t.created.clone();
        (t, created)
    }

    /// A strictly increasing "now" for changes.
    fn tick(&mut self) -> i64 {
        self.last_ms = now_ms().max(self.last_ms + 1);
        self.last_ms
    }

    fn touch(&mut self, i: usize, at: i64) {
        let (t, m) = &mut self.tickets[i];
        refresh(t);
        *m = at;
        t.modified = rfc3339_secs(at / 1000);
    }

    fn add_comment(&mut self, i: usize, tech: bool) -> i64 {
        let at = self.tick();
        let c = comment(&mut self.rng, at, tech, &self.tickets[i].0);
        self.tickets[i].0.comments.push(c);
        self.touch(i, at);
        at
    }

    fn mutate(&mut self, m: AteraMutation) -> AteraMutationReport {
        let mut report = AteraMutationReport::default();
        let n = self.tickets.len();
        let pick = |rng: &mut Rng, k: usize| -> Vec<usize> {
            let mut out = Vec::new();
            while out.len() < k.min(n) {
                let i = rng.below(n as u64) as usize;
                if !out.contains(&i) {
                    out.push(i);
                }
            }
            out
        };
        for i in pick(&mut self.rng, m.update) {
            let at = self.tick();
            let title = format!(
                "{} (updated)",
                sentence(&mut self.rng, 3).trim_end_matches('.')
            );
            let status = self.rng.pick(&STATUSES[..2]);
            let t = &mut self.tickets[i].0;
            (t.title, t.status, t.resolved) = (title, status.into(), None);
            self.touch(i, at);
            report.updated.push(self.tickets[i].0.id);
        }
        for i in pick(&mut self.rng, m.comment) {
            self.add_comment(i, false);
            report.commented.push(self.tickets[i].0.id);
        }
        for _ in 0..m.create {
            let id = FIRST_TICKET_ID + self.tickets.len() as u64;
            let at = self.tick();
            let t = self.new_ticket(id, at);
            self.tickets.push(t);
            self.touch(self.tickets.len() - 1, at);
            report.created.push(id);
        }
        report
    }
}

fn generate(opts: &AteraOptions) -> Data {
    let mut data = Data {
        tickets: Vec::with_capacity(opts.tickets),
        writes: Vec::new(),
        rng: Rng::new(opts.seed),
        last_ms: 0,
        next_action: 50_001,
    };
    let start = utc_ms(2025, 1, 6, 8, 0);
    for k in 0..opts.tickets {
        let created = start + k as i64 * 3_600_000 + data.rng.below(3_000_000) as i64;
        let (mut t, mut modified) = data.new_ticket(FIRST_TICKET_ID + k as u64, created);
        for j in 0..data.rng.below(5) {
            let at = created + (j as i64 + 1) * 1_800_000 + data.rng.below(600_000) as i64;
            let c = comment(&mut data.rng, at, j % 2 == 0, &t);
            t.comments.push(c);
            modified = at;
        }
        let status = data.rng.pick(&STATUSES);
        if matches!(status, "Resolved" | "Closed") {
            modified += 3_600_000;
            t.resolved = Some(rfc3339_secs(modified / 1000));
        }
        t.status = status.into();
        refresh(&mut t);
        t.modified = rfc3339_secs(modified / 1000);
        data.tickets.push((t, modified));
    }
    data
}

/// Shared state of a running Atera fake.
pub struct Atera {
    core: Core,
    api_key: String,
    base_url: String,
    data: Mutex<Data>,
}

impl FakeState for Atera {
    fn core(&self) -> &Core {
        &self.core
    }
}

fn ticket_json(t: &AteraTruthTicket) -> Value {
    json!({
        "TicketID": t.id, "TicketNumber": t.number, "TicketTitle": t.title,
        "TicketStatus": t.status, "TicketPriority": t.priority, "TicketType": t.ticket_type,
        "TicketCreatedDate": t.created, "TicketResolvedDate": t.resolved,
        "CustomerID": t.customer_id, "CustomerName": t.customer_name,
        "EndUserID": t.end_user_id, "EndUserEmail": t.end_user_email,
        "EndUserFirstName": t.end_user_first_name, "EndUserLastName": t.end_user_last_name,
        "TechnicianEmail": t.technician_email,
        "FirstComment": t.first_comment, "LastEndUserComment": t.last_end_user_comment,
        "LastTechnicianComment": t.last_technician_comment,
        "LastEndUserCommentTimestamp": t.last_end_user_comment_timestamp,
        "LastTechnicianCommentTimestamp": t.last_technician_comment_timestamp,
    })
}

fn comment_json(c: &AteraTruthComment) -> Value {
    json!({"Date": c.date, "Comment": c.comment, "CommentHtml": c.comment_html,
        "IsInternal": c.is_internal, "Email": c.email, "FirstName": c.first_name,
        "LastName": c.last_name})
}

/// RFC 7807 ProblemDetails.
fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = json!({"type": "https://tools.ietf.org/html/rfc9110#section-15",
        "title": status.canonical_reason().unwrap_or("Error"), "status": status.as_u16(),
        "detail": detail.into(), "traceId": "00-fake-atera-00"});
    let mut resp = (status, Json(body)).into_response();
    set_header(&mut resp, "content-type", "application/problem+json");
    resp
}

/// `yyyy-MM-ddTHH:mm:ss[.fff][Z|±HH:MM]` (no zone: UTC) as milliseconds.
pub(crate) fn parse_date_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(i64::from(y), m, d) * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if !matches!(b[10], b'T' | b' ') || b.len() < 19 {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    ms += i64::from(h * 3600 + mi * 60 + sec) * 1000;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        ms += format!("{:0<3}", &frac[..n.min(3)]).parse::<i64>().ok()?;
        rest = &frac[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hm = rest.get(1..)?.replace(':', "");
            let (oh, om) = (
                hm.get(..2)?.parse::<i64>().ok()?,
                hm.get(2..)?.parse::<i64>().ok()?,
            );
            sign * (oh * 60 + om)
        }
    };
    Some(ms - offset * 60_000)
}

impl Atera {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        key == Some(self.api_key.as_str()) || bearer_auth_ok(headers, &self.api_key)
    }

    fn truth(&self) -> AteraTruth {
        let d = self.data();
        AteraTruth {
            tickets: d.tickets.iter().map(|(t, _)| t.clone()).collect(),
            writes: d.writes.clone(),
        }
    }

    /// The paged envelope over `items` for a request to `path` with query `q`.
    fn envelope(&self, path: &str, q: &QueryParams, items: Vec<Value>) -> Response {
        let page = match q.one("page").map(|p| p.trim().parse::<usize>()) {
            None => 1,
            Some(Ok(p)) if p >= 1 => p,
            _ => return problem(StatusCode::BAD_REQUEST, "page must be a positive integer"),
        };
        let size = match q.one("itemsInPage").map(|p| p.trim().parse::<usize>()) {
            None => DEFAULT_PAGE,
            Some(Ok(n)) if n >= 1 => n.min(MAX_PAGE),
            _ => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "itemsInPage must be a positive integer",
                );
            }
        };
        let total = items.len();
        let pages = total.div_ceil(size);
        let link = |p: usize| {
            let (p, n) = (p.to_string(), size.to_string());
            let query = q.encode_with(
                &["page", "itemsInPage"],
                &[("page", &p), ("itemsInPage", &n)],
            );
            format!("{}{path}?{query}", self.base_url)
        };
        let start = (page - 1).saturating_mul(size).min(total);
        let items: Vec<Value> = items.into_iter().skip(start).take(size).collect();
        let next = if page < pages {
            link(page + 1)
        } else {
            String::new()
        };
        let prev = if page > 1 {
            link(page - 1)
        } else {
            String::new()
        };
        Json(
            json!({"items": items, "page": page, "itemsInPage": size, "totalItemCount": total,
            "totalPages": pages, "prevLink": prev, "nextLink": next}),
        )
        .into_response()
    }
}

async fn list_tickets(State(a): State<Arc<Atera>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let (status, customer) = (q.one("ticketStatus"), q.one("customerId"));
    let items = a
        .data()
        .tickets
        .iter()
        .map(|(t, _)| t)
        .filter(|t| status.is_none_or(|s| t.status.eq_ignore_ascii_case(s)))
        .filter(|t| customer.is_none_or(|c| c == t.customer_id.to_string()))
        .map(ticket_json)
        .collect();
    a.envelope("/api/v3/tickets", &q, items)
}

async fn last_modified(State(a): State<Arc<Atera>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let Some(since) = q.one("date").and_then(parse_date_time) else {
        return problem(StatusCode::BAD_REQUEST, "date is required (a date-time)");
    };
    let items = {
        let d = a.data();
        let mut hits: Vec<_> = d.tickets.iter().filter(|(_, m)| *m >= since).collect();
        hits.sort_by_key(|(t, m)| (*m, t.id));
        hits.into_iter().map(|(t, _)| ticket_json(t)).collect()
    };
    a.envelope("/api/v3/tickets/lastmodified", &q, items)
}

fn index(id: &str) -> Option<usize> {
    let id = id.parse::<u64>().ok()?.checked_sub(FIRST_TICKET_ID)?;
    usize::try_from(id).ok()
}

fn no_ticket(id: &str) -> Response {
    problem(StatusCode::NOT_FOUND, format!("Ticket {id} was not found"))
}

async fn get_ticket(State(a): State<Arc<Atera>>, Path(id): Path<String>) -> Response {
    let d = a.data();
    match index(&id).and_then(|i| d.tickets.get(i)) {
        Some((t, _)) => Json(ticket_json(t)).into_response(),
        None => no_ticket(&id),
    }
}

async fn list_comments(
    State(a): State<Arc<Atera>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let items = {
        let d = a.data();
        match index(&id).and_then(|i| d.tickets.get(i)) {
            Some((t, _)) => t.comments.iter().map(comment_json).collect(),
            None => return no_ticket(&id),
        }
    };
    let q = QueryParams::parse(raw.as_deref());
    a.envelope(&format!("/api/v3/tickets/{id}/comments"), &q, items)
}

/// The technician the API comments of the tests are written as (a technician of the account).
pub const API_TECHNICIAN_EMAIL: &str = "api.technician@msp.example";
/// That technician's `TechnicianId`.
pub const API_TECHNICIAN_ID: u64 = 1;

/// Who a comment body says wrote it: a technician (by `TechnicianId` or `TechnicianEmail`) or an
/// end user (`EnduserId`).
struct Author {
    email: String,
    first_name: String,
    last_name: String,
    technician: bool,
    internal: bool,
}

/// Atera's rules for a comment body, as its API documents them: `CommentText` (a non-empty
/// string), exactly one of `TechnicianCommentDetails` (naming a known technician by
/// `TechnicianId` or `TechnicianEmail`, optional boolean `IsInternal`) and
/// `EnduserCommentDetails` (a positive `EnduserId`), optional `CommentTimestampUTC`.
fn comment_body(v: &Value, technicians: &[&str]) -> Result<(String, Author), String> {
    let v = v.as_object().ok_or("the body must be a JSON object")?;
    let text = match v.get("CommentText") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.trim().to_owned(),
        Some(Value::String(_)) | None => return Err("The CommentText field is required.".into()),
        Some(_) => return Err("CommentText must be a string.".into()),
    };
    if let Some(ts) = v.get("CommentTimestampUTC")
        && ts.as_str().is_none_or(|t| parse_date_time(t).is_none())
    {
        return Err("CommentTimestampUTC is not a valid date-time.".into());
    }
    let tech = v.get("TechnicianCommentDetails").filter(|d| !d.is_null());
    let user = v.get("EnduserCommentDetails").filter(|d| !d.is_null());
    match (tech, user) {
        (Some(d), None) => {
            let d = d
                .as_object()
                .ok_or("TechnicianCommentDetails must be an object.")?;
            let internal = match d.get("IsInternal") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err("IsInternal must be a boolean.".into()),
            };
            let by_id = d.get("TechnicianId").and_then(Value::as_u64);
            let by_email = d
                .get("TechnicianEmail")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|e| !e.is_empty());
            let email = match (by_id, by_email) {
                (Some(API_TECHNICIAN_ID), _) => API_TECHNICIAN_EMAIL.to_owned(),
                (Some(id), _) => return Err(format!("Technician {id} was not found.")),
                (None, Some(e)) if technicians.iter().any(|t| t.eq_ignore_ascii_case(e)) => {
                    e.to_lowercase()
                }
                (None, Some(e)) => return Err(format!("Technician {e} was not found.")),
                (None, None) => {
                    return Err(
                        "TechnicianCommentDetails needs a TechnicianId or a TechnicianEmail."
                            .into(),
                    );
                }
            };
            let local = email.split('@').next().unwrap_or("");
            let (first, last) = local.split_once('.').unwrap_or((local, ""));
            Ok((
                text,
                Author {
                    first_name: capitalised(first),
                    last_name: capitalised(last),
                    email,
                    technician: true,
                    internal,
                },
            ))
        }
        (None, Some(d)) => match d.get("EnduserId").and_then(Value::as_u64) {
            Some(id) if id > 0 => Ok((
                text,
                Author {
                    email: format!("enduser-{id}@customer.example"),
                    first_name: "End".into(),
                    last_name: "User".into(),
                    technician: false,
                    internal: false,
                },
            )),
            _ => Err("EnduserCommentDetails needs a positive EnduserId.".into()),
        },
        (Some(_), Some(_)) => {
            Err("Give either TechnicianCommentDetails or EnduserCommentDetails, not both.".into())
        }
        (None, None) => {
            Err("TechnicianCommentDetails or EnduserCommentDetails is required.".into())
        }
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `POST /api/v3/tickets/{id}/comments`; bodies Atera would refuse get its 400 ProblemDetails.
async fn add_comment(State(a): State<Arc<Atera>>, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "body must be JSON");
    };
    let mut d = a.data();
    let Some(i) = index(&id).filter(|i| *i < d.tickets.len()) else {
        return no_ticket(&id);
    };
    let (text, author) = {
        let mut technicians: Vec<&str> = d
            .tickets
            .iter()
            .map(|(t, _)| t.technician_email.as_str())
            .collect();
        technicians.push(API_TECHNICIAN_EMAIL);
        match comment_body(&v, &technicians) {
            Ok(parsed) => parsed,
            Err(why) => return problem(StatusCode::BAD_REQUEST, why),
        }
    };
    let at = d.tick();
    let c = AteraTruthComment {
        date: rfc3339_secs(at / 1000),
        comment: text.clone(),
        comment_html: format!("<p>{}</p>", html_escape(&text)),
        is_internal: author.internal,
        email: author.email,
        first_name: author.first_name,
        last_name: author.last_name,
        by_technician: author.technician,
    };
    d.tickets[i].0.comments.push(c);
    d.touch(i, at);
    let ticket_id = d.tickets[i].0.id;
    d.writes.push(AteraWrite {
        ticket_id,
        comment: text,
        is_internal: author.internal,
    });
    d.next_action += 1;
    (StatusCode::OK, Json(json!({"ActionID": d.next_action}))).into_response()
}

/// Counts, applies the 429 knob, then checks `X-API-KEY` or `Bearer`. `/_fake/` skips all of it.
async fn gate(State(a): State<Arc<Atera>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    if a.core.record(&path) {
        let mut resp = problem(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        set_header(&mut resp, "retry-after", "1");
        return resp;
    }
    if !a.authorized(req.headers()) {
        let mut resp = problem(StatusCode::UNAUTHORIZED, "Missing or invalid API key");
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        return resp;
    }
    next.run(req).await
}

impl Control for Atera {
    type Truth = AteraTruth;
    fn ground_truth(&self) -> AteraTruth {
        self.truth()
    }
    fn configure(&self, body: &[u8]) -> Response {
        control::configure_rate_limit(&self.core, body, RateLimitBody::Required)
    }
}

impl Mutate for Atera {
    type Mutation = AteraMutation;
    type Report = AteraMutationReport;
    const EXPECTED: &'static str = "{\"update\":N,\"comment\":N,\"create\":N}";
    fn apply_mutation(&self, m: AteraMutation) -> AteraMutationReport {
        self.data().mutate(m)
    }
}

fn router(state: Arc<Atera>) -> Router {
    Router::new()
        .route("/api/v3/tickets", get(list_tickets))
        .route("/api/v3/tickets/lastmodified", get(last_modified))
        .route("/api/v3/tickets/{id}", get(get_ticket))
        .route(
            "/api/v3/tickets/{id}/comments",
            get(list_comments).post(add_comment),
        )
        .merge(control::routes_with_mutate::<Atera>())
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "Not found") })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Atera fake on `listen` (port 0 picks a free port).
pub async fn spawn_atera(
    listen: SocketAddr,
    opts: AteraOptions,
) -> std::io::Result<RunningFake<Atera>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let state = Arc::new(Atera {
        core: Core::new(opts.rate_limit_every),
        data: Mutex::new(generate(&opts)),
        api_key: opts.api_key,
        base_url: base_url.clone(),
    });
    Ok(server::start(
        listener,
        base_url,
        state.clone(),
        router(state),
    ))
}

impl RunningFake<Atera> {
    /// Moves ticket `id` to end user `user` (an index into the end users) of customer `customer`
    /// (an index into the customers), as a technician does in Atera when a ticket was raised
    /// for the wrong contact: the ticket is modified now, so `/tickets/lastmodified` shows it.
    /// Returns the ticket as it is now, `None` for an unknown id.
    pub fn reassign(&self, id: u64, user: usize, customer: usize) -> Option<AteraTruthTicket> {
        let mut data = self.state.data();
        let i = data.tickets.iter().position(|(t, _)| t.id == id)?;
        let ((first, last), name) = (
            USERS[user % USERS.len()],
            CUSTOMERS[customer % CUSTOMERS.len()],
        );
        let at = data.tick();
        let t = &mut data.tickets[i].0;
        t.end_user_id = 500 + (user % USERS.len()) as u64;
        (t.end_user_first_name, t.end_user_last_name) = (first.into(), last.into());
        t.end_user_email = email(first, last, USER_DOMAIN);
        (t.customer_id, t.customer_name) = (100 + (customer % CUSTOMERS.len()) as u64, name.into());
        data.touch(i, at);
        Some(data.tickets[i].0.clone())
    }

    /// Tickets with their comments, and every comment POST, as they are now.
    pub fn truth(&self) -> AteraTruth {
        self.state.truth()
    }
    /// Updates, comments on and creates tickets; every touched ticket is modified now.
    pub fn mutate(&self, m: AteraMutation) -> AteraMutationReport {
        self.state.data().mutate(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::http_with;

    const KEY: &str = "demo-atera-key";

    async fn fake() -> RunningFake<Atera> {
        let opts = AteraOptions {
            tickets: 73,
            ..AteraOptions::default()
        };
        spawn_atera(SocketAddr::from(([127, 0, 0, 1], 0)), opts)
            .await
            .expect("fake starts")
    }

    async fn get_json(f: &RunningFake<Atera>, path: &str) -> Value {
        let r = http_with(f.addr, "GET", path, &[("X-API-KEY", KEY)], None)
            .await
            .expect("request");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }

    /// Follows nextLink from `first`; returns every item.
    async fn all(f: &RunningFake<Atera>, first: &str) -> Vec<Value> {
        let (mut out, mut path) = (Vec::new(), first.to_owned());
        loop {
            let v = get_json(f, &path).await;
            out.extend(v["items"].as_array().expect("items").iter().cloned());
            let next = v["nextLink"].as_str().expect("nextLink is a string");
            if next.is_empty() {
                return out;
            }
            path = next.strip_prefix(&f.base_url).expect("absolute").to_owned();
        }
    }

    #[tokio::test]
    async fn auth_paging_lastmodified_and_comments() {
        let f = fake().await;
        let bearer = format!("Bearer {KEY}");
        for (headers, status) in [
            (vec![], 401),
            (vec![("X-API-KEY", "nope")], 401),
            (vec![("Authorization", bearer.as_str())], 200),
            (vec![("X-API-KEY", KEY)], 200),
        ] {
            let r = http_with(f.addr, "GET", "/api/v3/tickets", &headers, None)
                .await
                .unwrap();
            assert_eq!(r.status, status, "{headers:?}");
            if status == 401 {
                assert_eq!(r.json()["status"], 401);
                assert_eq!(r.header("content-type"), Some("application/problem+json"));
            }
            assert!(r.header("date").is_some(), "hyper sends Date");
        }
        let v = get_json(&f, "/api/v3/tickets?page=1&itemsInPage=500").await;
        assert_eq!(
            (v["itemsInPage"].as_u64(), v["totalPages"].as_u64()),
            (Some(50), Some(2))
        );
        assert_eq!(v["prevLink"], "");
        let items = all(&f, "/api/v3/tickets?page=1&itemsInPage=10").await;
        assert_eq!(items.len(), 73);
        let t = &items[5];
        for k in [
            "TicketID",
            "TicketNumber",
            "TicketTitle",
            "TicketStatus",
            "TicketPriority",
            "TicketType",
            "TicketCreatedDate",
            "TicketResolvedDate",
            "CustomerID",
            "CustomerName",
            "EndUserID",
            "EndUserEmail",
            "EndUserFirstName",
            "EndUserLastName",
            "TechnicianEmail",
            "FirstComment",
            "LastEndUserComment",
            "LastTechnicianComment",
        ] {
            assert!(t.get(k).is_some(), "{k}");
        }
        let m = f.mutate(AteraMutation {
            update: 3,
            comment: 2,
            create: 1,
        });
        let since = rfc3339_secs(now_ms() / 1000 - 5);
        let changed = all(
            &f,
            &format!("/api/v3/tickets/lastmodified?date={since}&itemsInPage=2"),
        )
        .await;
        let mut ids: Vec<u64> = changed
            .iter()
            .filter_map(|t| t["TicketID"].as_u64())
            .collect();
        ids.sort_unstable();
        let mut want: Vec<u64> = m
            .updated
            .iter()
            .chain(&m.commented)
            .chain(&m.created)
            .copied()
            .collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(ids, want);
        let id = m.created[0];
        assert_eq!(
            get_json(&f, &format!("/api/v3/tickets/{id}")).await["TicketID"],
            id
        );
        let r = http_with(
            f.addr,
            "GET",
            "/api/v3/tickets/99",
            &[("X-API-KEY", KEY)],
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 404);
        let path = format!("/api/v3/tickets/{id}/comments");
        // Bodies Atera refuses: no author, an author without identity, an unknown technician,
        // both kinds of author, the text under another name.
        for refused in [
            r#"{"CommentText":"done"}"#,
            r#"{"CommentText":"done","TechnicianCommentDetails":{"IsInternal":true}}"#,
            r#"{"CommentText":"done","TechnicianCommentDetails":{"TechnicianEmail":"who@else.example"}}"#,
            r#"{"CommentText":"done","TechnicianCommentDetails":{"TechnicianId":1},"EnduserCommentDetails":{"EnduserId":4}}"#,
            r#"{"Comment":"done","TechnicianCommentDetails":{"TechnicianId":1}}"#,
            r#"{"CommentText":" ","TechnicianCommentDetails":{"TechnicianId":1}}"#,
        ] {
            let r = http_with(f.addr, "POST", &path, &[("X-API-KEY", KEY)], Some(refused))
                .await
                .unwrap();
            assert_eq!(r.status, 400, "{refused}: {}", r.body);
            assert_eq!(r.json()["status"], 400, "ProblemDetails: {}", r.body);
        }
        assert!(f.truth().writes.is_empty());
        let body = r#"{"CommentText":"done","TechnicianCommentDetails":{"TechnicianEmail":"api.technician@msp.example","IsInternal":true}}"#;
        let r = http_with(f.addr, "POST", &path, &[("X-API-KEY", KEY)], Some(body))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let comments = all(&f, &format!("{path}?itemsInPage=1")).await;
        assert_eq!(comments.len(), 2);
        assert_eq!(
            (
                comments[1]["Comment"].as_str(),
                comments[1]["IsInternal"].as_bool()
            ),
            (Some("done"), Some(true))
        );
        let truth = f.truth();
        assert_eq!(
            truth.writes,
            vec![AteraWrite {
                ticket_id: id,
                comment: "done".into(),
                is_internal: true
            }]
        );
        assert_eq!(
            truth.tickets.last().unwrap().last_technician_comment,
            "done"
        );
        assert_eq!(
            parse_date_time("2025-01-02T03:04:05.5+01:00"),
            Some(utc_ms(2025, 1, 2, 2, 4) + 5500)
        );
        f.set_rate_limit_every(Some(1));
        let r = http_with(
            f.addr,
            "GET",
            "/api/v3/tickets",
            &[("X-API-KEY", KEY)],
            None,
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    }
}
