//! Document kinds, document ids (`{kind}:{path}`, so `get(doc.id)` works for every kind), the
//! mapping of Graph records to documents, and their readers as Graph shows them
//! (docs/connectors/msgraph.md, Permissions): directory users every member of the tenant; Entra
//! devices the device administrators; mail and events their mailbox's owner (Graph v1.0 lists no
//! mailbox delegates); chat messages the chat's members; channel messages the channel's direct
//! members (a standard channel's are its team's); drive items the users and groups their
//! permissions grant. Entries are `user:{Entra object id}` and `group:{Entra group id}` (matched
//! through the `resolve-identity` action's transitive groups); a record whose readers cannot be
//! found is read by no one.

use airlock_sdk::json::{first, join, merge, pick, text, texts};
use airlock_sdk::serde_json::{Value, json};
use airlock_sdk::text::{lines, or, to_plain};
use airlock_sdk::{Document, Error, Result, acl, ids, odata, url};

use crate::config::Config;
use crate::{MAX_PAGES, USER_FIELDS};

/// Where a recipient's or attendee's address is.
const ADDRESS: &str = "/emailAddress/address";

/// Where readers' user ids are: a user's `id` (the mailbox owner), a member listing's `userId`
/// (`aadUserConversationMember`), a permission listing's granted users (sharing links are not
/// followed: fail closed).
pub const USER_IDS: &str =
    "/id|/value/*/userId|/value/*/grantedToV2/user/id|/value/*/grantedToIdentitiesV2/*/user/id";
/// Where a permission listing's granted groups' ids are.
pub const GROUP_IDS: &str =
    "/value/*/grantedToV2/group/id|/value/*/grantedToIdentitiesV2/*/group/id";

/// Every kind but `DriveItems` is also a stream, named as its document kind plus `s`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Users,
    Devices,
    Messages,
    Events,
    ChatMessages,
    ChannelMessages,
    DriveItems,
}

/// Per kind (in `Kind` order): the document kind and the Graph path of one record, whose `{}`
/// are the segments of the document id: `user:{id}`, `message:{mailbox}/{id}`, ...
pub const KINDS: [(Kind, &str, &str); 7] = [
    (Kind::Users, "user", "/users/{}"),
    (Kind::Devices, "device", "/devices/{}"),
    (Kind::Messages, "message", "/users/{}/messages/{}"),
    (Kind::Events, "event", "/users/{}/events/{}"),
    (Kind::ChatMessages, "chat-message", "/chats/{}/messages/{}"),
    (
        Kind::ChannelMessages,
        "channel-message",
        "/teams/{}/channels/{}/messages/{}",
    ),
    (Kind::DriveItems, "drive-item", "/drives/{}/items/{}"),
];

/// The descriptions of the sync streams, in `Kind` order.
pub const STREAMS: [&str; 6] = [
    "Directory users by the /users/delta query: all, later only changes; deleted users: deletes.",
    "Entra ID devices: a full listing each run; devices gone since the last run become deletes.",
    "Mail of each mailbox (`mailboxes`) in `mail_folder` (inbox) by delta query; deletes included.",
    "Calendar events of each mailbox in a window (calendarView); events gone from it: deletes.",
    "Messages of the Teams chats in `chats`; a full pass each run, deleted ones become deletes.",
    "Top-level messages of the Teams channels in `channels`; a full pass, deletes included.",
];

impl Kind {
    pub fn name(self) -> &'static str {
        KINDS[self as usize].1
    }

    pub fn of_stream(stream: &str) -> Option<Kind> {
        let kind = stream.strip_suffix('s');
        let kind = KINDS.iter().find(|k| kind == Some(k.1))?;
        (kind.0 != Kind::DriveItems).then_some(kind.0)
    }

    /// Document id: `{kind}:{scope parts}/{item id}`.
    pub fn doc_id(self, scope: &[String], item_id: &str) -> String {
        let path: Vec<&str> = scope.iter().map(String::as_str).chain([item_id]).collect();
        ids::join(self.name(), &path)
    }

    /// Maps one upstream record, without its ACL ([`Kind::readers`]); `None` for records without a
    /// usable id or that are not content (Teams system events).
    pub fn document(self, scope: &[String], item: &Value, observed: &str) -> Option<Document> {
        let id = id_of(item)?;
        let t = |pointer: &str| text(item, pointer);
        let f = |pointers: &str| first(item, pointers);
        let j = |pointers: &str, sep: &str| join(item, pointers, sep);
        let (mut path, box_) = (scope.to_vec(), json!(scope.first()));
        let (title, body, updated, link, meta) = match self {
            Kind::Users => {
                let job = j("/jobTitle|/department", ", ");
                let mail = j("/mail|/userPrincipalName", " ");
                let body = lines(&[t("/displayName"), job, t("/officeLocation"), mail]);
                let keys = "userPrincipalName,mail,givenName,surname,jobTitle,department,\
                            officeLocation,accountEnabled";
                let title = f("/displayName|/userPrincipalName");
                let meta = pick(item, keys, json!({}));
                (title, body, observed.into(), "", meta)
            }
            Kind::Devices => {
                let title = f("/displayName|/deviceId");
                let os = j("/operatingSystem|/operatingSystemVersion", " ");
                let body = lines(&[title.clone(), os, t("/trustType")]);
                let seen = f("/approximateLastSignInDateTime|/registrationDateTime");
                let keys = "deviceId,operatingSystem,operatingSystemVersion,trustType,\
                            isCompliant,isManaged,accountEnabled,approximateLastSignInDateTime";
                let meta = pick(item, keys, json!({}));
                (title, body, or(seen, observed), "", meta)
            }
            Kind::Messages => {
                let meta = json!({"mailbox": box_, "from": t("/from/emailAddress/address"),
                    "to": texts(item, "/toRecipients", ADDRESS)});
                let keys = "receivedDateTime,conversationId,isRead,importance";
                let meta = pick(item, keys, meta);
                let body = or(item_body(item), t("/bodyPreview"));
                let updated = f("/lastModifiedDateTime|/receivedDateTime");
                let title = or(t("/subject"), "(no subject)");
                (title, body, updated, "/webLink", meta)
            }
            Kind::Events => {
                let (start, end) = (t("/start/dateTime"), t("/end/dateTime"));
                let place = t("/location/displayName");
                let body = lines(&[item_body(item), place.clone(), format!("{start} – {end}")]);
                let meta = json!({"mailbox": box_, "start": start, "end": end,
                    "timeZone": t("/start/timeZone"), "location": place,
                    "organizer": t("/organizer/emailAddress/address"),
                    "attendees": texts(item, "/attendees", ADDRESS)});
                let meta = pick(item, "isCancelled,isAllDay", meta);
                let title = or(t("/subject"), "(no subject)");
                (title, body, t("/lastModifiedDateTime"), "/webLink", meta)
            }
            Kind::ChatMessages | Kind::ChannelMessages => {
                if !matches!(item["messageType"].as_str(), None | Some("message")) {
                    return None;
                }
                let author = f("/from/user/displayName|/from/application/displayName");
                let author = or(author, "unknown");
                let meta = json!({"from": author, "fromUserId": t("/from/user/id")});
                let place = self.name().trim_end_matches("-message"); // chat, channel
                let at = match self {
                    Kind::ChatMessages => json!({"chatId": box_}),
                    _ => json!({"teamId": box_, "channelId": scope.get(1)}),
                };
                let meta = merge(meta, at);
                let title = or(t("/subject"), format!("Message from {author} in {place}"));
                let updated = f("/lastModifiedDateTime|/createdDateTime");
                let meta = pick(item, "createdDateTime,importance", meta);
                (title, item_body(item), updated, "/webUrl", meta)
            }
            Kind::DriveItems => {
                let drive = Some(t("/parentReference/driveId")).filter(|d| ids::is_segment(d))?;
                let meta = json!({"driveId": drive, "siteId": t("/parentReference/siteId"),
                    "path": t("/parentReference/path"), "size": item.get("size"),
                    "mimeType": t("/file/mimeType"), "createdBy": t("/createdBy/user/displayName"),
                    "lastModifiedBy": t("/lastModifiedBy/user/displayName")});
                path = vec![drive];
                let body = j("/name|/description", "\n");
                let updated = t("/lastModifiedDateTime");
                (t("/name"), body, updated, "/webUrl", meta)
            }
        };
        let doc = Document::new(self.name(), self.doc_id(&path, id), title).body(body);
        let url = Some(t(link)).filter(|_| !link.is_empty());
        Some(doc.updated_at(updated).metadata(meta).url_opt(url))
    }

    /// The ACL of a record whose document id has the path segments `parts` (a listing's scope
    /// is enough but for drive items): one record or listing read, its pages followed; the
    /// group `msgraph-device-admins` for devices.
    pub fn readers(self, cfg: &Config, parts: &[String]) -> Result<Vec<String>> {
        let path = match self {
            Kind::Users => return Ok(vec![acl::EVERYONE.into()]),
            Kind::Devices => return Ok(vec![acl::group("msgraph-device-admins")]),
            Kind::Messages | Kind::Events => "/users/{}",
            Kind::ChatMessages => "/chats/{}/members",
            Kind::ChannelMessages => "/teams/{}/channels/{}/members",
            Kind::DriveItems => "/drives/{}/items/{}/permissions",
        };
        let first = cfg.api.join(&url::fill(path, parts));
        let pages = odata::pages("readers", MAX_PAGES, first, |link| cfg.link(link))?;
        let users = pages.iter().flat_map(|p| acl::at(p, "user:", USER_IDS));
        let groups = pages.iter().flat_map(|p| acl::at(p, "group:", GROUP_IDS));
        Ok(acl::of(users.chain(groups)))
    }
}

/// The record behind a document id: its kind and the id's path segments.
#[derive(Debug, PartialEq)]
pub struct Ref(pub Kind, pub Vec<String>);

impl Ref {
    pub fn parse(id: &str) -> Result<Ref> {
        let (name, parts) = ids::split(id)?;
        let n = parts.len();
        let fits = |k: &&(Kind, &str, &str)| k.1 == name && k.2.matches("{}").count() == n;
        let kind = KINDS.iter().find(fits).map(|k| k.0);
        let bad = || Error::invalid_input(format!("unknown kind or number of segments: {id:?}"));
        Ok(Ref(kind.ok_or_else(bad)?, parts))
    }

    pub fn api_url(&self, cfg: &Config) -> String {
        let url = cfg.api.join(&url::fill(KINDS[self.0 as usize].2, &self.1));
        match self.0 {
            Kind::Users => url::with_query(&url, "$select", USER_FIELDS),
            _ => url,
        }
    }
}

/// The record's `id` when it can go into a URL path and a document id.
pub fn id_of(item: &Value) -> Option<&str> {
    item["id"].as_str().filter(|s| ids::is_segment(s))
}

/// `body.content` as plain text (HTML when `body.contentType` is `html`).
fn item_body(item: &Value) -> String {
    let content_type = text(item, "/body/contentType");
    to_plain(&text(item, "/body/content"), &content_type)
}
