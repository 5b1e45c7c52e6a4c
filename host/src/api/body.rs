//! JSON request bodies checked against the schema the OpenAPI document publishes for their route
//! (`api/openapi.rs`), before the handler reads them: the document and the validation are one
//! thing, so a body the document allows is never refused for its shape, and one it forbids is
//! never taken (with serde alone, `null` passes for an optional field and `20.0` fails for an
//! integer, both against the schema).

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::errors::{self, error_response};

/// One validator per (method, path) that takes a JSON body.
fn validators() -> &'static HashMap<(String, String), jsonschema::Validator> {
    static V: OnceLock<HashMap<(String, String), jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        let spec = super::openapi::spec();
        let mut out = HashMap::new();
        for (path, ops) in spec["paths"].as_object().into_iter().flatten() {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                if schema.is_null() {
                    continue;
                }
                // The document is the host's own: a schema that does not compile is a bug
                // that the unit test below catches before it ships.
                if let Ok(v) = jsonschema::validator_for(schema) {
                    out.insert((method.to_uppercase(), path.clone()), v);
                }
            }
        }
        out
    })
}

/// The problems of `body` against the route's published schema (at most three), if any.
pub fn problems(method: &str, path: &str, body: &Value) -> Vec<String> {
    let Some(v) = validators().get(&(method.to_string(), path.to_string())) else {
        return vec![format!("no body schema for {method} {path}")];
    };
    crate::runtime::input::schema_problems(v, body)
}

/// The body of `method path` as `T`: a JSON rejection as the API's error (400, 413, 415), a body
/// its schema refuses as 400 naming why.
#[allow(clippy::result_large_err)]
pub fn parse<T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<T, Response> {
    let Json(mut value) = body.map_err(errors::json_rejection)?;
    let found = problems(method, path, &value);
    if !found.is_empty() {
        return Err(bad_request(&format!(
            "the body does not match its schema: {}",
            found.join("; ")
        )));
    }
    integral_floats_as_integers(&mut value);
    serde_json::from_value(value).map_err(|e| bad_request(&format!("bad body: {e}")))
}

fn bad_request(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "bad-request", message, None)
}

/// JSON Schema counts `20.0` as an integer; serde does not. The body's own top-level numbers
/// (never an action's input, which goes to the connector as sent) become integers.
fn integral_floats_as_integers(v: &mut Value) {
    let Some(fields) = v.as_object_mut() else {
        return;
    };
    for (_, f) in fields.iter_mut() {
        if let Some(x) = f.as_f64()
            && !f.is_i64()
            && !f.is_u64()
            && x.fract() == 0.0
            && x >= 0.0
            && x <= u64::MAX as f64
        {
            *f = Value::from(x as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_published_body_schema_compiles() {
        let spec = super::super::openapi::spec();
        let mut n = 0;
        for (_, ops) in spec["paths"].as_object().expect("paths") {
            for (_, op) in ops.as_object().expect("ops") {
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                if !schema.is_null() {
                    jsonschema::validator_for(schema).expect("schema compiles");
                    n += 1;
                }
            }
        }
        assert_eq!(validators().len(), n);
        assert!(n >= 3);
    }

    #[test]
    fn the_search_body_is_held_to_what_its_schema_says() {
        let ok = |b: Value| problems("POST", "/v1/search", &b).is_empty();
        assert!(ok(json!({ "query": "printer" })));
        assert!(ok(json!({ "query": "printer", "limit": 20.0 })));
        assert!(ok(json!({ "query": "\u{a0}" })), "not ASCII white space");
        assert!(!ok(json!({ "query": "" })));
        assert!(!ok(json!({ "query": " \t\n" })));
        assert!(!ok(json!({ "query": "x", "limit": 0 })));
        assert!(!ok(json!({ "query": "x", "limit": 1001 })));
        assert!(!ok(json!({ "query": "x", "live_timeout_ms": null })));
        assert!(!ok(json!({ "query": "x", "connector": null })));
        assert!(!ok(json!({ "query": "x", "extra": 1 })));
    }

    #[test]
    fn integral_floats_become_integers_and_fractions_stay() {
        let mut v = json!({ "limit": 20.0, "ratio": 0.5, "input": { "n": 1.0 } });
        integral_floats_as_integers(&mut v);
        assert!(v["limit"].is_u64());
        assert!(v["ratio"].is_f64());
        assert!(v["input"]["n"].is_f64(), "nested values go as sent");
    }
}
