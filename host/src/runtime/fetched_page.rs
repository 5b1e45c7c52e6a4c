//! A sync page as its connector returned it, before it becomes a [`model::SyncPage`]. The sync
//! loop needs only a page's end, next cursor and counts to ask for the next page; turning the
//! rest into the model (each document's metadata checked for its canonical form) and scanning
//! it for secret values costs ~0.5 ms of a 1,000-record page, so [`FetchedPage::into_page`] runs
//! in the page's commit task, while the next page is fetched, not on the invoking thread.

use super::contract::latest::types;
use super::scrub_results::scrub_page;
use crate::model::{self, Stall};
use crate::scrub::Scrubber;

/// A fetched page: its records as the contract lifted them, and the scrubber they still have to
/// pass. Its next cursor is scrubbed already, since the sync loop hands it on at once.
pub struct FetchedPage {
    raw: types::SyncPage,
    scrubber: Scrubber,
    /// Who returned it, for the warning when a secret value is removed.
    connector: String,
    stream: String,
    cursor_scrubbed: bool,
}

impl FetchedPage {
    pub(super) fn new(
        mut raw: types::SyncPage,
        scrubber: &Scrubber,
        connector: &str,
        stream: &str,
    ) -> FetchedPage {
        let cursor_scrubbed = raw
            .next_cursor
            .as_mut()
            .is_some_and(|c| scrubber.scrub_in_place(c));
        FetchedPage {
            raw,
            scrubber: scrubber.clone(),
            connector: connector.to_string(),
            stream: stream.to_string(),
            cursor_scrubbed,
        }
    }

    /// Whether this is the stream's last page for now.
    pub fn done(&self) -> bool {
        self.raw.done
    }

    /// The cursor of the next page (scrubbed).
    pub fn next_cursor(&self) -> Option<&str> {
        self.raw.next_cursor.as_deref()
    }

    /// How many records it upserts and deletes.
    pub fn counts(&self) -> (u64, u64) {
        (self.raw.upserts.len() as u64, self.raw.deletes.len() as u64)
    }

    /// The contract's progress rule (see [`model::SyncPage::stall`]).
    pub fn stall(&self, was_given: impl Fn(&str) -> bool) -> Option<Stall> {
        Stall::of(self.done(), self.next_cursor(), was_given)
    }

    /// The page in the model, with every secret value removed (and a warning when one was). Its
    /// cursor stays the one [`FetchedPage::next_cursor`] handed on, scrubbed when fetched.
    pub fn into_page(self) -> model::SyncPage {
        let mut raw = self.raw;
        let cursor = raw.next_cursor.take();
        let mut page = model::SyncPage::from(raw);
        let scrubbed = scrub_page(&self.scrubber, &mut page);
        page.next_cursor = cursor;
        if scrubbed || self.cursor_scrubbed {
            tracing::warn!(
                connector = %self.connector,
                stream = %self.stream,
                "secret value removed from a synced page"
            );
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "revealed-Secret-99";

    fn raw(with_secret: &str) -> types::SyncPage {
        types::SyncPage {
            upserts: vec![types::Document {
                id: "1".into(),
                kind: "ticket".into(),
                title: format!("title {with_secret}"),
                body: "b".into(),
                url: None,
                updated_at: "2026-01-01T00:00:00Z".into(),
                // Not canonical: the model writes it again.
                metadata: format!(r#"{{"b": "{with_secret}", "a": 1}}"#),
                acl: vec![],
            }],
            deletes: vec![],
            next_cursor: Some(format!("after-{with_secret}")),
            done: false,
        }
    }

    fn scrubber() -> Scrubber {
        let s = Scrubber::new();
        s.add(SECRET);
        s
    }

    #[test]
    fn the_cursor_is_scrubbed_at_once_and_the_records_when_the_page_is_converted() {
        let fetched = FetchedPage::new(raw(SECRET), &scrubber(), "zendesk", "tickets");
        let cursor = fetched.next_cursor().unwrap();
        assert!(!cursor.contains(SECRET), "{cursor}");
        assert_eq!(fetched.counts(), (1, 0));
        assert!(!fetched.done());
        let page = fetched.into_page();
        let text = serde_json::to_string(&page).unwrap();
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains(crate::scrub::REDACTED), "{text}");
    }

    #[test]
    fn the_stored_cursor_is_the_one_handed_on() {
        let s = scrubber();
        let fetched = FetchedPage::new(raw("x"), &s, "zendesk", "tickets");
        let handed_on = fetched.next_cursor().map(str::to_string);
        // A value learnt between the fetch and the commit does not change the stored cursor.
        s.add("after-x");
        assert_eq!(fetched.into_page().next_cursor, handed_on);
    }

    #[test]
    fn a_converted_page_is_what_the_model_makes_of_the_records() {
        let fetched = FetchedPage::new(raw("x"), &scrubber(), "zendesk", "tickets");
        let page = fetched.into_page();
        let direct = model::SyncPage::from(raw("x"));
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            serde_json::to_string(&direct).unwrap()
        );
        assert_eq!(page.upserts[0].metadata.as_str(), r#"{"a":1,"b":"x"}"#);
        assert_eq!(page.next_cursor.as_deref(), Some("after-x"));
    }

    #[test]
    fn the_progress_rule_reads_the_fetched_page() {
        let s = scrubber();
        let mut last = raw("x");
        last.done = true;
        last.next_cursor = None;
        let last = FetchedPage::new(last, &s, "zendesk", "tickets");
        assert_eq!(last.stall(|_| true), None);
        let mut stuck = raw("x");
        stuck.next_cursor = None;
        let stuck = FetchedPage::new(stuck, &s, "zendesk", "tickets");
        assert_eq!(stuck.stall(|_| false), Some(Stall::NoCursor));
        let again = FetchedPage::new(raw("x"), &s, "zendesk", "tickets");
        assert_eq!(again.stall(|c| c == "after-x"), Some(Stall::RepeatedCursor));
        assert_eq!(again.stall(|_| false), None);
    }
}
