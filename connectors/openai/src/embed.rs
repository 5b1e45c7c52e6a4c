//! The `embed` action: `POST /v1/embeddings` (OpenAI, LM Studio) or
//! `POST /openai/deployments/{deployment}/embeddings?api-version=…` (Azure OpenAI) with
//! `{model, input: [..]}`; the answer's `data[].embedding` is put back in input order by `index`.

use airlock_sdk::serde_json::{Value, json};
use airlock_sdk::{Error, Request, Result};
use serde::{Deserialize, Serialize};

use crate::Config;

/// Most texts one call embeds (OpenAI accepts up to 2,048 inputs per request).
pub const MAX_INPUTS: usize = 2048;

/// Embed texts as vectors. Also the upstream request body, with the model resolved.
#[derive(Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Embed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    model: Option<String>,
    #[schemars(length(min = 1, max = 2048))]
    input: Vec<String>,
}

/// Runs the action: one upstream request for every text of the input.
pub fn run(cfg: &Config, input: &str) -> Result<String> {
    let body = body(cfg, input)?;
    let url = cfg.url("embeddings", cfg.embedding_deployment());
    let reply: Embeddings = Request::post(url).json(&body).send()?.json()?;
    Ok(output(reply, body.input.len())?.to_string())
}

/// The upstream body for an `embed` input: the model from the input, else the
/// `embedding_model` setting (Azure: the deployment names the model).
fn body(cfg: &Config, input: &str) -> Result<Embed> {
    let mut embed: Embed = airlock_sdk::input(input)?;
    if embed.input.is_empty() || embed.input.len() > MAX_INPUTS {
        let message = format!("`input` must be an array of 1..={MAX_INPUTS} strings");
        return Err(Error::invalid_input(message));
    }
    let missing =
        "no embedding model: set `embedding_model` in the settings or `model` in the input";
    embed.model = cfg.model(embed.model.take(), &cfg.embedding_model, missing)?;
    Ok(embed)
}

#[derive(Deserialize)]
struct Embeddings {
    #[serde(default)]
    data: Vec<Item>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

/// `{embeddings: [[..]], model, usage, dimensions}` in input order; an answer that does not
/// hold exactly one vector per input, all of one size, is an upstream error.
fn output(r: Embeddings, n: usize) -> Result<Value> {
    let indexed = r.data.into_iter().map(|i| (i.index, i.embedding));
    let vectors = airlock_sdk::json::by_index(n, indexed, "embedding")?;
    let dims = vectors.first().map_or(0, Vec::len);
    if dims == 0 || vectors.iter().any(|v| v.len() != dims) {
        return Err(Error::upstream(
            "embeddings are empty or of different sizes",
        ));
    }
    let usage = r.usage.unwrap_or(Value::Null);
    Ok(json!({"embeddings": vectors, "model": r.model, "usage": usage, "dimensions": dims}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(flavor: &str, model: Option<&str>) -> Config {
        let base = [
            ("flavor", Some(flavor)),
            ("base_url", Some("https://r.example")),
        ];
        let more = [("deployment", Some("chat")), ("embedding_model", model)];
        crate::tests::config(&[&base[..], &more[..]].concat()).expect("config")
    }

    #[test]
    fn urls_and_bodies_per_flavor() {
        let c = cfg("openai", Some("text-embedding-3-small"));
        assert_eq!(
            c.url("embeddings", c.embedding_deployment()),
            "https://r.example/v1/embeddings"
        );
        let body = |c: &Config, input: &str| {
            body(c, input).map(|b| airlock_sdk::serde_json::to_value(b).unwrap())
        };
        let b = body(&c, r#"{"input":["a","b"]}"#).unwrap();
        assert_eq!(
            b,
            json!({"model": "text-embedding-3-small", "input": ["a", "b"]})
        );
        let mut az = cfg("azure", None);
        az.embedding_deployment = Some("emb small".into());
        assert_eq!(
            az.url("embeddings", az.embedding_deployment()),
            "https://r.example/openai/deployments/emb%20small/embeddings?api-version=2024-10-21"
        );
        assert!(
            body(&az, r#"{"input":["a"]}"#)
                .unwrap()
                .get("model")
                .is_none()
        );
        let no_model = cfg("openai", None);
        for bad in [
            r#"{"input":["a"]}"#,
            r#"{"input":[]}"#,
            r#"{"input":[1]}"#,
            r#"{"input":"a","model":"m"}"#,
            r#"{"input":["a"],"model":"m","user":"x"}"#,
            r#"{"input":["a"],"model":""}"#,
        ] {
            assert!(
                matches!(body(&no_model, bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn output_is_in_input_order_and_checked() {
        let r: Embeddings = airlock_sdk::serde_json::from_str(
            r#"{"object":"list","model":"m","data":[
                {"object":"embedding","index":1,"embedding":[0.0,1.0]},
                {"object":"embedding","index":0,"embedding":[1.0,0.0]}],
              "usage":{"prompt_tokens":2,"total_tokens":2}}"#,
        )
        .unwrap();
        let v = output(r, 2).unwrap();
        assert_eq!(v["embeddings"], json!([[1.0, 0.0], [0.0, 1.0]]));
        assert_eq!(v["dimensions"], 2);
        let missing: Embeddings =
            airlock_sdk::serde_json::from_str(r#"{"data":[{"index":0,"embedding":[1.0]}]}"#)
                .unwrap();
        assert!(matches!(output(missing, 2), Err(Error::Upstream(_))));
        let ragged: Embeddings = airlock_sdk::serde_json::from_str(
            r#"{"data":[{"index":0,"embedding":[1.0]},{"index":1,"embedding":[1.0,2.0]}]}"#,
        )
        .unwrap();
        assert!(matches!(output(ragged, 2), Err(Error::Upstream(_))));
        let twice: Embeddings = airlock_sdk::serde_json::from_str(
            r#"{"data":[{"index":0,"embedding":[1.0]},{"index":0,"embedding":[2.0]}]}"#,
        )
        .unwrap();
        assert!(matches!(output(twice, 1), Err(Error::Upstream(_))));
    }
}
