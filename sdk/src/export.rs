//! Incremental exports: endpoints that return every record changed since a point, a page at a
//! time, and say where the next page starts, either with a cursor they hand out (cursor-based:
//! `after_cursor`, `end_of_stream`) or with a time (time-based: the `start_time` of the
//! `next_page` link, else `end_time`). [`Position`] is the sync cursor of such a stream, `{"c":
//! CURSOR}` or `{"start_time": UNIX_SECONDS}`; a finished run's position goes on with newer
//! changes on the next run, and records changed again during a run come twice (upserts are
//! idempotent).
//!
//! ```ignore
//! let position: export::Position = cursor::position(cursor)?;
//! // Cursor-based: `cursor=` once the export handed one out, else `start_time=`.
//! let (key, at) = position.query();
//! let reply: Export = cfg.get(PATH).query(key, at).send()?.json()?;
//! let (next, done) = position.after_cursor(reply.after_cursor, reply.end_of_stream);
//! // Time-based (an export that refuses a start too close to now has nothing new yet):
//! let start = position.start();
//! let request = cfg.get(PATH).query("start_time", start.to_string());
//! let reply: Export = export::unless_too_recent(request.send())?;
//! let link = reply.next_page.as_deref();
//! let (next, done) = Position::after_time(start, link, reply.end_time, more);
//! Ok(SyncPage::next(upserts, &next).done(done))
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::time::{Duration, Instant};

use crate::{Error, Request, Response, Result, SyncPage, paging, url};

/// Where an incremental export is (see the module docs).
#[derive(Default, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The cursor a cursor-based export handed out last.
    #[serde(default, rename = "c", skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Where the export starts without a cursor, in unix seconds (none: 0, everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
}

impl Position {
    /// The position at `start_time` (unix seconds).
    pub fn at(start_time: i64) -> Position {
        Position {
            cursor: None,
            start_time: Some(start_time),
        }
    }

    /// The start time, 0 when there is none (the first run exports everything).
    pub fn start(&self) -> i64 {
        self.start_time.unwrap_or(0)
    }

    /// The query parameter that asks a cursor-based export for this position: `cursor` once it
    /// handed one out, else `start_time`.
    pub fn query(&self) -> (&'static str, String) {
        match &self.cursor {
            Some(c) => ("cursor", c.clone()),
            None => ("start_time", self.start().to_string()),
        }
    }

    /// `request` asking a cursor-based export for this position (with [`Position::query`]'s
    /// parameter).
    pub fn ask(&self, request: Request) -> Request {
        let (key, at) = self.query();
        request.query(key, at)
    }

    /// The position after a page of a cursor-based export read from `self`, and whether the run
    /// is done. The page's `next` cursor moves it on when it is new ([`paging::fresh`]); without
    /// one the next call would fetch the same page again, so the run ends keeping `self` (an
    /// empty last page may carry no cursor), lest the next run start over. `end_of_stream` ends
    /// the run at the new cursor.
    pub fn after_cursor(self, next: Option<String>, end_of_stream: bool) -> (Position, bool) {
        match paging::fresh(next, self.cursor.as_deref()) {
            Some(c) => (Position::at_cursor(c), end_of_stream),
            None => (self, true),
        }
    }

    fn at_cursor(cursor: String) -> Position {
        Position {
            cursor: Some(cursor),
            start_time: None,
        }
    }

    /// The position after a page of a time-based export read from `start`, and whether the run
    /// is done. The next page starts at the `start_time` of the `next_page` link when it has
    /// one, else at `end_time`, never earlier than `start`. The run goes on only while the page
    /// says there is `more` (it had items and did not end the stream), it has a `next_page`, and
    /// the next start is later than `start` (so a stuck upstream cannot loop).
    pub fn after_time(
        start: i64,
        next_page: Option<&str>,
        end_time: Option<i64>,
        more: bool,
    ) -> (Position, bool) {
        let linked = next_page.and_then(|u| url::query_param(u, "start_time")?.parse().ok());
        let next = linked.or(end_time).unwrap_or(start).max(start);
        let done = !more || next_page.is_none() || next <= start;
        (Position::at(next), done)
    }
}

/// A guess, read from the page's tail without parsing it, at where a cursor-based export goes
/// on: the last `"after_cursor"` and `"end_of_stream"` members of the body. Such an export sends
/// them after its records, so a connector can ask for the next page before it parses this one,
/// and the host fetches that page meanwhile. Only a guess: a record could carry members of
/// those names and an upstream may order members as it likes, so compare it with what the
/// parsed page says ([`Position::after_cursor`] of both) and drop the early request when they
/// differ. `None` when the tail does not read as either.
pub fn peek_after_cursor(body: &[u8]) -> Option<(Option<String>, bool)> {
    let cursor = member_at_tail(body, b"\"after_cursor\"")?;
    let cursor = serde_json::from_str::<Option<String>>(cursor).ok()?;
    let end = match member_at_tail(body, b"\"end_of_stream\"") {
        Some(end) => serde_json::from_str::<bool>(end).ok()?,
        None => false,
    };
    Some((cursor, end))
}

/// The value text of the last member named `key` (quotes included) in `body`: from after its
/// colon to the next `,` or `}` (so a string value must not hold either, as a cursor does not).
/// Only the last 64 KiB are searched: the members that matter come after the records.
fn member_at_tail<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let from = body.len().saturating_sub(64 << 10);
    let tail = &body[from..];
    let at = tail.windows(key.len()).rposition(|w| w == key)? + key.len();
    let rest = tail[at..].trim_ascii_start().strip_prefix(b":")?;
    let end = rest.iter().position(|&b| b == b',' || b == b'}')?;
    std::str::from_utf8(&rest[..end]).ok().map(str::trim)
}

/// How long a [`cursor_pages`] call goes on asking for pages.
pub const CALL_BUDGET: Duration = Duration::from_secs(5);

/// By when, from its start, a [`cursor_pages`] call must have each page after the first: a page
/// later than that is dropped and the call ends with what it read, so a slow upstream cannot
/// hold a call until the host's invocation timeout (30 s by default) and lose every page it read.
pub const CALL_LIMIT: Duration = Duration::from_secs(10);

/// How many bytes of answers a [`cursor_pages`] call reads before it asks for no more pages:
/// its documents stay in the connector's memory (64 MiB unless the operator says otherwise)
/// until the call returns.
pub const CALL_BYTES: usize = 8 << 20;

/// One sync call's page of a cursor-based export: up to `max_pages` upstream pages from `at`.
/// `request` is the upstream request for a position; `read` parses an upstream page, adds its
/// records to the sync page, and returns the upstream page's `after_cursor` and
/// `end_of_stream`. The sync page goes on from the last page read ([`Position::after_cursor`]).
///
/// Each next page is asked for as soon as its cursor can be guessed from the last page's tail
/// ([`peek_after_cursor`]), so the host fetches it while `read` works. A wrong guess (rare)
/// drops its request, which the host audits as abandoned, and asks for the right page. No page
/// is asked for once the call has run for [`CALL_BUDGET`] or read [`CALL_BYTES`] of answers.
///
/// Only the first page's failure is the call's. A later page that fails (it cannot be fetched,
/// is not there by [`CALL_LIMIT`], or `read` fails on it) ends the call with the pages before
/// it, and the next call, from their cursor, meets the failure itself.
pub fn cursor_pages(
    mut at: Position,
    max_pages: usize,
    request: impl Fn(&Position) -> Request,
    mut read: impl FnMut(&Response, &mut SyncPage) -> Result<(Option<String>, bool)>,
) -> Result<SyncPage> {
    let (started, mut read_bytes) = (Instant::now(), 0);
    let mut page = SyncPage::next(Vec::new(), &at);
    let mut next = Some(request(&at).start()?);
    for n in 1..=max_pages.max(1) {
        let Some(asked) = next.take() else { break };
        let answer = match n {
            1 => asked.wait(),
            _ => asked.wait_for(CALL_LIMIT.saturating_sub(started.elapsed())),
        };
        let (upserts, deletes) = (page.upserts.len(), page.deletes.len());
        let mut early = None;
        let read_page = answer.and_then(|reply| {
            read_bytes += reply.body.len();
            let more = n < max_pages && started.elapsed() < CALL_BUDGET && read_bytes < CALL_BYTES;
            let ask = |(to, end): &(Position, bool)| match !end && more {
                true => request(to).start().ok(),
                false => None,
            };
            let guess = peek_after_cursor(&reply.body).map(|(c, e)| at.clone().after_cursor(c, e));
            early = guess.as_ref().and_then(ask);
            let (cursor, end) = read(&reply, &mut page)?;
            let after = at.clone().after_cursor(cursor, end);
            if guess.as_ref() != Some(&after) {
                early = ask(&after);
            }
            Ok(after)
        });
        match read_page {
            Ok(after) => {
                forget_deletes_upserted_again(&mut page, upserts, deletes);
                (at, page.done) = after;
                next = early;
            }
            Err(e) if n == 1 => return Err(e),
            Err(e) => {
                // Whatever `read` kept of the failed page goes too: the next call reads it.
                page.upserts.truncate(upserts);
                page.deletes.truncate(deletes);
                crate::log::info!("export page {n} of this call left for the next one: {e}");
                break;
            }
        }
    }
    page.next_cursor = Some(crate::cursor::encode(&at));
    Ok(page)
}

/// A record an earlier page of the call deleted and a later one (from `upserts` on) upserts
/// again came back upstream: the host applies a page's upserts before its deletes, so the
/// earlier delete (one of the first `deletes`) must go. Upserted, then deleted, needs nothing.
fn forget_deletes_upserted_again(page: &mut SyncPage, upserts: usize, deletes: usize) {
    if deletes == 0 || page.upserts.len() == upserts {
        return;
    }
    let again: std::collections::HashSet<(&str, &str)> = page.upserts[upserts..]
        .iter()
        .map(|d| (d.kind.as_str(), d.id.as_str()))
        .collect();
    let mut i = 0;
    page.deletes.retain(|r| {
        i += 1;
        i > deletes || !again.contains(&(r.kind.as_str(), r.id.as_str()))
    });
}

/// The page a time-based export request answered, or `T::default()` (an empty page) when the
/// upstream refuses its start as too recent (an `invalid-input` saying "too recent", as Zendesk
/// answers a `start_time` less than a minute old): nothing is new yet. Any other error is the
/// caller's.
pub fn unless_too_recent<T: DeserializeOwned + Default>(reply: Result<Response>) -> Result<T> {
    match reply {
        Err(Error::InvalidInput(m)) if m.to_ascii_lowercase().contains("too recent") => {
            Ok(T::default())
        }
        reply => reply?.json(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_is_stored_as_the_export_cursor_or_a_start_time() {
        let at = |s: &str| serde_json::from_str::<Position>(s).unwrap();
        assert_eq!(at("{}"), Position::default());
        assert_eq!(at(r#"{"c":"abc"}"#).cursor.as_deref(), Some("abc"));
        assert_eq!(at(r#"{"start_time":17}"#), Position::at(17));
        assert_eq!(
            crate::cursor::encode(&Position::at(17)),
            r#"{"start_time":17}"#
        );
        let c = at(r#"{"c":"abc"}"#);
        assert_eq!(crate::cursor::encode(&c), r#"{"c":"abc"}"#);
        assert_eq!(c.query(), ("cursor", "abc".into()));
        assert_eq!(Position::default().query(), ("start_time", "0".into()));
        assert_eq!(Position::at(9).query(), ("start_time", "9".into()));
    }

    #[test]
    fn a_cursor_export_moves_on_by_a_new_cursor_and_otherwise_ends_where_it_was() {
        let (next, done) = Position::at(5).after_cursor(Some("n1".into()), false);
        assert_eq!(
            (crate::cursor::encode(&next), done),
            (r#"{"c":"n1"}"#.into(), false)
        );
        // The end of the stream with a new cursor: done, at the new cursor.
        let (at_end, done) = next.clone().after_cursor(Some("n2".into()), true);
        assert_eq!((at_end.cursor.as_deref(), done), (Some("n2"), true));
        // No cursor, or the same again: done, where it was (it must not loop or start over).
        assert_eq!(next.clone().after_cursor(None, true), (next.clone(), true));
        assert_eq!(
            next.clone().after_cursor(Some("n1".into()), false),
            (next, true)
        );
    }

    #[test]
    fn a_time_export_goes_on_from_its_next_link_else_its_end_time_never_back() {
        let link = "https://a.zendesk.com/api/v2/incremental/x.json?start_time=90";
        let after = |link, end, start, more| Position::after_time(start, link, end, more);
        assert_eq!(
            after(Some(link), Some(80), 10, true),
            (Position::at(90), false)
        );
        assert_eq!(after(None, Some(80), 10, true), (Position::at(80), true));
        assert_eq!(after(None, None, 10, true), (Position::at(10), true));
        assert_eq!(
            after(Some(link), Some(80), 10, false),
            (Position::at(90), true)
        );
        // No progress: a link back to the start (or earlier) ends the run there.
        assert_eq!(after(Some(link), None, 90, true), (Position::at(90), true));
        assert_eq!(after(Some(link), None, 95, true), (Position::at(95), true));
        let no_time = "https://a.zendesk.com/api/v2/incremental/x.json?cursor=x";
        assert_eq!(
            after(Some(no_time), Some(50), 10, true),
            (Position::at(50), false)
        );
    }

    #[test]
    fn the_tail_of_a_cursor_export_page_tells_where_it_goes_on() {
        let page = br#"{"tickets":[{"id":1,"subject":"a, b}"}],"after_url":"https://x/y?cursor=MTU","after_cursor":"MTU4NjM=","before_cursor":null,"end_of_stream":false}"#;
        assert_eq!(
            peek_after_cursor(page),
            Some((Some("MTU4NjM=".into()), false))
        );
        let last = br#"{"tickets":[], "after_cursor" : null , "end_of_stream" : true }"#;
        assert_eq!(peek_after_cursor(last), Some((None, true)));
        // The last member of the name counts, wherever it is; the parsed page has the last say.
        let nested = br#"{"after_cursor":"top","tickets":[{"after_cursor":"inner"}]}"#;
        assert_eq!(
            peek_after_cursor(nested),
            Some((Some("inner".into()), false))
        );
        for unreadable in [
            &b"{}"[..],
            b"",
            b"{\"after_cursor\":",
            b"{\"after_cursor\":12}",
            b"{\"after_cursor\":\"a\",\"end_of_stream\":\"yes\"}",
        ] {
            assert_eq!(peek_after_cursor(unreadable), None, "{unreadable:?}");
        }
    }

    #[test]
    fn a_record_deleted_then_upserted_again_in_one_call_stays() {
        let doc = |id: &str| crate::Document {
            id: id.into(),
            kind: "ticket".into(),
            title: String::new(),
            body: String::new(),
            url: None,
            updated_at: String::new(),
            metadata: "{}".into(),
            acl: vec![],
        };
        let gone = |id: &str| crate::DocumentRef::new("ticket", id);
        // Page 1 upserted 1 and deleted 2 and 3; page 2 upserts 2 and 4 and deletes 1.
        let mut page = SyncPage::next(vec![doc("1")], &Position::default());
        page.deletes = vec![gone("2"), gone("3")];
        let (upserts, deletes) = (page.upserts.len(), page.deletes.len());
        page.upserts.extend([doc("2"), doc("4")]);
        page.deletes.push(gone("1"));
        forget_deletes_upserted_again(&mut page, upserts, deletes);
        let ids =
            |refs: &[crate::DocumentRef]| refs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        // 2 came back; 3 stays deleted; 1, upserted then deleted, stays deleted.
        assert_eq!(ids(&page.deletes), ["3", "1"]);
        assert_eq!(page.upserts.len(), 3);
    }

    #[test]
    fn only_a_too_recent_start_is_an_empty_page() {
        let page = |reply| unless_too_recent::<Vec<u32>>(reply);
        let refused = Err(Error::invalid_input("HTTP 422: Too recent start_time"));
        assert_eq!(page(refused).unwrap(), Vec::<u32>::new());
        let other = page(Err(Error::invalid_input("bad start_time")));
        assert!(matches!(other, Err(Error::InvalidInput(_))));
        assert!(matches!(
            page(Err(Error::RateLimited(3))),
            Err(Error::RateLimited(3))
        ));
        let answered = Response {
            status: 200,
            headers: vec![],
            body: b"[1, 2]".to_vec(),
            method: crate::Method::Get,
            url: "https://h/x".into(),
        };
        assert_eq!(page(Ok(answered)).unwrap(), [1, 2]);
    }
}
