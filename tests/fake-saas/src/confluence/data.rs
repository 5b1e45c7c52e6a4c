//! The records behind the Confluence fake (spaces, pages, groups), the ground truth built from
//! them, and their mutations between sync runs (`RunningFake::mutate`, `POST /_fake/mutate`):
//! updates, trashes, creates and permission changes, each strictly later in time.

use super::check::update_restricted;
use super::generate::{ACCOUNT_IDS, NOUNS, VOCAB, capitalized, new_page, storage_to_text, words};
use super::permissions::{self, Group};
use super::{ConfluenceTruth, Mutation, MutationReport, TruthPage, TruthSpace};
use crate::common::{Rng, now_ms, rfc3339_ms};

#[derive(Clone, Debug)]
pub(super) struct Page {
    pub(super) id: u64,
    pub(super) trashed: bool,
    pub(super) title: String,
    pub(super) space: usize,
    pub(super) parent_id: Option<u64>,
    pub(super) author: &'static str,
    pub(super) created_ms: i64,
    pub(super) version: u32,
    pub(super) version_ms: i64,
    pub(super) version_author: &'static str,
    pub(super) body: String,
    pub(super) text: String,
    pub(super) restricted: Vec<String>,
    pub(super) restricted_groups: Vec<String>,
    pub(super) protected: bool,
}

pub(super) struct Space {
    pub(super) id: u64,
    pub(super) key: String,
    pub(super) name: String,
    pub(super) created_ms: i64,
    pub(super) homepage_id: Option<u64>,
    pub(super) grants: Vec<permissions::Grant>,
}

pub(super) struct Data {
    pub(super) spaces: Vec<Space>,
    pub(super) pages: Vec<Page>,
    pub(super) groups: Vec<Group>,
    pub(super) rng: Rng,
    pub(super) last_ms: i64,
}

impl Data {
    pub(super) fn truth_page(&self, p: &Page) -> TruthPage {
        let space = &self.spaces[p.space];
        TruthPage {
            id: p.id.to_string(),
            status: status(p).into(),
            title: p.title.clone(),
            space_id: space.id.to_string(),
            space_key: space.key.clone(),
            parent_id: p.parent_id.map(|id| id.to_string()),
            author_id: p.author.into(),
            created_at: rfc3339_ms(p.created_ms),
            version_number: p.version,
            version_created_at: rfc3339_ms(p.version_ms),
            body_storage: p.body.clone(),
            body_text: p.text.clone(),
            read_restricted_to: p.restricted.clone(),
            read_restricted_groups: p.restricted_groups.clone(),
            readers: self.readers_of(p),
            update_restricted_to: update_restricted(p),
        }
    }

    pub(super) fn truth(&self) -> ConfluenceTruth {
        let spaces = self.spaces.iter().map(|s| TruthSpace {
            id: s.id.to_string(),
            key: s.key.clone(),
            name: s.name.clone(),
            homepage_id: s.homepage_id.map(|id| id.to_string()),
        });
        let (trashed, current): (Vec<&Page>, Vec<&Page>) =
            self.pages.iter().partition(|p| p.trashed);
        ConfluenceTruth {
            spaces: spaces.collect(),
            groups: self.groups.clone(),
            pages: current.into_iter().map(|p| self.truth_page(p)).collect(),
            trashed: trashed.into_iter().map(|p| self.truth_page(p)).collect(),
        }
    }

    /// Modification times are wall-clock now (so they sort after every seeded time), strictly increasing.
    pub(super) fn tick(&mut self) -> i64 {
        self.last_ms = now_ms().max(self.last_ms + 1);
        self.last_ms
    }

    /// Picks up to `n` distinct current pages that `ok` accepts.
    pub(super) fn pick(&mut self, n: usize, ok: impl Fn(&Page) -> bool) -> Vec<usize> {
        let mut candidates: Vec<usize> = (0..self.pages.len())
            .filter(|&i| !self.pages[i].trashed && ok(&self.pages[i]))
            .collect();
        let mut chosen = Vec::new();
        while chosen.len() < n && !candidates.is_empty() {
            chosen.push(candidates.swap_remove(self.rng.below(candidates.len() as u64) as usize));
        }
        chosen.sort_unstable();
        chosen
    }

    pub(super) fn mutate(&mut self, m: Mutation) -> MutationReport {
        let mut report = MutationReport::default();
        for i in self.pick(m.update, |_| true) {
            let ms = self.tick();
            let extra = capitalized(&words(&mut self.rng, 6));
            let author = self.rng.pick(ACCOUNT_IDS);
            let p = &mut self.pages[i];
            p.version += 1;
            p.version_ms = ms;
            p.version_author = author;
            let base_title = p
                .title
                .split(" (rev ")
                .next()
                .unwrap_or_default()
                .to_owned();
            p.title = format!("{base_title} (rev {})", p.version);
            p.body
                .push_str(&format!("<p>Revision {}: {extra}.</p>", p.version));
            p.text = storage_to_text(&p.body);
            report.updated.push(p.id.to_string());
        }
        for i in self.pick(m.delete, |p| !p.protected) {
            let ms = self.tick();
            let p = &mut self.pages[i];
            p.trashed = true;
            p.version += 1;
            p.version_ms = ms;
            report.deleted.push(p.id.to_string());
        }
        for _ in 0..m.create {
            let ms = self.tick();
            let id = self
                .pages
                .last()
                .map_or(1_000_001, |p| p.id + 1 + self.rng.below(3));
            let space = self.rng.below(self.spaces.len() as u64) as usize;
            let parent = self.spaces[space].homepage_id;
            let title = format!(
                "{} {} {} {id}",
                capitalized(self.rng.pick(VOCAB)),
                self.rng.pick(VOCAB),
                self.rng.pick(NOUNS)
            );
            let page = new_page(&mut self.rng, id, space, parent, title, ms, false);
            self.pages.push(page);
            report.created.push(id.to_string());
        }
        for r in &m.restrict {
            if self.restrict(r) {
                report.restricted.push(r.page.clone());
            }
        }
        for sr in &m.space_read {
            if self.set_space_read(sr) {
                report.space_read.push(sr.space.clone());
            }
        }
        report
    }
}

pub(super) fn status(p: &Page) -> &'static str {
    if p.trashed { "trashed" } else { "current" }
}
