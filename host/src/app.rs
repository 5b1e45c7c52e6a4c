//! Assembles a running Airlock from a config: data directory, vault, scrubber, audit writer,
//! engine, upstream client and every connector (a connector that fails to load is reported and
//! skipped; the others still load).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::capabilities::auth::GrantAuth;
use crate::capabilities::http::{ConnectorGate, GateDeps};
use crate::capabilities::net::Net;
use crate::capabilities::secrets::resolve_all;
use crate::config::{Config, Route};
use crate::runtime::connector::{ConnectorCtx, InvokeError, LoadedConnector, Op};
use crate::runtime::engine::{EngineOptions, Runtime};
use crate::scrub::Scrubber;
use crate::store::Db;
use crate::store::audit::AuditEvent;
use crate::store::audit::{AuditLog, AuditWriter};
use crate::store::vault::Vault;
use crate::sync::SyncLocks;

/// A connector slot: loaded, or the reason it is not.
pub enum Slot {
    Ready(Arc<LoadedConnector>),
    Failed { path: PathBuf, error: String },
}

/// A connector's state as the API and CLI show it.
#[derive(Serialize)]
pub struct ConnectorStatus {
    pub id: String,
    pub status: &'static str,
    pub component: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<crate::runtime::model::ConnectorInfo>,
    /// Each grant's breaker, rate budget, pause and cache state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<crate::capabilities::http::GrantStatus>,
}

pub struct Airlock {
    pub config: Config,
    pub runtime: Arc<Runtime>,
    pub connectors: BTreeMap<String, Slot>,
    pub audit: AuditLog,
    pub scrubber: Scrubber,
    /// The daemon's store connection (sync commits, search).
    pub db: Arc<Db>,
    pub sync_locks: SyncLocks,
    pub metrics: Arc<crate::metrics::Metrics>,
    writer: AuditWriter,
}

/// Options for [`Airlock::start`].
pub struct StartOptions<'a> {
    /// Load only these connectors (None: all).
    pub only: Option<&'a [String]>,
    /// Instances that may be alive at once.
    pub max_instances: u32,
}

impl Default for StartOptions<'_> {
    fn default() -> Self {
        StartOptions {
            only: None,
            max_instances: 256,
        }
    }
}

impl Airlock {
    pub async fn start(
        config: Config,
        scrubber: Scrubber,
        opts: StartOptions<'_>,
    ) -> anyhow::Result<Airlock> {
        let data_dir = config.server.data_dir.clone();
        let conn = crate::store::open(&data_dir)?;
        let vault = Vault::open(&data_dir)?;
        let wanted = |id: &str| opts.only.is_none_or(|o| o.iter().any(|x| x == id));

        // A replaying connector sends nothing upstream, so it needs no secret: replay works
        // where the credentials are not (a connector's CI).
        let replaying = |id: &str| {
            config.connector(id).is_some_and(|c| {
                matches!(c.cassette, Some(crate::cassette::CassetteMode::Replay(_)))
            })
        };
        let refs: Vec<_> = config
            .grants
            .iter()
            .filter(|g| wanted(&g.connector) && !replaying(&g.connector))
            .flat_map(|g| g.auth.secret_refs())
            .collect();
        let (values, secret_errors) = resolve_all(refs, &vault, &conn, &scrubber);
        drop(conn);

        let writer = AuditWriter::start(&data_dir, scrubber.clone())?;
        let audit = writer.log();
        let max_memory = config
            .connectors
            .iter()
            .map(|c| c.limits.memory_bytes)
            .chain([config.limits.memory_bytes])
            .max()
            .unwrap_or(config.limits.memory_bytes);
        let cache_dir = data_dir.join("compile-cache");
        let runtime = Arc::new(Runtime::new(EngineOptions {
            cache_dir: Some(&cache_dir),
            max_memory_bytes: max_memory,
            max_instances: opts.max_instances,
        })?);
        let net = Arc::new(Net::new(
            config.resolve.clone(),
            config.limits.connect_timeout,
        ));

        let metrics = crate::metrics::Metrics::new();
        let mut connectors = BTreeMap::new();
        for c in config.connectors.iter().filter(|c| wanted(&c.id)) {
            let grants: Vec<_> = config.grants_for(&c.id).cloned().collect();
            let mut auths = Vec::new();
            let mut failure = None;
            let cassette = match &c.cassette {
                None => None,
                Some(crate::cassette::CassetteMode::Record(r)) => {
                    Some(crate::cassette::GateCassette::Record(r.clone()))
                }
                Some(crate::cassette::CassetteMode::Replay(path)) => {
                    match crate::cassette::Replay::load(path) {
                        Ok(r) => Some(crate::cassette::GateCassette::Replay(Arc::new(r))),
                        Err(e) => {
                            failure = Some(format!("replay: {e}"));
                            None
                        }
                    }
                }
            };
            let replay = matches!(cassette, Some(crate::cassette::GateCassette::Replay(_)));
            for g in &grants {
                if failure.is_some() {
                    break;
                }
                if replay {
                    auths.push(GrantAuth::withheld(&g.auth));
                    continue;
                }
                if let Some((r, e)) = g
                    .auth
                    .secret_refs()
                    .into_iter()
                    .find_map(|r| secret_errors.get(r).map(|e| (r, e)))
                {
                    failure = Some(format!("grant[{}].auth: {r}: {e}", g.index));
                    break;
                }
                match GrantAuth::build(&g.auth, &values, &scrubber) {
                    Ok(a) => auths.push(a),
                    Err(e) => {
                        failure = Some(format!("grant[{}].auth: {e}", g.index));
                        break;
                    }
                }
            }
            if let Some(error) = failure {
                tracing::error!(connector = %c.id, "not loaded: {error}");
                connectors.insert(
                    c.id.clone(),
                    Slot::Failed {
                        path: c.component.clone(),
                        error,
                    },
                );
                continue;
            }
            let gate = Arc::new(
                ConnectorGate::new(
                    c.id.clone(),
                    grants.clone(),
                    auths,
                    c.limits.clone(),
                    GateDeps {
                        net: net.clone(),
                        audit: audit.clone(),
                        scrubber: scrubber.clone(),
                        metrics: metrics.clone(),
                    },
                )
                .with_cassette(cassette),
            );
            let ctx = Arc::new(ConnectorCtx {
                id: c.id.clone(),
                settings: c.settings.clone(),
                gate,
                audit: audit.clone(),
                scrubber: scrubber.clone(),
                grants,
                secrets: values.clone(),
                metrics: metrics.clone(),
            });
            let slot =
                match LoadedConnector::load(&runtime, &c.component, c.limits.clone(), ctx).await {
                    Ok(l) => {
                        tracing::info!(
                            connector = %c.id,
                            "loaded {} {} (contract {}, {} KiB, compiled in {:.0} ms{})",
                            l.info.name,
                            l.info.version,
                            l.contract,
                            l.compile.size_bytes / 1024,
                            l.compile.millis,
                            if l.compile.from_cache { ", from cache" } else { "" }
                        );
                        Slot::Ready(Arc::new(l))
                    }
                    Err(error) => {
                        let error = scrubber.scrub(&error);
                        tracing::error!(connector = %c.id, "not loaded: {error}");
                        Slot::Failed {
                            path: c.component.clone(),
                            error,
                        }
                    }
                };
            connectors.insert(c.id.clone(), slot);
        }
        Ok(Airlock {
            db: Arc::new(Db::open(&data_dir)?),
            sync_locks: SyncLocks::default(),
            metrics,
            config,
            runtime,
            connectors,
            audit,
            scrubber,
            writer,
        })
    }

    pub fn connector(&self, id: &str) -> Result<&Arc<LoadedConnector>, InvokeError> {
        match self.connectors.get(id) {
            Some(Slot::Ready(c)) => Ok(c),
            Some(Slot::Failed { error, .. }) => Err(InvokeError::Unavailable {
                message: format!("connector `{id}` failed to load: {error}"),
            }),
            None => Err(InvokeError::Unavailable {
                message: format!("no connector `{id}` is configured"),
            }),
        }
    }

    /// Runs an operation on a connector, or an action on a route.
    pub async fn invoke(&self, id: &str, op: Op) -> Result<serde_json::Value, InvokeError> {
        if let Some(route) = self.config.route(id) {
            return self.invoke_route(route, op).await;
        }
        self.connector(id)?.invoke(op).await
    }

    /// Failover: tries each connector of the route in order until one answers, and reports which
    /// one did and why the others failed. Invalid input stops at once (it would fail everywhere).
    async fn invoke_route(&self, route: &Route, op: Op) -> Result<serde_json::Value, InvokeError> {
        let input = match op {
            Op::Action { name, input } if name == route.action => input,
            _ => {
                return Err(InvokeError::BadInput {
                    message: format!(
                        "route `{}` serves only the action `{}`",
                        route.name, route.action
                    ),
                });
            }
        };
        let mut failed = Vec::new();
        for id in &route.connectors {
            let attempt = match self.connector(id) {
                Ok(c) => {
                    c.invoke(Op::Action {
                        name: route.action.clone(),
                        input: input.clone(),
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            match attempt {
                Ok(result) => {
                    self.audit.record(AuditEvent {
                        connector: route.name.clone(),
                        invocation: ulid::Ulid::new().to_string(),
                        event: "route".into(),
                        decision: "ok".into(),
                        reason: format!(
                            "answered by `{id}` after {} failed attempt(s)",
                            failed.len()
                        ),
                        ..Default::default()
                    });
                    return Ok(
                        serde_json::json!({ "answered_by": id, "failed": failed, "result": result }),
                    );
                }
                Err(e @ InvokeError::BadInput { .. }) => return Err(e),
                Err(InvokeError::Connector(c)) if c.code == "invalid-input" => {
                    return Err(InvokeError::Connector(c));
                }
                Err(e) => {
                    failed.push(serde_json::json!({ "connector": id, "error": e.to_string() }))
                }
            }
        }
        let message = format!(
            "route `{}`: every connector failed: {}",
            route.name,
            serde_json::Value::Array(failed)
        );
        self.audit.record(AuditEvent {
            connector: route.name.clone(),
            invocation: ulid::Ulid::new().to_string(),
            event: "route".into(),
            decision: "error".into(),
            reason: message.clone(),
            ..Default::default()
        });
        Err(InvokeError::Unavailable { message })
    }

    pub fn statuses(&self) -> Vec<ConnectorStatus> {
        self.connectors
            .iter()
            .map(|(id, slot)| match slot {
                Slot::Ready(c) => ConnectorStatus {
                    id: id.clone(),
                    status: "ready",
                    component: c.path.display().to_string(),
                    error: None,
                    contract: Some(c.contract.clone()),
                    info: Some(c.info.clone()),
                    grants: c.ctx.gate.grant_status(),
                },
                Slot::Failed { path, error } => ConnectorStatus {
                    id: id.clone(),
                    status: "failed",
                    component: path.display().to_string(),
                    error: Some(error.clone()),
                    contract: None,
                    info: None,
                    grants: Vec::new(),
                },
            })
            .collect()
    }

    /// Makes every audit row queued so far durable.
    pub fn flush(&self) {
        self.writer.log().flush();
    }
}
