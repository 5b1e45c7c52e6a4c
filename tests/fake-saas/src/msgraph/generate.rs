//! The seeded data set: name tables, the JSON builders for each kind of record (users, devices,
//! managed devices, messages, events, Teams messages, drive items) and the initial generation.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::data::{Coll, Data, Item, Scoped};
use super::{DAY_MS, DOMAIN, MsGraphOptions, TENANT_ID};
use crate::common::{Rng, now_ms, rfc3339_ms, utc_ms};

pub(super) const FIRST: [&str; 16] = [
    "Ada", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko",
    "Liam", "Maya", "Noah", "Olga", "Priya",
];
pub(super) const LAST: [&str; 12] = [
    "Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
    "Khan", "Lopez",
];
pub(super) const TITLES: [&str; 6] = [
    "Engineer",
    "Analyst",
    "Manager",
    "Consultant",
    "Director",
    "Technician",
];
pub(super) const DEPTS: [&str; 5] = ["Finance", "IT", "Sales", "Operations", "Legal"];
pub(super) const OFFICES: [&str; 4] = ["Seattle", "London", "Berlin", "Remote"];
pub(super) const OSES: [(&str, &str); 4] = [
    ("Windows", "10.0.22631.4460"),
    ("MacMDM", "14.6.1"),
    ("iOS", "17.6"),
    ("Android", "14"),
];
pub(super) const COMPLIANCE: [&str; 5] = [
    "compliant",
    "compliant",
    "noncompliant",
    "inGracePeriod",
    "unknown",
];
pub(super) const TOPICS: [&str; 10] = [
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
pub(super) const WORDS: [&str; 12] = [
    "please", "review", "the", "latest", "figures", "before", "friday", "and", "confirm", "with",
    "team", "thanks",
];

pub(super) fn guid(rng: &mut Rng) -> String {
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
pub(super) fn exchange_id(rng: &mut Rng) -> String {
    let bytes: Vec<u8> = (0..30).map(|_| rng.next_u64() as u8).collect();
    format!("AAMkAG{}=", URL_SAFE_NO_PAD.encode(bytes))
}

pub(super) fn sentence(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| rng.pick(&WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Graph's `dateTimeTimeZone` form: `2026-11-20T09:00:00.0000000`.
pub(super) fn graph_local(ms: i64) -> String {
    let s = rfc3339_ms(ms);
    format!("{}.0000000", &s[..19])
}

pub(super) fn upn_of(k: usize) -> (String, String, String) {
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
    pub(super) fn tick(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
    pub(super) fn push(&mut self, json: Value) -> Item {
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

    pub(super) fn user_json(&mut self, k: usize) -> Value {
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

    pub(super) fn device_json(&mut self, k: usize) -> Value {
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

    pub(super) fn managed_json(&mut self, user: &Value, compliance: &str) -> Value {
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

    pub(super) fn message_json(&mut self, mailbox: &Value, at: i64) -> Value {
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

    pub(super) fn event_json(&mut self, mailbox: &Value, start: i64) -> Value {
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
    pub(super) fn teams_json(&mut self, scope: &str, at: i64, system: bool) -> Value {
        let id = at.to_string();
        // The sender is one of the chat's or channel's members (anyone when none are known).
        let pool: Vec<Value> = match self.members_of(scope) {
            Some(ids) if !ids.is_empty() => ids
                .iter()
                .filter_map(|m| self.users.find(m).map(|u| u.json.clone()))
                .collect(),
            _ => self.users.items.iter().map(|i| i.json.clone()).collect(),
        };
        let k = self.rng.below(pool.len().max(1) as u64) as usize;
        let user = pool.get(k).cloned().unwrap_or(json!({}));
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

pub(super) fn generate(opts: &MsGraphOptions) -> Data {
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
        members: BTreeMap::new(),
    };
    // Memberships come from their own generator, so the other records stay as they were.
    let mut mrng = Rng::new(opts.seed ^ 0x6d65_6d62);
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
        let n = 3 + mrng.below(5) as usize;
        let members = pick_members(&mut mrng, &users, n);
        d.members.insert(chat.clone(), members);
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
    let team_members = pick_members(&mut mrng, &users, 12);
    d.members.insert(team.clone(), team_members.clone());
    for c in 0..opts.channels {
        let (hi, lo) = (d.rng.next_u64(), d.rng.next_u64());
        let channel = format!("19:{hi:016x}{lo:016x}@thread.tacv2");
        let key = format!("{team}/{channel}");
        // The second channel is private: a few of the team's members only.
        if c == 1 {
            let own = team_members.iter().step_by(3).cloned().collect();
            d.members.insert(key.clone(), own);
        }
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
        let author_user = users.get(k % users.len().max(1)).cloned();
        let reader = users.get((k + 1) % users.len().max(1)).cloned();
        let permissions = drive_permissions(k, &id, author_user.as_ref(), reader.as_ref());
        d.drive.push(json!({"permissions": permissions, "id": id, "name": name, "description": format!("{kind} ({topic})"),
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

/// A drive item's permissions as `/drives/{d}/items/{i}/permissions` lists them: its author as
/// owner, the next user as reader, and on every third item an organization-wide sharing link, on
/// every fifth a grant to a group (whose members the fake does not model).
fn drive_permissions(
    k: usize,
    item: &str,
    author: Option<&Value>,
    reader: Option<&Value>,
) -> Value {
    let identity = |u: &Value| {
        json!({"user": {"id": u["id"], "displayName": u["displayName"],
        "email": u["mail"]}})
    };
    let mut out = Vec::new();
    for (n, (user, role)) in [(author, "owner"), (reader, "read")]
        .into_iter()
        .enumerate()
    {
        if let Some(u) = user {
            let who = identity(u);
            out.push(
                json!({"id": format!("{item}-p{n}"), "roles": [role], "grantedToV2": who,
                "grantedTo": who, "inheritedFrom": {}}),
            );
        }
    }
    if k.is_multiple_of(3) {
        out.push(
            json!({"id": format!("{item}-link"), "roles": ["read"], "hasPassword": false,
            "grantedToIdentitiesV2": [], "link": {"scope": "organization", "type": "view",
            "webUrl": format!("https://contoso.sharepoint.com/:w:/s/ops/{item}")}}),
        );
    }
    if k.is_multiple_of(5) {
        out.push(
            json!({"id": format!("{item}-g"), "roles": ["read"], "grantedToV2": {"group": {
            "id": "7f0c9e1a-5b3d-4c2e-9a8f-1e2d3c4b5a69", "displayName": "Operations Members",
            "email": format!("operations@{DOMAIN}")}}}),
        );
    }
    Value::Array(out)
}

/// `n` distinct user ids, in the users' order.
fn pick_members(rng: &mut Rng, users: &[Value], n: usize) -> Vec<String> {
    let mut picked: Vec<usize> = Vec::new();
    while picked.len() < n.min(users.len()) {
        let k = rng.below(users.len() as u64) as usize;
        if !picked.contains(&k) {
            picked.push(k);
        }
    }
    picked.sort_unstable();
    let id = |k: &usize| users[*k]["id"].as_str().unwrap_or("").to_owned();
    picked.iter().map(id).collect()
}

pub(super) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub(super) fn mime(ext: &str) -> &'static str {
    match ext {
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/pdf",
    }
}

/// The driveItem without the fake's `content`.
pub(super) fn drive_item_public(item: &Value) -> Value {
    let mut v = item.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("content");
        o.remove("permissions");
    }
    v
}
