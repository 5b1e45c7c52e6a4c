//! Mutations between sync runs (`RunningFake::mutate`, `POST /_fake/mutate`): adds, updates and
//! deletes per collection, each a new change number that the delta queries pick up.

use serde_json::{Value, json};

use super::data::{Data, Item};
use super::generate::sentence;
use super::{Change, ChangeReport, DAY_MS, MsGraphMutation, MsGraphMutationReport};
use crate::common::{Rng, now_ms, rfc3339_ms};

impl Data {
    /// `count` distinct live positions of `coll` not changed by the mutation in progress, chosen
    /// by the seeded generator; `skip` first positions are never chosen.
    pub(super) fn pick_live(&mut self, items: &[Item], count: usize, skip: usize) -> Vec<usize> {
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

    pub(super) fn mutate(&mut self, m: MsGraphMutation) -> MsGraphMutationReport {
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

    pub(super) fn mutate_teams(&mut self, chats: bool, c: Change, now: i64) -> ChangeReport {
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
