//! Microsoft 365 through Microsoft Graph v1.0: directory users (delta query), Entra devices (full
//! listing, deletions by difference), mail of configured mailboxes (mail-folder delta query),
//! calendar events in a moving window (`calendarView`, deletions by difference), Teams chat and
//! channel messages, live search of SharePoint/OneDrive files (`POST /search/query`), `get` by
//! document ref, a read-only `user-context` action (profile plus Intune managed devices with
//! their compliance state) and `resolve-identity` (a user's object id and transitive groups, for
//! the host's permission matching).
//!
//! Holds no credentials: the host's gate injects `Authorization: Bearer <token>` from its OAuth2
//! client-credentials grant (scope `https://graph.microsoft.com/.default`).
//!
//! Settings (see docs/connectors/msgraph.md): `base_url`, `mailboxes`, `mail_folder`,
//! `events_past_days`, `events_future_days`, `chats`, `channels`, `page_size`, `search_region`.

mod config;
mod documents;
mod identity;
mod sync;

use airlock_sdk::json::{array, pick, tally, text};
use airlock_sdk::paging::{self, ODataPage};
use airlock_sdk::serde_json::{Value, json};
use airlock_sdk::text::lines;
use airlock_sdk::{
    ActionInfo, Connector, ConnectorInfo, Document, Error, HealthStatus, Request, Result,
    SearchRequest, SearchResult, SyncPage, acl, html_to_text, odata, url,
};
use config::Config;
use documents::{KINDS, Kind, Ref, STREAMS, id_of};
use serde::Deserialize;

struct MsGraph;

airlock_sdk::export_connector!(MsGraph);

/// What the connector reads.
const ABOUT: &str = "Microsoft 365 through Microsoft Graph: users, devices, mail, calendars, Teams \
                     messages and SharePoint files";
/// What `user-context` does.
const USER_CONTEXT: &str = "Look a user up by email (user principal name or mail address) and \
                            return their profile and their Intune managed devices with compliance \
                            state.";
/// Fields asked for on users (`$select`), so the delta and `get` return the same shape.
const USER_FIELDS: &str = "id,displayName,givenName,surname,userPrincipalName,mail,jobTitle,\
                           department,officeLocation,mobilePhone,accountEnabled";
/// Fields of each managed device in `user-context`'s answer.
const DEVICE_FIELDS: &str = "id,deviceName,operatingSystem,osVersion,complianceState,\
                             managementAgent,lastSyncDateTime,model,manufacturer,serialNumber";
/// Upper bound on the pages of a user's managed devices, or of a record's members or permissions.
const MAX_PAGES: usize = 30;
/// Largest `size` one search request asks for.
const SEARCH_MAX_SIZE: u32 = 100;

// The input of `user-context`.
#[derive(Deserialize, airlock_sdk::schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "airlock_sdk::schemars")]
struct UserContext {
    /// User principal name or primary mail address
    #[schemars(email, length(min = 3))]
    email: String,
}

impl Connector for MsGraph {
    fn info() -> ConnectorInfo {
        let info = ConnectorInfo::new("msgraph", env!("CARGO_PKG_VERSION"), ABOUT);
        let streams = KINDS.iter().zip(STREAMS);
        let info = streams.fold(info, |info, (k, d)| info.stream(&format!("{}s", k.1), d));
        let info = info.action(ActionInfo::new::<UserContext>("user-context", USER_CONTEXT));
        info.action(ActionInfo::new::<identity::Input>(
            identity::ACTION,
            identity::ABOUT,
        ))
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Config::load()?;
        let users = Request::get(cfg.api.join("/users")).query("$top", "1");
        users.query("$select", "id").send()?;
        let message = format!("Microsoft Graph at {} accepted the token", cfg.api);
        Ok(HealthStatus::ok(message))
    }

    fn search(request: SearchRequest) -> Result<SearchResult> {
        let (cfg, query) = (Config::load()?, request.query_text()?);
        let size = request.limit_or(25, SEARCH_MAX_SIZE);
        let from = airlock_sdk::cursor::number(request.cursor.as_deref(), 0)?;
        let body = json!({"requests": [{"entityTypes": ["driveItem"],
            "query": {"queryString": query}, "from": from, "size": size, "region": cfg.region}]});
        let request = Request::post(cfg.api.join("/search/query")).json(&body);
        let reply: Value = request.send()?.json()?;
        let containers = array(&reply, "/value/0/hitsContainers");
        let more_flag = |c: &Value| c["moreResultsAvailable"] == true;
        let more = containers.clone().any(more_flag);
        let hit = |hit: &Value| {
            let mut doc = Kind::DriveItems.document(&[], hit.get("resource")?, "")?;
            doc.body = lines(&[doc.body, html_to_text(&text(hit, "/summary"))]);
            Some(doc)
        };
        let hits = containers.flat_map(|c| array(c, "/hits"));
        let hits: Vec<Document> = hits.filter_map(hit).collect();
        let returned = u32::try_from(hits.len()).unwrap_or(u32::MAX);
        let next_cursor = paging::next_offset(from, returned, !more).map(|n| n.to_string());
        Ok(SearchResult { hits, next_cursor })
    }

    fn get(id: String) -> Result<Document> {
        let (cfg, reference) = (Config::load()?, Ref::parse(&id)?);
        let reply = Request::get(reference.api_url(&cfg)).send()?;
        let observed = reply.date().unwrap_or_default();
        let unusable = || Error::upstream(format!("Graph returned an unusable record for {id}"));
        let Ref(kind, parts) = &reference;
        let doc = kind.document(&parts[..parts.len() - 1], &reply.json()?, &observed);
        let readers = kind.readers(&cfg, parts)?;
        Ok(doc.ok_or_else(unusable)?.acl(readers))
    }

    /// Yes when the record's ACL (`get`, read live) names the principal's Graph user id, is
    /// tenant-wide, or grants a group the user is in (transitively); no otherwise.
    fn check_permission(principal: String, id: String) -> Result<bool> {
        let (readers, user) = (Self::get(id)?.acl, principal.trim());
        if acl::allows(&readers, &[acl::user(user)]) {
            return Ok(true);
        }
        let grants_groups = readers.iter().any(|e| e.starts_with("group:"));
        if !grants_groups || !airlock_sdk::ids::is_segment(user) {
            return Ok(false);
        }
        let groups = identity::groups(&Config::load()?, user)?;
        Ok(acl::allows(
            &readers,
            &groups.iter().map(acl::group).collect::<Vec<_>>(),
        ))
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        let cfg = Config::load()?;
        let names = KINDS[..6].iter().map(|k| format!("{}s", k.1));
        let kind = Kind::of_stream(&stream).ok_or_else(|| Error::unknown_stream(&stream, names))?;
        sync::page(&cfg, kind, cursor.as_deref())
    }

    fn invoke(action: String, input: String) -> Result<String> {
        if action == identity::ACTION {
            return identity::resolve(&input);
        }
        let input: UserContext = airlock_sdk::action_input(&action, "user-context", &input)?;
        let email = identity::checked_email(&input.email)?;
        let cfg = Config::load()?;
        let user = find_user(&cfg, email)?;
        let no_id = || Error::upstream("Graph returned a user without a usable id");
        let user_id = id_of(&user).ok_or_else(no_id)?;
        let devices = managed_devices(&cfg, user_id)?;

        let compliance = tally(&devices, "/complianceState", "unknown");
        let all_compliant = compliance.keys().eq(["compliant"]);
        let picked = |d: &Value| pick(d, DEVICE_FIELDS, json!({}));
        let devices: Vec<Value> = devices.iter().map(picked).collect();
        let out = json!({"user": pick(&user, USER_FIELDS, json!({})), "managedDevices": devices,
            "deviceCount": devices.len(), "compliance": compliance, "allCompliant": all_compliant});
        Ok(out.to_string())
    }
}

/// The user with this UPN (`/users/{upn}`), else the one whose `mail` matches.
fn find_user(cfg: &Config, email: &str) -> Result<Value> {
    if let Some(user) = odata::record(Ref(Kind::Users, vec![email.into()]).api_url(cfg))? {
        return Ok(user);
    }
    let filter = format!("mail eq '{}'", email.replace('\'', "''"));
    let users = Request::get(cfg.api.join("/users")).query("$filter", &filter);
    let reply: ODataPage<Value> = users.query("$select", USER_FIELDS).send()?.json()?;
    let missing = || Error::not_found(format!("no user with principal name or mail {email}"));
    reply.value.into_iter().next().ok_or_else(missing)
}

/// Every Intune managed device of the user, following `@odata.nextLink`.
fn managed_devices(cfg: &Config, user_id: &str) -> Result<Vec<Value>> {
    let path = url::fill("/users/{}/managedDevices", &[user_id]);
    let first = cfg.api.join(&path);
    let pages = odata::pages("managed devices", MAX_PAGES, first, |link| cfg.link(link))?;
    let devices = pages.iter().flat_map(|p| array(p, "/value"));
    Ok(devices.cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::cursor;
    use airlock_sdk::text::{http_date_to_rfc3339, rfc3339_of_ms};
    use sync::{Cursor, is_partial_user};

    fn parts(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_delta_user_missing_a_selected_property_is_partial() {
        let whole: Value = airlock_sdk::serde_json::from_str(
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
        let user = Ref::parse("user:abc").unwrap();
        assert_eq!(user, Ref(Kind::Users, parts(&["abc"])));
        assert_eq!(
            Ref::parse(" message:a@b.com/AAMk= ").unwrap(),
            Ref(Kind::Messages, parts(&["a@b.com", "AAMk="]))
        );
        assert_eq!(
            Ref::parse("channel-message:t/19:x@thread.tacv2/1").unwrap(),
            Ref(
                Kind::ChannelMessages,
                parts(&["t", "19:x@thread.tacv2", "1"])
            )
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
        assert!(matches!(Ref::parse(&id), Ok(Ref(Kind::ChannelMessages, _))));
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
        assert!(d.acl.is_empty(), "the ACL comes from Kind::readers");
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
        let mut d = Kind::DriveItems.document(&[], &item, "").unwrap();
        d.body = lines(&[d.body, "the plan".into()]);
        assert_eq!(
            (d.id.as_str(), d.body.as_str()),
            ("drive-item:d1/i1", "Plan.docx\nthe plan")
        );
    }

    #[test]
    fn readers_are_the_user_ids_of_an_owner_members_and_granted_users_only() {
        let ids = |v: Value| airlock_sdk::acl::at(&v, "user:", documents::USER_IDS);
        assert_eq!(ids(json!({"id": "u1", "displayName": "Ann"})), ["user:u1"]);
        let members = json!({"value": [
            {"@odata.type": "#microsoft.graph.aadUserConversationMember", "id": "m1", "userId": "u2"},
            {"@odata.type": "#microsoft.graph.aadUserConversationMember", "id": "m2", "userId": "u3"}]});
        assert_eq!(ids(members), ["user:u2", "user:u3"]);
        let permissions = json!({"value": [
            {"id": "p1", "roles": ["owner"], "grantedToV2": {"user": {"id": "u4"}}},
            {"id": "p2", "roles": ["read"], "grantedToIdentitiesV2": [{"user": {"id": "u5"}}]},
            {"id": "p3", "roles": ["read"], "grantedToV2": {"group": {"id": "g1"}}},
            {"id": "p5", "roles": ["read"], "grantedToIdentitiesV2": [{"group": {"id": "g2"}}]},
            {"id": "p4", "roles": ["read"], "link": {"scope": "organization", "type": "view"}}]});
        assert_eq!(ids(permissions.clone()), ["user:u4", "user:u5"]);
        let groups = airlock_sdk::acl::at(&permissions, "group:", documents::GROUP_IDS);
        assert_eq!(groups, ["group:g1", "group:g2"], "links fail closed");
    }

    #[test]
    fn info_lists_the_streams_and_the_user_context_schema() {
        let info = MsGraph::info();
        let names: Vec<&str> = info.streams.iter().map(|s| s.name.as_str()).collect();
        let want = [
            "users",
            "devices",
            "messages",
            "events",
            "chat-messages",
            "channel-messages",
        ];
        assert_eq!(names, want);
        let schema: Value =
            airlock_sdk::serde_json::from_str(&info.actions[0].input_schema).unwrap();
        assert_eq!(schema["required"], json!(["email"]));
        assert_eq!(schema["additionalProperties"], false);
        let email = &schema["properties"]["email"];
        assert_eq!(
            (email["type"].as_str(), email["format"].as_str()),
            (Some("string"), Some("email"))
        );
        assert_eq!(email["minLength"], 3);
        assert!(!info.actions[0].writes);
        assert_eq!(Kind::of_stream("drive-items"), None);
    }

    #[test]
    fn dates_and_cursors() {
        assert_eq!(rfc3339_of_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_of_ms(1_767_323_045_000), "2026-01-02T03:04:05Z");
        assert_eq!(
            http_date_to_rfc3339("Wed, 25 Nov 2026 23:18:39 GMT").as_deref(),
            Some("2026-11-25T23:18:39Z")
        );
        assert_eq!(cursor::encode(&Cursor::default()), r#"{"scope":0}"#);
        let c: Cursor = cursor::decode(Some(r#"{"scope":1,"next":"x"}"#))
            .unwrap()
            .unwrap();
        assert_eq!((c.scope, c.next.as_deref()), (1, Some("x")));
    }
}
