//! The records behind the Jira fake (issues with their comments, knowledge-base articles), the
//! seeded generation and the mutations between sync runs (`RunningFake::mutate`,
//! `POST /_fake/mutate`).

use super::{
    CUSTOMERS, FIRST_COMMENT_ID, FIRST_ISSUE_ID, FIRST_PAGE_ID, JiraMutation, JiraMutationReport,
    JiraOptions, ORGANIZATIONS, PLANTED_PHRASE, STATUSES, USERS, VOCAB,
};
use crate::common::{Rng, now_ms, utc_ms};

#[derive(Clone, Debug)]
pub(super) struct Comment {
    pub(super) id: u64,
    pub(super) body: String,
    pub(super) public: bool,
    pub(super) author: usize,
    pub(super) created_ms: i64,
}

#[derive(Clone, Debug)]
pub(super) struct Issue {
    pub(super) id: u64,
    pub(super) key: String,
    pub(super) summary: String,
    pub(super) paragraphs: Vec<String>,
    pub(super) status: usize,
    pub(super) reporter: usize,
    /// Request participants (indexes into `USERS`).
    pub(super) participants: Vec<usize>,
    /// Customer organizations the request is shared with (`ORGANIZATIONS` ids).
    pub(super) organizations: Vec<u64>,
    pub(super) created_ms: i64,
    pub(super) updated_ms: i64,
    pub(super) comments: Vec<Comment>,
}

impl Issue {
    pub(super) fn description(&self) -> String {
        self.paragraphs.join("\n\n")
    }
    pub(super) fn words(&self) -> String {
        format!("{} {}", self.summary, self.description()).to_lowercase()
    }
}

#[derive(Clone, Debug)]
pub(super) struct Article {
    pub(super) page_id: u64,
    pub(super) title: String,
    pub(super) excerpt: String,
}

pub(super) struct Data {
    pub(super) project: String,
    pub(super) issues: Vec<Issue>,
    pub(super) articles: Vec<Article>,
    pub(super) rng: Rng,
    pub(super) last_ms: i64,
    pub(super) next_comment_id: u64,
}

/// A capitalized sentence of `min + below(extra)` words ending with a period.
pub(super) fn sentence(rng: &mut Rng, min: u64, extra: u64) -> String {
    let words = min + rng.below(extra.max(1));
    let mut s: Vec<&str> = (0..words).map(|_| rng.pick(VOCAB)).collect();
    let first = s[0].to_owned();
    let cap = first[..1].to_uppercase() + &first[1..];
    s[0] = &cap;
    format!("{}.", s.join(" "))
}

pub(super) fn generate(opts: &JiraOptions) -> Data {
    let mut rng = Rng::new(opts.seed);
    let planted: Vec<usize> = [3, 77, 150]
        .into_iter()
        .filter(|i| *i < opts.requests)
        .collect();
    let mut t = utc_ms(2025, 1, 6, 8, 0);
    let mut next_comment_id = FIRST_COMMENT_ID;
    let mut issues = Vec::with_capacity(opts.requests);
    for i in 0..opts.requests {
        // Several requests share a minute, so the connector's minute watermark is exercised.
        t += i64::try_from(rng.below(40)).unwrap_or(0) * 1000 + 1;
        let created_ms = t - 86_400_000;
        let mut paragraphs: Vec<String> = (0..1 + rng.below(3))
            .map(|_| sentence(&mut rng, 4, 8))
            .collect();
        if planted.contains(&i) {
            paragraphs.push(format!("Note: {PLANTED_PHRASE}."));
        }
        let mut comments = Vec::new();
        for c in 0..rng.below(4) {
            comments.push(Comment {
                id: next_comment_id,
                body: sentence(&mut rng, 3, 6),
                public: !rng.chance(1, 4),
                author: rng.below(USERS.len() as u64) as usize,
                created_ms: created_ms + 3_600_000 * (c as i64 + 1),
            });
            next_comment_id += 1;
        }
        let reporter = 1 + rng.below(USERS.len() as u64 - 1) as usize;
        issues.push(Issue {
            id: FIRST_ISSUE_ID + i as u64,
            key: format!("{}-{}", opts.project, i + 1),
            summary: sentence(&mut rng, 3, 4).trim_end_matches('.').into(),
            paragraphs,
            status: rng.below(STATUSES.len() as u64) as usize,
            reporter,
            // Drawn from the index, so the seeded stream of random numbers stays as it was:
            // every fourth request has the next customer as a participant, every third is
            // shared with an organization.
            participants: match CUSTOMERS.iter().position(|c| *c == reporter) {
                Some(at) if i % 4 == 1 => vec![CUSTOMERS[(at + 1) % CUSTOMERS.len()]],
                _ => Vec::new(),
            },
            organizations: match i % 3 {
                0 => vec![ORGANIZATIONS[(i / 3) % ORGANIZATIONS.len()].0],
                _ => Vec::new(),
            },
            created_ms,
            updated_ms: t,
            comments,
        });
    }
    let articles = (0..opts.articles)
        .map(|i| {
            let mut excerpt = format!("{} {}", sentence(&mut rng, 6, 0), sentence(&mut rng, 8, 0));
            if i == 4 || i == 21 {
                excerpt.push_str(&format!(" See the {PLANTED_PHRASE}."));
            }
            Article {
                page_id: FIRST_PAGE_ID + i as u64,
                title: format!("How to {}", sentence(&mut rng, 3, 0).trim_end_matches('.')),
                excerpt,
            }
        })
        .collect();
    Data {
        project: opts.project.clone(),
        issues,
        articles,
        rng,
        last_ms: t,
        next_comment_id,
    }
}

impl Data {
    /// A strictly increasing "now".
    pub(super) fn tick(&mut self) -> i64 {
        self.last_ms = now_ms().max(self.last_ms + 1);
        self.last_ms
    }

    pub(super) fn add_comment(
        &mut self,
        idx: usize,
        body: String,
        public: bool,
        author: usize,
    ) -> Comment {
        let now = self.tick();
        let c = Comment {
            id: self.next_comment_id,
            body,
            public,
            author,
            created_ms: now,
        };
        self.next_comment_id += 1;
        let issue = &mut self.issues[idx];
        issue.comments.push(c.clone());
        issue.updated_ms = now;
        c
    }

    pub(super) fn mutate(&mut self, m: JiraMutation) -> JiraMutationReport {
        let mut r = JiraMutationReport::default();
        for _ in 0..m.update.min(self.issues.len()) {
            let i = self.rng.below(self.issues.len() as u64) as usize;
            let summary = sentence(&mut self.rng, 4, 0);
            let now = self.tick();
            let issue = &mut self.issues[i];
            issue.summary = format!("Updated: {}", summary.trim_end_matches('.'));
            issue.status = (issue.status + 1) % STATUSES.len();
            issue.updated_ms = now;
            r.updated.push(issue.key.clone());
        }
        for _ in 0..m.create {
            let n = self.issues.len();
            let now = self.tick();
            let summary = sentence(&mut self.rng, 4, 0);
            let para = sentence(&mut self.rng, 9, 0);
            let issue = Issue {
                id: FIRST_ISSUE_ID + n as u64,
                key: format!("{}-{}", self.project, n + 1),
                summary: summary.trim_end_matches('.').into(),
                paragraphs: vec![para],
                status: 0,
                reporter: 1,
                participants: Vec::new(),
                organizations: Vec::new(),
                created_ms: now,
                updated_ms: now,
                comments: Vec::new(),
            };
            r.created.push(issue.key.clone());
            self.issues.push(issue);
        }
        for _ in 0..m.comment.min(self.issues.len()) {
            let i = self.rng.below(self.issues.len() as u64) as usize;
            let body = sentence(&mut self.rng, 6, 0);
            self.add_comment(i, body, true, 0);
            r.commented.push(self.issues[i].key.clone());
        }
        r
    }

    pub(super) fn find(&self, id_or_key: &str) -> Option<usize> {
        self.issues
            .iter()
            .position(|i| i.key.eq_ignore_ascii_case(id_or_key) || i.id.to_string() == id_or_key)
    }
}
