//! Jira Service Management connector: requests (issues) through the enhanced JQL search
//! `/rest/api/3/search/jql`, request comments and knowledge-base articles through
//! `/rest/servicedeskapi`, live search over both, `get` by issue key and a writing `add-comment`
//! action. Holds no credentials: the host's gate injects Basic `email:api_token`.
//!
//! Settings: `base_url` (site root, e.g. `https://acme.atlassian.net`), optional `project` (JQL
//! project key), `page_size` (1..=100, default 50) and `kb_query` (knowledge-base query used by the
//! `articles` stream, default `a`).

use airlock_sdk::serde_json::{self, Value, json};
use airlock_sdk::{
    ActionInfo, Connector, ConnectorInfo, Document, Error, HealthStatus, Request, Result,
    SearchRequest, SearchResult, StreamInfo, SyncPage, html_to_text, text, url,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

struct Jira;

airlock_sdk::export_connector!(Jira);

/// Fields asked of the JQL search (it returns only `id` by default).
const FIELDS: &str = "summary,description,status,updated,created,reporter,issuetype";
/// The first run's watermark: bounded (the search refuses unbounded JQL) yet matching everything.
const EPOCH_WATERMARK: &str = "1970/01/01 00:00";
/// Upper bound on comment pages fetched for one request (100 comments each).
const MAX_COMMENT_PAGES: usize = 50;

impl Connector for Jira {
    fn info() -> ConnectorInfo {
        let stream = |name: &str, description: &str| StreamInfo {
            name: name.into(),
            description: description.into(),
        };
        ConnectorInfo {
            name: "jira-servicedesk".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Jira Service Management requests, request comments and knowledge base"
                .into(),
            streams: vec![
                stream(
                    "requests",
                    "Requests (issues) by JQL `updated >= watermark ORDER BY updated ASC`, one \
                     page per call; incremental by update time (minute granularity).",
                ),
                stream(
                    "comments",
                    "Comments of every service-desk request (full pass over all requests).",
                ),
                stream(
                    "articles",
                    "Knowledge-base articles matching the `kb_query` setting (full pass).",
                ),
            ],
            actions: vec![ActionInfo {
                name: "add-comment".into(),
                description: "Add a comment to a service-desk request (public or internal).".into(),
                input_schema: json!({"type": "object", "required": ["issue", "body"],
                    "properties": {
                        "issue": {"type": "string", "pattern": "^[A-Z][A-Z0-9]+-[0-9]+$"},
                        "body": {"type": "string", "minLength": 1},
                        "public": {"type": "boolean", "default": true}},
                    "additionalProperties": false})
                .to_string(),
                writes: true,
            }],
        }
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Config::load()?;
        let me: Value = Request::get(cfg.url("/rest/api/3/myself")).send()?.json()?;
        let who = me["displayName"].as_str().unwrap_or("the API user");
        Ok(HealthStatus {
            ok: true,
            message: format!("Jira at {} accepted the credentials of {who}", cfg.base),
        })
    }

    fn search(request: SearchRequest) -> Result<SearchResult> {
        let cfg = Config::load()?;
        let query = request.query.trim();
        if query.is_empty() {
            return Err(Error::invalid_input("search query is empty"));
        }
        let limit = if request.limit == 0 {
            20
        } else {
            request.limit.min(100)
        };
        let cursor = match request.cursor.as_deref() {
            None => SearchCursor::default(),
            Some(c) => decode(Some(c))?,
        };
        // Split the limit between the sources still open; with limit 1 articles wait their turn.
        let r_limit = if cursor.a.is_some() {
            limit.div_ceil(2)
        } else {
            limit
        };
        let a_limit = limit - if cursor.r.is_some() { r_limit } else { 0 };
        let mut hits = Vec::new();
        let mut next = SearchCursor {
            r: None,
            a: cursor.a.filter(|_| a_limit == 0),
        };
        if let Some(token) = cursor.r {
            let jql = format!("{}text ~ \"{}\"", cfg.project_clause(), jql_escape(query));
            let page = cfg.jql(&jql, Some(&token).filter(|t| !t.is_empty()), r_limit)?;
            hits.extend(page.issues.into_iter().map(|i| i.document(&cfg)));
            next.r = page.next_page_token.filter(|_| !page.is_last);
        }
        if let Some(start) = cursor.a.filter(|_| a_limit > 0) {
            let page = cfg.articles(query, start, a_limit)?;
            hits.extend(page.values.into_iter().filter_map(|a| a.document()));
            next.a = (!page.is_last_page).then(|| start + page.size.max(1));
        }
        let next_cursor = (next.r.is_some() || next.a.is_some())
            .then(|| encode(&next))
            .transpose()?;
        Ok(SearchResult { hits, next_cursor })
    }

    fn get(id: String) -> Result<Document> {
        let cfg = Config::load()?;
        let key = issue_key(&id)?;
        let issue: Issue = Request::get(cfg.url(&format!("/rest/api/3/issue/{key}")))
            .query("fields", FIELDS)
            .send()?
            .json()?;
        Ok(issue.document(&cfg))
    }

    /// No per-user read check is offered to an API client; every valid key is readable by every
    /// principal of the tenant (acl is `[]`).
    fn check_permission(_principal: String, id: String) -> Result<bool> {
        issue_key(&id).map(|_| true)
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        match stream.as_str() {
            "requests" => sync_requests(&Config::load()?, decode(cursor.as_deref())?),
            "comments" => sync_comments(&Config::load()?, decode(cursor.as_deref())?),
            "articles" => sync_articles(&Config::load()?, decode(cursor.as_deref())?),
            _ => Err(Error::invalid_input(format!(
                "unknown stream `{stream}` (this connector has `requests`, `comments`, `articles`)"
            ))),
        }
    }

    fn invoke(action: String, input: String) -> Result<String> {
        if action != "add-comment" {
            return Err(Error::not_found(format!("unknown action `{action}`")));
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Input {
            issue: String,
            body: String,
            #[serde(default = "yes")]
            public: bool,
        }
        fn yes() -> bool {
            true
        }
        let input: Input = serde_json::from_str(&input)
            .map_err(|e| Error::invalid_input(format!("invalid input: {e}")))?;
        let key = issue_key(&input.issue)?;
        if input.body.trim().is_empty() {
            return Err(Error::invalid_input("`body` is empty"));
        }
        let cfg = Config::load()?;
        let path = format!("/rest/servicedeskapi/request/{key}/comment");
        let c: JsmComment = Request::post(cfg.url(&path))
            .json(&json!({"body": input.body, "public": input.public}))
            .send()?
            .json()?;
        let created = c.created.as_ref().map(|d| rfc3339(&d.iso8601));
        Ok(json!({"issue": key, "id": c.id, "public": c.public, "created": created}).to_string())
    }
}

/// Connector settings, read from the host on every call (instances are stateless).
struct Config {
    /// Site root without a trailing slash.
    base: String,
    project: Option<String>,
    page_size: u32,
    kb_query: String,
}

impl Config {
    fn load() -> Result<Config> {
        let base = airlock_sdk::require_setting("base_url")?;
        if url::split(&base).is_none_or(|p| !matches!(p.scheme, "http" | "https")) {
            return Err(Error::invalid_input(format!(
                "setting `base_url` is not an http(s) URL: {base}"
            )));
        }
        let project = airlock_sdk::setting("project");
        if let Some(p) = &project
            && !is_project_key(p)
        {
            return Err(Error::invalid_input(format!(
                "setting `project` is not a Jira project key: {p}"
            )));
        }
        let page_size = match airlock_sdk::setting("page_size") {
            None => 50,
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| {
                    Error::invalid_input(format!("setting `page_size` is not a number: {v}"))
                })?
                .clamp(1, 100),
        };
        Ok(Config {
            base: base.trim_end_matches('/').to_owned(),
            project,
            page_size,
            kb_query: airlock_sdk::setting("kb_query").unwrap_or_else(|| "a".into()),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn project_clause(&self) -> String {
        match &self.project {
            Some(p) => format!("project = \"{p}\" AND "),
            None => String::new(),
        }
    }

    fn jql(&self, jql: &str, token: Option<&String>, max: u32) -> Result<JqlPage> {
        Request::get(self.url("/rest/api/3/search/jql"))
            .query("jql", jql)
            .query_opt("nextPageToken", token)
            .query("maxResults", max.to_string())
            .query("fields", FIELDS)
            .send()?
            .json()
    }

    fn articles(&self, query: &str, start: u32, limit: u32) -> Result<JsmPage<KbArticle>> {
        Request::get(self.url("/rest/servicedeskapi/knowledgebase/article"))
            .query("query", query)
            .query("start", start.to_string())
            .query("limit", limit.to_string())
            .send()?
            .json()
    }
}

fn is_project_key(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_uppercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

/// An issue key `[A-Z][A-Z0-9]+-\d+`; anything else (paths, queries) is `invalid-input`.
fn issue_key(id: &str) -> Result<&str> {
    let id = id.trim();
    let ok = id.split_once('-').is_some_and(|(p, n)| {
        is_project_key(p)
            && !p.contains('_')
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    });
    ok.then_some(id)
        .ok_or_else(|| Error::invalid_input(format!("not a Jira issue key: {id:?}")))
}

/// Escapes a JQL string literal's content.
fn jql_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Jira's `2026-01-02T03:04:05.000+0000` as RFC 3339 (`...+00:00`); other text unchanged.
fn rfc3339(s: &str) -> String {
    let b = s.as_bytes();
    let n = b.len();
    let offset = n > 5
        && matches!(b[n - 5], b'+' | b'-')
        && b[n - 4..].iter().all(u8::is_ascii_digit)
        && b.get(n.saturating_sub(8)) != Some(&b'T');
    if offset {
        format!("{}:{}", &s[..n - 2], &s[n - 2..])
    } else {
        s.to_owned()
    }
}

/// The minute (UTC) of an epoch-milliseconds time, as JQL wants it: `yyyy/MM/dd HH:mm`.
fn jql_minute(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // H. Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi) = (rem / 3_600_000, rem / 60_000 % 60);
    format!("{y:04}/{m:02}/{d:02} {h:02}:{mi:02}")
}

/// Plain text of an Atlassian Document Format node: `text` nodes concatenated, block nodes on
/// their own lines, `hardBreak` as a newline, mentions and emoji by their text.
fn adf_to_text(node: &Value) -> String {
    fn walk(node: &Value, out: &mut String) {
        match node {
            Value::Array(items) => items.iter().for_each(|n| walk(n, out)),
            Value::String(s) => out.push_str(s),
            Value::Object(o) => {
                let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
                match kind {
                    "text" => out.push_str(o.get("text").and_then(Value::as_str).unwrap_or("")),
                    "hardBreak" => out.push('\n'),
                    "mention" | "emoji" | "status" | "date" => {
                        let attrs = o.get("attrs");
                        let t = attrs.and_then(|a| a.get("text")).and_then(Value::as_str);
                        out.push_str(t.unwrap_or(""));
                    }
                    "inlineCard" | "blockCard" => {
                        let attrs = o.get("attrs");
                        let t = attrs.and_then(|a| a.get("url")).and_then(Value::as_str);
                        out.push_str(t.unwrap_or(""));
                    }
                    _ => {
                        let block = !matches!(kind, "doc" | "");
                        if block && !out.is_empty() && !out.ends_with('\n') {
                            out.push('\n');
                        }
                        if let Some(c) = o.get("content") {
                            walk(c, out);
                        }
                        if block && !out.ends_with('\n') {
                            out.push('\n');
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    walk(node, &mut out);
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("\n")
}

// ---- Cursors ------------------------------------------------------------------------------------

fn decode<T: DeserializeOwned + Default>(cursor: Option<&str>) -> Result<T> {
    match cursor {
        None => Ok(T::default()),
        Some(c) => serde_json::from_str(c)
            .map_err(|e| Error::invalid_input(format!("invalid cursor {c:?}: {e}"))),
    }
}

fn encode(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal(e.to_string()))
}

/// `requests`: the JQL watermark of this run (fixed while paging, since `nextPageToken` belongs
/// to one query), the token of the next page, and the newest `updated` seen (epoch ms), which
/// becomes the next run's watermark.
#[derive(Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestsCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    watermark: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    high: Option<i64>,
}

/// `comments` and `articles`: offset into the JSM listing.
#[derive(Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StartCursor {
    #[serde(default)]
    start: u32,
}

/// `search`: `r` is the next JQL page token (`""`: first page), `a` the next knowledge-base
/// offset; an absent field means that source is exhausted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SearchCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<u32>,
}

impl Default for SearchCursor {
    fn default() -> Self {
        SearchCursor {
            r: Some(String::new()),
            a: Some(0),
        }
    }
}

// ---- Sync ---------------------------------------------------------------------------------------
//
// Every call fetches one upstream page; the host commits it together with the returned cursor.

fn sync_requests(cfg: &Config, cursor: RequestsCursor) -> Result<SyncPage> {
    let watermark = cursor
        .watermark
        .clone()
        .unwrap_or_else(|| EPOCH_WATERMARK.into());
    let jql = format!(
        "{}updated >= \"{watermark}\" ORDER BY updated ASC",
        cfg.project_clause()
    );
    let page = cfg.jql(&jql, cursor.next_page_token.as_ref(), cfg.page_size)?;
    requests_page(page, cfg, cursor)
}

fn requests_page(page: JqlPage, cfg: &Config, cursor: RequestsCursor) -> Result<SyncPage> {
    let mut high = cursor.high;
    let upserts: Vec<Document> = page
        .issues
        .into_iter()
        .map(|i| {
            let ms = i.fields.updated.as_deref().and_then(text::parse_rfc3339);
            high = high.max(ms);
            i.document(cfg)
        })
        .collect();
    let token = page.next_page_token.filter(|t| !t.is_empty());
    // A page that is not the last but carries no token cannot be continued: end the run.
    let done = page.is_last || token.is_none() || token == cursor.next_page_token;
    let next = if done {
        // Next run: everything updated in or after the newest minute seen (the boundary minute is
        // fetched again; upserts are idempotent).
        RequestsCursor {
            watermark: Some(high.map_or_else(
                || cursor.watermark.unwrap_or_else(|| EPOCH_WATERMARK.into()),
                jql_minute,
            )),
            next_page_token: None,
            high,
        }
    } else {
        RequestsCursor {
            next_page_token: token,
            high,
            ..cursor
        }
    };
    let (deletes, next_cursor) = (Vec::new(), Some(encode(&next)?));
    Ok(SyncPage {
        upserts,
        deletes,
        next_cursor,
        done,
    })
}

fn sync_comments(cfg: &Config, cursor: StartCursor) -> Result<SyncPage> {
    let page: JsmPage<JsmRequest> = Request::get(cfg.url("/rest/servicedeskapi/request"))
        .query("start", cursor.start.to_string())
        .query("limit", cfg.page_size.to_string())
        .send()?
        .json()?;
    let mut upserts = Vec::new();
    // One page costs one comments listing (or more) per request, so a page of 50 busy requests
    // can take a while: tell the host which request the run is on (the host rate-limits logging).
    for (i, request) in page.values.iter().enumerate() {
        airlock_sdk::progress_with_message(
            "comments",
            u64::from(cursor.start) + i as u64 + 1,
            None,
            &format!("requests covered; comments of {}", request.issue_key),
        );
        for c in request_comments(cfg, &request.issue_key)? {
            upserts.push(c.document(&request.issue_key, cfg));
        }
    }
    start_page(upserts, &page, cursor)
}

fn sync_articles(cfg: &Config, cursor: StartCursor) -> Result<SyncPage> {
    let page = cfg.articles(&cfg.kb_query, cursor.start, cfg.page_size)?;
    let upserts = page
        .values
        .iter()
        .cloned()
        .filter_map(KbArticle::document)
        .collect();
    start_page(upserts, &page, cursor)
}

/// One page of an offset listing; a finished pass starts over from 0 on the next run.
fn start_page<T>(
    upserts: Vec<Document>,
    page: &JsmPage<T>,
    cursor: StartCursor,
) -> Result<SyncPage> {
    let done = page.is_last_page || page.values.is_empty();
    let start = if done {
        0
    } else {
        cursor.start + page.size.max(1)
    };
    Ok(SyncPage {
        upserts,
        deletes: Vec::new(),
        next_cursor: Some(encode(&StartCursor { start })?),
        done,
    })
}

fn request_comments(cfg: &Config, key: &str) -> Result<Vec<JsmComment>> {
    let key = issue_key(key)?;
    let mut out = Vec::new();
    let mut start = 0;
    for _ in 0..MAX_COMMENT_PAGES {
        let page: JsmPage<JsmComment> =
            Request::get(cfg.url(&format!("/rest/servicedeskapi/request/{key}/comment")))
                .query("start", start.to_string())
                .query("limit", "100")
                .send()?
                .json()?;
        let n = page.size.max(page.values.len() as u32);
        out.extend(page.values);
        if page.is_last_page || n == 0 {
            return Ok(out);
        }
        start += n;
    }
    airlock_sdk::log::warn!("request {key}: stopped after {MAX_COMMENT_PAGES} comment pages");
    Ok(out)
}

// ---- Upstream shapes ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JqlPage {
    #[serde(default)]
    issues: Vec<Issue>,
    next_page_token: Option<String>,
    #[serde(default)]
    is_last: bool,
}

#[derive(Deserialize)]
struct Issue {
    id: String,
    key: String,
    #[serde(default)]
    fields: IssueFields,
}

#[derive(Default, Deserialize)]
struct IssueFields {
    summary: Option<String>,
    description: Option<Value>,
    status: Option<Named>,
    issuetype: Option<Named>,
    updated: Option<String>,
    created: Option<String>,
    reporter: Option<User>,
}

#[derive(Clone, Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    account_id: Option<String>,
    display_name: Option<String>,
}

impl Issue {
    fn document(self, cfg: &Config) -> Document {
        let f = self.fields;
        let name = |n: Option<Named>| n.and_then(|n| n.name);
        let meta = json!({
            "issue_id": self.id,
            "status": name(f.status),
            "issuetype": name(f.issuetype),
            "reporter": f.reporter.as_ref().and_then(|r| r.display_name.clone()),
            "reporter_account_id": f.reporter.and_then(|r| r.account_id),
            "created": f.created.as_deref().map(rfc3339),
        });
        Document {
            url: Some(cfg.url(&format!("/browse/{}", self.key))),
            id: self.key,
            kind: "request".into(),
            title: f.summary.unwrap_or_default(),
            body: f.description.as_ref().map(adf_to_text).unwrap_or_default(),
            updated_at: f
                .updated
                .or(f.created)
                .as_deref()
                .map(rfc3339)
                .unwrap_or_default(),
            metadata: meta.to_string(),
            acl: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsmPage<T> {
    #[serde(default)]
    size: u32,
    #[serde(default = "yes")]
    is_last_page: bool,
    #[serde(default = "Vec::new")]
    values: Vec<T>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsmRequest {
    issue_key: String,
}

#[derive(Deserialize)]
struct JsmDate {
    iso8601: String,
}

#[derive(Deserialize)]
struct JsmComment {
    id: String,
    #[serde(default)]
    body: String,
    #[serde(default = "yes")]
    public: bool,
    author: Option<User>,
    created: Option<JsmDate>,
}

impl JsmComment {
    fn document(self, key: &str, cfg: &Config) -> Document {
        let author = self.author.as_ref();
        let meta = json!({"issue": key, "public": self.public,
            "author": author.and_then(|a| a.display_name.clone()),
            "author_account_id": author.and_then(|a| a.account_id.clone())});
        Document {
            url: Some(cfg.url(&format!("/browse/{key}?focusedCommentId={}", self.id))),
            id: format!("{key}/{}", self.id),
            kind: "comment".into(),
            title: format!("Comment on {key}"),
            body: self.body,
            updated_at: self
                .created
                .map(|c| rfc3339(&c.iso8601))
                .unwrap_or_default(),
            metadata: meta.to_string(),
            acl: Vec::new(),
        }
    }
}

#[derive(Clone, Deserialize)]
struct KbArticle {
    #[serde(default)]
    title: String,
    #[serde(default)]
    excerpt: String,
    source: Option<KbSource>,
    content: Option<KbContent>,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KbSource {
    #[serde(rename = "type")]
    kind: Option<String>,
    page_id: Option<String>,
    space_key: Option<String>,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KbContent {
    iframe_src: Option<String>,
}

impl KbArticle {
    /// Articles without a page id cannot be identified and are skipped.
    fn document(self) -> Option<Document> {
        let source = self.source?;
        let id = source.page_id?;
        let meta = json!({"source_type": source.kind, "space_key": source.space_key});
        Some(Document {
            id,
            kind: "article".into(),
            // The excerpt may carry highlight markup (`@@@hl@@@`, HTML); keep the text.
            title: html_to_text(&self.title),
            body: html_to_text(
                &self
                    .excerpt
                    .replace("@@@hl@@@", "")
                    .replace("@@@endhl@@@", ""),
            ),
            url: self.content.and_then(|c| c.iframe_src),
            // The API reports no modification time for articles.
            updated_at: "1970-01-01T00:00:00Z".into(),
            metadata: meta.to_string(),
            acl: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            base: "http://127.0.0.1:8783".into(),
            project: None,
            page_size: 50,
            kb_query: "a".into(),
        }
    }

    #[test]
    fn keys_times_and_escaping() {
        assert_eq!(issue_key(" SD-12 ").unwrap(), "SD-12");
        for bad in [
            "",
            "sd-1",
            "S-1",
            "SD-",
            "SD-1/comment",
            "SD-1?x",
            "../SD-1",
            "SD_X-1",
        ] {
            assert!(
                matches!(issue_key(bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
        assert_eq!(
            rfc3339("2026-01-02T03:04:05.000+0000"),
            "2026-01-02T03:04:05.000+00:00"
        );
        assert_eq!(rfc3339("2026-01-02T03:04:05Z"), "2026-01-02T03:04:05Z");
        assert_eq!(jql_minute(0), "1970/01/01 00:00");
        let ms = text::parse_rfc3339("2025-01-06T08:07:59.999+0000").unwrap();
        assert_eq!(jql_minute(ms), "2025/01/06 08:07");
        assert_eq!(jql_escape(r#"a "b" \c"#), r#"a \"b\" \\c"#);
    }

    #[test]
    fn adf_becomes_text() {
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Hello", "marks": [{"type": "strong"}]},
                {"type": "text", "text": " world."}, {"type": "hardBreak"},
                {"type": "mention", "attrs": {"id": "1", "text": "@Ada"}}]},
            {"type": "bulletList", "content": [{"type": "listItem", "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "one"}]}]}]}
        ]});
        assert_eq!(adf_to_text(&doc), "Hello world.\n@Ada\none");
        assert_eq!(adf_to_text(&Value::Null), "");
    }

    #[test]
    fn request_pages_and_watermarks() {
        let page: JqlPage = serde_json::from_value(json!({"issues": [
            {"id": "10001", "key": "SD-1", "self": "x", "fields": {"summary": "S",
             "updated": "2025-01-06T08:07:30.000+0000", "status": {"name": "Open"},
             "description": {"type": "doc", "content": [{"type": "paragraph",
                 "content": [{"type": "text", "text": "Body"}]}]}}}
        ], "nextPageToken": "t1", "isLast": false}))
        .unwrap();
        let out = requests_page(page, &cfg(), RequestsCursor::default()).unwrap();
        assert!(!out.done);
        let d = &out.upserts[0];
        assert_eq!(
            (d.id.as_str(), d.kind.as_str(), d.body.as_str()),
            ("SD-1", "request", "Body")
        );
        assert_eq!(d.updated_at, "2025-01-06T08:07:30.000+00:00");
        assert_eq!(d.url.as_deref(), Some("http://127.0.0.1:8783/browse/SD-1"));
        let c: RequestsCursor = decode(out.next_cursor.as_deref()).unwrap();
        assert_eq!(c.next_page_token.as_deref(), Some("t1"));
        let last: JqlPage = serde_json::from_value(json!({"issues": [], "isLast": true})).unwrap();
        let out = requests_page(last, &cfg(), c).unwrap();
        assert!(out.done);
        assert_eq!(
            out.next_cursor.as_deref(),
            Some(r#"{"watermark":"2025/01/06 08:07","high":1736150850000}"#)
        );
    }

    #[test]
    fn articles_and_search_cursor() {
        let a: KbArticle = serde_json::from_value(json!({"title": "T", "excerpt":
            "a @@@hl@@@b@@@endhl@@@ &amp; c", "source": {"type": "confluence", "pageId": "9",
            "spaceKey": "KB"}, "content": {"iframeSrc": "http://x/view/9"}}))
        .unwrap();
        let d = a.document().unwrap();
        assert_eq!((d.id.as_str(), d.body.as_str()), ("9", "a b & c"));
        assert_eq!(
            encode(&SearchCursor::default()).unwrap(),
            r#"{"r":"","a":0}"#
        );
        let c: SearchCursor = decode(Some(r#"{"a":5}"#)).unwrap();
        assert_eq!((c.r, c.a), (None, Some(5)));
    }
}
