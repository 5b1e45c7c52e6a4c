//! Serializable mirrors of the contract's records, used by the CLI, the API and the store.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Document {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub updated_at: String,
    /// A JSON object (parsed; an unparseable value is kept as a string).
    pub metadata: serde_json::Value,
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

/// The same conversions for every supported contract version: their records are identical in
/// shape (minor versions only add items) but each version's bindings are distinct Rust types.
macro_rules! from_wit {
    ($version:ident) => {
        const _: () = {
            use crate::runtime::bindings::$version::types as wit;

            impl From<wit::Document> for Document {
                fn from(d: wit::Document) -> Self {
                    let metadata = serde_json::from_str(&d.metadata)
                        .unwrap_or(serde_json::Value::String(d.metadata));
                    Document {
                        id: d.id,
                        kind: d.kind,
                        title: d.title,
                        body: d.body,
                        url: d.url,
                        updated_at: d.updated_at,
                        metadata,
                        acl: d.acl,
                    }
                }
            }

            impl From<wit::SyncPage> for SyncPage {
                fn from(p: wit::SyncPage) -> Self {
                    SyncPage {
                        upserts: p.upserts.into_iter().map(Into::into).collect(),
                        deletes: p
                            .deletes
                            .into_iter()
                            .map(|r| DocumentRef {
                                kind: r.kind,
                                id: r.id,
                            })
                            .collect(),
                        next_cursor: p.next_cursor,
                        done: p.done,
                    }
                }
            }

            impl From<wit::SearchResult> for SearchResult {
                fn from(r: wit::SearchResult) -> Self {
                    SearchResult {
                        hits: r.hits.into_iter().map(Into::into).collect(),
                        next_cursor: r.next_cursor,
                    }
                }
            }

            impl From<wit::ConnectorInfo> for ConnectorInfo {
                fn from(i: wit::ConnectorInfo) -> Self {
                    ConnectorInfo {
                        name: i.name,
                        version: i.version,
                        description: i.description,
                        streams: i
                            .streams
                            .into_iter()
                            .map(|s| StreamInfo {
                                name: s.name,
                                description: s.description,
                            })
                            .collect(),
                        actions: i
                            .actions
                            .into_iter()
                            .map(|a| ActionInfo {
                                input_schema: serde_json::from_str(&a.input_schema)
                                    .unwrap_or(serde_json::Value::String(a.input_schema)),
                                name: a.name,
                                description: a.description,
                                writes: a.writes,
                            })
                            .collect(),
                    }
                }
            }

            impl From<wit::HealthStatus> for HealthStatus {
                fn from(h: wit::HealthStatus) -> Self {
                    HealthStatus {
                        ok: h.ok,
                        message: h.message,
                    }
                }
            }

            impl From<wit::Error> for ConnectorError {
                fn from(e: wit::Error) -> Self {
                    let (code, message, retry_after) = match e {
                        wit::Error::Unauthorized(m) => ("unauthorized", m, None),
                        wit::Error::Forbidden(m) => ("forbidden", m, None),
                        wit::Error::NotFound(m) => ("not-found", m, None),
                        wit::Error::RateLimited(s) => {
                            ("rate-limited", format!("retry after {s}s"), Some(s))
                        }
                        wit::Error::Upstream(m) => ("upstream", m, None),
                        wit::Error::InvalidInput(m) => ("invalid-input", m, None),
                        wit::Error::Internal(m) => ("internal", m, None),
                    };
                    ConnectorError {
                        code: code.into(),
                        message,
                        retry_after,
                    }
                }
            }
        };
    };
}

from_wit!(v0_1);
from_wit!(v0_2);
