//! `airlock.toml`: connectors, grants, limits. Parsed with serde + toml and validated so that every
//! error names the file and the offending key.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::capabilities::egress::ProxySettings;
use crate::capabilities::grant::{
    BasicPart, ExactPaths, HostPattern, MethodSet, PathPrefix, looks_like_reference,
};
pub use crate::capabilities::net::OutboundSettings;
use crate::capabilities::trust::{CaBundle, TrustSettings};
// Each part owns the types of its section; this module parses the file into them.
pub use crate::capabilities::grant::{AuthConfig, Grant, Resilience, SecretRef};
pub use crate::limits::Limits;
pub use hook::{HookKind, InboundHook, Subscribe};
pub use oauth::{GroupsOverage, OAuth, OwnServer, SCOPES as OAUTH_SCOPES, UpstreamSignIn};
pub use scheduler::SchedulerConfig;
pub use store::StoreConfig;
pub use telemetry::TelemetryConfig;
pub use user_auth::callback_path;
pub use webhook::Webhook;

mod ask;
mod hook;
mod invocations;
mod oauth;
mod scheduler;
mod semantic;
pub use ask::AskConfig;
pub use invocations::InvocationsConfig;
pub use semantic::SemanticConfig;
pub mod store;
pub mod telemetry;
mod user_auth;
mod webhook;

/// A configuration error. The message always names the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

/// `[[route]]`: an action served by the first connector instance in `connectors` that succeeds.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub action: String,
    pub connectors: Vec<String>,
    /// Every connector of the route reaches only local addresses (checked at load), so what
    /// is sent to the route never leaves the machine or its private network.
    pub local_only: bool,
}

#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub id: String,
    pub component: PathBuf,
    pub settings: BTreeMap<String, String>,
    pub limits: Limits,
    /// Scheduled sync in `airlock serve` (none: only on demand).
    pub sync: Option<SyncSchedule>,
    /// The tenant the instance belongs to (`default` unless set): only that tenant's
    /// principals see it, its documents and its audit rows through the API.
    pub tenant: String,
    /// Answer the connector's upstream requests from this cassette file (`replay = "FILE"`)
    /// instead of the network; the CLI's `--replay`/`--record` choose at start instead (see
    /// [`crate::app::StartOptions`]).
    pub replay: Option<PathBuf>,
    /// The SHA-256 the component must have (lowercase hex); anything else is refused.
    pub sha256: Option<String>,
    /// `/readyz` answers 503 while this connector is not loaded (`required = true`); the others
    /// are named in its answer but do not make the daemon unready.
    pub required: bool,
    /// `hook = {...}`: the upstream pushes change notifications (webhooks in).
    pub hook: Option<InboundHook>,
    /// `permissions`: who may read the connector's records that carry no ACL.
    pub permissions: Permissions,
    /// `[connector.users]`: a principal's email (lowercase) -> its user id upstream (e.g. a
    /// Confluence accountId); the principal then also reads records whose ACL lists
    /// `user:<id>`, and live results are checked for that id.
    pub users: BTreeMap<String, String>,
    /// `permission_check_ttl`: how long a live hit's `check-permission` answer is remembered
    /// for the same upstream user (zero: never; at most an hour).
    pub permission_check_ttl: Duration,
    /// `identity_ttl`: how long a principal's identities resolved through the connector's
    /// `resolve-identity` action are kept (zero: never resolved; at most a day).
    pub identity_ttl: Duration,
}

/// `permissions = "per-record" | "tenant"`: what a record without an ACL means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permissions {
    /// Only the principals its ACL lists may read a record; one without an ACL is nobody's
    /// (fail closed). Live results without an ACL are checked upstream or dropped.
    #[default]
    PerRecord,
    /// Every principal of the tenant may read the records that carry no ACL: an explicit
    /// opt-out for connectors whose upstream permissions are not modelled.
    Tenant,
}

/// `[connector.users]` checked: emails as keys (kept lowercase), non-empty ids without spaces.
fn users(raw: &BTreeMap<String, String>, key: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (email, id) in raw {
        let email = email.trim().to_lowercase();
        if !email.contains('@') || email.chars().any(char::is_whitespace) {
            return Err(format!("{key}.users: `{email}` is not an email address"));
        }
        let id = id.trim();
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{key}.users.\"{email}\": the upstream user id is empty or has spaces"
            ));
        }
        if out.insert(email.clone(), id.to_string()).is_some() {
            return Err(format!("{key}.users: `{email}` is listed twice"));
        }
    }
    Ok(out)
}

/// The tenant of a connector that does not name one.
pub const DEFAULT_TENANT: &str = "default";

/// `[connector.sync]`: how often `airlock serve` syncs which streams.
#[derive(Debug, Clone)]
pub struct SyncSchedule {
    pub interval: Duration,
    /// None: every stream the connector offers.
    pub streams: Option<Vec<String>>,
}

impl ServerConfig {
    /// Where compiled components are kept: `compile_cache`, else `compile-cache` in the data
    /// directory (decided here, after `AIRLOCK_DATA_DIR` may have moved the data directory).
    pub fn compile_cache_dir(&self) -> PathBuf {
        self.compile_cache
            .clone()
            .unwrap_or_else(|| self.data_dir.join("compile-cache"))
    }
}

/// `[server] listen_backlog` when unset: room for a burst of a thousand clients connecting at
/// once (the 128 of `listen(2)`'s usual default overflowed under `make bench`'s burst).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `listen_backlog`: connections the kernel queues before the daemon accepts them (default
    /// 1024, capped by the kernel's `net.core.somaxconn`). A burst larger than the queue loses
    /// SYNs, and each lost one costs its client a one-second retransmit.
    pub listen_backlog: u32,
    /// `metrics_token`: a bearer value `/metrics` requires (an admin API token works too). Unset:
    /// open on a loopback `listen`, admin token required otherwise.
    pub metrics_token: Option<SecretRef>,
    pub data_dir: PathBuf,
    /// Drop-in directory: each `NAME.wasm` in it that no `[[connector]]` names is loaded as
    /// connector `NAME` (default tenant, no settings, and only the grants that name it).
    pub connectors_dir: Option<PathBuf>,
    /// `compile_cache`: where compiled components are kept (absolute). None: `compile-cache`
    /// in the data directory (see [`ServerConfig::compile_cache_dir`]).
    pub compile_cache: Option<PathBuf>,
    /// `public_hosts`: names `/mcp` answers to besides loopback and the listen address (the
    /// `Host` a reverse proxy or a DNS name in front of the daemon sends).
    pub public_hosts: Vec<String>,
    /// `cors_origins`: web origins whose pages may call the REST API and `/mcp` from a browser
    /// (with a bearer token; never cookies). None by default.
    pub cors_origins: Vec<String>,
    /// `memory_reservation`: the address space each instance-pool slot reserves (read at start).
    pub memory_reservation: crate::limits::MemoryReservation,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerConfig,
    pub limits: Limits,
    pub connectors: Vec<ConnectorConfig>,
    pub grants: Vec<Grant>,
    pub routes: Vec<Route>,
    /// Host name overrides (like curl's `--resolve`): name -> addresses.
    pub resolve: BTreeMap<String, Vec<IpAddr>>,
    /// `[trust]`: the keys components may be signed with, and whether they must be.
    pub trust: crate::integrity::Trust,
    /// `[audit]`: the writer's queue and the chain's signed checkpoints.
    pub audit: crate::store::audit::AuditSettings,
    pub approvals: ApprovalsConfig,
    pub changes: ChangesConfig,
    /// `[[webhook]]`: receivers the change feed is pushed to.
    pub webhooks: Vec<Webhook>,
    /// `[outbound]`: trusted CAs and the egress proxy, for every upstream connection.
    pub outbound: OutboundSettings,
    /// `[oauth]`: access tokens from the company's identity provider (MCP authorization).
    pub oauth: Option<OAuth>,
    /// `[scheduler]`: how many scheduled sync runs go at once.
    pub scheduler: SchedulerConfig,
    /// `[invocations]`: how many invocations run at once, on the node and per tenant.
    pub invocations: InvocationsConfig,
    /// `[store]`: the SQLite file of the data directory, or a shared PostgreSQL database.
    pub store: StoreConfig,
    /// `[search.semantic]`: the embedding connector and model (None: semantic search is off).
    pub semantic: Option<SemanticConfig>,
    /// `[search.ask]`: the chat connector that answers from passages (None: `ask` is off).
    pub ask: Option<AskConfig>,
    /// `[telemetry]` and the OpenTelemetry environment: where spans are exported (OTLP/HTTP).
    pub telemetry: TelemetryConfig,
}

/// `[changes]`: how long the change feed keeps what it recorded.
#[derive(Debug, Clone)]
pub struct ChangesConfig {
    pub retention: Duration,
}

impl Default for ChangesConfig {
    fn default() -> Self {
        ChangesConfig {
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// `[approvals]`: who may decide a pending write.
#[derive(Debug, Clone, Default)]
pub struct ApprovalsConfig {
    /// Whether the principal who asked for a write may approve it (off: a second person must).
    pub allow_self_approval: bool,
}

// ---- raw (as written in the file) -------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default, rename = "connector")]
    connectors: Vec<RawConnector>,
    #[serde(default, rename = "grant")]
    grants: Vec<RawGrant>,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
    #[serde(default)]
    resolve: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    trust: RawTrust,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    approvals: RawApprovals,
    #[serde(default)]
    changes: RawChanges,
    #[serde(default)]
    scheduler: scheduler::RawScheduler,
    #[serde(default)]
    invocations: invocations::RawInvocations,
    #[serde(default)]
    store: store::RawStore,
    #[serde(default)]
    search: semantic::RawSearch,
    #[serde(default, rename = "webhook")]
    webhooks: Vec<webhook::RawWebhook>,
    #[serde(default)]
    outbound: RawOutbound,
    oauth: Option<oauth::RawOAuth>,
    #[serde(default)]
    telemetry: telemetry::RawTelemetry,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    ca_file: Option<String>,
    system_roots: Option<bool>,
    proxy: Option<String>,
    no_proxy: Option<Vec<String>>,
    proxy_from_env: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChanges {
    retention: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    require_signature: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    queue_rows: Option<usize>,
    checkpoint_rows: Option<u64>,
    checkpoint_interval: Option<String>,
    checkpoint_sink: Option<String>,
    durability: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApprovals {
    #[serde(default)]
    allow_self_approval: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    listen_backlog: Option<u32>,
    data_dir: Option<String>,
    connectors_dir: Option<String>,
    compile_cache: Option<String>,
    metrics_token: Option<String>,
    #[serde(default)]
    public_hosts: Vec<String>,
    #[serde(default)]
    cors_origins: Vec<String>,
    memory_reservation: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    timeout: Option<String>,
    memory_mib: Option<u64>,
    max_response_bytes: Option<u64>,
    max_request_bytes: Option<u64>,
    connect_timeout: Option<String>,
    first_byte_timeout: Option<String>,
    denial_budget: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnector {
    id: String,
    component: String,
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
    #[serde(default)]
    limits: RawLimits,
    sync: Option<RawSync>,
    tenant: Option<String>,
    replay: Option<String>,
    sha256: Option<String>,
    #[serde(default)]
    required: bool,
    hook: Option<hook::RawHook>,
    #[serde(default)]
    permissions: Permissions,
    #[serde(default)]
    users: BTreeMap<String, String>,
    permission_check_ttl: Option<String>,
    identity_ttl: Option<String>,
}

/// How long a live hit's `check-permission` answer is remembered unless the connector says.
pub const DEFAULT_PERMISSION_CHECK_TTL: Duration = Duration::from_secs(30);

/// How long resolved upstream identities are kept unless the connector says.
pub const DEFAULT_IDENTITY_TTL: Duration = Duration::from_secs(300);

/// A connector's TTL setting `name` checked: a duration of at most `max` (`max_shown` in the
/// error), `"0s"` for none; `default` when absent.
fn ttl_setting(
    raw: Option<&str>,
    key: &str,
    name: &str,
    (default, max, max_shown): (Duration, Duration, &str),
) -> Result<Duration, String> {
    let Some(s) = raw else {
        return Ok(default);
    };
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{key}.{name}: `{s}` is not a duration like \"30s\" ({e})"))?;
    if d > max {
        return Err(format!("{key}.{name}: at most {max_shown}"));
    }
    Ok(d)
}

/// `permission_check_ttl` checked: a duration of at most an hour, `"0s"` to remember nothing.
fn check_ttl(raw: Option<&str>, key: &str) -> Result<Duration, String> {
    let limits = (
        DEFAULT_PERMISSION_CHECK_TTL,
        Duration::from_secs(3600),
        "1h",
    );
    ttl_setting(raw, key, "permission_check_ttl", limits)
}

/// `identity_ttl` checked: at most a day (a person removed from a group upstream must lose it
/// within a day), `"0s"` to resolve nothing.
fn identity_ttl(raw: Option<&str>, key: &str) -> Result<Duration, String> {
    let limits = (DEFAULT_IDENTITY_TTL, Duration::from_secs(86_400), "24h");
    ttl_setting(raw, key, "identity_ttl", limits)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    interval: String,
    streams: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    connector: String,
    name: Option<String>,
    url: Option<String>,
    scheme: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path_prefix: Option<String>,
    methods: Option<Vec<String>>,
    #[serde(default)]
    allow_private: bool,
    #[serde(default)]
    reveal: bool,
    #[serde(default)]
    writes: bool,
    #[serde(default)]
    writes_preapproved: bool,
    exact_paths: Option<Vec<String>>,
    #[serde(default)]
    allow_wildcard_credentials: bool,
    #[serde(default)]
    allow_insecure: bool,
    auth: Option<RawAuth>,
    rate: Option<RawRate>,
    concurrency: Option<u32>,
    retry: Option<RawRetry>,
    breaker: Option<RawBreaker>,
    cache_ttl: Option<String>,
    tls: Option<RawGrantTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrantTls {
    ca_file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    per_second: Option<f64>,
    burst: Option<u32>,
    background_share: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: Option<u32>,
    backoff: Option<String>,
    max_backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    failures: Option<u32>,
    cooldown: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    action: String,
    connectors: Vec<String>,
    #[serde(default)]
    local_only: bool,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum RawAuth {
    None,
    Basic {
        username: String,
        password: String,
    },
    Bearer {
        token: String,
    },
    Header {
        name: String,
        value: String,
    },
    #[serde(rename = "oauth2")]
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    },
    #[serde(rename = "oauth2-user")]
    OAuth2User(user_auth::RawUserAuth),
    #[serde(rename = "oauth2-obo")]
    OnBehalfOf {
        token_url: String,
        client_id: String,
        client_secret: String,
        #[serde(default)]
        scopes: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            message: format!("cannot read config: {e}"),
        })?;
        let mut config = Config::parse(&text, path)?;
        config.apply_env_overrides()?;
        Ok(config)
    }

    /// `AIRLOCK_LISTEN`, `AIRLOCK_DATA_DIR` and `AIRLOCK_STORE_URL` override `[server] listen`,
    /// `data_dir` and `[store] url` (for containers and service managers); applied on every load, so a reload keeps them.
    fn apply_env_overrides(&mut self) -> Result<(), ConfigError> {
        let err = |message: String| ConfigError {
            file: self.path.display().to_string(),
            message,
        };
        if let Ok(v) = std::env::var("AIRLOCK_LISTEN") {
            self.server.listen = v.parse().map_err(|_| {
                err(format!(
                    "AIRLOCK_LISTEN: `{v}` is not an address like 127.0.0.1:7700"
                ))
            })?;
        }
        // The proxy environment is read here, not in `parse`, so the library's callers and
        // tests that parse a text get only what it says.
        if self.outbound.proxy_from_env && !self.outbound.proxy.is_set() {
            self.outbound.proxy = ProxySettings::from_env().map_err(&err)?;
        }
        self.telemetry
            .apply_env(|k| std::env::var(k).ok())
            .map_err(&err)?;
        if let Ok(v) = std::env::var("AIRLOCK_STORE_URL") {
            self.store.url = store::parse_url("AIRLOCK_STORE_URL", &v).map_err(&err)?;
        }
        if let Some(v) = std::env::var_os("AIRLOCK_DATA_DIR").filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(v);
            self.server.data_dir = std::path::absolute(&dir).map_err(|e| {
                err(format!(
                    "AIRLOCK_DATA_DIR: cannot resolve {}: {e}",
                    dir.display()
                ))
            })?;
        }
        Ok(())
    }

    /// Parses config text; `path` is used for messages and to resolve relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let err = |message: String| ConfigError {
            file: file.clone(),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| err(describe_toml_error(&e)))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };

        let listen = raw.server.listen.as_deref().unwrap_or("127.0.0.1:7700");
        let listen: SocketAddr = listen.parse().map_err(|_| {
            err(format!(
                "server.listen: `{listen}` is not an address like 127.0.0.1:7700"
            ))
        })?;
        let listen_backlog = match raw.server.listen_backlog {
            None => DEFAULT_LISTEN_BACKLOG,
            Some(n @ 1..=65535) => n,
            Some(n) => {
                return Err(err(format!(
                    "server.listen_backlog: {n} is out of range (1 to 65535; default {DEFAULT_LISTEN_BACKLOG})"
                )));
            }
        };
        let memory_reservation = match raw.server.memory_reservation.as_deref() {
            None => crate::limits::MemoryReservation::default(),
            Some(text) => crate::limits::MemoryReservation::parse(text).ok_or_else(|| {
                err(format!(
                    "server.memory_reservation: `{text}` is not \"limit\" (the default: each pool slot reserves the memory limit) or \"4GiB\" (each slot reserves 4 GiB of address space: faster guest code)"
                ))
            })?,
        };
        let data_dir = base.join(raw.server.data_dir.as_deref().unwrap_or(".airlock"));
        // Absolute, so the compile cache (which insists) and messages do not depend on the cwd.
        let data_dir = std::path::absolute(&data_dir).map_err(|e| {
            err(format!(
                "server.data_dir: cannot resolve {}: {e}",
                data_dir.display()
            ))
        })?;

        let limits = apply_limits(Limits::default(), &raw.limits, "limits").map_err(err)?;

        let mut ids = HashSet::new();
        let mut connectors = Vec::new();
        for (i, c) in raw.connectors.iter().enumerate() {
            let key = format!("connector[{i}]");
            validate_id(&c.id).map_err(|m| err(format!("{key}.id: {m}")))?;
            if !ids.insert(c.id.clone()) {
                return Err(err(format!("{key}.id: duplicate connector id `{}`", c.id)));
            }
            if c.component.trim().is_empty() {
                return Err(err(format!("{key}.component: must name a .wasm file")));
            }
            let mut settings = BTreeMap::new();
            for (k, v) in &c.settings {
                let s = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Float(n) => n.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Array(items) => {
                        let mut parts = Vec::new();
                        for item in items {
                            match item {
                                toml::Value::String(s) => parts.push(s.clone()),
                                _ => {
                                    return Err(err(format!(
                                        "{key}.settings.{k}: arrays may only hold strings"
                                    )));
                                }
                            }
                        }
                        parts.join(",")
                    }
                    _ => {
                        return Err(err(format!(
                            "{key}.settings.{k}: must be a string, number, boolean or list of strings"
                        )));
                    }
                };
                // Settings reach the connector as written: a credential there would be in the
                // guest's hands (and `secret:x` sent literally). Credentials go in a grant's auth.
                if looks_like_reference(&s) {
                    return Err(err(format!(
                        "{key}.settings.{k}: `{s}` looks like a secret reference, but settings are \
                         handed to the connector as written; put the credential in a grant's `auth`"
                    )));
                }
                settings.insert(k.clone(), s);
            }
            let limits =
                apply_limits(limits.clone(), &c.limits, &format!("{key}.limits")).map_err(err)?;
            let sync = match &c.sync {
                None => None,
                Some(s) => {
                    let interval = parse_duration(&s.interval, &format!("{key}.sync.interval"))
                        .map_err(&err)?;
                    if let Some(list) = &s.streams
                        && list.is_empty()
                    {
                        return Err(err(format!(
                            "{key}.sync.streams: list at least one stream, or leave it out for all"
                        )));
                    }
                    Some(SyncSchedule {
                        interval,
                        streams: s.streams.clone(),
                    })
                }
            };
            let tenant = c.tenant.as_deref().unwrap_or(DEFAULT_TENANT);
            crate::store::tokens::validate_name("tenant", tenant)
                .map_err(|m| err(format!("{key}.tenant: {m}")))?;
            let replay = match c.replay.as_deref() {
                None => None,
                Some(f) if f.trim().is_empty() => {
                    return Err(err(format!("{key}.replay: must name a cassette file")));
                }
                Some(f) => Some(base.join(f)),
            };
            let sha256 = match c.sha256.as_deref() {
                None => None,
                Some(d) => Some(
                    crate::integrity::parse_sha256(d)
                        .map_err(|m| err(format!("{key}.sha256: {m}")))?,
                ),
            };
            let hook = c
                .hook
                .as_ref()
                .map(|h| hook::build(h, &format!("{key}.hook"), &c.id, &base))
                .transpose()
                .map_err(&err)?;
            connectors.push(ConnectorConfig {
                id: c.id.clone(),
                component: base.join(&c.component),
                settings,
                limits,
                sync,
                tenant: tenant.to_string(),
                replay,
                sha256,
                required: c.required,
                hook,
                permissions: c.permissions,
                users: users(&c.users, &key).map_err(&err)?,
                permission_check_ttl: check_ttl(c.permission_check_ttl.as_deref(), &key)
                    .map_err(&err)?,
                identity_ttl: identity_ttl(c.identity_ttl.as_deref(), &key).map_err(&err)?,
            });
        }

        let compile_cache = match raw.server.compile_cache.as_deref() {
            None => None,
            Some("") => return Err(err("server.compile_cache: must name a directory".into())),
            Some(d) => Some(
                std::path::absolute(base.join(d))
                    .map_err(|e| err(format!("server.compile_cache: cannot resolve {d}: {e}")))?,
            ),
        };
        let connectors_dir = raw.server.connectors_dir.as_deref().map(|d| base.join(d));
        if let Some(dir) = &connectors_dir {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                err(format!(
                    "server.connectors_dir: cannot read {}: {e}",
                    dir.display()
                ))
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
                .collect();
            found.sort();
            for component in found {
                let Some(id) = component.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                if ids.contains(id) || connectors.iter().any(|c| c.component == component) {
                    continue; // configured explicitly
                }
                if let Err(m) = validate_id(id) {
                    tracing::warn!(
                        "server.connectors_dir: skipping {}: {m}",
                        component.display()
                    );
                    continue;
                }
                ids.insert(id.to_string());
                connectors.push(ConnectorConfig {
                    id: id.to_string(),
                    component: component.clone(),
                    settings: BTreeMap::new(),
                    limits: limits.clone(),
                    sync: None,
                    tenant: DEFAULT_TENANT.to_string(),
                    replay: None,
                    sha256: None,
                    required: false,
                    hook: None,
                    permissions: Permissions::default(),
                    users: BTreeMap::new(),
                    permission_check_ttl: DEFAULT_PERMISSION_CHECK_TTL,
                    identity_ttl: DEFAULT_IDENTITY_TTL,
                });
            }
        }

        let mut grants = Vec::new();
        // A default name counts the connector's own grants, so it stays put when another
        // connector's grants are added or removed (names are metric labels and reload keys).
        let mut per_connector: BTreeMap<String, usize> = BTreeMap::new();
        for (i, g) in raw.grants.into_iter().enumerate() {
            let key = format!("grant[{i}]");
            if !ids.contains(&g.connector) {
                return Err(err(format!(
                    "{key}.connector: no connector with id `{}` is configured",
                    g.connector
                )));
            }
            let nth = per_connector.entry(g.connector.clone()).or_insert(0);
            let default_name = format!("grant-{nth}");
            *nth += 1;
            grants.push(
                build_grant(i, &default_name, g, &base).map_err(|m| err(format!("{key}.{m}")))?,
            );
        }
        let mut names = HashSet::new();
        for g in &grants {
            if !names.insert((g.connector.as_str(), g.name.as_str())) {
                return Err(err(format!(
                    "grant[{}].name: connector `{}` already has a grant named `{}`",
                    g.index, g.connector, g.name
                )));
            }
        }
        user_auth::one_per_connector(&grants).map_err(err)?;

        let mut routes = Vec::new();
        for (i, r) in raw.routes.into_iter().enumerate() {
            let key = format!("route[{i}]");
            validate_id(&r.name).map_err(|m| err(format!("{key}.name: {m}")))?;
            if !ids.insert(r.name.clone()) {
                return Err(err(format!(
                    "{key}.name: `{}` is already a connector or route id",
                    r.name
                )));
            }
            if r.action.trim().is_empty() {
                return Err(err(format!("{key}.action: must name an action")));
            }
            if r.connectors.is_empty() {
                return Err(err(format!(
                    "{key}.connectors: list at least one connector"
                )));
            }
            for c in &r.connectors {
                if !connectors.iter().any(|x: &ConnectorConfig| &x.id == c) {
                    return Err(err(format!(
                        "{key}.connectors: no connector with id `{c}` is configured"
                    )));
                }
            }
            if r.local_only {
                for c in &r.connectors {
                    let mine = grants.iter().filter(|g: &&Grant| &g.connector == c);
                    if let Some(g) = mine.clone().find(|g| !is_local_host(&g.host)) {
                        return Err(err(format!(
                            "{key}.local_only: connector `{c}` has grant[{}] to {}, which is not a \
                             local address (a local-only route's connectors may reach only \
                             localhost and loopback or private IP literals)",
                            g.index,
                            match &g.host {
                                crate::capabilities::grant::HostPattern::Exact(h) => h.clone(),
                                crate::capabilities::grant::HostPattern::Suffix(s) =>
                                    format!("*{s}"),
                            }
                        )));
                    }
                }
            }
            routes.push(Route {
                name: r.name,
                action: r.action,
                connectors: r.connectors,
                local_only: r.local_only,
            });
        }

        let mut resolve = BTreeMap::new();
        for (name, addrs) in raw.resolve {
            let list = match addrs {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
            };
            let mut ips = Vec::new();
            for a in list {
                ips.push(
                    a.parse::<IpAddr>()
                        .map_err(|_| err(format!("resolve.{name}: `{a}` is not an IP address")))?,
                );
            }
            if ips.is_empty() {
                return Err(err(format!("resolve.{name}: needs at least one address")));
            }
            resolve.insert(name.to_ascii_lowercase(), ips);
        }

        let trust = build_trust(&raw.trust, &base).map_err(&err)?;
        let metrics_token = raw
            .server
            .metrics_token
            .as_deref()
            .map(|t| SecretRef::parse(t, &base))
            .transpose()
            .map_err(|m| err(format!("server.metrics_token: {m}")))?;
        let audit = build_audit(&raw.audit).map_err(|m| err(format!("audit.{m}")))?;
        let outbound = build_outbound(&raw.outbound, &base).map_err(&err)?;
        let public_hosts = build_public_hosts(&raw.server.public_hosts).map_err(&err)?;
        let cors_origins = build_cors_origins(&raw.server.cors_origins).map_err(&err)?;
        let scheduler = scheduler::build(&raw.scheduler).map_err(&err)?;
        let invocations = invocations::build(&raw.invocations).map_err(&err)?;
        let store = store::build(&raw.store).map_err(&err)?;
        let telemetry = telemetry::build(&raw.telemetry).map_err(&err)?;
        let semantic = semantic::build(&raw.search, |id| connectors.iter().any(|c| c.id == id))
            .map_err(&err)?;
        let ask = ask::build(
            raw.search.ask.as_ref(),
            |id| {
                connectors.iter().any(|c| c.id == id)
                    || routes
                        .iter()
                        .any(|r: &Route| r.name == id && r.action == "chat")
            },
            semantic.is_some(),
        )
        .map_err(&err)?;
        let mut changes = ChangesConfig::default();
        if let Some(r) = &raw.changes.retention {
            changes.retention = parse_duration(r, "changes.retention").map_err(&err)?;
        }
        let mut webhooks: Vec<Webhook> = Vec::new();
        let tenant_of = |id: &str| {
            let c = connectors.iter().find(|c: &&ConnectorConfig| c.id == id);
            c.map(|c| c.tenant.clone())
        };
        for (i, w) in raw.webhooks.into_iter().enumerate() {
            let w = webhook::build(w, &format!("webhook[{i}]"), &base, tenant_of).map_err(&err)?;
            if webhooks.iter().any(|x| x.name == w.name) {
                return Err(err(format!(
                    "webhook[{i}].name: `{}` is used twice",
                    w.name
                )));
            }
            webhooks.push(w);
        }

        let oauth = raw
            .oauth
            .map(|o| oauth::build(o, DEFAULT_TENANT, &base))
            .transpose()
            .map_err(&err)?;

        Ok(Config {
            oauth,
            audit,
            path: path.to_path_buf(),
            server: ServerConfig {
                metrics_token,
                listen,
                listen_backlog,
                data_dir,
                connectors_dir,
                compile_cache,
                public_hosts,
                cors_origins,
                memory_reservation,
            },
            limits,
            connectors,
            grants,
            routes,
            resolve,
            trust,
            approvals: ApprovalsConfig {
                allow_self_approval: raw.approvals.allow_self_approval,
            },
            changes,
            scheduler,
            invocations,
            store,
            semantic,
            ask,
            telemetry,
            webhooks,
            outbound,
        })
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    pub fn connector(&self, id: &str) -> Option<&ConnectorConfig> {
        self.connectors.iter().find(|c| c.id == id)
    }

    /// The tenant of a connector, or of a route whose connectors all share one tenant (a route
    /// spanning tenants belongs to none, so no principal may use it).
    pub fn tenant_of(&self, id: &str) -> Option<&str> {
        if let Some(c) = self.connector(id) {
            return Some(&c.tenant);
        }
        let r = self.route(id)?;
        let first = self.connector(r.connectors.first()?)?.tenant.as_str();
        r.connectors
            .iter()
            .all(|c| self.connector(c).is_some_and(|c| c.tenant == first))
            .then_some(first)
    }

    pub fn grants_for<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Grant> + 'a {
        self.grants.iter().filter(move |g| g.connector == id)
    }
}

/// `[outbound]`: the CA file is read and checked now; the proxy URL is validated now (the
/// environment's, when no `proxy` is set, at load).
fn build_outbound(raw: &RawOutbound, base: &Path) -> Result<OutboundSettings, String> {
    let ca = raw
        .ca_file
        .as_deref()
        .map(|f| CaBundle::load(&base.join(f)).map_err(|m| format!("outbound.ca_file: {m}")))
        .transpose()?;
    let no_proxy = raw.no_proxy.clone().unwrap_or_default();
    let proxy = match raw.proxy.as_deref() {
        Some(p) => ProxySettings::from_config(p, &no_proxy)?,
        None if !no_proxy.is_empty() => {
            return Err("outbound.no_proxy: needs `outbound.proxy` (the environment's proxy                         takes NO_PROXY from the environment too)"
                .into());
        }
        None => ProxySettings::default(),
    };
    Ok(OutboundSettings {
        trust: TrustSettings {
            system_roots: raw.system_roots.unwrap_or(true),
            ca,
        },
        proxy,
        proxy_from_env: raw.proxy_from_env.unwrap_or(true),
    })
}

/// `[server] public_hosts`: bare host names or `host:port`, as a `Host` header carries them.
fn build_public_hosts(raw: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let key = format!("server.public_hosts[{i}]");
        let h = h.trim().to_ascii_lowercase();
        let ok = !h.is_empty()
            && !h.contains(['/', '@', '*', ' '])
            && h.parse::<http::uri::Authority>().is_ok();
        if !ok {
            return Err(format!(
                "{key}: `{h}` is not a host name like airlock.example.com (or host:port); no \
                 scheme, path or wildcard"
            ));
        }
        out.push(h);
    }
    Ok(out)
}

/// `[server] cors_origins`: exact web origins (`scheme://host[:port]`, as a browser sends
/// `Origin`). A wildcard is refused: which pages may use a person's token is the operator's
/// explicit choice.
fn build_cors_origins(raw: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, o) in raw.iter().enumerate() {
        let key = format!("server.cors_origins[{i}]");
        let bad = || {
            format!(
                "{key}: `{o}` is not a web origin like https://app.example.com (scheme, host and \
                 optional port; no path, no wildcard)"
            )
        };
        let u = url::Url::parse(o.trim()).map_err(|_| bad())?;
        let origin = u.origin();
        if !origin.is_tuple()
            || !matches!(u.scheme(), "http" | "https")
            || !matches!(u.path(), "" | "/")
            || u.query().is_some()
            || u.fragment().is_some()
            || !u.username().is_empty()
            || o.contains('*')
        {
            return Err(bad());
        }
        out.push(origin.ascii_serialization());
    }
    Ok(out)
}

/// `[trust]`: each key is a minisign public key, inline (`RW...`) or `file:PATH` to a `.pub`.
fn build_trust(raw: &RawTrust, base: &Path) -> Result<crate::integrity::Trust, String> {
    use crate::integrity::TrustedKey;
    let mut keys = Vec::new();
    for (i, k) in raw.keys.iter().enumerate() {
        let key = format!("trust.keys[{i}]");
        let text = match k.strip_prefix("file:") {
            Some(f) => std::fs::read_to_string(base.join(f))
                .map_err(|e| format!("{key}: cannot read {}: {e}", base.join(f).display()))?,
            None => k.clone(),
        };
        keys.push(TrustedKey::parse(&text).map_err(|m| format!("{key}: `{k}` {m}"))?);
    }
    if raw.require_signature && keys.is_empty() {
        return Err(
            "trust.require_signature: needs at least one key in `trust.keys` to check against"
                .into(),
        );
    }
    Ok(crate::integrity::Trust {
        keys,
        require_signature: raw.require_signature,
    })
}

/// toml's message already carries the line, column, the offending key and a snippet.
fn describe_toml_error(e: &toml::de::Error) -> String {
    format!("invalid config: {}", e.to_string().trim())
}

fn validate_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && id.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not a valid id (lowercase letters, digits, '-' and '_', starting with a letter, at most 64)"
        ))
    }
}

/// Whether a grant's host is certainly local: `localhost`, or a loopback or private IP literal
/// (a name could resolve anywhere, so no other name counts).
fn is_local_host(host: &crate::capabilities::grant::HostPattern) -> bool {
    use crate::capabilities::grant::HostPattern;
    match host {
        HostPattern::Exact(h) if h == "localhost" || h.ends_with(".localhost") => true,
        HostPattern::Exact(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| crate::capabilities::net::check_ip(ip, false).is_some()),
        HostPattern::Suffix(_) => false,
    }
}

fn parse_duration(s: &str, key: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{key}: `{s}` is not a duration like \"30s\" or \"500ms\" ({e})"))?;
    if d.is_zero() {
        return Err(format!("{key}: must be greater than zero"));
    }
    Ok(d)
}

fn apply_limits(mut l: Limits, raw: &RawLimits, key: &str) -> Result<Limits, String> {
    if let Some(t) = &raw.timeout {
        l.timeout = parse_duration(t, &format!("{key}.timeout"))?;
    }
    if let Some(m) = raw.memory_mib {
        if !(1..=4096).contains(&m) {
            return Err(format!("{key}.memory_mib: {m} is out of range (1..=4096)"));
        }
        l.memory_bytes = (m as usize) << 20;
    }
    if let Some(b) = raw.max_response_bytes {
        if b == 0 {
            return Err(format!(
                "{key}.max_response_bytes: must be greater than zero"
            ));
        }
        l.max_response_bytes = b as usize;
    }
    if let Some(b) = raw.max_request_bytes {
        if b == 0 {
            return Err(format!(
                "{key}.max_request_bytes: must be greater than zero"
            ));
        }
        l.max_request_bytes = b as usize;
    }
    if let Some(t) = &raw.connect_timeout {
        l.connect_timeout = parse_duration(t, &format!("{key}.connect_timeout"))?;
    }
    if let Some(t) = &raw.first_byte_timeout {
        l.first_byte_timeout = parse_duration(t, &format!("{key}.first_byte_timeout"))?;
    }
    if let Some(n) = raw.denial_budget {
        if n == 0 {
            return Err(format!("{key}.denial_budget: must be at least 1"));
        }
        l.denial_budget = n;
    }
    Ok(l)
}

/// `[audit]` with its defaults.
fn build_audit(a: &RawAudit) -> Result<crate::store::audit::AuditSettings, String> {
    let mut c = crate::store::audit::AuditSettings::default();
    if let Some(n) = a.queue_rows {
        if !(16..=10_000_000).contains(&n) {
            return Err("queue_rows: must be 16..=10000000".into());
        }
        c.queue_rows = n;
    }
    if let Some(n) = a.checkpoint_rows {
        if n == 0 {
            return Err("checkpoint_rows: must be at least 1".into());
        }
        c.checkpoint_rows = n;
    }
    if let Some(t) = &a.checkpoint_interval {
        let d = parse_duration(t, "checkpoint_interval")?;
        if d < Duration::from_millis(100) || d > Duration::from_secs(86_400) {
            return Err("checkpoint_interval: must be between 100ms and 24h".into());
        }
        c.checkpoint_interval = d;
    }
    if let Some(s) = &a.checkpoint_sink {
        c.checkpoint_sink = crate::store::checkpoint::Sink::parse(s).ok_or_else(|| {
            format!("checkpoint_sink: `{s}` is not one of `log`, `stdout`, `none`")
        })?;
    }
    if let Some(d) = &a.durability {
        c.durability = crate::store::audit::Durability::parse(d)
            .ok_or_else(|| format!("durability: `{d}` is not one of `normal`, `fsync`"))?;
    }
    Ok(c)
}

/// Checks a grant name: lowercase letters, digits, `-`, `_`, `.`, starting with a letter or
/// digit, at most 64 characters (it becomes a metric label).
fn validate_grant_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name: `{name}` must be 1-64 of a-z, 0-9, `-`, `_`, `.`, starting with a letter or digit"
        ))
    }
}

fn build_grant(
    index: usize,
    default_name: &str,
    g: RawGrant,
    base: &Path,
) -> Result<Grant, String> {
    let resilience = build_resilience(&g)?;
    let name = match &g.name {
        Some(n) => {
            validate_grant_name(n)?;
            n.clone()
        }
        None => default_name.to_string(),
    };
    let (mut scheme, mut host, mut port, mut path) = (g.scheme, g.host, g.port, g.path_prefix);
    if let Some(u) = &g.url {
        if scheme.is_some() || host.is_some() || port.is_some() || path.is_some() {
            return Err(
                "url: give either `url` or `scheme`/`host`/`port`/`path_prefix`, not both".into(),
            );
        }
        // `*.example.com` is not a valid URL host; swap it for a placeholder while parsing.
        let (text, wildcard) = match u.find("://*.") {
            Some(pos) => (
                format!("{}://wildcard-placeholder.{}", &u[..pos], &u[pos + 5..]),
                true,
            ),
            None => (u.clone(), false),
        };
        let parsed =
            url::Url::parse(&text).map_err(|e| format!("url: `{u}` is not a valid URL ({e})"))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(format!("url: `{u}` must not have a query or fragment"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("url: credentials belong in `auth`, not in the URL".into());
        }
        scheme = Some(parsed.scheme().to_string());
        let h = parsed.host_str().unwrap_or_default().to_string();
        host = Some(if wildcard {
            h.replacen("wildcard-placeholder.", "*.", 1)
        } else {
            h.trim_start_matches('[').trim_end_matches(']').to_string()
        });
        port = parsed.port();
        path = Some(parsed.path().to_string());
    }
    let scheme = scheme
        .unwrap_or_else(|| "https".into())
        .to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "scheme: `{scheme}` is not supported (http or https)"
        ));
    }
    let host = host.ok_or("host: missing (give `url` or `host`)")?;
    let host = HostPattern::parse(&host).map_err(|m| format!("host: {m}"))?;
    if let HostPattern::Exact(h) = &host
        && crate::capabilities::address::is_metadata_host(h)
    {
        return Err(format!(
            "host: `{h}` is a cloud metadata service; grant its address instead if you mean it"
        ));
    }
    let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
    if port == 0 {
        return Err("port: must be 1..=65535".into());
    }
    let path_prefix = PathPrefix::parse(path.as_deref().unwrap_or("/"))
        .map_err(|m| format!("path_prefix: {m}"))?;
    let methods = MethodSet::parse(
        g.methods
            .as_deref()
            .unwrap_or(&["GET".into(), "HEAD".into()]),
    )
    .map_err(|m| format!("methods: {m}"))?;

    let secret =
        |field: &str, v: &str| SecretRef::parse(v, base).map_err(|m| format!("auth.{field}: {m}"));
    let auth = match g.auth {
        None | Some(RawAuth::None) => AuthConfig::None,
        Some(RawAuth::Basic { username, password }) => {
            let part = |field: &str, v: &str| {
                BasicPart::parse(v, base).map_err(|m| format!("auth.{field}: {m}"))
            };
            let (username, password) = (part("username", &username)?, part("password", &password)?);
            if username.secret().is_none() && password.secret().is_none() {
                return Err(
                    "auth: basic needs a secret reference (`secret:NAME`, `env:VAR` or \
                            `file:PATH`) as its password or its username; a credential written \
                            in the file is read by whoever reads the file"
                        .into(),
                );
            }
            AuthConfig::Basic { username, password }
        }
        Some(RawAuth::Bearer { token }) => AuthConfig::Bearer {
            token: secret("token", &token)?,
        },
        Some(RawAuth::Header { name, value }) => {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("auth.name: `{name}` is not a valid header name"))?;
            AuthConfig::Header {
                name,
                value: secret("value", &value)?,
            }
        }
        Some(RawAuth::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        }) => {
            let token_url = url::Url::parse(&token_url)
                .map_err(|e| format!("auth.token_url: `{token_url}` is not a URL ({e})"))?;
            if !matches!(token_url.scheme(), "http" | "https") {
                return Err("auth.token_url: must be http or https".into());
            }
            for (field, v) in [("client_id", Some(&client_id)), ("scope", scope.as_ref())] {
                if let Some(v) = v
                    && looks_like_reference(v)
                {
                    return Err(format!(
                        "auth.{field}: `{v}` looks like a secret reference, but {field} is sent as \
                         written; only client_secret takes a reference"
                    ));
                }
            }
            AuthConfig::OAuth2 {
                token_url,
                client_id,
                client_secret: secret("client_secret", &client_secret)?,
                scope,
            }
        }
        Some(RawAuth::OAuth2User(raw)) => user_auth::build(raw, &g.connector, base)?,
        Some(RawAuth::OnBehalfOf {
            token_url,
            client_id,
            client_secret,
            scopes,
        }) => {
            let token_url = url::Url::parse(&token_url)
                .map_err(|e| format!("auth.token_url: `{token_url}` is not a URL ({e})"))?;
            if !matches!(token_url.scheme(), "http" | "https") {
                return Err("auth.token_url: must be http or https".into());
            }
            if scopes.is_empty() {
                return Err("auth.scopes: name the upstream's scopes the person's token is traded for (e.g. [\"https://graph.microsoft.com/.default\"])".into());
            }
            let sent_as_written = std::iter::once(("client_id", &client_id))
                .chain(scopes.iter().map(|s| ("scopes", s)));
            for (field, v) in sent_as_written {
                if looks_like_reference(v) {
                    return Err(format!(
                        "auth.{field}: `{v}` looks like a secret reference, but {field} is sent as \
                         written; only client_secret takes a reference"
                    ));
                }
            }
            AuthConfig::OnBehalfOf(std::sync::Arc::new(crate::capabilities::grant::OboConfig {
                token_url,
                client_id,
                client_secret: secret("client_secret", &client_secret)?,
                scopes,
            }))
        }
    };
    if g.writes_preapproved && !g.writes {
        return Err("writes_preapproved: needs `writes = true` on the same grant".into());
    }
    let exact_paths = write_paths(g.exact_paths.as_deref(), g.writes, &methods, &path_prefix)?;
    let reach = Reach {
        allow_wildcard_credentials: g.allow_wildcard_credentials,
        allow_insecure: g.allow_insecure,
    };
    check_credential_reach(reach, &scheme, &host, &auth)?;
    if g.reveal && matches!(auth, AuthConfig::None) {
        return Err("reveal: `reveal = true` needs an `auth` with a secret to reveal".into());
    }
    let tls_ca = match &g.tls {
        None => None,
        Some(t) if scheme != "https" => {
            return Err(format!(
                "tls.ca_file: `{}` is for https grants; this grant is {scheme}",
                t.ca_file
            ));
        }
        Some(t) => {
            Some(CaBundle::load(&base.join(&t.ca_file)).map_err(|m| format!("tls.ca_file: {m}"))?)
        }
    };
    Ok(Grant {
        index,
        name,
        connector: g.connector,
        scheme,
        host,
        port,
        methods,
        path_prefix,
        allow_private: g.allow_private,
        reveal: g.reveal,
        writes: g.writes,
        writes_preapproved: g.writes_preapproved,
        exact_paths,
        auth,
        resilience,
        tls_ca,
    })
}

/// A grant without `writes` whose `methods` allow a write method must name the exact paths for
/// it: a prefix would let any action POST anywhere under it (Graph's `/v1.0/` holds `sendMail`).
fn write_paths(
    exact_paths: Option<&[String]>,
    writes_grant: bool,
    methods: &MethodSet,
    prefix: &PathPrefix,
) -> Result<Option<ExactPaths>, String> {
    let writes: Vec<String> = match methods {
        MethodSet::Any => vec!["*".into()],
        MethodSet::Only(set) => set
            .iter()
            .filter(|m| {
                http::Method::from_bytes(m.as_bytes())
                    .is_ok_and(|m| crate::capabilities::grant::is_write_method(&m))
            })
            .cloned()
            .collect(),
    };
    match exact_paths {
        None if !writes.is_empty() && !writes_grant => Err(format!(
            "methods: {} on a grant without `writes = true` must be limited to exact paths; list them in `exact_paths = [\"{}…\"]` (the prefix {} is too broad), or set `writes = true` for write actions",
            writes.join(", "),
            prefix.as_str(),
            prefix.as_str()
        )),
        None => Ok(None),
        Some(_) if writes.is_empty() => {
            Err("exact_paths: limits write methods, and this grant's `methods` has none".into())
        }
        Some(list) => ExactPaths::parse(list, prefix)
            .map(Some)
            .map_err(|m| format!("exact_paths: {m}")),
    }
}

/// The grant keys that let credentials go further than the default.
#[derive(Clone, Copy)]
struct Reach {
    allow_wildcard_credentials: bool,
    allow_insecure: bool,
}

/// Credentials go only where the operator can see them going: not to every subdomain of a
/// wildcard, not in clear text, unless the grant says so.
fn check_credential_reach(
    g: Reach,
    scheme: &str,
    host: &HostPattern,
    auth: &AuthConfig,
) -> Result<(), String> {
    if matches!(auth, AuthConfig::None) {
        return Ok(());
    }
    if let HostPattern::Suffix(suffix) = host
        && !g.allow_wildcard_credentials
    {
        return Err(format!(
            "auth: a wildcard host (`*{suffix}`) would send these credentials to every subdomain; name the host, or set `allow_wildcard_credentials = true` on the grant"
        ));
    }
    if g.allow_insecure {
        return Ok(());
    }
    if scheme == "http" {
        return Err(
            "auth: credentials over plain `http` are refused; use https, or set `allow_insecure = true` on the grant (local fakes only)"
                .into(),
        );
    }
    let token_url = match auth {
        AuthConfig::OAuth2 { token_url, .. } => Some(token_url),
        AuthConfig::OnBehalfOf(o) => Some(&o.token_url),
        _ => None,
    };
    if let Some(token_url) = token_url
        && token_url.scheme() == "http"
    {
        return Err(
            "auth.token_url: the client secret over plain `http` is refused; use https, or set `allow_insecure = true` on the grant (local fakes only)"
                .into(),
        );
    }
    if let AuthConfig::OAuth2User(u) = auth
        && let Some((field, _)) = user_auth::secret_urls(u).find(|(_, u)| u.scheme() == "http")
    {
        return Err(format!(
            "auth.{field}: the client secret and people's tokens over plain `http` are refused; use https, or set `allow_insecure = true` on the grant (local fakes only)"
        ));
    }
    Ok(())
}

fn build_resilience(g: &RawGrant) -> Result<Resilience, String> {
    let mut r = Resilience::default();
    if let Some(rate) = &g.rate {
        if let Some(p) = rate.per_second {
            if !(p.is_finite() && p > 0.0 && p <= 1_000_000.0) {
                return Err(format!(
                    "rate.per_second: {p} is out of range (0 < x <= 1000000)"
                ));
            }
            r.rate_per_second = p;
            // A lone rate gets a burst of one second's worth.
            r.burst = (p.ceil() as u32).max(1);
        }
        if let Some(b) = rate.burst {
            if b == 0 {
                return Err("rate.burst: must be at least 1".into());
            }
            r.burst = b;
        }
        if let Some(s) = rate.background_share {
            if !(0.0..=1.0).contains(&s) {
                return Err(format!(
                    "rate.background_share: {s} is out of range (0 <= x <= 1)"
                ));
            }
            r.background_share = s;
        }
    }
    if let Some(c) = g.concurrency {
        if !(1..=10_000).contains(&c) {
            return Err(format!("concurrency: {c} is out of range (1..=10000)"));
        }
        r.concurrency = c;
    }
    if let Some(retry) = &g.retry {
        if let Some(a) = retry.attempts {
            if !(1..=10).contains(&a) {
                return Err(format!("retry.attempts: {a} is out of range (1..=10)"));
            }
            r.retry_attempts = a;
        }
        if let Some(b) = &retry.backoff {
            r.backoff = parse_duration(b, "retry.backoff")?;
        }
        if let Some(b) = &retry.max_backoff {
            r.max_backoff = parse_duration(b, "retry.max_backoff")?;
        }
        if r.max_backoff < r.backoff {
            return Err("retry.max_backoff: must not be shorter than retry.backoff".into());
        }
    }
    if let Some(b) = &g.breaker {
        if let Some(f) = b.failures {
            if !(1..=1000).contains(&f) {
                return Err(format!("breaker.failures: {f} is out of range (1..=1000)"));
            }
            r.breaker_failures = f;
        }
        if let Some(c) = &b.cooldown {
            r.breaker_cooldown = parse_duration(c, "breaker.cooldown")?;
        }
    }
    if let Some(t) = &g.cache_ttl {
        r.cache_ttl = Some(parse_duration(t, "cache_ttl")?);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/airlock/airlock.toml"))
    }

    const BASE: &str = r#"
[[connector]]
id = "confluence"
component = "c.wasm"
settings = { base_url = "http://127.0.0.1:8781" }
"#;

    #[test]
    fn the_compile_cache_lives_in_the_data_dir_unless_placed_beside_the_config() {
        let server = |extra: &str| {
            parse(&format!("[server]\ndata_dir = \"d\"\n{extra}{BASE}")).map(|c| c.server)
        };
        let default = server("").expect("valid");
        assert_eq!(
            default.compile_cache_dir(),
            Path::new("/etc/airlock/d/compile-cache")
        );
        let placed = server("compile_cache = \"../cache/airlock\"\n").expect("valid");
        assert_eq!(
            placed.compile_cache_dir(),
            Path::new("/etc/airlock/../cache/airlock")
        );
        let e = server("compile_cache = \"\"\n").unwrap_err().to_string();
        assert!(e.contains("server.compile_cache"), "{e}");
        let e = server("listen_backlog = 70000\n").unwrap_err().to_string();
        assert!(e.contains("server.listen_backlog"), "{e}");
        assert_eq!(default.listen_backlog, DEFAULT_LISTEN_BACKLOG);
    }

    #[test]
    fn the_memory_reservation_is_the_limit_unless_4gib_is_asked_for() {
        use crate::limits::MemoryReservation;
        let reserve = |extra: &str| parse(&format!("[server]\n{extra}{BASE}")).map(|c| c.server);
        let default = reserve("").expect("valid").memory_reservation;
        assert_eq!(default, MemoryReservation::Limit);
        for text in ["4GiB", "4gib", "4GIB"] {
            let asked = reserve(&format!("memory_reservation = \"{text}\"\n")).expect("valid");
            assert_eq!(
                asked.memory_reservation,
                MemoryReservation::FourGiB,
                "{text}"
            );
        }
        let limit = reserve("memory_reservation = \"limit\"\n").expect("valid");
        assert_eq!(limit.memory_reservation, MemoryReservation::Limit);
        let e = reserve("memory_reservation = \"8GiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.memory_reservation") && e.contains("8GiB"),
            "{e}"
        );
    }

    #[test]
    fn cors_origins_are_exact_web_origins_without_wildcards_or_paths() {
        let cors = |list: &str| {
            parse(&format!("[server]\ncors_origins = {list}\n{BASE}"))
                .map(|c| c.server.cors_origins)
        };
        assert_eq!(cors("[]").expect("valid"), Vec::<String>::new());
        assert_eq!(
            cors(r#"["https://App.Example.com", "http://localhost:6274/"]"#).expect("valid"),
            vec!["https://app.example.com", "http://localhost:6274"]
        );
        for bad in [
            "*",
            "https://*.example.com",
            "https://a.example/path",
            "app.example",
            "ftp://a.example",
        ] {
            let e = cors(&format!("[\"{bad}\"]")).unwrap_err().to_string();
            assert!(e.contains("server.cors_origins[0]"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_connectors_permission_check_ttl_defaults_to_30s_and_is_at_most_an_hour() {
        let ttl = |line: &str| {
            parse(&format!("{BASE}{line}\n")).map(|c| c.connectors[0].permission_check_ttl)
        };
        assert_eq!(ttl("").expect("valid"), Duration::from_secs(30));
        let never = ttl("permission_check_ttl = \"0s\"").expect("valid");
        assert_eq!(never, Duration::ZERO, "0s: remember nothing");
        let five = ttl("permission_check_ttl = \"5m\"").expect("valid");
        assert_eq!(five, Duration::from_secs(300));
        for bad in ["\"2h\"", "\"soon\""] {
            let e = ttl(&format!("permission_check_ttl = {bad}")).unwrap_err();
            assert!(e.to_string().contains("permission_check_ttl"), "{e}");
        }
    }

    #[test]
    fn a_connectors_identity_ttl_defaults_to_5m_and_is_at_most_a_day() {
        let ttl =
            |line: &str| parse(&format!("{BASE}{line}\n")).map(|c| c.connectors[0].identity_ttl);
        assert_eq!(ttl("").expect("valid"), Duration::from_secs(300));
        let off = ttl("identity_ttl = \"0s\"").expect("valid");
        assert_eq!(off, Duration::ZERO, "0s: never resolved");
        let day = ttl("identity_ttl = \"24h\"").expect("valid");
        assert_eq!(day, Duration::from_secs(86_400));
        for bad in ["\"25h\"", "\"soon\""] {
            let e = ttl(&format!("identity_ttl = {bad}")).unwrap_err();
            assert!(e.to_string().contains("identity_ttl"), "{e}");
        }
    }

    #[test]
    fn webhooks_are_checked_for_scheme_secret_connectors_and_unique_names() {
        let hook = |extra: &str| {
            parse(&format!(
                "{BASE}\n[[webhook]]\nname = \"tz\"\nurl = \"https://hooks.example.com/in\"\nsecret = \"secret:tz\"\n{extra}\n"
            ))
        };
        let c = hook("connectors = [\"confluence\"]\nbackoff = \"2s\"").expect("valid");
        let w = &c.webhooks[0];
        assert_eq!((w.tenant.as_str(), w.max_attempts), (DEFAULT_TENANT, 10));
        assert_eq!(w.backoff, Duration::from_secs(2));
        assert!(!w.allow_private, "private addresses need allowing");
        let error = |extra: &str| hook(extra).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error("connectors = [\"nope\"]").contains("no connector `nope`"));
        assert!(error("max_attempts = 0").contains("max_attempts"));
        assert!(
            error("secret2 = 1").contains("secret2"),
            "unknown keys are refused"
        );
        let dup = format!(
            "{BASE}\n[[webhook]]\nname = \"a\"\nurl = \"https://x/\"\nsecret = \"env:S\"\n\n[[webhook]]\nname = \"a\"\nurl = \"https://y/\"\nsecret = \"env:S\"\n"
        );
        assert!(parse(&dup).unwrap_err().to_string().contains("used twice"));
        let plain =
            format!("{BASE}\n[[webhook]]\nname = \"a\"\nurl = \"http://x/\"\nsecret = \"env:S\"\n");
        assert!(
            parse(&plain)
                .unwrap_err()
                .to_string()
                .contains("allow_insecure")
        );
        let literal = format!(
            "{BASE}\n[[webhook]]\nname = \"a\"\nurl = \"https://x/\"\nsecret = \"whsec_abc\"\n"
        );
        assert!(parse(&literal).is_err(), "a literal secret is refused");
    }

    #[test]
    fn a_grants_background_share_is_read_and_held_to_zero_through_one() {
        let with = |rate: &str| {
            parse(&format!(
                "{BASE}\n[[grant]]\nconnector = \"confluence\"\nurl = \"https://api.example.com/\"\nrate = {rate}\n"
            ))
        };
        let c = with("{ per_second = 10, background_share = 0.5 }").expect("valid");
        assert_eq!(c.grants[0].resilience.background_share, 0.5);
        let c = with("{ per_second = 10 }").expect("valid");
        assert_eq!(c.grants[0].resilience.background_share, 0.2, "the default");
        for bad in ["1.5", "-0.1"] {
            let e = with(&format!("{{ background_share = {bad} }}")).expect_err(bad);
            assert!(e.to_string().contains("rate.background_share"), "{e}");
        }
    }

    #[test]
    fn basic_auth_takes_a_secret_reference_in_the_username_or_the_password() {
        let with = |auth: &str| {
            parse(&format!(
                "{BASE}\n[[grant]]\nconnector = \"confluence\"\nurl = \"https://api.example.com/\"\nauth = {auth}\n"
            ))
        };
        let c = with(r#"{ type = "basic", username = "secret:fd_key", password = "X" }"#)
            .expect("the API key as the user name");
        match &c.grants[0].auth {
            AuthConfig::Basic { username, password } => {
                assert_eq!(
                    username,
                    &BasicPart::Secret(SecretRef::Vault("fd_key".into()))
                );
                assert_eq!(password, &BasicPart::Literal("X".into()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.grants[0].auth.secret_refs().len(), 1);
        let e = with(r#"{ type = "basic", username = "me", password = "hunter2" }"#)
            .expect_err("no secret at all");
        assert!(
            e.to_string().contains("basic needs a secret reference"),
            "{e}"
        );
        let e = with(r#"{ type = "basic", username = "secret:", password = "secret:pw" }"#)
            .expect_err("an empty reference");
        assert!(e.to_string().contains("auth.username"), "{e}");
    }

    #[test]
    fn a_literal_that_looks_like_a_secret_reference_is_refused_where_it_would_be_sent_as_is() {
        let e = parse("[[connector]]\nid = \"c\"\ncomponent = \"c.wasm\"\nsettings = { api_key = \"secret:k\" }\n")
            .expect_err("a reference in settings");
        assert!(e.to_string().contains("settings.api_key"), "{e}");
        let e = parse(&format!(
            "{BASE}\n[[grant]]\nconnector = \"confluence\"\nurl = \"https://login.example.com/\"\nauth = {{ type = \"oauth2\", token_url = \"https://login.example.com/t\", client_id = \"env:ID\", client_secret = \"secret:cs\" }}\n"
        ))
        .expect_err("a reference as client_id");
        assert!(e.to_string().contains("auth.client_id"), "{e}");
    }

    #[test]
    fn replay_names_a_cassette_relative_to_the_config_file() {
        let c = parse(&format!("{BASE}replay = \"tests/cassettes/c.json\"\n")).expect("config");
        assert_eq!(
            c.connectors[0].replay.as_deref(),
            Some(Path::new("/etc/airlock/tests/cassettes/c.json"))
        );
        assert!(parse(BASE).expect("config").connectors[0].replay.is_none());
        let e = parse(&format!("{BASE}replay = \" \"\n")).expect_err("empty");
        assert!(
            e.to_string()
                .contains("connector[0].replay: must name a cassette file"),
            "{e}"
        );
    }

    #[test]
    fn connectors_default_to_the_default_tenant_and_routes_need_one_tenant() {
        let c = parse(&format!(
            r#"{BASE}
[[connector]]
id = "b1"
component = "b.wasm"
tenant = "beta"
[[connector]]
id = "b2"
component = "b.wasm"
tenant = "beta"
[[route]]
name = "rb"
action = "chat"
connectors = ["b1", "b2"]
[[route]]
name = "mixed"
action = "chat"
connectors = ["confluence", "b1"]
"#
        ))
        .unwrap();
        assert_eq!(c.tenant_of("confluence"), Some(DEFAULT_TENANT));
        assert_eq!(c.tenant_of("b1"), Some("beta"));
        assert_eq!(c.tenant_of("rb"), Some("beta"));
        assert_eq!(c.tenant_of("mixed"), None);
        assert_eq!(c.tenant_of("nothing"), None);
        let e = parse(&format!("{BASE}tenant = \"a b\"\n")).unwrap_err();
        assert!(e.to_string().contains("connector[0].tenant"), "{e}");
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let e = parse(&format!("{BASE}\n[limits]\ntimeoutt = \"3s\"\n")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("/etc/airlock/airlock.toml: "), "{s}");
        assert!(s.contains("timeoutt"), "{s}");
    }

    #[test]
    fn an_unknown_method_is_a_config_error_naming_the_key() {
        let grant = |methods: &str| {
            format!(
                "{BASE}\n[[grant]]\nconnector = \"confluence\"\nurl = \"https://x.example.com/wiki/\"\nmethods = {methods}\n"
            )
        };
        let e = parse(&grant(r#"["GET", "FETCH"]"#)).unwrap_err();
        assert!(
            e.to_string()
                .contains("grant[0].methods: `FETCH` is not an HTTP method"),
            "{e}"
        );
        // Extension tokens that `http::Method` would take are refused too; real methods pass
        // (write methods on a writes grant, which needs no exact paths).
        assert!(parse(&grant(r#"["PROPFIND"]"#)).is_err());
        let writes = |m: &str| format!("{}writes = true\n", grant(m));
        assert!(parse(&writes(r#"["get", "Patch", "DELETE"]"#)).is_ok());
        assert!(parse(&writes(r#"["*"]"#)).is_ok());
        assert!(parse(&grant(r#"["get", "head", "options", "trace"]"#)).is_ok());
    }

    #[test]
    fn bad_duration_names_the_key() {
        let e = parse(&format!("{BASE}\n[limits]\ntimeout = \"soon\"\n")).unwrap_err();
        assert!(e.to_string().contains("limits.timeout"), "{e}");
    }

    #[test]
    fn memory_out_of_range_names_the_connector_key() {
        let text = format!("{BASE}limits = {{ memory_mib = 0 }}\n");
        let e = parse(&text).unwrap_err();
        assert!(
            e.to_string().contains("connector[0].limits.memory_mib"),
            "{e}"
        );
    }

    #[test]
    fn grant_for_unknown_connector_is_an_error() {
        let e = parse(&format!(
            "{BASE}\n[[grant]]\nconnector = \"jira\"\nurl = \"https://x.atlassian.net/\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("grant[0].connector"), "{e}");
    }

    #[test]
    fn literal_secret_in_auth_is_refused() {
        let e = parse(&format!(
            "{BASE}\n[[grant]]\nconnector = \"confluence\"\nurl = \"https://x.atlassian.net/\"\nauth = {{ type = \"bearer\", token = \"hunter2\" }}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("grant[0].auth.token"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn wildcard_url_grant_parses() {
        let c = parse(&format!(
            "{BASE}\n[[grant]]\nconnector = \"confluence\"\nurl = \"https://*.atlassian.net/wiki/\"\nmethods = [\"GET\", \"post\"]\nexact_paths = [\"/wiki/rest/api/content/*/permission/check\"]\nallow_wildcard_credentials = true\nauth = {{ type = \"basic\", username = \"a@b.c\", password = \"secret:tok\" }}\n"
        ))
        .unwrap();
        let g = &c.grants[0];
        assert_eq!(g.scheme, "https");
        assert_eq!(g.port, 443);
        assert!(g.host.matches("acme.atlassian.net"));
        assert!(!g.host.matches("atlassian.net"));
        assert!(g.methods.allows(&http::Method::POST));
        assert_eq!(c.connectors[0].component, Path::new("/etc/airlock/c.wasm"));
    }

    #[test]
    fn grants_are_named_by_the_operator_or_by_position_and_names_are_unique_per_connector() {
        let grant = |extra: &str| {
            format!(
                "\n[[grant]]\nconnector = \"confluence\"\nurl = \"https://x.example/\"\n{extra}"
            )
        };
        let c = parse(&format!(
            "{BASE}{}{}",
            grant("name = \"graph-read\""),
            grant("")
        ))
        .unwrap();
        assert_eq!(c.grants[0].name, "graph-read");
        assert_eq!(c.grants[1].name, "grant-1");
        // Counted per connector: another connector's grant in between changes nothing.
        let c = parse(&format!(
            "{BASE}\n[[connector]]\nid = \"other\"\ncomponent = \"o.wasm\"\n{}\n[[grant]]\nconnector = \"other\"\nurl = \"https://o.example/\"\n{}",
            grant(""),
            grant("")
        ))
        .unwrap();
        let names: Vec<(&str, &str)> = c
            .grants
            .iter()
            .map(|g| (g.connector.as_str(), g.name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("confluence", "grant-0"),
                ("other", "grant-0"),
                ("confluence", "grant-1")
            ]
        );
        let e = parse(&format!(
            "{BASE}{}{}",
            grant("name = \"same\""),
            grant("name = \"same\"")
        ))
        .unwrap_err();
        assert!(e.to_string().contains("grant[1].name"), "{e}");
        for bad in [
            "",
            "Upper",
            "has space",
            "-lead",
            "a\\u0000b",
            &"x".repeat(65),
        ] {
            let e =
                parse(&format!("{BASE}{}", grant(&format!("name = \"{bad}\"")))).expect_err(bad);
            assert!(e.to_string().contains("grant[0].name"), "{bad}: {e}");
        }
    }

    #[test]
    fn audit_settings_metrics_token_and_denial_budget_parse_and_are_checked() {
        let c = parse(&format!(
            "[server]\nmetrics_token = \"env:METRICS\"\n[limits]\ndenial_budget = 5\n[audit]\nqueue_rows = 64\ncheckpoint_rows = 10\ncheckpoint_interval = \"5s\"\ncheckpoint_sink = \"stdout\"\ndurability = \"fsync\"\n{BASE}"
        ))
        .unwrap();
        assert_eq!(
            c.server.metrics_token,
            Some(SecretRef::Env("METRICS".into()))
        );
        assert_eq!(c.limits.denial_budget, 5);
        assert_eq!(c.connectors[0].limits.denial_budget, 5);
        assert_eq!(c.audit.queue_rows, 64);
        assert_eq!(c.audit.checkpoint_rows, 10);
        assert_eq!(c.audit.durability, crate::store::audit::Durability::Fsync);
        assert_eq!(c.audit.checkpoint_interval, Duration::from_secs(5));
        assert_eq!(
            c.audit.checkpoint_sink,
            crate::store::checkpoint::Sink::Stdout
        );
        assert_eq!(parse(BASE).unwrap().limits.denial_budget, 100);
        for (bad, key) in [
            (
                "[audit]\ncheckpoint_sink = \"webhook\"",
                "audit.checkpoint_sink",
            ),
            ("[audit]\ncheckpoint_rows = 0", "audit.checkpoint_rows"),
            ("[audit]\nqueue_rows = 1", "audit.queue_rows"),
            ("[audit]\ndurability = \"always\"", "audit.durability"),
            ("[limits]\ndenial_budget = 0", "limits.denial_budget"),
            (
                "[server]\nmetrics_token = \"plain\"",
                "server.metrics_token",
            ),
        ] {
            let e = parse(&format!("{bad}\n{BASE}")).expect_err(bad);
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn duplicate_connector_ids_are_an_error() {
        let e = parse(&format!("{BASE}{BASE}")).unwrap_err();
        assert!(e.to_string().contains("duplicate connector id"), "{e}");
    }

    #[test]
    fn a_pinned_digest_and_trust_keys_are_validated() {
        let d = "AB".repeat(32);
        let c = parse(&format!("{BASE}sha256 = \"{d}\"\n")).expect("config");
        assert_eq!(
            c.connectors[0].sha256.as_deref(),
            Some("ab".repeat(32).as_str())
        );
        let e = parse(&format!("{BASE}sha256 = \"abc\"\n")).unwrap_err();
        assert!(e.to_string().contains("connector[0].sha256"), "{e}");

        let (_, _, line, id) = crate::integrity::generate("").unwrap();
        let c = parse(&format!(
            "{BASE}\n[trust]\nkeys = [\"{line}\"]\nrequire_signature = true\n"
        ))
        .expect("config");
        assert!(c.trust.require_signature);
        assert_eq!(c.trust.keys[0].id(), id);
        let e = parse(&format!("{BASE}\n[trust]\nrequire_signature = true\n")).unwrap_err();
        assert!(e.to_string().contains("trust.require_signature"), "{e}");
        let e = parse(&format!("{BASE}\n[trust]\nkeys = [\"RWQbogus\"]\n")).unwrap_err();
        assert!(e.to_string().contains("trust.keys[0]"), "{e}");
    }

    #[test]
    fn bad_resolve_address_is_named() {
        let e = parse(&format!("{BASE}\n[resolve]\n\"meta.test\" = \"nope\"\n")).unwrap_err();
        assert!(e.to_string().contains("resolve.meta.test"), "{e}");
    }

    fn grant(body: &str) -> Result<Config, ConfigError> {
        parse(&format!(
            "{BASE}\n[[grant]]\nconnector = \"confluence\"\n{body}\n"
        ))
    }

    #[test]
    fn write_methods_on_a_grant_without_writes_need_exact_paths() {
        let e = grant("url = \"https://graph.example.com/v1.0/\"\nmethods = [\"GET\", \"POST\"]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("grant[0].methods: POST on a grant without `writes = true`"),
            "{e}"
        );
        assert!(e.contains("exact_paths"), "{e}");
        let e = grant("url = \"https://graph.example.com/v1.0/\"\nmethods = [\"*\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grant[0].methods"), "{e}");
        let c = grant(
            "url = \"https://graph.example.com/v1.0/\"\nmethods = [\"GET\", \"POST\"]\nexact_paths = [\"/v1.0/search/query\"]",
        )
        .expect("exact paths");
        assert!(c.grants[0].exact_paths.is_some());
        // A writes grant keeps its prefix (its writes need a write action and an approval).
        grant("url = \"https://graph.example.com/v1.0/\"\nmethods = [\"POST\"]\nwrites = true")
            .expect("writes grant");
        let e = grant(
            "url = \"https://graph.example.com/v1.0/\"\nexact_paths = [\"/v1.0/search/query\"]",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("grant[0].exact_paths: limits write methods"),
            "{e}"
        );
        let e = grant(
            "url = \"https://graph.example.com/v1.0/\"\nmethods = [\"POST\"]\nexact_paths = [\"/v1.0/\"]",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("grant[0].exact_paths: `/v1.0/` ends with `/`"),
            "{e}"
        );
    }

    #[test]
    fn wildcard_hosts_carry_credentials_only_when_the_grant_says_so() {
        let auth = "auth = { type = \"bearer\", token = \"secret:t\" }";
        let e = grant(&format!("url = \"https://*.atlassian.net/\"\n{auth}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("grant[0].auth: a wildcard host (`*.atlassian.net`)"),
            "{e}"
        );
        assert!(e.contains("allow_wildcard_credentials = true"), "{e}");
        grant(&format!(
            "url = \"https://*.atlassian.net/\"\nallow_wildcard_credentials = true\n{auth}"
        ))
        .expect("allowed on purpose");
        grant("url = \"https://*.atlassian.net/\"").expect("no credentials, no question");
    }

    #[test]
    fn an_on_behalf_of_grant_names_its_scopes_and_keeps_its_secret_a_reference() {
        let obo = |token_url: &str, rest: &str| {
            format!(
                "url = \"https://graph.example.com/\"\nauth = {{ type = \"oauth2-obo\", token_url = \"{token_url}\", client_id = \"app\", {rest} }}"
            )
        };
        let ok = grant(&obo(
            "https://login.example.com/t/oauth2/v2.0/token",
            "client_secret = \"secret:s\", scopes = [\"https://graph.microsoft.com/.default\"]",
        ))
        .expect("valid");
        let AuthConfig::OnBehalfOf(o) = &ok.grants[0].auth else {
            panic!("not on-behalf-of: {:?}", ok.grants[0].auth);
        };
        assert_eq!(o.scopes, ["https://graph.microsoft.com/.default"]);
        assert_eq!(ok.grants[0].auth.secret_refs().len(), 1);
        for (body, wants) in [
            (
                obo(
                    "https://login.example.com/t",
                    "client_secret = \"secret:s\"",
                ),
                "auth.scopes",
            ),
            (
                obo(
                    "https://login.example.com/t",
                    "client_secret = \"plain-secret\", scopes = [\"x\"]",
                ),
                "client_secret",
            ),
            (
                obo(
                    "http://login.example.com/t",
                    "client_secret = \"secret:s\", scopes = [\"x\"]",
                ),
                "auth.token_url",
            ),
        ] {
            let e = grant(&body).unwrap_err().to_string();
            assert!(e.contains(wants), "{wants}: {e}");
        }
    }

    #[test]
    fn credentials_over_plain_http_need_allow_insecure() {
        let e = grant(
            "url = \"http://wiki.example.com/\"\nauth = { type = \"basic\", username = \"u\", password = \"secret:p\" }",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("grant[0].auth: credentials over plain `http`"),
            "{e}"
        );
        let oauth = "auth = { type = \"oauth2\", token_url = \"http://login.example.com/token\", client_id = \"c\", client_secret = \"secret:s\" }";
        let e = grant(&format!("url = \"https://graph.example.com/\"\n{oauth}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("grant[0].auth.token_url"), "{e}");
        grant(&format!(
            "url = \"https://graph.example.com/\"\nallow_insecure = true\n{oauth}"
        ))
        .expect("allowed on purpose");
        grant("url = \"http://wiki.example.com/\"").expect("no credentials, no question");
    }

    #[test]
    fn metadata_host_names_cannot_be_granted() {
        let e = grant("url = \"http://metadata.google.internal/\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grant[0].host"), "{e}");
    }

    #[test]
    fn self_approval_is_off_unless_configured() {
        assert!(!parse(BASE).expect("config").approvals.allow_self_approval);
        let c = parse(&format!(
            "{BASE}\n[approvals]\nallow_self_approval = true\n"
        ))
        .expect("config");
        assert!(c.approvals.allow_self_approval);
    }
}
