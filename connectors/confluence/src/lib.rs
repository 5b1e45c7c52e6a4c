//! Confluence Cloud connector: REST v2 for pages and spaces, v1 CQL for search and permission
//! checks. Holds no credentials: the host's gate injects HTTP Basic into every request.
//!
//! Settings: `base_url` (site root), optional `space_keys` (comma list), optional `page_limit`
//! (sync page size, default 100, at most 250), optional `permission_sync`: `every-run` (the
//! default: every synced or fetched page carries its ACL, and every incremental run ends with a
//! sweep that refreshes all ACLs, see "Permissions" below), `changed-pages` (ACLs only on pages
//! whose content changed: a permission change alone is not seen) or `off` (no ACLs: the host
//! shows the pages to nobody unless the connector is configured `permissions = "tenant"`).
//!
//! ACL entries are `user:ACCOUNT-ID` and `group:NAME` (see `permissions.rs`).

use airlock_sdk::atlassian;
use airlock_sdk::json::{string_or_number, text};
use airlock_sdk::newest_first::NewestFirst;
use airlock_sdk::paging::ListPage;
use airlock_sdk::prelude::*;
use airlock_sdk::text::{quoted, strip_highlight};
use serde::Deserialize;

mod permissions;
use permissions::Permissions;

struct Confluence;

airlock_sdk::export_connector!(Confluence);

/// Pages modified up to this long before the previous run's watermark are fetched again, so a
/// save whose timestamp precedes one we already saw but which became visible later is not lost.
const OVERLAP_MS: i64 = 5 * 60 * 1000;
const PAGES: &str = "/wiki/api/v2/pages";
const SPACES: &str = "/wiki/api/v2/spaces";

impl Connector for Confluence {
    fn info() -> ConnectorInfo {
        let about = "Confluence Cloud pages: sync, live CQL search, permission checks";
        let pages = "Current pages as text, trashed as deletes, incremental by version.createdAt";
        let spaces = "List the spaces the credentials can see (id, key, name, type, status).";
        ConnectorInfo::new("confluence", env!("CARGO_PKG_VERSION"), about)
            .stream("pages", pages)
            .action(ActionInfo::new::<NoInput>("spaces", spaces))
    }

    fn health() -> Result<HealthStatus> {
        let cfg = config()?;
        cfg.base_url.get(SPACES).query("limit", "1").send()?;
        Ok(HealthStatus::accepted("Confluence", &cfg.base_url))
    }

    fn search(request: SearchRequest) -> Result<SearchResult> {
        let cfg = config()?;
        let mut cql = format!("type = page AND text ~ {}", quoted(request.query_text()?));
        if !cfg.space_keys.is_empty() {
            let keys: Vec<String> = cfg.space_keys.iter().map(quoted).collect();
            cql.push_str(&format!(" AND space in ({})", keys.join(", ")));
        }
        let limit = request.limit_or(25, 100).to_string();
        let search = cfg.base_url.get("/wiki/rest/api/search");
        let search = search.queries(&[("cql", &cql), ("limit", &limit)]);
        let search = search.query_opt("cursor", request.cursor.as_deref());
        let reply: ListPage<Value> = search.send()?.json()?;
        let hits: Vec<Document> = reply.values.iter().filter_map(|h| hit(h, &cfg)).collect();
        // v1 `next` is relative to `_links.base`; only its cursor matters, the query is re-sent.
        let next = reply.next_link().filter(|_| !hits.is_empty());
        let next_cursor = next.and_then(|n| url::query_param(&n, "cursor"));
        Ok(SearchResult { hits, next_cursor })
    }

    fn get(id: String) -> Result<Document> {
        let cfg = config()?;
        let path = format!("{PAGES}/{}", content_id(&id)?);
        let page = cfg.base_url.get(&path).query("body-format", "storage");
        let page: Page = page.send()?.json()?;
        page.document(&cfg, &mut Permissions::default())
    }

    fn check_permission(principal: String, id: String) -> Result<bool> {
        acl::principal(&principal)?;
        let subject = json!({"type": "user", "identifier": principal});
        let path = format!(
            "/wiki/rest/api/content/{}/permission/check",
            content_id(&id)?
        );
        let check = json!({"subject": subject, "operation": "read"});
        let reply: Value = config()?.base_url.post(&path).json(&check).send()?.json()?;
        let allowed = reply["hasPermission"].as_bool();
        allowed.ok_or_else(|| Error::upstream("permission check: no `hasPermission` in the reply"))
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        airlock_sdk::info::known_stream(&stream, &["pages"])?;
        sync_pages(&config()?, cursor.as_deref())
    }

    fn invoke(action: String, input: String) -> Result<String> {
        let NoInput = airlock_sdk::action_input(&action, "spaces", &input)?;
        let spaces: Vec<Value> = spaces(&config()?, None, 40)?;
        let pick = |s: Value| json::pick(&s, "id,key,name,type,status", json!({}));
        Ok(Value::Array(spaces.into_iter().map(pick).collect()).to_string())
    }
}

/// Connector settings, read from the host on every call (instances are stateless).
#[derive(Deserialize)]
struct Config {
    /// Site root without a trailing slash or `/wiki`.
    base_url: BaseUrl,
    #[serde(default)]
    space_keys: List,
    /// Pages per sync request.
    #[serde(default)]
    page_limit: PageSize<100, 250>,
    #[serde(default, deserialize_with = "airlock_sdk::settings::any_case")]
    permission_sync: PermissionSync,
}

/// `permission_sync`: which pages get ACLs, and whether permission changes alone are seen.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
enum PermissionSync {
    #[default]
    EveryRun,
    ChangedPages,
    Off,
}

fn config() -> Result<Config> {
    settings::load_site("/wiki")
}

/// Content ids are numeric; checking keeps ids from smuggling path segments into URLs.
fn content_id(id: &str) -> Result<&str> {
    ids::numeric(id, "Confluence content id")
}

// ---- Sync -------------------------------------------------------------------------------------
//
// Confluence v2 has no "modified since" filter, so a run lists pages newest first
// (`sort=-modified-date`, including `trashed` ones) and stops at the first page older than the
// previous run's watermark: `airlock_sdk::newest_first` (its docs say why that is correct when
// pages change between or during runs), on `version.createdAt`, with `_links.next` as the link.
// - Trashing bumps the page's version, so it surfces like an edit and becomes a delete.
// - Pages purged from the trash vanish without a trace and are not seen incrementally; only a full
//   run (no cursor) reflects them, and only if the host reconciles what a full run did not return.
//
// Permissions. Confluence does not bump a page's version when its restrictions or its space's
// permissions change, so the listing above never sees such a change. An incremental run
// therefore ends with a sweep (with `permission_sync = "every-run"`): every current page again,
// in id order, each with its ACL computed afresh. The host stores only the pages whose ACL (or
// content) differ, so the sweep adds nothing to the change feed for unchanged pages. A full run
// (no cursor) computes every ACL anyway and skips the sweep. The cursor's `sweep` is the next
// link of the sweep under way ("" before its first page).

fn sync_pages(cfg: &Config, cursor: Option<&str>) -> Result<SyncPage> {
    let mut walk: NewestFirst = cursor::position(cursor)?;
    let (mut perms, first) = (Permissions::default(), |order| listing(cfg, true, order));
    if let Some(at) = walk.take_sweep() {
        // A cursor Confluence no longer takes: sweep again from the top (only re-upserts).
        let (pages, done) = walk.sweep((&cfg.base_url, PAGES, "sweep"), &at, first(BY_ID))?;
        let current = pages.into_iter().filter(|p: &Page| p.status == "current");
        let upserts = current.map(|p| p.document(cfg, &mut perms));
        return Ok(SyncPage::next(upserts.collect::<Result<_>>()?, &walk).done(done));
    }
    let at = (&cfg.base_url, PAGES, "pages");
    let pages = walk.walk(at, first(BY_SAVE), Page::time, OVERLAP_MS)?;
    let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
    for page in pages {
        match page.status.as_str() {
            "current" | "archived" => upserts.push(page.document(cfg, &mut perms)?),
            _ => deletes.push(DocumentRef::new("page", page.id)),
        }
    }
    // Saves made while this run was under way sort behind its keyset cursor: if there are any, go
    // on with the incremental run that fetches them instead of ending; else, with
    // `permission_sync = "every-run"`, an incremental run ends with the sweep (current pages in
    // id order, each with its ACL; done after the last).
    let sweep = cfg.permission_sync == PermissionSync::EveryRun;
    let done = walk.done_or_sweep(sweep, || newest_save(cfg))?;
    Ok(SyncPage::next(upserts, &walk).deletes(deletes).done(done))
}

/// The `version.createdAt` of the newest page (current or trashed) now: one request.
fn newest_save(cfg: &Config) -> Result<Option<String>> {
    let list: ListPage<Page> = listing(cfg, false, BY_SAVE)()?.json()?;
    let newest = list.values.into_iter().next();
    Ok(newest.and_then(|p| p.version.created_at))
}

/// The orders of v2 page listings: `sort` and the statuses listed.
type Order = (&'static str, &'static [&'static str]);
/// The walk's listing: newest save first, trashed pages too. The sweep's: current pages by id.
const BY_SAVE: Order = ("-modified-date", &["current", "trashed"]);
const BY_ID: Order = ("id", &["current"]);

/// The first page of a v2 page listing in `order`: `page_limit` pages with their body, or, for
/// a probe, one without.
fn listing(cfg: &Config, body: bool, (sort, statuses): Order) -> impl FnOnce() -> Result<Response> {
    move || {
        let limit = if body { cfg.page_limit.get() } else { 1 };
        let list = cfg
            .base_url
            .get(PAGES)
            .query_opt("body-format", body.then_some("storage"));
        let list = list.queries(&[("limit", &limit.to_string()), ("sort", sort)]);
        let list = statuses.iter().fold(list, |l, s| l.query("status", s));
        list.query_opt("space-id", space_filter(cfg)?).send()
    }
}

/// The `space-id` filter of v2 listings: the ids of `space_keys`, none when it is empty.
fn space_filter(cfg: &Config) -> Result<Option<String>> {
    let ids = (!cfg.space_keys.is_empty()).then(|| space_ids(cfg));
    Ok(ids.transpose()?.map(|ids| ids.join(",")))
}

/// Resolve `space_keys` to the numeric ids v2 filters by; an unknown key is an error.
fn space_ids(cfg: &Config) -> Result<Vec<String>> {
    let found: Vec<Space> = spaces(cfg, Some(cfg.space_keys.0.join(",")), 10)?;
    let known = |k: &&str| found.iter().any(|s| s.key.eq_ignore_ascii_case(k));
    let missing: Vec<&str> = cfg.space_keys.iter().filter(|k| !known(k)).collect();
    if !missing.is_empty() {
        let missing = missing.join(", ");
        let msg = format!("setting `space_keys`: no visible space with key {missing}");
        return Err(Error::invalid_input(msg));
    }
    Ok(found.into_iter().map(|s| s.id).collect())
}

/// The spaces the credentials can see (only those with `keys`, if given), at most `pages` pages.
fn spaces<T: DeserializeOwned>(cfg: &Config, keys: Option<String>, pages: usize) -> Result<Vec<T>> {
    let first = cfg.base_url.get(SPACES).query_opt("keys", keys);
    atlassian::v2_items(first.query("limit", "250"), pages)
}

// ---- Upstream shapes (tolerant: every field but the id may be missing) -------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(deserialize_with = "string_or_number")]
    id: String,
    #[serde(default)]
    status: String,
    title: Option<String>,
    space_id: Option<Value>,
    parent_id: Option<Value>,
    author_id: Option<String>,
    created_at: Option<String>,
    #[serde(default)]
    version: Version,
    #[serde(default)]
    body: Value,
    #[serde(default, rename = "_links")]
    links: Value,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Version {
    created_at: Option<String>,
    number: Option<u64>,
}

impl Page {
    /// When the page was last saved (`version.createdAt`): the time the sync walks by.
    fn time(&self) -> Option<&str> {
        self.version.created_at.as_deref()
    }

    /// The page as a document with its ACL (who may read it upstream now; none with
    /// `permission_sync = "off"`).
    fn document(self, cfg: &Config, perms: &mut Permissions) -> Result<Document> {
        if cfg.permission_sync == PermissionSync::Off {
            return Ok(self.document_without_acl(cfg));
        }
        let space = self.space_id.as_ref().and_then(json::id);
        let child = self.parent_id.as_ref().is_some_and(|p| !p.is_null());
        // Without its space nobody's access can be known: fail closed.
        let nobody = || vec![acl::NOBODY.to_owned()];
        let acl = space.map(|space| perms.acl(cfg, &self.id, &space, child));
        let acl = acl.transpose()?.unwrap_or_else(nobody);
        Ok(self.document_without_acl(cfg).acl(acl))
    }

    fn document_without_acl(self, cfg: &Config) -> Document {
        let storage = self.body.pointer("/storage/value").and_then(Value::as_str);
        let updated = self.version.created_at.or(self.created_at);
        let webui = self.links["webui"].as_str();
        Document::new("page", self.id, self.title.unwrap_or_default())
            .body(html_to_text(storage.unwrap_or("")))
            .updated_at(updated.unwrap_or_default())
            .metadata(json!({"spaceId": self.space_id, "status": self.status,
                "version": self.version.number, "authorId": self.author_id,
                "parentId": self.parent_id}))
            .url_opt(webui.map(|w| cfg.base_url.app_link("/wiki", w)))
    }
}

#[derive(Deserialize)]
struct Space {
    #[serde(deserialize_with = "string_or_number")]
    id: String,
    #[serde(default)]
    key: String,
}

/// A document for a v1 search hit; `None` for results that are not content (users, spaces).
/// Excerpts and titles mark matches with highlight marks, stripped here.
fn hit(hit: &Value, cfg: &Config) -> Option<Document> {
    let id = json::id(hit.pointer("/content/id")?)?;
    let title = json::first(hit, "/title|/content/title");
    let webui = Some(json::first(hit, "/url|/content/_links/webui")).filter(|w| !w.is_empty());
    let excerpt = strip_highlight(&text(hit, "/excerpt"));
    let doc = Document::new("page", id, strip_highlight(&title))
        .body(html_to_text(&excerpt))
        .updated_at(text(hit, "/lastModified"))
        .metadata(json!({"spaceKey": hit["space"]["key"], "status": hit["content"]["status"]}));
    Some(doc.url_opt(webui.map(|w| cfg.base_url.app_link("/wiki", &w))))
}
#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::serde_json;

    fn cfg() -> Config {
        Config {
            base_url: BaseUrl::parse("http://127.0.0.1:8781").unwrap(),
            space_keys: List::default(),
            page_limit: PageSize::default(),
            permission_sync: PermissionSync::EveryRun,
        }
    }

    #[test]
    fn helpers() {
        assert!(content_id("../1").is_err() && content_id("").is_err());
        assert_eq!(content_id(" 123 ").ok(), Some("123"));
    }

    #[test]
    fn page_mapping() {
        let page: Page = serde_json::from_value(json!({
            "id": "42", "status": "current", "title": "T", "spaceId": "7", "parentId": null, "authorId": "a",
            "version": {"createdAt": "2025-01-02T03:04:05.000Z", "number": 3},
            "body": {"storage": {"representation": "storage", "value": "<p>Hello &amp; bye</p>"}},
            "_links": {"webui": "/spaces/ENG/pages/42/T"}
        }))
        .unwrap();
        let doc = page.document_without_acl(&cfg());
        assert_eq!(
            (doc.id.as_str(), doc.body.as_str(), doc.updated_at.as_str()),
            ("42", "Hello & bye", "2025-01-02T03:04:05.000Z")
        );
        assert_eq!(
            doc.url.as_deref(),
            Some("http://127.0.0.1:8781/wiki/spaces/ENG/pages/42/T")
        );
        let meta: Value = serde_json::from_str(&doc.metadata).unwrap();
        assert_eq!(
            meta,
            json!({"spaceId": "7", "status": "current", "version": 3, "authorId": "a", "parentId": null})
        );
        let hit = json!({
            "content": {"id": "9", "type": "page"}, "title": "@@@hl@@@X@@@endhl@@@", "excerpt": "a &lt;b&gt;",
            "url": "/spaces/A/pages/9", "lastModified": "2025-01-01T00:00:00.000Z"
        });
        let doc = super::hit(&hit, &cfg()).unwrap();
        assert_eq!((doc.title.as_str(), doc.body.as_str()), ("X", "a <b>"));
        // Highlight marks are stripped from excerpts too.
        let hit = json!({"content": {"id": 9}, "excerpt": "a @@@hl@@@b@@@endhl@@@"});
        let doc = super::hit(&hit, &cfg()).unwrap();
        assert_eq!((doc.id.as_str(), doc.body.as_str()), ("9", "a b"));
    }

    #[test]
    fn spaces_takes_only_an_empty_object() {
        let info = Confluence::info();
        let schema: Value = serde_json::from_str(&info.actions[0].input_schema).unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        assert!(airlock_sdk::input::<NoInput>("{}").is_ok());
        for bad in [r#"{"x": 1}"#, "[]", "nope", ""] {
            let r = Confluence::invoke("spaces".into(), bad.into());
            assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad}");
        }
    }

    #[test]
    fn the_sync_cursor_keeps_its_stored_shape() {
        let stored = r#"{"next":"/wiki/api/v2/pages?cursor=c","watermark":"2025-01-01T00:00:00Z","since":"2024-12-01T00:00:00Z"}"#;
        let c: NewestFirst = cursor::position(Some(stored)).unwrap();
        assert_eq!(cursor::encode(&c), stored);
        let sweeping = r#"{"since":"2024-12-01T00:00:00Z","sweep":""}"#;
        let mut c: NewestFirst = cursor::position(Some(sweeping)).unwrap();
        assert_eq!(cursor::encode(&c), sweeping);
        assert_eq!(c.take_sweep().as_deref(), Some(""));
        assert!(c.is_incremental());
        assert_eq!(cursor::encode(&NewestFirst::default()), "{}");
    }

    #[test]
    fn permission_sync_is_read_in_any_case() {
        let lookup = |key: &str| match key {
            "base_url" => Some("http://127.0.0.1:8781/wiki".to_owned()),
            "permission_sync" => Some("Changed-Pages".to_owned()),
            "page_limit" => Some("1000".to_owned()),
            _ => None,
        };
        let c: Config = airlock_sdk::settings::from_lookup(lookup).unwrap();
        assert_eq!(c.permission_sync, PermissionSync::ChangedPages);
        assert_eq!(c.page_limit.get(), 250);
    }
}
