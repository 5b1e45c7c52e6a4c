//! Jira Service Management connector: requests (issues) through the enhanced JQL search
//! `/rest/api/3/search/jql`, request comments and knowledge-base articles through
//! `/rest/servicedeskapi`, live search over both, `get` by issue key and a writing `add-comment`
//! action. Holds no credentials: the host's gate injects Basic `email:api_token`.
//!
//! Settings: `base_url` (site root, e.g. `https://acme.atlassian.net`), optional `project` (JQL
//! project key), `page_size` (1..=100, default 50) and `kb_query` (knowledge-base query used by the
//! `articles` stream, default `a`).

use airlock_sdk::json::{self, required};
use airlock_sdk::serde_json::{Value, json};
use airlock_sdk::text::{adf_to_text, quoted};
use airlock_sdk::{
    ActionInfo, BaseUrl, Connector, ConnectorInfo, Document, Error, HealthStatus, PageSize, Result,
    SearchRequest, SearchResult, SyncPage, acl, atlassian, cursor, html_to_text, ids, paging, text,
};
use serde::{Deserialize, Serialize};

struct Jira;

airlock_sdk::export_connector!(Jira);

/// Fields asked of the JQL search (it returns only `id` by default).
const FIELDS: &str = "summary,description,status,updated,created,reporter,issuetype";
/// Default ids of the custom fields "Request participants" and "Organizations" (they differ per
/// site: settings `participants_field`, `organizations_field`).
const ACCESS_FIELDS: [&str; 2] = ["customfield_10026", "customfield_10002"];
/// The first run's watermark: bounded (the search refuses unbounded JQL) yet matching everything.
const EPOCH_WATERMARK: &str = "1970/01/01 00:00";
/// Upper bound on comment pages fetched for one request (100 comments each).
const MAX_COMMENT_PAGES: usize = 50;

/// Add a comment to a service-desk request.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AddComment {
    /// Issue key of the request, e.g. `SD-12`.
    #[schemars(pattern(r"^[A-Z][A-Z0-9]+-[0-9]+$"))]
    issue: String,
    /// The comment's text.
    #[schemars(length(min = 1))]
    body: String,
    /// Visible to the customer (`false`: an internal note).
    #[serde(default = "airlock_sdk::info::default_true")]
    public: bool,
}

impl Connector for Jira {
    fn info() -> ConnectorInfo {
        let about = "Jira Service Management requests, request comments and knowledge base";
        let requests = "Requests (issues) by JQL `updated >= watermark`, oldest first";
        let comments = "Comments of every service-desk request (full pass).";
        let articles = "Knowledge-base articles matching the `kb_query` setting (full pass).";
        let add = "Add a comment to a service-desk request (public or internal).";
        ConnectorInfo::new("jira-servicedesk", env!("CARGO_PKG_VERSION"), about)
            .stream("requests", requests)
            .stream("comments", comments)
            .stream("articles", articles)
            .action(ActionInfo::new::<AddComment>("add-comment", add).writes())
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Settings::load()?;
        let me: Value = cfg.base_url.get("/rest/api/3/myself").send()?.json()?;
        let who = me["displayName"].as_str().unwrap_or("the API user");
        let message = format!("Jira at {} accepted the credentials of {who}", cfg.base_url);
        Ok(HealthStatus::ok(message))
    }

    fn search(request: SearchRequest) -> Result<SearchResult> {
        let (cfg, query) = (Settings::load()?, request.query_text()?);
        let limit = request.limit_or(20, 100);
        // No cursor: both sources open, JQL at its first page (`""`), articles at offset 0.
        let given = request.cursor.as_deref().filter(|c| !c.trim().is_empty());
        let cur: SearchCursor = cursor::position(Some(given.unwrap_or(r#"{"r":"","a":0}"#)))?;
        // Split the limit between the sources still open; with limit 1 articles wait their turn.
        let r_limit = cur.a.map_or(limit, |_| limit.div_ceil(2));
        let a_limit = limit - cur.r.as_ref().map_or(0, |_| r_limit);
        let (mut hits, mut r, mut a) = (Vec::new(), None, cur.a.filter(|_| a_limit == 0));
        if let Some(token) = cur.r {
            let jql = format!("{}text ~ {}", cfg.project_clause(), quoted(query));
            let page = cfg.jql(&jql, Some(token).filter(|t| !t.is_empty()), r_limit)?;
            hits = page.documents(&cfg)?;
            r = page.next_page_token.filter(|_| !page.is_last);
        }
        if let Some(start) = cur.a.filter(|_| a_limit > 0) {
            let page = cfg.jsm("knowledgebase/article", Some(query), start, a_limit)?;
            hits.extend(page.values.iter().filter_map(article_doc));
            a = page.next(start);
        }
        let more = r.is_some() || a.is_some();
        let next_cursor = more.then(|| cursor::encode(&SearchCursor { r, a }));
        Ok(SearchResult { hits, next_cursor })
    }

    fn get(id: String) -> Result<Document> {
        let cfg = Settings::load()?;
        issue_doc(&cfg.issue(&id)?, &cfg)
    }

    /// `principal` is the caller's Atlassian accountId (`[connector.users]`) or email: yes when
    /// the request names them (reporter, participant); access through a group (agents,
    /// organizations) is not known for one user here, so it is no (fail closed).
    fn check_permission(principal: String, id: String) -> Result<bool> {
        let readers = Self::get(id)?.acl;
        Ok(acl::allows(&readers, &acl::identities(&principal)))
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        let (cfg, cursor) = (Settings::load()?, cursor.as_deref());
        match stream.as_str() {
            "requests" => sync_requests(&cfg, cursor::position(cursor)?),
            "comments" | "articles" => sync_listing(&cfg, &stream, cursor::position(cursor)?),
            _ => Err(Self::info().unknown_stream(&stream)),
        }
    }

    fn invoke(action: String, input: String) -> Result<String> {
        let input: AddComment = airlock_sdk::action_input(&action, "add-comment", &input)?;
        let key = issue_key(&input.issue)?;
        if input.body.trim().is_empty() {
            return Err(Error::invalid_input("`body` is empty"));
        }
        let path = format!("/rest/servicedeskapi/request/{key}/comment");
        let body = json!({"body": input.body, "public": input.public});
        let post = Settings::load()?.base_url.post(&path);
        let c: Value = post.json(&body).send()?.json()?;
        let (id, public) = (required(&c, "/id")?, c["public"].as_bool().unwrap_or(true));
        let created = c["created"]["iso8601"].as_str().map(text::rfc3339);
        Ok(json!({"issue": key, "id": id, "public": public, "created": created}).to_string())
    }
}

/// Connector settings, read from the host on every call (instances are stateless).
#[derive(Deserialize)]
struct Settings {
    base_url: BaseUrl,
    project: Option<String>,
    #[serde(default)]
    page_size: PageSize<50, 100>,
    kb_query: Option<String>,
    participants_field: Option<String>,
    organizations_field: Option<String>,
}

impl Settings {
    fn load() -> Result<Settings> {
        let s: Settings = airlock_sdk::settings::load()?;
        if let Some(p) = s.project.as_deref().filter(|p| !is_key(p, true)) {
            let message = format!("setting `project` is not a Jira project key: {p}");
            return Err(Error::invalid_input(message));
        }
        Ok(s)
    }

    fn project_clause(&self) -> String {
        let p = self.project.as_ref();
        p.map_or_else(String::new, |p| format!("project = \"{p}\" AND "))
    }

    /// The ids of the request participants and organizations fields.
    fn access_fields(&self) -> [&str; 2] {
        let given = [&self.participants_field, &self.organizations_field];
        [0, 1].map(|i| given[i].as_deref().unwrap_or(ACCESS_FIELDS[i]))
    }

    /// The fields asked of Jira: ours and the access fields.
    fn fields(&self) -> String {
        format!("{FIELDS},{}", self.access_fields().join(","))
    }

    /// One issue by key, with [`Settings::fields`].
    fn issue(&self, key: &str) -> Result<Value> {
        let path = format!("/rest/api/3/issue/{}", issue_key(key)?);
        let issue = self.base_url.get(&path).query("fields", self.fields());
        issue.send()?.json()
    }

    fn jql(&self, jql: &str, token: Option<String>, max: u32) -> Result<JqlPage> {
        let search = self.base_url.get("/rest/api/3/search/jql");
        let search = search.query("jql", jql).query_opt("nextPageToken", token);
        let search = search.query("fields", self.fields());
        search.query("maxResults", max.to_string()).send()?.json()
    }

    /// One page of a JSM offset listing under `/rest/servicedeskapi/`.
    fn jsm(&self, path: &str, query: Option<&str>, start: u32, limit: u32) -> Result<JsmPage> {
        let list = self.base_url.get(&format!("/rest/servicedeskapi/{path}"));
        let list = list.query_opt("query", query);
        let list = list.query("start", start.to_string());
        list.query("limit", limit.to_string()).send()?.json()
    }
}

/// A project key: an uppercase letter, then uppercase letters and digits (and `_` if allowed).
fn is_key(s: &str, underscore: bool) -> bool {
    let tail = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit() || (underscore && c == b'_');
    s.len() >= 2 && s.as_bytes()[0].is_ascii_uppercase() && s.bytes().skip(1).all(tail)
}

/// An issue key `[A-Z][A-Z0-9]+-\d+`; anything else (paths, queries) is `invalid-input`.
fn issue_key(id: &str) -> Result<&str> {
    let id = id.trim();
    let key = |(p, n): (&str, &str)| is_key(p, false) && ids::is_numeric(n);
    let bad = || Error::invalid_input(format!("not a Jira issue key: {id:?}"));
    let ok = id.split_once('-').is_some_and(key);
    ok.then_some(id).ok_or_else(bad)
}

/// The minute (UTC) of an epoch-milliseconds time, as JQL wants it: `yyyy/MM/dd HH:mm`.
fn jql_minute(ms: i64) -> String {
    // yyyy-MM-ddTHH:mm:ssZ
    text::rfc3339_of_ms(ms)[..16]
        .replace('-', "/")
        .replace('T', " ")
}

// ---- Cursors ------------------------------------------------------------------------------------

/// `requests`: the JQL watermark of this run (fixed while paging, since `nextPageToken` belongs
/// to one query), the token of the next page, and the newest `updated` seen (epoch ms), which
/// becomes the next run's watermark.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestsCursor {
    #[serde(skip_serializing_if = "Option::is_none")]
    watermark: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high: Option<i64>,
}

/// `search`: `r` is the next JQL page token (`""`: first page), `a` the next knowledge-base
/// offset; an absent field means that source is exhausted.
#[derive(Default, Serialize, Deserialize)]
struct SearchCursor {
    #[serde(skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    a: Option<u32>,
}

// ---- Sync ---------------------------------------------------------------------------------------
//
// Every call fetches one upstream page; the host commits it together with the returned cursor.

fn sync_requests(cfg: &Settings, cursor: RequestsCursor) -> Result<SyncPage> {
    let mark = cursor.watermark.as_deref().unwrap_or(EPOCH_WATERMARK);
    let jql = format!("updated >= \"{mark}\" ORDER BY updated ASC");
    let token = cursor.next_page_token.clone();
    let page = cfg.jql(&(cfg.project_clause() + &jql), token, cfg.page_size.get())?;
    requests_page(page, cfg, cursor)
}

fn requests_page(page: JqlPage, cfg: &Settings, mut cursor: RequestsCursor) -> Result<SyncPage> {
    let updated = |i: &Value| text::parse_rfc3339(i["fields"]["updated"].as_str()?);
    cursor.high = page.issues.iter().map(updated).fold(cursor.high, Ord::max);
    let upserts = page.documents(cfg)?;
    // A page that is not the last but carries no new token cannot be continued: end the run.
    let token = paging::fresh(page.next_page_token, cursor.next_page_token.as_deref());
    let done = page.is_last || token.is_none();
    cursor.next_page_token = token.filter(|_| !done);
    // Next run: everything updated in or after the newest minute seen (the boundary minute is
    // fetched again; upserts are idempotent).
    if done {
        let mark = cursor.high.map(jql_minute).or(cursor.watermark);
        cursor.watermark = mark.or_else(|| Some(EPOCH_WATERMARK.into()));
    }
    Ok(SyncPage::next(upserts, &cursor).done(done))
}

/// `comments` (of each request in a page of requests) or `articles`: one page of an offset
/// listing; a finished pass starts over from 0 on the next run.
fn sync_listing(cfg: &Settings, stream: &str, cursor: cursor::Offset) -> Result<SyncPage> {
    let (kb_query, start) = (cfg.kb_query.as_deref().unwrap_or("a"), cursor.start);
    let (path, query) = match stream {
        "comments" => ("request", None),
        _ => ("knowledgebase/article", Some(kb_query)),
    };
    let page = cfg.jsm(path, query, start, cfg.page_size.get())?;
    let articles = page.values.iter().filter(|_| query.is_some());
    let mut upserts: Vec<_> = articles.filter_map(article_doc).collect();
    // One page costs one comments listing (or more) per request, so a page of 50 busy requests
    // can take a while: tell the host which request the run is on (the host rate-limits logging).
    for (i, request) in page.values.iter().enumerate().filter(|_| query.is_none()) {
        let (key, done) = (required(request, "/issueKey")?, u64::from(start) + i as u64);
        let message = format!("requests covered; comments of {key}");
        airlock_sdk::progress_with_message("comments", done + 1, None, &message);
        let issue = cfg.issue(key)?;
        for c in request_comments(cfg, key)? {
            upserts.push(comment_doc(&c, &issue, cfg)?);
        }
    }
    let (next, start) = (page.next(start), page.next(start).unwrap_or(0));
    Ok(SyncPage::next(upserts, &cursor::Offset { start }).done(next.is_none()))
}

fn request_comments(cfg: &Settings, key: &str) -> Result<Vec<Value>> {
    let path = format!("/rest/servicedeskapi/request/{}/comment", issue_key(key)?);
    atlassian::offsets(&path, &cfg.base_url.get(&path), 100, MAX_COMMENT_PAGES)
}

// ---- Upstream shapes ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JqlPage {
    #[serde(default)]
    issues: Vec<Value>,
    next_page_token: Option<String>,
    #[serde(default)]
    is_last: bool,
}

/// A page of a JSM listing (`values`, `size`, `isLastPage`).
type JsmPage = paging::ListPage<Value>;

impl JqlPage {
    fn documents(&self, cfg: &Settings) -> Result<Vec<Document>> {
        self.issues.iter().map(|i| issue_doc(i, cfg)).collect()
    }
}

fn issue_doc(issue: &Value, cfg: &Settings) -> Result<Document> {
    let (id, key) = (required(issue, "/id")?, required(issue, "/key")?);
    let f = &issue["fields"];
    let time = |field: &str| f[field].as_str().map(text::rfc3339);
    let (reporter, created) = (&f["reporter"], time("created"));
    let meta = json!({"issue_id": id, "status": f["status"]["name"],
        "issuetype": f["issuetype"]["name"], "reporter": reporter["displayName"],
        "reporter_account_id": reporter["accountId"], "created": created});
    let title = f["summary"].as_str().unwrap_or_default();
    let doc = Document::new("request", key, title)
        .body(adf_to_text(&f["description"]))
        .url(cfg.base_url.join(&format!("/browse/{key}")))
        .updated_at(time("updated").or(created).unwrap_or_default())
        .metadata(meta);
    Ok(doc.acl(readers(issue, cfg, true)))
}

/// Who reads a request (docs/connectors/jira-servicedesk.md): the agents of its service desk
/// (its project), and for public content also its reporter and participants (by accountId and,
/// when Jira shows it, email) and the customer organizations it is shared with.
fn readers(issue: &Value, cfg: &Settings, public: bool) -> Vec<String> {
    let (f, [people, orgs]) = (&issue["fields"], cfg.access_fields());
    let project = json::text(issue, "/key");
    let agents = project
        .split_once('-')
        .map(|(p, _)| format!("jsm-agents:{p}"));
    let mut out = Vec::from_iter(agents.map(acl::group));
    if public {
        let ids = format!("/reporter/accountId|/{people}/*/accountId");
        out.extend(acl::at(f, "user:", &ids));
        let emails = format!("/reporter/emailAddress|/{people}/*/emailAddress");
        out.extend(acl::emails_at(f, &emails));
        out.extend(acl::at(f, "group:jsm-org:", &format!("/{orgs}/*/id")));
    }
    acl::of(out)
}

/// A comment of `issue`: public ones are read as the request, internal ones by its agents.
fn comment_doc(c: &Value, issue: &Value, cfg: &Settings) -> Result<Document> {
    let (id, author, key) = (required(c, "/id")?, &c["author"], required(issue, "/key")?);
    let public = c["public"].as_bool().unwrap_or(false);
    let meta = json!({"issue": key, "public": public,
        "author": author["displayName"], "author_account_id": author["accountId"]});
    let path = format!("/browse/{key}?focusedCommentId={id}");
    let at = c["created"]["iso8601"].as_str().map(text::rfc3339);
    let (id, title) = (format!("{key}/{id}"), format!("Comment on {key}"));
    let doc = Document::new("comment", id, title);
    let doc = doc.body(c["body"].as_str().unwrap_or_default());
    let doc = doc.url(cfg.base_url.join(&path)).metadata(meta);
    let doc = doc.updated_at(at.unwrap_or_default());
    Ok(doc.acl(readers(issue, cfg, public)))
}

/// Articles without a page id cannot be identified and are skipped.
fn article_doc(article: &Value) -> Option<Document> {
    let source = &article["source"];
    let meta = json!({"source_type": source["type"], "space_key": source["spaceKey"]});
    // The excerpt may carry highlight markup (`@@@hl@@@`, HTML); keep the text.
    let excerpt = article["excerpt"].as_str().unwrap_or_default();
    let excerpt = text::strip_highlight(excerpt);
    let title = html_to_text(article["title"].as_str().unwrap_or_default());
    let doc = Document::new("article", source["pageId"].as_str()?, title)
        .body(html_to_text(&excerpt))
        .url_opt(article["content"]["iframeSrc"].as_str())
        // The API reports no modification time for articles.
        .updated_at("1970-01-01T00:00:00Z");
    Some(doc.metadata(meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::serde_json;

    fn cfg() -> Settings {
        Settings {
            base_url: BaseUrl::parse("http://127.0.0.1:8783").unwrap(),
            project: None,
            page_size: PageSize::default(),
            kb_query: None,
            participants_field: None,
            organizations_field: None,
        }
    }

    #[test]
    fn requests_are_read_by_reporter_participants_organizations_and_agents() {
        let issue = json!({"id": "1", "key": "SD-7", "fields": {
            "reporter": {"accountId": "r1", "emailAddress": "Rae@X.io"},
            "customfield_10026": [{"accountId": "p1"}, {"accountId": "p2", "emailAddress": null}],
            "customfield_10002": [{"id": "4", "name": "Acme"}]}});
        let all = [
            "group:jsm-agents:SD",
            "group:jsm-org:4",
            "rae@x.io",
            "user:p1",
            "user:p2",
        ];
        assert_eq!(
            issue_doc(&issue, &cfg()).unwrap().acl,
            [&all[..], &["user:r1"]].concat()
        );
        let internal = json!({"id": "9", "body": "note", "public": false});
        assert_eq!(
            comment_doc(&internal, &issue, &cfg()).unwrap().acl,
            ["group:jsm-agents:SD"]
        );
        // Site-specific field ids come from the settings.
        let moved = Settings {
            participants_field: Some("customfield_1".into()),
            ..cfg()
        };
        assert!(
            !issue_doc(&issue, &moved)
                .unwrap()
                .acl
                .contains(&"user:p1".to_string())
        );
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
            text::rfc3339("2026-01-02T03:04:05.000+0000"),
            "2026-01-02T03:04:05.000+00:00"
        );
        assert_eq!(
            text::rfc3339("2026-01-02T03:04:05Z"),
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(jql_minute(0), "1970/01/01 00:00");
        let ms = text::parse_rfc3339("2025-01-06T08:07:59.999+0000").unwrap();
        assert_eq!(jql_minute(ms), "2025/01/06 08:07");
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
        let c: RequestsCursor = cursor::position(out.next_cursor.as_deref()).unwrap();
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
    fn add_comment_needs_an_issue_and_a_body_and_is_public_unless_told() {
        let info = Jira::info();
        let schema: Value = serde_json::from_str(&info.actions[0].input_schema).unwrap();
        assert_eq!(schema["required"], json!(["issue", "body"]));
        let public = &schema["properties"]["public"];
        assert_eq!(
            (&public["type"], &public["default"]),
            (&json!("boolean"), &json!(true))
        );
        let input: AddComment = airlock_sdk::input(r#"{"issue": "SD-1", "body": "x"}"#).unwrap();
        assert!(input.public, "public unless told otherwise");
        assert!(airlock_sdk::input::<AddComment>(r#"{"issue": "SD-1"}"#).is_err());
    }

    #[test]
    fn articles_and_search_cursor() {
        let a = json!({"title": "T", "excerpt":
            "a @@@hl@@@b@@@endhl@@@ &amp; c", "source": {"type": "confluence", "pageId": "9",
            "spaceKey": "KB"}, "content": {"iframeSrc": "http://x/view/9"}});
        let d = article_doc(&a).unwrap();
        assert_eq!((d.id.as_str(), d.body.as_str()), ("9", "a b & c"));
        let first = SearchCursor {
            r: Some(String::new()),
            a: Some(0),
        };
        assert_eq!(cursor::encode(&first), r#"{"r":"","a":0}"#);
        let c: SearchCursor = cursor::position(Some(r#"{"a":5}"#)).unwrap();
        assert_eq!((c.r, c.a), (None, Some(5)));
    }
}
