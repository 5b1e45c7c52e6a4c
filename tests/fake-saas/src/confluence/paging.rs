//! Paging shared by the v2 listings: the `limit` check, the opaque keyset cursor (base64url JSON
//! bound to its sort order) and the reply with `_links.next` and a `Link` header.

use axum::Json;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Confluence;
use super::data::Page;
use crate::common::{QueryParams, set_header};

pub(super) fn parse_limit(q: &QueryParams, default: u64, max: u64) -> Result<usize, String> {
    let Some(raw) = q.one("limit") else {
        return Ok(default as usize);
    };
    match raw.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n as usize),
        _ => Err(format!(
            "Provided value {{{raw}}} for 'limit' is not valid: it must be an integer between 1 and {max}"
        )),
    }
}

/// Keyset position of one item in a sort order; the cursor is this, base64url-encoded JSON.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct Key {
    pub(super) n: i64,
    pub(super) t: String,
    pub(super) i: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Cursor {
    pub(super) s: String,
    pub(super) k: Key,
}

pub(super) fn encode_cursor(sort: &str, k: Key) -> String {
    URL_SAFE_NO_PAD.encode(json!(Cursor { s: sort.into(), k }).to_string())
}

pub(super) fn decode_cursor(raw: &str, sort: &str) -> Option<Key> {
    let c: Cursor =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).ok()?).ok()?;
    (c.s == sort).then_some(c.k)
}

pub(super) fn sort_key(field: &str, p: &Page) -> Key {
    let (n, t) = match field {
        "created-date" => (p.created_ms, String::new()),
        "modified-date" => (p.version_ms, String::new()),
        "title" => (0, p.title.clone()),
        _ => (0, String::new()),
    };
    Key { n, t, i: p.id }
}

/// Replies with `results` plus `_links.next` and the same link in a `Link` header.
pub(super) fn paged(c: &Confluence, results: Vec<Value>, next: Option<String>) -> Response {
    let mut links = json!({"base": c.wiki()});
    if let Some(n) = &next {
        links["next"] = json!(n);
    }
    let mut resp = Json(json!({"results": results, "_links": links})).into_response();
    if let Some(n) = next {
        set_header(&mut resp, "link", &format!("<{n}>; rel=\"next\""));
    }
    resp
}
