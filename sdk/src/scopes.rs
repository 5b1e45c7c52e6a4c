//! A stream that walks several listings in turn (one per mailbox, project or channel: its
//! *scopes*), one page per sync call, and keeps per scope what the next run needs: the delta link
//! of a delta query, or the ids of the last complete pass of a plain listing, whose difference to
//! the next pass are the deletes.
//!
//! ```ignore
//! let mut walk: Scopes = cursor::position(cursor)?;
//! let Some(i) = walk.current(scopes.len()) else { /* nothing configured */ };
//! let link = walk.link(&keys[i], is_delta).unwrap_or_else(|| first_url(i));
//! // ... read the page; for a plain listing `walk.saw(id)` for every record
//! let end = match next_link { Some(l) => End::Next(l), None if is_delta => End::Delta(d), None => End::Snapshot };
//! let (done, vanished) = walk.finish(&keys, end);
//! Ok(SyncPage::next(upserts, &walk).deletes(deletes).done(done))
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The cursor of a stream over several scopes. `scope` and `next` locate the page to read; the
/// rest is per scope key: the delta link of each finished delta scope, the ids of each plain
/// listing's last complete pass, and the ids seen so far in the pass in progress.
#[derive(Default, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scopes {
    /// Index of the scope being read.
    pub scope: usize,
    /// The next page of the scope's pass in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    delta: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    known: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    seen: Vec<String>,
}

/// How the page just read ends (or continues) its scope's listing.
#[derive(Debug, PartialEq)]
pub enum End {
    /// More pages: this link is the next.
    Next(String),
    /// A delta query's last page: its delta link starts the scope's next run.
    Delta(String),
    /// A plain listing's last page: the ids it had before and not in this pass are deletes.
    Snapshot,
}

impl End {
    /// How a page with these (already checked) links ends: [`End::Next`] while there is a next
    /// link; after the last page, [`End::Delta`] with the delta link for a delta query (an
    /// `upstream` error when it has none) and [`End::Snapshot`] for a plain listing.
    pub fn after(next: Option<String>, delta_link: Option<String>, delta: bool) -> Result<End> {
        match (next, delta_link) {
            (Some(next), _) => Ok(End::Next(next)),
            (None, Some(link)) if delta => Ok(End::Delta(link)),
            (None, None) if delta => Err(Error::upstream(
                "a delta page with neither a next link nor a delta link",
            )),
            (None, _) => Ok(End::Snapshot),
        }
    }
}

impl Scopes {
    /// The index of the scope to read among `count`; `None` when there is none. A cursor that
    /// points past the last scope (the settings changed under a run) starts the pass over.
    pub fn current(&mut self, count: usize) -> Option<usize> {
        if count == 0 {
            return None;
        }
        if self.scope >= count {
            (self.scope, self.next) = (0, None);
            self.seen.clear();
        }
        Some(self.scope)
    }

    /// Where to read scope `key`: the next page of the pass in progress, else for a delta query
    /// the delta link of its last run; `None` for the listing's first page.
    pub fn link(&mut self, key: &str, delta: bool) -> Option<String> {
        let last = self.delta.get(key).filter(|_| delta).cloned();
        self.next.take().or(last)
    }

    /// Notes that the pass of a plain listing saw the record `id`.
    pub fn saw(&mut self, id: &str) {
        self.seen.push(id.to_owned());
    }

    /// Ends the current page with `end`; `keys` are every scope's key, in order. Returns whether
    /// the run is done (the last scope finished) and the ids a finished plain listing no longer
    /// has. A done run forgets what it kept for scopes no longer in `keys`.
    pub fn finish(&mut self, keys: &[&str], end: End) -> (bool, Vec<String>) {
        let key = keys.get(self.scope).copied().unwrap_or_default().to_owned();
        let mut vanished = Vec::new();
        match end {
            End::Next(link) => {
                self.next = Some(link);
                return (false, vanished);
            }
            End::Delta(link) => {
                self.delta.insert(key, link);
            }
            End::Snapshot => {
                let seen: BTreeSet<String> = std::mem::take(&mut self.seen).into_iter().collect();
                let known = self.known.remove(&key).unwrap_or_default();
                vanished = known.into_iter().filter(|id| !seen.contains(id)).collect();
                self.known.insert(key, seen.into_iter().collect());
            }
        }
        let done = self.scope + 1 >= keys.len();
        self.scope = if done { 0 } else { self.scope + 1 };
        if done {
            self.delta.retain(|k, _| keys.contains(&k.as_str()));
            self.known.retain(|k, _| keys.contains(&k.as_str()));
        }
        (done, vanished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor;

    /// Reads one page of scope `i` holding `ids` and ending with `end`, through the cursor string.
    fn page(cursor: &str, keys: &[&str], ids: &[&str], end: End) -> (String, bool, Vec<String>) {
        let mut walk: Scopes = cursor::position(Some(cursor)).unwrap();
        let i = walk.current(keys.len()).unwrap();
        let _link = walk.link(keys[i], false);
        ids.iter().for_each(|id| walk.saw(id));
        let (done, vanished) = walk.finish(keys, end);
        (cursor::encode(&walk), done, vanished)
    }

    #[test]
    fn plain_listings_are_walked_in_turn_and_what_vanished_between_passes_is_deleted() {
        let keys = ["a", "b"];
        assert_eq!(cursor::encode(&Scopes::default()), r#"{"scope":0}"#);
        let (c, done, _) = page("", &keys, &["1", "2"], End::Next("a?page=2".into()));
        assert_eq!(c, r#"{"scope":0,"next":"a?page=2","seen":["1","2"]}"#);
        assert!(!done);
        let (c, done, gone) = page(&c, &keys, &["3"], End::Snapshot);
        assert!(!done && gone.is_empty(), "on to scope b");
        let (c, done, _) = page(&c, &keys, &["9"], End::Snapshot);
        assert!(done, "both scopes read: the run is done");
        // The next run: record 2 is gone from scope a.
        let (c, _, gone) = page(&c, &keys, &["1", "3"], End::Snapshot);
        assert_eq!(gone, vec!["2".to_string()]);
        // Scope b is no longer configured: a done run forgets it.
        let (c, done, _) = page(&c, &["a"], &["1", "3"], End::Snapshot);
        assert!(done);
        assert_eq!(c, r#"{"scope":0,"known":{"a":["1","3"]}}"#);
    }

    #[test]
    fn a_page_ends_by_its_links() {
        let end = |n: Option<&str>, d: Option<&str>, delta| {
            End::after(n.map(Into::into), d.map(Into::into), delta)
        };
        assert_eq!(
            end(Some("n"), Some("d"), true).unwrap(),
            End::Next("n".into())
        );
        assert_eq!(end(None, Some("d"), true).unwrap(), End::Delta("d".into()));
        assert!(matches!(end(None, None, true), Err(Error::Upstream(_))));
        assert_eq!(end(None, Some("d"), false).unwrap(), End::Snapshot);
        assert_eq!(end(None, None, false).unwrap(), End::Snapshot);
    }

    #[test]
    fn a_delta_scope_resumes_from_its_delta_link_and_a_stale_cursor_starts_over() {
        let mut walk = Scopes::default();
        assert_eq!(walk.current(0), None, "no scope configured");
        assert_eq!(walk.current(1), Some(0));
        assert_eq!(
            walk.link("users", true),
            None,
            "first run: the listing's first page"
        );
        assert_eq!(
            walk.finish(&["users"], End::Delta("d1".into())),
            (true, vec![])
        );
        assert_eq!(walk.link("users", true).as_deref(), Some("d1"));
        assert_eq!(
            walk.link("users", false),
            None,
            "a plain listing has no delta link"
        );
        let mut stale: Scopes = cursor::position(Some(r#"{"scope":3,"next":"x"}"#)).unwrap();
        assert_eq!((stale.current(2), stale.next), (Some(0), None));
    }
}
