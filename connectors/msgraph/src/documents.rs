//! Document kinds, document ids (`{kind}:{path}`, so `get(doc.id)` works for every kind) and the
//! mapping of Graph records to documents.

use airlock_sdk::json::{first, join, merge, pick, text, texts};
use airlock_sdk::serde_json::{Value, json};
use airlock_sdk::text::{lines, or, to_plain};
use airlock_sdk::{Document, Error, Result, ids, url};

use crate::USER_FIELDS;
use crate::config::Config;

/// Where a recipient's or attendee's address is.
const ADDRESS: &str = "/emailAddress/address";

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
    "Calendar events of each mailbox, `events_past_days` ago to `events_future_days` ahead \
     (calendarView); a full pass each run, events gone from the window become deletes.",
    "Messages of the Teams chats in `chats`; a full pass each run, deleted ones become deletes.",
    "Top-level messages of the Teams channels in `channels` (`teamId/channelId`); a full pass \
     each run, deleted ones become deletes.",
];

impl Kind {
    pub fn name(self) -> &'static str {
        KINDS[self as usize].1
    }

    /// Whether the stream is a Graph delta query (else a full listing each run).
    pub fn is_delta(self) -> bool {
        matches!(self, Kind::Users | Kind::Messages)
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

    /// Maps one upstream record; `None` for records without a usable id or that are not content
    /// (Teams system events).
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
        let private = matches!(self, Kind::Messages | Kind::Events);
        let acl = scope.first().filter(|_| private).cloned();
        let doc = Document::new(self.name(), self.doc_id(&path, id), title).body(body);
        let url = Some(t(link)).filter(|_| !link.is_empty());
        Some(doc.updated_at(updated).metadata(meta).acl(acl).url_opt(url))
    }
}

/// The record behind a document id: its kind and the id's path segments.
#[derive(Debug, PartialEq)]
pub struct Ref(pub Kind, pub Vec<String>);

impl Ref {
    pub fn user(id: &str) -> Ref {
        Ref(Kind::Users, vec![id.to_owned()])
    }

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

    pub fn document(&self, item: &Value, observed: &str) -> Option<Document> {
        let scope = &self.1[..self.1.len() - 1];
        self.0.document(scope, item, observed)
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
