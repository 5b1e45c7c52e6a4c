//! One sync page of a stream. Delta streams (users, messages) follow nextLink until a deltaLink
//! and keep it, deletions carry `@removed`; the others list everything each run and delete the
//! ids missing since the previous complete pass. A stream walks one listing (scope) per
//! mailbox, chat or channel, in turn.

use airlock_sdk::paging::ODataPage;
use airlock_sdk::scopes::{End, Scopes};
use airlock_sdk::serde_json::Value;
use airlock_sdk::text::{now_ms, rfc3339_of_ms};
use airlock_sdk::{DocumentRef, Error, Request, Result, SyncPage, cursor, odata, url};

use crate::USER_FIELDS;
use crate::config::Config;
use crate::documents::{Kind, Ref, id_of};

const DAY_MS: i64 = 86_400_000;

/// Sync cursor, the same shape for every stream: the SDK's walk over the stream's scopes (which
/// page of which scope is next; each delta scope's deltaLink; each listing's ids of its last
/// complete pass).
pub type Cursor = Scopes;

/// One listing a stream walks: a key (stable across runs), its path segments and first URL.
struct Scope(String, Vec<String>, String);

fn scopes(kind: Kind, cfg: &Config, now_ms: i64) -> Vec<Scope> {
    let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
    let start = rfc3339_of_ms(today - cfg.past_days * DAY_MS);
    let end = rfc3339_of_ms(today + DAY_MS + cfg.future_days * DAY_MS);
    let top = cfg.page_size.to_string();
    let folder = url::encode(&cfg.mail_folder);
    let messages = format!("/users/{{}}/mailFolders/{folder}/messages/delta");
    let window = format!("startDateTime={start}&endDateTime={end}&$top={top}");
    let (whole, teams) = (vec![Vec::new()], "$top=50"); // Graph's largest `$top` for Teams
    let channels = "/teams/{}/channels/{}/messages";
    let (lists, path, query) = match kind {
        Kind::Users => (&whole, "/users/delta", format!("$select={USER_FIELDS}")),
        Kind::Devices => (&whole, "/devices", format!("$top={top}")),
        Kind::Messages => (&cfg.mailboxes, messages.as_str(), String::new()),
        Kind::Events => (&cfg.mailboxes, "/users/{}/calendarView", window),
        Kind::ChatMessages => (&cfg.chats, "/chats/{}/messages", teams.into()),
        Kind::ChannelMessages => (&cfg.channels, channels, teams.into()),
        Kind::DriveItems => return Vec::new(),
    };
    let scope = |parts: &Vec<String>| {
        let pairs = query.split('&').filter_map(|q| q.split_once('='));
        let url = cfg.api.join(&url::fill(path, parts));
        let first = pairs.fold(url, |u, (k, v)| url::with_query(&u, k, v));
        let key = Some(parts.join("/")).filter(|k| !k.is_empty());
        let key = key.unwrap_or_else(|| format!("{}s", kind.name()));
        Scope(key, parts.clone(), first)
    };
    lists.iter().map(scope).collect()
}

pub fn page(cfg: &Config, kind: Kind, cursor: Option<&str>) -> Result<SyncPage> {
    let mut cur: Cursor = cursor::position(cursor)?;
    let name = kind.name();
    let scopes = scopes(kind, cfg, now_ms());
    let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
    let Some(scope) = cur.current(scopes.len()).map(|i| &scopes[i]) else {
        airlock_sdk::log::info!("stream of {name}s: nothing configured (see the settings)");
        return Ok(SyncPage::next(upserts, &Cursor::default()).done(true));
    };
    // A delta query (users, mail) keeps its deltaLink; the others list everything each run.
    let delta = matches!(kind, Kind::Users | Kind::Messages);
    let link = cur.link(&scope.0, delta);
    let link = cfg.link(Some(&link.unwrap_or_else(|| scope.2.clone())))?;
    let link = link.ok_or_else(|| Error::invalid_input("cursor holds an empty link"))?;
    let reply = Request::get(link).send()?;
    let observed = reply.date().unwrap_or_default();
    let page: ODataPage<Value> = reply.json()?;

    let gone = |id: &str| DocumentRef::new(name, kind.doc_id(&scope.1, id));
    let items = &page.value;
    let usable: Vec<(&Value, &str)> = items.iter().filter_map(|i| Some((i, id_of(i)?))).collect();
    let skipped = items.len() - usable.len();
    for (item, id) in usable {
        let removed = item.get("@removed").is_some() || !item["deletedDateTime"].is_null();
        if !delta {
            cur.saw(id);
        }
        // A delta round may send an updated user as only its changed properties: read the whole
        // record instead of indexing the partial one (which would blank the other fields).
        let partial = kind == Kind::Users && !removed && is_partial_user(item);
        let read = || odata::record(Ref(Kind::Users, vec![id.into()]).api_url(cfg));
        let whole = if partial { read()? } else { None };
        let item = whole.as_ref().unwrap_or(item);
        if removed || partial && whole.is_none() {
            // Deleted, or gone between the delta page and the read.
            deletes.push(gone(id));
        } else if let Some(doc) = kind.document(&scope.1, item, &observed) {
            upserts.push(doc);
        }
    }
    // One read of the scope's readers a page: a membership change reaches every message of a
    // full listing at the next run.
    if !upserts.is_empty() {
        let readers = kind.readers(cfg, &scope.1)?;
        upserts.iter_mut().for_each(|d| d.acl.clone_from(&readers));
    }
    if skipped > 0 {
        airlock_sdk::log::warn!("skipped {skipped} {name} records without a usable id");
    }

    let next = cfg.link(page.next_link.as_deref())?;
    let end = End::after(next, cfg.link(page.delta_link.as_deref())?, delta)?;
    // Scope by scope; a finished plain listing deletes what its last pass had and this one not.
    let keys: Vec<&str> = scopes.iter().map(|s| s.0.as_str()).collect();
    let (done, vanished) = cur.finish(&keys, end);
    deletes.extend(vanished.iter().map(|id| gone(id)));
    Ok(SyncPage::next(upserts, &cur).deletes(deletes).done(done))
}

/// A delta item that lacks one of the selected user properties: Graph sends an updated user as
/// its `id` plus at least the changed properties (only those under `Prefer: return=minimal`).
pub fn is_partial_user(item: &Value) -> bool {
    USER_FIELDS.split(',').any(|f| item.get(f).is_none())
}
