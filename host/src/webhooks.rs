//! Webhooks out: the daemon pushes committed changes to each `[[webhook]]`, signed as the
//! Standard Webhooks specification says (`webhook-id`, `webhook-timestamp`, `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`). At least once: deliveries come from
//! the persistent outbox (`store/webhooks.rs`), so a restart or a kill -9 loses none; a receiver
//! dedupes by `webhook-id`. Failed attempts are retried with exponential backoff and jitter, and
//! a delivery is dead-lettered after `max_attempts`. Deliveries leave through the same address
//! rules as the gate (loopback, private and metadata addresses refused unless the webhook allows
//! private ones) and each attempt is audited.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use rand::Rng as _;

use crate::app::Airlock;
use crate::capabilities::address::is_metadata_host;
use crate::capabilities::net::{check_ip, error_chain};
use crate::config::Webhook;
use crate::store::audit::AuditEvent;
use crate::store::webhooks::Delivery;

/// Changes one round fans out per webhook, and deliveries it sends.
const FAN_OUT: usize = 500;
const SEND: usize = 64;
/// Longest wait between rounds (commits of this process wake the worker sooner).
const IDLE: Duration = Duration::from_secs(1);
/// Longest delay between two attempts of one delivery.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long a claimed delivery stays with its sender beyond the webhook's timeout: a daemon
/// that dies while sending leaves it to be sent again after that (at least once).
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// Starts the delivery worker (a no-op round while no webhook is configured). The webhooks
/// configured now get their cursors before this returns, so they see every change committed
/// after the daemon serves; one added by a reload starts at the newest change when the worker
/// sees it.
pub async fn start(a: Arc<Airlock>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let names = webhook_names(&a);
    a.store.reconcile_webhooks(&names).await?;
    Ok(tokio::spawn(async move {
        let mut known = Some(names);
        loop {
            let wait = match round(&a, &mut known).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!("webhook deliveries: {e:#}");
                    IDLE
                }
            };
            if !wait.is_zero() {
                a.store.committed_within(wait).await;
            }
        }
    }))
}

fn webhook_names(a: &Airlock) -> Vec<String> {
    a.config().webhooks.iter().map(|w| w.name.clone()).collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One round: fan out new changes, send what is due, settle each attempt. Returns how long the
/// worker may rest.
async fn round(a: &Arc<Airlock>, known: &mut Option<Vec<String>>) -> anyhow::Result<Duration> {
    let config = a.config();
    let names = webhook_names(a);
    if known.as_ref() != Some(&names) {
        a.store.reconcile_webhooks(&names).await?;
        *known = Some(names);
    }
    if config.webhooks.is_empty() {
        return Ok(IDLE);
    }
    for w in &config.webhooks {
        let connectors: Vec<String> = if w.connectors.is_empty() {
            let tenant = config.connectors.iter().filter(|c| c.tenant == w.tenant);
            tenant.map(|c| c.id.clone()).collect()
        } else {
            w.connectors.clone()
        };
        a.store
            .fan_out_webhook(&w.name, &connectors, &w.kinds, FAN_OUT, now_ms())
            .await?;
    }
    // Claimed, not just read: another daemon on the same store does not send these meanwhile.
    let longest = config.webhooks.iter().map(|w| w.timeout).max();
    let claim = longest.unwrap_or_default() + CLAIM_MARGIN;
    let due = a
        .store
        .claim_deliveries(now_ms(), SEND, now_ms() + claim.as_millis() as i64)
        .await?;
    let full = due.len() == SEND;
    let sends = due.into_iter().filter_map(|d| {
        let w = config
            .webhooks
            .iter()
            .find(|w| w.name == d.webhook)?
            .clone();
        Some(attempt(a.clone(), w, d))
    });
    futures::future::join_all(sends).await;
    if full {
        return Ok(Duration::ZERO);
    }
    let next = a.store.next_delivery_due().await?;
    let until_next = next.map_or(IDLE, |ms| {
        Duration::from_millis(u64::try_from(ms - now_ms()).unwrap_or(0))
    });
    Ok(until_next.min(IDLE))
}

/// Sends one delivery once and records the outcome (delivered, retry later, or dead).
async fn attempt(a: Arc<Airlock>, w: Webhook, d: Delivery) {
    let started = std::time::Instant::now();
    let outcome = send(&a, &w, &d).await;
    let attempts = d.attempts + 1;
    let (status, error, retry_at) = match &outcome {
        Ok(status) => (Some(*status), None, None),
        Err((status, reason)) => {
            let retry = (attempts < w.max_attempts).then(|| now_ms() + backoff(&w, attempts));
            (*status, Some(a.scrubber.scrub(reason)), retry)
        }
    };
    let decision = if error.is_none() { "allow" } else { "error" };
    let outcome = match (&error, retry_at) {
        (None, _) => "delivered",
        (Some(_), Some(_)) => "retry",
        (Some(_), None) => "dead",
    };
    let labels = crate::metrics::WebhookLabels {
        webhook: w.name.clone(),
        outcome: outcome.into(),
    };
    a.metrics.webhook_attempts.get_or_create(&labels).inc();
    let reason = match (&error, retry_at) {
        (None, _) => format!(
            "webhook `{}` delivery {} (attempt {attempts}) accepted",
            w.name, d.id
        ),
        (Some(e), Some(_)) => format!(
            "webhook `{}` delivery {} attempt {attempts} of {} failed: {e}; retried later",
            w.name, d.id, w.max_attempts
        ),
        (Some(e), None) => format!(
            "webhook `{}` delivery {} attempt {attempts} failed: {e}; dead-lettered after {} attempts",
            w.name, d.id, w.max_attempts
        ),
    };
    a.audit.record(AuditEvent {
        connector: d.connector.clone(),
        invocation: d.id.clone(),
        event: "webhook".into(),
        decision: decision.into(),
        reason,
        method: Some("POST".into()),
        scheme: w.url.scheme_str().map(str::to_string),
        host: w.url.host().map(str::to_ascii_lowercase),
        port: w.url.port_u16(),
        path: Some(w.url.path().to_string()),
        status,
        latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        principal: Some(format!("daemon:webhook:{}", w.name)),
        ..Default::default()
    });
    let settled = a
        .store
        .settle_delivery(&d.id, status, error.as_deref(), retry_at)
        .await;
    if let Err(e) = settled {
        // The delivery stays pending and is sent again: at least once, never lost.
        tracing::error!(
            "webhook delivery {}: cannot record the outcome: {e:#}",
            d.id
        );
    }
}

/// The delay before attempt `attempts + 1`: `backoff` doubled per attempt, up to an hour, with
/// ±50 % jitter so receivers that failed together are not retried together.
fn backoff(w: &Webhook, attempts: u32) -> i64 {
    let base = w
        .backoff
        .saturating_mul(1 << attempts.saturating_sub(1).min(20));
    let base = base.min(MAX_BACKOFF).as_millis() as f64;
    (base * rand::thread_rng().gen_range(0.5..1.5)) as i64
}

/// One POST of the delivery's body, signed; the status on a 2xx, else why not.
async fn send(a: &Airlock, w: &Webhook, d: &Delivery) -> Result<u16, (Option<u16>, String)> {
    let host = w.url.host().unwrap_or_default();
    if is_metadata_host(host) {
        return Err((
            None,
            format!("{host} is a cloud metadata host; never reachable"),
        ));
    }
    // Literal addresses never reach the resolver that checks names, so they are checked here
    // (as the gate does); a link-local or metadata address is never a webhook's.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<std::net::IpAddr>()
        && let Some(class) = check_ip(ip, w.allow_private)
    {
        return Err((
            None,
            format!("{ip} is {class}; the webhook does not allow it (allow_private = true)"),
        ));
    }
    let key = signing_key(a, w).await.map_err(|e| (None, e))?;
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = sign(&key, &d.id, &ts, &d.payload);
    let req = http::Request::post(w.url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "airlock-webhooks")
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", &ts)
        .header("webhook-signature", format!("v1,{signature}"))
        .body(Full::new(Bytes::from(d.payload.clone())))
        .map_err(|e| (None, format!("cannot build the request: {e}")))?;
    let client = a.net().client(w.allow_private);
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| (None, error_chain(&e)))?;
        let status = resp.status().as_u16();
        // Read (and drop) the answer so the connection can be reused.
        let _ = resp.into_body().collect().await;
        Ok(status)
    };
    match tokio::time::timeout(w.timeout, exchange).await {
        Err(_) => Err((None, format!("no answer within {:?}", w.timeout))),
        Ok(Err(e)) => Err(e),
        Ok(Ok(s)) if (200..300).contains(&s) => Ok(s),
        Ok(Ok(s)) => Err((Some(s), format!("the receiver answered HTTP {s}"))),
    }
}

/// The webhook's secret, resolved now (a rotated secret takes effect on the next attempt) and
/// decoded: `whsec_` followed by base64.
async fn signing_key(a: &Airlock, w: &Webhook) -> Result<Vec<u8>, String> {
    let value = a
        .resolve_secret(&w.secret)
        .await
        .map_err(|e| format!("signing secret unavailable: {e}"))?;
    decode_secret(&value)
}

fn decode_secret(value: &str) -> Result<Vec<u8>, String> {
    let b64 = value.trim().strip_prefix("whsec_").ok_or(
        "the signing secret must be `whsec_` followed by base64 (e.g. `whsec_$(openssl rand -base64 32)`)",
    )?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "the signing secret after `whsec_` is not base64".to_string())?;
    if key.len() < 16 {
        return Err("the signing secret is shorter than 16 bytes".into());
    }
    Ok(key)
}

/// base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
fn sign(key: &[u8], id: &str, ts: &str, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_reference_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        let sig = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body);
        assert_eq!(sig, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(decode_secret("whsec_***").is_err());
        assert!(decode_secret("whsec_c2hvcnQ=").is_err(), "too short");
    }
}
