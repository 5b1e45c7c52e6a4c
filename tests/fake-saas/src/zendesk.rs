//! Zendesk Support and Help Center fake (API-NOTES.md): cursor-based incremental ticket export,
//! time-based ticket-event and article exports, tickets and their comments, Help Center articles,
//! unified search with its 1000-result ceiling, and the per-minute limit on incremental exports.
//!
//! Times are kept in microseconds so that changes made by [`RunningFake::mutate`] are strictly
//! ordered (that order is the export order), and shown with whole seconds as Zendesk does.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::{
    MinuteWindow, QueryParams, Rng, basic_auth_ok, bearer_auth_ok, html_escape, html_to_text,
    json_reply, now_us, rfc3339_secs, set_header, utc_ms,
};
use crate::server::{self, Core, FakeState, RunningFake};

#[cfg(test)]
mod tests;

/// Phrase planted in exactly three ticket descriptions (never deleted) and two article bodies.
pub const PLANTED_PHRASE: &str = "zendesk planted canary phrase";

/// Account-wide requests per minute advertised in `X-Rate-Limit` (not enforced).
const ACCOUNT_LIMIT: u32 = 700;
/// Largest page of the incremental ticket export (also its default).
const EXPORT_PAGE: usize = 1000;
/// Ticket events per page of the time-based event export.
const EVENTS_PAGE: usize = 1000;
/// Articles per page of the time-based Help Center export.
const ARTICLES_EXPORT_PAGE: usize = 100;
/// Search never returns results past this offset.
const SEARCH_CEILING: usize = 1000;
const US: i64 = 1_000_000;

/// Paths that share the incremental-export limit.
const INCREMENTAL_PATHS: &[&str] = &[
    "/api/v2/incremental/tickets/cursor.json",
    "/api/v2/incremental/ticket_events.json",
    "/api/v2/help_center/incremental/articles.json",
];

#[derive(Clone, Debug)]
pub struct ZendeskOptions {
    /// Agent email; Basic auth user is `{email}/token`.
    pub email: String,
    pub api_token: String,
    /// Seeded tickets (all live; none seeded deleted).
    pub tickets: usize,
    pub articles: usize,
    pub seed: u64,
    /// Requests per sliding minute shared by the incremental endpoints (`None`: unlimited;
    /// `Some(10)` is the real limit).
    pub incremental_limit_per_minute: Option<u32>,
    /// Ticket exports leave out tickets (and comment events) changed this recently; 0 excludes nothing.
    pub recent_exclusion_secs: u64,
    /// An OAuth access token, the only thing accepted as `Authorization: Bearer` (the API token
    /// works only as Basic `{email}/token:{api_token}`).
    pub oauth_access_token: String,
}

impl Default for ZendeskOptions {
    fn default() -> Self {
        ZendeskOptions {
            email: "agent@example.com".into(),
            api_token: "demo-zendesk-token".into(),
            tickets: 500,
            articles: 40,
            seed: 11,
            incremental_limit_per_minute: None,
            recent_exclusion_secs: 60,
            oauth_access_token: "demo-zendesk-oauth-token".into(),
        }
    }
}

/// Ground truth of one comment, as the comments endpoint and ticket events show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthComment {
    pub id: u64,
    /// Plain text (the API's `body` and `plain_body`).
    pub body: String,
    pub public: bool,
    pub author_id: u64,
    pub created_at: String,
}

/// Ground truth of one ticket, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthTicket {
    pub id: u64,
    pub subject: String,
    /// Same text as the first comment's body.
    pub description: String,
    pub status: String,
    pub priority: Option<String>,
    #[serde(rename = "type")]
    pub ticket_type: Option<String>,
    pub requester_id: u64,
    pub assignee_id: Option<u64>,
    pub organization_id: Option<u64>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Oldest first.
    pub comments: Vec<TruthComment>,
}

/// Ground truth of one Help Center article.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthArticle {
    pub id: u64,
    pub title: String,
    /// The API's `body`.
    pub body_html: String,
    /// `body_html` with tags stripped, entities decoded and whitespace collapsed.
    pub body_text: String,
    pub html_url: String,
    pub url: String,
    pub section_id: u64,
    pub author_id: u64,
    pub locale: String,
    pub draft: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZendeskTruth {
    /// Tickets that are not deleted, by ascending id.
    pub tickets: Vec<TruthTicket>,
    /// Ids of deleted tickets, ascending.
    pub deleted_ticket_ids: Vec<u64>,
    /// By ascending id.
    pub articles: Vec<TruthArticle>,
}

/// Ticket changes; body of `POST /_fake/mutate` (which also takes `"update_articles": N`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZendeskMutation {
    /// Tickets (not closed) whose subject, status, priority and tags change.
    pub update: usize,
    /// Tickets set to status "deleted" (never a planted one).
    pub delete: usize,
    /// New tickets with one comment (their description).
    pub create: usize,
    /// Tickets (not closed) that get one more comment.
    pub comment: usize,
}

/// Ids touched by a mutation. Every touched ticket's `updated_at` is now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZendeskMutationReport {
    pub updated: Vec<u64>,
    pub deleted: Vec<u64>,
    pub created: Vec<u64>,
    /// Ticket ids that got a comment.
    pub commented: Vec<u64>,
    /// Comment ids added, parallel to `commented`.
    pub comment_ids: Vec<u64>,
    pub articles_updated: Vec<u64>,
}

const STATUSES: [&str; 7] = [
    "new", "open", "pending", "hold", "solved", "closed", "deleted",
];
const NEW: u8 = 0;
const CLOSED: u8 = 5;
const DELETED: u8 = 6;
const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
const TYPES: [&str; 4] = ["question", "incident", "problem", "task"];
const CHANNELS: [&str; 3] = ["web", "email", "api"];

#[rustfmt::skip]
const VOCAB: &[&str] = &[
    "invoice", "password", "login", "printer", "laptop", "refund", "shipment", "order", "account", "billing",
    "subscription", "license", "renewal", "upgrade", "export", "report", "dashboard", "mailbox", "calendar",
    "vpn", "wifi", "badge", "payroll", "contract", "warranty", "delivery", "tracking", "coupon", "discount",
    "integration", "webhook", "api", "token", "certificate", "backup", "sync", "mobile", "tablet", "monitor",
    "keyboard", "headset", "onboarding", "offboarding", "permissions", "group", "macro", "trigger", "sla",
    "escalation", "survey", "feedback", "migration", "outage", "latency", "timeout", "firmware", "driver",
    "database", "storage", "quota", "domain", "dns", "ssl", "scanner", "receipt", "tax", "currency",
];
#[rustfmt::skip]
const SUBJECT_TAILS: &[&str] = &[
    "not working", "question", "request", "issue", "failing since update", "access problem", "needs review",
    "is slow", "error", "help needed", "missing", "cannot be changed",
];
#[rustfmt::skip]
const ARTICLE_VERBS: &[&str] = &[
    "reset", "configure", "export", "troubleshoot", "update", "connect", "review", "cancel", "set up", "share",
];

/// Agents (assignees, comment authors); the first one is the authenticated user.
const AGENT_IDS: [u64; 8] = [
    400_000_000_001,
    400_000_000_014,
    400_000_000_027,
    400_000_000_040,
    400_000_000_053,
    400_000_000_066,
    400_000_000_079,
    400_000_000_092,
];
const END_USERS: u64 = 250;
const END_USER_BASE: u64 = 410_000_000_003;
const ORGS: u64 = 25;
const GROUPS: u64 = 4;
const SECTIONS: u64 = 5;
const FIRST_TICKET_ID: u64 = 1;

#[derive(Clone, Debug)]
struct Comment {
    id: u64,
    body: String,
    public: bool,
    author_id: u64,
    created_us: i64,
}

#[derive(Clone, Debug)]
struct Ticket {
    id: u64,
    subject: String,
    status: u8,
    priority: Option<u8>,
    kind: Option<u8>,
    channel: u8,
    requester_id: u64,
    assignee_id: Option<u64>,
    organization_id: Option<u64>,
    group_id: Option<u64>,
    tags: Vec<&'static str>,
    created_us: i64,
    updated_us: i64,
    /// Oldest first; the first one is the description.
    comments: Vec<Comment>,
    planted: bool,
    rev: u32,
}

impl Ticket {
    fn description(&self) -> &str {
        self.comments.first().map_or("", |c| c.body.as_str())
    }
    fn status(&self) -> &'static str {
        STATUSES[usize::from(self.status)]
    }
    fn deleted(&self) -> bool {
        self.status == DELETED
    }
}

#[derive(Clone, Debug)]
struct Article {
    id: u64,
    title: String,
    body: String,
    text: String,
    section_id: u64,
    author_id: u64,
    labels: Vec<&'static str>,
    created_us: i64,
    updated_us: i64,
    rev: u32,
}

struct Data {
    /// By ascending id; `tickets[i].id == FIRST_TICKET_ID + i`.
    tickets: Vec<Ticket>,
    /// `(updated_us, id)` of every ticket: the incremental export order.
    by_updated: BTreeSet<(i64, u64)>,
    /// `(created_us, comment id)` → (ticket index, comment index): the ticket-event order.
    events: BTreeMap<(i64, u64), (u32, u32)>,
    /// By ascending id.
    articles: Vec<Article>,
    rng: Rng,
    last_us: i64,
    next_comment_id: u64,
}

/// Knobs and windows for the rate limits.
#[derive(Default)]
struct Limits {
    incremental_limit: Option<u32>,
    incremental: MinuteWindow,
    account: MinuteWindow,
}

/// Shared state of a running Zendesk fake.
pub struct Zendesk {
    core: Core,
    email: String,
    api_token: String,
    oauth_access_token: String,
    base_url: String,
    recent_exclusion_secs: AtomicU64,
    limits: Mutex<Limits>,
    data: Mutex<Data>,
}

impl FakeState for Zendesk {
    fn core(&self) -> &Core {
        &self.core
    }
}

// ---------------------------------------------------------------------------------------------
// Data generation and mutation

fn push_words(rng: &mut Rng, out: &mut String, n: u64) {
    for k in 0..n {
        if k > 0 {
            out.push(' ');
        }
        out.push_str(rng.pick(VOCAB));
    }
}

/// Appends one capitalized sentence ending with a period.
fn push_sentence(rng: &mut Rng, out: &mut String, min: u64, extra: u64) {
    let start = out.len();
    if rng.chance(1, 8) {
        out.push_str(rng.pick(VOCAB));
        out.push_str(" & ");
    }
    let n = min + rng.below(extra + 1);
    push_words(rng, out, n);
    if let Some(first) = out.get_mut(start..start + 1) {
        first.make_ascii_uppercase();
    }
    out.push('.');
}

fn gen_text(rng: &mut Rng, paragraphs: u64, planted: bool) -> String {
    let mut out = String::with_capacity(160);
    for p in 0..paragraphs {
        if p > 0 {
            out.push_str("\n\n");
        }
        for s in 0..1 + rng.below(2) {
            if s > 0 {
                out.push(' ');
            }
            push_sentence(rng, &mut out, 4, 8);
        }
        if planted && p == 0 {
            out.push_str(&format!(
                " We noticed the {PLANTED_PHRASE} in the latest export."
            ));
        }
    }
    out
}

fn gen_subject(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(40);
    s.push_str(rng.pick(VOCAB));
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s.push(' ');
    s.push_str(rng.pick(VOCAB));
    s.push(' ');
    s.push_str(rng.pick(SUBJECT_TAILS));
    s
}

fn agent(rng: &mut Rng) -> u64 {
    rng.pick(&AGENT_IDS)
}

fn end_user(rng: &mut Rng) -> u64 {
    END_USER_BASE + rng.below(END_USERS) * 7
}

fn pick_distinct(rng: &mut Rng, n: usize, k: usize) -> HashSet<usize> {
    let mut out = HashSet::new();
    while out.len() < k.min(n) {
        out.insert(rng.below(n as u64) as usize);
    }
    out
}

fn gen_article_body(rng: &mut Rng, planted: bool) -> String {
    let mut body = String::with_capacity(400);
    body.push_str("<h2>Overview</h2><p>");
    push_sentence(rng, &mut body, 6, 8);
    body.push_str("</p><ul>");
    for _ in 0..2 + rng.below(3) {
        body.push_str("<li>");
        let n = 3 + rng.below(3);
        push_words(rng, &mut body, n);
        body.push_str("</li>");
    }
    body.push_str("</ul>");
    if planted {
        body.push_str(&format!(
            "<p>Internal note: the {PLANTED_PHRASE} is documented here.</p>"
        ));
    }
    body.push_str(&format!(
        "<p>{} &amp; {} settings &lt;admin only&gt;.</p>",
        rng.pick(VOCAB),
        rng.pick(VOCAB)
    ));
    body
}

fn generate(opts: &ZendeskOptions) -> Data {
    let mut rng = Rng::new(opts.seed ^ 0x2E4D_E5C0);
    let n = opts.tickets;
    let planted = pick_distinct(&mut rng, n, 3);
    let base_s = utc_ms(2023, 1, 2, 8, 0) / 1000;
    let span_s: i64 = 900 * 86_400;
    let step = (span_s / n.max(1) as i64).max(1);
    let mut tickets = Vec::with_capacity(n);
    let mut next_comment_id: u64 = 30_000_000_002;
    for i in 0..n {
        let created_s = base_s + i as i64 * step + rng.below(step as u64) as i64;
        let status = match rng.below(12) {
            0 => 0,
            1..=3 => 1,
            4 | 5 => 2,
            6 => 3,
            7 | 8 => 4,
            _ => CLOSED,
        };
        let requester_id = end_user(&mut rng);
        let is_planted = planted.contains(&i);
        let mut comments = Vec::with_capacity(4);
        let paragraphs = 1 + rng.below(2);
        let description = gen_text(&mut rng, paragraphs, is_planted);
        comments.push(Comment {
            id: next_comment_id,
            body: description,
            public: true,
            author_id: requester_id,
            created_us: created_s * US,
        });
        next_comment_id += 2;
        let assignee = (status != NEW || rng.chance(1, 4)).then(|| agent(&mut rng));
        let extra = match rng.below(10) {
            0..=3 => 0,
            4..=6 => 1,
            7 | 8 => 2,
            _ => 3,
        };
        let mut at_s = created_s;
        for k in 0..extra {
            at_s += 60 + rng.below(2 * 86_400) as i64;
            let by_agent = k % 2 == 0;
            let author_id = match (by_agent, assignee) {
                (true, Some(a)) => a,
                (true, None) => agent(&mut rng),
                (false, _) => requester_id,
            };
            let public = !by_agent || rng.chance(5, 6);
            let body = gen_text(&mut rng, 1, false);
            comments.push(Comment {
                id: next_comment_id,
                body,
                public,
                author_id,
                created_us: at_s * US,
            });
            next_comment_id += 2;
        }
        let updated_s = at_s + rng.below(86_400) as i64;
        let mut tags = Vec::new();
        for _ in 0..rng.below(4) {
            let t = rng.pick(VOCAB);
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        tickets.push(Ticket {
            id: FIRST_TICKET_ID + i as u64,
            subject: gen_subject(&mut rng),
            status,
            priority: (!rng.chance(1, 5)).then(|| rng.below(4) as u8),
            kind: (!rng.chance(1, 4)).then(|| rng.below(4) as u8),
            channel: rng.below(3) as u8,
            requester_id,
            assignee_id: assignee,
            organization_id: rng
                .chance(7, 10)
                .then(|| 360_020_000_001 + rng.below(ORGS) * 11),
            group_id: assignee.map(|_| 360_010_000_001 + rng.below(GROUPS)),
            tags,
            created_us: created_s * US,
            updated_us: updated_s * US,
            comments,
            planted: is_planted,
            rev: 0,
        });
    }
    let by_updated = tickets.iter().map(|t| (t.updated_us, t.id)).collect();
    let mut ev: Vec<((i64, u64), (u32, u32))> = Vec::with_capacity(n * 2);
    for (ti, t) in tickets.iter().enumerate() {
        for (ci, c) in t.comments.iter().enumerate() {
            ev.push(((c.created_us, c.id), (ti as u32, ci as u32)));
        }
    }
    ev.sort_unstable_by_key(|e| e.0);
    let events = ev.into_iter().collect();

    let planted_articles = pick_distinct(&mut rng, opts.articles, 2);
    let articles = (0..opts.articles)
        .map(|i| {
            let created_s = base_s + rng.below(span_s as u64) as i64 / 2 + i as i64 * 3600;
            let updated_s = created_s + rng.below(90 * 86_400) as i64;
            let mut title = format!("How to {} your ", rng.pick(ARTICLE_VERBS));
            push_words(&mut rng, &mut title, 2);
            let body = gen_article_body(&mut rng, planted_articles.contains(&i));
            Article {
                id: 360_040_000_001 + i as u64 * 17,
                text: html_to_text(&body),
                title,
                body,
                section_id: 360_030_000_001 + rng.below(SECTIONS) * 3,
                author_id: agent(&mut rng),
                labels: vec![rng.pick(VOCAB)],
                created_us: created_s * US,
                updated_us: updated_s * US,
                rev: 0,
            }
        })
        .collect::<Vec<_>>();
    let last_us = tickets
        .iter()
        .map(|t| t.updated_us)
        .chain(articles.iter().map(|a| a.updated_us))
        .max()
        .unwrap_or(base_s * US);
    Data {
        tickets,
        by_updated,
        events,
        articles,
        rng: Rng::new(opts.seed ^ 0x7A3D_9911),
        last_us,
        next_comment_id,
    }
}

impl Data {
    fn ticket(&self, id: u64) -> Option<&Ticket> {
        let i = id.checked_sub(FIRST_TICKET_ID)?;
        self.tickets.get(usize::try_from(i).ok()?)
    }

    /// Wall-clock now in microseconds, strictly increasing and after every seeded time.
    fn tick(&mut self) -> i64 {
        self.last_us = now_us().max(self.last_us + 1);
        self.last_us
    }

    fn set_updated(&mut self, i: usize, us: i64) {
        let t = &mut self.tickets[i];
        self.by_updated.remove(&(t.updated_us, t.id));
        t.updated_us = us;
        self.by_updated.insert((us, t.id));
    }

    /// Picks up to `n` distinct tickets that `ok` accepts, in ascending id order.
    fn pick(&mut self, n: usize, ok: impl Fn(&Ticket) -> bool) -> Vec<usize> {
        if n == 0 {
            return Vec::new();
        }
        let mut candidates: Vec<usize> = (0..self.tickets.len())
            .filter(|&i| ok(&self.tickets[i]))
            .collect();
        let mut chosen = Vec::new();
        while chosen.len() < n && !candidates.is_empty() {
            let at = self.rng.below(candidates.len() as u64) as usize;
            chosen.push(candidates.swap_remove(at));
        }
        chosen.sort_unstable();
        chosen
    }

    fn add_comment(
        &mut self,
        i: usize,
        body: String,
        public: bool,
        author_id: u64,
        us: i64,
    ) -> u64 {
        let id = self.next_comment_id;
        self.next_comment_id += 2;
        let t = &mut self.tickets[i];
        t.comments.push(Comment {
            id,
            body,
            public,
            author_id,
            created_us: us,
        });
        let ci = t.comments.len() - 1;
        self.events.insert((us, id), (i as u32, ci as u32));
        id
    }

    fn mutate(&mut self, m: ZendeskMutation, update_articles: usize) -> ZendeskMutationReport {
        let mut report = ZendeskMutationReport::default();
        let live = |t: &Ticket| !t.deleted() && t.status != CLOSED;
        for i in self.pick(m.update, live) {
            let us = self.tick();
            let status = 1 + self.rng.below(4) as u8;
            let priority = self.rng.below(4) as u8;
            let tag = self.rng.pick(VOCAB);
            let t = &mut self.tickets[i];
            t.rev += 1;
            let base = t
                .subject
                .split(" (rev ")
                .next()
                .unwrap_or_default()
                .to_owned();
            t.subject = format!("{base} (rev {})", t.rev);
            t.status = status;
            t.priority = Some(priority);
            if !t.tags.contains(&tag) {
                t.tags.push(tag);
            }
            if t.assignee_id.is_none() {
                t.assignee_id = Some(AGENT_IDS[0]);
                t.group_id = Some(360_010_000_001);
            }
            report.updated.push(t.id);
            self.set_updated(i, us);
        }
        for i in self.pick(m.delete, |t| !t.deleted() && !t.planted) {
            let us = self.tick();
            self.tickets[i].status = DELETED;
            report.deleted.push(self.tickets[i].id);
            self.set_updated(i, us);
        }
        for _ in 0..m.create {
            let us = self.tick();
            let id = FIRST_TICKET_ID + self.tickets.len() as u64;
            let requester_id = end_user(&mut self.rng);
            let subject = gen_subject(&mut self.rng);
            let body = gen_text(&mut self.rng, 1, false);
            self.tickets.push(Ticket {
                id,
                subject,
                status: NEW,
                priority: None,
                kind: Some(0),
                channel: 2,
                requester_id,
                assignee_id: None,
                organization_id: None,
                group_id: None,
                tags: Vec::new(),
                created_us: us,
                updated_us: us,
                comments: Vec::new(),
                planted: false,
                rev: 0,
            });
            let i = self.tickets.len() - 1;
            self.add_comment(i, body, true, requester_id, us);
            self.by_updated.insert((us, id));
            report.created.push(id);
        }
        for i in self.pick(m.comment, live) {
            let us = self.tick();
            let body = gen_text(&mut self.rng, 1, false);
            let (author, public) = if self.rng.chance(1, 2) {
                (self.tickets[i].requester_id, true)
            } else {
                (agent(&mut self.rng), self.rng.chance(3, 4))
            };
            let cid = self.add_comment(i, body, public, author, us);
            self.set_updated(i, us);
            report.commented.push(self.tickets[i].id);
            report.comment_ids.push(cid);
        }
        let n_articles = self.articles.len();
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < update_articles.min(n_articles) {
            let at = self.rng.below(n_articles as u64) as usize;
            if !chosen.contains(&at) {
                chosen.push(at);
            }
        }
        chosen.sort_unstable();
        for i in chosen {
            let us = self.tick();
            let mut note = String::new();
            push_sentence(&mut self.rng, &mut note, 4, 4);
            let a = &mut self.articles[i];
            a.rev += 1;
            let base = a
                .title
                .split(" (rev ")
                .next()
                .unwrap_or_default()
                .to_owned();
            a.title = format!("{base} (rev {})", a.rev);
            a.body
                .push_str(&format!("<p>Update {}: {}</p>", a.rev, html_escape(&note)));
            a.text = html_to_text(&a.body);
            a.updated_us = us;
            report.articles_updated.push(a.id);
        }
        report
    }
}

fn secs(us: i64) -> i64 {
    us.div_euclid(US)
}

fn time(us: i64) -> String {
    rfc3339_secs(secs(us))
}

// ---------------------------------------------------------------------------------------------
// JSON shapes

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct ViaSource {
    from: Empty,
    to: Empty,
    rel: Option<&'static str>,
}

#[derive(Serialize)]
struct Via {
    channel: &'static str,
    source: ViaSource,
}

fn via(channel: &'static str) -> Via {
    Via {
        channel,
        source: ViaSource {
            from: Empty {},
            to: Empty {},
            rel: None,
        },
    }
}

/// A ticket as the API returns it; borrows from the data set so export pages do not clone text.
#[derive(Serialize)]
struct TicketOut<'a> {
    url: String,
    id: u64,
    external_id: Option<&'a str>,
    via: Via,
    created_at: String,
    updated_at: String,
    generated_timestamp: i64,
    #[serde(rename = "type")]
    kind: Option<&'static str>,
    subject: &'a str,
    raw_subject: &'a str,
    description: &'a str,
    priority: Option<&'static str>,
    status: &'static str,
    recipient: Option<&'a str>,
    requester_id: u64,
    submitter_id: u64,
    assignee_id: Option<u64>,
    organization_id: Option<u64>,
    group_id: Option<u64>,
    collaborator_ids: [u64; 0],
    follower_ids: [u64; 0],
    email_cc_ids: [u64; 0],
    forum_topic_id: Option<u64>,
    problem_id: Option<u64>,
    has_incidents: bool,
    is_public: bool,
    due_at: Option<&'a str>,
    tags: &'a [&'static str],
    custom_fields: [u64; 0],
    satisfaction_rating: Option<&'a str>,
    sharing_agreement_ids: [u64; 0],
    allow_channelback: bool,
    allow_attachments: bool,
    from_messaging_channel: bool,
}

#[derive(Serialize)]
struct ExportPage<'a> {
    tickets: Vec<TicketOut<'a>>,
    after_url: String,
    after_cursor: String,
    before_url: String,
    before_cursor: String,
    end_of_stream: bool,
}

/// Zendesk's `html_body`: one `<p>` per paragraph, line breaks as `<br>`.
fn html_body(body: &str) -> String {
    let paragraphs: Vec<String> = body
        .split("\n\n")
        .map(|p| {
            format!(
                "<p dir=\"auto\">{}</p>",
                html_escape(p).replace('\n', "<br>")
            )
        })
        .collect();
    format!(
        "<div class=\"zd-comment\" dir=\"auto\">{}</div>",
        paragraphs.concat()
    )
}

fn comment_json(c: &Comment, channel: &'static str) -> Value {
    json!({
        "id": c.id,
        "type": "Comment",
        "author_id": c.author_id,
        "body": c.body,
        "html_body": html_body(&c.body),
        "plain_body": c.body,
        "public": c.public,
        "attachments": [],
        "audit_id": c.id - 1,
        "via": via(channel),
        "created_at": time(c.created_us),
        "metadata": {"system": {}, "custom": {}},
    })
}

fn slug(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    for w in title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(w);
    }
    out
}

impl Zendesk {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn limits(&self) -> MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Basic `{email}/token:{api_token}`, or Bearer with an OAuth access token: Zendesk refuses
    /// an API token sent as a Bearer token.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        basic_auth_ok(headers, &format!("{}/token", self.email), &self.api_token)
            || bearer_auth_ok(headers, &self.oauth_access_token)
    }

    /// Tickets and comments changed after this (microseconds) are left out of the exports.
    fn cutoff_us(&self) -> i64 {
        match self.recent_exclusion_secs.load(Ordering::Relaxed) {
            0 => i64::MAX,
            s => now_us().saturating_sub(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(US)),
        }
    }

    fn set_incremental_limit(&self, per_minute: Option<u32>) {
        let mut l = self.limits();
        l.incremental_limit = per_minute.filter(|n| *n > 0);
        l.incremental.clear();
    }

    fn api(&self, path_and_query: &str) -> String {
        format!("{}/api/v2{path_and_query}", self.base_url)
    }

    fn ticket_out<'a>(&self, t: &'a Ticket) -> TicketOut<'a> {
        TicketOut {
            url: self.api(&format!("/tickets/{}.json", t.id)),
            id: t.id,
            external_id: None,
            via: via(CHANNELS[usize::from(t.channel)]),
            created_at: time(t.created_us),
            updated_at: time(t.updated_us),
            generated_timestamp: secs(t.updated_us),
            kind: t.kind.map(|k| TYPES[usize::from(k)]),
            subject: &t.subject,
            raw_subject: &t.subject,
            description: t.description(),
            priority: t.priority.map(|p| PRIORITIES[usize::from(p)]),
            status: t.status(),
            recipient: None,
            requester_id: t.requester_id,
            submitter_id: t.requester_id,
            assignee_id: t.assignee_id,
            organization_id: t.organization_id,
            group_id: t.group_id,
            collaborator_ids: [],
            follower_ids: [],
            email_cc_ids: [],
            forum_topic_id: None,
            problem_id: None,
            has_incidents: false,
            is_public: t.comments.iter().any(|c| c.public),
            due_at: None,
            tags: &t.tags,
            custom_fields: [],
            satisfaction_rating: None,
            sharing_agreement_ids: [],
            allow_channelback: false,
            allow_attachments: true,
            from_messaging_channel: false,
        }
    }

    fn article_url(&self, a: &Article) -> String {
        self.api(&format!("/help_center/en-us/articles/{}.json", a.id))
    }

    fn article_html_url(&self, a: &Article) -> String {
        let base = a.title.split(" (rev ").next().unwrap_or_default();
        format!(
            "{}/hc/en-us/articles/{}-{}",
            self.base_url,
            a.id,
            slug(base)
        )
    }

    fn article_json(&self, a: &Article) -> Value {
        json!({
            "id": a.id,
            "url": self.article_url(a),
            "html_url": self.article_html_url(a),
            "author_id": a.author_id,
            "comments_disabled": false,
            "draft": false,
            "promoted": false,
            "position": 0,
            "vote_sum": 0,
            "vote_count": 0,
            "section_id": a.section_id,
            "created_at": time(a.created_us),
            "updated_at": time(a.updated_us),
            "edited_at": time(a.updated_us),
            "name": a.title,
            "title": a.title,
            "source_locale": "en-us",
            "locale": "en-us",
            "outdated": false,
            "outdated_locales": [],
            "permission_group_id": 1_001,
            "user_segment_id": null,
            "label_names": a.labels,
            "content_tag_ids": [],
            "body": a.body,
        })
    }

    fn truth(&self) -> ZendeskTruth {
        let d = self.data();
        let tickets = d
            .tickets
            .iter()
            .filter(|t| !t.deleted())
            .map(|t| TruthTicket {
                id: t.id,
                subject: t.subject.clone(),
                description: t.description().to_owned(),
                status: t.status().into(),
                priority: t.priority.map(|p| PRIORITIES[usize::from(p)].into()),
                ticket_type: t.kind.map(|k| TYPES[usize::from(k)].into()),
                requester_id: t.requester_id,
                assignee_id: t.assignee_id,
                organization_id: t.organization_id,
                tags: t.tags.iter().map(|s| (*s).to_owned()).collect(),
                created_at: time(t.created_us),
                updated_at: time(t.updated_us),
                comments: t
                    .comments
                    .iter()
                    .map(|c| TruthComment {
                        id: c.id,
                        body: c.body.clone(),
                        public: c.public,
                        author_id: c.author_id,
                        created_at: time(c.created_us),
                    })
                    .collect(),
            })
            .collect();
        let deleted_ticket_ids = d
            .tickets
            .iter()
            .filter(|t| t.deleted())
            .map(|t| t.id)
            .collect();
        let articles = d
            .articles
            .iter()
            .map(|a| TruthArticle {
                id: a.id,
                title: a.title.clone(),
                body_html: a.body.clone(),
                body_text: a.text.clone(),
                html_url: self.article_html_url(a),
                url: self.article_url(a),
                section_id: a.section_id,
                author_id: a.author_id,
                locale: "en-us".into(),
                draft: false,
                created_at: time(a.created_us),
                updated_at: time(a.updated_us),
            })
            .collect();
        ZendeskTruth {
            tickets,
            deleted_ticket_ids,
            articles,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors, parameters, cursors

fn zd_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    json_reply(
        status,
        json!({"error": error, "description": description.into()}),
    )
}

fn invalid(description: impl Into<String>) -> Response {
    zd_error(StatusCode::BAD_REQUEST, "InvalidValue", description)
}

fn not_found() -> Response {
    zd_error(StatusCode::NOT_FOUND, "RecordNotFound", "Not found")
}

/// A positive count parameter: `default` when absent, clamped to `max`.
fn count_param(q: &QueryParams, key: &str, default: usize, max: usize) -> Result<usize, String> {
    match q.one(key) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(format!("{key} must be a positive integer")),
        },
    }
}

fn start_time_param(q: &QueryParams) -> Result<Option<i64>, String> {
    match q.one("start_time") {
        None => Ok(None),
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(t) if (0..=i64::MAX / US).contains(&t) => Ok(Some(t)),
            _ => Err(format!(
                "start_time must be a Unix epoch time in seconds, got {raw:?}"
            )),
        },
    }
}

/// Lenient base64 decode: tolerates missing padding and `+` turned into a space by form decoding.
fn b64_decode(raw: &str) -> Option<String> {
    let cleaned = raw.trim().replace(' ', "+");
    let bytes = STANDARD_NO_PAD.decode(cleaned.trim_end_matches('=')).ok()?;
    String::from_utf8(bytes).ok()
}

/// Export cursor in Zendesk's style: base64 of `"{secs}.{micros}||{id}|"`; the position is exclusive.
fn encode_export_cursor((us, id): (i64, u64)) -> String {
    STANDARD.encode(format!("{}.{:06}||{id}|", secs(us), us.rem_euclid(US)))
}

fn decode_export_cursor(raw: &str) -> Option<(i64, u64)> {
    let text = b64_decode(raw)?;
    let (ts, rest) = text.split_once("||")?;
    let id = rest.strip_suffix('|')?.parse::<u64>().ok()?;
    let (s, micros) = ts.split_once('.')?;
    let s = s.parse::<i64>().ok()?;
    let micros = micros.parse::<i64>().ok().filter(|m| (0..US).contains(m))?;
    Some((s.checked_mul(US)?.checked_add(micros)?, id))
}

fn encode_comment_cursor(id: u64) -> String {
    STANDARD.encode(format!("comment:{id}"))
}

fn decode_comment_cursor(raw: &str) -> Option<u64> {
    b64_decode(raw)?.strip_prefix("comment:")?.parse().ok()
}

/// Time-based page: `items` (sorted by time, already starting at the requested start) up to
/// `limit`, extended so the last second is complete. Returns the page, `end_time` (the last item's
/// second, to be used as the next `start_time`) and `end_of_stream`. When a full page holds a
/// single second, `end_time` moves past it (the whole second was returned) so paging always advances.
fn time_page<T>(
    items: impl Iterator<Item = (i64, T)>,
    start: i64,
    limit: usize,
) -> (Vec<T>, i64, bool) {
    let mut items = items.peekable();
    let (mut out, mut first, mut last) = (Vec::new(), None, None);
    while let Some((us, _)) = items.peek() {
        let sec = secs(*us);
        if out.len() >= limit && last != Some(sec) {
            break;
        }
        let Some((_, item)) = items.next() else { break };
        out.push(item);
        first.get_or_insert(sec);
        last = Some(sec);
    }
    let end_of_stream = items.peek().is_none();
    let end_time = match (first, last) {
        (Some(f), Some(l)) if !end_of_stream && f == l => l + 1,
        (_, Some(l)) => l,
        _ => start,
    };
    (out, end_time, end_of_stream)
}

fn ticket_id_from_file(file: &str) -> Option<u64> {
    file.strip_suffix(".json")?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Upstream handlers

async fn export_tickets(State(z): State<Arc<Zendesk>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let per_page = match count_param(&q, "per_page", EXPORT_PAGE, EXPORT_PAGE) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let pos = match (q.one("cursor"), start_time_param(&q)) {
        (_, Err(e)) => return invalid(e),
        (Some(c), _) => match decode_export_cursor(c) {
            Some(p) => p,
            None => return invalid("cursor is invalid"),
        },
        (None, Ok(Some(t))) => (t * US, 0),
        (None, Ok(None)) => {
            return invalid("start_time or cursor is required");
        }
    };
    let exclude_deleted = q.one("exclude_deleted") == Some("true");
    let cutoff = z.cutoff_us();
    let d = z.data();
    let mut keys = d
        .by_updated
        .range((Excluded(pos), Unbounded))
        .take_while(|(us, _)| *us <= cutoff)
        .filter(|(_, id)| !exclude_deleted || d.ticket(*id).is_some_and(|t| !t.deleted()));
    let page: Vec<(i64, u64)> = keys.by_ref().take(per_page).copied().collect();
    let end_of_stream = keys.next().is_none();
    let after = page.last().copied().unwrap_or(pos);
    let link = |cursor: &str| {
        z.api(&format!(
            "/incremental/tickets/cursor.json?{}",
            q.encode_with(&["cursor", "start_time"], &[("cursor", cursor)])
        ))
    };
    let (after_cursor, before_cursor) = (encode_export_cursor(after), encode_export_cursor(pos));
    let tickets = page
        .iter()
        .filter_map(|(_, id)| d.ticket(*id))
        .map(|t| z.ticket_out(t))
        .collect();
    let body = ExportPage {
        tickets,
        after_url: link(&after_cursor),
        before_url: link(&before_cursor),
        after_cursor,
        before_cursor,
        end_of_stream,
    };
    Json(body).into_response()
}

async fn export_ticket_events(State(z): State<Arc<Zendesk>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let start = match start_time_param(&q) {
        Ok(Some(t)) => t,
        Ok(None) => return invalid("start_time is required"),
        Err(e) => return invalid(e),
    };
    let with_comments = q.list("include").iter().any(|i| i == "comment_events");
    let cutoff = z.cutoff_us();
    let d = z.data();
    let items = d
        .events
        .range((start * US, 0)..)
        .take_while(|((us, _), _)| *us <= cutoff)
        .map(|((us, _), at)| (*us, *at));
    let (page, end_time, end_of_stream) = time_page(items, start, EVENTS_PAGE);
    let events: Vec<Value> = page
        .iter()
        .filter_map(|&(ti, ci)| {
            let t = d.tickets.get(ti as usize)?;
            let c = t.comments.get(ci as usize)?;
            let channel = CHANNELS[usize::from(t.channel)];
            let mut child = Vec::new();
            if with_comments {
                let mut cj = comment_json(c, channel);
                cj["event_type"] = json!("Comment");
                cj["via_reference_id"] = Value::Null;
                child.push(cj);
            }
            Some(json!({
                "id": c.id - 1,
                "ticket_id": t.id,
                "timestamp": secs(c.created_us),
                "created_at": time(c.created_us),
                "updated_at": time(c.created_us),
                "updater_id": c.author_id,
                "via": channel,
                "system": {},
                "metadata": {},
                "event_type": "Update",
                "merged_ticket_ids": [],
                "child_events": child,
            }))
        })
        .collect();
    let next_page = (!end_of_stream).then(|| {
        z.api(&format!(
            "/incremental/ticket_events.json?{}",
            q.encode_with(&["start_time"], &[("start_time", &end_time.to_string())])
        ))
    });
    let count = events.len();
    Json(json!({
        "ticket_events": events,
        "next_page": next_page,
        "count": count,
        "end_of_stream": end_of_stream,
        "end_time": end_time,
    }))
    .into_response()
}

async fn get_ticket(State(z): State<Arc<Zendesk>>, Path(file): Path<String>) -> Response {
    let d = z.data();
    match ticket_id_from_file(&file).and_then(|id| d.ticket(id)) {
        Some(t) if !t.deleted() => Json(json!({"ticket": z.ticket_out(t)})).into_response(),
        _ => not_found(),
    }
}

async fn ticket_comments(
    State(z): State<Arc<Zendesk>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let d = z.data();
    let Some(t) = id.parse::<u64>().ok().and_then(|id| d.ticket(id)) else {
        return not_found();
    };
    if t.deleted() {
        return not_found();
    }
    let channel = CHANNELS[usize::from(t.channel)];
    let path = format!("/tickets/{}/comments.json", t.id);
    let comments = &t.comments;
    let cursor_mode = ["page[size]", "page[after]", "page[before]"]
        .iter()
        .any(|k| q.one(k).is_some());
    if !cursor_mode {
        // Offset pagination (the default without page[size]).
        let per_page = match count_param(&q, "per_page", 100, 100) {
            Ok(n) => n,
            Err(e) => return invalid(e),
        };
        let page = match count_param(&q, "page", 1, usize::MAX) {
            Ok(n) => n,
            Err(e) => return invalid(e),
        };
        let start = (page - 1).saturating_mul(per_page);
        let items: Vec<Value> = comments
            .iter()
            .skip(start)
            .take(per_page)
            .map(|c| comment_json(c, channel))
            .collect();
        let link = |p: usize| {
            z.api(&format!(
                "{path}?{}",
                q.encode_with(&["page"], &[("page", &p.to_string())])
            ))
        };
        let next = (start.saturating_add(per_page) < comments.len()).then(|| link(page + 1));
        let prev = (page > 1).then(|| link(page - 1));
        return Json(json!({"comments": items, "next_page": next, "previous_page": prev, "count": comments.len()}))
            .into_response();
    }
    let size = match count_param(&q, "page[size]", 100, 100) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let decode = |key: &str| match q.one(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => decode_comment_cursor(v)
            .map(Some)
            .ok_or_else(|| format!("{key} is not a valid cursor")),
    };
    let (after, before) = match (decode("page[after]"), decode("page[before]")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return invalid(e),
    };
    let (start, end, has_more) = match (after, before) {
        (Some(a), _) => {
            let s = comments.partition_point(|c| c.id <= a);
            let e = s.saturating_add(size).min(comments.len());
            (s, e, e < comments.len())
        }
        (None, Some(b)) => {
            let e = comments.partition_point(|c| c.id < b);
            let s = e.saturating_sub(size);
            (s, e, s > 0)
        }
        (None, None) => {
            let e = size.min(comments.len());
            (0, e, e < comments.len())
        }
    };
    let page = &comments[start..end];
    let after_cursor = page.last().map(|c| encode_comment_cursor(c.id));
    let before_cursor = page.first().map(|c| encode_comment_cursor(c.id));
    let link = |key: &str, cursor: &str| {
        z.api(&format!(
            "{path}?{}",
            q.encode_with(
                &["page[after]", "page[before]", "page[size]"],
                &[("page[size]", &size.to_string()), (key, cursor)]
            )
        ))
    };
    let next = after_cursor.as_deref().map(|c| link("page[after]", c));
    let prev = before_cursor.as_deref().map(|c| link("page[before]", c));
    let items: Vec<Value> = page.iter().map(|c| comment_json(c, channel)).collect();
    Json(json!({
        "comments": items,
        "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
        "links": {"next": next, "prev": prev},
    }))
    .into_response()
}

async fn me(State(z): State<Arc<Zendesk>>) -> Response {
    let id = AGENT_IDS[0];
    Json(json!({"user": {
        "id": id, "url": z.api(&format!("/users/{id}.json")), "name": "Demo Agent", "email": z.email,
        "role": "admin", "active": true, "verified": true, "time_zone": "UTC", "locale": "en-US",
    }}))
    .into_response()
}

async fn list_articles(State(z): State<Arc<Zendesk>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let per_page = match count_param(&q, "per_page", 30, 100) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let page = match count_param(&q, "page", 1, usize::MAX) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let d = z.data();
    let total = d.articles.len();
    let start = (page - 1).saturating_mul(per_page);
    let items: Vec<Value> = d
        .articles
        .iter()
        .skip(start)
        .take(per_page)
        .map(|a| z.article_json(a))
        .collect();
    let link = |p: usize| {
        z.api(&format!(
            "/help_center/articles.json?{}",
            q.encode_with(
                &["page", "per_page"],
                &[
                    ("page", &p.to_string()),
                    ("per_page", &per_page.to_string())
                ]
            )
        ))
    };
    let next = (start.saturating_add(per_page) < total).then(|| link(page + 1));
    let prev = (page > 1).then(|| link(page - 1));
    Json(json!({
        "articles": items,
        "count": total,
        "next_page": next,
        "previous_page": prev,
        "page": page,
        "per_page": per_page,
        "page_count": total.div_ceil(per_page),
        "sort_by": "position",
        "sort_order": "asc",
    }))
    .into_response()
}

async fn get_article(State(z): State<Arc<Zendesk>>, Path(file): Path<String>) -> Response {
    let d = z.data();
    let id = file
        .strip_suffix(".json")
        .and_then(|s| s.parse::<u64>().ok());
    match id.and_then(|id| d.articles.iter().find(|a| a.id == id)) {
        Some(a) => Json(json!({"article": z.article_json(a)})).into_response(),
        None => not_found(),
    }
}

async fn export_articles(State(z): State<Arc<Zendesk>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let start = match start_time_param(&q) {
        Ok(Some(t)) => t,
        Ok(None) => return invalid("start_time is required"),
        Err(e) => return invalid(e),
    };
    let d = z.data();
    let mut order: Vec<(i64, u64, usize)> = d
        .articles
        .iter()
        .enumerate()
        .filter(|(_, a)| a.updated_us >= start * US)
        .map(|(i, a)| (a.updated_us, a.id, i))
        .collect();
    order.sort_unstable();
    let items = order.into_iter().map(|(us, _, i)| (us, i));
    let (page, end_time, end_of_stream) = time_page(items, start, ARTICLES_EXPORT_PAGE);
    let articles: Vec<Value> = page
        .iter()
        .map(|&i| z.article_json(&d.articles[i]))
        .collect();
    let next_page = (!end_of_stream).then(|| {
        z.api(&format!(
            "/help_center/incremental/articles.json?{}",
            q.encode_with(&["start_time"], &[("start_time", &end_time.to_string())])
        ))
    });
    let count = articles.len();
    Json(json!({
        "articles": articles,
        "next_page": next_page,
        "end_time": end_time,
        "count": count,
        "end_of_stream": end_of_stream,
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Search

enum Term {
    Word(String),
    Prefix(String),
    Phrase(String),
}

#[derive(Default)]
struct SearchQuery {
    terms: Vec<Term>,
    tickets: bool,
    articles: bool,
    statuses: Vec<u8>,
    priorities: Vec<u8>,
    tags: Vec<String>,
}

/// Splits on whitespace, keeping `"quoted phrases"` (and `key:"quoted value"`) together.
fn tokenize(query: &str) -> Vec<(String, bool)> {
    let (mut out, mut cur, mut quoted, mut had_quote) = (Vec::new(), String::new(), false, false);
    for ch in query.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                had_quote = true;
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push((std::mem::take(&mut cur), had_quote));
                }
                had_quote = false;
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push((cur, had_quote));
    }
    out
}

fn parse_search(query: &str) -> Result<SearchQuery, String> {
    let mut q = SearchQuery::default();
    let mut kinds = 0;
    for (tok, quoted) in tokenize(query) {
        let keyword = tok.split_once(':').filter(|(k, _)| {
            ["type", "status", "priority", "tags", "tag"].contains(&k.to_ascii_lowercase().as_str())
        });
        if let Some((key, value)) = keyword {
            let value = value.to_ascii_lowercase();
            match key.to_ascii_lowercase().as_str() {
                "type" => {
                    kinds += 1;
                    match value.as_str() {
                        "ticket" => q.tickets = true,
                        "article" => q.articles = true,
                        // Other object types exist in Zendesk but not in this fake: no results.
                        _ => {}
                    }
                }
                "status" => match STATUSES[..6].iter().position(|s| *s == value) {
                    Some(i) => q.statuses.push(i as u8),
                    None => return Err(format!("unknown status {value:?}")),
                },
                "priority" => match PRIORITIES.iter().position(|s| *s == value) {
                    Some(i) => q.priorities.push(i as u8),
                    None => return Err(format!("unknown priority {value:?}")),
                },
                _ => q.tags.push(value),
            }
        } else if quoted {
            let phrase = tok
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            if !phrase.is_empty() {
                q.terms.push(Term::Phrase(phrase));
            }
        } else {
            let prefix = tok.ends_with('*');
            for w in tok
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                let w = w.to_lowercase();
                q.terms.push(if prefix {
                    Term::Prefix(w)
                } else {
                    Term::Word(w)
                });
            }
        }
    }
    if kinds == 0 {
        q.tickets = true;
        q.articles = true;
    }
    if q.terms.is_empty()
        && kinds == 0
        && q.statuses.is_empty()
        && q.priorities.is_empty()
        && q.tags.is_empty()
    {
        return Err("query is empty".into());
    }
    Ok(q)
}

fn has_word(text: &str, word: &str, prefix: bool) -> bool {
    text.split(|c: char| !c.is_alphanumeric()).any(|t| {
        if prefix {
            t.get(..word.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(word))
        } else {
            t.eq_ignore_ascii_case(word)
        }
    })
}

impl SearchQuery {
    fn matches_text(&self, fields: &[&str]) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Word(w) => fields.iter().any(|f| has_word(f, w, false)),
            Term::Prefix(w) => fields.iter().any(|f| has_word(f, w, true)),
            Term::Phrase(p) => fields.iter().any(|f| {
                f.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
                    .contains(p.as_str())
            }),
        })
    }

    fn matches_ticket(&self, t: &Ticket) -> bool {
        self.tickets
            && !t.deleted()
            && (self.statuses.is_empty() || self.statuses.contains(&t.status))
            && (self.priorities.is_empty()
                || t.priority.is_some_and(|p| self.priorities.contains(&p)))
            && self.tags.iter().all(|tag| t.tags.iter().any(|x| x == tag))
            && self.matches_text(&[&t.subject, t.description(), &t.tags.join(" ")])
    }

    fn matches_article(&self, a: &Article) -> bool {
        self.articles
            && self.statuses.is_empty()
            && self.priorities.is_empty()
            && self
                .tags
                .iter()
                .all(|tag| a.labels.iter().any(|x| x == tag))
            && self.matches_text(&[&a.title, &a.text])
    }
}

#[derive(Clone, Copy)]
enum Hit {
    Ticket(usize),
    Article(usize),
}

async fn search(State(z): State<Arc<Zendesk>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let Some(text) = q.one("query").filter(|s| !s.trim().is_empty()) else {
        return invalid("query is required");
    };
    let query = match parse_search(text) {
        Ok(query) => query,
        Err(e) => return invalid(format!("Invalid search query: {e}")),
    };
    let per_page = match count_param(&q, "per_page", 100, 100) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let page = match count_param(&q, "page", 1, usize::MAX) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    if page.saturating_mul(per_page) > SEARCH_CEILING {
        return zd_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Invalid search: Requested response size was greater than Search Response Limits",
        );
    }
    let sort_by = q.one("sort_by");
    if sort_by.is_some_and(|s| !["created_at", "updated_at"].contains(&s)) {
        return invalid("sort_by must be created_at or updated_at");
    }
    let desc = q.one("sort_order") != Some("asc");
    let d = z.data();
    let mut hits: Vec<Hit> = d
        .tickets
        .iter()
        .enumerate()
        .filter(|(_, t)| query.matches_ticket(t))
        .map(|(i, _)| Hit::Ticket(i))
        .chain(
            d.articles
                .iter()
                .enumerate()
                .filter(|(_, a)| query.matches_article(a))
                .map(|(i, _)| Hit::Article(i)),
        )
        .collect();
    if let Some(field) = sort_by {
        let key = |h: &Hit| {
            let (c, u, id) = match *h {
                Hit::Ticket(i) => (
                    d.tickets[i].created_us,
                    d.tickets[i].updated_us,
                    d.tickets[i].id,
                ),
                Hit::Article(i) => (
                    d.articles[i].created_us,
                    d.articles[i].updated_us,
                    d.articles[i].id,
                ),
            };
            (if field == "created_at" { c } else { u }, id)
        };
        hits.sort_by(|a, b| {
            if desc {
                key(b).cmp(&key(a))
            } else {
                key(a).cmp(&key(b))
            }
        });
    }
    let count = hits.len();
    let start = (page - 1) * per_page;
    let results: Vec<Value> = hits
        .iter()
        .skip(start)
        .take(per_page)
        .map(|h| match *h {
            Hit::Ticket(i) => {
                let mut v =
                    serde_json::to_value(z.ticket_out(&d.tickets[i])).unwrap_or(Value::Null);
                v["result_type"] = json!("ticket");
                v
            }
            Hit::Article(i) => {
                let mut v = z.article_json(&d.articles[i]);
                v["result_type"] = json!("article");
                v
            }
        })
        .collect();
    let link = |p: usize| {
        z.api(&format!(
            "/search.json?{}",
            q.encode_with(
                &["page", "per_page"],
                &[
                    ("page", &p.to_string()),
                    ("per_page", &per_page.to_string())
                ]
            )
        ))
    };
    let next = (start + per_page < count).then(|| link(page + 1));
    let prev = (page > 1).then(|| link(page - 1));
    Json(json!({"results": results, "facets": null, "next_page": next, "previous_page": prev, "count": count}))
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Gate, control routes, router

fn rate_headers(resp: &mut Response, limit: u32, remaining: u32, reset: u64) {
    let (limit, remaining, reset) = (limit.to_string(), remaining.to_string(), reset.to_string());
    set_header(resp, "x-rate-limit", &limit);
    set_header(resp, "x-rate-limit-remaining", &remaining);
    set_header(resp, "ratelimit-limit", &limit);
    set_header(resp, "ratelimit-remaining", &remaining);
    set_header(resp, "ratelimit-reset", &reset);
}

fn rate_limited(retry_after: u64, limit: u32, description: &str) -> Response {
    let mut resp = zd_error(
        StatusCode::TOO_MANY_REQUESTS,
        "APIRateLimitExceeded",
        description,
    );
    set_header(&mut resp, "retry-after", &retry_after.to_string());
    rate_headers(&mut resp, limit, 0, retry_after);
    resp
}

/// Counts the request, applies the fault knob, checks auth, then the rate limits; every upstream
/// reply carries the rate-limit headers. Control routes under `/_fake/` skip all of it.
async fn gate(State(z): State<Arc<Zendesk>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_fake/") {
        return next.run(req).await;
    }
    if z.core.record(&path) {
        return rate_limited(
            1,
            ACCOUNT_LIMIT,
            "Rate limit exceeded (injected by the fake)",
        );
    }
    if !z.authorized(req.headers()) {
        let mut resp = json_reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "Couldn't authenticate you"}),
        );
        set_header(
            &mut resp,
            "www-authenticate",
            "Basic realm=\"Web Password\"",
        );
        return resp;
    }
    let (limit, remaining, reset) = {
        let mut l = z.limits();
        l.account.take();
        let incremental = INCREMENTAL_PATHS.contains(&path.as_str());
        match l.incremental_limit.filter(|_| incremental) {
            Some(limit) => {
                if let Err(wait) = l.incremental.try_take(limit) {
                    return rate_limited(
                        wait,
                        limit,
                        "Number of allowed incremental export API requests per minute exceeded",
                    );
                }
                let used = u32::try_from(l.incremental.used()).unwrap_or(u32::MAX);
                (
                    limit,
                    limit.saturating_sub(used),
                    l.incremental.secs_until_free(),
                )
            }
            None => {
                let used = u32::try_from(l.account.used()).unwrap_or(u32::MAX);
                (
                    ACCOUNT_LIMIT,
                    ACCOUNT_LIMIT.saturating_sub(used),
                    l.account.secs_until_free(),
                )
            }
        }
    };
    let mut resp = next.run(req).await;
    rate_headers(&mut resp, limit, remaining, reset);
    resp
}

/// `POST /_fake/mutate` body: a [`ZendeskMutation`] plus `update_articles`.
#[derive(Deserialize)]
struct MutateBody {
    #[serde(flatten)]
    tickets: ZendeskMutation,
    #[serde(default)]
    update_articles: usize,
}

async fn fake_mutate(State(z): State<Arc<Zendesk>>, body: Bytes) -> Response {
    match serde_json::from_slice::<MutateBody>(&body) {
        Ok(m) => Json(z.data().mutate(m.tickets, m.update_articles)).into_response(),
        Err(e) => json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("expected {{\"update\":N,\"delete\":N,\"create\":N,\"comment\":N,\"update_articles\":N}}: {e}")}),
        ),
    }
}

fn config_json(z: &Zendesk) -> Value {
    json!({
        "incremental_limit_per_minute": z.limits().incremental_limit,
        "recent_exclusion_secs": z.recent_exclusion_secs.load(Ordering::Relaxed),
        "rate_limit_every": z.core.rate_limit_every(),
    })
}

async fn fake_config(State(z): State<Arc<Zendesk>>, body: Bytes) -> Response {
    const EXPECTED: &str = "expected {\"incremental_limit_per_minute\":N|null,\"recent_exclusion_secs\":N,\"rate_limit_every\":N|null} (any subset)";
    let bad = |why: String| {
        json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("{EXPECTED}: {why}")}),
        )
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(e.to_string()),
    };
    let Some(obj) = v.as_object() else {
        return bad("not an object".into());
    };
    let opt_u64 = |key: &str| -> Result<Option<Option<u64>>, String> {
        match obj.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(n) => n
                .as_u64()
                .map(|n| Some(Some(n)))
                .ok_or_else(|| format!("{key} must be a non-negative integer or null")),
        }
    };
    if let Some(k) = obj.keys().find(|k| {
        ![
            "incremental_limit_per_minute",
            "recent_exclusion_secs",
            "rate_limit_every",
        ]
        .contains(&k.as_str())
    }) {
        return bad(format!("unknown key {k:?}"));
    }
    let (limit, exclusion, every) = match (
        opt_u64("incremental_limit_per_minute"),
        opt_u64("recent_exclusion_secs"),
        opt_u64("rate_limit_every"),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad(e),
    };
    if matches!(exclusion, Some(None)) {
        return bad("recent_exclusion_secs cannot be null".into());
    }
    if let Some(limit) = limit {
        let Ok(limit) = limit.map(u32::try_from).transpose() else {
            return bad("incremental_limit_per_minute is too large".into());
        };
        z.set_incremental_limit(limit);
    }
    if let Some(Some(secs)) = exclusion {
        z.recent_exclusion_secs.store(secs, Ordering::Relaxed);
    }
    if let Some(every) = every {
        z.core.set_rate_limit_every(every);
    }
    Json(config_json(&z)).into_response()
}

fn router(state: Arc<Zendesk>) -> Router {
    Router::new()
        .route(
            "/api/v2/incremental/tickets/cursor.json",
            get(export_tickets),
        )
        .route(
            "/api/v2/incremental/ticket_events.json",
            get(export_ticket_events),
        )
        .route("/api/v2/tickets/{file}", get(get_ticket))
        .route("/api/v2/tickets/{id}/comments.json", get(ticket_comments))
        .route("/api/v2/users/me.json", get(me))
        .route("/api/v2/help_center/articles.json", get(list_articles))
        .route("/api/v2/help_center/articles/{file}", get(get_article))
        .route(
            "/api/v2/help_center/incremental/articles.json",
            get(export_articles),
        )
        .route("/api/v2/search.json", get(search))
        .route(
            "/_fake/truth",
            get(|State(z): State<Arc<Zendesk>>| async move { Json(z.truth()) }),
        )
        .route("/_fake/mutate", post(fake_mutate))
        .route(
            "/_fake/requests",
            get(|State(z): State<Arc<Zendesk>>| async move { Json(z.core.counts()) }).delete(
                |State(z): State<Arc<Zendesk>>| async move {
                    z.core.reset_counts();
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/_fake/config",
            post(fake_config)
                .get(|State(z): State<Arc<Zendesk>>| async move { Json(config_json(&z)) }),
        )
        .route(
            "/_fake/shutdown",
            post(|State(z): State<Arc<Zendesk>>| async move {
                z.core.request_shutdown();
                StatusCode::ACCEPTED
            }),
        )
        .fallback(|| async { zd_error(StatusCode::NOT_FOUND, "InvalidEndpoint", "Not found") })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Zendesk fake on `listen` (port 0 picks a free port).
pub async fn spawn_zendesk(
    listen: SocketAddr,
    opts: ZendeskOptions,
) -> std::io::Result<RunningFake<Zendesk>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let limits = Limits {
        incremental_limit: opts.incremental_limit_per_minute.filter(|n| *n > 0),
        ..Limits::default()
    };
    let state = Arc::new(Zendesk {
        core: Core::new(None),
        data: Mutex::new(generate(&opts)),
        recent_exclusion_secs: AtomicU64::new(opts.recent_exclusion_secs),
        limits: Mutex::new(limits),
        email: opts.email,
        api_token: opts.api_token,
        oauth_access_token: opts.oauth_access_token,
        base_url: base_url.clone(),
    });
    Ok(server::start(
        listener,
        base_url,
        state.clone(),
        router(state),
    ))
}

impl RunningFake<Zendesk> {
    /// Live tickets with their comments, deleted ticket ids and articles, as they are now.
    pub fn truth(&self) -> ZendeskTruth {
        self.state.truth()
    }
    /// Updates, deletes (never a planted ticket), creates and comments on tickets; returns the ids.
    pub fn mutate(&self, m: ZendeskMutation) -> ZendeskMutationReport {
        self.state.data().mutate(m, 0)
    }
    /// Edits `n` articles (title, body, `updated_at`); returns their ids.
    pub fn update_articles(&self, n: usize) -> Vec<u64> {
        self.state
            .data()
            .mutate(ZendeskMutation::default(), n)
            .articles_updated
    }
    /// Requests per sliding minute on the incremental endpoints (`None`: unlimited). Clears the window.
    pub fn set_incremental_limit(&self, per_minute: Option<u32>) {
        self.state.set_incremental_limit(per_minute)
    }
    /// Ticket exports leave out changes younger than this; 0 excludes nothing.
    pub fn set_recent_exclusion_secs(&self, secs: u64) {
        self.state
            .recent_exclusion_secs
            .store(secs, Ordering::Relaxed)
    }
    pub fn update_tickets(&self, n: usize) -> Vec<u64> {
        self.mutate(ZendeskMutation {
            update: n,
            ..ZendeskMutation::default()
        })
        .updated
    }
    pub fn delete_tickets(&self, n: usize) -> Vec<u64> {
        self.mutate(ZendeskMutation {
            delete: n,
            ..ZendeskMutation::default()
        })
        .deleted
    }
    pub fn create_tickets(&self, n: usize) -> Vec<u64> {
        self.mutate(ZendeskMutation {
            create: n,
            ..ZendeskMutation::default()
        })
        .created
    }
    pub fn comment_tickets(&self, n: usize) -> Vec<u64> {
        self.mutate(ZendeskMutation {
            comment: n,
            ..ZendeskMutation::default()
        })
        .commented
    }
}
