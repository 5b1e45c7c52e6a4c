//! The exporter's HTTP client: the host's own hyper and rustls (the outbound trust store, so a
//! receiver behind the company CA is trusted too), driven by the daemon's tokio runtime.
//!
//! The batch exporter runs on a thread of its own, outside the runtime; each request is
//! spawned onto the runtime and awaited from there, so no second runtime or client is needed.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

use crate::capabilities::trust;
use crate::config::OutboundSettings;

/// The largest receiver answer read (an OTLP answer is a few bytes; a partial-success message
/// a few hundred).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub(super) struct RuntimeClient {
    runtime: tokio::runtime::Handle,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl RuntimeClient {
    pub(super) fn new(
        runtime: tokio::runtime::Handle,
        outbound: &OutboundSettings,
        timeout: Duration,
    ) -> RuntimeClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(trust::client_config(trust::base_roots(&outbound.trust)))
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        RuntimeClient {
            runtime,
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        }
    }
}

#[async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let exchange = async move {
            let answer = client.request(request.map(Full::new)).await?;
            let (head, body) = answer.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await?;
            Ok::<_, HttpError>(Response::from_parts(head, body.to_bytes()))
        };
        let task = self
            .runtime
            .spawn(async move { tokio::time::timeout(timeout, exchange).await });
        match task.await? {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {}s", timeout.as_secs()).into()),
        }
    }
}
