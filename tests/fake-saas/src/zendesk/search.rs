//! Unified search (`/search.json`): the query language's subset the fake understands, matching
//! tickets and articles, and the 1000-result ceiling.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::data::{Article, PRIORITIES, STATUSES, Ticket};
use super::params::{count_param, invalid, zd_error};
use super::{SEARCH_CEILING, Zendesk};
use crate::common::QueryParams;

pub(super) enum Term {
    Word(String),
    Prefix(String),
    Phrase(String),
}

#[derive(Default)]
pub(super) struct SearchQuery {
    pub(super) terms: Vec<Term>,
    pub(super) tickets: bool,
    pub(super) articles: bool,
    pub(super) statuses: Vec<u8>,
    pub(super) priorities: Vec<u8>,
    pub(super) tags: Vec<String>,
}

/// Splits on whitespace, keeping `"quoted phrases"` (and `key:"quoted value"`) together.
pub(super) fn tokenize(query: &str) -> Vec<(String, bool)> {
    let (mut out, mut cur, mut quoted, mut had_quote) = (Vec::new(), String::new(), false, false);
    for ch in query.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                had_quote = true;
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push((std::mem::take(&mut cur), had_quote));
                }
                had_quote = false;
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push((cur, had_quote));
    }
    out
}

pub(super) fn parse_search(query: &str) -> Result<SearchQuery, String> {
    let mut q = SearchQuery::default();
    let mut kinds = 0;
    for (tok, quoted) in tokenize(query) {
        let keyword = tok.split_once(':').filter(|(k, _)| {
            ["type", "status", "priority", "tags", "tag"].contains(&k.to_ascii_lowercase().as_str())
        });
        if let Some((key, value)) = keyword {
            let value = value.to_ascii_lowercase();
            match key.to_ascii_lowercase().as_str() {
                "type" => {
                    kinds += 1;
                    match value.as_str() {
                        "ticket" => q.tickets = true,
                        "article" => q.articles = true,
                        // Other object types exist in Zendesk but not in this fake: no results.
                        _ => {}
                    }
                }
                "status" => match STATUSES[..6].iter().position(|s| *s == value) {
                    Some(i) => q.statuses.push(i as u8),
                    None => return Err(format!("unknown status {value:?}")),
                },
                "priority" => match PRIORITIES.iter().position(|s| *s == value) {
                    Some(i) => q.priorities.push(i as u8),
                    None => return Err(format!("unknown priority {value:?}")),
                },
                _ => q.tags.push(value),
            }
        } else if quoted {
            let phrase = tok
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            if !phrase.is_empty() {
                q.terms.push(Term::Phrase(phrase));
            }
        } else {
            let prefix = tok.ends_with('*');
            for w in tok
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                let w = w.to_lowercase();
                q.terms.push(if prefix {
                    Term::Prefix(w)
                } else {
                    Term::Word(w)
                });
            }
        }
    }
    if kinds == 0 {
        q.tickets = true;
        q.articles = true;
    }
    if q.terms.is_empty()
        && kinds == 0
        && q.statuses.is_empty()
        && q.priorities.is_empty()
        && q.tags.is_empty()
    {
        return Err("query is empty".into());
    }
    Ok(q)
}

pub(super) fn has_word(text: &str, word: &str, prefix: bool) -> bool {
    text.split(|c: char| !c.is_alphanumeric()).any(|t| {
        if prefix {
            t.get(..word.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(word))
        } else {
            t.eq_ignore_ascii_case(word)
        }
    })
}

impl SearchQuery {
    pub(super) fn matches_text(&self, fields: &[&str]) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Word(w) => fields.iter().any(|f| has_word(f, w, false)),
            Term::Prefix(w) => fields.iter().any(|f| has_word(f, w, true)),
            Term::Phrase(p) => fields.iter().any(|f| {
                f.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
                    .contains(p.as_str())
            }),
        })
    }

    pub(super) fn matches_ticket(&self, t: &Ticket) -> bool {
        self.tickets
            && !t.deleted()
            && (self.statuses.is_empty() || self.statuses.contains(&t.status))
            && (self.priorities.is_empty()
                || t.priority.is_some_and(|p| self.priorities.contains(&p)))
            && self.tags.iter().all(|tag| t.tags.iter().any(|x| x == tag))
            && self.matches_text(&[&t.subject, t.description(), &t.tags.join(" ")])
    }

    pub(super) fn matches_article(&self, a: &Article) -> bool {
        self.articles
            && self.statuses.is_empty()
            && self.priorities.is_empty()
            && self
                .tags
                .iter()
                .all(|tag| a.labels.iter().any(|x| x == tag))
            && self.matches_text(&[&a.title, &a.text])
    }
}

#[derive(Clone, Copy)]
pub(super) enum Hit {
    Ticket(usize),
    Article(usize),
}

pub(super) async fn search(State(z): State<Arc<Zendesk>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let Some(text) = q.one("query").filter(|s| !s.trim().is_empty()) else {
        return invalid("query is required");
    };
    let query = match parse_search(text) {
        Ok(query) => query,
        Err(e) => return invalid(format!("Invalid search query: {e}")),
    };
    let per_page = match count_param(&q, "per_page", 100, 100) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let page = match count_param(&q, "page", 1, usize::MAX) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    if page.saturating_mul(per_page) > SEARCH_CEILING {
        return zd_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Invalid search: Requested response size was greater than Search Response Limits",
        );
    }
    let sort_by = q.one("sort_by");
    if sort_by.is_some_and(|s| !["created_at", "updated_at"].contains(&s)) {
        return invalid("sort_by must be created_at or updated_at");
    }
    let desc = q.one("sort_order") != Some("asc");
    let d = z.data();
    let mut hits: Vec<Hit> = d
        .tickets
        .iter()
        .enumerate()
        .filter(|(_, t)| query.matches_ticket(t))
        .map(|(i, _)| Hit::Ticket(i))
        .chain(
            d.articles
                .iter()
                .enumerate()
                .filter(|(_, a)| query.matches_article(a))
                .map(|(i, _)| Hit::Article(i)),
        )
        .collect();
    if let Some(field) = sort_by {
        let key = |h: &Hit| {
            let (c, u, id) = match *h {
                Hit::Ticket(i) => (
                    d.tickets[i].created_us,
                    d.tickets[i].updated_us,
                    d.tickets[i].id,
                ),
                Hit::Article(i) => (
                    d.articles[i].created_us,
                    d.articles[i].updated_us,
                    d.articles[i].id,
                ),
            };
            (if field == "created_at" { c } else { u }, id)
        };
        hits.sort_by(|a, b| {
            if desc {
                key(b).cmp(&key(a))
            } else {
                key(a).cmp(&key(b))
            }
        });
    }
    let count = hits.len();
    let start = (page - 1) * per_page;
    let results: Vec<Value> = hits
        .iter()
        .skip(start)
        .take(per_page)
        .map(|h| match *h {
            Hit::Ticket(i) => {
                let mut v =
                    serde_json::to_value(z.ticket_out(&d.tickets[i])).unwrap_or(Value::Null);
                v["result_type"] = json!("ticket");
                v
            }
            Hit::Article(i) => {
                let mut v = z.article_json(&d.articles[i]);
                v["result_type"] = json!("article");
                v
            }
        })
        .collect();
    let link = |p: usize| {
        z.api(&format!(
            "/search.json?{}",
            q.encode_with(
                &["page", "per_page"],
                &[
                    ("page", &p.to_string()),
                    ("per_page", &per_page.to_string())
                ]
            )
        ))
    };
    let next = (start + per_page < count).then(|| link(page + 1));
    let prev = (page > 1).then(|| link(page - 1));
    Json(json!({"results": results, "facets": null, "next_page": next, "previous_page": prev, "count": count}))
        .into_response()
}
