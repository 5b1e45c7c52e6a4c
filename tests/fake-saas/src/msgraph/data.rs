//! The store behind the Graph fake: records with their change bookkeeping (`Item`), the
//! collections that hold them, and the `Data` that the handlers read and the mutations change.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::Rng;

/// One record with its change bookkeeping: `ord` is its fixed place in listings, `seq` the global
/// change number of its last change (what delta queries compare), `created` the change number
/// that added it and `changed` the change number of each property's last update (so a delta
/// round can send an updated record as only the properties changed since its token).
#[derive(Clone, Debug)]
pub(super) struct Item {
    pub(super) json: Value,
    pub(super) ord: u64,
    pub(super) seq: u64,
    pub(super) created: u64,
    pub(super) changed: BTreeMap<String, u64>,
    pub(super) deleted: bool,
}

impl Item {
    pub(super) fn id(&self) -> &str {
        self.json["id"].as_str().unwrap_or("")
    }

    /// Sets one property as change number `seq`.
    pub(super) fn set(&mut self, key: &str, value: Value, seq: u64) {
        self.json[key] = value;
        self.changed.insert(key.to_owned(), seq);
        self.seq = seq;
    }

    /// What a delta round since change `since` shows of this updated record: its `id` and the
    /// properties changed after `since` (Graph's `Prefer: return=minimal` shape, the least the
    /// delta contract promises for an update).
    pub(super) fn changes_since(&self, since: u64) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("id".into(), json!(self.id()));
        for (key, _) in self.changed.iter().filter(|(_, at)| **at > since) {
            out.insert(key.clone(), self.json[key.as_str()].clone());
        }
        Value::Object(out)
    }
}

#[derive(Default)]
pub(super) struct Coll {
    pub(super) items: Vec<Item>,
}

impl Coll {
    pub(super) fn live(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| !i.deleted)
    }
    pub(super) fn find(&self, id: &str) -> Option<&Item> {
        self.live().find(|i| i.id() == id)
    }
}

pub(super) struct Scoped {
    /// Mailbox UPN, chat id, or `team/channel`.
    pub(super) key: String,
    pub(super) coll: Coll,
}

pub(super) struct Data {
    pub(super) seq: u64,
    pub(super) ord: u64,
    pub(super) rng: Rng,
    pub(super) anchor_ms: i64,
    /// Change number when the current mutation began: records changed since are not picked again.
    pub(super) mutation_start: u64,
    pub(super) users: Coll,
    pub(super) devices: Coll,
    pub(super) managed: Vec<Value>,
    /// Mailbox user ids, in order (their mail and events are `mail[i]`, `events[i]`).
    pub(super) mailbox_ids: Vec<String>,
    pub(super) mail: Vec<Scoped>,
    pub(super) events: Vec<Scoped>,
    pub(super) chats: Vec<Scoped>,
    pub(super) channels: Vec<Scoped>,
    pub(super) drive: Vec<Value>,
    /// Member user ids by chat id, by team id, and by `team/channel` for private channels (a
    /// standard channel's members are its team's).
    pub(super) members: BTreeMap<String, Vec<String>>,
}

impl Data {
    /// The member ids of a chat (`chat id`), a team (`team id`) or a channel (`team/channel`):
    /// a private channel's own members, else the team's. `None` for an unknown scope.
    pub(super) fn members_of(&self, scope: &str) -> Option<&Vec<String>> {
        let own = self.members.get(scope);
        let team = || scope.split_once('/').and_then(|(t, _)| self.members.get(t));
        own.or_else(team)
    }
}
