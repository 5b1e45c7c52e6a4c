//! A document's metadata as the JSON text the store keeps: always exactly what
//! `serde_json::Value::to_string` writes for its value, so its content digest never depends on
//! how it arrived. A connector's text already in that form is kept as it came (the SDK writes it
//! so); the parsed value is built only when something reads into it.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical_json::is_canonical;

#[derive(Clone)]
pub struct Metadata {
    /// Canonical JSON text (see the module's comment).
    text: String,
    value: OnceLock<Value>,
}

impl Metadata {
    /// A connector's metadata text: kept when canonical, else parsed and written again; text
    /// that is not JSON at all is kept as a JSON string.
    pub fn from_connector(text: String) -> Self {
        Self::from_text(text, Value::String)
    }

    /// Metadata read back from a store: text that is not JSON reads as `null`.
    pub fn from_stored(text: String) -> Self {
        Self::from_text(text, |_| Value::Null)
    }

    fn from_text(text: String, not_json: impl FnOnce(String) -> Value) -> Self {
        if is_canonical(&text) {
            return Metadata {
                text,
                value: OnceLock::new(),
            };
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => v.into(),
            Err(_) => not_json(text).into(),
        }
    }

    /// The canonical text (what the store keeps and the content digest covers).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed value (parsed on first use).
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            // Canonical text is JSON by construction.
            serde_json::from_str(&self.text).unwrap_or(Value::Null)
        })
    }

    pub fn is_object(&self) -> bool {
        self.text.starts_with('{')
    }
}

/// An empty object.
impl Default for Metadata {
    fn default() -> Self {
        Value::Object(Default::default()).into()
    }
}

impl From<Value> for Metadata {
    fn from(v: Value) -> Self {
        Metadata {
            text: v.to_string(),
            value: OnceLock::from(v),
        }
    }
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Canonical texts are equal exactly when their values are.
impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl PartialEq<Value> for Metadata {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl<I: serde_json::value::Index> std::ops::Index<I> for Metadata {
    type Output = Value;
    fn index(&self, i: I) -> &Value {
        &self.value()[i]
    }
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Metadata::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_stored_text_is_the_same_however_the_metadata_arrived() {
        let v = json!({"b": [1, "x\ny"], "a": {"c": null}});
        let canonical = v.to_string();
        for text in [
            canonical.clone(),
            r#"{ "b": [1, "x\ny"], "a": {"c": null} }"#.to_string(),
            r#"{"a":{"c":null},"b":[1,"x\u000Ay"]}"#.to_string(),
        ] {
            let m = Metadata::from_connector(text);
            assert_eq!(m.as_str(), canonical);
            assert_eq!(m, v);
            assert_eq!(m, Metadata::from(v.clone()));
            assert_eq!(m["b"][1], "x\ny");
            assert!(m.is_object());
        }
    }

    #[test]
    fn text_that_is_not_json_is_a_string_from_a_connector_and_null_from_a_store() {
        let m = Metadata::from_connector("status: open".into());
        assert_eq!(m.as_str(), r#""status: open""#);
        assert!(!m.is_object());
        assert_eq!(Metadata::from_stored("{oops".into()).as_str(), "null");
        assert_eq!(Metadata::from_stored(r#"{"a":1}"#.into())["a"], 1);
        assert_eq!(Metadata::default().as_str(), "{}");
    }

    #[test]
    fn it_serializes_as_its_value_and_reads_back_the_same() {
        let m = Metadata::from_connector(r#"{"k":[1,2],"s":"\\"}"#.into());
        let out = serde_json::to_string(&json!({ "metadata": m })).unwrap();
        assert_eq!(out, r#"{"metadata":{"k":[1,2],"s":"\\"}}"#);
        let back: Metadata = serde_json::from_str(r#"{"s":"\\","k":[1,2]}"#).unwrap();
        assert_eq!(back, m);
    }
}
