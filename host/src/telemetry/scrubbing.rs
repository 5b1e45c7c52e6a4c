//! The last step before spans leave the process: every string in a batch (span names, attribute
//! values, event names and fields, link attributes, status messages) passes the secret
//! scrubber, the same one the log lines go through. Spans carry ids and names by design; this
//! also covers a log line inside a span (exported as a span event) that quotes a secret.
//!
//! It also says in the log when the receiver stops answering and when it answers again, once
//! each, instead of once per batch.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::Status;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::scrub::Scrubber;

pub(super) struct Scrubbing<E> {
    inner: E,
    scrubber: Scrubber,
    url: String,
    failing: AtomicBool,
}

impl<E: std::fmt::Debug> std::fmt::Debug for Scrubbing<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubbing")
            .field("inner", &self.inner)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl<E> Scrubbing<E> {
    pub(super) fn new(inner: E, scrubber: Scrubber, url: String) -> Self {
        Scrubbing {
            inner,
            scrubber,
            url,
            failing: AtomicBool::new(false),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Scrubbing<E> {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &mut batch {
            scrub_span(&self.scrubber, span);
        }
        let result = self.inner.export(batch).await;
        match &result {
            Err(e) if !self.failing.swap(true, Ordering::Relaxed) => tracing::warn!(
                "span export to {} failed ({e}); spans are dropped until it answers",
                self.url
            ),
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!("span export to {} answers again", self.url)
            }
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

fn scrub_span(s: &Scrubber, span: &mut SpanData) {
    scrub_cow(s, &mut span.name);
    scrub_attributes(s, &mut span.attributes);
    for event in &mut span.events.events {
        scrub_cow(s, &mut event.name);
        scrub_attributes(s, &mut event.attributes);
    }
    for link in &mut span.links.links {
        scrub_attributes(s, &mut link.attributes);
    }
    if let Status::Error { description } = &mut span.status {
        scrub_cow(s, description);
    }
}

fn scrub_cow(s: &Scrubber, text: &mut Cow<'static, str>) {
    if s.finds(text) {
        *text = Cow::Owned(s.scrub(text));
    }
}

fn scrub_attributes(s: &Scrubber, attributes: &mut [KeyValue]) {
    for kv in attributes {
        match &mut kv.value {
            Value::String(v) => scrub_value(s, v),
            Value::Array(Array::String(vs)) => vs.iter_mut().for_each(|v| scrub_value(s, v)),
            _ => {}
        }
    }
}

fn scrub_value(s: &Scrubber, v: &mut StringValue) {
    if s.finds(v.as_str()) {
        *v = StringValue::from(s.scrub(v.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;

    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{
        Event, Link, SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    const SECRET: &str = "canary-otlp-9f2c41";

    /// Keeps what it is given.
    #[derive(Debug, Clone, Default)]
    struct Keep(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Keep {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().expect("lock").extend(batch);
            Ok(())
        }
    }

    fn span_quoting(secret: &str) -> SpanData {
        let ctx = SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(9u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            format!("upstream said {secret}"),
            SystemTime::now(),
            vec![KeyValue::new("error", format!("bad token {secret}"))],
            0,
        ));
        let mut links = SpanLinks::default();
        links.links.push(Link::with_context(ctx.clone()));
        links.links[0].attributes = vec![KeyValue::new("why", secret.to_string())];
        SpanData {
            span_context: ctx,
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Owned(format!("op {secret}")),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: vec![
                KeyValue::new("connector", "confluence"),
                KeyValue::new("host", format!("{secret}.example.com")),
                KeyValue::new(
                    "list",
                    Value::Array(Array::String(vec![StringValue::from(secret.to_string())])),
                ),
                KeyValue::new("page", 3),
            ],
            dropped_attributes_count: 0,
            events,
            links,
            status: Status::error(format!("failed with {secret}")),
            instrumentation_scope: InstrumentationScope::builder("airlock").build(),
        }
    }

    #[test]
    fn no_known_secret_leaves_in_any_string_of_a_span() {
        let scrubber = Scrubber::new();
        scrubber.add(SECRET);
        let keep = Keep::default();
        let exporter = Scrubbing::new(keep.clone(), scrubber, "http://x".into());
        futures::executor::block_on(exporter.export(vec![span_quoting(SECRET)])).expect("exported");
        let sent = keep.0.lock().expect("lock");
        let text = format!("{:?}", sent[0]);
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("[REDACTED]"), "{text}");
        // What holds no secret is left as it was.
        assert_eq!(
            sent[0].attributes[0],
            KeyValue::new("connector", "confluence")
        );
        assert_eq!(sent[0].attributes[3], KeyValue::new("page", 3));
    }
}
