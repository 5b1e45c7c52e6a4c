//! The seeded data set: ticket and article text (with the planted phrase) and the initial generation.

use std::collections::HashSet;

use super::data::{
    AGENT_IDS, ARTICLE_VERBS, Article, CLOSED, Comment, Data, END_USER_BASE, END_USERS,
    FIRST_GROUP_ID, FIRST_ORG_ID, FIRST_TICKET_ID, GROUP_SEGMENT, GROUPS, NEW, ORGS, SECTIONS,
    STAFF_SEGMENT, SUBJECT_TAILS, Ticket, VOCAB,
};
use super::{PLANTED_PHRASE, US, ZendeskOptions};
use crate::common::{Rng, html_to_text, utc_ms};

pub(super) fn push_words(rng: &mut Rng, out: &mut String, n: u64) {
    for k in 0..n {
        if k > 0 {
            out.push(' ');
        }
        out.push_str(rng.pick(VOCAB));
    }
}

/// Appends one capitalized sentence ending with a period.
pub(super) fn push_sentence(rng: &mut Rng, out: &mut String, min: u64, extra: u64) {
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

pub(super) fn gen_text(rng: &mut Rng, paragraphs: u64, planted: bool) -> String {
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

pub(super) fn gen_subject(rng: &mut Rng) -> String {
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

pub(super) fn agent(rng: &mut Rng) -> u64 {
    rng.pick(&AGENT_IDS)
}

pub(super) fn end_user(rng: &mut Rng) -> u64 {
    END_USER_BASE + rng.below(END_USERS) * 7
}

pub(super) fn pick_distinct(rng: &mut Rng, n: usize, k: usize) -> HashSet<usize> {
    let mut out = HashSet::new();
    while out.len() < k.min(n) {
        out.insert(rng.below(n as u64) as usize);
    }
    out
}

pub(super) fn gen_article_body(rng: &mut Rng, planted: bool) -> String {
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

pub(super) fn generate(opts: &ZendeskOptions) -> Data {
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
                .then(|| FIRST_ORG_ID + rng.below(ORGS) * 11),
            group_id: assignee.map(|_| FIRST_GROUP_ID + rng.below(GROUPS)),
            // Every fifth ticket CCs another end user (drawn from the id: the seeded stream of
            // random numbers stays as it was).
            ccs: (i % 5 == 4)
                .then(|| END_USER_BASE + (i as u64 * 3 % END_USERS) * 7)
                .into_iter()
                .filter(|&cc| cc != requester_id)
                .collect(),
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
                segment: match i % 10 {
                    3 => Some(STAFF_SEGMENT),
                    7 => Some(GROUP_SEGMENT),
                    _ => None,
                },
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
        changes: Default::default(),
        // Every other organization shares its tickets among its users.
        shared_orgs: (0..ORGS)
            .step_by(2)
            .map(|k| FIRST_ORG_ID + k * 11)
            .collect(),
        last_us,
        next_comment_id,
    }
}
