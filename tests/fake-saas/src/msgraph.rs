//! Microsoft Graph v1.0 fake (API-NOTES.md): the Azure AD v2 client-credentials token endpoint
//! (tokens with a settable lifetime, requests counted), Bearer checks on every `/v1.0/` route,
//! users (`/users`, `/users/delta`, `/users/{id|upn}`, `$filter=mail eq '..'`), Intune managed
//! devices per user, Entra devices, mail (`/users/{id}/messages`, the inbox delta query), calendar
//! (`calendarView` with required `startDateTime`/`endDateTime`, single events), Teams chat and
//! channel messages (`$top` max 50, soft deletes), SharePoint search (`POST /search/query`,
//! `region` required) and drive items. Collections carry `@odata.context`, absolute
//! `@odata.nextLink` and, for delta queries, `@odata.deltaLink`; deletions in a delta round arrive
//! as `@removed`; the first page of an incremental round is empty. Errors use Graph's
//! `{"error":{"code","message","innerError"}}`; the shared 429 knob answers with `Retry-After`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::aad::{GRAPH_SCOPE, aad_error, check_scope};
use crate::atera::parse_date_time;
use crate::common::{QueryParams, Rng, json_reply, now_ms, rfc3339_ms, set_header, utc_ms};
use crate::server::{self, Core, FakeState, RunningFake};

const DAY_MS: i64 = 86_400_000;
const DOMAIN: &str = "contoso.com";
const TENANT_ID: &str = "8f1d2c3b-4a59-4e68-9d7c-0b1a2f3e4d5c";

#[derive(Clone, Debug)]
pub struct MsGraphOptions {
    /// Tenant in the token endpoint's path.
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub users: usize,
    pub devices: usize,
    /// The first N users have mailboxes with mail and calendars.
    pub mailboxes: usize,
    pub messages_per_mailbox: usize,
    pub events_per_mailbox: usize,
    pub chats: usize,
    pub messages_per_chat: usize,
    pub channels: usize,
    pub messages_per_channel: usize,
    pub drive_items: usize,
    pub seed: u64,
    /// Answer every N-th Graph request with 429 + Retry-After.
    pub rate_limit_every: Option<u64>,
    /// `expires_in` of issued tokens; the fake rejects a token after it.
    pub token_lifetime_secs: u64,
    /// `Retry-After` seconds on 429.
    pub retry_after_secs: u64,
}

impl Default for MsGraphOptions {
    fn default() -> Self {
        MsGraphOptions {
            tenant: "demo-tenant".into(),
            client_id: "demo-graph-client".into(),
            client_secret: "demo-graph-secret".into(),
            users: 140,
            devices: 75,
            mailboxes: 3,
            messages_per_mailbox: 23,
            events_per_mailbox: 24,
            chats: 2,
            messages_per_chat: 64,
            channels: 2,
            messages_per_channel: 21,
            drive_items: 40,
            seed: 29,
            rate_limit_every: None,
            token_lifetime_secs: 3599,
            retry_after_secs: 1,
        }
    }
}

/// Everything the fake serves, as the API shows it. Deleted records are absent; soft-deleted
/// Teams messages and system messages are left out of `chats`/`channels`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MsGraphTruth {
    pub users: Vec<Value>,
    pub devices: Vec<Value>,
    pub managed_devices: Vec<Value>,
    /// User principal names of the mailboxes, in order.
    pub mailboxes: Vec<String>,
    /// Inbox messages by mailbox UPN.
    pub messages: BTreeMap<String, Vec<Value>>,
    /// Every event by mailbox UPN (callers filter by window).
    pub events: BTreeMap<String, Vec<Value>>,
    /// Live user messages by chat id.
    pub chats: BTreeMap<String, Vec<Value>>,
    /// Live user messages by `teamId/channelId`.
    pub channels: BTreeMap<String, Vec<Value>>,
    /// Drive items as `/drives/{d}/items/{i}` shows them plus their searchable `content`.
    pub drive_items: Vec<Value>,
    pub token_requests: u64,
}

/// Counts of records to add, update and delete in one collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Change {
    pub add: usize,
    pub update: usize,
    pub delete: usize,
}

/// Body of `POST /_fake/mutate`. Messages and events spread over the mailboxes, Teams messages
/// over the chats/channels (Teams deletes are soft: `deletedDateTime` set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsGraphMutation {
    pub users: Change,
    pub devices: Change,
    pub messages: Change,
    pub events: Change,
    pub chat_messages: Change,
    pub channel_messages: Change,
}

/// Ids touched, as `{scope}/{id}` for scoped records (mailbox UPN, chat id, `team/channel`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsGraphMutationReport {
    pub users: ChangeReport,
    pub devices: ChangeReport,
    pub messages: ChangeReport,
    pub events: ChangeReport,
    pub chat_messages: ChangeReport,
    pub channel_messages: ChangeReport,
}

// ---- Data ------------------------------------------------------------------------------------

/// One record with its change bookkeeping: `ord` is its fixed place in listings, `seq` the global
/// change number of its last change (what delta queries compare), `created` the change number
/// that added it and `changed` the change number of each property's last update (so a delta
/// round can send an updated record as only the properties changed since its token).
#[derive(Clone, Debug)]
struct Item {
    json: Value,
    ord: u64,
    seq: u64,
    created: u64,
    changed: BTreeMap<String, u64>,
    deleted: bool,
}

impl Item {
    fn id(&self) -> &str {
        self.json["id"].as_str().unwrap_or("")
    }

    /// Sets one property as change number `seq`.
    fn set(&mut self, key: &str, value: Value, seq: u64) {
        self.json[key] = value;
        self.changed.insert(key.to_owned(), seq);
        self.seq = seq;
    }

    /// What a delta round since change `since` shows of this updated record: its `id` and the
    /// properties changed after `since` (Graph's `Prefer: return=minimal` shape, the least the
    /// delta contract promises for an update).
    fn changes_since(&self, since: u64) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("id".into(), json!(self.id()));
        for (key, _) in self.changed.iter().filter(|(_, at)| **at > since) {
            out.insert(key.clone(), self.json[key.as_str()].clone());
        }
        Value::Object(out)
    }
}

#[derive(Default)]
struct Coll {
    items: Vec<Item>,
}

impl Coll {
    fn live(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| !i.deleted)
    }
    fn find(&self, id: &str) -> Option<&Item> {
        self.live().find(|i| i.id() == id)
    }
}

struct Scoped {
    /// Mailbox UPN, chat id, or `team/channel`.
    key: String,
    coll: Coll,
}

struct Data {
    seq: u64,
    ord: u64,
    rng: Rng,
    anchor_ms: i64,
    /// Change number when the current mutation began: records changed since are not picked again.
    mutation_start: u64,
    users: Coll,
    devices: Coll,
    managed: Vec<Value>,
    /// Mailbox user ids, in order (their mail and events are `mail[i]`, `events[i]`).
    mailbox_ids: Vec<String>,
    mail: Vec<Scoped>,
    events: Vec<Scoped>,
    chats: Vec<Scoped>,
    channels: Vec<Scoped>,
    drive: Vec<Value>,
}

const FIRST: [&str; 16] = [
    "Ada", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko",
    "Liam", "Maya", "Noah", "Olga", "Priya",
];
const LAST: [&str; 12] = [
    "Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
    "Khan", "Lopez",
];
const TITLES: [&str; 6] = [
    "Engineer",
    "Analyst",
    "Manager",
    "Consultant",
    "Director",
    "Technician",
];
const DEPTS: [&str; 5] = ["Finance", "IT", "Sales", "Operations", "Legal"];
const OFFICES: [&str; 4] = ["Seattle", "London", "Berlin", "Remote"];
const OSES: [(&str, &str); 4] = [
    ("Windows", "10.0.22631.4460"),
    ("MacMDM", "14.6.1"),
    ("iOS", "17.6"),
    ("Android", "14"),
];
const COMPLIANCE: [&str; 5] = [
    "compliant",
    "compliant",
    "noncompliant",
    "inGracePeriod",
    "unknown",
];
const TOPICS: [&str; 10] = [
    "budget",
    "firewall",
    "onboarding",
    "invoice",
    "roadmap",
    "backup",
    "licence",
    "migration",
    "audit",
    "vpn",
];
const WORDS: [&str; 12] = [
    "please", "review", "the", "latest", "figures", "before", "friday", "and", "confirm", "with",
    "team", "thanks",
];

fn guid(rng: &mut Rng) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.next_u64() as u32,
        rng.below(0x10000),
        rng.below(0x1000),
        rng.below(0x1000),
        rng.next_u64() & 0xffff_ffff_ffff
    )
}

/// An Exchange-style id: `AAMkAG` + URL-safe base64 + `=`.
fn exchange_id(rng: &mut Rng) -> String {
    let bytes: Vec<u8> = (0..30).map(|_| rng.next_u64() as u8).collect();
    format!("AAMkAG{}=", URL_SAFE_NO_PAD.encode(bytes))
}

fn sentence(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| rng.pick(&WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Graph's `dateTimeTimeZone` form: `2026-11-20T09:00:00.0000000`.
fn graph_local(ms: i64) -> String {
    let s = rfc3339_ms(ms);
    format!("{}.0000000", &s[..19])
}

fn upn_of(k: usize) -> (String, String, String) {
    let first = FIRST[k % FIRST.len()];
    let last = LAST[(k / FIRST.len()) % LAST.len()];
    let n = k / (FIRST.len() * LAST.len());
    let local = if n == 0 {
        format!("{}.{}", first.to_lowercase(), last.to_lowercase())
    } else {
        format!("{}.{}{n}", first.to_lowercase(), last.to_lowercase())
    };
    (first.into(), last.into(), local)
}

impl Data {
    fn tick(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
    fn push(&mut self, json: Value) -> Item {
        self.ord += 1;
        let seq = self.tick();
        Item {
            json,
            ord: self.ord,
            seq,
            created: seq,
            changed: BTreeMap::new(),
            deleted: false,
        }
    }

    fn user_json(&mut self, k: usize) -> Value {
        let (first, last, local) = upn_of(k);
        let id = guid(&mut self.rng);
        // Every seventh user's UPN is on the initial domain; their mail address differs.
        let (upn, mail) = if k % 7 == 3 {
            (
                format!("{local}@contoso.onmicrosoft.com"),
                format!("{local}@{DOMAIN}"),
            )
        } else {
            (format!("{local}@{DOMAIN}"), format!("{local}@{DOMAIN}"))
        };
        json!({"id": id, "displayName": format!("{first} {last}"), "givenName": first,
            "surname": last, "userPrincipalName": upn, "mail": mail,
            "jobTitle": self.rng.pick(&TITLES), "department": self.rng.pick(&DEPTS),
            "officeLocation": self.rng.pick(&OFFICES),
            "mobilePhone": format!("+1 425 555 {:04}", self.rng.below(10_000)),
            "accountEnabled": !self.rng.chance(1, 10), "businessPhones": []})
    }

    fn device_json(&mut self, k: usize) -> Value {
        let (os, ver) = self.rng.pick(&OSES);
        let registered = utc_ms(2025, 2, 1, 8, 0) + k as i64 * 7 * 3_600_000;
        let managed = self.rng.chance(2, 3);
        json!({"id": guid(&mut self.rng), "deviceId": guid(&mut self.rng),
            "displayName": format!("{}-{k:04}", match os { "Windows" => "DESKTOP", "MacMDM" => "MAC", "iOS" => "IPHONE", _ => "ANDROID" }),
            "operatingSystem": os, "operatingSystemVersion": ver,
            "trustType": if os == "Windows" { "AzureAd" } else { "Workplace" },
            "isCompliant": managed && self.rng.chance(3, 4), "isManaged": managed,
            "accountEnabled": true,
            "registrationDateTime": rfc3339_ms(registered),
            "approximateLastSignInDateTime": rfc3339_ms(registered + 30 * DAY_MS)})
    }

    fn managed_json(&mut self, user: &Value, compliance: &str) -> Value {
        let (os, ver) = self.rng.pick(&OSES);
        let os = if os == "MacMDM" { "macOS" } else { os };
        let n = self.rng.below(100_000);
        json!({"id": guid(&mut self.rng), "userId": user["id"],
            "userPrincipalName": user["userPrincipalName"], "emailAddress": user["mail"],
            "userDisplayName": user["displayName"],
            "deviceName": format!("{}-{n:05}", user["surname"].as_str().unwrap_or("dev").to_uppercase()),
            "operatingSystem": os, "osVersion": ver, "complianceState": compliance,
            "managementAgent": "mdm", "managedDeviceOwnerType": "company",
            "enrolledDateTime": rfc3339_ms(utc_ms(2025, 3, 1, 9, 0) + n as i64 * 1000),
            "lastSyncDateTime": rfc3339_ms(utc_ms(2026, 1, 5, 9, 0) + n as i64 * 1000),
            "model": match os { "Windows" => "Surface Laptop 5", "macOS" => "MacBook Pro", "iOS" => "iPhone 15", _ => "Pixel 8" },
            "manufacturer": match os { "Windows" => "Microsoft", "macOS" | "iOS" => "Apple", _ => "Google" },
            "serialNumber": format!("SN{n:08}")})
    }

    fn message_json(&mut self, mailbox: &Value, at: i64) -> Value {
        let id = exchange_id(&mut self.rng);
        let topic = self.rng.pick(&TOPICS);
        let k = self.rng.below(self.users.items.len().max(1) as u64) as usize;
        let sender = self
            .users
            .items
            .get(k)
            .map(|i| i.json.clone())
            .unwrap_or(json!({}));
        let text = format!("About the {topic}: {}.", sentence(&mut self.rng, 10));
        let subject = format!("{} {topic} follow-up", self.rng.pick(&["Re:", "FW:", "Q:"]));
        json!({"@odata.etag": format!("W/\"{}\"", self.seq), "id": id,
            "createdDateTime": rfc3339_ms(at), "lastModifiedDateTime": rfc3339_ms(at),
            "receivedDateTime": rfc3339_ms(at), "sentDateTime": rfc3339_ms(at - 2000),
            "hasAttachments": false, "internetMessageId": format!("<{}@{DOMAIN}>", self.rng.next_u64()),
            "subject": subject, "bodyPreview": text, "importance": "normal",
            "parentFolderId": format!("inbox-{}", mailbox["id"].as_str().unwrap_or("")),
            "conversationId": format!("AAQkAG{}=", self.rng.next_u64()), "isRead": self.rng.chance(1, 2),
            "isDraft": false,
            "webLink": format!("https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem", id.replace('=', "%3D")),
            "body": {"contentType": "html", "content": format!("<html><body><p>{text}</p></body></html>")},
            "from": {"emailAddress": {"name": sender["displayName"], "address": sender["mail"]}},
            "sender": {"emailAddress": {"name": sender["displayName"], "address": sender["mail"]}},
            "toRecipients": [{"emailAddress": {"name": mailbox["displayName"], "address": mailbox["mail"]}}],
            "ccRecipients": []})
    }

    fn event_json(&mut self, mailbox: &Value, start: i64) -> Value {
        let id = exchange_id(&mut self.rng);
        let topic = self.rng.pick(&TOPICS);
        let minutes = self.rng.pick(&[30i64, 60, 90]);
        let text = format!("Agenda: {topic}. {}.", sentence(&mut self.rng, 6));
        let k = self.rng.below(self.users.items.len().max(1) as u64) as usize;
        let other = self
            .users
            .items
            .get(k)
            .map(|i| i.json.clone())
            .unwrap_or(json!({}));
        let created = utc_ms(2025, 12, 1, 9, 0) + self.rng.below(1000) as i64 * 60_000;
        let email = |u: &Value| json!({"name": u["displayName"], "address": u["mail"]});
        json!({"@odata.etag": format!("W/\"{}\"", self.seq), "id": id,
            "createdDateTime": rfc3339_ms(created), "lastModifiedDateTime": rfc3339_ms(created),
            "subject": format!("{} {topic} sync", self.rng.pick(&["Weekly", "Quarterly", "Ad-hoc"])),
            "bodyPreview": text, "body": {"contentType": "html", "content": format!("<html><body><div>{text}</div></body></html>")},
            "start": {"dateTime": graph_local(start), "timeZone": "UTC"},
            "end": {"dateTime": graph_local(start + minutes * 60_000), "timeZone": "UTC"},
            "location": {"displayName": format!("Room {}", self.rng.below(40) + 1)},
            "organizer": {"emailAddress": email(mailbox)},
            "attendees": [{"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                "emailAddress": email(&other)}],
            "isAllDay": false, "isCancelled": false, "showAs": "busy", "type": "singleInstance",
            "webLink": format!("https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item", id.replace('=', "%3D"))})
    }

    /// A Teams message; `scope` is the chat id or `team/channel`.
    fn teams_json(&mut self, scope: &str, at: i64, system: bool) -> Value {
        let id = at.to_string();
        let k = self.rng.below(self.users.items.len().max(1) as u64) as usize;
        let user = self
            .users
            .items
            .get(k)
            .map(|i| i.json.clone())
            .unwrap_or(json!({}));
        let topic = self.rng.pick(&TOPICS);
        let (message_type, content, from) = if system {
            (
                "systemEventMessage",
                "<systemEventMessage/>".to_owned(),
                Value::Null,
            )
        } else {
            let text = format!("{topic}: {}", sentence(&mut self.rng, 7));
            (
                "message",
                format!("<p>{text}</p>"),
                json!({"application": null, "device": null, "user": {
                    "@odata.type": "#microsoft.graph.teamworkUserIdentity", "id": user["id"],
                    "displayName": user["displayName"], "userIdentityType": "aadUser",
                    "tenantId": TENANT_ID}}),
            )
        };
        let mut v = json!({"id": id, "replyToId": null, "etag": id, "messageType": message_type,
            "createdDateTime": rfc3339_ms(at), "lastModifiedDateTime": rfc3339_ms(at),
            "lastEditedDateTime": null, "deletedDateTime": null, "subject": null, "summary": null,
            "importance": "normal", "locale": "en-us", "from": from,
            "body": {"contentType": "html", "content": content},
            "attachments": [], "mentions": [], "reactions": []});
        match scope.split_once('/') {
            Some((team, channel)) => {
                v["channelIdentity"] = json!({"teamId": team, "channelId": channel});
                v["webUrl"] = json!(format!(
                    "https://teams.microsoft.com/l/message/{channel}/{id}?groupId={team}&tenantId={TENANT_ID}"
                ));
                if !system {
                    v["subject"] = json!(format!("{topic} update"));
                }
            }
            None => {
                v["chatId"] = json!(scope);
                v["webUrl"] = Value::Null;
            }
        }
        v
    }
}

fn generate(opts: &MsGraphOptions) -> Data {
    let mut d = Data {
        seq: 0,
        ord: 0,
        rng: Rng::new(opts.seed),
        anchor_ms: now_ms().div_euclid(DAY_MS) * DAY_MS,
        mutation_start: 0,
        users: Coll::default(),
        devices: Coll::default(),
        managed: Vec::new(),
        mailbox_ids: Vec::new(),
        mail: Vec::new(),
        events: Vec::new(),
        chats: Vec::new(),
        channels: Vec::new(),
        drive: Vec::new(),
    };
    for k in 0..opts.users {
        let json = d.user_json(k);
        let item = d.push(json);
        d.users.items.push(item);
    }
    for k in 0..opts.devices {
        let json = d.device_json(k);
        let item = d.push(json);
        d.devices.items.push(item);
    }
    let users: Vec<Value> = d.users.items.iter().map(|i| i.json.clone()).collect();
    for (k, u) in users.iter().enumerate() {
        let states: Vec<&str> = if k == 0 {
            vec!["compliant", "noncompliant"]
        } else if d.rng.chance(2, 3) {
            let n = 1 + d.rng.below(2) as usize;
            (0..n).map(|_| d.rng.pick(&COMPLIANCE)).collect()
        } else {
            Vec::new()
        };
        for s in states {
            let m = d.managed_json(u, s);
            d.managed.push(m);
        }
    }
    let base = utc_ms(2026, 1, 5, 8, 0);
    for mailbox in users.iter().take(opts.mailboxes) {
        let upn = mailbox["userPrincipalName"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        d.mailbox_ids
            .push(mailbox["id"].as_str().unwrap_or("").to_owned());
        let mut mail = Coll::default();
        for k in 0..opts.messages_per_mailbox {
            let json = d.message_json(mailbox, base + k as i64 * 3_600_000);
            let item = d.push(json);
            mail.items.push(item);
        }
        d.mail.push(Scoped {
            key: upn.clone(),
            coll: mail,
        });
        // Events on days away from the +-30-day window edges, so tests can predict the window.
        let mut events = Coll::default();
        for _ in 0..opts.events_per_mailbox {
            let day = match d.rng.below(4) {
                0 => -60 + d.rng.below(26) as i64,
                3 => 35 + d.rng.below(26) as i64,
                _ => -25 + d.rng.below(51) as i64,
            };
            let start = d.anchor_ms + day * DAY_MS + (8 + d.rng.below(9) as i64) * 3_600_000;
            let json = d.event_json(mailbox, start);
            let item = d.push(json);
            events.items.push(item);
        }
        d.events.push(Scoped {
            key: upn,
            coll: events,
        });
    }
    for c in 0..opts.chats {
        let chat = format!(
            "19:{:016x}{:016x}@thread.v2",
            d.rng.next_u64(),
            d.rng.next_u64()
        );
        let mut coll = Coll::default();
        for k in 0..opts.messages_per_chat {
            let at = utc_ms(2026, 1, 10, 9, 0) + (c * 1000 + k) as i64 * 61_000;
            let json = d.teams_json(&chat, at, k == 0);
            let item = d.push(json);
            coll.items.push(item);
        }
        d.chats.push(Scoped { key: chat, coll });
    }
    let team = guid(&mut d.rng);
    for c in 0..opts.channels {
        let (hi, lo) = (d.rng.next_u64(), d.rng.next_u64());
        let channel = format!("19:{hi:016x}{lo:016x}@thread.tacv2");
        let key = format!("{team}/{channel}");
        let mut coll = Coll::default();
        for k in 0..opts.messages_per_channel {
            let at = utc_ms(2026, 1, 12, 9, 0) + (c * 1000 + k) as i64 * 67_000;
            let json = d.teams_json(&key, at, k == 1);
            let item = d.push(json);
            coll.items.push(item);
        }
        d.channels.push(Scoped { key, coll });
    }
    let drive = format!(
        "b!{}",
        URL_SAFE_NO_PAD.encode(d.rng.next_u64().to_le_bytes())
    );
    let site = format!(
        "contoso.sharepoint.com,{},{}",
        guid(&mut d.rng),
        guid(&mut d.rng)
    );
    for k in 0..opts.drive_items {
        let topic = TOPICS[k % TOPICS.len()];
        let kind = ["Plan", "Report", "Checklist", "Minutes"][k % 4];
        let ext = ["docx", "xlsx", "pptx", "pdf"][(k / 4) % 4];
        let name = format!("{} {kind} {k:02}.{ext}", capitalise(topic));
        let mut content = format!("{kind} about {topic}. {}.", sentence(&mut d.rng, 12));
        if k % 9 == 4 {
            content.push_str(" Covers the airlock rollout schedule.");
        }
        let author = users
            .get(k % users.len().max(1))
            .map(|u| u["displayName"].clone())
            .unwrap_or(Value::Null);
        let id = format!(
            "01{}",
            URL_SAFE_NO_PAD
                .encode(d.rng.next_u64().to_be_bytes())
                .to_uppercase()
        );
        let modified = utc_ms(2026, 1, 2, 10, 0) + k as i64 * 5_400_000;
        d.drive.push(json!({"id": id, "name": name, "description": format!("{kind} ({topic})"),
            "webUrl": format!("https://contoso.sharepoint.com/sites/ops/Shared%20Documents/{}", name.replace(' ', "%20")),
            "size": 10_000 + d.rng.below(500_000), "createdDateTime": rfc3339_ms(modified - 7 * DAY_MS),
            "lastModifiedDateTime": rfc3339_ms(modified),
            "createdBy": {"user": {"displayName": author}}, "lastModifiedBy": {"user": {"displayName": author}},
            "parentReference": {"driveId": drive, "driveType": "documentLibrary", "siteId": site,
                "path": "/drives/root:/Shared Documents"},
            "file": {"mimeType": mime(ext)}, "content": content}));
    }
    d
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn mime(ext: &str) -> &'static str {
    match ext {
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/pdf",
    }
}

/// The driveItem without the fake's `content`.
fn drive_item_public(item: &Value) -> Value {
    let mut v = item.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("content");
    }
    v
}

// ---- State -----------------------------------------------------------------------------------

/// Shared state of a running Graph fake.
pub struct MsGraph {
    core: Core,
    opts: MsGraphOptions,
    base_url: String,
    data: Mutex<Data>,
    tokens: Mutex<HashMap<String, Instant>>,
    token_requests: AtomicU64,
    token_lifetime_secs: AtomicU64,
    retry_after_secs: AtomicU64,
}

impl FakeState for MsGraph {
    fn core(&self) -> &Core {
        &self.core
    }
}

fn graph_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    let date = rfc3339_ms(now_ms());
    let request_id = format!("{:08x}-0000-4000-8000-000000000000", now_ms() as u32);
    json_reply(
        status,
        json!({"error": {"code": code, "message": message, "innerError": {
            "date": &date[..19], "request-id": request_id, "client-request-id": request_id}}}),
    )
}

fn bad_request(message: impl Into<String>) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn not_found(what: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

/// Position in a listing carried by `$skiptoken`, opaque to clients.
#[derive(Debug, Serialize, Deserialize)]
struct Skip {
    /// Delta rounds: changes after this change number (`None`: the initial round).
    #[serde(default)]
    since: Option<u64>,
    /// Delta rounds: the change number when the round started (becomes the next deltatoken).
    #[serde(default)]
    snap: u64,
    /// Last `ord` (initial round, plain listings use it as an offset) or `seq` returned.
    after: u64,
    top: usize,
}

fn encode_token(s: &Skip) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(s).unwrap_or_default())
}

fn decode_token(raw: &str) -> Option<Skip> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw.trim()).ok()?).ok()
}

/// `$top`, or the error message for an invalid one.
fn top_of(q: &QueryParams, default: usize, max: usize) -> Result<usize, String> {
    match q.one("$top") {
        None => Ok(default),
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and {max} inclusive."
                )
            }),
    }
}

impl MsGraph {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn tokens(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn truth(&self) -> MsGraphTruth {
        let d = self.data();
        let live = |c: &Coll| c.live().map(|i| i.json.clone()).collect::<Vec<_>>();
        let teams = |s: &[Scoped]| {
            s.iter()
                .map(|s| {
                    let msgs = s
                        .coll
                        .live()
                        .filter(|i| {
                            i.json["messageType"] == "message"
                                && i.json["deletedDateTime"].is_null()
                        })
                        .map(|i| i.json.clone())
                        .collect();
                    (s.key.clone(), msgs)
                })
                .collect()
        };
        MsGraphTruth {
            users: live(&d.users),
            devices: live(&d.devices),
            managed_devices: d.managed.clone(),
            mailboxes: d.mail.iter().map(|s| s.key.clone()).collect(),
            messages: d
                .mail
                .iter()
                .map(|s| (s.key.clone(), live(&s.coll)))
                .collect(),
            events: d
                .events
                .iter()
                .map(|s| (s.key.clone(), live(&s.coll)))
                .collect(),
            chats: teams(&d.chats),
            channels: teams(&d.channels),
            drive_items: d.drive.clone(),
            token_requests: self.token_requests.load(Ordering::Relaxed),
        }
    }

    /// `@odata.context` for a listing.
    fn context(&self, what: &str) -> String {
        format!("{}/v1.0/$metadata#{what}", self.base_url)
    }

    /// One page of a plain (offset-paged) listing with `$top` and an absolute nextLink.
    fn listing(
        &self,
        path: &str,
        q: &QueryParams,
        items: Vec<Value>,
        (default, max): (usize, usize),
        what: &str,
    ) -> Response {
        let (top, offset) = match q.one("$skiptoken") {
            Some(raw) => match decode_token(raw) {
                Some(s) => (s.top, s.after as usize),
                None => return bad_request("Invalid $skiptoken."),
            },
            None => match top_of(q, default, max) {
                Ok(t) => (t, 0),
                Err(e) => return bad_request(e),
            },
        };
        let end = (offset + top).min(items.len());
        let value: Vec<Value> = items.get(offset.min(end)..end).unwrap_or_default().to_vec();
        let mut body = json!({"@odata.context": self.context(what), "value": value});
        if end < items.len() {
            let token = encode_token(&Skip {
                since: None,
                snap: 0,
                after: end as u64,
                top,
            });
            let query = q.encode_with(&["$skiptoken", "$top"], &[("$skiptoken", &token)]);
            body["@odata.nextLink"] = json!(format!("{}{path}?{query}", self.base_url));
        }
        Json(body).into_response()
    }

    /// One page of a delta query over `coll`: `default` page size, `what` for `@odata.context`,
    /// `removed` the reason shown on deleted records; `partial`: records updated (not created)
    /// since the round's token arrive as their changed properties only.
    fn delta(
        &self,
        path: &str,
        q: &QueryParams,
        (seq_now, coll): (u64, &Coll),
        default: usize,
        (what, removed, partial): (&str, &str, bool),
    ) -> Response {
        let link = |extra: (&str, &str)| {
            format!("{}{path}?{}", self.base_url, {
                let mut ser = form_urlencoded::Serializer::new(String::new());
                ser.append_pair(extra.0, extra.1);
                ser.finish()
            })
        };
        let (skip, empty_first) = if let Some(raw) = q.one("$skiptoken") {
            match decode_token(raw) {
                Some(s) => (s, false),
                None => return bad_request("Invalid $skiptoken."),
            }
        } else if let Some(raw) = q.one("$deltatoken") {
            match raw.parse::<u64>() {
                Ok(since) if since <= seq_now => (
                    Skip {
                        since: Some(since),
                        snap: seq_now,
                        after: since,
                        top: default,
                    },
                    true,
                ),
                _ => {
                    return graph_error(
                        StatusCode::GONE,
                        "SyncStateNotFound",
                        "The sync state generation is not found. Restart the sync.",
                    );
                }
            }
        } else {
            match top_of(q, default, 999) {
                Ok(top) => (
                    Skip {
                        since: None,
                        snap: seq_now,
                        after: 0,
                        top,
                    },
                    false,
                ),
                Err(e) => return bad_request(e),
            }
        };
        let mut body = json!({"@odata.context": self.context(what), "value": []});
        if empty_first {
            // Graph may start a round with an empty page; clients must follow the link.
            body["@odata.nextLink"] = json!(link(("$skiptoken", &encode_token(&skip))));
            return Json(body).into_response();
        }
        let page: Vec<&Item> = match skip.since {
            None => coll
                .items
                .iter()
                .filter(|i| !i.deleted && i.seq <= skip.snap && i.ord > skip.after)
                .take(skip.top + 1)
                .collect(),
            Some(since) => {
                let mut changed: Vec<&Item> = coll
                    .items
                    .iter()
                    .filter(|i| i.seq > since.max(skip.after) && i.seq <= skip.snap)
                    .collect();
                changed.sort_by_key(|i| i.seq);
                changed.truncate(skip.top + 1);
                changed
            }
        };
        let more = page.len() > skip.top;
        let page = &page[..page.len().min(skip.top)];
        let value: Vec<Value> = page
            .iter()
            .map(|i| match skip.since {
                _ if i.deleted => json!({"id": i.id(), "@removed": {"reason": removed}}),
                Some(since) if partial && i.created <= since => i.changes_since(since),
                _ => i.json.clone(),
            })
            .collect();
        body["value"] = json!(value);
        if more {
            let after = page
                .last()
                .map(|i| if skip.since.is_some() { i.seq } else { i.ord })
                .unwrap_or(skip.after);
            let next = Skip { after, ..skip };
            body["@odata.nextLink"] = json!(link(("$skiptoken", &encode_token(&next))));
        } else {
            body["@odata.deltaLink"] = json!(link(("$deltatoken", &skip.snap.to_string())));
        }
        Json(body).into_response()
    }
}

/// Index of the user with this id or UPN (case-insensitive).
fn user_index(d: &Data, key: &str) -> Option<usize> {
    d.users.items.iter().position(|i| {
        !i.deleted
            && (i.id() == key
                || i.json["userPrincipalName"]
                    .as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(key)))
    })
}

/// Index of the mailbox of the user with this id or UPN.
fn mailbox_index(d: &Data, key: &str) -> Option<usize> {
    let user = user_index(d, key)?;
    let id = d.users.items[user].id();
    d.mailbox_ids.iter().position(|m| m == id)
}

// ---- Handlers --------------------------------------------------------------------------------

/// `POST /{tenant}/oauth2/v2.0/token` (form-encoded client credentials).
async fn token(State(g): State<Arc<MsGraph>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let n = g.token_requests.fetch_add(1, Ordering::Relaxed) + 1;
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let bad = StatusCode::BAD_REQUEST;
    if tenant != g.opts.tenant {
        let msg = format!("Tenant '{tenant}' not found.");
        return aad_error(bad, "invalid_request", 90002, &msg);
    }
    if field("grant_type") != "client_credentials" {
        let msg = "The app requested an unsupported grant type.";
        return aad_error(bad, "unsupported_grant_type", 70003, msg);
    }
    if field("client_id") != g.opts.client_id {
        let msg = "Application was not found in the directory.";
        return aad_error(bad, "unauthorized_client", 700016, msg);
    }
    if field("client_secret") != g.opts.client_secret {
        let msg = "Invalid client secret provided.";
        return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, msg);
    }
    if let Some(refused) = check_scope(field("scope"), GRAPH_SCOPE) {
        return refused;
    }
    let lifetime = g.token_lifetime_secs.load(Ordering::Relaxed);
    let access_token = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fake-graph-{n}.sig");
    g.tokens().insert(
        access_token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    Json(
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
        "access_token": access_token}),
    )
    .into_response()
}

/// `GET /v1.0/users` with `$top`, `$filter` (`mail eq '..'` / `userPrincipalName eq '..'`,
/// joined by `or`) and `$select` (ignored: every field is returned).
async fn list_users(State(g): State<Arc<MsGraph>>, uri: Uri, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let mut conditions = Vec::new();
    if let Some(filter) = q.one("$filter") {
        for clause in filter.split(" or ") {
            let parsed = clause.trim().split_once(" eq ").and_then(|(field, value)| {
                let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
                let field = field.trim();
                matches!(field, "mail" | "userPrincipalName")
                    .then(|| (field.to_owned(), value.replace("''", "'")))
            });
            match parsed {
                Some(c) => conditions.push(c),
                None => {
                    return bad_request(format!(
                        "Unsupported or invalid query filter clause: {clause}"
                    ));
                }
            }
        }
    }
    let users: Vec<Value> = g
        .data()
        .users
        .live()
        .filter(|u| {
            conditions.is_empty()
                || conditions.iter().any(|(f, v)| {
                    u.json[f.as_str()]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(v))
                })
        })
        .map(|u| u.json.clone())
        .collect();
    g.listing(uri.path(), &q, users, (100, 999), "users")
}

async fn users_delta(State(g): State<Arc<MsGraph>>, uri: Uri, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let d = g.data();
    g.delta(
        uri.path(),
        &q,
        (d.seq, &d.users),
        100,
        ("users", "changed", true),
    )
}

async fn get_user(State(g): State<Arc<MsGraph>>, Path(key): Path<String>) -> Response {
    let d = g.data();
    match user_index(&d, &key) {
        Some(i) => Json(d.users.items[i].json.clone()).into_response(),
        None => not_found(&key),
    }
}

async fn managed_devices(
    State(g): State<Arc<MsGraph>>,
    Path(key): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let devices: Vec<Value> = {
        let d = g.data();
        let Some(i) = user_index(&d, &key) else {
            return not_found(&key);
        };
        let id = d.users.items[i].json["id"].clone();
        d.managed
            .iter()
            .filter(|m| m["userId"] == id)
            .cloned()
            .collect()
    };
    g.listing(
        uri.path(),
        &q,
        devices,
        (1000, 1000),
        "users('..')/managedDevices",
    )
}

async fn list_devices(
    State(g): State<Arc<MsGraph>>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let devices: Vec<Value> = g.data().devices.live().map(|i| i.json.clone()).collect();
    g.listing(uri.path(), &q, devices, (100, 999), "devices")
}

async fn get_device(State(g): State<Arc<MsGraph>>, Path(id): Path<String>) -> Response {
    match g.data().devices.find(&id) {
        Some(i) => Json(i.json.clone()).into_response(),
        None => not_found(&id),
    }
}

fn no_mailbox(key: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "MailboxNotEnabledForRESTAPI",
        format!(
            "The mailbox of '{key}' is either inactive, soft-deleted, or is hosted on-premise."
        ),
    )
}

fn item_not_found() -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

async fn list_messages(
    State(g): State<Arc<MsGraph>>,
    Path(key): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let items: Vec<Value> = {
        let d = g.data();
        let Some(m) = mailbox_index(&d, &key) else {
            return no_mailbox(&key);
        };
        let mut v: Vec<Value> = d.mail[m].coll.live().map(|i| i.json.clone()).collect();
        v.reverse(); // newest first
        v
    };
    g.listing(uri.path(), &q, items, (10, 1000), "users('..')/messages")
}

async fn get_message(
    State(g): State<Arc<MsGraph>>,
    Path((key, id)): Path<(String, String)>,
) -> Response {
    let d = g.data();
    let Some(m) = mailbox_index(&d, &key) else {
        return no_mailbox(&key);
    };
    match d.mail[m].coll.find(&id) {
        Some(i) => Json(i.json.clone()).into_response(),
        None => item_not_found(),
    }
}

async fn messages_delta(
    State(g): State<Arc<MsGraph>>,
    Path((key, folder)): Path<(String, String)>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let d = g.data();
    let Some(m) = mailbox_index(&d, &key) else {
        return no_mailbox(&key);
    };
    let inbox_id = format!("inbox-{}", d.mailbox_ids[m]);
    if !folder.eq_ignore_ascii_case("inbox") && folder != inbox_id {
        return item_not_found();
    }
    let messages = (d.seq, &d.mail[m].coll);
    g.delta(
        uri.path(),
        &q,
        messages,
        10,
        // Outlook's message delta sends updated messages whole.
        ("Collection(message)", "deleted", false),
    )
}

async fn calendar_view(
    State(g): State<Arc<MsGraph>>,
    Path(key): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let window = (
        q.one("startDateTime").and_then(parse_date_time),
        q.one("endDateTime").and_then(parse_date_time),
    );
    let (Some(start), Some(end)) = window else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        );
    };
    let items: Vec<Value> = {
        let d = g.data();
        let Some(m) = mailbox_index(&d, &key) else {
            return no_mailbox(&key);
        };
        let at = |v: &Value, k: &str| {
            v[k]["dateTime"]
                .as_str()
                .and_then(|s| parse_date_time(&format!("{s}Z")))
                .unwrap_or(0)
        };
        let mut hits: Vec<&Item> = d.events[m]
            .coll
            .live()
            .filter(|i| at(&i.json, "start") < end && at(&i.json, "end") > start)
            .collect();
        hits.sort_by_key(|i| (at(&i.json, "start"), i.ord));
        hits.into_iter().map(|i| i.json.clone()).collect()
    };
    g.listing(
        uri.path(),
        &q,
        items,
        (10, 1000),
        "users('..')/calendarView",
    )
}

async fn get_event(
    State(g): State<Arc<MsGraph>>,
    Path((key, id)): Path<(String, String)>,
) -> Response {
    let d = g.data();
    let Some(m) = mailbox_index(&d, &key) else {
        return no_mailbox(&key);
    };
    match d.events[m].coll.find(&id) {
        Some(i) => Json(i.json.clone()).into_response(),
        None => item_not_found(),
    }
}

/// Teams listing: newest first, `$top` 1..=50, `$orderby` only on the two documented fields.
fn teams_listing(
    g: &MsGraph,
    path: &str,
    raw: Option<&str>,
    coll: Option<&Coll>,
    what: &str,
) -> Response {
    let q = QueryParams::parse(raw);
    let Some(coll) = coll else {
        return not_found(path);
    };
    if let Some(order) = q.one("$orderby")
        && !matches!(
            order.trim(),
            "lastModifiedDateTime desc" | "createdDateTime desc"
        )
    {
        return bad_request(format!(
            "$orderby '{order}' is not supported; use lastModifiedDateTime desc or createdDateTime desc."
        ));
    }
    let mut items: Vec<&Item> = coll.live().collect();
    if q.one("$orderby")
        .is_some_and(|o| o.starts_with("lastModified"))
    {
        items.sort_by(|a, b| {
            b.json["lastModifiedDateTime"]
                .as_str()
                .cmp(&a.json["lastModifiedDateTime"].as_str())
        });
    } else {
        items.reverse();
    }
    let items = items.into_iter().map(|i| i.json.clone()).collect();
    g.listing(path, &q, items, (20, 50), what)
}

async fn chat_messages(
    State(g): State<Arc<MsGraph>>,
    Path(chat): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let d = g.data();
    let coll = d.chats.iter().find(|c| c.key == chat).map(|c| &c.coll);
    teams_listing(&g, uri.path(), raw.as_deref(), coll, "chats('..')/messages")
}

async fn channel_messages(
    State(g): State<Arc<MsGraph>>,
    Path((team, channel)): Path<(String, String)>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let d = g.data();
    let key = format!("{team}/{channel}");
    let coll = d.channels.iter().find(|c| c.key == key).map(|c| &c.coll);
    teams_listing(
        &g,
        uri.path(),
        raw.as_deref(),
        coll,
        "teams('..')/channels('..')/messages",
    )
}

async fn chat_message(
    State(g): State<Arc<MsGraph>>,
    Path((chat, id)): Path<(String, String)>,
) -> Response {
    let d = g.data();
    let item = d
        .chats
        .iter()
        .find(|c| c.key == chat)
        .and_then(|c| c.coll.find(&id));
    match item {
        Some(i) => Json(i.json.clone()).into_response(),
        None => not_found(&id),
    }
}

async fn channel_message(
    State(g): State<Arc<MsGraph>>,
    Path((team, channel, id)): Path<(String, String, String)>,
) -> Response {
    let d = g.data();
    let key = format!("{team}/{channel}");
    let item = d
        .channels
        .iter()
        .find(|c| c.key == key)
        .and_then(|c| c.coll.find(&id));
    match item {
        Some(i) => Json(i.json.clone()).into_response(),
        None => not_found(&id),
    }
}

async fn drive_item(
    State(g): State<Arc<MsGraph>>,
    Path((drive, id)): Path<(String, String)>,
) -> Response {
    let d = g.data();
    let item = d
        .drive
        .iter()
        .find(|i| i["id"] == id.as_str() && i["parentReference"]["driveId"] == drive.as_str());
    match item {
        Some(i) => Json(drive_item_public(i)).into_response(),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "The resource could not be found.",
        ),
    }
}

/// Words of a query string, lower-cased, without quotes and KQL operators.
fn query_words(q: &str) -> Vec<String> {
    q.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty() && !matches!(w.as_str(), "and" | "or"))
        .collect()
}

/// Drive items whose name or content hold every word of `query`, in listing order.
pub fn search_matches<'a>(items: &'a [Value], query: &str) -> Vec<&'a Value> {
    let words = query_words(query);
    items
        .iter()
        .filter(|i| {
            let hay = format!(
                "{} {}",
                i["name"].as_str().unwrap_or(""),
                i["content"].as_str().unwrap_or("")
            )
            .to_lowercase();
            !words.is_empty() && words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect()
}

/// `POST /v1.0/search/query` for `driveItem`.
async fn search(State(g): State<Arc<MsGraph>>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Unable to read JSON request payload.");
    };
    let Some(req) = v.pointer("/requests/0") else {
        return bad_request("Requests must contain one search request.");
    };
    let types: Vec<&str> = req["entityTypes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if types != ["driveItem"] {
        return bad_request(format!(
            "EntityTypes {types:?} are not supported by this fake; use [\"driveItem\"]."
        ));
    }
    if req["region"].as_str().is_none_or(|r| r.trim().is_empty()) {
        return bad_request("Region is required when request with application permission.");
    }
    let Some(query) = req.pointer("/query/queryString").and_then(Value::as_str) else {
        return bad_request("Query string is required.");
    };
    let from = req["from"].as_u64().unwrap_or(0) as usize;
    let size = req["size"].as_u64().unwrap_or(25) as usize;
    if size == 0 || size > 500 {
        return bad_request("Size must be between 1 and 500.");
    }
    let d = g.data();
    let matches = search_matches(&d.drive, query);
    let words = query_words(query);
    let hits: Vec<Value> = matches
        .iter()
        .enumerate()
        .skip(from)
        .take(size)
        .map(|(rank, item)| {
            let mut summary = item["content"].as_str().unwrap_or("").to_owned();
            for w in &words {
                if let Some(pos) = summary.to_lowercase().find(w.as_str()) {
                    let end = pos + w.len();
                    summary = format!(
                        "{}<c0>{}</c0>{}",
                        &summary[..pos],
                        &summary[pos..end],
                        &summary[end..]
                    );
                }
            }
            let mut resource = drive_item_public(item);
            resource["@odata.type"] = json!("#microsoft.graph.driveItem");
            json!({"hitId": item["id"], "rank": rank + 1, "summary": format!("{summary}<ddd/>"),
                "resource": resource})
        })
        .collect();
    let more = from + hits.len() < matches.len();
    Json(json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.searchResponse)",
        "value": [{"searchTerms": words, "hitsContainers": [{"hits": hits,
            "total": matches.len(), "moreResultsAvailable": more}]}]}))
    .into_response()
}

// ---- Mutations -------------------------------------------------------------------------------

impl Data {
    /// `count` distinct live positions of `coll` not changed by the mutation in progress, chosen
    /// by the seeded generator; `skip` first positions are never chosen.
    fn pick_live(&mut self, items: &[Item], count: usize, skip: usize) -> Vec<usize> {
        let live: Vec<usize> = (skip..items.len())
            .filter(|&i| !items[i].deleted && items[i].seq <= self.mutation_start)
            .collect();
        let mut chosen = Vec::new();
        let mut pool = live;
        while chosen.len() < count && !pool.is_empty() {
            let k = self.rng.below(pool.len() as u64) as usize;
            chosen.push(pool.swap_remove(k));
        }
        chosen
    }

    fn mutate(&mut self, m: MsGraphMutation) -> MsGraphMutationReport {
        let now = now_ms();
        // Every record is touched at most once per mutation (added, updated or deleted).
        self.mutation_start = self.seq;
        let mut r = MsGraphMutationReport::default();
        // Users: new hires, title changes, leavers (never a mailbox owner).
        for _ in 0..m.users.add {
            let k = self.users.items.len() + 1000;
            let json = self.user_json(k);
            r.users.added.push(json["id"].as_str().unwrap_or("").into());
            let item = self.push(json);
            self.users.items.push(item);
        }
        let skip = self.mailbox_ids.len();
        let items = std::mem::take(&mut self.users.items);
        let upd = self.pick_live(&items, m.users.update, skip);
        self.users.items = items;
        for i in upd {
            let seq = self.tick();
            let u = &mut self.users.items[i];
            u.set("jobTitle", json!("Senior Program Manager"), seq);
            u.set("officeLocation", json!("Building 7"), seq);
            r.users.updated.push(u.id().into());
        }
        let items = std::mem::take(&mut self.users.items);
        let del = self.pick_live(&items, m.users.delete, skip);
        self.users.items = items;
        for i in del {
            let seq = self.tick();
            let u = &mut self.users.items[i];
            (u.deleted, u.seq) = (true, seq);
            r.users.deleted.push(u.id().into());
        }
        // Devices.
        for _ in 0..m.devices.add {
            let k = self.devices.items.len() + 5000;
            let json = self.device_json(k);
            r.devices
                .added
                .push(json["id"].as_str().unwrap_or("").into());
            let item = self.push(json);
            self.devices.items.push(item);
        }
        let items = std::mem::take(&mut self.devices.items);
        let upd = self.pick_live(&items, m.devices.update, 0);
        let del = {
            let mut rest = items.clone();
            for &i in &upd {
                rest[i].deleted = true; // not chosen twice
            }
            self.pick_live(&rest, m.devices.delete, 0)
        };
        self.devices.items = items;
        for i in upd {
            let seq = self.tick();
            let dv = &mut self.devices.items[i];
            dv.json["operatingSystemVersion"] = json!("10.0.26100.2314");
            dv.json["approximateLastSignInDateTime"] = json!(rfc3339_ms(now));
            dv.seq = seq;
            r.devices.updated.push(dv.id().into());
        }
        for i in del {
            let seq = self.tick();
            let dv = &mut self.devices.items[i];
            (dv.deleted, dv.seq) = (true, seq);
            r.devices.deleted.push(dv.id().into());
        }
        // Mail and events, round-robin over the mailboxes.
        let mailboxes: Vec<Value> = self
            .mailbox_ids
            .iter()
            .filter_map(|id| self.users.items.iter().find(|u| u.id() == id))
            .map(|u| u.json.clone())
            .collect();
        for k in 0..m.messages.add {
            let Some(mb) = mailboxes.get(k % mailboxes.len().max(1)) else {
                break;
            };
            let json = self.message_json(mb, now + k as i64);
            let item = self.push(json);
            let s = &mut self.mail[k % mailboxes.len()];
            r.messages.added.push(format!("{}/{}", s.key, item.id()));
            s.coll.items.push(item);
        }
        for k in 0..m.messages.update + m.messages.delete {
            let Some(s) = (!self.mail.is_empty()).then(|| k % self.mail.len()) else {
                break;
            };
            let items = std::mem::take(&mut self.mail[s].coll.items);
            let pick = self.pick_live(&items, 1, 0);
            self.mail[s].coll.items = items;
            let Some(&i) = pick.first() else { continue };
            let seq = self.tick();
            let scoped = &mut self.mail[s];
            let it = &mut scoped.coll.items[i];
            if k < m.messages.update {
                let subject = format!("[Updated] {}", it.json["subject"].as_str().unwrap_or(""));
                it.json["subject"] = json!(subject);
                it.json["isRead"] = json!(true);
                it.json["lastModifiedDateTime"] = json!(rfc3339_ms(now));
                r.messages
                    .updated
                    .push(format!("{}/{}", scoped.key, it.id()));
            } else {
                it.deleted = true;
                r.messages
                    .deleted
                    .push(format!("{}/{}", scoped.key, it.id()));
            }
            it.seq = seq;
        }
        for k in 0..m.events.add {
            let Some(mb) = mailboxes.get(k % mailboxes.len().max(1)) else {
                break;
            };
            let day = -20 + self.rng.below(41) as i64;
            let start = self.anchor_ms + day * DAY_MS + 14 * 3_600_000;
            let json = self.event_json(mb, start);
            let item = self.push(json);
            let s = &mut self.events[k % mailboxes.len()];
            r.events.added.push(format!("{}/{}", s.key, item.id()));
            s.coll.items.push(item);
        }
        for k in 0..m.events.update + m.events.delete {
            let Some(s) = (!self.events.is_empty()).then(|| k % self.events.len()) else {
                break;
            };
            let items = std::mem::take(&mut self.events[s].coll.items);
            let pick = self.pick_live(&items, 1, 0);
            self.events[s].coll.items = items;
            let Some(&i) = pick.first() else { continue };
            let seq = self.tick();
            let scoped = &mut self.events[s];
            let it = &mut scoped.coll.items[i];
            if k < m.events.update {
                let subject = format!("[Moved] {}", it.json["subject"].as_str().unwrap_or(""));
                it.json["subject"] = json!(subject);
                it.json["location"] = json!({"displayName": "Teams meeting"});
                it.json["lastModifiedDateTime"] = json!(rfc3339_ms(now));
                r.events.updated.push(format!("{}/{}", scoped.key, it.id()));
            } else {
                it.deleted = true;
                r.events.deleted.push(format!("{}/{}", scoped.key, it.id()));
            }
            it.seq = seq;
        }
        let chat_report = self.mutate_teams(true, m.chat_messages, now);
        let channel_report = self.mutate_teams(false, m.channel_messages, now);
        r.chat_messages = chat_report;
        r.channel_messages = channel_report;
        r
    }

    fn mutate_teams(&mut self, chats: bool, c: Change, now: i64) -> ChangeReport {
        let mut r = ChangeReport::default();
        let n = if chats {
            self.chats.len()
        } else {
            self.channels.len()
        };
        if n == 0 {
            return r;
        }
        for k in 0..c.add {
            let key = if chats {
                &self.chats[k % n].key
            } else {
                &self.channels[k % n].key
            }
            .clone();
            let json = self.teams_json(&key, now + k as i64, false);
            let item = self.push(json);
            r.added.push(format!("{key}/{}", item.id()));
            let s = if chats {
                &mut self.chats[k % n]
            } else {
                &mut self.channels[k % n]
            };
            s.coll.items.push(item);
        }
        for k in 0..c.update + c.delete {
            let s = k % n;
            let items = std::mem::take(if chats {
                &mut self.chats[s].coll.items
            } else {
                &mut self.channels[s].coll.items
            });
            // Only user messages that are not deleted yet.
            let mut candidates = items.clone();
            for it in &mut candidates {
                it.deleted |=
                    it.json["messageType"] != "message" || !it.json["deletedDateTime"].is_null();
            }
            let pick = self.pick_live(&candidates, 1, 0);
            let seq = self.tick();
            let scoped = if chats {
                &mut self.chats[s]
            } else {
                &mut self.channels[s]
            };
            scoped.coll.items = items;
            let Some(&i) = pick.first() else { continue };
            let it = &mut scoped.coll.items[i];
            it.seq = seq;
            it.json["lastModifiedDateTime"] = json!(rfc3339_ms(now));
            if k < c.update {
                let text = format!("(edited) {}", sentence(&mut Rng::new(seq), 5));
                it.json["body"]["content"] = json!(format!("<p>{text}</p>"));
                it.json["lastEditedDateTime"] = json!(rfc3339_ms(now));
                r.updated.push(format!("{}/{}", scoped.key, it.id()));
            } else {
                it.json["deletedDateTime"] = json!(rfc3339_ms(now));
                it.json["body"]["content"] = json!("");
                r.deleted.push(format!("{}/{}", scoped.key, it.id()));
            }
        }
        r
    }
}

// ---- Gate, control routes, router ------------------------------------------------------------

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Graph routes: counted, 429 knob, Bearer token issued here and not expired. The token endpoint
/// is counted but not checked; `/_fake/` is neither.
async fn gate(State(g): State<Arc<MsGraph>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_fake/") {
        return next.run(req).await;
    }
    let limited = g.core.record(&path);
    if !path.starts_with("/v1.0/") {
        return next.run(req).await;
    }
    if limited {
        let mut resp = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests have been made. Please retry later.",
        );
        let secs = g.retry_after_secs.load(Ordering::Relaxed);
        set_header(&mut resp, "retry-after", &secs.to_string());
        return resp;
    }
    let message = {
        let tokens = g.tokens();
        match bearer(req.headers()) {
            None => Some("Access token is empty."),
            Some(t) => match tokens.get(t) {
                None => Some("IDX14100: JWT is not well formed, there are no dots (.)."),
                Some(exp) if Instant::now() >= *exp => {
                    Some("Lifetime validation failed, the token is expired.")
                }
                Some(_) => None,
            },
        }
    };
    let Some(message) = message else {
        return next.run(req).await;
    };
    let mut resp = graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    );
    set_header(
        &mut resp,
        "www-authenticate",
        &format!(
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"{}\"",
            g.opts.client_id
        ),
    );
    resp
}

/// `POST /_fake/config`: any of `rate_limit_every` (N or null), `token_lifetime_secs`,
/// `retry_after_secs`.
async fn fake_config(State(g): State<Arc<MsGraph>>, body: Bytes) -> Response {
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(&body) else {
        return json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "expected a JSON object"}),
        );
    };
    for (k, val) in &v {
        match (k.as_str(), val) {
            ("rate_limit_every", Value::Null) => g.core.set_rate_limit_every(None),
            ("rate_limit_every", n) if n.as_u64().is_some() => {
                g.core.set_rate_limit_every(n.as_u64())
            }
            ("token_lifetime_secs", n) if n.as_u64().is_some() => g
                .token_lifetime_secs
                .store(n.as_u64().unwrap_or(3599), Ordering::Relaxed),
            ("retry_after_secs", n) if n.as_u64().is_some() => g
                .retry_after_secs
                .store(n.as_u64().unwrap_or(1), Ordering::Relaxed),
            _ => {
                return json_reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("unknown or invalid setting `{k}`")}),
                );
            }
        }
    }
    Json(config_json(&g)).into_response()
}

fn config_json(g: &MsGraph) -> Value {
    json!({"rate_limit_every": g.core.rate_limit_every(),
        "token_lifetime_secs": g.token_lifetime_secs.load(Ordering::Relaxed),
        "retry_after_secs": g.retry_after_secs.load(Ordering::Relaxed)})
}

fn router(state: Arc<MsGraph>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/v1.0/users", get(list_users))
        .route("/v1.0/users/delta", get(users_delta))
        .route("/v1.0/users/{id}", get(get_user))
        .route("/v1.0/users/{id}/managedDevices", get(managed_devices))
        .route("/v1.0/users/{id}/messages", get(list_messages))
        .route("/v1.0/users/{id}/messages/{mid}", get(get_message))
        .route(
            "/v1.0/users/{id}/mailFolders/{folder}/messages/delta",
            get(messages_delta),
        )
        .route("/v1.0/users/{id}/calendarView", get(calendar_view))
        .route("/v1.0/users/{id}/events/{eid}", get(get_event))
        .route("/v1.0/devices", get(list_devices))
        .route("/v1.0/devices/{id}", get(get_device))
        .route("/v1.0/chats/{chat}/messages", get(chat_messages))
        .route("/v1.0/chats/{chat}/messages/{mid}", get(chat_message))
        .route("/v1.0/teams/{team}/channels/{channel}/messages", get(channel_messages))
        .route(
            "/v1.0/teams/{team}/channels/{channel}/messages/{mid}",
            get(channel_message),
        )
        .route("/v1.0/drives/{drive}/items/{item}", get(drive_item))
        .route("/v1.0/search/query", post(search))
        .route(
            "/_fake/truth",
            get(|State(g): State<Arc<MsGraph>>| async move { Json(g.truth()) }),
        )
        .route(
            "/_fake/mutate",
            post(|State(g): State<Arc<MsGraph>>, body: Bytes| async move {
                match serde_json::from_slice::<MsGraphMutation>(&body) {
                    Ok(m) => Json(g.data().mutate(m)).into_response(),
                    Err(e) => json_reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": format!("expected {{\"users\":{{\"add\":N,\"update\":N,\"delete\":N}}, \"devices\":.., \"messages\":.., \"events\":.., \"chat_messages\":.., \"channel_messages\":..}}: {e}")}),
                    ),
                }
            }),
        )
        .route(
            "/_fake/requests",
            get(|State(g): State<Arc<MsGraph>>| async move {
                let mut v = serde_json::to_value(g.core.counts()).unwrap_or_default();
                v["token_requests"] = json!(g.token_requests.load(Ordering::Relaxed));
                Json(v)
            })
            .delete(|State(g): State<Arc<MsGraph>>| async move {
                g.core.reset_counts();
                g.token_requests.store(0, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/_fake/config",
            post(fake_config).get(|State(g): State<Arc<MsGraph>>| async move { Json(config_json(&g)) }),
        )
        .route(
            "/_fake/shutdown",
            post(|State(g): State<Arc<MsGraph>>| async move {
                g.core.request_shutdown();
                StatusCode::ACCEPTED
            }),
        )
        .fallback(|uri: Uri| async move {
            graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Resource not found for the segment '{}'.", uri.path().rsplit('/').next().unwrap_or("")),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Graph fake on `listen` (port 0 picks a free port).
pub async fn spawn_msgraph(
    listen: SocketAddr,
    opts: MsGraphOptions,
) -> std::io::Result<RunningFake<MsGraph>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let state = Arc::new(MsGraph {
        core: Core::new(opts.rate_limit_every),
        data: Mutex::new(generate(&opts)),
        token_lifetime_secs: AtomicU64::new(opts.token_lifetime_secs),
        retry_after_secs: AtomicU64::new(opts.retry_after_secs),
        opts,
        base_url: base_url.clone(),
        tokens: Mutex::default(),
        token_requests: AtomicU64::new(0),
    });
    Ok(server::start(
        listener,
        base_url,
        state.clone(),
        router(state),
    ))
}

impl RunningFake<MsGraph> {
    /// Everything the fake serves now, and the token requests so far.
    pub fn truth(&self) -> MsGraphTruth {
        self.state.truth()
    }
    /// Adds, updates and deletes records; every change is visible to the next delta round.
    pub fn mutate(&self, m: MsGraphMutation) -> MsGraphMutationReport {
        self.state.data().mutate(m)
    }
    /// Requests to the token endpoint so far (accepted or not).
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::Relaxed)
    }
    /// Every access token issued so far (for canary checks).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.tokens().keys().cloned().collect()
    }
    /// `expires_in` of tokens issued from now on.
    pub fn set_token_lifetime_secs(&self, secs: u64) {
        self.state
            .token_lifetime_secs
            .store(secs, Ordering::Relaxed);
    }
    /// `Retry-After` seconds of 429 answers.
    pub fn set_retry_after_secs(&self, secs: u64) {
        self.state.retry_after_secs.store(secs, Ordering::Relaxed);
    }
    /// `{base_url}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.base_url, self.state.opts.tenant
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Reply, http_with};

    async fn fake() -> RunningFake<MsGraph> {
        spawn_msgraph(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            MsGraphOptions::default(),
        )
        .await
        .expect("fake starts")
    }

    async fn token(f: &RunningFake<MsGraph>, scope: &str) -> Reply {
        let o = MsGraphOptions::default();
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={scope}",
            o.client_id, o.client_secret
        );
        let ct = [("Content-Type", "application/x-www-form-urlencoded")];
        http_with(
            f.addr,
            "POST",
            &format!("/{}/oauth2/v2.0/token", o.tenant),
            &ct,
            Some(&form),
        )
        .await
        .expect("token request")
    }

    async fn bearer_for(f: &RunningFake<MsGraph>) -> String {
        let r = token(f, "https%3A%2F%2Fgraph.microsoft.com%2F.default").await;
        assert_eq!(r.status, 200, "{}", r.body);
        format!(
            "Bearer {}",
            r.json()["access_token"].as_str().expect("token")
        )
    }

    async fn call(
        f: &RunningFake<MsGraph>,
        auth: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Reply {
        http_with(f.addr, method, path, &[("Authorization", auth)], body)
            .await
            .expect("request")
    }

    /// Follows `@odata.nextLink` from `first`; returns the items and the final page.
    async fn walk(f: &RunningFake<MsGraph>, auth: &str, first: &str) -> (Vec<Value>, Value) {
        let (mut out, mut path) = (Vec::new(), first.to_owned());
        loop {
            let r = call(f, auth, "GET", &path, None).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            let v = r.json();
            out.extend(v["value"].as_array().expect("value").iter().cloned());
            match v["@odata.nextLink"].as_str() {
                Some(next) => path = next.strip_prefix(&f.base_url).expect("absolute").to_owned(),
                None => return (out, v),
            }
        }
    }

    #[tokio::test]
    async fn msgraph_tokens_auth_paging_delta_and_errors() {
        let f = fake().await;
        let r = call(&f, "Bearer nope", "GET", "/v1.0/users", None).await;
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (401, Some("InvalidAuthenticationToken"))
        );
        assert!(r.json()["error"]["innerError"]["request-id"].is_string());
        let r = token(&f, "https%3A%2F%2Fgraph.microsoft.com%2F").await;
        assert_eq!(r.status, 400);
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS1002012")
        );
        // Another resource's `/.default` (here ARM's) is not Graph's scope.
        let r = token(&f, "https%3A%2F%2Fmanagement.azure.com%2F.default").await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("invalid_scope"))
        );
        let auth = bearer_for(&f).await;
        assert_eq!(f.token_requests(), 3);

        let truth = f.truth();
        let (users, last) = walk(&f, &auth, "/v1.0/users?$top=50").await;
        assert_eq!(users.len(), truth.users.len());
        assert!(last.get("@odata.deltaLink").is_none());
        let r = call(&f, &auth, "GET", "/v1.0/users?$top=1000", None).await;
        assert_eq!(r.status, 400);

        // Delta: initial round, then changes with @removed.
        let (initial, last) = walk(&f, &auth, "/v1.0/users/delta?$select=id,displayName").await;
        assert_eq!(initial.len(), truth.users.len());
        let delta = last["@odata.deltaLink"]
            .as_str()
            .expect("deltaLink")
            .strip_prefix(&f.base_url)
            .unwrap()
            .to_owned();
        let m = f.mutate(MsGraphMutation {
            users: Change {
                add: 2,
                update: 3,
                delete: 2,
            },
            ..Default::default()
        });
        let touched: std::collections::BTreeSet<&String> =
            [&m.users.added, &m.users.updated, &m.users.deleted]
                .into_iter()
                .flatten()
                .collect();
        assert_eq!(touched.len(), 7, "each user is touched once: {m:?}");
        let first = call(&f, &auth, "GET", &delta, None).await.json();
        assert_eq!(
            first["value"].as_array().map(Vec::len),
            Some(0),
            "first incremental page is empty"
        );
        let (changes, last) = walk(&f, &auth, &delta).await;
        assert!(last["@odata.deltaLink"].is_string());
        let removed: Vec<&str> = changes
            .iter()
            .filter(|c| c.get("@removed").is_some())
            .filter_map(|c| c["id"].as_str())
            .collect();
        assert_eq!(removed.len(), 2);
        assert!(
            m.users
                .deleted
                .iter()
                .all(|d| removed.contains(&d.as_str()))
        );
        assert_eq!(changes.len(), 7);
        // Updated users carry only `id` and the changed properties; new users arrive whole.
        for c in &changes {
            let id = c["id"].as_str().unwrap_or("");
            let keys: std::collections::BTreeSet<&str> =
                c.as_object().unwrap().keys().map(String::as_str).collect();
            if m.users.updated.iter().any(|u| u == id) {
                assert_eq!(
                    keys,
                    ["id", "jobTitle", "officeLocation"].into(),
                    "partial update: {c}"
                );
            } else if m.users.added.iter().any(|u| u == id) {
                assert!(keys.contains("userPrincipalName"), "created in full: {c}");
            }
        }

        // Mailboxes: messages delta and calendarView window.
        let upn = &truth.mailboxes[0];
        let (msgs, _) = walk(
            &f,
            &auth,
            &format!("/v1.0/users/{upn}/mailFolders/inbox/messages/delta"),
        )
        .await;
        assert_eq!(msgs.len(), truth.messages[upn].len());
        let r = call(
            &f,
            &auth,
            "GET",
            &format!("/v1.0/users/{upn}/calendarView"),
            None,
        )
        .await;
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (400, Some("ErrorInvalidParameter"))
        );
        let (events, _) = walk(
            &f,
            &auth,
            &format!("/v1.0/users/{upn}/calendarView?startDateTime=2000-01-01T00:00:00Z&endDateTime=2100-01-01T00:00:00Z"),
        )
        .await;
        assert_eq!(events.len(), truth.events[upn].len());

        // Teams: $top limits, newest first, system messages present.
        let chat = truth.chats.keys().next().unwrap().clone();
        let path = format!(
            "/v1.0/chats/{}/messages",
            chat.replace(':', "%3A").replace('@', "%40")
        );
        assert_eq!(
            call(&f, &auth, "GET", &format!("{path}?$top=51"), None)
                .await
                .status,
            400
        );
        let (msgs, _) = walk(&f, &auth, &format!("{path}?$top=50")).await;
        assert_eq!(
            msgs.iter()
                .filter(|m| m["messageType"] == "message")
                .count(),
            truth.chats[&chat].len()
        );
        assert!(
            msgs.iter()
                .any(|m| m["messageType"] == "systemEventMessage")
        );

        // Search needs a region; finds the planted phrase.
        let body = |region: &str| {
            format!(
                r#"{{"requests":[{{"entityTypes":["driveItem"],"query":{{"queryString":"airlock rollout"}},"from":0,"size":25{region}}}]}}"#
            )
        };
        let r = call(&f, &auth, "POST", "/v1.0/search/query", Some(&body(""))).await;
        assert_eq!(r.status, 400);
        let r = call(
            &f,
            &auth,
            "POST",
            "/v1.0/search/query",
            Some(&body(r#","region":"NAM""#)),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let c = &r.json()["value"][0]["hitsContainers"][0];
        let want = search_matches(&truth.drive_items, "airlock rollout").len();
        assert!(want > 0);
        assert_eq!(c["total"].as_u64(), Some(want as u64));
        assert!(c["hits"][0]["resource"].get("content").is_none());

        // Managed devices of the first user mix compliance states.
        let id = truth.users[0]["id"].as_str().unwrap();
        let (devices, _) = walk(&f, &auth, &format!("/v1.0/users/{id}/managedDevices")).await;
        let states: Vec<&str> = devices
            .iter()
            .filter_map(|d| d["complianceState"].as_str())
            .collect();
        assert_eq!(states, ["compliant", "noncompliant"]);

        // Expired tokens are refused; 429 carries Retry-After and Graph's error shape.
        f.set_token_lifetime_secs(0);
        let short = bearer_for(&f).await;
        let r = call(&f, &short, "GET", "/v1.0/devices", None).await;
        assert_eq!(r.status, 401);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("expired")
        );
        f.set_rate_limit_every(Some(1));
        let r = call(&f, &auth, "GET", "/v1.0/devices", None).await;
        assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
        assert_eq!(r.json()["error"]["code"], "TooManyRequests");
    }
}
