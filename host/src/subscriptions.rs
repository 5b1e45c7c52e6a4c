//! Push subscriptions Airlock keeps alive itself: a Graph hook with `subscribe = {...}` makes
//! Airlock create the change-notification subscription at Graph (`POST /v1.0/subscriptions`,
//! whose validation request the hook route answers) and renew it (`PATCH`) at half of its
//! lifetime, for as long as the daemon runs. The request goes through the connector's gate like
//! any other (grants, injected credentials, audit rows under `hook:graph`); the hook secret is
//! the subscription's `clientState`. The subscription id is kept in the store, so a restart
//! renews the same subscription (or makes a new one when it has expired or the config changed).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};

use crate::app::Airlock;
use crate::config::Subscribe;
use crate::proxy::{ProxyAnswer, ProxyRequest, host_request};
use crate::store::audit::AuditEvent;
use crate::store::hook_subscriptions::Kept;

/// Graph's subscriptions collection, below the connector's `base_url`.
const COLLECTION: &str = "v1.0/subscriptions";
const PRINCIPAL: &str = "hook:graph";
/// Retry pause after a failure grows from this to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Starts one keeper per connector whose hook subscribes. Call once the listener is bound: the
/// upstream calls the hook route back before it answers the creation.
pub fn start(a: Arc<Airlock>) {
    for c in &a.config().connectors {
        if c.hook.as_ref().is_some_and(|h| h.subscribe.is_some()) {
            tokio::spawn(keep(a.clone(), c.id.clone()));
        }
    }
}

/// Keeps the connector's subscription alive until its hook (or `subscribe`) leaves the config.
async fn keep(a: Arc<Airlock>, connector: String) {
    let mut failures = 0u32;
    loop {
        let config = a.config();
        let Some(hook) = config.connector(&connector).and_then(|c| c.hook.clone()) else {
            return;
        };
        let Some(sub) = hook.subscribe.clone() else {
            return;
        };
        let wait = match once(&a, &connector, &hook.secret, &sub).await {
            Ok(expires) => {
                failures = 0;
                renew_in(&expires, sub.lifetime)
            }
            Err(reason) => {
                failures += 1;
                let reason = a.scrubber.scrub(&reason);
                tracing::warn!(connector = %connector, "graph subscription not kept: {reason}");
                audit(
                    &a,
                    &connector,
                    "error",
                    format!("graph subscription: {reason}"),
                );
                FIRST_BACKOFF
                    .saturating_mul(1 << failures.min(10).saturating_sub(1))
                    .min(MAX_BACKOFF)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Renews the kept subscription, or creates one; returns its new expiry (RFC 3339).
async fn once(
    a: &Airlock,
    connector: &str,
    secret: &crate::capabilities::grant::SecretRef,
    sub: &Subscribe,
) -> Result<String, String> {
    let current = a
        .store
        .kept_subscription(connector)
        .await
        .map_err(|e| e.to_string())?;
    let expires = until(sub.lifetime);
    if let Some(k) = current {
        if k.resource == sub.resource && k.notification_url == sub.notification_url {
            let body = serde_json::json!({ "expirationDateTime": expires });
            let path = format!("{COLLECTION}/{}", k.id);
            let answer = call(a, connector, Method::PATCH, &path, &body).await?;
            if answer.status.is_success() {
                let expires = save(a, connector, &k.id, sub, &answer).await?;
                audit(
                    a,
                    connector,
                    "ok",
                    format!("graph subscription {} renewed until {expires}", k.id),
                );
                return Ok(expires);
            }
            if answer.status != http::StatusCode::NOT_FOUND {
                return Err(upstream_error("renewing", &answer));
            }
            // Gone (it expired while the daemon was down): make a new one below.
        } else {
            // The config now watches something else: end the old one (best effort).
            let path = format!("{COLLECTION}/{}", k.id);
            let _ = call(
                a,
                connector,
                Method::DELETE,
                &path,
                &serde_json::Value::Null,
            )
            .await;
        }
    }
    let client_state = a
        .resolve_secret(secret)
        .await
        .map_err(|e| format!("hook secret unavailable: {e}"))?;
    let body = serde_json::json!({
        "changeType": sub.change_type,
        "notificationUrl": sub.notification_url,
        "resource": sub.resource,
        "expirationDateTime": expires,
        "clientState": client_state,
    });
    let answer = call(a, connector, Method::POST, COLLECTION, &body).await?;
    if !answer.status.is_success() {
        return Err(upstream_error("creating", &answer));
    }
    let v: serde_json::Value = serde_json::from_slice(&answer.body)
        .map_err(|_| "the upstream answered the creation with no JSON".to_string())?;
    let id = v["id"]
        .as_str()
        .ok_or("the upstream answered the creation without an id")?
        .to_string();
    let expires = save(a, connector, &id, sub, &answer).await?;
    audit(
        a,
        connector,
        "ok",
        format!(
            "graph subscription {id} for {} created until {expires}",
            sub.resource
        ),
    );
    Ok(expires)
}

async fn call(
    a: &Airlock,
    connector: &str,
    method: Method,
    path: &str,
    body: &serde_json::Value,
) -> Result<ProxyAnswer, String> {
    let mut headers = HeaderMap::new();
    let body = if body.is_null() {
        Bytes::new()
    } else {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Bytes::from(body.to_string())
    };
    let req = ProxyRequest {
        method,
        path: path.to_string(),
        query: None,
        headers,
        body,
    };
    host_request(a, PRINCIPAL, connector, req)
        .await
        .map_err(|e| e.to_string())
}

/// Stores the subscription with the expiry the upstream granted (it may shorten the asked one).
async fn save(
    a: &Airlock,
    connector: &str,
    id: &str,
    sub: &Subscribe,
    answer: &ProxyAnswer,
) -> Result<String, String> {
    let granted = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v["expirationDateTime"].as_str().map(str::to_string))
        .unwrap_or_else(|| until(sub.lifetime));
    let k = Kept {
        connector: connector.to_string(),
        id: id.to_string(),
        resource: sub.resource.clone(),
        notification_url: sub.notification_url.clone(),
        expires_at: granted.clone(),
        renewed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    a.store
        .keep_subscription(&k)
        .await
        .map_err(|e| e.to_string())?;
    Ok(granted)
}

/// `lifetime` from now, as Graph writes times.
fn until(lifetime: Duration) -> String {
    let at = chrono::Utc::now() + chrono::TimeDelta::from_std(lifetime).unwrap_or_default();
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// When to renew: half a lifetime before `expires` (at least a second from now).
fn renew_in(expires: &str, lifetime: Duration) -> Duration {
    let left = match chrono::DateTime::parse_from_rfc3339(expires) {
        // Already past: `to_std` refuses a negative span, and then it is due now.
        Ok(at) => (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default(),
        Err(_) => lifetime,
    };
    left.saturating_sub(lifetime / 2)
        .max(Duration::from_secs(1))
}

fn upstream_error(doing: &str, answer: &ProxyAnswer) -> String {
    let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    let message = v["error"]["message"].as_str().unwrap_or("no error message");
    format!(
        "{doing} the subscription: the upstream answered {}: {message}",
        answer.status
    )
}

fn audit(a: &Airlock, connector: &str, decision: &str, reason: String) {
    a.audit.record(AuditEvent {
        connector: connector.to_string(),
        invocation: ulid::Ulid::new().to_string(),
        event: "subscription".into(),
        decision: decision.into(),
        reason,
        principal: Some(PRINCIPAL.into()),
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_half_the_lifetime_and_never_in_a_tight_loop() {
        let day = Duration::from_secs(86_400);
        let wait = renew_in(&until(day), day);
        assert!(wait > Duration::from_secs(43_000) && wait <= Duration::from_secs(43_200));
        assert_eq!(
            renew_in("2000-01-01T00:00:00Z", day),
            Duration::from_secs(1),
            "already past: soon, not at once"
        );
        assert_eq!(renew_in("not a time", day), day / 2);
    }
}
