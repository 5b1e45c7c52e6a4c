//! Action input checked against the JSON Schema the connector declares for it, by the host,
//! before the action runs or is queued for approval: a write that could never run is refused at
//! once (`invalid-input`), not approved and then failed.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{ConnectorError, ConnectorInfo};

/// The compiled input schema of each declared action whose schema is a usable JSON Schema.
pub struct InputSchemas(BTreeMap<String, jsonschema::Validator>);

impl InputSchemas {
    /// Compiles every action's schema once; one that does not compile is left out (the
    /// conformance kit reports it).
    pub fn of(info: &ConnectorInfo) -> InputSchemas {
        InputSchemas(
            info.actions
                .iter()
                .filter_map(|a| {
                    let v = jsonschema::validator_for(&a.input_schema).ok()?;
                    Some((a.name.clone(), v))
                })
                .collect(),
        )
    }

    /// `Ok` when `action` is not declared (the connector answers for itself), has no usable
    /// schema, or `input` matches it.
    pub fn check(&self, action: &str, input: &Value) -> Result<(), ConnectorError> {
        match self.0.get(action) {
            Some(validator) => against(validator, action, input),
            None => Ok(()),
        }
    }
}

/// [`InputSchemas::check`] for one call, compiling the schemas on the spot.
pub fn check(info: &ConnectorInfo, action: &str, input: &Value) -> Result<(), ConnectorError> {
    InputSchemas::of(info).check(action, input)
}

/// The first three problems of `value` against `validator`, each prefixed with where it is.
pub fn schema_problems(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .take(3)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect()
}

fn against(
    validator: &jsonschema::Validator,
    action: &str,
    input: &Value,
) -> Result<(), ConnectorError> {
    let problems = schema_problems(validator, input);
    if problems.is_empty() {
        return Ok(());
    }
    Err(ConnectorError {
        code: "invalid-input".into(),
        message: format!(
            "input of action `{action}` does not match its schema: {}",
            problems.join("; ")
        ),
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ActionInfo;
    use serde_json::json;

    fn info() -> ConnectorInfo {
        ConnectorInfo {
            name: "t".into(),
            version: "1".into(),
            description: String::new(),
            streams: vec![],
            actions: vec![ActionInfo {
                name: "add-comment".into(),
                description: String::new(),
                input_schema: json!({
                    "type": "object",
                    "required": ["id", "body"],
                    "properties": { "id": { "type": "string" }, "body": { "type": "string" } }
                }),
                writes: true,
            }],
        }
    }

    #[test]
    fn input_that_fails_the_declared_schema_is_invalid_input_naming_the_field() {
        let c = check(&info(), "add-comment", &json!({ "id": 7, "body": "x" })).unwrap_err();
        assert_eq!(c.code, "invalid-input");
        assert!(c.message.contains("/id"), "{}", c.message);
        assert!(check(&info(), "add-comment", &json!({ "id": "1", "body": "x" })).is_ok());
        // Undeclared actions are the connector's to answer.
        assert!(check(&info(), "other", &json!(42)).is_ok());
    }
}
