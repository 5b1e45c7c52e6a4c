//! The records behind the Atera fake (tickets with their comments, the comment writes received)
//! and their changes between sync runs (`RunningFake::mutate`, `POST /_fake/mutate`): updates,
//! comments and creates, each modified strictly later than the last.

use super::generate::{STATUSES, comment, sentence};
use super::{AteraMutation, AteraMutationReport, AteraTruthTicket, AteraWrite, FIRST_TICKET_ID};
use crate::common::{Rng, now_ms, rfc3339_secs};

pub(super) struct Data {
    /// By ascending id; `tickets[i].id == FIRST_TICKET_ID + i`.
    pub(super) tickets: Vec<(AteraTruthTicket, i64)>,
    pub(super) writes: Vec<AteraWrite>,
    pub(super) rng: Rng,
    pub(super) last_ms: i64,
    pub(super) next_action: u64,
}

/// Recomputes the fields derived from the comments.
pub(super) fn refresh(t: &mut AteraTruthTicket) {
    let last = |tech: bool| t.comments.iter().rev().find(|c| c.by_technician == tech);
    let (user, tech) = (last(false).cloned(), last(true).cloned());
    t.first_comment = t
        .comments
        .first()
        .map(|c| c.comment.clone())
        .unwrap_or_default();
    t.last_end_user_comment = user.as_ref().map(|c| c.comment.clone()).unwrap_or_default();
    t.last_end_user_comment_timestamp = user.map(|c| c.date);
    t.last_technician_comment = tech.as_ref().map(|c| c.comment.clone()).unwrap_or_default();
    t.last_technician_comment_timestamp = tech.map(|c| c.date);
}

impl Data {
    /// A strictly increasing "now" for changes.
    pub(super) fn tick(&mut self) -> i64 {
        self.last_ms = now_ms().max(self.last_ms + 1);
        self.last_ms
    }

    pub(super) fn touch(&mut self, i: usize, at: i64) {
        let (t, m) = &mut self.tickets[i];
        refresh(t);
        *m = at;
        t.modified = rfc3339_secs(at / 1000);
    }

    pub(super) fn add_comment(&mut self, i: usize, tech: bool) -> i64 {
        let at = self.tick();
        let c = comment(&mut self.rng, at, tech, &self.tickets[i].0);
        self.tickets[i].0.comments.push(c);
        self.touch(i, at);
        at
    }

    pub(super) fn mutate(&mut self, m: AteraMutation) -> AteraMutationReport {
        let mut report = AteraMutationReport::default();
        let n = self.tickets.len();
        let pick = |rng: &mut Rng, k: usize| -> Vec<usize> {
            let mut out = Vec::new();
            while out.len() < k.min(n) {
                let i = rng.below(n as u64) as usize;
                if !out.contains(&i) {
                    out.push(i);
                }
            }
            out
        };
        for i in pick(&mut self.rng, m.update) {
            let at = self.tick();
            let title = format!(
                "{} (updated)",
                sentence(&mut self.rng, 3).trim_end_matches('.')
            );
            let status = self.rng.pick(&STATUSES[..2]);
            let t = &mut self.tickets[i].0;
            (t.title, t.status, t.resolved) = (title, status.into(), None);
            self.touch(i, at);
            report.updated.push(self.tickets[i].0.id);
        }
        for i in pick(&mut self.rng, m.comment) {
            self.add_comment(i, false);
            report.commented.push(self.tickets[i].0.id);
        }
        for _ in 0..m.create {
            let id = FIRST_TICKET_ID + self.tickets.len() as u64;
            let at = self.tick();
            let t = self.new_ticket(id, at);
            self.tickets.push(t);
            self.touch(self.tickets.len() - 1, at);
            report.created.push(id);
        }
        report
    }
}
