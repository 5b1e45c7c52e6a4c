//! `POST /v1/ask`: a question answered from the caller's documents. The passages come from the
//! same tenant- and ACL-scoped search as `/v1/search` (each document read again and checked
//! before it becomes a passage), go to the `[search.ask]` chat connector through the normal
//! invocation path (grants, budgets, audit under the caller's name), and the answer comes back
//! with the documents it cites: only ones the caller may open, since no other reached the model.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::auth::{self, Principal};
use super::{error_response, internal_error, invoke_error};
use crate::app::Airlock;
use crate::runtime::connector::{InvokeError, Op};
use crate::search::ask;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskBody {
    question: String,
    connector: Option<String>,
    kind: Option<String>,
    /// `keyword`, `semantic` or `hybrid` (default: `[search.ask] mode`).
    mode: Option<String>,
}

/// A document a passage was taken from; `ref` is its number in the prompt.
#[derive(Serialize, Clone)]
struct Source {
    r#ref: usize,
    connector: String,
    kind: String,
    id: String,
    title: String,
    url: Option<String>,
}

fn bad_request(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "invalid-input", message, None)
}

pub async fn ask(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let b: AskBody = match super::body::parse("POST", "/v1/ask", body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let config = a.config();
    let Some(cfg) = config.ask.clone() else {
        return bad_request(
            "`ask` is off: configure [search.ask] with the connector whose `chat` action answers",
        );
    };
    if !auth::may_use(&a, &p, &cfg.connector) {
        // Passages never go to another tenant's model.
        return bad_request(&format!(
            "`ask` is not available to tenant `{}`: its [search.ask] connector belongs to another tenant",
            p.tenant
        ));
    }
    // The schema allows only the three modes; the config's own is valid.
    let mode = b.mode.as_deref().unwrap_or(&cfg.mode);
    let mode = crate::search::Mode::parse(mode).unwrap_or_default();
    if mode != crate::search::Mode::Keyword && config.semantic.is_none() {
        return bad_request(&crate::app::SemanticOff.to_string());
    }
    let scope = super::scope_of(&a, &p).await;
    let readers = scope.readers.clone();
    let mut req = crate::search::SearchRequest {
        query: b.question.clone(),
        connector: b.connector,
        kind: b.kind,
        limit: cfg.passages,
        live: false,
        live_timeout: std::time::Duration::from_secs(10),
        scope: Some(scope),
        mode,
        vector: None,
        // A question shares only some of its words with the page that answers it.
        any_word: true,
    };
    // The search's embedding and the chat are the caller's calls: their audit rows say so.
    let ctx = crate::runtime::context::CallContext::requested().by(&p.label());
    let work = async {
        // With semantic search the question is embedded once: for the search and to pick each
        // document's passage (its chunk nearest the question).
        if mode != crate::search::Mode::Keyword {
            req.vector = Some(a.query_vector(&b.question).await?);
        }
        let found = a.search(&req).await?;
        let mut sources = Vec::new();
        let mut passages = Vec::new();
        for h in found.hits {
            let doc = a.store.document(&h.connector, &h.kind, &h.id).await?;
            // Read again: a document changed or removed since the search is checked as it is now.
            let Some(d) = doc.filter(|d| readers.allows(&h.connector, &d.acl)) else {
                continue;
            };
            let nearest = match &req.vector {
                Some(v) => {
                    let c = a
                        .store
                        .current_chunks(&h.connector, &d.kind, &d.id, &v.model);
                    let c = c.await?;
                    // The chunks were read under this ACL: checked like the document's.
                    readers
                        .allows(&h.connector, &c.acl)
                        .then(|| {
                            ask::nearest_chunk(&c.chunks, &v.vector, &b.question, cfg.passage_chars)
                        })
                        .flatten()
                }
                None => None,
            };
            let text = nearest
                .unwrap_or_else(|| ask::passage(&d.title, &d.body, &b.question, cfg.passage_chars));
            passages.push(a.scrubber.scrub(&text));
            sources.push(Source {
                r#ref: sources.len() + 1,
                connector: h.connector,
                kind: d.kind,
                id: d.id,
                title: a.scrubber.scrub(&d.title),
                url: d.url,
            });
        }
        if passages.is_empty() {
            return Ok::<_, anyhow::Error>(serde_json::json!({
                "answer": "No document you can open answers this question.",
                "grounded": false,
                "citations": [],
                "sources": [],
            }));
        }
        let instructions = cfg.instructions.as_deref().unwrap_or(ask::INSTRUCTIONS);
        let input = ask::chat_input(
            instructions,
            &b.question,
            &passages,
            cfg.max_completion_tokens,
        );
        let op = Op::Action {
            name: "chat".into(),
            input,
        };
        let reply = a.invoke(&cfg.connector, op).await?;
        let answer = a
            .scrubber
            .scrub(reply["reply"].as_str().unwrap_or_default());
        let citations: Vec<Source> = ask::cited(&answer, sources.len())
            .into_iter()
            .map(|n| sources[n - 1].clone())
            .collect();
        Ok(serde_json::json!({
            "answer": answer,
            "grounded": true,
            "citations": citations,
            "sources": sources,
            "model": reply["model"],
            "usage": reply["usage"],
        }))
    };
    match crate::runtime::context::with(ctx, work).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => match e.downcast::<InvokeError>() {
            Ok(e) => invoke_error(&a, e),
            Err(e) => internal_error(&a, &e),
        },
    }
}
