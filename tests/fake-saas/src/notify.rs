//! Notifications a fake pushes, as the real upstream does (Zendesk webhooks, Jira webhooks,
//! Microsoft Graph change notifications): each is POSTed once by a background sender, in the
//! order it was made, retried a few times when the receiver fails (as the real services do), and
//! kept in a log the tests read. Signing is each fake's business; this only carries the bytes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Attempts per notification before the sender gives up on it.
const ATTEMPTS: u32 = 3;

/// One notification to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What became of one notification (the last attempt's answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub url: String,
    /// The receiver's status, or None when it could not be reached.
    pub status: Option<u16>,
    pub attempts: u32,
    /// The event the fake meant (`zen:event-type:ticket.created`, `jira:issue_updated`, ...).
    pub event: String,
}

/// The sender of one fake: cheap to clone, usable from sync code (`mutate`) and handlers.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<(Outgoing, String)>,
    log: Arc<Mutex<Vec<Delivery>>>,
}

impl Notifier {
    /// Starts the sender task; call inside the fake's runtime (its `spawn_*`).
    pub fn start() -> Notifier {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Outgoing, String)>();
        let log: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let log2 = log.clone();
        tokio::spawn(async move {
            while let Some((out, event)) = rx.recv().await {
                let mut attempts = 0;
                let mut status = None;
                while attempts < ATTEMPTS {
                    attempts += 1;
                    status = post(
                        &out.url,
                        &out.headers,
                        out.body.clone(),
                        Duration::from_secs(10),
                    )
                    .await
                    .ok()
                    .map(|(s, _)| s);
                    if status.is_some_and(|s| (200..300).contains(&s)) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempts))).await;
                }
                let d = Delivery {
                    url: out.url,
                    status,
                    attempts,
                    event,
                };
                log2.lock().unwrap_or_else(|e| e.into_inner()).push(d);
            }
        });
        Notifier { tx, log }
    }

    /// Queues one notification (sent after every one queued before it).
    pub fn send(&self, out: Outgoing, event: &str) {
        let _ = self.tx.send((out, event.to_string()));
    }

    /// Every notification sent so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One POST: (status, body), or why it failed. Used for notifications and for Graph's
/// validation request, which must be answered within its deadline.
pub async fn post(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    deadline: Duration,
) -> Result<(u16, Bytes), String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = hyper::Request::post(url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let call = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    };
    tokio::time::timeout(deadline, call)
        .await
        .map_err(|_| format!("no answer within {deadline:?}"))?
}

/// The strings of a JSON array (a webhook's event list); anything else is none.
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// HMAC-SHA256 of `parts` (in order) with `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}
