//! Microsoft 365 through Microsoft Graph v1.0: directory users (delta query), Entra devices (full
//! listing, deletions by difference), mail of configured mailboxes (mail-folder delta query),
//! calendar events in a moving window (`calendarView`, deletions by difference), Teams chat and
//! channel messages, live search of SharePoint/OneDrive files (`POST /search/query`), `get` by
//! document ref and a read-only `user-context` action (profile plus Intune managed devices with
//! their compliance state).
//!
//! Holds no credentials: the host's gate injects `Authorization: Bearer <token>` from its OAuth2
//! client-credentials grant (scope `https://graph.microsoft.com/.default`).
//!
//! Settings (see docs/connectors/msgraph.md): `base_url`, `mailboxes`, `mail_folder`,
//! `events_past_days`, `events_future_days`, `chats`, `channels`, `page_size`, `search_region`.

use std::collections::{BTreeMap, BTreeSet};

use airlock_sdk::serde_json::{self, Map, Value, json};
use airlock_sdk::text::parse_rfc3339;
use airlock_sdk::{
    ActionInfo, Connector, ConnectorInfo, Document, DocumentRef, Error, HealthStatus, Request,
    Response, Result, SearchRequest, SearchResult, StreamInfo, SyncPage, html_to_text, url,
};
use serde::{Deserialize, Serialize};

struct MsGraph;

airlock_sdk::export_connector!(MsGraph);

/// Fields asked for on users (`$select`), so the delta and `get` return the same shape.
const USER_FIELDS: &str = "id,displayName,givenName,surname,userPrincipalName,mail,jobTitle,\
                           department,officeLocation,mobilePhone,accountEnabled";
/// Graph's largest `$top` for Teams messages.
const TEAMS_PAGE: u32 = 50;
/// Upper bound on managed-device pages fetched for one user.
const MAX_DEVICE_PAGES: usize = 20;
/// Largest `size` one search request asks for.
const SEARCH_MAX_SIZE: u32 = 100;
const DAY_MS: i64 = 86_400_000;

impl Connector for MsGraph {
    fn info() -> ConnectorInfo {
        let stream = |name: &str, description: &str| StreamInfo {
            name: name.into(),
            description: description.into(),
        };
        ConnectorInfo {
            name: "msgraph".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Microsoft 365 through Microsoft Graph: users, devices, mail, calendars, \
                          Teams messages and SharePoint files"
                .into(),
            streams: vec![
                stream(
                    "users",
                    "Directory users through the /users/delta query: the first run lists \
                     everyone, later runs only changes; deleted users become deletes.",
                ),
                stream(
                    "devices",
                    "Entra ID devices: a full listing each run; devices gone since the last run \
                     become deletes.",
                ),
                stream(
                    "messages",
                    "Mail of every configured mailbox (setting `mailboxes`) in `mail_folder` \
                     (default inbox), through the mail-folder delta query; deletions arrive as \
                     deletes.",
                ),
                stream(
                    "events",
                    "Calendar events of every configured mailbox between `events_past_days` \
                     ago and `events_future_days` ahead (calendarView); a full pass each run, \
                     events gone from the window become deletes.",
                ),
                stream(
                    "chat-messages",
                    "Messages of the configured Teams chats (setting `chats`); a full pass \
                     each run, deleted messages become deletes.",
                ),
                stream(
                    "channel-messages",
                    "Top-level messages of the configured Teams channels (setting `channels`, \
                     `teamId/channelId`); a full pass each run, deleted messages become deletes.",
                ),
            ],
            actions: vec![ActionInfo {
                name: "user-context".into(),
                description: "Look a user up by email (user principal name or mail address) and \
                              return their profile and their Intune managed devices with \
                              compliance state."
                    .into(),
                input_schema: json!({"type": "object", "required": ["email"],
                    "properties": {"email": {"type": "string", "format": "email", "minLength": 3,
                        "description": "User principal name or primary mail address"}},
                    "additionalProperties": false})
                .to_string(),
                writes: false,
            }],
        }
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Config::load()?;
        Request::get(cfg.api("/users"))
            .query("$top", "1")
            .query("$select", "id")
            .send()?;
        let message = format!("Microsoft Graph at {} accepted the token", cfg.base);
        Ok(HealthStatus { ok: true, message })
    }

    fn search(request: SearchRequest) -> Result<SearchResult> {
        let cfg = Config::load()?;
        let query = request.query.trim();
        if query.is_empty() {
            return Err(Error::invalid_input("search query is empty"));
        }
        let size = match request.limit {
            0 => 25,
            n => n.min(SEARCH_MAX_SIZE),
        };
        let from = match request.cursor.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(c) => c
                .parse::<u32>()
                .map_err(|_| Error::invalid_input(format!("invalid search cursor: {c:?}")))?,
        };
        let body = json!({"requests": [{"entityTypes": ["driveItem"],
            "query": {"queryString": query}, "from": from, "size": size,
            "region": cfg.region}]});
        let reply: Value = Request::post(cfg.api("/search/query"))
            .json(&body)
            .send()?
            .json()?;
        let containers = reply
            .pointer("/value/0/hitsContainers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut hits = Vec::new();
        let mut more = false;
        for container in containers {
            more |= container
                .get("moreResultsAvailable")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let list = container.get("hits").and_then(Value::as_array);
            for hit in list.map(Vec::as_slice).unwrap_or_default() {
                let Some(resource) = hit.get("resource") else {
                    continue;
                };
                let summary = html_to_text(&text(hit, "/summary"));
                if let Some(doc) = drive_item_document(resource, Some(summary)) {
                    hits.push(doc);
                }
            }
        }
        let returned = u32::try_from(hits.len()).unwrap_or(u32::MAX);
        let next_cursor =
            (more && returned > 0).then(|| (from.saturating_add(returned)).to_string());
        Ok(SearchResult { hits, next_cursor })
    }

    fn get(id: String) -> Result<Document> {
        let cfg = Config::load()?;
        let reference = Ref::parse(&id)?;
        let reply = Request::get(reference.api_url(&cfg)).send()?;
        let observed = observed_at(&reply);
        let item: Value = reply.json()?;
        reference
            .document(&item, &observed)
            .ok_or_else(|| Error::upstream(format!("Graph returned an unusable record for {id}")))
    }

    /// Mail and calendar documents are readable by their mailbox's owner only; everything else
    /// by every principal of the tenant (Graph offers an application no per-user read check).
    fn check_permission(principal: String, id: String) -> Result<bool> {
        Ok(match Ref::parse(&id)? {
            Ref::Message(mailbox, _) | Ref::Event(mailbox, _) => {
                mailbox.eq_ignore_ascii_case(principal.trim())
            }
            _ => true,
        })
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        let cfg = Config::load()?;
        let kind = Kind::of_stream(&stream).ok_or_else(|| {
            Error::invalid_input(format!(
                "unknown stream `{stream}` (this connector has `users`, `devices`, `messages`, \
                 `events`, `chat-messages`, `channel-messages`)"
            ))
        })?;
        let cursor: Cursor = match cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => Cursor::default(),
            Some(c) => serde_json::from_str(c)
                .map_err(|e| Error::invalid_input(format!("invalid cursor {c:?}: {e}")))?,
        };
        sync_page(&cfg, kind, cursor)
    }

    fn invoke(action: String, input: String) -> Result<String> {
        if action != "user-context" {
            return Err(Error::not_found(format!("unknown action `{action}`")));
        }
        let input: Value = serde_json::from_str(&input)
            .map_err(|e| Error::invalid_input(format!("input is not JSON: {e}")))?;
        let email = input
            .get("email")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        let valid = email.len() >= 3
            && email.contains('@')
            && !email
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '\'' | '\\' | '"'));
        if !valid {
            return Err(Error::invalid_input(
                "`email` (a user principal name or mail address) is required",
            ));
        }
        let cfg = Config::load()?;
        let user = find_user(&cfg, email)?;
        let user_id = user
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| safe_segment(s))
            .ok_or_else(|| Error::upstream("Graph returned a user without a usable id"))?
            .to_owned();
        let devices = managed_devices(&cfg, &user_id)?;
        let mut compliance: BTreeMap<String, u64> = BTreeMap::new();
        for d in &devices {
            let state = d
                .get("complianceState")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            *compliance.entry(state.to_owned()).or_default() += 1;
        }
        let all_compliant = !devices.is_empty()
            && devices
                .iter()
                .all(|d| d.get("complianceState").and_then(Value::as_str) == Some("compliant"));
        let pick = |v: &Value, keys: &[&str]| -> Value {
            let map: Map<String, Value> = keys
                .iter()
                .map(|k| ((*k).to_owned(), v.get(*k).cloned().unwrap_or(Value::Null)))
                .collect();
            Value::Object(map)
        };
        let user_keys: Vec<&str> = USER_FIELDS.split(',').collect();
        let device_keys = [
            "id",
            "deviceName",
            "operatingSystem",
            "osVersion",
            "complianceState",
            "managementAgent",
            "lastSyncDateTime",
            "model",
            "manufacturer",
            "serialNumber",
        ];
        let out = json!({
            "user": pick(&user, &user_keys),
            "managedDevices": devices.iter().map(|d| pick(d, &device_keys)).collect::<Vec<_>>(),
            "deviceCount": devices.len(),
            "compliance": compliance,
            "allCompliant": all_compliant,
        });
        Ok(out.to_string())
    }
}

/// The user with this UPN (`/users/{upn}`), else the one whose `mail` matches.
fn find_user(cfg: &Config, email: &str) -> Result<Value> {
    let by_upn = Request::get(cfg.api(&format!("/users/{}", url::encode(email))))
        .query("$select", USER_FIELDS)
        .send();
    match by_upn {
        Ok(reply) => return reply.json(),
        Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let filter = format!("mail eq '{}'", email.replace('\'', "''"));
    let reply: Collection = Request::get(cfg.api("/users"))
        .query("$filter", &filter)
        .query("$select", USER_FIELDS)
        .send()?
        .json()?;
    reply
        .value
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found(format!("no user with principal name or mail {email}")))
}

/// Every Intune managed device of the user, following `@odata.nextLink`.
fn managed_devices(cfg: &Config, user_id: &str) -> Result<Vec<Value>> {
    let mut link = cfg.api(&format!("/users/{}/managedDevices", url::encode(user_id)));
    let mut out = Vec::new();
    for _ in 0..MAX_DEVICE_PAGES {
        let page: Collection = Request::get(link).send()?.json()?;
        out.extend(page.value);
        match cfg.checked_link(page.next_link.as_deref())? {
            Some(next) => link = next,
            None => return Ok(out),
        }
    }
    airlock_sdk::log::warn!("stopped after {MAX_DEVICE_PAGES} managed-device pages");
    Ok(out)
}

// ---- Settings ------------------------------------------------------------------------------

/// Connector settings, read from the host on every call (instances are stateless).
struct Config {
    /// Service root without a trailing slash or `/v1.0`, e.g. `https://graph.microsoft.com`.
    base: String,
    mailboxes: Vec<String>,
    mail_folder: String,
    past_days: i64,
    future_days: i64,
    chats: Vec<String>,
    /// `(team id, channel id)`.
    channels: Vec<(String, String)>,
    page_size: u32,
    region: String,
}

fn list_setting(key: &str) -> Result<Vec<String>> {
    let raw = airlock_sdk::setting(key).unwrap_or_default();
    let items: Vec<String> = raw
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = items.iter().find(|s| !safe_segment(s)) {
        return Err(Error::invalid_input(format!(
            "setting `{key}` holds an unusable id: {bad:?}"
        )));
    }
    Ok(items)
}

fn number_setting(key: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64> {
    match airlock_sdk::setting(key).map(|s| s.trim().to_owned()) {
        None => Ok(default),
        Some(s) if s.is_empty() => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "setting `{key}` must be a whole number in {}..={}: {s:?}",
                    range.start(),
                    range.end()
                ))
            }),
    }
}

impl Config {
    fn load() -> Result<Config> {
        let base = airlock_sdk::setting("base_url")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "https://graph.microsoft.com".into());
        if url::split(&base).is_none_or(|p| !matches!(p.scheme, "http" | "https")) {
            return Err(Error::invalid_input(format!(
                "setting `base_url` is not an http(s) URL: {base}"
            )));
        }
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/v1.0").unwrap_or(base).to_owned();
        let mut channels = Vec::new();
        let raw_channels = airlock_sdk::setting("channels").unwrap_or_default();
        for item in raw_channels
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match item.split_once('/') {
                Some((team, channel)) if safe_segment(team) && safe_segment(channel) => {
                    channels.push((team.to_owned(), channel.to_owned()));
                }
                _ => {
                    return Err(Error::invalid_input(format!(
                        "setting `channels`: expected `teamId/channelId`, got {item:?}"
                    )));
                }
            }
        }
        let mail_folder = airlock_sdk::setting("mail_folder")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "inbox".into());
        if !safe_segment(&mail_folder) {
            return Err(Error::invalid_input(format!(
                "setting `mail_folder` is not a folder id or well-known name: {mail_folder:?}"
            )));
        }
        let region = airlock_sdk::setting("search_region")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "NAM".into());
        Ok(Config {
            base,
            mailboxes: list_setting("mailboxes")?,
            mail_folder,
            past_days: number_setting("events_past_days", 30, 0..=3650)?,
            future_days: number_setting("events_future_days", 90, 0..=3650)?,
            chats: list_setting("chats")?,
            channels,
            page_size: u32::try_from(number_setting("page_size", 100, 1..=999)?).unwrap_or(100),
            region,
        })
    }

    fn api(&self, path: &str) -> String {
        format!("{}/v1.0{path}", self.base)
    }

    /// A link from the upstream (`@odata.nextLink`/`@odata.deltaLink`), accepted only under the
    /// configured service root so a reply cannot steer the connector elsewhere; `None` if absent.
    fn checked_link(&self, link: Option<&str>) -> Result<Option<String>> {
        let link = link.map(str::trim).unwrap_or("");
        if link.is_empty() {
            return Ok(None);
        }
        let link = url::resolve(&self.api("/"), link);
        if !link.starts_with(&self.api("/")) {
            return Err(Error::upstream(format!(
                "Graph link leaves {}: {}",
                self.base,
                url::path(&link)
            )));
        }
        Ok(Some(link))
    }
}

/// An id that can be put into one URL path segment as is (after percent-encoding).
fn safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | '?' | '#'))
}

// ---- Document refs -------------------------------------------------------------------------

/// The record behind a document id. Document ids are `{kind}:{path}` so `get(doc.id)` works
/// for every kind: `user:{id}`, `device:{id}`, `message:{mailbox}/{id}`,
/// `event:{mailbox}/{id}`, `chat-message:{chat}/{id}`, `channel-message:{team}/{channel}/{id}`,
/// `drive-item:{drive}/{item}`.
#[derive(Debug, PartialEq)]
enum Ref {
    User(String),
    Device(String),
    Message(String, String),
    Event(String, String),
    ChatMessage(String, String),
    ChannelMessage(String, String, String),
    DriveItem(String, String),
}

impl Ref {
    fn parse(id: &str) -> Result<Ref> {
        let id = id.trim();
        let bad = |why: &str| Error::invalid_input(format!("invalid document id {id:?}: {why}"));
        let (kind, rest) = id.split_once(':').ok_or_else(|| {
            bad("expected `kind:id` (user, device, message, event, chat-message, channel-message, drive-item)")
        })?;
        let parts: Vec<String> = rest.split('/').map(str::to_owned).collect();
        if parts.iter().any(|p| !safe_segment(p)) {
            return Err(bad("empty or unusable path segment"));
        }
        let n = parts.len();
        let mut it = parts.into_iter();
        let mut next = || it.next().unwrap_or_default();
        Ok(match (kind, n) {
            ("user", 1) => Ref::User(next()),
            ("device", 1) => Ref::Device(next()),
            ("message", 2) => Ref::Message(next(), next()),
            ("event", 2) => Ref::Event(next(), next()),
            ("chat-message", 2) => Ref::ChatMessage(next(), next()),
            ("channel-message", 3) => Ref::ChannelMessage(next(), next(), next()),
            ("drive-item", 2) => Ref::DriveItem(next(), next()),
            _ => return Err(bad("unknown kind or wrong number of segments")),
        })
    }

    fn api_url(&self, cfg: &Config) -> String {
        let e = |s: &String| url::encode(s);
        match self {
            Ref::User(id) => url::with_query(
                &cfg.api(&format!("/users/{}", e(id))),
                "$select",
                USER_FIELDS,
            ),
            Ref::Device(id) => cfg.api(&format!("/devices/{}", e(id))),
            Ref::Message(m, id) => cfg.api(&format!("/users/{}/messages/{}", e(m), e(id))),
            Ref::Event(m, id) => cfg.api(&format!("/users/{}/events/{}", e(m), e(id))),
            Ref::ChatMessage(c, id) => cfg.api(&format!("/chats/{}/messages/{}", e(c), e(id))),
            Ref::ChannelMessage(t, c, id) => cfg.api(&format!(
                "/teams/{}/channels/{}/messages/{}",
                e(t),
                e(c),
                e(id)
            )),
            Ref::DriveItem(d, id) => cfg.api(&format!("/drives/{}/items/{}", e(d), e(id))),
        }
    }

    fn document(&self, item: &Value, observed: &str) -> Option<Document> {
        let scope = match self {
            Ref::Message(m, _) | Ref::Event(m, _) => vec![m.clone()],
            Ref::ChatMessage(c, _) => vec![c.clone()],
            Ref::ChannelMessage(t, c, _) => vec![t.clone(), c.clone()],
            _ => Vec::new(),
        };
        match self {
            Ref::DriveItem(..) => drive_item_document(item, None),
            Ref::User(_) => Kind::Users.document(&scope, item, observed),
            Ref::Device(_) => Kind::Devices.document(&scope, item, observed),
            Ref::Message(..) => Kind::Messages.document(&scope, item, observed),
            Ref::Event(..) => Kind::Events.document(&scope, item, observed),
            Ref::ChatMessage(..) => Kind::ChatMessages.document(&scope, item, observed),
            Ref::ChannelMessage(..) => Kind::ChannelMessages.document(&scope, item, observed),
        }
    }
}

// ---- Sync ----------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Users,
    Devices,
    Messages,
    Events,
    ChatMessages,
    ChannelMessages,
}

/// How a stream learns about deletions.
#[derive(PartialEq)]
enum Mode {
    /// Graph delta query: follow nextLink until a deltaLink, keep the deltaLink; deletions carry
    /// `@removed`.
    Delta,
    /// A full listing every run; ids missing since the previous complete pass are deleted.
    Snapshot,
}

/// One listing a stream walks: a key (stable across runs) and the scope's path segments.
struct Scope {
    key: String,
    parts: Vec<String>,
    first: String,
}

impl Kind {
    fn of_stream(stream: &str) -> Option<Kind> {
        Some(match stream {
            "users" => Kind::Users,
            "devices" => Kind::Devices,
            "messages" => Kind::Messages,
            "events" => Kind::Events,
            "chat-messages" => Kind::ChatMessages,
            "channel-messages" => Kind::ChannelMessages,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Users => "user",
            Kind::Devices => "device",
            Kind::Messages => "message",
            Kind::Events => "event",
            Kind::ChatMessages => "chat-message",
            Kind::ChannelMessages => "channel-message",
        }
    }

    fn mode(self) -> Mode {
        match self {
            Kind::Users | Kind::Messages => Mode::Delta,
            _ => Mode::Snapshot,
        }
    }

    /// The listings of this stream, with the first URL of each.
    fn scopes(self, cfg: &Config, now_ms: i64) -> Vec<Scope> {
        let e = |s: &str| url::encode(s);
        let top = cfg.page_size.to_string();
        match self {
            Kind::Users => vec![Scope {
                key: "users".into(),
                parts: Vec::new(),
                first: url::with_query(&cfg.api("/users/delta"), "$select", USER_FIELDS),
            }],
            Kind::Devices => vec![Scope {
                key: "devices".into(),
                parts: Vec::new(),
                first: url::with_query(&cfg.api("/devices"), "$top", &top),
            }],
            Kind::Messages => cfg
                .mailboxes
                .iter()
                .map(|m| Scope {
                    key: m.clone(),
                    parts: vec![m.clone()],
                    first: cfg.api(&format!(
                        "/users/{}/mailFolders/{}/messages/delta",
                        e(m),
                        e(&cfg.mail_folder)
                    )),
                })
                .collect(),
            Kind::Events => {
                let start =
                    rfc3339_of_ms(now_ms.div_euclid(DAY_MS) * DAY_MS - cfg.past_days * DAY_MS);
                let end = rfc3339_of_ms(
                    (now_ms.div_euclid(DAY_MS) + 1) * DAY_MS + cfg.future_days * DAY_MS,
                );
                cfg.mailboxes
                    .iter()
                    .map(|m| {
                        let first = cfg.api(&format!("/users/{}/calendarView", e(m)));
                        let first = url::with_query(&first, "startDateTime", &start);
                        let first = url::with_query(&first, "endDateTime", &end);
                        Scope {
                            key: m.clone(),
                            parts: vec![m.clone()],
                            first: url::with_query(&first, "$top", &top),
                        }
                    })
                    .collect()
            }
            Kind::ChatMessages => cfg
                .chats
                .iter()
                .map(|c| Scope {
                    key: c.clone(),
                    parts: vec![c.clone()],
                    first: url::with_query(
                        &cfg.api(&format!("/chats/{}/messages", e(c))),
                        "$top",
                        &TEAMS_PAGE.to_string(),
                    ),
                })
                .collect(),
            Kind::ChannelMessages => cfg
                .channels
                .iter()
                .map(|(t, c)| Scope {
                    key: format!("{t}/{c}"),
                    parts: vec![t.clone(), c.clone()],
                    first: url::with_query(
                        &cfg.api(&format!("/teams/{}/channels/{}/messages", e(t), e(c))),
                        "$top",
                        &TEAMS_PAGE.to_string(),
                    ),
                })
                .collect(),
        }
    }

    /// Document id: `{kind}:{scope parts}/{item id}`.
    fn doc_id(self, scope: &[String], item_id: &str) -> String {
        let mut path = scope.join("/");
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(item_id);
        format!("{}:{path}", self.name())
    }

    /// Maps one upstream record; `None` for records without a usable id or that are not content
    /// (Teams system events).
    fn document(self, scope: &[String], item: &Value, observed: &str) -> Option<Document> {
        let id = item.get("id").and_then(Value::as_str)?;
        if !safe_segment(id) {
            return None;
        }
        let t = |p: &str| text(item, p);
        let meta_of = |keys: &[&str]| -> Map<String, Value> {
            keys.iter()
                .map(|k| {
                    (
                        (*k).to_owned(),
                        item.get(*k).cloned().unwrap_or(Value::Null),
                    )
                })
                .collect()
        };
        let first_nonempty = |values: &[String]| {
            values
                .iter()
                .find(|v| !v.trim().is_empty())
                .cloned()
                .unwrap_or_default()
        };
        let mut acl = Vec::new();
        let (title, body, url, updated_at, meta) = match self {
            Kind::Users => {
                let title = first_nonempty(&[t("/displayName"), t("/userPrincipalName")]);
                let lines = [
                    t("/displayName"),
                    join_nonempty(&[t("/jobTitle"), t("/department")], ", "),
                    t("/officeLocation"),
                    join_nonempty(&[t("/mail"), t("/userPrincipalName")], " "),
                ];
                let meta = meta_of(&[
                    "userPrincipalName",
                    "mail",
                    "givenName",
                    "surname",
                    "jobTitle",
                    "department",
                    "officeLocation",
                    "accountEnabled",
                ]);
                (
                    title,
                    join_nonempty(&lines, "\n"),
                    None,
                    observed.to_owned(),
                    meta,
                )
            }
            Kind::Devices => {
                let title = first_nonempty(&[t("/displayName"), t("/deviceId")]);
                let os = join_nonempty(&[t("/operatingSystem"), t("/operatingSystemVersion")], " ");
                let trust = t("/trustType");
                let lines = [title.clone(), os, trust];
                let updated = first_nonempty(&[
                    t("/approximateLastSignInDateTime"),
                    t("/registrationDateTime"),
                    observed.to_owned(),
                ]);
                let meta = meta_of(&[
                    "deviceId",
                    "operatingSystem",
                    "operatingSystemVersion",
                    "trustType",
                    "isCompliant",
                    "isManaged",
                    "accountEnabled",
                    "approximateLastSignInDateTime",
                ]);
                (title, join_nonempty(&lines, "\n"), None, updated, meta)
            }
            Kind::Messages => {
                let mailbox = scope.first().cloned().unwrap_or_default();
                acl.push(mailbox.clone());
                let title = first_nonempty(&[t("/subject"), "(no subject)".into()]);
                let body = first_nonempty(&[item_body(item), t("/bodyPreview")]);
                let updated = first_nonempty(&[t("/lastModifiedDateTime"), t("/receivedDateTime")]);
                let mut meta =
                    meta_of(&["receivedDateTime", "conversationId", "isRead", "importance"]);
                meta.insert("mailbox".into(), json!(mailbox));
                meta.insert("from".into(), json!(t("/from/emailAddress/address")));
                meta.insert("to".into(), json!(addresses(item.get("toRecipients"))));
                let url = Some(t("/webLink")).filter(|u| !u.is_empty());
                (title, body, url, updated, meta)
            }
            Kind::Events => {
                let mailbox = scope.first().cloned().unwrap_or_default();
                acl.push(mailbox.clone());
                let title = first_nonempty(&[t("/subject"), "(no subject)".into()]);
                let location = t("/location/displayName");
                let when = format!("{} – {}", t("/start/dateTime"), t("/end/dateTime"));
                let body = join_nonempty(&[item_body(item), location.clone(), when], "\n");
                let mut meta = meta_of(&["isCancelled", "isAllDay"]);
                meta.insert("mailbox".into(), json!(mailbox));
                meta.insert("start".into(), json!(t("/start/dateTime")));
                meta.insert("end".into(), json!(t("/end/dateTime")));
                meta.insert("timeZone".into(), json!(t("/start/timeZone")));
                meta.insert("location".into(), json!(location));
                meta.insert(
                    "organizer".into(),
                    json!(t("/organizer/emailAddress/address")),
                );
                let attendees: Vec<String> = item
                    .get("attendees")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|a| text(a, "/emailAddress/address"))
                    .filter(|a| !a.is_empty())
                    .collect();
                meta.insert("attendees".into(), json!(attendees));
                let url = Some(t("/webLink")).filter(|u| !u.is_empty());
                (title, body, url, t("/lastModifiedDateTime"), meta)
            }
            Kind::ChatMessages | Kind::ChannelMessages => {
                if !matches!(
                    item.get("messageType").and_then(Value::as_str),
                    None | Some("message")
                ) {
                    return None;
                }
                let author = first_nonempty(&[
                    t("/from/user/displayName"),
                    t("/from/application/displayName"),
                    "unknown".into(),
                ]);
                let place = if self == Kind::ChatMessages {
                    "chat"
                } else {
                    "channel"
                };
                let title =
                    first_nonempty(&[t("/subject"), format!("Message from {author} in {place}")]);
                let mut meta = meta_of(&["createdDateTime", "importance"]);
                meta.insert("from".into(), json!(author));
                meta.insert("fromUserId".into(), json!(t("/from/user/id")));
                if self == Kind::ChatMessages {
                    meta.insert("chatId".into(), json!(scope.first()));
                } else {
                    meta.insert("teamId".into(), json!(scope.first()));
                    meta.insert("channelId".into(), json!(scope.get(1)));
                }
                let updated = first_nonempty(&[t("/lastModifiedDateTime"), t("/createdDateTime")]);
                let url = Some(t("/webUrl")).filter(|u| !u.is_empty());
                (title, item_body(item), url, updated, meta)
            }
        };
        Some(Document {
            id: self.doc_id(scope, id),
            kind: self.name().into(),
            title,
            body,
            url,
            updated_at,
            metadata: Value::Object(meta).to_string(),
            acl,
        })
    }
}

/// Sync cursor, the same shape for every stream. `scope` and `next` locate the page to fetch;
/// `delta` keeps each finished scope's deltaLink (delta streams); `known` keeps each scope's ids
/// of the last complete pass and `seen` the ids of the pass in progress (snapshot streams).
#[derive(Default, Debug, PartialEq, Serialize, Deserialize)]
struct Cursor {
    #[serde(default)]
    scope: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    delta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    known: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<String>,
}

fn encode_cursor(cursor: &Cursor) -> Result<String> {
    serde_json::to_string(cursor).map_err(|e| Error::internal(format!("cursor: {e}")))
}

fn sync_page(cfg: &Config, kind: Kind, mut cursor: Cursor) -> Result<SyncPage> {
    let scopes = kind.scopes(cfg, now_ms());
    if scopes.is_empty() {
        airlock_sdk::log::info!(
            "stream of {}s: nothing configured (see the connector's settings)",
            kind.name()
        );
        return Ok(SyncPage {
            upserts: Vec::new(),
            deletes: Vec::new(),
            next_cursor: Some(encode_cursor(&Cursor::default())?),
            done: true,
        });
    }
    if cursor.scope >= scopes.len() {
        // The settings changed under a run in progress: start the pass over.
        cursor.scope = 0;
        cursor.next = None;
        cursor.seen.clear();
    }
    let scope = &scopes[cursor.scope];
    let link = match cursor.next.take() {
        Some(next) => next,
        None if kind.mode() == Mode::Delta => cursor
            .delta
            .get(&scope.key)
            .cloned()
            .unwrap_or_else(|| scope.first.clone()),
        None => scope.first.clone(),
    };
    let link = cfg
        .checked_link(Some(&link))?
        .ok_or_else(|| Error::invalid_input("cursor holds an empty link"))?;
    let reply = Request::get(link).send()?;
    let observed = observed_at(&reply);
    let page: Collection = reply.json()?;

    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    let mut skipped = 0usize;
    for item in &page.value {
        let Some(id) = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| safe_segment(s))
        else {
            skipped += 1;
            continue;
        };
        let removed = item.get("@removed").is_some()
            || item.get("deletedDateTime").is_some_and(|d| !d.is_null());
        if kind.mode() == Mode::Snapshot {
            cursor.seen.push(id.to_owned());
        }
        // A delta round may send an updated user as only its changed properties: read the whole
        // record instead of indexing the partial one (which would blank the other fields).
        let full;
        let item = match kind {
            Kind::Users if !removed && is_partial_user(item) => match whole_user(cfg, id)? {
                Some(user) => {
                    full = user;
                    &full
                }
                None => {
                    // Gone between the delta page and the read: a delete.
                    deletes.push(DocumentRef {
                        kind: kind.name().into(),
                        id: kind.doc_id(&scope.parts, id),
                    });
                    continue;
                }
            },
            _ => item,
        };
        if removed {
            deletes.push(DocumentRef {
                kind: kind.name().into(),
                id: kind.doc_id(&scope.parts, id),
            });
        } else if let Some(doc) = kind.document(&scope.parts, item, &observed) {
            upserts.push(doc);
        }
    }
    if skipped > 0 {
        airlock_sdk::log::warn!(
            "skipped {skipped} {} records without a usable id",
            kind.name()
        );
    }

    let next = cfg.checked_link(page.next_link.as_deref())?;
    let mut done = false;
    if next.is_some() {
        cursor.next = next;
    } else {
        // This scope's pass is complete.
        match kind.mode() {
            Mode::Delta => {
                let delta = cfg
                    .checked_link(page.delta_link.as_deref())?
                    .ok_or_else(|| {
                        Error::upstream(format!(
                            "delta page for {} has neither @odata.nextLink nor @odata.deltaLink",
                            kind.name()
                        ))
                    })?;
                cursor.delta.insert(scope.key.clone(), delta);
            }
            Mode::Snapshot => {
                let seen: BTreeSet<String> = std::mem::take(&mut cursor.seen).into_iter().collect();
                let known = cursor.known.remove(&scope.key).unwrap_or_default();
                for gone in known.iter().filter(|id| !seen.contains(*id)) {
                    deletes.push(DocumentRef {
                        kind: kind.name().into(),
                        id: kind.doc_id(&scope.parts, gone),
                    });
                }
                cursor
                    .known
                    .insert(scope.key.clone(), seen.into_iter().collect());
            }
        }
        cursor.scope += 1;
        if cursor.scope >= scopes.len() {
            cursor.scope = 0;
            done = true;
            let keys: BTreeSet<&String> = scopes.iter().map(|s| &s.key).collect();
            cursor.delta.retain(|k, _| keys.contains(k));
            cursor.known.retain(|k, _| keys.contains(k));
        }
    }
    Ok(SyncPage {
        upserts,
        deletes,
        next_cursor: Some(encode_cursor(&cursor)?),
        done,
    })
}

// ---- Upstream shapes and helpers -----------------------------------------------------------

/// A delta item that lacks one of the selected user properties: Graph sends an updated user as
/// its `id` plus at least the changed properties (only those under `Prefer: return=minimal`).
fn is_partial_user(item: &Value) -> bool {
    USER_FIELDS
        .split(',')
        .any(|field| item.get(field.trim()).is_none())
}

/// The whole user (`GET /users/{id}?$select=…`), `None` when Graph no longer has it.
fn whole_user(cfg: &Config, id: &str) -> Result<Option<Value>> {
    match Request::get(Ref::User(id.to_owned()).api_url(cfg)).send() {
        Ok(reply) => reply.json().map(Some),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A Graph collection: `value`, `@odata.nextLink`, `@odata.deltaLink`.
#[derive(Deserialize)]
struct Collection {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

/// A string (or scalar) at `pointer`, `""` when missing or null.
fn text(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn join_nonempty(parts: &[String], sep: &str) -> String {
    let parts: Vec<&str> = parts
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    parts.join(sep)
}

/// `body.content` as plain text (HTML when `body.contentType` is `html`).
fn item_body(item: &Value) -> String {
    let content = text(item, "/body/content");
    if text(item, "/body/contentType").eq_ignore_ascii_case("html") {
        html_to_text(&content)
    } else {
        content.trim().to_owned()
    }
}

fn addresses(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| text(r, "/emailAddress/address"))
        .filter(|a| !a.is_empty())
        .collect()
}

/// A SharePoint/OneDrive item (a search hit's `resource` or `/drives/{d}/items/{i}`).
fn drive_item_document(item: &Value, summary: Option<String>) -> Option<Document> {
    let id = item
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| safe_segment(s))?;
    let drive = text(item, "/parentReference/driveId");
    if !safe_segment(&drive) {
        return None;
    }
    let t = |p: &str| text(item, p);
    let name = t("/name");
    let body = join_nonempty(
        &[name.clone(), t("/description"), summary.unwrap_or_default()],
        "\n",
    );
    let meta = json!({"driveId": drive, "siteId": t("/parentReference/siteId"),
        "path": t("/parentReference/path"), "size": item.get("size"),
        "mimeType": t("/file/mimeType"), "createdBy": t("/createdBy/user/displayName"),
        "lastModifiedBy": t("/lastModifiedBy/user/displayName")});
    Some(Document {
        id: format!("drive-item:{drive}/{id}"),
        kind: "drive-item".into(),
        title: name,
        body,
        url: Some(t("/webUrl")).filter(|u| !u.is_empty()),
        updated_at: t("/lastModifiedDateTime"),
        metadata: meta.to_string(),
        acl: Vec::new(),
    })
}

/// When the upstream answered (its `Date` header) as RFC 3339, else `""`. Used as `updated-at`
/// of records Graph gives no modification time (users, some devices).
fn observed_at(reply: &Response) -> String {
    reply
        .header("date")
        .and_then(http_date_to_rfc3339)
        .unwrap_or_default()
}

/// `Wed, 25 Nov 2026 23:18:39 GMT` (RFC 9110 IMF-fixdate) as `2026-11-25T23:18:39Z`.
fn http_date_to_rfc3339(value: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? + 1;
    let (day, year): (u32, u32) = (day.parse().ok()?, year.parse().ok()?);
    let out = format!("{year:04}-{month:02}-{day:02}T{time}Z");
    parse_rfc3339(&out).map(|_| out)
}

/// Wall-clock milliseconds since the epoch (`wasi:clocks` through std).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `2026-01-02T03:04:05Z` for milliseconds since the epoch (UTC, whole seconds).
fn rfc3339_of_ms(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let secs = ms.rem_euclid(DAY_MS) / 1000;
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_user_missing_a_selected_property_is_partial() {
        let whole: Value = serde_json::from_str(
            r#"{"id":"u1","displayName":"Ada Adams","givenName":"Ada","surname":"Adams",
            "userPrincipalName":"ada@contoso.com","mail":"ada@contoso.com","jobTitle":null,
            "department":"IT","officeLocation":"Berlin","mobilePhone":null,"accountEnabled":true}"#,
        )
        .unwrap_or_default();
        assert!(!is_partial_user(&whole), "nulls are values, not gaps");
        let changed = json!({"id": "u1", "jobTitle": "Senior Program Manager"});
        assert!(is_partial_user(&changed));
    }

    #[test]
    fn refs_round_trip_and_reject_path_tricks() {
        assert_eq!(Ref::parse("user:abc").unwrap(), Ref::User("abc".into()));
        assert_eq!(
            Ref::parse(" message:a@b.com/AAMk= ").unwrap(),
            Ref::Message("a@b.com".into(), "AAMk=".into())
        );
        assert_eq!(
            Ref::parse("channel-message:t/19:x@thread.tacv2/1").unwrap(),
            Ref::ChannelMessage("t".into(), "19:x@thread.tacv2".into(), "1".into())
        );
        for bad in [
            "abc",
            "user:",
            "user:a/b",
            "message:a",
            "event:a/../b",
            "drive-item:d/..",
            "device:a?x",
            "nope:a",
        ] {
            assert!(Ref::parse(bad).is_err(), "{bad}");
        }
        let id = Kind::ChannelMessages.doc_id(&["t".into(), "c".into()], "9");
        assert_eq!(id, "channel-message:t/c/9");
        assert!(matches!(Ref::parse(&id), Ok(Ref::ChannelMessage(..))));
    }

    #[test]
    fn records_map_to_documents() {
        let user = json!({"id": "u1", "displayName": "Ann Lee", "jobTitle": "CFO",
            "department": "Finance", "mail": "ann@x.com", "userPrincipalName": "ann@x.com",
            "accountEnabled": true});
        let d = Kind::Users
            .document(&[], &user, "2026-01-01T00:00:00Z")
            .unwrap();
        assert_eq!((d.id.as_str(), d.title.as_str()), ("user:u1", "Ann Lee"));
        assert_eq!(d.body, "Ann Lee\nCFO, Finance\nann@x.com ann@x.com");
        assert_eq!(d.updated_at, "2026-01-01T00:00:00Z");
        let msg = json!({"id": "m1", "subject": "Hi", "body": {"contentType": "html",
            "content": "<p>a &amp; b</p>"}, "from": {"emailAddress": {"address": "x@y"}},
            "toRecipients": [{"emailAddress": {"address": "ann@x.com"}}],
            "lastModifiedDateTime": "2026-01-02T00:00:00Z"});
        let d = Kind::Messages
            .document(&["ann@x.com".into()], &msg, "")
            .unwrap();
        assert_eq!(
            (d.id.as_str(), d.body.as_str()),
            ("message:ann@x.com/m1", "a & b")
        );
        assert_eq!(d.acl, vec!["ann@x.com".to_owned()]);
        let system = json!({"id": "1", "messageType": "systemEventMessage"});
        assert!(
            Kind::ChatMessages
                .document(&["c".into()], &system, "")
                .is_none()
        );
        assert!(
            Kind::Users
                .document(&[], &json!({"displayName": "x"}), "")
                .is_none()
        );
        let item = json!({"id": "i1", "name": "Plan.docx", "parentReference": {"driveId": "d1"},
            "lastModifiedDateTime": "2026-01-01T00:00:00Z", "webUrl": "https://x/Plan.docx"});
        let d = drive_item_document(&item, Some("the plan".into())).unwrap();
        assert_eq!(
            (d.id.as_str(), d.body.as_str()),
            ("drive-item:d1/i1", "Plan.docx\nthe plan")
        );
    }

    #[test]
    fn dates_and_cursors() {
        assert_eq!(rfc3339_of_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_of_ms(1_767_323_045_000), "2026-01-02T03:04:05Z");
        assert_eq!(
            http_date_to_rfc3339("Wed, 25 Nov 2026 23:18:39 GMT").as_deref(),
            Some("2026-11-25T23:18:39Z")
        );
        assert_eq!(encode_cursor(&Cursor::default()).unwrap(), r#"{"scope":0}"#);
        let c: Cursor = serde_json::from_str(r#"{"scope":1,"next":"x"}"#).unwrap();
        assert_eq!((c.scope, c.next.as_deref()), (1, Some("x")));
    }
}
