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

use crate::{Error, Response, Result, paging, url};

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
