//! `hook = { kind, secret, streams }` on a `[[connector]]`: the upstream pushes change
//! notifications to `POST /v1/hooks/{connector}` (see `crate::inbound`). The secret that proves a
//! notification came from the upstream is a reference, never a literal. Graph hooks may add
//! `subscribe = {...}`: Airlock then creates the change-notification subscription itself and keeps
//! renewing it (see `crate::subscriptions`).

use std::time::Duration;

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
    /// The subscription Airlock keeps alive at the upstream (Graph only).
    pub subscribe: Option<Subscribe>,
}

/// `subscribe = { resource, change_type, notification_url, lifetime }` of a Graph hook.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    /// What to watch, as Graph names it (`users`).
    pub resource: String,
    /// Graph's `changeType`: `created`, `updated`, `deleted`, comma-separated.
    pub change_type: String,
    /// Where the upstream reaches this hook from outside (`https://airlock.example.com/v1/hooks/ID`).
    pub notification_url: String,
    /// How long each subscription or renewal asks to live; renewed at half of it.
    pub lifetime: Duration,
}

/// Graph refuses subscriptions to users that live longer than 41,760 minutes.
const MAX_LIFETIME: Duration = Duration::from_secs(41_760 * 60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubscribe {
    resource: String,
    change_type: Option<String>,
    notification_url: String,
    lifetime: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    kind: String,
    secret: String,
    streams: Option<Vec<String>>,
    subscribe: Option<RawSubscribe>,
}

pub(super) fn build(
    raw: &RawHook,
    key: &str,
    connector: &str,
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
    let subscribe = match &raw.subscribe {
        None => None,
        Some(_) if kind != HookKind::Graph => {
            return Err(format!(
                "{key}.subscribe: only graph hooks are subscribed by Airlock; register \
                 {} webhooks at the upstream",
                raw.kind
            ));
        }
        Some(s) => Some(subscribe(s, &format!("{key}.subscribe"), connector)?),
    };
    Ok(InboundHook {
        kind,
        secret,
        streams: raw.streams.clone(),
        subscribe,
    })
}

fn subscribe(raw: &RawSubscribe, key: &str, connector: &str) -> Result<Subscribe, String> {
    let change_type = raw
        .change_type
        .clone()
        .unwrap_or_else(|| "created,updated,deleted".into());
    if let Some(bad) = change_type
        .split(',')
        .find(|c| !matches!(c.trim(), "created" | "updated" | "deleted"))
    {
        return Err(format!(
            "{key}.change_type: `{bad}` is not one of created, updated, deleted"
        ));
    }
    let url = url::Url::parse(&raw.notification_url)
        .map_err(|e| format!("{key}.notification_url: not a URL ({e})"))?;
    // Graph reaches the hook from outside and accepts only https; plain http is for a
    // loopback test setup.
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(format!(
            "{key}.notification_url: must be https (Graph calls it from outside)"
        ));
    }
    let tail = format!("/v1/hooks/{connector}");
    if !url.path().ends_with(&tail) {
        return Err(format!(
            "{key}.notification_url: must end with `{tail}`, this hook's route"
        ));
    }
    let lifetime = match &raw.lifetime {
        Some(l) => super::parse_duration(l, &format!("{key}.lifetime"))?,
        None => Duration::from_secs(2 * 24 * 3600),
    };
    if lifetime > MAX_LIFETIME {
        return Err(format!(
            "{key}.lifetime: Graph allows at most 41760 minutes (29 days)"
        ));
    }
    Ok(Subscribe {
        resource: raw.resource.trim_start_matches('/').to_string(),
        change_type,
        notification_url: raw.notification_url.clone(),
        lifetime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(toml_text: &str) -> Result<InboundHook, String> {
        let raw: RawHook = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        build(&raw, "hook", "msgraph", std::path::Path::new("."))
    }

    #[test]
    fn a_graph_subscription_is_checked_where_graph_would_refuse_it() {
        let ok = hook(
            "kind = \"graph\"\nsecret = \"env:S\"\n[subscribe]\nresource = \"/users\"\nnotification_url = \"https://a.example/v1/hooks/msgraph\"\n",
        )
        .expect("valid");
        let s = ok.subscribe.expect("subscribe");
        assert_eq!(s.resource, "users");
        assert_eq!(s.change_type, "created,updated,deleted");
        assert_eq!(s.lifetime, Duration::from_secs(2 * 86_400));
        let error = |kind: &str, sub: &str| {
            hook(&format!(
                "kind = \"{kind}\"\nsecret = \"env:S\"\n[subscribe]\nresource = \"users\"\n{sub}\n"
            ))
            .unwrap_err()
        };
        let url = "notification_url = \"https://a.example/v1/hooks/msgraph\"";
        assert!(error("zendesk", url).contains("only graph hooks"));
        assert!(
            error(
                "graph",
                "notification_url = \"http://a.example/v1/hooks/msgraph\""
            )
            .contains("https")
        );
        assert!(
            error(
                "graph",
                "notification_url = \"https://a.example/v1/hooks/other\""
            )
            .contains("/v1/hooks/msgraph")
        );
        assert!(error("graph", &format!("{url}\nchange_type = \"moved\"")).contains("moved"));
        assert!(error("graph", &format!("{url}\nlifetime = \"30d\"")).contains("41760"));
        let local = hook(
            "kind = \"graph\"\nsecret = \"env:S\"\n[subscribe]\nresource = \"users\"\nnotification_url = \"http://127.0.0.1:9/v1/hooks/msgraph\"\n",
        );
        assert!(local.is_ok(), "plain http on loopback, for tests");
    }
}
