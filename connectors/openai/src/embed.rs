//! The `embed` action: `POST /v1/embeddings` (OpenAI, LM Studio) or
//! `POST /openai/deployments/{deployment}/embeddings?api-version=…` (Azure OpenAI) with
//! `{model, input: [..]}`; the answer's `data[].embedding` is put back in input order by `index`.

use airlock_sdk::serde_json::{Map, Value, json};
use airlock_sdk::{Error, Request, Result, url};
use serde::Deserialize;

use crate::{Config, Flavor};

/// Most texts one call embeds (OpenAI accepts up to 2,048 inputs per request).
pub const MAX_INPUTS: usize = 2048;

/// The input schema `info()` declares for `embed`.
pub fn input_schema() -> Value {
    json!({"type": "object", "required": ["input"],
        "properties": {
            "input": {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS,
                      "items": {"type": "string"}},
            "model": {"type": "string"}},
        "additionalProperties": false})
}

/// Runs the action: one upstream request for every text of the input.
pub fn run(cfg: &Config, input: &str) -> Result<String> {
    let body = body(cfg, input)?;
    let n = body["input"].as_array().map_or(0, Vec::len);
    let reply: Embeddings = Request::post(url_of(cfg)).json(&body).send()?.json()?;
    Ok(output(reply, n)?.to_string())
}

fn url_of(cfg: &Config) -> String {
    match cfg.flavor {
        Flavor::Azure => url::with_query(
            &format!(
                "{}/openai/deployments/{}/embeddings",
                cfg.base,
                url::encode(cfg.embedding_deployment())
            ),
            "api-version",
            &cfg.api_version,
        ),
        _ => format!("{}/v1/embeddings", cfg.base),
    }
}

/// The upstream body for an `embed` input: the model from the input, else the
/// `embedding_model` setting (Azure: the deployment names the model).
fn body(cfg: &Config, input: &str) -> Result<Value> {
    let bad = |m: &str| Error::invalid_input(m);
    let input: Value = airlock_sdk::serde_json::from_str(input)
        .map_err(|e| Error::invalid_input(format!("input is not JSON: {e}")))?;
    let obj = input
        .as_object()
        .ok_or_else(|| bad("input must be an object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["input", "model"].contains(&k.as_str()))
    {
        return Err(Error::invalid_input(format!("unknown input field `{k}`")));
    }
    let texts = obj
        .get("input")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty() && t.len() <= MAX_INPUTS)
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "`input` must be an array of 1..={MAX_INPUTS} strings"
            ))
        })?;
    if texts.iter().any(|t| !t.is_string()) {
        return Err(bad("`input` must hold strings only"));
    }
    let model = match obj.get("model") {
        None | Some(Value::Null) => cfg.embedding_model.clone(),
        Some(Value::String(m)) if !m.trim().is_empty() => Some(m.trim().to_owned()),
        Some(_) => return Err(bad("`model` must be a non-empty string")),
    };
    let mut body = Map::new();
    match (cfg.flavor, model) {
        (Flavor::Azure, _) => {}
        (_, Some(m)) => {
            body.insert("model".into(), m.into());
        }
        (Flavor::OpenAi, None) => {
            return Err(bad(
                "no embedding model: set `embedding_model` in the settings or `model` in the input",
            ));
        }
        (Flavor::LmStudio, None) => {}
    }
    body.insert("input".into(), Value::Array(texts.clone()));
    Ok(Value::Object(body))
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
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; n];
    for item in r.data {
        let slot = slots.get_mut(item.index).ok_or_else(|| {
            Error::upstream(format!("embedding index {} out of range", item.index))
        })?;
        *slot = Some(item.embedding);
    }
    let vectors: Vec<Vec<f32>> = slots
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| Error::upstream(format!("no embedding for input {i}"))))
        .collect::<Result<_>>()?;
    let dims = vectors.first().map_or(0, Vec::len);
    if dims == 0 || vectors.iter().any(|v| v.len() != dims) {
        return Err(Error::upstream(
            "embeddings are empty or of different sizes",
        ));
    }
    Ok(
        json!({"embeddings": vectors, "model": r.model, "usage": r.usage.unwrap_or(Value::Null),
              "dimensions": dims}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(flavor: &str, model: Option<&str>) -> Config {
        let o = |s: Option<&str>| s.map(String::from);
        let mut c = Config::from(
            Some(flavor.into()),
            Some("https://r.example".into()),
            None,
            Some("chat".into()),
            None,
        )
        .expect("config");
        c.embedding_model = o(model);
        c
    }

    #[test]
    fn urls_and_bodies_per_flavor() {
        let c = cfg("openai", Some("text-embedding-3-small"));
        assert_eq!(url_of(&c), "https://r.example/v1/embeddings");
        let b = body(&c, r#"{"input":["a","b"]}"#).unwrap();
        assert_eq!(
            b,
            json!({"model": "text-embedding-3-small", "input": ["a", "b"]})
        );
        let mut az = cfg("azure", None);
        az.embedding_deployment = Some("emb small".into());
        assert_eq!(
            url_of(&az),
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
    }
}
