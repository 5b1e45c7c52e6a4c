//! What every invocation of one loaded connector shares: its id, settings, gate, grants,
//! resolved secrets, audit log, metrics and progress board.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::capabilities::http::ConnectorGate;
use crate::capabilities::progress::ProgressBoard;
use crate::capabilities::secrets::SecretValues;
use crate::config::Grant;
use crate::scrub::Scrubber;
use crate::store::audit::AuditLog;

/// What every invocation of one connector shares.
pub struct ConnectorCtx {
    pub id: String,
    pub settings: BTreeMap<String, String>,
    pub gate: Arc<ConnectorGate>,
    pub audit: AuditLog,
    pub scrubber: Scrubber,
    pub grants: Vec<Grant>,
    pub secrets: SecretValues,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The latest `host.progress` report per stream (contract 0.2.0 and later).
    pub progress: ProgressBoard,
}
