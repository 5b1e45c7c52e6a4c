//! The records behind the Zendesk fake (tickets with their comments, articles), the value tables
//! they are drawn from, and their mutations between sync runs (`RunningFake::mutate`,
//! `POST /_fake/mutate`): updates, deletes, creates and comments, each strictly later in time.

use std::collections::{BTreeMap, BTreeSet};

use super::generate::{agent, end_user, gen_subject, gen_text, push_sentence};
use super::{ZendeskMutation, ZendeskMutationReport};
use crate::common::{Rng, html_escape, html_to_text, now_us};

pub(super) const STATUSES: [&str; 7] = [
    "new", "open", "pending", "hold", "solved", "closed", "deleted",
];
pub(super) const NEW: u8 = 0;
pub(super) const CLOSED: u8 = 5;
pub(super) const DELETED: u8 = 6;
pub(super) const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
pub(super) const TYPES: [&str; 4] = ["question", "incident", "problem", "task"];
pub(super) const CHANNELS: [&str; 3] = ["web", "email", "api"];

#[rustfmt::skip]
pub(super) const VOCAB: &[&str] = &[
    "invoice", "password", "login", "printer", "laptop", "refund", "shipment", "order", "account", "billing",
    "subscription", "license", "renewal", "upgrade", "export", "report", "dashboard", "mailbox", "calendar",
    "vpn", "wifi", "badge", "payroll", "contract", "warranty", "delivery", "tracking", "coupon", "discount",
    "integration", "webhook", "api", "token", "certificate", "backup", "sync", "mobile", "tablet", "monitor",
    "keyboard", "headset", "onboarding", "offboarding", "permissions", "group", "macro", "trigger", "sla",
    "escalation", "survey", "feedback", "migration", "outage", "latency", "timeout", "firmware", "driver",
    "database", "storage", "quota", "domain", "dns", "ssl", "scanner", "receipt", "tax", "currency",
];
#[rustfmt::skip]
pub(super) const SUBJECT_TAILS: &[&str] = &[
    "not working", "question", "request", "issue", "failing since update", "access problem", "needs review",
    "is slow", "error", "help needed", "missing", "cannot be changed",
];
#[rustfmt::skip]
pub(super) const ARTICLE_VERBS: &[&str] = &[
    "reset", "configure", "export", "troubleshoot", "update", "connect", "review", "cancel", "set up", "share",
];

/// Agents (assignees, comment authors); the first one is the authenticated user.
pub(super) const AGENT_IDS: [u64; 8] = [
    400_000_000_001,
    400_000_000_014,
    400_000_000_027,
    400_000_000_040,
    400_000_000_053,
    400_000_000_066,
    400_000_000_079,
    400_000_000_092,
];
pub(super) const END_USERS: u64 = 250;
pub(super) const END_USER_BASE: u64 = 410_000_000_003;
pub(super) const ORGS: u64 = 25;
pub(super) const GROUPS: u64 = 4;
pub(super) const SECTIONS: u64 = 5;
pub(super) const FIRST_TICKET_ID: u64 = 1;
pub(super) const FIRST_ORG_ID: u64 = 360_020_000_001;
pub(super) const FIRST_GROUP_ID: u64 = 360_010_000_001;
/// Comment index of a ticket event that changes a field.
pub(super) const CHANGE: u32 = u32::MAX;
/// Help Center user segments: agents and admins only; signed-in users of the first group.
pub(super) const STAFF_SEGMENT: u64 = 7_001;
pub(super) const GROUP_SEGMENT: u64 = 7_002;

#[derive(Clone, Debug)]
pub(super) struct Comment {
    pub(super) id: u64,
    pub(super) body: String,
    pub(super) public: bool,
    pub(super) author_id: u64,
    pub(super) created_us: i64,
}

#[derive(Clone, Debug)]
pub(super) struct Ticket {
    pub(super) id: u64,
    pub(super) subject: String,
    pub(super) status: u8,
    pub(super) priority: Option<u8>,
    pub(super) kind: Option<u8>,
    pub(super) channel: u8,
    pub(super) requester_id: u64,
    pub(super) assignee_id: Option<u64>,
    pub(super) organization_id: Option<u64>,
    pub(super) group_id: Option<u64>,
    /// CCs (`email_cc_ids`, also in `collaborator_ids`): end users who read the ticket.
    pub(super) ccs: Vec<u64>,
    pub(super) tags: Vec<&'static str>,
    pub(super) created_us: i64,
    pub(super) updated_us: i64,
    /// Oldest first; the first one is the description.
    pub(super) comments: Vec<Comment>,
    pub(super) planted: bool,
    pub(super) rev: u32,
}

impl Ticket {
    pub(super) fn description(&self) -> &str {
        self.comments.first().map_or("", |c| c.body.as_str())
    }
    pub(super) fn status(&self) -> &'static str {
        STATUSES[usize::from(self.status)]
    }
    pub(super) fn deleted(&self) -> bool {
        self.status == DELETED
    }
}

#[derive(Clone, Debug)]
pub(super) struct Article {
    pub(super) id: u64,
    pub(super) title: String,
    pub(super) body: String,
    pub(super) text: String,
    pub(super) section_id: u64,
    pub(super) author_id: u64,
    pub(super) labels: Vec<&'static str>,
    /// The Help Center user segment that may view the article (`None`: everyone).
    pub(super) segment: Option<u64>,
    pub(super) created_us: i64,
    pub(super) updated_us: i64,
    pub(super) rev: u32,
}

pub(super) struct Data {
    /// By ascending id; `tickets[i].id == FIRST_TICKET_ID + i`.
    pub(super) tickets: Vec<Ticket>,
    /// `(updated_us, id)` of every ticket: the incremental export order.
    pub(super) by_updated: BTreeSet<(i64, u64)>,
    /// `(created_us, comment id)` → (ticket index, comment index): the ticket-event order. A
    /// comment index of [`CHANGE`] marks a field change (see `changes`) rather than a comment.
    pub(super) events: BTreeMap<(i64, u64), (u32, u32)>,
    /// Field changes by event key id: (field name, previous value, new value).
    pub(super) changes: BTreeMap<u64, (&'static str, serde_json::Value, serde_json::Value)>,
    /// Organizations whose users see each other's tickets (`shared_tickets`).
    pub(super) shared_orgs: BTreeSet<u64>,
    /// By ascending id.
    pub(super) articles: Vec<Article>,
    pub(super) rng: Rng,
    pub(super) last_us: i64,
    pub(super) next_comment_id: u64,
}

impl Data {
    pub(super) fn ticket(&self, id: u64) -> Option<&Ticket> {
        let i = id.checked_sub(FIRST_TICKET_ID)?;
        self.tickets.get(usize::try_from(i).ok()?)
    }

    /// Wall-clock now in microseconds, strictly increasing and after every seeded time.
    pub(super) fn tick(&mut self) -> i64 {
        self.last_us = now_us().max(self.last_us + 1);
        self.last_us
    }

    pub(super) fn set_updated(&mut self, i: usize, us: i64) {
        let t = &mut self.tickets[i];
        self.by_updated.remove(&(t.updated_us, t.id));
        t.updated_us = us;
        self.by_updated.insert((us, t.id));
    }

    /// Picks up to `n` distinct tickets that `ok` accepts, in ascending id order.
    pub(super) fn pick(&mut self, n: usize, ok: impl Fn(&Ticket) -> bool) -> Vec<usize> {
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

    pub(super) fn add_comment(
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

    /// Records a change of `field` on ticket `i` as a ticket event (the way the export shows
    /// who changed what) and makes the ticket modified now.
    pub(super) fn change(
        &mut self,
        i: usize,
        field: &'static str,
        previous: serde_json::Value,
        value: serde_json::Value,
    ) {
        let us = self.tick();
        let id = self.next_comment_id;
        self.next_comment_id += 2;
        self.events.insert((us, id), (i as u32, CHANGE));
        self.changes.insert(id, (field, previous, value));
        self.set_updated(i, us);
    }

    pub(super) fn mutate(
        &mut self,
        m: ZendeskMutation,
        update_articles: usize,
    ) -> ZendeskMutationReport {
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
                ccs: Vec::new(),
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
