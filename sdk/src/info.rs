//! Builders for what `info()` returns, so a connector lists its streams and actions in a line
//! each, and an action's input is one Rust type: its JSON Schema (what the host checks input
//! against before running or queueing the action) is derived from the same struct the action
//! parses with [`input`].
//!
//! ```ignore
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct AddComment {
//!     #[schemars(range(min = 1))]
//!     ticket_id: u64,
//!     #[schemars(length(min = 1))]
//!     comment: String,
//! }
//!
//! ConnectorInfo::new("atera", env!("CARGO_PKG_VERSION"), "Atera tickets")
//!     .stream("tickets", "Tickets, one page per call")
//!     .action(ActionInfo::new::<AddComment>("add-comment", "Comment on a ticket").writes())
//! // in invoke():
//! let input: AddComment = airlock_sdk::info::input(&input)?;
//! ```

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::{ActionInfo, ConnectorInfo, Error, Result, StreamInfo};

impl ConnectorInfo {
    /// A connector called `name` at `version` (usually `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        ConnectorInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            streams: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// Adds a sync stream.
    pub fn stream(mut self, name: &str, description: &str) -> Self {
        self.streams.push(StreamInfo::new(name, description));
        self
    }

    /// Adds an action.
    pub fn action(mut self, action: ActionInfo) -> Self {
        self.actions.push(action);
        self
    }

    /// [`Error::unknown_stream`] naming this connector's streams, so a `sync` that matches on
    /// the stream's name need not list them a second time:
    /// `_ => Err(Self::info().unknown_stream(&stream))`.
    pub fn unknown_stream(&self, stream: &str) -> Error {
        Error::unknown_stream(stream, self.streams.iter().map(|s| &s.name))
    }
}

impl StreamInfo {
    /// A stream called `name`.
    pub fn new(name: &str, description: &str) -> Self {
        StreamInfo {
            name: name.into(),
            description: description.into(),
        }
    }
}

impl ActionInfo {
    /// A read-only action whose input is `I` (its JSON Schema is derived from the type).
    pub fn new<I: JsonSchema>(name: &str, description: &str) -> Self {
        ActionInfo {
            name: name.into(),
            description: description.into(),
            input_schema: schema_of::<I>(),
            writes: false,
        }
    }

    /// Marks the action as one that changes the upstream (it then needs a grant with `writes`
    /// and may need an approval).
    pub fn writes(mut self) -> Self {
        self.writes = true;
        self
    }
}

/// The JSON Schema of `I`, as the string the contract carries.
pub fn schema_of<I: JsonSchema>() -> String {
    let mut schema = schemars::schema_for!(I);
    // The title is the Rust type's name: noise to a caller reading the action list.
    schema.remove("title");
    schema.as_value().to_string()
}

/// An action's JSON `input` parsed into `I`; `invalid-input` naming what is wrong otherwise.
pub fn input<I: DeserializeOwned>(input: &str) -> Result<I> {
    serde_json::from_str(input).map_err(|e| Error::invalid_input(format!("invalid input: {e}")))
}

/// The input of the action `name`, parsed into `I`, for a connector with that one action:
/// `not-found` when `action` is another, `invalid-input` when `input` does not parse.
///
/// ```ignore
/// fn invoke(action: String, input: String) -> Result<String> {
///     let input: AddComment = airlock_sdk::action_input(&action, "add-comment", &input)?;
///     // ...
/// }
/// ```
pub fn action_input<I: DeserializeOwned>(action: &str, name: &str, input: &str) -> Result<I> {
    if action != name {
        return Err(Error::unknown_action(action));
    }
    self::input(input)
}

/// `Ok` when `stream` is one of `streams`, else [`Error::unknown_stream`] (`invalid-input`): the
/// check at the top of a `sync` that serves its streams alike.
pub fn known_stream(stream: &str, streams: &[&str]) -> Result<()> {
    match streams.contains(&stream) {
        true => Ok(()),
        false => Err(Error::unknown_stream(stream, streams)),
    }
}

/// `true`, for `#[serde(default = "airlock_sdk::info::default_true")]` on a boolean input field
/// (or setting) that is on unless the caller says otherwise; the derived schema shows the
/// default.
pub fn default_true() -> bool {
    true
}

/// The input of an action that takes none: the JSON object `{}`. Anything else (`[]`, `null`,
/// a field) is `invalid-input`, which serde's derive for an empty struct would let through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NoInput;

impl<'de> serde::Deserialize<'de> for NoInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        match fields.keys().next() {
            None => Ok(NoInput),
            Some(key) => Err(serde::de::Error::custom(format!(
                "unknown field `{key}`: this action takes no input"
            ))),
        }
    }
}

impl JsonSchema for NoInput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NoInput".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "object", "properties": {}, "additionalProperties": false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::{Value, json};

    #[test]
    fn a_stream_is_known_or_invalid_input_naming_the_streams() {
        assert!(known_stream("pages", &["pages"]).is_ok());
        let Err(Error::InvalidInput(m)) = known_stream("blogs", &["pages", "spaces"]) else {
            panic!("an unknown stream is invalid-input")
        };
        assert_eq!(
            m,
            "unknown stream `blogs` (this connector has `pages`, `spaces`)"
        );
        let info = ConnectorInfo::new("x", "1.0.0", "X")
            .stream("pages", "P")
            .stream("spaces", "S");
        let Error::InvalidInput(from_info) = info.unknown_stream("blogs") else {
            panic!("an unknown stream is invalid-input")
        };
        assert_eq!(from_info, m, "the streams are named from the info");
    }

    /// Comment on a ticket.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct AddComment {
        #[schemars(range(min = 1))]
        ticket_id: u64,
        #[schemars(length(min = 1))]
        comment: String,
        #[serde(default)]
        is_internal: bool,
    }

    #[test]
    fn an_action_schema_comes_from_the_type_its_input_parses_into() {
        let info = ConnectorInfo::new("x", "1.0.0", "X")
            .stream("tickets", "Tickets")
            .action(ActionInfo::new::<AddComment>("add-comment", "Comment").writes());
        assert_eq!(info.streams[0].name, "tickets");
        let a = &info.actions[0];
        assert!(a.writes);
        let schema: Value = serde_json::from_str(&a.input_schema).unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], json!(["ticket_id", "comment"]));
        assert_eq!(schema["properties"]["ticket_id"]["minimum"], 1);
        assert_eq!(schema["properties"]["comment"]["minLength"], 1);
        assert!(schema.get("title").is_none());

        let wrong = action_input::<AddComment>("delete-all", "add-comment", "{}");
        assert!(matches!(wrong, Err(Error::NotFound(m)) if m == "unknown action `delete-all`"));
        let right = action_input::<AddComment>("add-comment", "add-comment", "{}");
        assert!(
            matches!(right, Err(Error::InvalidInput(_))),
            "then the input is checked"
        );
        let e = Error::unknown_stream("x", ["a", "b"]);
        assert!(
            matches!(e, Error::InvalidInput(m) if m == "unknown stream `x` (this connector has `a`, `b`)")
        );

        let none: Value = serde_json::from_str(&schema_of::<NoInput>()).unwrap();
        assert_eq!(none["type"], "object");
        assert_eq!(none["additionalProperties"], false);
        assert_eq!(input::<NoInput>("{}").unwrap(), NoInput);
        for bad in ["[]", "null", r#"{"x": 1}"#, "7"] {
            assert!(
                matches!(input::<NoInput>(bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }

        let ok: AddComment = input(r#"{"ticket_id": 7, "comment": "hi"}"#).unwrap();
        assert_eq!((ok.ticket_id, ok.is_internal), (7, false));
        for bad in [
            r#"{"ticket_id": "x", "comment": "hi"}"#,
            r#"{"comment": "hi"}"#,
            "nope",
        ] {
            assert!(
                matches!(input::<AddComment>(bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
    }
}
