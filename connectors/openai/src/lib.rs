//! OpenAI-compatible connector: a `chat` action (chat completions) and an `embed` action
//! (`/v1/embeddings`) against OpenAI, Azure OpenAI or a local LM Studio server, chosen by settings
//! alone. Holds no credentials: the host's gate
//! injects `Authorization: Bearer` (OpenAI) or `api-key` (Azure); LM Studio needs none.
//!
//! Settings: `flavor` (`openai` | `azure` | `lmstudio`, default `openai`), `base_url`, `model`
//! (openai, lmstudio), `deployment` and `api_version` (azure, default `2024-10-21`),
//! `embedding_model` (openai, lmstudio) and `embedding_deployment` (azure) for `embed`.

mod embed;

use airlock_sdk::serde_json::{Map, Value, json};
use airlock_sdk::{
    ActionInfo, Connector, ConnectorInfo, Error, HealthStatus, Request, Result, url,
};
use serde::Deserialize;

struct OpenAi;

airlock_sdk::export_connector!(OpenAi);

const DEFAULT_API_VERSION: &str = "2024-10-21";

impl Connector for OpenAi {
    fn info() -> ConnectorInfo {
        let message = json!({"type": "object", "required": ["role", "content"],
            "properties": {"role": {"type": "string",
                "enum": ["system", "developer", "user", "assistant"]},
                "content": {"type": "string"}}});
        let about = "Chat completions from OpenAI, Azure OpenAI or LM Studio";
        ConnectorInfo::new("openai", env!("CARGO_PKG_VERSION"), about)
            .action(ActionInfo {
                name: "chat".into(),
                description: "Send a conversation, get the assistant's reply \
                              ({reply, usage, model, finish_reason})."
                    .into(),
                input_schema: json!({"type": "object", "required": ["messages"],
                    "properties": {
                        "messages": {"type": "array", "minItems": 1, "items": message},
                        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                        "max_completion_tokens": {"type": "integer", "minimum": 1},
                        "model": {"type": "string"}},
                    "additionalProperties": false})
                .to_string(),
                writes: false,
            })
            .action(ActionInfo {
                name: "embed".into(),
                description: "Embed texts as vectors ({embeddings: [[..]] in input order, \
                          model, usage, dimensions})."
                    .into(),
                input_schema: embed::input_schema().to_string(),
                writes: false,
            })
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Config::load()?;
        match cfg.flavor {
            Flavor::Azure => {
                // Azure has no cheap authenticated listing on the deployment path: one token.
                let body = json!({"messages": [{"role": "user", "content": "ping"}],
                                  "max_completion_tokens": 1});
                Request::post(cfg.completions_url()).json(&body).send()?;
            }
            _ => {
                Request::get(format!("{}/v1/models", cfg.base)).send()?;
            }
        }
        let message = format!("{} at {} answered", cfg.flavor.name(), cfg.base);
        Ok(HealthStatus::ok(message))
    }

    fn invoke(action: String, input: String) -> Result<String> {
        if action == "embed" {
            return embed::run(&Config::load()?, &input);
        }
        if action != "chat" {
            return Err(Error::unknown_action(&action));
        }
        let cfg = Config::load()?;
        let body = chat_body(&cfg, &input)?;
        let reply = Request::post(cfg.completions_url())
            .json(&body)
            .send_raw()?;
        // A content filter's refusal is the provider's policy, not the caller's mistake:
        // another provider may answer (a route moves on; see `failover_reason` in the host).
        if reply.status == 400 && content_filtered(&reply.body) {
            return Err(Error::upstream(format!(
                "content-filter: {} refused the prompt with its content filter (HTTP 400 content_filter)",
                cfg.flavor.name()
            )));
        }
        let reply: Completion = reply.error_for_status()?.json()?;
        Ok(chat_output(reply)?.to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    OpenAi,
    Azure,
    LmStudio,
}

impl Flavor {
    fn parse(s: Option<&str>) -> Result<Flavor> {
        match s.map(str::to_ascii_lowercase).as_deref() {
            None | Some("openai") => Ok(Flavor::OpenAi),
            Some("azure") => Ok(Flavor::Azure),
            Some("lmstudio") => Ok(Flavor::LmStudio),
            Some(other) => Err(Error::invalid_input(format!(
                "setting `flavor` must be `openai`, `azure` or `lmstudio`, not `{other}`"
            ))),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Flavor::OpenAi => "OpenAI",
            Flavor::Azure => "Azure OpenAI",
            Flavor::LmStudio => "LM Studio",
        }
    }
}

/// Connector settings, read from the host on every call (instances are stateless).
#[derive(Debug)]
struct Config {
    flavor: Flavor,
    /// Root URL without a trailing slash or `/v1`.
    base: String,
    model: Option<String>,
    deployment: String,
    api_version: String,
    /// `embed`'s default model (openai, lmstudio).
    embedding_model: Option<String>,
    /// `embed`'s Azure deployment (default: `deployment`).
    embedding_deployment: Option<String>,
}

impl Config {
    fn load() -> Result<Config> {
        let s = airlock_sdk::setting;
        let mut c = Config::from(
            s("flavor"),
            s("base_url"),
            s("model"),
            s("deployment"),
            s("api_version"),
        )?;
        c.embedding_model = s("embedding_model");
        c.embedding_deployment = s("embedding_deployment");
        Ok(c)
    }

    fn embedding_deployment(&self) -> &str {
        self.embedding_deployment
            .as_deref()
            .unwrap_or(&self.deployment)
    }

    fn from(
        flavor: Option<String>,
        base: Option<String>,
        model: Option<String>,
        deployment: Option<String>,
        api_version: Option<String>,
    ) -> Result<Config> {
        let flavor = Flavor::parse(flavor.as_deref())?;
        let base = match (base, flavor) {
            (Some(b), _) => b,
            (None, Flavor::OpenAi) => "https://api.openai.com".into(),
            (None, Flavor::LmStudio) => "http://localhost:1234".into(),
            (None, Flavor::Azure) => {
                return Err(Error::invalid_input(
                    "setting `base_url` is required for azure",
                ));
            }
        };
        if url::split(&base).is_none_or(|p| !matches!(p.scheme, "http" | "https")) {
            return Err(Error::invalid_input(format!(
                "setting `base_url` is not an http(s) URL: {base}"
            )));
        }
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base).to_owned();
        let deployment = match (deployment, flavor) {
            (Some(d), _) => d,
            (None, Flavor::Azure) => {
                return Err(Error::invalid_input(
                    "setting `deployment` is required for azure",
                ));
            }
            (None, _) => String::new(),
        };
        let api_version = api_version.unwrap_or_else(|| DEFAULT_API_VERSION.into());
        Ok(Config {
            flavor,
            base,
            model,
            deployment,
            api_version,
            embedding_model: None,
            embedding_deployment: None,
        })
    }

    fn completions_url(&self) -> String {
        match self.flavor {
            Flavor::Azure => url::with_query(
                &format!(
                    "{}/openai/deployments/{}/chat/completions",
                    self.base,
                    url::encode(&self.deployment)
                ),
                "api-version",
                &self.api_version,
            ),
            _ => format!("{}/v1/chat/completions", self.base),
        }
    }
}

/// The upstream request body for a `chat` input.
fn chat_body(cfg: &Config, input: &str) -> Result<Value> {
    fn bad(m: impl Into<String>) -> Error {
        Error::invalid_input(m)
    }
    let input: Value = airlock_sdk::serde_json::from_str(input)
        .map_err(|e| bad(format!("input is not JSON: {e}")))?;
    let obj = input
        .as_object()
        .ok_or_else(|| bad("input must be an object"))?;
    if let Some(k) = obj.keys().find(|k| {
        !["messages", "temperature", "max_completion_tokens", "model"].contains(&k.as_str())
    }) {
        return Err(bad(format!("unknown input field `{k}`")));
    }
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("`messages` must be a non-empty array"))?;
    let mut out_messages = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let (Some(role), Some(content)) = (
            m.get("role").and_then(Value::as_str),
            m.get("content").and_then(Value::as_str),
        ) else {
            return Err(bad(format!(
                "messages[{i}] needs string `role` and `content`"
            )));
        };
        if !["system", "developer", "user", "assistant"].contains(&role) {
            return Err(bad(format!("messages[{i}]: unknown role `{role}`")));
        }
        out_messages.push(json!({"role": role, "content": content}));
    }
    let mut body = Map::new();
    let model = match obj.get("model") {
        None | Some(Value::Null) => cfg.model.clone(),
        Some(Value::String(m)) if !m.trim().is_empty() => Some(m.trim().to_owned()),
        Some(_) => return Err(bad("`model` must be a non-empty string")),
    };
    match (cfg.flavor, model) {
        (Flavor::Azure, _) => {} // the deployment names the model
        (_, Some(m)) => {
            body.insert("model".into(), m.into());
        }
        (Flavor::OpenAi, None) => {
            return Err(bad("no model: set `model` in the settings or the input"));
        }
        (Flavor::LmStudio, None) => {} // the loaded model answers
    }
    body.insert("messages".into(), out_messages.into());
    if let Some(t) = obj.get("temperature").filter(|v| !v.is_null()) {
        let t = t
            .as_f64()
            .filter(|t| (0.0..=2.0).contains(t))
            .ok_or_else(|| bad("`temperature` must be a number in 0..=2"))?;
        body.insert("temperature".into(), t.into());
    }
    if let Some(n) = obj.get("max_completion_tokens").filter(|v| !v.is_null()) {
        let n = n
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad("`max_completion_tokens` must be a positive integer"))?;
        body.insert("max_completion_tokens".into(), n.into());
    }
    Ok(Value::Object(body))
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

/// Whether an error body is a content filter's refusal: Azure OpenAI answers 400 with
/// `error.code = "content_filter"` (and `innererror.code = "ResponsibleAIPolicyViolation"`).
fn content_filtered(body: &[u8]) -> bool {
    let Ok(v) = airlock_sdk::serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let e = &v["error"];
    e["code"] == "content_filter" || e["innererror"]["code"] == "ResponsibleAIPolicyViolation"
}

/// The action's output for an upstream completion. A reply withheld by the provider's content
/// filter (`finish_reason: content_filter`) or one with no text is an upstream failure marked
/// `content-filter:` / `empty-reply:`, so a route tries the next provider rather than handing
/// nothing to the caller.
fn chat_output(c: Completion) -> Result<Value> {
    let choice = c
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| Error::upstream("empty-reply: completion has no choices"))?;
    if choice.finish_reason.as_deref() == Some("content_filter") {
        return Err(Error::upstream(
            "content-filter: the provider withheld the reply (finish_reason content_filter)",
        ));
    }
    if choice
        .message
        .content
        .as_deref()
        .is_none_or(|t| t.trim().is_empty())
    {
        return Err(Error::upstream("empty-reply: the completion has no text"));
    }
    Ok(json!({
        "reply": choice.message.content,
        "usage": c.usage.unwrap_or(Value::Null),
        "model": c.model,
        "finish_reason": choice.finish_reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(flavor: &str, base: Option<&str>, model: Option<&str>, dep: Option<&str>) -> Config {
        let o = |s: Option<&str>| s.map(String::from);
        Config::from(Some(flavor.into()), o(base), o(model), o(dep), None).expect("config")
    }

    #[test]
    fn urls_per_flavor() {
        let c = cfg("openai", None, Some("gpt-4o"), None);
        assert_eq!(
            c.completions_url(),
            "https://api.openai.com/v1/chat/completions"
        );
        let c = cfg("lmstudio", Some("http://127.0.0.1:1234/v1/"), None, None);
        assert_eq!(
            c.completions_url(),
            "http://127.0.0.1:1234/v1/chat/completions"
        );
        let c = cfg(
            "azure",
            Some("https://r.openai.azure.com/"),
            None,
            Some("gpt 4o"),
        );
        assert_eq!(
            c.completions_url(),
            "https://r.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
        );
        assert!(Config::from(Some("azure".into()), None, None, Some("d".into()), None).is_err());
        assert!(Config::from(Some("bard".into()), None, None, None, None).is_err());
    }

    #[test]
    fn bodies() {
        let msgs = r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#;
        let b = chat_body(&cfg("openai", None, Some("gpt-4o"), None), msgs).unwrap();
        assert_eq!(b["model"], "gpt-4o");
        assert_eq!(b["temperature"], 0.5);
        let b = chat_body(&cfg("azure", Some("https://r"), Some("x"), Some("d")), msgs).unwrap();
        assert!(b.get("model").is_none());
        let b = chat_body(&cfg("lmstudio", None, None, None), msgs).unwrap();
        assert!(b.get("model").is_none());
        let openai = cfg("openai", None, None, None);
        assert!(matches!(
            chat_body(&openai, msgs),
            Err(Error::InvalidInput(_))
        ));
        for bad in [
            "[]",
            r#"{"messages":[]}"#,
            r#"{"messages":[{"role":"robot","content":"x"}],"model":"m"}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"model":"m","temperature":3}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"model":"m","stream":true}"#,
        ] {
            assert!(
                matches!(chat_body(&openai, bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn output() {
        let c: Completion = airlock_sdk::serde_json::from_str(
            r#"{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant",
            "content":"hey"},"finish_reason":"stop"}],"usage":{"total_tokens":3}}"#,
        )
        .unwrap();
        let v = chat_output(c).unwrap();
        assert_eq!(
            v,
            json!({"reply": "hey", "usage": {"total_tokens": 3}, "model": "m",
                             "finish_reason": "stop"})
        );
        let empty: Completion = airlock_sdk::serde_json::from_str(r#"{"choices":[]}"#).unwrap();
        assert!(matches!(chat_output(empty), Err(Error::Upstream(_))));
        let marked =
            |body: &str| match chat_output(airlock_sdk::serde_json::from_str(body).unwrap()) {
                Err(Error::Upstream(m)) => m.split(':').next().unwrap_or("").to_string(),
                other => format!("{other:?}"),
            };
        let filtered =
            r#"{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}]}"#;
        assert_eq!(marked(filtered), "content-filter");
        let blank = r#"{"choices":[{"message":{"content":"  "},"finish_reason":"stop"}]}"#;
        assert_eq!(marked(blank), "empty-reply");
        let azure = br#"{"error":{"code":"content_filter","innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#;
        assert!(content_filtered(azure));
        assert!(!content_filtered(
            br#"{"error":{"code":"invalid_request_error"}}"#
        ));
        assert!(!content_filtered(b"not json"));
    }
}
