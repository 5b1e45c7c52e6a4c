//! Assembles a running Airlock from a config: data directory, vault, scrubber, audit writer,
//! engine, upstream client and every connector (a connector that fails to load is reported and
//! skipped; the others still load).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::capabilities::auth::GrantAuth;
use crate::capabilities::budget_shares::BudgetShares;
use crate::capabilities::http::{ConnectorGate, GateDeps};
use crate::capabilities::net::Net;
use crate::capabilities::secrets::{SecretValues, prefetch_vault, prefetched, resolve_all};
use crate::cassette::{CassetteMode, Cassettes, GateCassette};
use crate::config::{Config, ConnectorConfig, Route};
use crate::runtime::connector::{InvokeError, LoadedConnector, Op};
use crate::runtime::engine::{EngineOptions, Runtime};
use crate::runtime::shared::ConnectorCtx;
use crate::scrub::Scrubber;
use crate::search::Embedder as _;
use crate::store::audit::AuditEvent;
use crate::store::audit::{AuditLog, AuditWriter};
use crate::store::backend::Store;
use crate::store::vault::Vault;
use crate::sync::{Progress, RunReport, SyncError, Syncer};

/// A connector slot: loaded, or the reason it is not.
#[derive(Clone)]
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
    pub info: Option<crate::model::ConnectorInfo>,
    /// Each grant's breaker, rate budget, pause and cache state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<crate::capabilities::http::GrantStatus>,
    /// Bumped each time a reload replaces this connector's slot.
    pub generation: u64,
    /// Why the last reload could not replace the running version (which keeps serving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
}

/// When the daemon last re-read its config file and whether it could apply it. Connectors that
/// failed to load are not in it: each one's status says so (and only to its own tenant).
#[derive(Clone, Debug, Serialize)]
pub struct LastReload {
    /// RFC 3339, UTC.
    pub at: String,
    /// Why the file as a whole was not applied (the running configuration stayed in force).
    pub error: Option<String>,
}

/// One configured connector: its slot and what it was built from.
struct Entry {
    slot: Slot,
    /// Digest of the connector's config, grants and component bytes: unchanged means no reload.
    print: String,
    generation: u64,
    reload_error: Option<String>,
}

/// What a reload did, connector by connector.
#[derive(Debug, Default, Serialize)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub reloaded: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Connectors whose new version failed to load (the old one keeps serving), with why.
    pub kept: Vec<(String, String)>,
    /// Connectors that failed to load and had no running version.
    pub failed: Vec<(String, String)>,
}

pub struct Airlock {
    /// Swapped whole by a reload; read with [`Airlock::config`].
    config: ArcSwap<Config>,
    pub runtime: Arc<Runtime>,
    /// Swapped per connector by a reload. Callers clone the `Arc` out, so an invocation in
    /// flight finishes on the version it started with.
    connectors: RwLock<BTreeMap<String, Entry>>,
    pub audit: AuditLog,
    pub scrubber: Scrubber,
    /// The store: the data directory's SQLite file or a PostgreSQL database several daemons
    /// share.
    pub store: Store,
    /// Host-owned sync into the store, one run per stream at a time.
    pub syncer: Syncer,
    /// Slots for scheduled sync runs: capped on the node and per tenant, handed out to the
    /// waiting tenants in turn.
    pub sync_slots: Arc<crate::fair_slots::FairSlots>,
    /// Slots for invocations (`[invocations]`): likewise, so one tenant's burst cannot take every
    /// instance of the pool.
    pub invoke_slots: Arc<crate::fair_slots::FairSlots>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Live hits' `check-permission` answers, remembered briefly (per connector, upstream user
    /// and record) across requests.
    pub permission_checks: Arc<crate::search::PermissionCache>,
    /// People's connections to upstreams (`oauth2-user` grants), shared by every such grant.
    pub delegated: Arc<crate::capabilities::delegated::Delegated>,
    /// Semantic search's approximate nearest-neighbour index (when `[search.semantic]` asks for
    /// it): built by [`Airlock::spawn_ann_upkeep`] in `airlock serve`; until then, and in
    /// one-shot commands, queries scan exactly.
    pub ann: Option<Arc<crate::search::ann::AnnIndex>>,
    writer: AuditWriter,
    net: Arc<Net>,
    /// Only `airlock serve --only`-style narrowed starts keep this: a reload loads the same set.
    only: Option<Vec<String>>,
    generations: AtomicU64,
    reloading: tokio::sync::Mutex<()>,
    last_reload: std::sync::Mutex<Option<LastReload>>,
    /// The start's cassette choices, kept so a reload rebuilds a connector on the same one.
    cassettes: Cassettes,
    /// The grants' budgets, and (on a shared store) the task exchanging their shares of each
    /// grant's rate with the other daemons; it stops with the daemon.
    shares: Arc<BudgetShares>,
    _share_exchange: Option<crate::sync::AbortOnDrop>,
}

/// Options for [`Airlock::start`].
pub struct StartOptions<'a> {
    /// Load only these connectors (None: all).
    pub only: Option<&'a [String]>,
    /// Instances that may be alive at once.
    pub max_instances: u32,
    /// Connectors that record to, or replay from, a cassette (the CLI's `--record` and
    /// `--replay`); they keep it across reloads. Others use their config's `replay`.
    pub cassettes: Cassettes,
}

impl Default for StartOptions<'_> {
    fn default() -> Self {
        StartOptions {
            only: None,
            max_instances: 256,
            cassettes: Cassettes::new(),
        }
    }
}

/// The cassette a connector uses: the start's choice, else its config's `replay`.
fn cassette_of(cassettes: &Cassettes, c: &ConnectorConfig) -> Option<CassetteMode> {
    cassettes
        .get(&c.id)
        .cloned()
        .or_else(|| c.replay.clone().map(CassetteMode::Replay))
}

/// What building a connector slot needs besides its config.
struct Loader<'a> {
    runtime: &'a Arc<Runtime>,
    net: &'a Arc<Net>,
    audit: &'a AuditLog,
    scrubber: &'a Scrubber,
    metrics: &'a Arc<crate::metrics::Metrics>,
    cassettes: &'a Cassettes,
    shares: &'a Arc<BudgetShares>,
    delegated: &'a Arc<crate::capabilities::delegated::Delegated>,
}

impl Loader<'_> {
    /// Builds the gate and loads the component of one connector; a failure becomes a `Failed`
    /// slot with the reason, never an error for the whole host.
    async fn slot(
        &self,
        config: &Config,
        c: &ConnectorConfig,
        values: &SecretValues,
        secret_errors: &std::collections::HashMap<crate::config::SecretRef, String>,
    ) -> Slot {
        let grants: Vec<_> = config.grants_for(&c.id).cloned().collect();
        let cassette = match cassette_of(self.cassettes, c) {
            None => None,
            Some(CassetteMode::Record(r)) => Some(GateCassette::Record(r)),
            Some(CassetteMode::Replay(path)) => match crate::cassette::Replay::load(&path) {
                Ok(r) => Some(GateCassette::Replay(Arc::new(r))),
                Err(e) => return self.failed(c, format!("replay: {e}")),
            },
        };
        let replay = matches!(cassette, Some(GateCassette::Replay(_)));
        // The connector's own scrubber: its answers are scanned for its own secrets only (and
        // every value it learns, such as an OAuth token, is registered daemon-wide too).
        let secrets = values.for_grants(&grants);
        let scrubber = self.scrubber.scoped();
        scrubber.add_all(secrets.values());
        let mut auths = Vec::new();
        for g in &grants {
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
                return self.failed(c, format!("grant[{}].auth: {r}: {e}", g.index));
            }
            if let crate::config::AuthConfig::OAuth2User(u) = &g.auth {
                let Some(secret) = values.get(&u.client_secret) else {
                    let r = &u.client_secret;
                    return self.failed(
                        c,
                        format!("grant[{}].auth: {r} could not be resolved", g.index),
                    );
                };
                auths.push(GrantAuth::User(Arc::new(
                    crate::capabilities::delegated::UserGrant::new(
                        &c.id,
                        u.clone(),
                        secret.to_string(),
                        self.net.client_for(g.allow_private, g.tls_ca.as_ref()),
                        self.delegated.clone(),
                        scrubber.clone(),
                    ),
                )));
                continue;
            }
            if let crate::config::AuthConfig::OnBehalfOf(o) = &g.auth {
                let Some(secret) = values.get(&o.client_secret) else {
                    let r = &o.client_secret;
                    return self.failed(
                        c,
                        format!("grant[{}].auth: {r} could not be resolved", g.index),
                    );
                };
                auths.push(GrantAuth::OnBehalfOf(Arc::new(
                    crate::capabilities::on_behalf_of::OboGrant::new(
                        &c.id,
                        o.clone(),
                        secret.to_string(),
                        self.net.client_for(g.allow_private, g.tls_ca.as_ref()),
                        scrubber.clone(),
                    ),
                )));
                continue;
            }
            match GrantAuth::build(&g.auth, values, &scrubber) {
                Ok(a) => auths.push(a),
                Err(e) => return self.failed(c, format!("grant[{}].auth: {e}", g.index)),
            }
        }
        let gate = Arc::new(
            ConnectorGate::new(
                c.id.clone(),
                grants.clone(),
                auths,
                c.limits.clone(),
                GateDeps {
                    net: self.net.clone(),
                    audit: self.audit.clone(),
                    scrubber: scrubber.clone(),
                    metrics: self.metrics.clone(),
                    shares: self.shares.clone(),
                },
            )
            .with_cassette(cassette),
        );
        let ctx = Arc::new(ConnectorCtx {
            id: c.id.clone(),
            settings: c.settings.clone(),
            gate,
            audit: self.audit.clone(),
            scrubber,
            grants,
            secrets,
            metrics: self.metrics.clone(),
            progress: Default::default(),
        });
        let integrity = crate::integrity::Integrity {
            connector: c.id.clone(),
            sha256: c.sha256.clone(),
            trust: config.trust.clone(),
        };
        match LoadedConnector::load(
            self.runtime,
            &c.component,
            c.limits.clone(),
            ctx,
            &integrity,
        )
        .await
        {
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
            Err(error) => self.failed(c, self.scrubber.scrub(&error)),
        }
    }

    fn failed(&self, c: &ConnectorConfig, error: String) -> Slot {
        tracing::error!(connector = %c.id, "not loaded: {error}");
        Slot::Failed {
            path: c.component.clone(),
            error,
        }
    }
}

/// Resolves the secrets the grants of `ids` reference (values are registered with the scrubber).
async fn resolve_secrets(
    store: &Store,
    config: &Config,
    ids: &[&str],
    cassettes: &Cassettes,
    scrubber: &Scrubber,
) -> anyhow::Result<(
    SecretValues,
    std::collections::HashMap<crate::config::SecretRef, String>,
)> {
    let vault = Vault::open(&config.server.data_dir)?;
    // A replaying connector sends nothing upstream, so it needs no secret: replay works where
    // the credentials are not (a connector's CI).
    let replaying = |id: &str| {
        config
            .connector(id)
            .is_some_and(|c| matches!(cassette_of(cassettes, c), Some(CassetteMode::Replay(_))))
    };
    let refs: Vec<_> = config
        .grants
        .iter()
        .filter(|g| ids.contains(&g.connector.as_str()) && !replaying(&g.connector))
        .flat_map(|g| g.auth.secret_refs())
        .collect();
    let stored = prefetch_vault(store, &vault, refs.iter().copied()).await;
    Ok(resolve_all(refs, &prefetched(&stored), scrubber))
}

/// The scheduler's caps from `[scheduler]`.
fn slot_caps(config: &Config) -> crate::fair_slots::Caps {
    crate::fair_slots::Caps {
        max_running: config.scheduler.max_running,
        max_per_tenant: config.scheduler.max_running_per_tenant,
    }
}

/// The invocation caps from `[invocations]`.
fn invoke_caps(config: &Config) -> crate::fair_slots::Caps {
    crate::fair_slots::Caps {
        max_running: config.invocations.max_running,
        max_per_tenant: config.invocations.max_running_per_tenant,
    }
}

/// A digest of everything a connector's slot is built from, so a reload rebuilds only the
/// connectors whose config, grants, tenant or component bytes changed.
fn fingerprint(runtime: &Runtime, config: &Config, c: &ConnectorConfig) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("{c:?}").as_bytes());
    // By content, not position: a grant that only moved in the file (another connector's
    // grant was removed above it) must not rebuild this connector and reset its budgets.
    for g in config.grants_for(&c.id) {
        let mut g = g.clone();
        g.index = 0;
        h.update(format!("{g:?}").as_bytes());
    }
    h.update(format!("{:?}", config.trust).as_bytes());
    // The component (by digest, read once per file version however many connectors use it)
    // and its signature: a new signature (or one removed) is a change too.
    match runtime.components.digest(&c.component) {
        Ok(digest) => h.update(digest.as_bytes()),
        Err(e) => h.update(format!("unreadable: {e}").as_bytes()),
    }
    match std::fs::read(crate::integrity::signature_path(&c.component)) {
        Ok(bytes) => h.update(&bytes),
        Err(e) => h.update(format!("unreadable: {e}").as_bytes()),
    }
    hex::encode(h.finalize())
}

impl Airlock {
    pub async fn start(
        config: Config,
        scrubber: Scrubber,
        opts: StartOptions<'_>,
    ) -> anyhow::Result<Airlock> {
        let data_dir = config.server.data_dir.clone();
        // Opens (and migrates) the store before anything else can fail half-way: the data
        // directory's SQLite file, or the PostgreSQL database of `[store] url`.
        let store = Store::open(&data_dir, config.store.url.as_deref()).await?;
        let only = opts.only.map(<[String]>::to_vec);
        let wanted = |id: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == id));
        let ids: Vec<&str> = config
            .connectors
            .iter()
            .map(|c| c.id.as_str())
            .filter(|id| wanted(id))
            .collect();
        let (values, secret_errors) =
            resolve_secrets(&store, &config, &ids, &opts.cassettes, &scrubber).await?;

        let writer = AuditWriter::start_on(&store, &data_dir, scrubber.clone(), &config.audit)?;
        let audit = writer.log();
        let max_memory = config
            .connectors
            .iter()
            .map(|c| c.limits.memory_bytes)
            .chain([config.limits.memory_bytes])
            .max()
            .unwrap_or(config.limits.memory_bytes);
        let cache_dir = config.server.compile_cache_dir();
        let runtime = Arc::new(Runtime::new(EngineOptions {
            cache_dir: Some(&cache_dir),
            max_memory_bytes: max_memory,
            max_instances: opts.max_instances,
            reservation: config.server.memory_reservation,
        })?);
        let net = Arc::new(Net::new(
            config.resolve.clone(),
            config.limits.connect_timeout,
            &config.outbound,
        ));

        let metrics = crate::metrics::Metrics::new();
        let shares = Arc::new(BudgetShares::new());
        let delegated = Arc::new(crate::capabilities::delegated::Delegated::new(
            store.clone(),
            Vault::open(&data_dir)?,
        ));
        let loader = Loader {
            delegated: &delegated,
            runtime: &runtime,
            net: &net,
            audit: &audit,
            scrubber: &scrubber,
            metrics: &metrics,
            cassettes: &opts.cassettes,
            shares: &shares,
        };
        let mut connectors = BTreeMap::new();
        for c in config.connectors.iter().filter(|c| wanted(&c.id)) {
            let slot = loader.slot(&config, c, &values, &secret_errors).await;
            let entry = Entry {
                slot,
                print: fingerprint(&runtime, &config, c),
                generation: 1,
                reload_error: None,
            };
            connectors.insert(c.id.clone(), entry);
        }
        let sync_slots = crate::fair_slots::FairSlots::new(slot_caps(&config));
        let invoke_slots = crate::fair_slots::FairSlots::new(invoke_caps(&config));
        let share_exchange = store.is_shared().then(|| {
            let task = shares
                .clone()
                .run(store.clone(), crate::store::leases::this_process());
            crate::sync::AbortOnDrop(tokio::spawn(task))
        });
        let ann = config
            .semantic
            .as_ref()
            .filter(|s| s.ann)
            .map(|s| Arc::new(crate::search::ann::AnnIndex::new(&s.model)));
        Ok(Airlock {
            delegated,
            ann,
            permission_checks: Arc::default(),
            sync_slots,
            invoke_slots,
            syncer: Syncer::new(
                store.clone(),
                metrics.clone(),
                audit.clone(),
                config.changes.retention,
            ),
            store,
            metrics,
            config: ArcSwap::from_pointee(config),
            runtime,
            connectors: RwLock::new(connectors),
            audit,
            scrubber,
            writer,
            net,
            only,
            generations: AtomicU64::new(1),
            reloading: tokio::sync::Mutex::new(()),
            last_reload: std::sync::Mutex::new(None),
            cassettes: opts.cassettes,
            _share_exchange: share_exchange,
            shares,
        })
    }

    /// The configuration in force (a reload swaps it whole).
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// A connector's slot as it is now.
    pub fn slot(&self, id: &str) -> Option<Slot> {
        let map = self.connectors.read().unwrap_or_else(|e| e.into_inner());
        map.get(id).map(|e| e.slot.clone())
    }

    /// Every configured connector's id and slot.
    pub fn slots(&self) -> Vec<(String, Slot)> {
        let map = self.connectors.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(id, e)| (id.clone(), e.slot.clone()))
            .collect()
    }

    /// Searches the store and, with `req.live`, every loaded connector (see [`crate::search`]).
    pub async fn search(
        &self,
        req: &crate::search::SearchRequest,
    ) -> anyhow::Result<crate::search::SearchResponse> {
        let config = self.config();
        // Only a live search needs the connectors (at MSP scale thousands of them).
        let slots = if req.live { self.slots() } else { Vec::new() };
        let tenants = if req.live {
            config
                .connectors
                .iter()
                .map(|c| (c.id.clone(), c.tenant.clone()))
                .collect()
        } else {
            Default::default()
        };
        let targets = slots
            .into_iter()
            .map(|(id, slot)| match slot {
                Slot::Ready(c) => (id, Ok(c)),
                Slot::Failed { error, .. } => (id, Err(error)),
            })
            .collect();
        let live = crate::search::Live {
            targets,
            tenants,
            slots: Some(self.invoke_slots.clone()),
        };
        let vectored;
        let req = match (req.mode, &config.semantic) {
            (crate::search::Mode::Keyword, _) => req,
            (_, None) => anyhow::bail!(SemanticOff),
            (_, Some(_)) if req.vector.is_none() => {
                vectored = crate::search::SearchRequest {
                    vector: Some(self.query_vector(&req.query).await?),
                    ..req.clone()
                };
                &vectored
            }
            (_, Some(_)) => req,
        };
        let found = crate::search::search(&self.store, self.ann.as_deref(), live, req).await?;
        // Live hits came from connectors: they leave only once those calls' rows are durable.
        if req.live {
            self.audit_durable().await?;
        }
        Ok(found)
    }

    /// The embedding of a query's text through the `[search.semantic]` connector (an
    /// invocation like any other: grants, budgets, audit under the current call context).
    pub async fn query_vector(&self, text: &str) -> anyhow::Result<crate::search::QueryVector> {
        let config = self.config();
        let cfg = config.semantic.as_ref().ok_or(SemanticOff)?;
        let mut v = self
            .embedder(cfg)
            .embed(vec![text.to_string()])
            .await?
            .into_iter();
        let vector = v.next().ok_or_else(|| anyhow::anyhow!("no query vector"))?;
        Ok(crate::search::QueryVector {
            model: cfg.model.clone(),
            vector,
        })
    }

    pub fn has_connector(&self, id: &str) -> bool {
        let map = self.connectors.read().unwrap_or_else(|e| e.into_inner());
        map.contains_key(id)
    }

    /// The reload generation of a connector's slot (None: not configured).
    pub fn generation(&self, id: &str) -> Option<u64> {
        let map = self.connectors.read().unwrap_or_else(|e| e.into_inner());
        map.get(id).map(|e| e.generation)
    }

    pub fn connector(&self, id: &str) -> Result<Arc<LoadedConnector>, InvokeError> {
        match self.slot(id) {
            Some(Slot::Ready(c)) => Ok(c),
            Some(Slot::Failed { error, .. }) => Err(InvokeError::Unavailable {
                message: format!("connector `{id}` failed to load: {error}"),
            }),
            None => Err(InvokeError::Unavailable {
                message: format!("no connector `{id}` is configured"),
            }),
        }
    }

    /// The streams of a connector (all of them when `only` is None).
    pub fn streams_of(
        &self,
        connector: &str,
        only: Option<&str>,
    ) -> Result<Vec<String>, SyncError> {
        crate::sync::streams_of(self.connector(connector)?.as_ref(), only)
    }

    /// Runs one stream of a loaded connector until it is caught up, rate-limited or fails.
    pub async fn sync_stream(
        &self,
        connector: &str,
        stream: &str,
        full: bool,
        on_progress: impl FnMut(&Progress<'_>),
    ) -> Result<RunReport, SyncError> {
        let c = self.connector(connector)?;
        let run = self.syncer.run_stream(&c, stream, full, on_progress).await;
        // Pages committed before a failure are worth embedding too.
        self.index_semantic(connector).await;
        run
    }

    /// Embeds the connector's new or changed documents when semantic search is configured
    /// (failures are logged: the documents stay pending and the next run retries them).
    pub async fn index_semantic(
        &self,
        connector: &str,
    ) -> Option<crate::search::semantic::IndexReport> {
        let cfg = self.config().semantic.clone()?;
        let embedder = self.embedder(&cfg);
        let ann = self.ann.as_deref();
        let indexed = crate::search::semantic::index(&self.store, &cfg, connector, &embedder, ann);
        match indexed.await {
            Ok(r) => {
                if let Some(ann) = ann.filter(|a| a.is_ready())
                    && let Err(e) = ann.upkeep(&self.store, connector).await
                {
                    tracing::warn!(connector, "semantic index upkeep failed: {e:#}");
                }
                if r.documents > 0 {
                    tracing::info!(
                        connector,
                        documents = r.documents,
                        chunks = r.chunks,
                        embedded = r.embedded,
                        "semantic index updated"
                    );
                }
                Some(r)
            }
            Err(e) => {
                tracing::warn!(
                    connector,
                    "semantic indexing failed (retried on the next run): {e:#}"
                );
                None
            }
        }
    }

    /// Builds the approximate index from the store in the background (queries scan exactly
    /// until it is done), then checks each connector's part every minute for drift from the
    /// store (deleted documents, chunks another daemon wrote) and rebuilds what drifted.
    pub fn spawn_ann_upkeep(self: &Arc<Self>) {
        let Some(ann) = self.ann.clone() else {
            return;
        };
        let a = Arc::downgrade(self);
        let store = self.store.clone();
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            match ann.build(&store).await {
                Ok(r) => tracing::info!(
                    connectors = r.connectors,
                    chunks = r.chunks,
                    seconds = t.elapsed().as_secs_f64(),
                    "semantic index built"
                ),
                Err(e) => {
                    tracing::warn!("semantic index not built (exact search stays): {e:#}");
                    return;
                }
            }
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(a) = a.upgrade() else {
                    return;
                };
                let ids: Vec<String> = a.config().connectors.iter().map(|c| c.id.clone()).collect();
                drop(a);
                for id in ids {
                    if let Err(e) = ann.upkeep(&store, &id).await {
                        tracing::warn!(connector = %id, "semantic index upkeep failed: {e:#}");
                    }
                }
            }
        });
    }

    /// The configured embedding connector's `embed` action, called like any invocation.
    fn embedder<'a>(&'a self, cfg: &crate::config::SemanticConfig) -> ConnectorEmbedder<'a> {
        ConnectorEmbedder {
            a: self,
            connector: cfg.connector.clone(),
            model: cfg.model.clone(),
        }
    }

    /// Re-reads the config file and rebuilds only the connectors whose config, grants or
    /// component changed. A connector whose new version fails to load keeps its running version
    /// (and says why in its status); one whose config is broken as a whole changes nothing.
    pub async fn reload(&self) -> anyhow::Result<ReloadReport> {
        let _one_at_a_time = self.reloading.lock().await;
        let result = self.reload_now().await;
        let error = result
            .as_ref()
            .err()
            .map(|e| self.scrubber.scrub(&format!("{e:#}")));
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(LastReload { at, error });
        result
    }

    /// How the last reload ended; None before the first.
    pub fn last_reload(&self) -> Option<LastReload> {
        self.last_reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// [`Airlock::reload`]'s work, one at a time.
    async fn reload_now(&self) -> anyhow::Result<ReloadReport> {
        let old = self.config();
        let mut new = Config::load(&old.path)
            .map_err(|e| anyhow::anyhow!("{e}; the running configuration stays in force"))?;
        let (n, o) = (&new.server, &old.server);
        if n.listen != o.listen
            || n.listen_backlog != o.listen_backlog
            || n.data_dir != o.data_dir
            || n.compile_cache_dir() != o.compile_cache_dir()
            || n.memory_reservation != o.memory_reservation
        {
            tracing::warn!(
                "config reload: [server] listen, listen_backlog, data_dir, compile_cache and memory_reservation take effect only on restart; keeping {} and {}",
                old.server.listen,
                old.server.data_dir.display()
            );
            new.server = old.server.clone();
        }
        // The pools and the /mcp host list are built at start; say so rather than half-apply.
        if new.outbound != old.outbound || new.server.public_hosts != old.server.public_hosts {
            tracing::warn!(
                "config reload: [outbound] and [server] public_hosts take effect only on restart; \
                 keeping the running ones"
            );
            new.outbound = old.outbound.clone();
            new.server.public_hosts = old.server.public_hosts.clone();
        }
        let wanted = |id: &str| self.only.as_ref().is_none_or(|o| o.iter().any(|x| x == id));
        let current: BTreeMap<String, String> = {
            let map = self.connectors.read().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .map(|(id, e)| (id.clone(), e.print.clone()))
                .collect()
        };
        let mut report = ReloadReport::default();
        let mut changed = Vec::new();
        for c in new.connectors.iter().filter(|c| wanted(&c.id)) {
            let print = fingerprint(&self.runtime, &new, c);
            match current.get(&c.id) {
                Some(p) if *p == print => report.unchanged.push(c.id.clone()),
                _ => changed.push((c, print)),
            }
        }
        let ids: Vec<&str> = changed.iter().map(|(c, _)| c.id.as_str()).collect();
        let (values, secret_errors) =
            resolve_secrets(&self.store, &new, &ids, &self.cassettes, &self.scrubber).await?;
        let loader = Loader {
            delegated: &self.delegated,
            runtime: &self.runtime,
            net: &self.net,
            audit: &self.audit,
            scrubber: &self.scrubber,
            metrics: &self.metrics,
            cassettes: &self.cassettes,
            shares: &self.shares,
        };
        let mut built = Vec::new();
        for (c, print) in changed {
            let slot = loader.slot(&new, c, &values, &secret_errors).await;
            built.push((c.id.clone(), print, slot));
        }

        // Swap: the map and the config change together, under the write lock, so no caller sees
        // a connector of the new config checked against the old one's tenants and routes.
        let mut map = self.connectors.write().unwrap_or_else(|e| e.into_inner());
        // A connector back at the version that is serving (the broken file or config was put
        // back as it was) has nothing left to report.
        for id in &report.unchanged {
            if let Some(e) = map.get_mut(id)
                && e.print == current.get(id).cloned().unwrap_or_default()
                && e.reload_error.take().is_some()
            {
                tracing::info!(connector = %id, "reload: back to the running version; the earlier reload error is cleared");
            }
        }
        for (id, print, slot) in built {
            let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
            match (map.get_mut(&id), slot) {
                (Some(e), Slot::Failed { error, .. }) if matches!(e.slot, Slot::Ready(_)) => {
                    tracing::error!(connector = %id, "reload failed, the running version keeps serving: {error}");
                    e.reload_error = Some(error.clone());
                    report.kept.push((id, error));
                }
                (Some(e), slot) => {
                    if let Slot::Failed { error, .. } = &slot {
                        report.failed.push((id.clone(), error.clone()));
                    } else {
                        report.reloaded.push(id.clone());
                    }
                    *e = Entry {
                        slot,
                        print,
                        generation,
                        reload_error: None,
                    };
                }
                (None, slot) => {
                    if let Slot::Failed { error, .. } = &slot {
                        report.failed.push((id.clone(), error.clone()));
                    } else {
                        report.added.push(id.clone());
                    }
                    map.insert(
                        id,
                        Entry {
                            slot,
                            print,
                            generation,
                            reload_error: None,
                        },
                    );
                }
            }
        }
        let keep: Vec<&str> = new
            .connectors
            .iter()
            .map(|c| c.id.as_str())
            .filter(|id| wanted(id))
            .collect();
        map.retain(|id, _| {
            let stays = keep.contains(&id.as_str());
            if !stays {
                report.removed.push(id.clone());
            }
            stays
        });
        self.sync_slots.set_caps(slot_caps(&new));
        self.invoke_slots.set_caps(invoke_caps(&new));
        self.config.store(Arc::new(new));
        drop(map);
        self.audit.record(AuditEvent {
            connector: "airlock".into(),
            invocation: ulid::Ulid::new().to_string(),
            event: "reload".into(),
            decision: if report.kept.is_empty() && report.failed.is_empty() {
                "ok".into()
            } else {
                "error".into()
            },
            reason: report.summary(),
            principal: crate::runtime::context::current_principal(),
            ..Default::default()
        });
        tracing::info!("config reload: {}", report.summary());
        Ok(report)
    }

    /// Runs an operation on a connector, or an action on a route.
    pub async fn invoke(&self, id: &str, op: Op) -> Result<serde_json::Value, InvokeError> {
        self.check_input(id, &op)?;
        let config = self.config();
        // A turn among the tenant's invocations (a route spanning tenants counts as its own).
        let tenant = config.tenant_of(id).unwrap_or("").to_string();
        let wait = config.invocations.queue_wait;
        let _slot = tokio::time::timeout(wait, self.invoke_slots.acquire(&tenant))
            .await
            .map_err(|_| {
                InvokeError::Connector(crate::model::ConnectorError {
                    code: "rate-limited".into(),
                    message: format!(
                        "tenant `{tenant}` already runs as many invocations as it may at once \
                         ([invocations] max_running_per_tenant, or the node's max_running) and \
                         none finished within {}; try again shortly",
                        humantime::format_duration(wait)
                    ),
                    retry_after: Some(1),
                })
            })?;
        let result = match config.route(id) {
            Some(route) => self.invoke_route(route, op).await,
            None => self.connector(id)?.invoke(op).await,
        };
        // A result (an action's outcome, data fetched live, an error naming what failed) leaves
        // the host only once the rows of what produced it are durable. Callers waiting together
        // share one commit of the writer (group commit).
        self.audit_durable().await?;
        result
    }

    /// Resolves a secret reference now (vault or environment), so a rotation takes effect at
    /// once, and registers the value with the scrubber. The error names the reference, never
    /// a value.
    pub async fn resolve_secret(
        &self,
        r: &crate::capabilities::grant::SecretRef,
    ) -> Result<String, String> {
        let vault = Vault::open(&self.config().server.data_dir).map_err(|e| format!("{e:#}"))?;
        let value = crate::capabilities::secrets::resolve_in(&self.store, &vault, r).await?;
        self.scrubber.add(&value);
        Ok(value)
    }

    /// The pooled outbound clients (with the gate's address rules), for the host's own
    /// deliveries such as webhooks.
    pub fn net(&self) -> &Arc<Net> {
        &self.net
    }

    /// Whether the audit log can be written (otherwise the gate refuses every request).
    pub fn audit_available(&self) -> bool {
        self.audit.available()
    }

    /// Waits until every audit row queued so far is committed; `unavailable` when the audit
    /// log cannot be written.
    pub async fn audit_durable(&self) -> Result<(), InvokeError> {
        let audit = self.audit.clone();
        let durable = tokio::task::spawn_blocking(move || audit.flush_durable()).await;
        match durable {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(InvokeError::Unavailable {
                message: e.to_string(),
            }),
            Err(e) => Err(InvokeError::Unavailable {
                message: format!("audit flush: {e}"),
            }),
        }
    }

    /// An action's input against the schema its connector declares (for a route: the first of
    /// its connectors that is loaded); other operations pass.
    pub fn check_input(&self, id: &str, op: &Op) -> Result<(), InvokeError> {
        let Op::Action { name, input } = op else {
            return Ok(());
        };
        let config = self.config();
        let candidates: Vec<String> = match config.route(id) {
            Some(route) => route.connectors.clone(),
            None => vec![id.to_string()],
        };
        match candidates.iter().find_map(|c| self.connector(c).ok()) {
            Some(c) => c.check_input(name, input),
            None => Ok(()),
        }
    }

    /// Failover: tries each connector of the route in order until one answers, and reports which
    /// one did and why each earlier one was skipped. A caller's error (input the action refuses)
    /// stops at once: it would fail everywhere. Everything else moves on: timeouts, connection
    /// and server errors, rate limits, a provider's content-filter refusal, an empty reply.
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
            let started = std::time::Instant::now();
            let attempt = match self.connector(id) {
                Ok(c) => c.action(route.action.clone(), input.clone()).await,
                Err(e) => Err(e),
            };
            let provider = crate::metrics::RouteProviderLabels {
                route: route.name.clone(),
                connector: id.clone(),
            };
            self.metrics
                .route_attempt_seconds
                .get_or_create(&provider)
                .observe(started.elapsed().as_secs_f64());
            let outcome = match &attempt {
                Ok(_) => "ok",
                Err(e) => failover_reason(e),
            };
            self.metrics
                .route_attempts
                .get_or_create(&crate::metrics::RouteLabels {
                    route: route.name.clone(),
                    connector: id.clone(),
                    outcome: outcome.into(),
                })
                .inc();
            match attempt {
                Ok(result) => {
                    self.count_tokens(id, &result);
                    self.audit.record(AuditEvent {
                        connector: route.name.clone(),
                        invocation: ulid::Ulid::new().to_string(),
                        event: "route".into(),
                        decision: "ok".into(),
                        reason: format!(
                            "answered by `{id}` after {} skipped: {}",
                            failed.len(),
                            serde_json::Value::Array(failed.clone())
                        ),
                        principal: crate::runtime::context::current_principal(),
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
                Err(e) => failed.push(
                    serde_json::json!({ "connector": id, "reason": outcome, "error": e.to_string() }),
                ),
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
            principal: crate::runtime::context::current_principal(),
            ..Default::default()
        });
        Err(InvokeError::Unavailable { message })
    }

    /// Counts the tokens an answer reports (`usage.prompt_tokens`, `usage.completion_tokens`).
    fn count_tokens(&self, connector: &str, result: &serde_json::Value) {
        for (kind, field) in [
            ("prompt", "prompt_tokens"),
            ("completion", "completion_tokens"),
        ] {
            if let Some(n) = result["usage"][field].as_u64() {
                let labels = crate::metrics::TokenLabels {
                    connector: connector.to_string(),
                    kind: kind.into(),
                };
                self.metrics.llm_tokens.get_or_create(&labels).inc_by(n);
            }
        }
    }

    pub fn statuses(&self) -> Vec<ConnectorStatus> {
        let map = self.connectors.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(id, e)| match &e.slot {
                Slot::Ready(c) => ConnectorStatus {
                    id: id.clone(),
                    status: "ready",
                    component: c.path.display().to_string(),
                    error: None,
                    contract: Some(c.contract.clone()),
                    info: Some(c.info.clone()),
                    grants: c.ctx.gate.grant_status(),
                    generation: e.generation,
                    reload_error: e.reload_error.clone(),
                },
                Slot::Failed { path, error } => ConnectorStatus {
                    id: id.clone(),
                    status: "failed",
                    component: path.display().to_string(),
                    error: Some(error.clone()),
                    contract: None,
                    info: None,
                    grants: Vec::new(),
                    generation: e.generation,
                    reload_error: e.reload_error.clone(),
                },
            })
            .collect()
    }

    /// Hands this process's shares of the grants' rates back on a shared store, so the daemons
    /// take them now rather than when the rows expire: a daemon that stops, and a CLI command
    /// that ran connectors, call this on the way out. The exchange stops first, so no later
    /// round takes the shares again. A failure is logged, not returned: the rows expire anyway.
    pub async fn leave_shares(&self) {
        let Some(exchange) = &self._share_exchange else {
            return;
        };
        exchange.0.abort();
        if let Err(e) = self
            .store
            .leave_shares(&crate::store::leases::this_process())
            .await
        {
            tracing::warn!("could not hand back the rate shares: {e:#}");
        }
    }

    /// Makes every audit row queued so far durable.
    pub fn flush(&self) {
        self.writer.log().flush();
    }

    /// Like [`Airlock::flush`], then signs the audit chain's head (a clean stop does this).
    pub fn flush_and_checkpoint(&self) {
        self.writer.log().flush_and_checkpoint();
    }
}

impl ReloadReport {
    /// One line for the log and the audit row.
    pub fn summary(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            }
        };
        let pairs = |v: &[(String, String)]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.iter()
                    .map(|(id, e)| format!("{id} ({e})"))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        format!(
            "added {}; reloaded {}; removed {}; unchanged {}; kept running (new version failed) {}; failed {}",
            list(&self.added),
            list(&self.reloaded),
            list(&self.removed),
            self.unchanged.len(),
            pairs(&self.kept),
            pairs(&self.failed)
        )
    }
}

/// Why a route moved past a provider, for its answer and metrics. Connectors mark a content
/// filter's refusal and an empty reply by starting their `upstream` message with
/// `content-filter:` or `empty-reply:` (the OpenAI-compatible connector does).
fn failover_reason(e: &InvokeError) -> &'static str {
    match e {
        InvokeError::Timeout { .. } => "timeout",
        InvokeError::Unavailable { .. } => "unavailable",
        InvokeError::Connector(c) => match c.code.as_str() {
            "rate-limited" => "rate-limited",
            "unauthorized" => "unauthorized",
            "forbidden" => "forbidden",
            "upstream" if c.message.starts_with("content-filter:") => "content-filter",
            "upstream" if c.message.starts_with("empty-reply:") => "empty-reply",
            "upstream" if c.message.contains("Timeout") || c.message.contains("timed out") => {
                "timeout"
            }
            "upstream" if c.message.contains("HTTP 5") => "server-error",
            "upstream" => "upstream",
            _ => "error",
        },
        _ => "error",
    }
}

/// Semantic or hybrid search was asked for but `[search.semantic]` is not configured.
#[derive(Debug)]
pub struct SemanticOff;

impl std::fmt::Display for SemanticOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("semantic search is not configured ([search.semantic] in the config file)")
    }
}

impl std::error::Error for SemanticOff {}

/// Texts embedded by a connector's `embed` action through [`Airlock::invoke`], so the gate's
/// grants, budgets and audit apply to every call.
struct ConnectorEmbedder<'a> {
    a: &'a Airlock,
    connector: String,
    model: String,
}

impl crate::search::Embedder for ConnectorEmbedder<'_> {
    fn embed(
        &self,
        texts: Vec<String>,
    ) -> futures::future::BoxFuture<'_, anyhow::Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            let n = texts.len();
            let input = serde_json::json!({"input": texts, "model": self.model});
            let op = Op::Action {
                name: "embed".into(),
                input,
            };
            let out = self.a.invoke(&self.connector, op).await?;
            let vectors: Vec<Vec<f32>> = serde_json::from_value(out["embeddings"].clone())
                .map_err(|e| {
                    anyhow::anyhow!("`{}` embed answered no vectors: {e}", self.connector)
                })?;
            if vectors.len() != n {
                anyhow::bail!(
                    "`{}` embed answered {} vectors for {n} texts",
                    self.connector,
                    vectors.len()
                );
            }
            Ok(vectors)
        })
    }
}
