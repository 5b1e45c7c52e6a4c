//! Jira Cloud + Jira Service Management fake (API-NOTES.md): the enhanced JQL search
//! `/rest/api/3/search/jql` with `nextPageToken` (the old `/rest/api/3/search` answers 410 Gone),
//! `/rest/api/3/issue/{key}`, `/rest/api/3/myself`, and the JSM `servicedeskapi` request, comment
//! (read and add) and knowledge-base article endpoints with their `start`/`limit` envelope.
//!
//! JQL understood: `project = X`, `key = X`, `updated >=|>|<=|< "yyyy/MM/dd HH:mm"`, `text ~ "q"`
//! joined by `AND`, and `ORDER BY updated|created|key [ASC|DESC]`. A query without any restriction
//! is rejected as unbounded. Dates in JQL are UTC (the fake's user profile time zone).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::{
    QueryParams, Rng, atlassian_rate_limited, basic_auth_ok, json_reply, now_ms, parse_date_minute,
    rfc3339_ms, utc_ms,
};
use crate::control::{self, Control, Mutate, RateLimitBody};
use crate::server::{self, Core, FakeState, RunningFake};

/// Phrase planted in exactly three request descriptions and two knowledge-base articles.
pub const PLANTED_PHRASE: &str = "jira planted canary phrase";
const FIRST_ISSUE_ID: u64 = 10_001;
const FIRST_COMMENT_ID: u64 = 50_001;
const FIRST_PAGE_ID: u64 = 900_001;
const STATUSES: [(&str, &str); 4] = [
    ("Waiting for support", "new"),
    ("In Progress", "indeterminate"),
    ("Waiting for customer", "indeterminate"),
    ("Resolved", "done"),
];
#[rustfmt::skip]
const VOCAB: &[&str] = &[
    "laptop", "printer", "vpn", "password", "reset", "access", "email", "license", "monitor",
    "network", "invoice", "onboarding", "badge", "calendar", "wifi", "drive", "backup", "update",
    "slow", "broken", "request", "install", "account", "locked", "office", "phone", "headset",
];
const USERS: [(&str, &str); 5] = [
    ("557058:aaaa0001", "Ada Agent"),
    ("557058:bbbb0002", "Ben Customer"),
    ("557058:cccc0003", "Cleo Customer"),
    ("557058:dddd0004", "Dan Agent"),
    ("557058:eeee0005", "Eve Customer"),
];

#[derive(Clone, Debug)]
pub struct JiraOptions {
    /// Account email expected in HTTP Basic auth.
    pub email: String,
    pub api_token: String,
    /// Project (and service desk) key of every request.
    pub project: String,
    pub requests: usize,
    pub articles: usize,
    pub seed: u64,
    /// Answer every N-th upstream request with 429 + Retry-After.
    pub rate_limit_every: Option<u64>,
}

impl Default for JiraOptions {
    fn default() -> Self {
        JiraOptions {
            email: "demo@example.com".into(),
            api_token: "demo-jira-token".into(),
            project: "SD".into(),
            requests: 200,
            articles: 30,
            seed: 13,
            rate_limit_every: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraTruthComment {
    pub id: u64,
    pub body: String,
    pub public: bool,
    pub author_account_id: String,
    /// Jira style: `2026-01-02T03:04:05.000+0000`.
    pub created: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraTruthRequest {
    pub id: u64,
    pub key: String,
    pub summary: String,
    /// Plain text of the ADF description: paragraphs joined by a blank line.
    pub description: String,
    pub status: String,
    pub reporter_account_id: String,
    pub created: String,
    pub updated: String,
    /// Oldest first.
    pub comments: Vec<JiraTruthComment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraTruthArticle {
    pub page_id: u64,
    pub space_key: String,
    pub title: String,
    pub excerpt: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraTruth {
    /// By ascending issue id.
    pub requests: Vec<JiraTruthRequest>,
    /// By ascending page id.
    pub articles: Vec<JiraTruthArticle>,
}

/// Body of `POST /_fake/mutate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JiraMutation {
    /// Requests whose summary and status change.
    pub update: usize,
    pub create: usize,
    /// Requests that get one more comment.
    pub comment: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JiraMutationReport {
    pub updated: Vec<String>,
    pub created: Vec<String>,
    pub commented: Vec<String>,
}

#[derive(Clone, Debug)]
struct Comment {
    id: u64,
    body: String,
    public: bool,
    author: usize,
    created_ms: i64,
}

#[derive(Clone, Debug)]
struct Issue {
    id: u64,
    key: String,
    summary: String,
    paragraphs: Vec<String>,
    status: usize,
    reporter: usize,
    created_ms: i64,
    updated_ms: i64,
    comments: Vec<Comment>,
}

impl Issue {
    fn description(&self) -> String {
        self.paragraphs.join("\n\n")
    }
    fn words(&self) -> String {
        format!("{} {}", self.summary, self.description()).to_lowercase()
    }
}

#[derive(Clone, Debug)]
struct Article {
    page_id: u64,
    title: String,
    excerpt: String,
}

struct Data {
    project: String,
    issues: Vec<Issue>,
    articles: Vec<Article>,
    rng: Rng,
    last_ms: i64,
    next_comment_id: u64,
}

/// Shared state of a running Jira fake.
pub struct Jira {
    core: Core,
    email: String,
    api_token: String,
    base_url: String,
    data: Mutex<Data>,
}

impl FakeState for Jira {
    fn core(&self) -> &Core {
        &self.core
    }
}

// ---- Data ---------------------------------------------------------------------------------------

/// A capitalized sentence of `min + below(extra)` words ending with a period.
fn sentence(rng: &mut Rng, min: u64, extra: u64) -> String {
    let words = min + rng.below(extra.max(1));
    let mut s: Vec<&str> = (0..words).map(|_| rng.pick(VOCAB)).collect();
    let first = s[0].to_owned();
    let cap = first[..1].to_uppercase() + &first[1..];
    s[0] = &cap;
    format!("{}.", s.join(" "))
}

fn generate(opts: &JiraOptions) -> Data {
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
        issues.push(Issue {
            id: FIRST_ISSUE_ID + i as u64,
            key: format!("{}-{}", opts.project, i + 1),
            summary: sentence(&mut rng, 3, 4).trim_end_matches('.').into(),
            paragraphs,
            status: rng.below(STATUSES.len() as u64) as usize,
            reporter: 1 + rng.below(USERS.len() as u64 - 1) as usize,
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
    fn tick(&mut self) -> i64 {
        self.last_ms = now_ms().max(self.last_ms + 1);
        self.last_ms
    }

    fn add_comment(&mut self, idx: usize, body: String, public: bool, author: usize) -> Comment {
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

    fn mutate(&mut self, m: JiraMutation) -> JiraMutationReport {
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

    fn find(&self, id_or_key: &str) -> Option<usize> {
        self.issues
            .iter()
            .position(|i| i.key.eq_ignore_ascii_case(id_or_key) || i.id.to_string() == id_or_key)
    }
}

// ---- JSON shapes ----------------------------------------------------------------------------------

/// Jira's timestamp style: `2026-01-02T03:04:05.000+0000`.
pub fn jira_time(ms: i64) -> String {
    rfc3339_ms(ms).replace('Z', "+0000")
}

fn date_json(ms: i64) -> Value {
    let t = jira_time(ms);
    json!({"iso8601": t.replace(".000", ""), "jira": t, "friendly": t[..10], "epochMillis": ms})
}

fn user_json(i: usize) -> Value {
    let (id, name) = USERS[i];
    let email = format!(
        "{}@example.com",
        name.split(' ').next().unwrap_or("").to_lowercase()
    );
    json!({"accountId": id, "emailAddress": email, "displayName": name, "active": true,
           "timeZone": "UTC"})
}

/// Atlassian Document Format: one paragraph per text paragraph; the first word is bold.
fn adf(paragraphs: &[String]) -> Value {
    let content: Vec<Value> = paragraphs
        .iter()
        .map(|p| {
            let (first, rest) = p.split_once(' ').unwrap_or((p, ""));
            let mut nodes =
                vec![json!({"type": "text", "text": first, "marks": [{"type": "strong"}]})];
            if !rest.is_empty() {
                nodes.push(json!({"type": "text", "text": format!(" {rest}")}));
            }
            json!({"type": "paragraph", "content": nodes})
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": content})
}

fn jira_errors(status: StatusCode, message: &str) -> Response {
    json_reply(status, json!({"errorMessages": [message], "errors": {}}))
}

fn jsm_error(status: StatusCode, message: &str) -> Response {
    json_reply(
        status,
        json!({"errorMessage": message,
               "i18nErrorMessage": {"i18nKey": "sd.fake.error", "parameters": []}}),
    )
}

fn no_request() -> Response {
    jsm_error(
        StatusCode::NOT_FOUND,
        "The request either does not exist or you do not have permission to view it.",
    )
}

impl Jira {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn issue_json(&self, i: &Issue, fields: &[String]) -> Value {
        let all = fields.iter().any(|f| f == "*all" || f == "*navigable");
        let want = |f: &str| all || fields.iter().any(|x| x == f);
        let mut out = serde_json::Map::new();
        let (status, category) = STATUSES[i.status];
        let mut put = |name: &str, v: Value| {
            if want(name) {
                out.insert(name.into(), v);
            }
        };
        put("summary", json!(i.summary));
        put("description", adf(&i.paragraphs));
        put(
            "status",
            json!({"name": status, "statusCategory": {"key": category}}),
        );
        put("updated", json!(jira_time(i.updated_ms)));
        put("created", json!(jira_time(i.created_ms)));
        put("reporter", user_json(i.reporter));
        put(
            "issuetype",
            json!({"id": "10100", "name": "Service Request"}),
        );
        put("project", json!({"key": i.key.split('-').next()}));
        json!({"id": i.id.to_string(), "key": i.key,
               "self": format!("{}/rest/api/3/issue/{}", self.base_url, i.id), "fields": out})
    }

    fn request_json(&self, i: &Issue) -> Value {
        let (status, category) = STATUSES[i.status];
        json!({
            "issueId": i.id.to_string(), "issueKey": i.key, "requestTypeId": "11",
            "serviceDeskId": "1", "createdDate": date_json(i.created_ms),
            "reporter": user_json(i.reporter),
            "requestFieldValues": [
                {"fieldId": "summary", "label": "Summary", "value": i.summary},
                {"fieldId": "description", "label": "Description", "value": i.description()}
            ],
            "currentStatus": {"status": status, "statusCategory": category.to_uppercase(),
                              "statusDate": date_json(i.updated_ms)},
            "_links": {"jiraRest": format!("{}/rest/api/2/issue/{}", self.base_url, i.id),
                       "web": format!("{}/servicedesk/customer/portal/1/{}", self.base_url, i.key),
                       "self": format!("{}/rest/servicedeskapi/request/{}", self.base_url, i.id)}
        })
    }

    fn comment_json(&self, i: &Issue, c: &Comment) -> Value {
        json!({"id": c.id.to_string(), "body": c.body, "public": c.public,
               "author": user_json(c.author), "created": date_json(c.created_ms),
               "_links": {"self": format!("{}/rest/servicedeskapi/request/{}/comment/{}",
                                          self.base_url, i.id, c.id)}})
    }

    fn truth(&self) -> JiraTruth {
        let d = self.data();
        let requests = d
            .issues
            .iter()
            .map(|i| JiraTruthRequest {
                id: i.id,
                key: i.key.clone(),
                summary: i.summary.clone(),
                description: i.description(),
                status: STATUSES[i.status].0.into(),
                reporter_account_id: USERS[i.reporter].0.into(),
                created: jira_time(i.created_ms),
                updated: jira_time(i.updated_ms),
                comments: i
                    .comments
                    .iter()
                    .map(|c| JiraTruthComment {
                        id: c.id,
                        body: c.body.clone(),
                        public: c.public,
                        author_account_id: USERS[c.author].0.into(),
                        created: jira_time(c.created_ms),
                    })
                    .collect(),
            })
            .collect();
        let articles = d
            .articles
            .iter()
            .map(|a| JiraTruthArticle {
                page_id: a.page_id,
                space_key: "KB".into(),
                title: a.title.clone(),
                excerpt: a.excerpt.clone(),
            })
            .collect();
        JiraTruth { requests, articles }
    }
}

// ---- JQL ----------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Jql {
    project: Option<String>,
    key: Option<String>,
    /// (operator, epoch ms)
    updated: Vec<(String, i64)>,
    text: Option<String>,
    order: Option<(String, bool)>,
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(s);
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// Splits `s` at case-insensitive ` {word} ` outside double quotes.
fn split_word<'a>(s: &'a str, word: &str) -> Vec<&'a str> {
    let (lower, pat) = (s.to_lowercase(), format!(" {word} "));
    let (mut out, mut start, mut quoted, mut i) = (Vec::new(), 0, false, 0);
    let bytes = s.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' => quoted = !quoted,
            _ if !quoted && lower.len() == s.len() && lower[i..].starts_with(&pat) => {
                out.push(&s[start..i]);
                i += pat.len();
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

fn parse_jql(jql: &str) -> Result<Jql, String> {
    let padded = format!(" {} ", jql.trim());
    let parts = split_word(&padded, "order by");
    let mut q = Jql::default();
    if let Some(order) = parts.get(1) {
        let mut w = order.split_whitespace();
        let field = w.next().ok_or("Expecting a field name after 'ORDER BY'.")?;
        let desc = w.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        let field = field.to_lowercase();
        if !["updated", "created", "key"].contains(&field.as_str()) {
            return Err(format!("Not able to sort using field '{field}'."));
        }
        q.order = Some((field, desc));
    }
    let clause = parts[0].trim();
    if clause.is_empty() {
        return Ok(q);
    }
    for cond in split_word(&format!(" {clause} "), "and") {
        let cond = cond.trim();
        let op = [">=", "<=", "~", "=", ">", "<"]
            .into_iter()
            .find(|op| cond.contains(op))
            .ok_or_else(|| format!("Error in the JQL Query: cannot parse '{cond}'."))?;
        let (field, value) = cond.split_once(op).unwrap_or_default();
        let (field, value) = (field.trim().to_lowercase(), unquote(value));
        match (field.as_str(), op) {
            ("project", "=") => q.project = Some(value),
            ("key" | "issuekey", "=") => q.key = Some(value),
            ("text", "~") => q.text = Some(value.to_lowercase()),
            ("updated", ">=" | ">" | "<=" | "<") => {
                let ms = parse_date_minute(&value).ok_or_else(|| {
                    format!("Date value '{value}' for field 'updated' is invalid.")
                })?;
                q.updated.push((op.into(), ms));
            }
            _ => {
                return Err(format!(
                    "Field '{field}' does not exist or you do not have permission to view it."
                ));
            }
        }
    }
    Ok(q)
}

impl Jql {
    fn bounded(&self) -> bool {
        self.project.is_some()
            || self.key.is_some()
            || self.text.is_some()
            || !self.updated.is_empty()
    }
    fn matches(&self, i: &Issue) -> bool {
        let project = i.key.split('-').next().unwrap_or("");
        self.project
            .as_ref()
            .is_none_or(|p| p.eq_ignore_ascii_case(project))
            && self
                .key
                .as_ref()
                .is_none_or(|k| k.eq_ignore_ascii_case(&i.key))
            && self.updated.iter().all(|(op, t)| match op.as_str() {
                ">=" => i.updated_ms >= *t,
                ">" => i.updated_ms > *t,
                "<=" => i.updated_ms <= *t,
                _ => i.updated_ms < *t,
            })
            && self.text.as_ref().is_none_or(|t| {
                let words = i.words();
                let words: Vec<&str> = words
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .collect();
                t.split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .all(|w| words.contains(&w))
            })
    }
    /// Sort key of an issue; paging tokens hold the last key returned (keyset paging, stable
    /// under concurrent updates).
    fn sort_key(&self, i: &Issue) -> (i64, u64) {
        match self.order.as_ref().map(|(f, _)| f.as_str()) {
            Some("updated") => (i.updated_ms, i.id),
            Some("created") => (i.created_ms, i.id),
            _ => (0, i.id),
        }
    }
    fn desc(&self) -> bool {
        self.order.as_ref().is_some_and(|(_, d)| *d)
    }
}

fn encode_token(k: (i64, u64)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", k.0, k.1))
}

fn decode_token(t: &str) -> Option<(i64, u64)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(t).ok()?).ok()?;
    let (a, b) = raw.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn count(q: &QueryParams, key: &str, default: usize, max: usize) -> Result<usize, String> {
    match q.one(key) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map(|n| n.min(max))
            .map_err(|_| format!("'{key}' must be a non-negative integer, got '{v}'")),
    }
}

// ---- Upstream handlers ----------------------------------------------------------------------------

async fn search_jql(State(j): State<Arc<Jira>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let jql = match parse_jql(q.one("jql").unwrap_or("")) {
        Ok(jql) => jql,
        Err(e) => return jira_errors(StatusCode::BAD_REQUEST, &e),
    };
    if !jql.bounded() {
        return jira_errors(
            StatusCode::BAD_REQUEST,
            "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
        );
    }
    let max = match count(&q, "maxResults", 50, 100) {
        Ok(0) => 50,
        Ok(n) => n,
        Err(e) => return jira_errors(StatusCode::BAD_REQUEST, &e),
    };
    let after = match q.one("nextPageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match decode_token(t) {
            Some(k) => Some(k),
            None => return jira_errors(StatusCode::BAD_REQUEST, "Invalid nextPageToken."),
        },
    };
    let fields = q.list("fields");
    let d = j.data();
    let mut hits: Vec<&Issue> = d.issues.iter().filter(|i| jql.matches(i)).collect();
    hits.sort_by_key(|i| jql.sort_key(i));
    if jql.desc() {
        hits.reverse();
    }
    let start = after.map_or(0, |k| {
        hits.iter()
            .position(|i| {
                let s = jql.sort_key(i);
                if jql.desc() { s < k } else { s > k }
            })
            .unwrap_or(hits.len())
    });
    let page = &hits[start..(start + max).min(hits.len())];
    let is_last = start + page.len() >= hits.len();
    let issues: Vec<Value> = page.iter().map(|i| j.issue_json(i, &fields)).collect();
    let mut body = json!({"issues": issues, "isLast": is_last});
    if let (false, Some(last)) = (is_last, page.last()) {
        body["nextPageToken"] = json!(encode_token(jql.sort_key(last)));
    }
    Json(body).into_response()
}

async fn old_search() -> Response {
    jira_errors(
        StatusCode::GONE,
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API.",
    )
}

async fn get_issue(
    State(j): State<Arc<Jira>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let mut fields = q.list("fields");
    if fields.is_empty() {
        fields.push("*all".into());
    }
    let d = j.data();
    match d.find(&key) {
        Some(i) => Json(j.issue_json(&d.issues[i], &fields)).into_response(),
        None => jira_errors(
            StatusCode::NOT_FOUND,
            "Issue does not exist or you do not have permission to see it.",
        ),
    }
}

async fn myself(State(j): State<Arc<Jira>>) -> Response {
    let mut u = user_json(0);
    u["emailAddress"] = json!(j.email);
    Json(u).into_response()
}

/// The JSM paged envelope over `items`.
fn jsm_page(q: &QueryParams, self_url: &str, items: Vec<Value>) -> Response {
    let (start, limit) = match (count(q, "start", 0, usize::MAX), count(q, "limit", 50, 100)) {
        (Ok(s), Ok(l)) => (s, l.max(1)),
        (Err(e), _) | (_, Err(e)) => return jsm_error(StatusCode::BAD_REQUEST, &e),
    };
    let total = items.len();
    let values: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let last = start + values.len() >= total;
    let mut links = json!({"base": self_url.split("/rest/").next(), "context": "",
                           "self": self_url});
    if !last {
        links["next"] = json!(format!("{self_url}?start={}&limit={limit}", start + limit));
    }
    Json(
        json!({"size": values.len(), "start": start, "limit": limit, "isLastPage": last,
                "values": values, "_links": links}),
    )
    .into_response()
}

async fn list_requests(State(j): State<Arc<Jira>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let term = q.one("searchTerm").map(str::to_lowercase);
    let items = {
        let d = j.data();
        let hits = d
            .issues
            .iter()
            .filter(|i| term.as_ref().is_none_or(|t| i.words().contains(t)));
        hits.map(|i| j.request_json(i)).collect()
    };
    jsm_page(
        &q,
        &format!("{}/rest/servicedeskapi/request", j.base_url),
        items,
    )
}

async fn list_comments(
    State(j): State<Arc<Jira>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let flag = |k: &str| q.one(k).is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let (public, internal) = (flag("public"), flag("internal"));
    let items = {
        let d = j.data();
        let Some(idx) = d.find(&key) else {
            return no_request();
        };
        let i = &d.issues[idx];
        let shown = i
            .comments
            .iter()
            .filter(|c| if c.public { public } else { internal });
        shown.map(|c| j.comment_json(i, c)).collect()
    };
    let url = format!("{}/rest/servicedeskapi/request/{key}/comment", j.base_url);
    jsm_page(&q, &url, items)
}

async fn add_comment(State(j): State<Arc<Jira>>, Path(key): Path<String>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    struct In {
        body: Option<String>,
        #[serde(default = "yes")]
        public: bool,
    }
    fn yes() -> bool {
        true
    }
    let input = match serde_json::from_slice::<In>(&body) {
        Ok(i) => i,
        Err(e) => return jsm_error(StatusCode::BAD_REQUEST, &format!("Invalid JSON: {e}")),
    };
    let Some(text) = input.body.filter(|b| !b.trim().is_empty()) else {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            "The comment body must not be empty.",
        );
    };
    let mut d = j.data();
    let Some(idx) = d.find(&key) else {
        return no_request();
    };
    let c = d.add_comment(idx, text, input.public, 0);
    (
        StatusCode::CREATED,
        Json(j.comment_json(&d.issues[idx], &c)),
    )
        .into_response()
}

async fn kb_articles(State(j): State<Arc<Jira>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let Some(query) = q.one("query").map(str::trim).filter(|s| !s.is_empty()) else {
        return jsm_error(StatusCode::BAD_REQUEST, "The query parameter is required.");
    };
    let words: Vec<String> = query
        .to_lowercase()
        .split_whitespace()
        .map(String::from)
        .collect();
    let items = {
        let d = j.data();
        let hits = d.articles.iter().filter(|a| {
            let text = format!("{} {}", a.title, a.excerpt).to_lowercase();
            words.iter().all(|w| w == "*" || text.contains(w.as_str()))
        });
        hits.map(|a| {
            json!({"title": a.title, "excerpt": a.excerpt,
                   "source": {"type": "confluence", "pageId": a.page_id.to_string(), "spaceKey": "KB"},
                   "content": {"iframeSrc": format!("{}/rest/servicedeskapi/knowledgebase/article/view/{}",
                                                   j.base_url, a.page_id)}})
        })
        .collect()
    };
    let url = format!("{}/rest/servicedeskapi/knowledgebase/article", j.base_url);
    jsm_page(&q, &url, items)
}

// ---- Gate, control routes, router ------------------------------------------------------------------

async fn gate(State(j): State<Arc<Jira>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    if j.core.record(&path) {
        return atlassian_rate_limited(1, "jira-quota-global-based");
    }
    if !basic_auth_ok(req.headers(), &j.email, &j.api_token) {
        let mut resp = jira_errors(
            StatusCode::UNAUTHORIZED,
            "Client must be authenticated to access this resource.",
        );
        crate::common::set_header(
            &mut resp,
            "www-authenticate",
            "Basic realm=\"protected-area\"",
        );
        return resp;
    }
    next.run(req).await
}

impl Control for Jira {
    type Truth = JiraTruth;
    fn ground_truth(&self) -> JiraTruth {
        self.truth()
    }
    fn configure(&self, body: &[u8]) -> Response {
        control::configure_rate_limit(&self.core, body, RateLimitBody::Strict)
    }
}

impl Mutate for Jira {
    type Mutation = JiraMutation;
    type Report = JiraMutationReport;
    const EXPECTED: &'static str = "{\"update\":N,\"create\":N,\"comment\":N}";
    fn apply_mutation(&self, m: JiraMutation) -> JiraMutationReport {
        self.data().mutate(m)
    }
}

fn router(state: Arc<Jira>) -> Router {
    Router::new()
        .route("/rest/api/3/search/jql", get(search_jql).post(search_jql))
        .route("/rest/api/3/search", get(old_search).post(old_search))
        .route("/rest/api/3/issue/{key}", get(get_issue))
        .route("/rest/api/3/myself", get(myself))
        .route("/rest/servicedeskapi/request", get(list_requests))
        .route(
            "/rest/servicedeskapi/request/{key}/comment",
            get(list_comments).post(add_comment),
        )
        .route(
            "/rest/servicedeskapi/knowledgebase/article",
            get(kb_articles),
        )
        .merge(control::routes_with_mutate::<Jira>())
        .fallback(|| async { jira_errors(StatusCode::NOT_FOUND, "Not found") })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Jira fake on `listen` (port 0 picks a free port).
pub async fn spawn_jira(
    listen: SocketAddr,
    opts: JiraOptions,
) -> std::io::Result<RunningFake<Jira>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let state = Arc::new(Jira {
        core: Core::new(opts.rate_limit_every),
        data: Mutex::new(generate(&opts)),
        email: opts.email,
        api_token: opts.api_token,
        base_url: base_url.clone(),
    });
    Ok(server::start(
        listener,
        base_url,
        state.clone(),
        router(state),
    ))
}

impl RunningFake<Jira> {
    /// Every request with its comments, and every article, as they are now.
    pub fn truth(&self) -> JiraTruth {
        self.state.truth()
    }
    pub fn mutate(&self, m: JiraMutation) -> JiraMutationReport {
        self.state.data().mutate(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::http;

    const AUTH: Option<(&str, &str)> = Some(("demo@example.com", "demo-jira-token"));

    async fn fake() -> RunningFake<Jira> {
        spawn_jira("127.0.0.1:0".parse().unwrap(), JiraOptions::default())
            .await
            .unwrap()
    }

    fn enc(s: &str) -> String {
        form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[tokio::test]
    async fn jql_paging_covers_every_issue_once_in_update_order() {
        let f = fake().await;
        let jql = enc("updated >= \"1970/01/01 00:00\" ORDER BY updated ASC");
        let (mut keys, mut token, mut last) = (Vec::new(), String::new(), 0);
        loop {
            let path = format!(
                "/rest/api/3/search/jql?jql={jql}&maxResults=37&fields=updated&nextPageToken={token}"
            );
            let r = http(f.addr, "GET", &path, AUTH, None).await.unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            let v = r.json();
            for i in v["issues"].as_array().unwrap() {
                let u = i["fields"]["updated"].as_str().unwrap().to_owned();
                assert!(u.ends_with("+0000"));
                keys.push(i["key"].as_str().unwrap().to_owned());
                last += 1;
            }
            if v["isLast"] == true {
                assert!(v.get("nextPageToken").is_none());
                break;
            }
            token = v["nextPageToken"].as_str().unwrap().to_owned();
        }
        assert_eq!(last, 200);
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 200);
        // Only `id` by default; unbounded JQL, the old endpoint and bad auth are refused.
        let r = http(
            f.addr,
            "GET",
            &format!("/rest/api/3/search/jql?jql={}", enc("key = SD-4")),
            AUTH,
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.json()["issues"][0]["fields"], json!({}));
        let r = http(
            f.addr,
            "GET",
            &format!("/rest/api/3/search/jql?jql={}", enc("ORDER BY updated ASC")),
            AUTH,
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 400);
        assert!(r.body.contains("Unbounded JQL"));
        let r = http(
            f.addr,
            "GET",
            "/rest/api/3/search?jql=project%3DSD",
            AUTH,
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 410);
        let r = http(
            f.addr,
            "GET",
            "/rest/api/3/myself",
            Some(("demo@example.com", "x")),
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 401);
        let r = http(
            f.addr,
            "GET",
            &format!(
                "/rest/api/3/search/jql?jql={}&fields=summary",
                enc(&format!("text ~ \"{PLANTED_PHRASE}\""))
            ),
            AUTH,
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.json()["issues"].as_array().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn jsm_requests_comments_and_articles() {
        let f = fake().await;
        let r = http(
            f.addr,
            "GET",
            "/rest/servicedeskapi/request?start=190&limit=50",
            AUTH,
            None,
        )
        .await
        .unwrap();
        let v = r.json();
        assert_eq!(
            (v["size"].as_u64(), v["isLastPage"].as_bool()),
            (Some(10), Some(true))
        );
        assert_eq!(v["values"][0]["issueKey"], "SD-191");
        let r = http(
            f.addr,
            "POST",
            "/rest/servicedeskapi/request/SD-5/comment",
            AUTH,
            Some(r#"{"body":"hello there","public":false}"#),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
        let t = f.truth();
        let c = t.requests[4].comments.last().unwrap();
        assert_eq!((c.body.as_str(), c.public), ("hello there", false));
        let r = http(
            f.addr,
            "GET",
            "/rest/servicedeskapi/request/SD-5/comment?public=false",
            AUTH,
            None,
        )
        .await
        .unwrap();
        assert!(
            r.json()["values"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["public"] == false)
        );
        let r = http(
            f.addr,
            "GET",
            "/rest/servicedeskapi/request/SD-999/comment",
            AUTH,
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 404);
        assert!(r.json()["errorMessage"].is_string());
        let r = http(
            f.addr,
            "GET",
            "/rest/servicedeskapi/knowledgebase/article",
            AUTH,
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 400);
        let r = http(
            f.addr,
            "GET",
            "/rest/servicedeskapi/knowledgebase/article?query=a&limit=100",
            AUTH,
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.json()["size"], 30);
        f.set_rate_limit_every(Some(1));
        let r = http(f.addr, "GET", "/rest/api/3/myself", AUTH, None)
            .await
            .unwrap();
        assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    }
}
