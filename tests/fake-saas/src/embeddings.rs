//! The OpenAI-compatible fake's `/v1/embeddings` (and Azure's
//! `/openai/deployments/{deployment}/embeddings`): a deterministic embedding that keeps texts
//! with shared meaning close, so semantic search can be tested without a model.
//!
//! How a text becomes a vector: it is split into lower-cased words; stop words and negations
//! are dropped; each word is reduced to a crude stem (plural, `-ing`, `-ed`, … removed); a
//! built-in concept table maps synonyms to one concept ("laptop", "notebook", "pc" → computer;
//! "boot", "start", "power on" → start; …); each remaining term adds 1 to one of [`DIMS`]
//! dimensions chosen by hashing it (with a hashed sign), and the sum is L2-normalised.
//! So "laptop won't boot" and "notebook does not start" embed to the same vector, while texts
//! that share no concept are (almost) orthogonal. It is a bag of words: order and negation are
//! ignored. Fine for plumbing and ranking tests, not a quality figure.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Json, http::StatusCode};
use serde_json::{Value, json};

use crate::common::json_reply;
use crate::openai::OpenAi;
use crate::server::RunningFake;

/// Size of every vector the fake returns.
pub const DIMS: usize = 256;

/// Model name reported when the request names none (LM Studio, Azure).
pub const DEFAULT_MODEL: &str = "fake-embedding-1";

const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "with", "is", "are", "was",
    "be", "it", "its", "my", "our", "your", "this", "that", "i", "we", "you", "me", "not", "no",
    "t", "won", "does", "doesn", "don", "do", "did", "didn", "can", "cannot", "isn", "s", "will",
    "when", "how", "what", "after", "from", "by", "up", "any", "anymore", "has", "have",
];

/// Synonyms and related words → one concept. Words are matched after stemming.
const CONCEPTS: &[(&str, &[&str])] = &[
    (
        "computer",
        &[
            "laptop",
            "notebook",
            "pc",
            "computer",
            "desktop",
            "macbook",
            "thinkpad",
            "workstation",
        ],
    ),
    (
        "start",
        &[
            "boot", "start", "startup", "power", "poweron", "turn", "launch", "reboot",
        ],
    ),
    (
        "credential",
        &[
            "password",
            "passwd",
            "credential",
            "login",
            "logon",
            "signin",
            "sign",
            "mfa",
            "2fa",
            "passcode",
        ],
    ),
    (
        "reset",
        &[
            "reset",
            "forgot",
            "forgotten",
            "forget",
            "recover",
            "unlock",
            "lock",
            "locked",
        ],
    ),
    (
        "network",
        &[
            "vpn",
            "network",
            "wifi",
            "wireless",
            "internet",
            "connect",
            "connection",
            "remote",
        ],
    ),
    ("print", &["printer", "print", "printing", "toner", "paper"]),
    (
        "mail",
        &["email", "mail", "outlook", "inbox", "mailbox", "message"],
    ),
    (
        "money",
        &[
            "invoice",
            "bill",
            "billing",
            "payment",
            "pay",
            "charge",
            "refund",
            "reimburse",
            "expense",
            "cost",
        ],
    ),
    (
        "failure",
        &[
            "crash", "freeze", "hang", "broken", "fail", "failure", "error", "dead", "stuck",
        ],
    ),
    (
        "slow",
        &["slow", "sluggish", "lag", "laggy", "latency", "performance"],
    ),
    (
        "screen",
        &["screen", "display", "monitor", "black", "blank"],
    ),
    (
        "leave",
        &["vacation", "holiday", "leave", "pto", "absence", "timeoff"],
    ),
    (
        "onboard",
        &[
            "onboard",
            "onboarding",
            "hire",
            "newcomer",
            "joiner",
            "welcome",
        ],
    ),
    (
        "security",
        &[
            "security",
            "phishing",
            "malware",
            "virus",
            "breach",
            "suspicious",
        ],
    ),
];

/// Strips common English suffixes so inflections meet ("starts", "starting", "started").
fn stem(w: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s", "ly"] {
        if let Some(s) = w.strip_suffix(suffix)
            && s.len() >= 3
        {
            return s;
        }
    }
    w
}

/// The terms a text contributes: concepts where the table knows the word, else its stem.
fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| {
            let st = stem(&w);
            CONCEPTS
                .iter()
                .find(|(_, words)| words.iter().any(|x| *x == w || stem(x) == st))
                .map_or_else(|| st.to_string(), |(c, _)| format!("concept:{c}"))
        })
        .collect()
}

/// FNV-1a: a stable hash (the same on every run and machine).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// The deterministic embedding of `text` (unit length; a text without terms points along the
/// first dimension so it is never the zero vector).
pub fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIMS];
    for t in terms(text) {
        let h = fnv(&t);
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        v[(h % DIMS as u64) as usize] += sign;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v[0] = 1.0;
        return v;
    }
    v.iter().map(|x| x / norm).collect()
}

fn invalid(message: &str) -> Response {
    json_reply(
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": message, "type": "invalid_request_error",
                         "param": "input", "code": null}}),
    )
}

/// `POST /v1/embeddings` (and Azure's deployment path): `{model, input: string | [string]}`.
/// `model_required`: OpenAI itself refuses a request without a model. `embedded` counts the
/// texts of answered requests.
fn answer(body: &[u8], model_required: bool, embedded: &AtomicUsize) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return invalid("We could not parse the JSON body of your request.");
    };
    let model = v.get("model").and_then(Value::as_str);
    if model_required && model.is_none() {
        return invalid("you must provide a model parameter");
    }
    let texts: Vec<&str> = match v.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if !a.is_empty() => match a.iter().map(Value::as_str).collect() {
            Some(t) => t,
            None => return invalid("'input' must be a string or an array of strings"),
        },
        _ => return invalid("'input' is a required property"),
    };
    embedded.fetch_add(texts.len(), Ordering::Relaxed);
    let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed(t)}))
        .collect();
    Json(
        json!({"object": "list", "data": data, "model": model.unwrap_or(DEFAULT_MODEL),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
    .into_response()
}

pub(crate) async fn v1_embeddings(State(s): State<Arc<OpenAi>>, body: Bytes) -> Response {
    answer(&body, s.requires_model(), &s.embedded)
}

pub(crate) async fn azure_embeddings(State(s): State<Arc<OpenAi>>, body: Bytes) -> Response {
    answer(&body, false, &s.embedded)
}

impl RunningFake<OpenAi> {
    /// Texts embedded since the last `clear_log` (the texts themselves are not kept).
    pub fn embedded_texts(&self) -> usize {
        self.state.embedded.load(Ordering::Relaxed)
    }

    /// Embedding requests seen since the last `clear_log`.
    pub fn embedding_requests(&self) -> usize {
        self.truth()
            .requests
            .iter()
            .filter(|r| r.path.ends_with("/embeddings"))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn texts_with_shared_meaning_are_close_and_others_are_not() {
        let q = embed("laptop won't boot");
        assert!(cos(&q, &embed("Notebook does not start")) > 0.99);
        assert!(cos(&q, &embed("My PC fails to start up after the update")) > 0.5);
        assert!(cos(&q, &embed("Quarterly invoice for the printer toner")) < 0.2);
        assert_eq!(embed("x y z"), embed("x y z"), "deterministic");
        let n: f32 = embed("").iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5);
    }

    #[test]
    fn answers_in_the_openai_shape() {
        let n = AtomicUsize::new(0);
        let status = |b: &[u8], m| answer(b, m, &n).status();
        assert_eq!(
            status(br#"{"model":"m","input":["a b","c"]}"#, true),
            StatusCode::OK
        );
        assert_eq!(status(br#"{"input":["a"]}"#, true), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(br#"{"model":"m","input":[]}"#, true),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status(br#"{"input":"a"}"#, false), StatusCode::OK);
        assert_eq!(n.load(Ordering::Relaxed), 3, "texts of answered requests");
    }
}
