//! Incremental sync over a listing that has no "modified since" filter but sorts newest first
//! (Confluence v2 pages by `-modified-date`, many issue trackers by `updated desc`): a run walks
//! from the top and stops at the first item older than the previous run's watermark. The
//! position ([`NewestFirst`], flattened into the connector's cursor) holds:
//!   `next`      the link of the run in progress (none between runs),
//!   `watermark` the newest time at the start of the run in progress: its first item's,
//!   `since`     the watermark of the last completed run.
//!
//! Why this is correct when records change between or during runs:
//! - A record saved after the run started sorts to the front, behind the run's cursor, so the
//!   run may miss it. The watermark is deliberately the value seen at the start, never the
//!   largest seen later, so the next run (which stops only at items older than it) fetches it.
//!   And a run longer than one request is no snapshot, so before it reports `done` it probes the
//!   newest item ([`NewestFirst::done`]): if that is newer than the watermark, the run is not
//!   done and the host goes straight on to the incremental run that fetches those saves. A
//!   one-request run is its own snapshot.
//! - Items equal to the watermark and within `overlap_ms` before it are fetched again (upserts
//!   are idempotent), covering equal timestamps and saves that commit out of timestamp order.
//! - A stale `next` (the upstream refuses it) restarts the run from the top with the same
//!   `since` ([`crate::paging::resume_or`]), which only re-upserts.
//!
//! A change that does not move an item's modification time (Confluence does not bump a page's
//! version when its restrictions change) is never seen by such a walk. For that, an incremental
//! run may end with a sweep ([`NewestFirst::done_or_sweep`]): one more pass over every item, in
//! whatever order the listing keeps stable, its link kept as `sweep` ("" before its first page;
//! [`NewestFirst::take_sweep`], [`NewestFirst::swept`]). A full run reads every item anyway and
//! needs none.
//!
//! With an Atlassian-style listing ([`ListPage`]) [`NewestFirst::walk`] and
//! [`NewestFirst::sweep`] do all of a page:
//!
//! ```ignore
//! let mut walk: NewestFirst = cursor::position(cursor)?;
//! let pages: Vec<Page> = walk.walk((&base, PAGES, "pages"), first, Page::time, OVERLAP_MS)?;
//! // ... map the pages ...
//! let done = walk.done_or_sweep(false, || newest_now())?;
//! ```
//!
//! Or step by step, in a cursor of the connector's own:
//!
//! ```ignore
//! #[derive(Default, Serialize, Deserialize)]
//! struct Cursor { #[serde(flatten)] walk: NewestFirst }
//! let link = cursor.walk.take_next().map(|l| Ok(Request::get(base.follow(PATH, &l)?))).transpose()?;
//! let (response, resumed) = paging::resume_or(link, "pages", || first().send())?;
//! let list: ListPage<Page> = response.json()?;
//! let times: Vec<Option<&str>> = list.values.iter().map(|p| p.updated.as_deref()).collect();
//! let keep = cursor.walk.page(resumed, &times, list.next_link(), OVERLAP_MS);
//! // ... map list.values[..keep] ...
//! let done = cursor.walk.done(|| newest_now())?;
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::paging::ListPage;
use crate::text::{later, parse_rfc3339};
use crate::{BaseUrl, Response, Result};

/// Where a newest-first incremental sync is (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewestFirst {
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    watermark: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// The link of the sweep under way ("" before its first page).
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep: Option<String>,
    /// Whether the page just taken began its run (and so was one upstream snapshot).
    #[serde(skip)]
    first_of_run: bool,
    /// Whether the run of the page just taken is incremental (a run had completed before it).
    #[serde(skip)]
    incremental: bool,
}

impl NewestFirst {
    /// The link to continue the run in progress from, taken out (none: start at the top).
    pub fn take_next(&mut self) -> Option<String> {
        self.next.take()
    }

    /// Whether a run has completed before, so this one is incremental.
    pub fn is_incremental(&self) -> bool {
        self.since.is_some()
    }

    /// Takes in a page: `resumed` when it continued the run from its link (else it is the top
    /// of the listing), the RFC 3339 modification times of its items in listing order, and its
    /// link to the next page. Returns how many items, from the front, to emit: those not older
    /// than the last run's watermark less `overlap_ms`; the run ends at the first older one or
    /// when there is no next page.
    pub fn page(
        &mut self,
        resumed: bool,
        times: &[Option<&str>],
        next: Option<String>,
        overlap_ms: i64,
    ) -> usize {
        self.incremental = self.is_incremental();
        self.first_of_run = !resumed || self.watermark.is_none();
        if self.first_of_run {
            let newest = times.first().copied().flatten().map(str::to_owned);
            self.watermark = later(newest, self.since.clone());
        }
        let stop_before = at(&self.since).map_or(i64::MIN, |ms| ms - overlap_ms);
        let stale = |t: &&Option<&str>| t.and_then(parse_rfc3339).is_some_and(|m| m < stop_before);
        let keep = times.iter().take_while(|t| !stale(t)).count();
        self.next = next.filter(|_| keep == times.len());
        if self.next.is_none() {
            self.since = self.watermark.take();
        }
        keep
    }

    /// Whether the run is over after the page just taken: no next page and, for a run that
    /// took more than one request, nothing saved since its watermark; `newest()` gives the
    /// modification time of the listing's newest item now (one request, made only then). With
    /// nothing to compare, ending is all that is safe (another run would be the same).
    pub fn done(&self, newest: impl FnOnce() -> Result<Option<String>>) -> Result<bool> {
        if self.next.is_some() {
            return Ok(false);
        }
        if self.first_of_run {
            return Ok(true);
        }
        let newer = at(&newest()?).zip(at(&self.since));
        Ok(newer.is_none_or(|(now, since)| now <= since))
    }
}

impl NewestFirst {
    /// [`NewestFirst::done`], except that an incremental run which would end starts a sweep
    /// instead when `sweep` is asked for (the module docs say why): not done yet.
    pub fn done_or_sweep(
        &mut self,
        sweep: bool,
        newest: impl FnOnce() -> Result<Option<String>>,
    ) -> Result<bool> {
        let done = self.done(newest)?;
        if done && sweep && self.incremental {
            self.sweep = Some(String::new());
            return Ok(false);
        }
        Ok(done)
    }

    /// The link to continue the sweep under way from, taken out: `Some("")` for its first page,
    /// `None` when no sweep is under way (then the walk goes on).
    pub fn take_sweep(&mut self) -> Option<String> {
        self.sweep.take()
    }

    /// Takes in a sweep page by its link to the next one; whether the sweep, and with it the
    /// run, is over (no next page).
    pub fn swept(&mut self, next: Option<String>) -> bool {
        self.sweep = next;
        self.sweep.is_none()
    }
}

impl NewestFirst {
    /// One page of the walk over an Atlassian-style listing ([`ListPage`]): continues the run
    /// from its stored link (only under `path` of `base`) or, with none or a stale one, starts
    /// at the top with `first()` ([`ListPage::resume`], which logs `what`), takes the page in
    /// ([`NewestFirst::page`], items timed by `time`) and returns the items to emit.
    pub fn walk<T: DeserializeOwned>(
        &mut self,
        (base, path, what): (&BaseUrl, &str, &str),
        first: impl FnOnce() -> Result<Response>,
        time: impl Fn(&T) -> Option<&str>,
        overlap_ms: i64,
    ) -> Result<Vec<T>> {
        let next = self.take_next();
        let (mut list, resumed) = ListPage::<T>::resume(base, path, next.as_deref(), what, first)?;
        let times: Vec<Option<&str>> = list.values.iter().map(time).collect();
        let keep = self.page(resumed, &times, list.next_link(), overlap_ms);
        list.values.truncate(keep);
        Ok(list.values)
    }

    /// One page of the sweep under way, whose link [`NewestFirst::take_sweep`] gave as `at`
    /// (`""`, or a stale link: from the top with `first()`, logged as `what`): its items, and
    /// whether the sweep, and with it the run, is over ([`NewestFirst::swept`]).
    pub fn sweep<T: DeserializeOwned>(
        &mut self,
        (base, path, what): (&BaseUrl, &str, &str),
        at: &str,
        first: impl FnOnce() -> Result<Response>,
    ) -> Result<(Vec<T>, bool)> {
        let (list, _) = ListPage::<T>::resume(base, path, Some(at), what, first)?;
        let done = self.swept(list.next_link());
        Ok((list.values, done))
    }
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn at(t: &Option<String>) -> Option<i64> {
    t.as_deref().and_then(parse_rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2025-01-01T00:01:00Z";
    const T2: &str = "2025-01-01T00:02:00Z";
    const T3: &str = "2025-01-01T00:03:00Z";
    const T9: &str = "2025-01-01T00:09:00Z";

    #[test]
    fn a_one_page_run_is_its_own_snapshot_and_the_next_run_stops_at_its_watermark() {
        let mut walk = NewestFirst::default();
        assert!(!walk.is_incremental());
        assert_eq!(walk.page(false, &[Some(T3), Some(T1)], None, 0), 2);
        assert!(
            walk.done(|| panic!("no probe after a one-request run"))
                .unwrap()
        );
        assert_eq!(walk.since.as_deref(), Some(T3));
        assert!(walk.is_incremental());
        // The next run emits what is not older than T3 (less the overlap) and stops there.
        let mut again = walk.clone();
        assert_eq!(
            again.page(false, &[Some(T9), Some(T3), Some(T2)], Some("n".into()), 0),
            2
        );
        assert_eq!(
            again.take_next(),
            None,
            "reaching the watermark ends the run"
        );
        assert_eq!(again.since.as_deref(), Some(T9));
        // An overlap of two minutes fetches T2 again too.
        assert_eq!(
            walk.page(
                false,
                &[Some(T9), Some(T3), Some(T2), Some(T1)],
                None,
                60_000
            ),
            3
        );
    }

    #[test]
    fn a_longer_run_keeps_its_starting_watermark_and_probes_before_it_ends() {
        let mut walk = NewestFirst::default();
        assert_eq!(walk.page(false, &[Some(T3)], Some("p2".into()), 0), 1);
        assert!(!walk.done(|| panic!("not at the end")).unwrap());
        assert_eq!(walk.take_next().as_deref(), Some("p2"));
        // The second page is older; the watermark stays at the run's start.
        assert_eq!(walk.page(true, &[Some(T1)], None, 0), 1);
        assert_eq!(walk.since.as_deref(), Some(T3));
        assert!(
            !walk.done(|| Ok(Some(T9.into()))).unwrap(),
            "saved during the run"
        );
        assert!(walk.done(|| Ok(Some(T3.into()))).unwrap());
        assert!(walk.done(|| Ok(None)).unwrap(), "nothing to compare: end");
    }

    #[test]
    fn only_an_incremental_run_ends_with_a_sweep_and_the_sweep_keeps_its_link() {
        let mut full = NewestFirst::default();
        full.page(false, &[Some(T3)], None, 0);
        assert!(
            full.done_or_sweep(true, || Ok(None)).unwrap(),
            "a full run needs no sweep"
        );
        assert_eq!(full.take_sweep(), None);
        let mut walk = full.clone();
        walk.page(false, &[Some(T9)], None, 0);
        assert!(
            walk.clone().done_or_sweep(false, || Ok(None)).unwrap(),
            "not asked for"
        );
        assert!(!walk.done_or_sweep(true, || Ok(None)).unwrap());
        let json = crate::cursor::encode(&walk);
        assert_eq!(json, format!(r#"{{"since":"{T9}","sweep":""}}"#));
        let mut walk: NewestFirst = crate::cursor::position(Some(&json)).unwrap();
        assert_eq!(walk.take_sweep().as_deref(), Some(""));
        assert!(!walk.swept(Some("/p?cursor=2".into())));
        assert_eq!(walk.take_sweep().as_deref(), Some("/p?cursor=2"));
        assert!(walk.swept(None), "the last sweep page ends the run");
        assert_eq!(
            crate::cursor::encode(&walk),
            format!(r#"{{"since":"{T9}"}}"#)
        );
    }

    #[test]
    fn a_restarted_run_takes_a_new_watermark_and_never_moves_one_back() {
        let mut walk = NewestFirst {
            since: Some(T3.into()),
            ..NewestFirst::default()
        };
        // An empty listing keeps the last watermark.
        assert_eq!(walk.page(false, &[], None, 0), 0);
        assert_eq!(walk.since.as_deref(), Some(T3));
        // A stale link (resumed = false) begins the run again: its first item is the watermark.
        walk.next = Some("stale".into());
        walk.watermark = Some(T2.into());
        let _ = walk.take_next();
        assert_eq!(walk.page(false, &[Some(T9)], None, 0), 1);
        assert_eq!(walk.since.as_deref(), Some(T9));
        let json = crate::cursor::encode(&walk);
        assert_eq!(json, format!(r#"{{"since":"{T9}"}}"#));
    }
}
