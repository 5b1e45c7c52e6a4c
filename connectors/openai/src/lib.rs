//! OpenAI-compatible connector: a `chat` action (chat completions) and an `embed` action
//! (`/v1/embeddings`) against OpenAI, Azure OpenAI or a local LM Studio server, chosen by settings
//! alone. Holds no credentials: the host's gate
//! injects `Authorization: Bearer` (OpenAI) or `api-key` (Azure); LM Studio needs none.
//!
//! Settings: `flavor` (`openai` | `azure` | `lmstudio`, any case, default `openai`), `base_url`,
//! `model` (openai, lmstudio), `deployment` and `api_version` (azure, default `2024-10-21`),
//! `embedding_model` (openai, lmstudio) and `embedding_deployment` (azure) for `embed`.

mod embed;

use airlock_sdk::serde_json::{Value, json};
use airlock_sdk::{
    ActionInfo, BaseUrl, Connector, ConnectorInfo, Error, HealthStatus, Request, Result, url,
};
use serde::{Deserialize, Serialize};

struct OpenAi;

airlock_sdk::export_connector!(OpenAi);

const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Send a conversation, get the assistant's reply. Also the upstream request body, with the
/// model resolved (absent fields are left out).
#[derive(Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Chat {
    #[schemars(length(min = 1))]
    messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "f64", range(min = 0, max = 2))]
    temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64", range(min = 1))]
    max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    model: Option<String>,
}

/// One turn of the conversation (other fields of it are not sent on).
#[derive(Deserialize, Serialize, schemars::JsonSchema)]
struct Message {
    role: Role,
    content: String,
}

#[derive(Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Role {
    System,
    Developer,
    User,
    Assistant,
}

impl Connector for OpenAi {
    fn info() -> ConnectorInfo {
        let about = "Chat completions from OpenAI, Azure OpenAI or LM Studio";
        let chat = "Send a conversation, get the assistant's reply \
                    ({reply, usage, model, finish_reason}).";
        let embed = "Embed texts as vectors ({embeddings: [[..]] in input order, \
                     model, usage, dimensions}).";
        ConnectorInfo::new("openai", env!("CARGO_PKG_VERSION"), about)
            .action(ActionInfo::new::<Chat>("chat", chat))
            .action(ActionInfo::new::<embed::Embed>("embed", embed))
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
                Request::get(cfg.base.join("/v1/models")).send()?;
            }
        }
        let message = format!("{} at {} answered", cfg.flavor.name(), cfg.base);
        Ok(HealthStatus::ok(message))
    }

    fn invoke(action: String, input: String) -> Result<String> {
        let cfg = Config::load()?;
        match action.as_str() {
            "embed" => embed::run(&cfg, &input),
            "chat" => chat(&cfg, &input),
            _ => Err(Error::unknown_action(&action)),
        }
    }
}

fn chat(cfg: &Config, input: &str) -> Result<String> {
    let body = chat_body(cfg, input)?;
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
    let reply: Value = reply.error_for_status()?.json()?;
    Ok(chat_output(reply)?.to_string())
}

#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Flavor {
    #[default]
    OpenAi,
    Azure,
    LmStudio,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::OpenAi => "OpenAI",
            Flavor::Azure => "Azure OpenAI",
            Flavor::LmStudio => "LM Studio",
        }
    }
}

/// Connector settings, as the host holds them.
#[derive(Deserialize)]
struct Settings {
    #[serde(default, deserialize_with = "airlock_sdk::settings::any_case")]
    flavor: Flavor,
    base_url: Option<BaseUrl>,
    model: Option<String>,
    deployment: Option<String>,
    api_version: Option<String>,
    embedding_model: Option<String>,
    embedding_deployment: Option<String>,
}

/// Connector settings, read from the host on every call (instances are stateless), with each
/// flavor's defaults and requirements applied.
#[derive(Debug)]
struct Config {
    flavor: Flavor,
    /// Root URL without a trailing slash or `/v1`.
    base: BaseUrl,
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
        Config::from(airlock_sdk::settings::load()?)
    }

    fn from(s: Settings) -> Result<Config> {
        let required =
            |key: &str| Error::invalid_input(format!("setting `{key}` is required for azure"));
        let base = match (s.base_url, s.flavor) {
            (Some(b), _) => b,
            (None, Flavor::Azure) => return Err(required("base_url")),
            (None, Flavor::OpenAi) => {
                BaseUrl::parse("https://api.openai.com").map_err(Error::internal)?
            }
            (None, Flavor::LmStudio) => {
                BaseUrl::parse("http://localhost:1234").map_err(Error::internal)?
            }
        };
        let deployment = match (s.deployment, s.flavor) {
            (None, Flavor::Azure) => return Err(required("deployment")),
            (d, _) => d.unwrap_or_default(),
        };
        Ok(Config {
            flavor: s.flavor,
            base: base.without_suffix("/v1"),
            model: s.model,
            deployment,
            api_version: s.api_version.unwrap_or_else(|| DEFAULT_API_VERSION.into()),
            embedding_model: s.embedding_model,
            embedding_deployment: s.embedding_deployment,
        })
    }

    fn embedding_deployment(&self) -> &str {
        self.embedding_deployment
            .as_deref()
            .unwrap_or(&self.deployment)
    }

    /// The URL of operation `op` (`chat/completions`, `embeddings`): under `/v1`, or under
    /// Azure's `deployment` with the API version.
    fn url(&self, op: &str, deployment: &str) -> String {
        if self.flavor != Flavor::Azure {
            return self.base.join(&format!("/v1/{op}"));
        }
        let path = format!("/openai/deployments/{}/{op}", url::encode(deployment));
        url::with_query(&self.base.join(&path), "api-version", &self.api_version)
    }

    fn completions_url(&self) -> String {
        self.url("chat/completions", &self.deployment)
    }

    /// The model a request names: the input's (trimmed), else `default` from the settings.
    /// Azure names none (the deployment does), nor does LM Studio without one (the loaded model
    /// answers); OpenAI needs one (`missing` says where to set it).
    fn model(
        &self,
        given: Option<String>,
        default: &Option<String>,
        missing: &str,
    ) -> Result<Option<String>> {
        if given.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return Err(Error::invalid_input("`model` must be a non-empty string"));
        }
        let model = given
            .map(|m| m.trim().to_owned())
            .or_else(|| default.clone());
        match (self.flavor, model) {
            (Flavor::Azure, _) => Ok(None),
            (Flavor::OpenAi, None) => Err(Error::invalid_input(missing)),
            (_, model) => Ok(model),
        }
    }
}

/// The upstream request body for a `chat` input.
fn chat_body(cfg: &Config, input: &str) -> Result<Chat> {
    let mut chat: Chat = airlock_sdk::input(input)?;
    if chat.messages.is_empty() {
        return Err(Error::invalid_input("`messages` must be a non-empty array"));
    }
    if chat.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(Error::invalid_input(
            "`temperature` must be a number in 0..=2",
        ));
    }
    if chat.max_completion_tokens == Some(0) {
        return Err(Error::invalid_input(
            "`max_completion_tokens` must be a positive integer",
        ));
    }
    let missing = "no model: set `model` in the settings or the input";
    chat.model = cfg.model(chat.model.take(), &cfg.model, missing)?;
    Ok(chat)
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
fn chat_output(c: Value) -> Result<Value> {
    let no_choice = || Error::upstream("empty-reply: completion has no choices");
    let choice = c["choices"].get(0).ok_or_else(no_choice)?;
    let finish_reason = &choice["finish_reason"];
    if finish_reason == "content_filter" {
        return Err(Error::upstream(
            "content-filter: the provider withheld the reply (finish_reason content_filter)",
        ));
    }
    let reply = choice["message"]["content"].as_str();
    if reply.is_none_or(|t| t.trim().is_empty()) {
        return Err(Error::upstream("empty-reply: the completion has no text"));
    }
    Ok(json!({
        "reply": reply,
        "usage": c["usage"],
        "model": c["model"],
        "finish_reason": finish_reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config of these settings (`None`: unset).
    pub(crate) fn config(pairs: &[(&str, Option<&str>)]) -> Result<Config> {
        let lookup = |key: &str| {
            let found = pairs.iter().find(|(k, _)| *k == key);
            found.and_then(|(_, v)| v.map(String::from))
        };
        Config::from(airlock_sdk::settings::from_lookup(lookup)?)
    }

    fn cfg(flavor: &str, base: Option<&str>, model: Option<&str>, dep: Option<&str>) -> Config {
        let settings = [
            ("flavor", Some(flavor)),
            ("base_url", base),
            ("model", model),
        ];
        config(&[&settings[..], &[("deployment", dep)]].concat()).expect("config")
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
        assert!(config(&[("flavor", Some("azure")), ("deployment", Some("d"))]).is_err());
        assert!(config(&[("flavor", Some("azure")), ("base_url", Some("https://r"))]).is_err());
        assert!(config(&[("flavor", Some("bard"))]).is_err());
        assert!(config(&[("base_url", Some("ftp://x"))]).is_err());
        let c = cfg("LMStudio", None, None, None);
        assert_eq!(c.flavor, Flavor::LmStudio, "the flavor is read in any case");
        assert_eq!(
            c.completions_url(),
            "http://localhost:1234/v1/chat/completions"
        );
    }

    #[test]
    fn bodies() {
        let msgs = r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#;
        let body = |c: &Config, input: &str| {
            airlock_sdk::serde_json::to_value(chat_body(c, input).unwrap()).unwrap()
        };
        let b = body(&cfg("openai", None, Some("gpt-4o"), None), msgs);
        assert_eq!(
            b,
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                   "temperature": 0.5})
        );
        let given = r#"{"messages":[{"role":"user","content":"hi","name":"x"}],"model":" m ",
            "max_completion_tokens":5,"temperature":null}"#;
        let b = body(&cfg("openai", None, Some("gpt-4o"), None), given);
        assert_eq!(
            b,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "max_completion_tokens": 5})
        );
        let b = body(&cfg("azure", Some("https://r"), Some("x"), Some("d")), msgs);
        assert!(b.get("model").is_none());
        let b = body(&cfg("lmstudio", None, None, None), msgs);
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
            r#"{"messages":[{"role":"user","content":"x"}],"model":" "}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"model":"m","max_completion_tokens":0}"#,
            r#"{"messages":[{"role":"user"}],"model":"m"}"#,
        ] {
            assert!(
                matches!(chat_body(&openai, bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn output() {
        let c: Value = airlock_sdk::serde_json::from_str(
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
        let empty: Value = airlock_sdk::serde_json::from_str(r#"{"choices":[]}"#).unwrap();
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

    #[test]
    fn the_chat_schema_asks_what_the_action_checks() {
        let info = OpenAi::info();
        let schema: Value =
            airlock_sdk::serde_json::from_str(&info.actions[0].input_schema).unwrap();
        assert_eq!(schema["required"], json!(["messages"]));
        assert_eq!(schema["additionalProperties"], false);
        let p = &schema["properties"];
        assert_eq!(p["messages"]["minItems"], 1);
        assert_eq!(
            (
                p["temperature"]["minimum"].as_f64(),
                p["temperature"]["maximum"].as_f64()
            ),
            (Some(0.0), Some(2.0))
        );
        assert_eq!(p["temperature"]["type"], "number");
        assert_eq!(p["max_completion_tokens"]["minimum"].as_f64(), Some(1.0));
        assert_eq!(p["model"]["type"], "string");
        let embed: Value =
            airlock_sdk::serde_json::from_str(&info.actions[1].input_schema).unwrap();
        assert_eq!(embed["required"], json!(["input"]));
        let input = &embed["properties"]["input"];
        assert_eq!(
            (input["minItems"].as_u64(), input["maxItems"].as_u64()),
            (Some(1), Some(2048))
        );
    }
}
