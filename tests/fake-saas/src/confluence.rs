//! Confluence Cloud fake: REST v2 pages/spaces, v1 CQL search and permission check (API-NOTES.md).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::{
    QueryParams, Rng, atlassian_rate_limited, basic_auth_ok, html_to_text, json_reply, now_ms,
    rfc3339_ms, set_header, utc_ms,
};
use crate::control::{self, Control, Mutate, RateLimitBody};
use crate::server::{self, Core, FakeState, RunningFake};

mod cql;
mod permissions;
#[cfg(test)]
mod tests;

pub use permissions::{Group, ReadAccess, Restrict, SpaceRead, USER_EMAILS};

/// Phrase planted in exactly three seeded pages (never deleted by mutations).
pub const PLANTED_PHRASE: &str = "quarterly airlock review";

#[derive(Clone, Debug)]
pub struct ConfluenceOptions {
    pub email: String,
    pub api_token: String,
    pub pages: usize,
    pub spaces: usize,
    pub seed: u64,
    /// Every n-th upstream request answers 429 (off when `None`).
    pub rate_limit_every: Option<u64>,
}

impl Default for ConfluenceOptions {
    fn default() -> Self {
        ConfluenceOptions {
            email: "demo@example.com".into(),
            api_token: "demo-confluence-token".into(),
            pages: 120,
            spaces: 3,
            seed: 7,
            rate_limit_every: None,
        }
    }
}

/// Ground truth of one page, as a test should expect to see it through the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruthPage {
    pub id: String,
    pub status: String,
    pub title: String,
    pub space_id: String,
    pub space_key: String,
    pub parent_id: Option<String>,
    pub author_id: String,
    pub created_at: String,
    pub version_number: u32,
    pub version_created_at: String,
    pub body_storage: String,
    /// Tags stripped, entities decoded, whitespace collapsed to single spaces.
    pub body_text: String,
    /// Account ids the page's own read restriction names (with `read_restricted_groups`;
    /// both empty: the page itself is unrestricted).
    pub read_restricted_to: Vec<String>,
    /// Group names the page's own read restriction names.
    #[serde(default)]
    pub read_restricted_groups: Vec<String>,
    /// The seeded users who may read the page: they read its space and pass the read
    /// restrictions of the page and of every ancestor.
    #[serde(default)]
    pub readers: Vec<String>,
    /// Account ids allowed to update (and delete); empty means everyone who can read.
    pub update_restricted_to: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruthSpace {
    pub id: String,
    pub key: String,
    pub name: String,
    pub homepage_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfluenceTruth {
    pub spaces: Vec<TruthSpace>,
    /// Groups and their members.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Pages with status "current", by ascending id.
    pub pages: Vec<TruthPage>,
    /// Pages with status "trashed", by ascending id.
    pub trashed: Vec<TruthPage>,
}

/// Body of `POST /_fake/mutate`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mutation {
    pub update: usize,
    pub delete: usize,
    pub create: usize,
    /// Page read restrictions to replace (no version bump, as in Confluence).
    pub restrict: Vec<Restrict>,
    /// Spaces whose read permissions to replace.
    pub space_read: Vec<SpaceRead>,
}

/// Page ids touched by a mutation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationReport {
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    pub created: Vec<String>,
    /// Pages whose read restriction was replaced, spaces (keys) whose read permissions were.
    #[serde(default)]
    pub restricted: Vec<String>,
    #[serde(default)]
    pub space_read: Vec<String>,
}

#[derive(Clone, Debug)]
struct Page {
    id: u64,
    trashed: bool,
    title: String,
    space: usize,
    parent_id: Option<u64>,
    author: &'static str,
    created_ms: i64,
    version: u32,
    version_ms: i64,
    version_author: &'static str,
    body: String,
    text: String,
    restricted: Vec<String>,
    restricted_groups: Vec<String>,
    protected: bool,
}

struct Space {
    id: u64,
    key: String,
    name: String,
    created_ms: i64,
    homepage_id: Option<u64>,
    grants: Vec<permissions::Grant>,
}

struct Data {
    spaces: Vec<Space>,
    pages: Vec<Page>,
    groups: Vec<Group>,
    rng: Rng,
    last_ms: i64,
}

/// Shared state of a running Confluence fake.
pub struct Confluence {
    core: Core,
    email: String,
    api_token: String,
    base_url: String,
    data: Mutex<Data>,
}

impl FakeState for Confluence {
    fn core(&self) -> &Core {
        &self.core
    }
}

#[rustfmt::skip]
const VOCAB: &[&str] = &[
    "gateway", "ledger", "invoice", "rollout", "backlog", "runbook", "latency", "capacity", "onboarding", "payroll",
    "vendor", "contract", "migration", "incident", "postmortem", "budget", "forecast", "roadmap", "sprint",
    "deployment", "cluster", "firewall", "certificate", "escalation", "customer", "renewal", "pipeline", "dashboard",
    "metrics", "compliance", "policy", "training", "handbook", "benefits", "hiring", "laptop", "office", "travel",
    "expense", "security", "backup", "database", "schema", "endpoint", "integration", "webhook", "retention",
    "archive", "storage", "network", "printer", "support", "ticket", "warranty", "license", "partner", "pricing",
    "launch", "campaign",
];
#[rustfmt::skip]
const NOUNS: &[&str] = &[
    "Guide", "Checklist", "Notes", "Plan", "Overview", "FAQ", "Runbook", "Playbook", "Summary", "Proposal",
];
#[rustfmt::skip]
const SPACES: &[(&str, &str)] = &[
    ("ENG", "Engineering"), ("OPS", "Operations"), ("HR", "People Team"), ("FIN", "Finance"), ("SALES", "Sales"),
    ("SUP", "Support"), ("MKT", "Marketing"), ("LEGAL", "Legal"),
];
/// Atlassian account ids of the seeded users (authors and restriction targets).
#[rustfmt::skip]
pub const ACCOUNT_IDS: &[&str] = &[
    "5b10a2844c20165700ede21g", "5b10ac8d82e05b22cc7d4ef5", "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077",
    "61f2a9b3c4d5e6f7a8b9c0d1", "70121:0e8d1c2b-3a4f-4e5d-9c8b-7a6f5e4d3c2b", "63d9e0f1a2b3c4d5e6f7a8b9",
];

fn words(rng: &mut Rng, n: u64) -> String {
    let n = 3 + rng.below(n);
    (0..n)
        .map(|_| rng.pick(VOCAB))
        .collect::<Vec<_>>()
        .join(" ")
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn gen_body(rng: &mut Rng, planted: bool) -> String {
    let mut blocks = vec![format!("<h2>{}</h2>", capitalized(&words(rng, 2)))];
    for _ in 0..2 + rng.below(3) {
        blocks.push(match rng.below(5) {
            0 | 1 => format!("<p>{}.</p>", capitalized(&words(rng, 10))),
            2 => format!("<ul><li><p>{}</p></li><li><p>{}</p></li></ul>", words(rng, 4), words(rng, 4)),
            3 => format!(
                "<ac:structured-macro ac:name=\"info\" ac:schema-version=\"1\" ac:macro-id=\"{:08x}\"><ac:rich-text-body><p>{}</p></ac:rich-text-body></ac:structured-macro>",
                rng.next_u64() as u32,
                capitalized(&words(rng, 6))
            ),
            _ => format!("<p>{} &amp; {} &lt;draft&gt;</p>", capitalized(rng.pick(VOCAB)), words(rng, 5)),
        });
    }
    if planted {
        let at = 1 + rng.below(blocks.len() as u64) as usize;
        blocks.insert(
            at,
            format!("<p>Action items from the {PLANTED_PHRASE} are tracked here.</p>"),
        );
    }
    blocks.concat()
}

/// Storage XHTML to plain text: tags become spaces, entities are decoded, whitespace collapses.
pub fn storage_to_text(xhtml: &str) -> String {
    html_to_text(xhtml)
}

fn new_page(
    rng: &mut Rng,
    id: u64,
    space: usize,
    parent_id: Option<u64>,
    title: String,
    created_ms: i64,
    planted: bool,
) -> Page {
    let body = gen_body(rng, planted);
    let restricted = if rng.chance(1, 6) {
        let n = 1 + rng.below(2) as usize;
        (0..n)
            .map(|i| ACCOUNT_IDS[(id as usize + i * 3) % ACCOUNT_IDS.len()].to_owned())
            .collect()
    } else {
        Vec::new()
    };
    let author = rng.pick(ACCOUNT_IDS);
    let text = storage_to_text(&body);
    Page {
        id,
        trashed: false,
        title,
        space,
        parent_id,
        author,
        created_ms,
        version: 1,
        version_ms: created_ms,
        version_author: author,
        body,
        text,
        restricted,
        restricted_groups: Vec::new(),
        protected: planted,
    }
}

fn generate(opts: &ConfluenceOptions) -> Data {
    let mut rng = Rng::new(opts.seed);
    let n_spaces = opts.spaces.max(1);
    // Permissions are not drawn from the generator, so the pages stay what they were.
    let groups = permissions::seed_groups();
    let grants = permissions::seed_grants(&groups);
    let base = utc_ms(2025, 1, 6, 9, 0);
    let mut spaces: Vec<Space> = (0..n_spaces)
        .map(|i| {
            let (key, name) = SPACES
                .get(i)
                .map_or((format!("SP{i}"), format!("Space {i}")), |(k, n)| {
                    ((*k).into(), (*n).into())
                });
            let created_ms =
                base - (n_spaces - i) as i64 * 86_400_000 * 7 + rng.below(3_600_000) as i64;
            Space {
                id: 131_073 + i as u64 * 65_536,
                key,
                name,
                created_ms,
                homepage_id: None,
                grants: grants.clone(),
            }
        })
        .collect();
    let n = opts.pages;
    let mut planted = HashSet::new();
    while planted.len() < 3.min(n.saturating_sub(n_spaces)) {
        planted.insert(n_spaces + rng.below((n - n_spaces) as u64) as usize);
    }
    let step = (180 * 86_400_000 / n.max(1) as i64).max(4);
    let (mut pages, mut used_ms) = (Vec::<Page>::with_capacity(n), HashSet::new());
    for i in 0..n {
        let id = 1_000_000 + i as u64 * 4 + 1 + rng.below(3);
        let created = base + i as i64 * step + rng.below(step as u64 / 2) as i64;
        let page = if let Some(home_of) = spaces.get_mut(i) {
            home_of.homepage_id = Some(id);
            let title = format!("{} Home", home_of.name);
            new_page(&mut rng, id, i, None, title, created, false)
        } else {
            let space = rng.below(n_spaces as u64) as usize;
            let siblings: Vec<u64> = pages
                .iter()
                .filter(|p| p.space == space)
                .map(|p| p.id)
                .collect();
            let parent = siblings
                .get(rng.below(siblings.len().min(4) as u64) as usize)
                .copied();
            let title = format!(
                "{} {} {} {}",
                capitalized(rng.pick(VOCAB)),
                rng.pick(VOCAB),
                rng.pick(NOUNS),
                i + 1
            );
            new_page(
                &mut rng,
                id,
                space,
                parent,
                title,
                created,
                planted.contains(&i),
            )
        };
        pages.push(page);
        let p = pages.last_mut().expect("just pushed");
        p.protected |= i < n_spaces;
        if rng.chance(2, 3) {
            p.version = 2 + rng.below(4) as u32;
            p.version_ms = p.created_ms + 1 + rng.below(120 * 86_400_000) as i64;
            p.version_author = rng.pick(ACCOUNT_IDS);
        }
        while !used_ms.insert(p.version_ms) {
            p.version_ms += 1;
        }
    }
    let last_ms = used_ms.iter().copied().max().unwrap_or(base);
    Data {
        spaces,
        pages,
        groups,
        rng: Rng::new(opts.seed ^ 0xA1B2_C3D4),
        last_ms,
    }
}

impl Data {
    fn truth_page(&self, p: &Page) -> TruthPage {
        let space = &self.spaces[p.space];
        TruthPage {
            id: p.id.to_string(),
            status: status(p).into(),
            title: p.title.clone(),
            space_id: space.id.to_string(),
            space_key: space.key.clone(),
            parent_id: p.parent_id.map(|id| id.to_string()),
            author_id: p.author.into(),
            created_at: rfc3339_ms(p.created_ms),
            version_number: p.version,
            version_created_at: rfc3339_ms(p.version_ms),
            body_storage: p.body.clone(),
            body_text: p.text.clone(),
            read_restricted_to: p.restricted.clone(),
            read_restricted_groups: p.restricted_groups.clone(),
            readers: self.readers_of(p),
            update_restricted_to: update_restricted(p),
        }
    }

    fn truth(&self) -> ConfluenceTruth {
        let spaces = self.spaces.iter().map(|s| TruthSpace {
            id: s.id.to_string(),
            key: s.key.clone(),
            name: s.name.clone(),
            homepage_id: s.homepage_id.map(|id| id.to_string()),
        });
        let (trashed, current): (Vec<&Page>, Vec<&Page>) =
            self.pages.iter().partition(|p| p.trashed);
        ConfluenceTruth {
            spaces: spaces.collect(),
            groups: self.groups.clone(),
            pages: current.into_iter().map(|p| self.truth_page(p)).collect(),
            trashed: trashed.into_iter().map(|p| self.truth_page(p)).collect(),
        }
    }

    /// Modification times are wall-clock now (so they sort after every seeded time), strictly increasing.
    fn tick(&mut self) -> i64 {
        self.last_ms = now_ms().max(self.last_ms + 1);
        self.last_ms
    }

    /// Picks up to `n` distinct current pages that `ok` accepts.
    fn pick(&mut self, n: usize, ok: impl Fn(&Page) -> bool) -> Vec<usize> {
        let mut candidates: Vec<usize> = (0..self.pages.len())
            .filter(|&i| !self.pages[i].trashed && ok(&self.pages[i]))
            .collect();
        let mut chosen = Vec::new();
        while chosen.len() < n && !candidates.is_empty() {
            chosen.push(candidates.swap_remove(self.rng.below(candidates.len() as u64) as usize));
        }
        chosen.sort_unstable();
        chosen
    }

    fn mutate(&mut self, m: Mutation) -> MutationReport {
        let mut report = MutationReport::default();
        for i in self.pick(m.update, |_| true) {
            let ms = self.tick();
            let extra = capitalized(&words(&mut self.rng, 6));
            let author = self.rng.pick(ACCOUNT_IDS);
            let p = &mut self.pages[i];
            p.version += 1;
            p.version_ms = ms;
            p.version_author = author;
            let base_title = p
                .title
                .split(" (rev ")
                .next()
                .unwrap_or_default()
                .to_owned();
            p.title = format!("{base_title} (rev {})", p.version);
            p.body
                .push_str(&format!("<p>Revision {}: {extra}.</p>", p.version));
            p.text = storage_to_text(&p.body);
            report.updated.push(p.id.to_string());
        }
        for i in self.pick(m.delete, |p| !p.protected) {
            let ms = self.tick();
            let p = &mut self.pages[i];
            p.trashed = true;
            p.version += 1;
            p.version_ms = ms;
            report.deleted.push(p.id.to_string());
        }
        for _ in 0..m.create {
            let ms = self.tick();
            let id = self
                .pages
                .last()
                .map_or(1_000_001, |p| p.id + 1 + self.rng.below(3));
            let space = self.rng.below(self.spaces.len() as u64) as usize;
            let parent = self.spaces[space].homepage_id;
            let title = format!(
                "{} {} {} {id}",
                capitalized(self.rng.pick(VOCAB)),
                self.rng.pick(VOCAB),
                self.rng.pick(NOUNS)
            );
            let page = new_page(&mut self.rng, id, space, parent, title, ms, false);
            self.pages.push(page);
            report.created.push(id.to_string());
        }
        for r in &m.restrict {
            if self.restrict(r) {
                report.restricted.push(r.page.clone());
            }
        }
        for sr in &m.space_read {
            if self.set_space_read(sr) {
                report.space_read.push(sr.space.clone());
            }
        }
        report
    }
}

fn status(p: &Page) -> &'static str {
    if p.trashed { "trashed" } else { "current" }
}

impl Confluence {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wiki(&self) -> String {
        format!("{}/wiki", self.base_url)
    }

    fn page_links(&self, d: &Data, p: &Page) -> Value {
        let slug: String = p
            .title
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '+' })
            .collect();
        let le = p.id.to_le_bytes();
        let tiny =
            URL_SAFE_NO_PAD.encode(&le[..le.iter().rposition(|b| *b != 0).map_or(1, |i| i + 1)]);
        json!({
            "webui": format!("/spaces/{}/pages/{}/{slug}", d.spaces[p.space].key, p.id),
            "editui": format!("/pages/resumedraft.action?draftId={}", p.id),
            "tinyui": format!("/x/{tiny}"),
        })
    }

    fn page_json(&self, d: &Data, p: &Page, body: Option<&str>) -> Value {
        let mut v = json!({
            "id": p.id.to_string(),
            "status": status(p),
            "title": p.title,
            "spaceId": d.spaces[p.space].id.to_string(),
            "parentId": p.parent_id.map(|id| id.to_string()),
            "parentType": p.parent_id.map(|_| "page"),
            "position": null,
            "authorId": p.author,
            "ownerId": p.author,
            "lastOwnerId": null,
            "createdAt": rfc3339_ms(p.created_ms),
            "version": {"createdAt": rfc3339_ms(p.version_ms), "message": "", "number": p.version, "minorEdit": false, "authorId": p.version_author},
            "_links": self.page_links(d, p),
        });
        match body {
            Some("storage") => {
                v["body"] = json!({"storage": {"representation": "storage", "value": p.body}})
            }
            Some(_) => {
                let doc = json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": p.text}]}]});
                v["body"] = json!({"atlas_doc_format": {"representation": "atlas_doc_format", "value": doc.to_string()}});
            }
            None => {}
        }
        v
    }
}

/// v2 error envelope: `{"errors":[{"status","code","title","detail"}]}`.
fn v2_error(status: StatusCode, code: &str, title: impl Into<String>) -> Response {
    let title = title.into();
    json_reply(
        status,
        json!({"errors": [{"status": status.as_u16(), "code": code, "title": title, "detail": null}]}),
    )
}

fn bad_param(title: impl Into<String>) -> Response {
    v2_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST_PARAMETER", title)
}

/// v1 error envelope.
fn v1_error(status: StatusCode, message: impl Into<String>) -> Response {
    let data = json!({"authorized": status != StatusCode::FORBIDDEN, "valid": false, "errors": [], "successful": false});
    json_reply(
        status,
        json!({"statusCode": status.as_u16(), "data": data, "message": message.into()}),
    )
}

fn parse_limit(q: &QueryParams, default: u64, max: u64) -> Result<usize, String> {
    let Some(raw) = q.one("limit") else {
        return Ok(default as usize);
    };
    match raw.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n as usize),
        _ => Err(format!(
            "Provided value {{{raw}}} for 'limit' is not valid: it must be an integer between 1 and {max}"
        )),
    }
}

/// Keyset position of one item in a sort order; the cursor is this, base64url-encoded JSON.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Key {
    n: i64,
    t: String,
    i: u64,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    s: String,
    k: Key,
}

fn encode_cursor(sort: &str, k: Key) -> String {
    URL_SAFE_NO_PAD.encode(json!(Cursor { s: sort.into(), k }).to_string())
}

fn decode_cursor(raw: &str, sort: &str) -> Option<Key> {
    let c: Cursor =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).ok()?).ok()?;
    (c.s == sort).then_some(c.k)
}

fn sort_key(field: &str, p: &Page) -> Key {
    let (n, t) = match field {
        "created-date" => (p.created_ms, String::new()),
        "modified-date" => (p.version_ms, String::new()),
        "title" => (0, p.title.clone()),
        _ => (0, String::new()),
    };
    Key { n, t, i: p.id }
}

/// Replies with `results` plus `_links.next` and the same link in a `Link` header.
fn paged(c: &Confluence, results: Vec<Value>, next: Option<String>) -> Response {
    let mut links = json!({"base": c.wiki()});
    if let Some(n) = &next {
        links["next"] = json!(n);
    }
    let mut resp = Json(json!({"results": results, "_links": links})).into_response();
    if let Some(n) = next {
        set_header(&mut resp, "link", &format!("<{n}>; rel=\"next\""));
    }
    resp
}

const STATUSES: &[&str] = &["current", "archived", "deleted", "trashed", "draft"];

async fn list_pages(State(c): State<Arc<Confluence>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let limit = match parse_limit(&q, 25, 250) {
        Ok(l) => l,
        Err(e) => return bad_param(e),
    };
    let mut statuses = q.list("status");
    if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(&s.as_str())) {
        return bad_param(format!("Invalid value '{bad}' for 'status'"));
    }
    if statuses.is_empty() {
        statuses.push("current".into());
    }
    let Ok(space_ids) = q
        .list("space-id")
        .iter()
        .map(|s| s.parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
    else {
        return bad_param("'space-id' must be a list of numeric ids");
    };
    let body = q.one("body-format");
    if body.is_some_and(|b| b != "storage" && b != "atlas_doc_format") {
        return bad_param("'body-format' must be one of storage, atlas_doc_format");
    }
    let sort = q.one("sort").unwrap_or("id");
    let (desc, field) = sort.strip_prefix('-').map_or((false, sort), |f| (true, f));
    if !["id", "created-date", "modified-date", "title"].contains(&field) {
        return bad_param(format!("Invalid value '{sort}' for 'sort'"));
    }
    let after = match q.one("cursor").map(|cur| decode_cursor(cur, sort)) {
        Some(None) => return bad_param("Invalid cursor"),
        Some(k) => k,
        None => None,
    };
    let title = q.one("title");
    let d = c.data();
    let mut items: Vec<(Key, &Page)> = d
        .pages
        .iter()
        .filter(|p| statuses.iter().any(|s| s == status(p)))
        .filter(|p| space_ids.is_empty() || space_ids.contains(&d.spaces[p.space].id))
        .filter(|p| title.is_none_or(|t| p.title == t))
        .map(|p| (sort_key(field, p), p))
        .filter(|(k, _)| {
            after
                .as_ref()
                .is_none_or(|a| if desc { k < a } else { k > a })
        })
        .collect();
    items.sort_by(|a, b| if desc { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
    let next = (items.len() > limit).then(|| {
        let cursor = encode_cursor(sort, items[limit - 1].0.clone());
        format!(
            "/wiki/api/v2/pages?{}",
            q.encode_with(
                &["cursor", "limit"],
                &[("limit", &limit.to_string()), ("cursor", &cursor)]
            )
        )
    });
    let results = items
        .iter()
        .take(limit)
        .map(|(_, p)| c.page_json(&d, p, body))
        .collect();
    paged(&c, results, next)
}

async fn get_page(
    State(c): State<Arc<Confluence>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let Ok(id) = id.parse::<u64>() else {
        return bad_param("'id' must be a numeric page id");
    };
    let body = q.one("body-format");
    if body.is_some_and(|b| b != "storage" && b != "atlas_doc_format") {
        return bad_param("'body-format' must be one of storage, atlas_doc_format");
    }
    let statuses = q.list("status");
    let d = c.data();
    match d.pages.iter().find(|p| p.id == id) {
        Some(p) if !p.trashed || statuses.iter().any(|s| s == "trashed") => {
            Json(c.page_json(&d, p, body)).into_response()
        }
        _ => v2_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Not Found"),
    }
}

async fn list_spaces(State(c): State<Arc<Confluence>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let limit = match parse_limit(&q, 25, 250) {
        Ok(l) => l,
        Err(e) => return bad_param(e),
    };
    let after = match q.one("cursor").map(|cur| decode_cursor(cur, "space-id")) {
        Some(None) => return bad_param("Invalid cursor"),
        Some(k) => k.map(|k| k.i),
        None => None,
    };
    let (keys, ids) = (q.list("keys"), q.list("ids"));
    let d = c.data();
    let items: Vec<&Space> = d
        .spaces
        .iter()
        .filter(|s| keys.is_empty() || keys.contains(&s.key))
        .filter(|s| ids.is_empty() || ids.contains(&s.id.to_string()))
        .filter(|s| after.is_none_or(|a| s.id > a))
        .collect();
    let next = (items.len() > limit).then(|| {
        let cursor = encode_cursor(
            "space-id",
            Key {
                n: 0,
                t: String::new(),
                i: items[limit - 1].id,
            },
        );
        format!(
            "/wiki/api/v2/spaces?{}",
            q.encode_with(
                &["cursor", "limit"],
                &[("limit", &limit.to_string()), ("cursor", &cursor)]
            )
        )
    });
    let results = items
        .iter()
        .take(limit)
        .map(|s| {
            json!({
                "id": s.id.to_string(), "key": s.key, "name": s.name, "type": "global", "status": "current",
                "authorId": ACCOUNT_IDS[0], "createdAt": rfc3339_ms(s.created_ms),
                "homepageId": s.homepage_id.map(|id| id.to_string()), "description": null, "icon": null,
                "_links": {"webui": format!("/spaces/{}", s.key)},
            })
        })
        .collect();
    paged(&c, results, next)
}

async fn search(State(c): State<Arc<Confluence>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let Some(cql_text) = q.one("cql").filter(|s| !s.trim().is_empty()) else {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "The CQL query parameter is required",
        );
    };
    let query = match cql::parse(cql_text) {
        Ok(query) => query,
        Err(e) => {
            return v1_error(
                StatusCode::BAD_REQUEST,
                format!("Could not parse cql : {cql_text} ({e})"),
            );
        }
    };
    let Ok(limit) = q.one("limit").map_or(Ok(25), str::parse::<usize>) else {
        return v1_error(StatusCode::BAD_REQUEST, "'limit' must be an integer");
    };
    let limit = limit.clamp(1, 100);
    let start = match q.one("cursor") {
        Some(cur) => match decode_cursor(cur, "search") {
            Some(k) => k.n.max(0) as usize,
            None => return v1_error(StatusCode::BAD_REQUEST, "Invalid cursor"),
        },
        None => q.one("start").and_then(|s| s.parse().ok()).unwrap_or(0),
    };
    let d = c.data();
    let mut hits: Vec<&Page> = d
        .pages
        .iter()
        .filter(|p| !p.trashed)
        .filter(|p| {
            let s = &d.spaces[p.space];
            let doc = cql::Doc {
                title: &p.title,
                text: &p.text,
                space_key: &s.key,
                created_ms: p.created_ms,
                modified_ms: p.version_ms,
            };
            query.matches(&doc)
        })
        .collect();
    hits.sort_by(|a, b| {
        query.order(
            &(a.version_ms, a.created_ms, &a.title, a.id),
            &(b.version_ms, b.created_ms, &b.title, b.id),
        )
    });
    let total = hits.len();
    let results: Vec<Value> = hits
        .iter()
        .skip(start)
        .take(limit)
        .map(|p| search_result(&c, &d, p, &query.first_word()))
        .collect();
    let mut links = json!({"base": c.wiki(), "context": "/wiki", "self": format!("{}/rest/api/search?{}", c.wiki(), q.encode_with(&[], &[]))});
    if start + results.len() < total {
        let end = (start + results.len()).to_string();
        let cursor = encode_cursor(
            "search",
            Key {
                n: (start + results.len()) as i64,
                t: String::new(),
                i: 0,
            },
        );
        let qs = q.encode_with(
            &["cursor", "limit", "start", "next"],
            &[
                ("next", "true"),
                ("cursor", &cursor),
                ("limit", &limit.to_string()),
                ("start", &end),
            ],
        );
        // v1 links are relative to `_links.base` (".../wiki"), unlike v2 links which start with /wiki.
        links["next"] = json!(format!("/rest/api/search?{qs}"));
    }
    let size = results.len();
    Json(json!({"results": results, "start": start, "limit": limit, "size": size, "totalSize": total, "cqlQuery": cql_text, "searchDuration": 3, "_links": links}))
        .into_response()
}

fn search_result(c: &Confluence, d: &Data, p: &Page, word: &str) -> Value {
    let links = c.page_links(d, p);
    let s = &d.spaces[p.space];
    // Start the excerpt at a word boundary a few words before the first hit.
    let hit = p.text.to_lowercase().find(word).unwrap_or(0);
    let at = p
        .text
        .char_indices()
        .filter(|(i, c)| *i + 40 <= hit && *c == ' ')
        .map(|(i, _)| i + 1)
        .next_back()
        .unwrap_or(0);
    let excerpt: String = p
        .text
        .get(at..)
        .unwrap_or_default()
        .chars()
        .take(160)
        .collect();
    json!({
        "content": {
            "id": p.id.to_string(), "type": "page", "status": status(p), "title": p.title,
            "_links": {"webui": links["webui"], "tinyui": links["tinyui"], "self": format!("{}/rest/api/content/{}", c.wiki(), p.id)},
            "_expandable": {"space": format!("/rest/api/space/{}", s.key), "version": "", "body": ""},
        },
        "title": p.title,
        "excerpt": excerpt,
        "url": links["webui"],
        "resultGlobalContainer": {"title": s.name, "displayUrl": format!("/spaces/{}", s.key)},
        "breadcrumbs": [],
        "entityType": "content",
        "iconCssClass": "aui-icon content-type-page",
        "lastModified": rfc3339_ms(p.version_ms),
        "friendlyLastModified": rfc3339_ms(p.version_ms),
        "score": 1.0,
        "space": {"id": s.id, "key": s.key, "name": s.name, "type": "global", "status": "current"},
    })
}

/// Who may update (and delete) a page: a read-restricted page only its readers; about one open
/// page in four only its author (an edit restriction); other pages everyone who can read them.
/// Derived from the page, so the seeded data set stays as it was.
fn update_restricted(p: &Page) -> Vec<String> {
    if !p.restricted.is_empty() {
        p.restricted.clone()
    } else if (p.id / 4).is_multiple_of(4) {
        vec![p.author.to_owned()]
    } else {
        Vec::new()
    }
}

/// `POST /wiki/rest/api/content/{id}/permission/check`: `operation` is `read`, `update` or
/// `delete` (anything else is a 400, as Confluence answers); update and delete need read access
/// and passing the page's edit restriction.
async fn permission_check(
    State(c): State<Arc<Confluence>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return v1_error(StatusCode::BAD_REQUEST, "Content id must be numeric");
    };
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (kind, who, op) = (
        req["subject"]["type"].as_str(),
        req["subject"]["identifier"].as_str(),
        req["operation"].as_str(),
    );
    let (Some(kind @ ("user" | "group")), Some(who), Some(op)) = (kind, who, op) else {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "Expected {\"subject\":{\"type\":\"user\"|\"group\",\"identifier\":...},\"operation\":...}",
        );
    };
    let d = c.data();
    let Some(p) = d.pages.iter().find(|p| p.id == id && !p.trashed) else {
        return v1_error(
            StatusCode::NOT_FOUND,
            format!("No content found with id : ContentId{{id={id}}}"),
        );
    };
    let passes = |list: &[String]| {
        list.is_empty() || (kind == "user" && list.iter().any(|r| r.as_str() == who))
    };
    // Reading needs the space and every read restriction up the tree (permissions.rs).
    let can_read = d.can_read(kind, who, p);
    let allowed = match op {
        "read" => can_read,
        "update" | "delete" => can_read && passes(&update_restricted(p)),
        other => {
            return v1_error(
                StatusCode::BAD_REQUEST,
                format!("Invalid operation '{other}': expected read, update or delete"),
            );
        }
    };
    Json(json!({"hasPermission": allowed})).into_response()
}

/// Counts the request, applies the rate-limit knob, then checks Basic auth (control routes skip all three).
async fn gate(State(c): State<Arc<Confluence>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    if c.core.record(&path) {
        return atlassian_rate_limited(1, "confluence-quota-global-based");
    }
    if !basic_auth_ok(req.headers(), &c.email, &c.api_token) {
        let mut resp = json_reply(
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "message": "Unauthorized; scope does not match"}),
        );
        set_header(
            &mut resp,
            "www-authenticate",
            "Basic realm=\"Atlassian Confluence\"",
        );
        return resp;
    }
    next.run(req).await
}

impl Control for Confluence {
    type Truth = ConfluenceTruth;
    fn ground_truth(&self) -> ConfluenceTruth {
        self.data().truth()
    }
    /// Confluence's `/_fake/config` is `POST` only.
    const SERVES_CONFIG_GET: bool = false;
    fn configure(&self, body: &[u8]) -> Response {
        control::configure_rate_limit(&self.core, body, RateLimitBody::Lenient)
    }
}

impl Mutate for Confluence {
    type Mutation = Mutation;
    type Report = MutationReport;
    const EXPECTED: &'static str = "{\"update\":N,\"delete\":M,\"create\":K}";
    fn apply_mutation(&self, m: Mutation) -> MutationReport {
        self.data().mutate(m)
    }
}

fn router(state: Arc<Confluence>) -> Router {
    Router::new()
        .route("/wiki/api/v2/pages", get(list_pages))
        .route("/wiki/api/v2/pages/{id}", get(get_page))
        .route("/wiki/api/v2/spaces", get(list_spaces))
        .route(
            "/wiki/api/v2/spaces/{id}/permissions",
            get(permissions::space_permissions),
        )
        .route(
            "/wiki/api/v2/pages/{id}/ancestors",
            get(permissions::page_ancestors),
        )
        .route(
            "/wiki/rest/api/content/{id}/restriction/byOperation/read",
            get(permissions::read_restriction),
        )
        .route("/wiki/rest/api/group", get(permissions::list_groups))
        .route(
            "/wiki/rest/api/group/{id}/membersByGroupId",
            get(permissions::group_members),
        )
        .route("/wiki/rest/api/search", get(search))
        .route(
            "/wiki/rest/api/content/{id}/permission/check",
            post(permission_check),
        )
        .merge(control::routes_with_mutate::<Confluence>())
        .fallback(|| async {
            v2_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "No endpoint at this path",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Confluence fake on `listen` (port 0 picks a free port).
pub async fn spawn_confluence(
    listen: SocketAddr,
    opts: ConfluenceOptions,
) -> std::io::Result<RunningFake<Confluence>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let state = Arc::new(Confluence {
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

impl RunningFake<Confluence> {
    /// All spaces, current pages and trashed pages as they are now.
    pub fn truth(&self) -> ConfluenceTruth {
        self.state.data().truth()
    }
    /// Updates, trashes (never a homepage or a planted page) and creates pages; returns the ids touched.
    pub fn mutate(&self, m: Mutation) -> MutationReport {
        self.state.data().mutate(m)
    }
    pub fn update_pages(&self, n: usize) -> Vec<String> {
        self.mutate(Mutation {
            update: n,
            ..Mutation::default()
        })
        .updated
    }
    pub fn delete_pages(&self, n: usize) -> Vec<String> {
        self.mutate(Mutation {
            delete: n,
            ..Mutation::default()
        })
        .deleted
    }
    /// Replaces page `id`'s read restriction (no version bump, as in Confluence).
    pub fn restrict_page(&self, id: &str, users: &[&str], groups: &[&str]) {
        let access = ReadAccess {
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        };
        let page = id.to_string();
        let report = self.mutate(Mutation {
            restrict: vec![Restrict { page, access }],
            ..Mutation::default()
        });
        assert_eq!(report.restricted, vec![id.to_string()], "no page {id}");
    }
    /// Replaces who may read space `key` (users by accountId, groups by name).
    pub fn set_space_read(&self, key: &str, users: &[&str], groups: &[&str]) {
        let access = ReadAccess {
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        };
        let report = self.mutate(Mutation {
            space_read: vec![SpaceRead {
                space: key.into(),
                access,
            }],
            ..Mutation::default()
        });
        assert_eq!(report.space_read, vec![key.to_string()], "no space {key}");
    }
    pub fn create_pages(&self, n: usize) -> Vec<String> {
        self.mutate(Mutation {
            create: n,
            ..Mutation::default()
        })
        .created
    }
}
