//! Webhooks in: an upstream that pushes (Zendesk, Jira, Microsoft Graph change notifications)
//! calls `POST /v1/hooks/{connector}`. The host verifies the notification with the hook's secret
//! (from the vault) and, when it is genuine, starts an incremental sync of the hook's streams at
//! once. The payload is never trusted as data: it only says "something changed"; what changed is
//! read from the upstream through the connector's gate. Notifications that arrive while a run is
//! going are coalesced into one more run after it. Every notification is audited (event `hook`).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;

use crate::app::Airlock;
use crate::config::{HookKind, InboundHook};
use crate::store::audit::AuditEvent;

/// A notification older or newer than this (by its signed timestamp) is refused as a replay.
const MAX_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// What a verified request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A genuine change notification: sync.
    Changed,
    /// Graph's subscription handshake: answer the token as `text/plain`.
    Handshake(String),
}

/// What receiving produced.
#[derive(Debug)]
pub enum Received {
    Handshake(String),
    /// The streams a run was started (or queued after the running one) for.
    Syncing(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// No such connector, or it has no hook (the same answer for both).
    #[error("no hook is configured for `{0}`")]
    NotFound(String),
    #[error("notification refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Internal(String),
}

/// Checks one request against the hook's secret.
pub fn verify(
    kind: HookKind,
    secret: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Verdict, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match kind {
        HookKind::Zendesk => {
            let sig =
                header("x-zendesk-webhook-signature").ok_or("no X-Zendesk-Webhook-Signature")?;
            let ts = header("x-zendesk-webhook-signature-timestamp")
                .ok_or("no X-Zendesk-Webhook-Signature-Timestamp")?;
            let at = chrono::DateTime::parse_from_rfc3339(ts)
                .map_err(|_| "the signature timestamp is not an RFC 3339 time")?;
            if (now - at.with_timezone(&chrono::Utc)).abs() > MAX_SKEW {
                return Err(
                    "the signature timestamp is more than 5 minutes off (a replay?)".into(),
                );
            }
            let sig = base64::engine::general_purpose::STANDARD
                .decode(sig.trim())
                .map_err(|_| "the signature is not base64")?;
            let mut mac = hmac(secret);
            mac.update(ts.as_bytes());
            mac.update(body);
            mac.verify_slice(&sig)
                .map_err(|_| "the signature does not match".to_string())?;
            Ok(Verdict::Changed)
        }
        HookKind::Jira => {
            let sig = header("x-hub-signature").ok_or("no X-Hub-Signature")?;
            let hex_sig = sig
                .trim()
                .strip_prefix("sha256=")
                .ok_or("X-Hub-Signature is not sha256=")?;
            let sig = hex::decode(hex_sig).map_err(|_| "the signature is not hex")?;
            let mut mac = hmac(secret);
            mac.update(body);
            mac.verify_slice(&sig)
                .map_err(|_| "the signature does not match".to_string())?;
            Ok(Verdict::Changed)
        }
        HookKind::Graph => {
            // The subscription handshake carries no secret: echoing the token proves only that
            // this URL answers, which is all Graph asks; it starts no sync.
            if let Some(token) = query.and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "validationToken")
                    .map(|(_, v)| v.into_owned())
            }) {
                return Ok(Verdict::Handshake(token));
            }
            let v: serde_json::Value =
                serde_json::from_slice(body).map_err(|_| "the body is not JSON")?;
            let items = v["value"]
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or("no notifications in `value`")?;
            // Every notification must carry the secret; one without it spoils the batch.
            for n in items {
                let state = n["clientState"].as_str().unwrap_or("");
                if !same(state, secret) {
                    return Err("a notification's clientState does not match".into());
                }
            }
            Ok(Verdict::Changed)
        }
    }
}

fn hmac(secret: &str) -> Hmac<sha2::Sha256> {
    Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length")
}

/// Equal strings, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    let mut mac = hmac("airlock-compare");
    mac.update(a.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut other = hmac("airlock-compare");
    other.update(b.as_bytes());
    other.verify_slice(&digest).is_ok()
}

/// Receives one request for `connector`: verifies it, audits it, and starts the sync.
pub async fn receive(
    a: &Arc<Airlock>,
    connector: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Received, HookError> {
    let config = a.config();
    let Some(hook) = config.connector(connector).and_then(|c| c.hook.clone()) else {
        return Err(HookError::NotFound(connector.to_string()));
    };
    let secret = secret(a, &hook).await?;
    let verdict = verify(hook.kind, &secret, headers, query, body, chrono::Utc::now());
    let kind = format!("{:?}", hook.kind).to_lowercase();
    let record = |decision: &str, reason: String| {
        a.audit.record(AuditEvent {
            connector: connector.to_string(),
            invocation: ulid::Ulid::new().to_string(),
            event: "hook".into(),
            decision: decision.into(),
            reason,
            principal: Some(format!("hook:{kind}")),
            ..Default::default()
        });
    };
    let result = match verdict {
        Err(reason) => {
            record("deny", format!("{kind} notification refused: {reason}"));
            Err(HookError::Refused(reason))
        }
        Ok(Verdict::Handshake(token)) => {
            record("ok", format!("{kind} subscription handshake answered"));
            Ok(Received::Handshake(token))
        }
        Ok(Verdict::Changed) => {
            let streams = match &hook.streams {
                Some(s) => s.clone(),
                None => a
                    .streams_of(connector, None)
                    .map_err(|e| HookError::Internal(e.to_string()))?,
            };
            for s in &streams {
                start(a.clone(), connector, s);
            }
            record(
                "ok",
                format!(
                    "{kind} notification verified; syncing {}",
                    streams.join(", ")
                ),
            );
            Ok(Received::Syncing(streams))
        }
    };
    // The answer leaves once its row is durable, like every other answer.
    a.audit_durable()
        .await
        .map_err(|e| HookError::Internal(e.to_string()))?;
    result
}

async fn secret(a: &Airlock, hook: &InboundHook) -> Result<String, HookError> {
    a.resolve_secret(&hook.secret)
        .await
        .map_err(|e| HookError::Internal(format!("hook secret unavailable: {e}")))
}

/// Runs started by hooks, per stream: present while a run goes, `true` when another
/// notification arrived during it (one more run follows, however many arrived).
static RUNS: LazyLock<Mutex<HashMap<(String, String), bool>>> = LazyLock::new(Default::default);

fn runs() -> std::sync::MutexGuard<'static, HashMap<(String, String), bool>> {
    RUNS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts an incremental run of the stream, or marks the running one to run once more.
fn start(a: Arc<Airlock>, connector: &str, stream: &str) {
    let key = (connector.to_string(), stream.to_string());
    {
        let mut map = runs();
        if let Some(again) = map.get_mut(&key) {
            *again = true;
            return;
        }
        map.insert(key.clone(), false);
    }
    let ctx = crate::runtime::context::CallContext::trusted().by("hook");
    tokio::spawn(crate::runtime::context::with(ctx, async move {
        let (id, s) = key.clone();
        loop {
            // A scheduled or requested run of the same stream goes first; this one follows it.
            while a.syncer.is_running(&id, &s) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Err(e) = a.sync_stream(&id, &s, false, |_| {}).await {
                tracing::warn!(connector = %id, stream = %s, "sync started by a hook failed: {e}");
            }
            let mut map = runs();
            match map.get_mut(&key) {
                Some(again) if *again => *again = false,
                _ => {
                    map.remove(&key);
                    return;
                }
            }
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn zendesk_signatures_are_checked_with_their_timestamp() {
        let now = chrono::Utc::now();
        let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body = br#"{"type":"zen:event-type:ticket.created"}"#;
        let mut mac = hmac("zd-secret");
        mac.update(ts.as_bytes());
        mac.update(body);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let ok = headers(&[
            ("x-zendesk-webhook-signature", &sig),
            ("x-zendesk-webhook-signature-timestamp", &ts),
        ]);
        let check = |h: &HeaderMap, body: &[u8], at| {
            verify(HookKind::Zendesk, "zd-secret", h, None, body, at)
        };
        assert_eq!(check(&ok, body, now), Ok(Verdict::Changed));
        assert!(check(&ok, b"{}", now).is_err(), "another body");
        assert!(
            check(&ok, body, now + chrono::TimeDelta::minutes(6)).is_err(),
            "a replay"
        );
        assert!(verify(HookKind::Zendesk, "other", &ok, None, body, now).is_err());
        assert!(check(&HeaderMap::new(), body, now).is_err());
    }

    #[test]
    fn jira_signatures_and_graph_client_state_and_handshake() {
        let body = br#"{"webhookEvent":"jira:issue_updated"}"#;
        let mut mac = hmac("jira-secret");
        mac.update(body);
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let now = chrono::Utc::now();
        let h = headers(&[("x-hub-signature", &sig)]);
        assert_eq!(
            verify(HookKind::Jira, "jira-secret", &h, None, body, now),
            Ok(Verdict::Changed)
        );
        assert!(verify(HookKind::Jira, "jira-secret", &h, None, b"x", now).is_err());
        let empty = HeaderMap::new();
        let graph = |q: Option<&str>, b: &[u8]| verify(HookKind::Graph, "cs-1", &empty, q, b, now);
        assert_eq!(
            graph(
                Some("validationToken=Validation%3A+Testing+client+application"),
                b""
            ),
            Ok(Verdict::Handshake(
                "Validation: Testing client application".into()
            ))
        );
        let good =
            br#"{"value":[{"clientState":"cs-1","changeType":"updated","resource":"users/1"}]}"#;
        assert_eq!(graph(None, good), Ok(Verdict::Changed));
        let mixed = br#"{"value":[{"clientState":"cs-1"},{"clientState":"guess"}]}"#;
        assert!(graph(None, mixed).is_err());
        assert!(graph(None, br#"{"value":[]}"#).is_err());
    }
}
