//! Paging shared by every collection: the opaque `$skiptoken`, `$top` checks, `@odata.context`,
//! plain listings with `@odata.nextLink` and delta rounds with `@odata.deltaLink` and `@removed`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::MsGraph;
use super::data::{Coll, Item};
use super::errors::{bad_request, graph_error};
use crate::common::QueryParams;

/// Position in a listing carried by `$skiptoken`, opaque to clients.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Skip {
    /// Delta rounds: changes after this change number (`None`: the initial round).
    #[serde(default)]
    pub(super) since: Option<u64>,
    /// Delta rounds: the change number when the round started (becomes the next deltatoken).
    #[serde(default)]
    pub(super) snap: u64,
    /// Last `ord` (initial round, plain listings use it as an offset) or `seq` returned.
    pub(super) after: u64,
    pub(super) top: usize,
}

pub(super) fn encode_token(s: &Skip) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(s).unwrap_or_default())
}

pub(super) fn decode_token(raw: &str) -> Option<Skip> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw.trim()).ok()?).ok()
}

/// `$top`, or the error message for an invalid one.
pub(super) fn top_of(q: &QueryParams, default: usize, max: usize) -> Result<usize, String> {
    match q.one("$top") {
        None => Ok(default),
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and {max} inclusive."
                )
            }),
    }
}

impl MsGraph {
    pub(super) fn context(&self, what: &str) -> String {
        format!("{}/v1.0/$metadata#{what}", self.base_url)
    }

    /// One page of a plain (offset-paged) listing with `$top` and an absolute nextLink.
    pub(super) fn listing(
        &self,
        path: &str,
        q: &QueryParams,
        items: Vec<Value>,
        (default, max): (usize, usize),
        what: &str,
    ) -> Response {
        let (top, offset) = match q.one("$skiptoken") {
            Some(raw) => match decode_token(raw) {
                Some(s) => (s.top, s.after as usize),
                None => return bad_request("Invalid $skiptoken."),
            },
            None => match top_of(q, default, max) {
                Ok(t) => (t, 0),
                Err(e) => return bad_request(e),
            },
        };
        let end = (offset + top).min(items.len());
        let value: Vec<Value> = items.get(offset.min(end)..end).unwrap_or_default().to_vec();
        let mut body = json!({"@odata.context": self.context(what), "value": value});
        if end < items.len() {
            let token = encode_token(&Skip {
                since: None,
                snap: 0,
                after: end as u64,
                top,
            });
            let query = q.encode_with(&["$skiptoken", "$top"], &[("$skiptoken", &token)]);
            body["@odata.nextLink"] = json!(format!("{}{path}?{query}", self.base_url));
        }
        Json(body).into_response()
    }

    /// One page of a delta query over `coll`: `default` page size, `what` for `@odata.context`,
    /// `removed` the reason shown on deleted records; `partial`: records updated (not created)
    /// since the round's token arrive as their changed properties only.
    pub(super) fn delta(
        &self,
        path: &str,
        q: &QueryParams,
        (seq_now, coll): (u64, &Coll),
        default: usize,
        (what, removed, partial): (&str, &str, bool),
    ) -> Response {
        let link = |extra: (&str, &str)| {
            format!("{}{path}?{}", self.base_url, {
                let mut ser = form_urlencoded::Serializer::new(String::new());
                ser.append_pair(extra.0, extra.1);
                ser.finish()
            })
        };
        let (skip, empty_first) = if let Some(raw) = q.one("$skiptoken") {
            match decode_token(raw) {
                Some(s) => (s, false),
                None => return bad_request("Invalid $skiptoken."),
            }
        } else if let Some(raw) = q.one("$deltatoken") {
            match raw.parse::<u64>() {
                Ok(since) if since <= seq_now => (
                    Skip {
                        since: Some(since),
                        snap: seq_now,
                        after: since,
                        top: default,
                    },
                    true,
                ),
                _ => {
                    return graph_error(
                        StatusCode::GONE,
                        "SyncStateNotFound",
                        "The sync state generation is not found. Restart the sync.",
                    );
                }
            }
        } else {
            match top_of(q, default, 999) {
                Ok(top) => (
                    Skip {
                        since: None,
                        snap: seq_now,
                        after: 0,
                        top,
                    },
                    false,
                ),
                Err(e) => return bad_request(e),
            }
        };
        let mut body = json!({"@odata.context": self.context(what), "value": []});
        if empty_first {
            // Graph may start a round with an empty page; clients must follow the link.
            body["@odata.nextLink"] = json!(link(("$skiptoken", &encode_token(&skip))));
            return Json(body).into_response();
        }
        let page: Vec<&Item> = match skip.since {
            None => coll
                .items
                .iter()
                .filter(|i| !i.deleted && i.seq <= skip.snap && i.ord > skip.after)
                .take(skip.top + 1)
                .collect(),
            Some(since) => {
                let mut changed: Vec<&Item> = coll
                    .items
                    .iter()
                    .filter(|i| i.seq > since.max(skip.after) && i.seq <= skip.snap)
                    .collect();
                changed.sort_by_key(|i| i.seq);
                changed.truncate(skip.top + 1);
                changed
            }
        };
        let more = page.len() > skip.top;
        let page = &page[..page.len().min(skip.top)];
        let value: Vec<Value> = page
            .iter()
            .map(|i| match skip.since {
                _ if i.deleted => json!({"id": i.id(), "@removed": {"reason": removed}}),
                Some(since) if partial && i.created <= since => i.changes_since(since),
                _ => i.json.clone(),
            })
            .collect();
        body["value"] = json!(value);
        if more {
            let after = page
                .last()
                .map(|i| if skip.since.is_some() { i.seq } else { i.ord })
                .unwrap_or(skip.after);
            let next = Skip { after, ..skip };
            body["@odata.nextLink"] = json!(link(("$skiptoken", &encode_token(&next))));
        } else {
            body["@odata.deltaLink"] = json!(link(("$deltatoken", &skip.snap.to_string())));
        }
        Json(body).into_response()
    }
}
