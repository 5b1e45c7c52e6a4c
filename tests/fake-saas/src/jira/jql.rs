//! The JQL subset the fake understands (parsing, matching, ordering), the opaque
//! `nextPageToken` and the paging parameters.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::data::Issue;
use crate::common::{QueryParams, parse_date_minute};

#[derive(Debug, Default)]
pub(super) struct Jql {
    pub(super) project: Option<String>,
    pub(super) key: Option<String>,
    /// (operator, epoch ms)
    pub(super) updated: Vec<(String, i64)>,
    pub(super) text: Option<String>,
    pub(super) order: Option<(String, bool)>,
}

pub(super) fn unquote(s: &str) -> String {
    let s = s.trim();
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(s);
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// Splits `s` at case-insensitive ` {word} ` outside double quotes.
pub(super) fn split_word<'a>(s: &'a str, word: &str) -> Vec<&'a str> {
    let (lower, pat) = (s.to_lowercase(), format!(" {word} "));
    let (mut out, mut start, mut quoted, mut i) = (Vec::new(), 0, false, 0);
    let bytes = s.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' => quoted = !quoted,
            _ if !quoted && lower.len() == s.len() && lower[i..].starts_with(&pat) => {
                out.push(&s[start..i]);
                i += pat.len();
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

pub(super) fn parse_jql(jql: &str) -> Result<Jql, String> {
    let padded = format!(" {} ", jql.trim());
    let parts = split_word(&padded, "order by");
    let mut q = Jql::default();
    if let Some(order) = parts.get(1) {
        let mut w = order.split_whitespace();
        let field = w.next().ok_or("Expecting a field name after 'ORDER BY'.")?;
        let desc = w.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        let field = field.to_lowercase();
        if !["updated", "created", "key"].contains(&field.as_str()) {
            return Err(format!("Not able to sort using field '{field}'."));
        }
        q.order = Some((field, desc));
    }
    let clause = parts[0].trim();
    if clause.is_empty() {
        return Ok(q);
    }
    for cond in split_word(&format!(" {clause} "), "and") {
        let cond = cond.trim();
        let op = [">=", "<=", "~", "=", ">", "<"]
            .into_iter()
            .find(|op| cond.contains(op))
            .ok_or_else(|| format!("Error in the JQL Query: cannot parse '{cond}'."))?;
        let (field, value) = cond.split_once(op).unwrap_or_default();
        let (field, value) = (field.trim().to_lowercase(), unquote(value));
        match (field.as_str(), op) {
            ("project", "=") => q.project = Some(value),
            ("key" | "issuekey", "=") => q.key = Some(value),
            ("text", "~") => q.text = Some(value.to_lowercase()),
            ("updated", ">=" | ">" | "<=" | "<") => {
                let ms = parse_date_minute(&value).ok_or_else(|| {
                    format!("Date value '{value}' for field 'updated' is invalid.")
                })?;
                q.updated.push((op.into(), ms));
            }
            _ => {
                return Err(format!(
                    "Field '{field}' does not exist or you do not have permission to view it."
                ));
            }
        }
    }
    Ok(q)
}

impl Jql {
    pub(super) fn bounded(&self) -> bool {
        self.project.is_some()
            || self.key.is_some()
            || self.text.is_some()
            || !self.updated.is_empty()
    }
    pub(super) fn matches(&self, i: &Issue) -> bool {
        let project = i.key.split('-').next().unwrap_or("");
        self.project
            .as_ref()
            .is_none_or(|p| p.eq_ignore_ascii_case(project))
            && self
                .key
                .as_ref()
                .is_none_or(|k| k.eq_ignore_ascii_case(&i.key))
            && self.updated.iter().all(|(op, t)| match op.as_str() {
                ">=" => i.updated_ms >= *t,
                ">" => i.updated_ms > *t,
                "<=" => i.updated_ms <= *t,
                _ => i.updated_ms < *t,
            })
            && self.text.as_ref().is_none_or(|t| {
                let words = i.words();
                let words: Vec<&str> = words
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .collect();
                t.split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .all(|w| words.contains(&w))
            })
    }
    /// Sort key of an issue; paging tokens hold the last key returned (keyset paging, stable
    /// under concurrent updates).
    pub(super) fn sort_key(&self, i: &Issue) -> (i64, u64) {
        match self.order.as_ref().map(|(f, _)| f.as_str()) {
            Some("updated") => (i.updated_ms, i.id),
            Some("created") => (i.created_ms, i.id),
            _ => (0, i.id),
        }
    }
    pub(super) fn desc(&self) -> bool {
        self.order.as_ref().is_some_and(|(_, d)| *d)
    }
}

pub(super) fn encode_token(k: (i64, u64)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", k.0, k.1))
}

pub(super) fn decode_token(t: &str) -> Option<(i64, u64)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(t).ok()?).ok()?;
    let (a, b) = raw.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

pub(super) fn count(
    q: &QueryParams,
    key: &str,
    default: usize,
    max: usize,
) -> Result<usize, String> {
    match q.one(key) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map(|n| n.min(max))
            .map_err(|_| format!("'{key}' must be a non-negative integer, got '{v}'")),
    }
}
