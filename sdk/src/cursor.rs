//! Cursors as typed values: a connector keeps its position in a struct of its own and the SDK
//! turns it into the opaque string the host stores, and back. A cursor the connector did not
//! issue (edited, from another connector, from an older version) is `invalid-input`, never a
//! panic or a silent restart.
//!
//! ```ignore
//! #[derive(serde::Serialize, serde::Deserialize, Default)]
//! struct Position { next: Option<String>, since: Option<String> }
//! let pos: Position = airlock_sdk::cursor::decode(cursor.as_deref())?.unwrap_or_default();
//! let next = airlock_sdk::cursor::encode(&pos);
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The cursor string for `position` (compact JSON: the host treats it as opaque).
pub fn encode<T: Serialize>(position: &T) -> String {
    serde_json::to_string(position).unwrap_or_default()
}

/// The position in `cursor`; `None` when there is no cursor (the first page of a full run).
pub fn decode<T: DeserializeOwned>(cursor: Option<&str>) -> Result<Option<T>> {
    let Some(text) = cursor.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    serde_json::from_str(text).map(Some).map_err(|e| {
        Error::invalid_input(format!(
            "cursor is not one this connector issued ({e}); run a full sync to start over"
        ))
    })
}

/// The position in `cursor`, or `T::default()` (the start of a full run) when there is none.
pub fn position<T: DeserializeOwned + Default>(cursor: Option<&str>) -> Result<T> {
    Ok(decode(cursor)?.unwrap_or_default())
}

/// The position in an offset listing (`start`/`limit`) walked one page per sync call: the cursor
/// `{"start": N}`, `0` (the first page) when there is none. A pass that ends starts over at 0 on
/// the next run.
///
/// ```ignore
/// let at: Offset = cursor::position(cursor)?;
/// let next = page.next(at.start);
/// Ok(SyncPage::next(upserts, &Offset { start: next.unwrap_or(0) }).done(next.is_none()))
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Offset {
    /// The offset of the next page.
    pub start: u32,
}

/// A page number or offset used as a cursor (live search): `first` when there is none or it is
/// blank, `invalid-input` for anything that is not a whole number of at least `first`.
pub fn number(cursor: Option<&str>, first: u32) -> Result<u32> {
    let Some(text) = cursor.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(first);
    };
    let n = text.parse().ok().filter(|n| *n >= first);
    n.ok_or_else(|| Error::invalid_input(format!("invalid search cursor: {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Default)]
    struct Pos {
        page: u32,
        since: Option<String>,
    }

    #[test]
    fn a_position_round_trips_and_a_foreign_cursor_is_invalid_input() {
        let p = Pos {
            page: 3,
            since: Some("2024-01-01T00:00:00Z".into()),
        };
        let c = encode(&p);
        assert_eq!(decode::<Pos>(Some(&c)).unwrap(), Some(p));
        assert_eq!(decode::<Pos>(None).unwrap(), None);
        assert_eq!(decode::<Pos>(Some("  ")).unwrap(), None);
        assert_eq!(position::<Pos>(None).unwrap(), Pos::default());
        assert_eq!(position::<Pos>(Some(&c)).unwrap().page, 3);
        assert!(position::<Pos>(Some("[]")).is_err());
        assert_eq!(
            (number(None, 1).unwrap(), number(Some(" "), 0).unwrap()),
            (1, 0)
        );
        assert_eq!(encode(&Offset { start: 50 }), r#"{"start":50}"#);
        assert_eq!(position::<Offset>(Some("{}")).unwrap(), Offset { start: 0 });
        assert_eq!(position::<Offset>(None).unwrap().start, 0);
        assert_eq!(number(Some("40"), 1).unwrap(), 40);
        for bad in ["0", "-1", "x", "1.5"] {
            assert!(
                matches!(number(Some(bad), 1), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
        match decode::<Pos>(Some("page:3")) {
            Err(Error::InvalidInput(m)) => assert!(m.contains("not one this connector issued")),
            other => panic!("{other:?}"),
        }
    }
}
