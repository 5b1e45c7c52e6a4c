//! `hook = { kind, secret, streams }` on a `[[connector]]`: the upstream pushes change
//! notifications to `POST /v1/hooks/{connector}` (see `crate::inbound`). The secret that proves a
//! notification came from the upstream is a reference, never a literal.

use serde::Deserialize;

use crate::capabilities::grant::SecretRef;

/// How an upstream signs or marks its notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `X-Zendesk-Webhook-Signature`: base64(HMAC-SHA256(secret, timestamp + body)).
    Zendesk,
    /// `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>` (Jira webhooks with a secret).
    Jira,
    /// Microsoft Graph change notifications: the `validationToken` handshake, then `clientState`
    /// in every notification equal to the secret.
    Graph,
}

/// One connector's inbound hook.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundHook {
    pub kind: HookKind,
    pub secret: SecretRef,
    /// Streams a verified notification syncs (None: every stream of the connector).
    pub streams: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    kind: String,
    secret: String,
    streams: Option<Vec<String>>,
}

pub(super) fn build(
    raw: &RawHook,
    key: &str,
    base: &std::path::Path,
) -> Result<InboundHook, String> {
    let kind = match raw.kind.as_str() {
        "zendesk" => HookKind::Zendesk,
        "jira" => HookKind::Jira,
        "graph" => HookKind::Graph,
        other => {
            return Err(format!(
                "{key}.kind: `{other}` is not one of zendesk, jira, graph"
            ));
        }
    };
    let secret = SecretRef::parse(&raw.secret, base).map_err(|m| format!("{key}.secret: {m}"))?;
    if raw.streams.as_ref().is_some_and(Vec::is_empty) {
        return Err(format!(
            "{key}.streams: list at least one stream, or leave it out for all"
        ));
    }
    Ok(InboundHook {
        kind,
        secret,
        streams: raw.streams.clone(),
    })
}
