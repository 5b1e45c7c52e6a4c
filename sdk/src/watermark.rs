//! The incremental-sync watermark most APIs need: ask for records `updated_since` the highest
//! `updated_at` seen so far, where the filter is inclusive and several records can share one
//! timestamp (second precision). Asking again from the same instant is what keeps a record that
//! was updated within that second from being lost; remembering the ids already emitted at exactly
//! that instant is what keeps the ties from being emitted twice.
//!
//! ```ignore
//! let mut mark: Watermark = cursor::decode(cursor.as_deref())?.unwrap_or_default();
//! let since = mark.since().unwrap_or("1970-01-01T00:00:00Z").to_string();
//! for item in fetch_updated_since(&since)? {
//!     if mark.admit(&item.id, &item.updated_at) {
//!         upserts.push(item.into_document());
//!     }
//! }
//! SyncPage { upserts, deletes: vec![], next_cursor: Some(cursor::encode(&mark)), done: true }
//! ```

use serde::{Deserialize, Serialize};

use crate::text::parse_rfc3339;

/// The highest `updated_at` emitted, and the ids emitted at exactly that instant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ties: Vec<String>,
}

impl Watermark {
    /// The instant to ask from (inclusive), as the upstream wrote it; `None` before any record.
    pub fn since(&self) -> Option<&str> {
        self.since.as_deref()
    }

    /// Whether the record is new to this run's consumer, noting it if so: `false` for a record
    /// older than the watermark or one of the ties already emitted at it. Timestamps compare as
    /// instants (RFC 3339, any offset), not as strings; an unparseable one is admitted and
    /// leaves the watermark where it is.
    pub fn admit(&mut self, id: &str, updated_at: &str) -> bool {
        let Some(at) = parse_rfc3339(updated_at) else {
            return true;
        };
        let mark = self.since.as_deref().and_then(parse_rfc3339);
        match mark {
            Some(m) if at < m => false,
            Some(m) if at == m => {
                if self.ties.iter().any(|t| t == id) {
                    return false;
                }
                self.ties.push(id.to_string());
                true
            }
            _ => {
                self.since = Some(updated_at.to_string());
                self.ties = vec![id.to_string()];
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_at_the_watermark_are_emitted_once_and_later_records_move_it() {
        let mut w = Watermark::default();
        assert!(w.admit("a", "2024-01-01T00:00:05Z"));
        assert!(w.admit("b", "2024-01-01T00:00:05Z"));
        assert_eq!(w.since(), Some("2024-01-01T00:00:05Z"));
        // The next run asks from the same (inclusive) instant: a and b come back, c is new.
        let mut next: Watermark =
            serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert!(!next.admit("a", "2024-01-01T00:00:05Z"));
        assert!(!next.admit("b", "2024-01-01T00:00:05Z"));
        assert!(next.admit("c", "2024-01-01T00:00:05Z"));
        assert!(!next.admit("old", "2024-01-01T00:00:04Z"));
        // Same instant in another offset is a tie, not a new record.
        assert!(!next.admit("a", "2024-01-01T01:00:05+01:00"));
        assert!(next.admit("d", "2024-01-01T00:00:06Z"));
        assert_eq!(next.since(), Some("2024-01-01T00:00:06Z"));
        assert!(
            next.admit("a", "2024-01-01T00:00:07Z"),
            "an update of a later on is new"
        );
    }
}
