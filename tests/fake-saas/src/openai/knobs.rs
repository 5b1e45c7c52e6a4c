//! The fake's knobs: the mode, failing the next N requests, an empty reply and a delay (set by
//! [`RunningFake`](crate::RunningFake) helpers or `POST /_fake/config`, shown by `GET`), and the
//! request log kept with them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{LoggedRequest, OpenAi, OpenAiMode};
use crate::common::{MinuteWindow, json_reply};

#[derive(Default)]
pub(super) struct Knobs {
    pub(super) mode: OpenAiMode,
    /// Remaining requests to fail and with which status.
    pub(super) fail_next: u32,
    pub(super) fail_status: u16,
    pub(super) window: MinuteWindow,
    pub(super) log: Vec<LoggedRequest>,
    /// Answer 200 with an empty reply (a model that says nothing).
    pub(super) empty_reply: bool,
    /// Wait this long before answering a chat (a slow local model).
    pub(super) delay_ms: u64,
}

/// How a chat should go wrong on purpose (the `/_fake/config` knobs).
#[derive(Clone, Copy, Default)]
pub(super) struct Behaviour {
    pub(super) empty_reply: bool,
    pub(super) delay_ms: u64,
}

impl OpenAi {
    pub(super) fn behaviour(&self) -> Behaviour {
        let k = self.knobs();
        Behaviour {
            empty_reply: k.empty_reply,
            delay_ms: k.delay_ms,
        }
    }
}

pub(super) fn config_json(s: &OpenAi) -> Value {
    let k = s.knobs();
    json!({"mode": k.mode, "fail_next": k.fail_next, "fail_status": k.fail_status,
           "rate_limit_every": s.core.rate_limit_every(), "empty_reply": k.empty_reply,
           "delay_ms": k.delay_ms})
}

/// `POST /_fake/config`: any subset of `{"mode", "fail_next", "fail_status", "rate_limit_every",
/// "empty_reply", "delay_ms"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigBody {
    mode: Option<OpenAiMode>,
    fail_next: Option<u32>,
    fail_status: Option<u16>,
    empty_reply: Option<bool>,
    delay_ms: Option<u64>,
    #[serde(default, with = "double_option")]
    rate_limit_every: Option<Option<u64>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
        Option::<u64>::deserialize(d).map(Some)
    }
}

pub(super) fn configure(s: &OpenAi, body: &[u8]) -> Response {
    let c = match serde_json::from_slice::<ConfigBody>(body) {
        Ok(c) => c,
        Err(e) => {
            return json_reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("expected {{\"mode\":\"openai|azure|lmstudio\",\"fail_next\":N,\"fail_status\":500|429,\"rate_limit_every\":N|null,\"empty_reply\":bool,\"delay_ms\":N}} (any subset): {e}")}),
            );
        }
    };
    if let Some(status) = c.fail_status
        && StatusCode::from_u16(status).is_err()
    {
        return json_reply(StatusCode::BAD_REQUEST, json!({"error": "bad fail_status"}));
    }
    {
        let mut k = s.knobs();
        if let Some(m) = c.mode {
            k.mode = m;
        }
        if let Some(status) = c.fail_status {
            k.fail_status = status;
        }
        if let Some(n) = c.fail_next {
            k.fail_next = n;
        }
        if let Some(e) = c.empty_reply {
            k.empty_reply = e;
        }
        if let Some(d) = c.delay_ms {
            k.delay_ms = d;
        }
    }
    if let Some(every) = c.rate_limit_every {
        s.core.set_rate_limit_every(every);
    }
    Json(config_json(s)).into_response()
}
