//! Serializable mirrors of the contract's records (documents, pages, search results, connector info,
//! errors), shared by every layer; `runtime::contract` converts each contract version into them.

use serde::{Deserialize, Serialize};

mod canonical_json;
mod metadata;

pub use metadata::Metadata;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Document {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub updated_at: String,
    /// A JSON object, as canonical text (a connector's unparseable text is kept as a string).
    pub metadata: Metadata,
    pub acl: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DocumentRef {
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncPage {
    pub upserts: Vec<Document>,
    pub deletes: Vec<DocumentRef>,
    pub next_cursor: Option<String>,
    pub done: bool,
}

/// Why a sync run cannot go on after a page: the contract's progress rule, written once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Not done, and no next cursor: the host could not continue.
    NoCursor,
    /// Not done, and a next cursor this run already handed out: it would never end.
    RepeatedCursor,
}

impl SyncPage {
    /// Checks the progress rule: a page that is not `done` must bring a next cursor that was
    /// not handed out before in this run (`was_given` says which were: at least the cursor this
    /// page was asked with).
    pub fn stall(&self, was_given: impl Fn(&str) -> bool) -> Option<Stall> {
        Stall::of(self.done, self.next_cursor.as_deref(), was_given)
    }
}

impl Stall {
    /// The progress rule for a page that ends (`done`) or brings `next_cursor`.
    pub fn of(
        done: bool,
        next_cursor: Option<&str>,
        was_given: impl Fn(&str) -> bool,
    ) -> Option<Stall> {
        if done {
            return None;
        }
        match next_cursor {
            None => Some(Stall::NoCursor),
            Some(c) if was_given(c) => Some(Stall::RepeatedCursor),
            Some(_) => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    pub hits: Vec<Document>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamInfo {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionInfo {
    pub name: String,
    pub description: String,
    /// The action's input JSON Schema (parsed when it is valid JSON).
    pub input_schema: serde_json::Value,
    pub writes: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectorInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub streams: Vec<StreamInfo>,
    pub actions: Vec<ActionInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthStatus {
    pub ok: bool,
    pub message: String,
}

/// A connector's error, as the contract defines it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectorError {
    /// `unauthorized`, `forbidden`, `not-found`, `rate-limited`, `upstream`, `invalid-input`,
    /// `internal`.
    pub code: String,
    pub message: String,
    /// Seconds, for `rate-limited`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(done: bool, next: Option<&str>) -> SyncPage {
        SyncPage {
            upserts: vec![],
            deletes: vec![],
            next_cursor: next.map(str::to_string),
            done,
        }
    }

    #[test]
    fn a_page_that_is_not_done_must_bring_a_cursor_not_handed_out_before() {
        let given = |c: &str| c == "p1";
        assert_eq!(page(true, None).stall(given), None);
        assert_eq!(page(true, Some("p1")).stall(given), None);
        assert_eq!(page(false, Some("p2")).stall(given), None);
        assert_eq!(page(false, None).stall(given), Some(Stall::NoCursor));
        assert_eq!(
            page(false, Some("p1")).stall(given),
            Some(Stall::RepeatedCursor)
        );
    }
}
