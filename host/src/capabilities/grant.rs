//! What a grant is: its scope (scheme, host pattern, port, methods, path prefix, exact paths), the
//! credential the gate injects for it, its resilience settings, and the secret references those
//! name. `config` parses `[[connector.grant]]` into these; `policy` matches requests against them.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;

use super::path::normalize;

/// Where a credential comes from. Never holds the value itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// A secret in the encrypted vault (`airlock secrets set NAME`).
    Vault(String),
    /// An environment variable of the daemon.
    Env(String),
    /// A file whose contents (trailing newline removed) is the value.
    File(PathBuf),
}

impl SecretRef {
    /// Parses `secret:NAME`, `env:VAR` or `file:PATH` (relative paths against `base`).
    pub fn parse(s: &str, base: &Path) -> Result<SecretRef, String> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            "must be a secret reference: `secret:NAME`, `env:VAR` or `file:PATH`".to_string()
        })?;
        if rest.is_empty() {
            return Err(format!("`{kind}:` reference has an empty name"));
        }
        match kind {
            "secret" => {
                crate::store::vault::validate_name(rest)?;
                Ok(SecretRef::Vault(rest.to_string()))
            }
            "env" => Ok(SecretRef::Env(rest.to_string())),
            "file" => Ok(SecretRef::File(base.join(rest))),
            other => Err(format!(
                "unknown reference kind `{other}:`; use `secret:NAME`, `env:VAR` or `file:PATH`"
            )),
        }
    }

    /// The vault name, when this is a vault reference.
    pub fn vault_name(&self) -> Option<&str> {
        match self {
            SecretRef::Vault(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Vault(n) => write!(f, "secret:{n}"),
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Whether a config value is written like a secret reference (`secret:`, `env:`, `file:`).
pub fn looks_like_reference(s: &str) -> bool {
    ["secret:", "env:", "file:"]
        .iter()
        .any(|p| s.trim_start().starts_with(p))
}

/// One half of a Basic credential: written in the file (a user name, or a fixed password such as
/// Freshdesk's `X`), or a reference to a secret the gate resolves at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasicPart {
    Literal(String),
    Secret(SecretRef),
}

impl BasicPart {
    /// A reference when the value is written like one, else the literal.
    pub fn parse(s: &str, base: &Path) -> Result<BasicPart, String> {
        if looks_like_reference(s) {
            SecretRef::parse(s.trim(), base).map(BasicPart::Secret)
        } else {
            Ok(BasicPart::Literal(s.to_string()))
        }
    }

    pub fn secret(&self) -> Option<&SecretRef> {
        match self {
            BasicPart::Secret(r) => Some(r),
            BasicPart::Literal(_) => None,
        }
    }
}

/// Authentication the gate injects for a grant.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    None,
    /// At least one half is a secret reference (the API key as the user name, or the password).
    Basic {
        username: BasicPart,
        password: BasicPart,
    },
    Bearer {
        token: SecretRef,
    },
    /// A custom header such as `X-API-KEY` or `api-key`.
    Header {
        name: http::HeaderName,
        value: SecretRef,
    },
    /// OAuth2 client-credentials: the host fetches and caches the token.
    OAuth2 {
        token_url: url::Url,
        client_id: String,
        client_secret: SecretRef,
        scope: Option<String>,
    },
    /// Delegated OAuth (`oauth2-user`): the token of the principal the invocation runs for,
    /// which that person connected through `/v1/connections/{connector}/authorize`.
    OAuth2User(std::sync::Arc<UserOAuth>),
    /// On-behalf-of (`oauth2-obo`): the signed-in person's access token traded at the identity
    /// provider for an upstream token of theirs (see `capabilities::on_behalf_of`).
    OnBehalfOf(std::sync::Arc<OboConfig>),
}

/// An `oauth2-obo` grant's application at the identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OboConfig {
    pub token_url: url::Url,
    pub client_id: String,
    pub client_secret: SecretRef,
    /// The upstream's scopes, e.g. `https://graph.microsoft.com/.default`.
    pub scopes: Vec<String>,
}

/// An `oauth2-user` grant's upstream application: where people sign in and tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserOAuth {
    pub authorize_url: url::Url,
    pub token_url: url::Url,
    pub client_id: String,
    pub client_secret: SecretRef,
    pub scopes: Vec<String>,
    /// RFC 7009 revocation endpoint, called when a person disconnects (optional).
    pub revoke_url: Option<url::Url>,
    /// This daemon's `/v1/connections/{connector}/callback`, as registered upstream.
    pub redirect_uri: url::Url,
    /// Where the connected account is read (with its new access token); None: the id_token.
    pub userinfo_url: Option<url::Url>,
    /// Whether a connect is refused unless the upstream account is the principal's own.
    pub verify_account: bool,
}

impl AuthConfig {
    /// Every secret reference this auth needs.
    pub fn secret_refs(&self) -> Vec<&SecretRef> {
        match self {
            AuthConfig::None => vec![],
            AuthConfig::Basic { username, password } => [username, password]
                .into_iter()
                .filter_map(BasicPart::secret)
                .collect(),
            AuthConfig::Bearer { token } => vec![token],
            AuthConfig::Header { value, .. } => vec![value],
            AuthConfig::OAuth2 { client_secret, .. } => vec![client_secret],
            AuthConfig::OAuth2User(u) => vec![&u.client_secret],
            AuthConfig::OnBehalfOf(o) => vec![&o.client_secret],
        }
    }
}

/// One outbound permission of a connector.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Position in the file (`grant[N]`), for messages.
    pub index: usize,
    /// The operator's name for the grant (`name = "graph-read"`, default `grant-N`, N counting the connector's own grants): unique per
    /// connector, and the only grant label in metrics, audit reasons and the API.
    pub name: String,
    pub connector: String,
    pub scheme: String,
    pub host: HostPattern,
    pub port: u16,
    pub methods: MethodSet,
    pub path_prefix: PathPrefix,
    /// Whether the destination may resolve to loopback/private/link-local addresses.
    pub allow_private: bool,
    /// Whether the connector may read this grant's secrets through the `secret()` import.
    pub reveal: bool,
    /// Whether actions marked `writes` may send write requests (POST, PUT, PATCH, DELETE)
    /// through this grant. Off by default.
    pub writes: bool,
    /// Whether write actions through this grant run without an approval (`writes_preapproved`).
    pub writes_preapproved: bool,
    /// Where write methods (anything but GET, HEAD, OPTIONS) may go through this grant; required
    /// when a grant without `writes` lists a write method (`exact_paths`).
    pub exact_paths: Option<ExactPaths>,
    pub auth: AuthConfig,
    /// Rate budget, retries, circuit breaker and response cache of this grant.
    pub resilience: Resilience,
    /// `tls = { ca_file }`: CA certificates trusted for this grant's destinations, besides the
    /// daemon's roots (a private CA need not be trusted for every connector).
    pub tls_ca: Option<super::trust::CaBundle>,
}

/// How the gate spends and protects one grant's upstream (see docs/configuration.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Resilience {
    /// Token bucket: sustained requests per second...
    pub rate_per_second: f64,
    /// ...and how many may go at once after a quiet spell.
    pub burst: u32,
    /// Requests in flight at once through this grant.
    pub concurrency: u32,
    /// Attempts per request in all (1 = no retries).
    pub retry_attempts: u32,
    /// First backoff ceiling; doubles per attempt, full jitter.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker fails fast before letting one probe through.
    pub breaker_cooldown: Duration,
    /// GET responses cached this long (None: no cache).
    pub cache_ttl: Option<Duration>,
    /// The part of the grant's turns that background work (syncs) keeps while interactive
    /// work waits too (0..=1).
    pub background_share: f64,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            rate_per_second: 50.0,
            burst: 100,
            concurrency: 16,
            retry_attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            cache_ttl: None,
            background_share: 0.2,
        }
    }
}

/// A grant's host: an exact name (or IP literal) or `*.suffix` for any subdomain of suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// Stored with its leading dot: `.atlassian.net`.
    Suffix(String),
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let s = s.trim().to_ascii_lowercase();
        if let Some(rest) = s.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') || !rest.contains('.') {
                return Err(format!(
                    "`{s}`: a wildcard needs a domain with at least two labels, like `*.example.com`"
                ));
            }
            check_host_chars(rest)?;
            return Ok(HostPattern::Suffix(format!(".{rest}")));
        }
        if s.is_empty() || s.contains('*') {
            return Err(format!(
                "`{s}` is not a host name; wildcards only as a leading `*.`"
            ));
        }
        if s.parse::<IpAddr>().is_err() {
            check_host_chars(&s)?;
        }
        Ok(HostPattern::Exact(s))
    }

    /// `host` must already be lowercase.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }
}

fn check_host_chars(s: &str) -> Result<(), String> {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        Ok(())
    } else {
        Err(format!("`{s}` is not a valid host name"))
    }
}

/// The methods RFC 9110 and RFC 5789 (PATCH) define; a grant may list only these.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The methods a grant allows; `*` allows all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodSet {
    Any,
    Only(BTreeSet<String>),
}

impl MethodSet {
    pub fn parse(list: &[String]) -> Result<MethodSet, String> {
        if list.is_empty() {
            return Err("must list at least one method (or \"*\")".into());
        }
        let mut set = BTreeSet::new();
        for m in list {
            if m == "*" {
                return Ok(MethodSet::Any);
            }
            let up = m.to_ascii_uppercase();
            // Only the methods HTTP defines: `Method::from_bytes` takes any token, so a typo
            // like `FETCH` would load and then silently deny every request.
            if !KNOWN_METHODS.contains(&up.as_str()) {
                return Err(format!(
                    "`{m}` is not an HTTP method (one of {}, or \"*\")",
                    KNOWN_METHODS.join(", ")
                ));
            }
            set.insert(up);
        }
        Ok(MethodSet::Only(set))
    }

    pub fn allows(&self, m: &Method) -> bool {
        match self {
            MethodSet::Any => true,
            MethodSet::Only(set) => set.contains(m.as_str()),
        }
    }
}

/// A path prefix matched at segment boundaries: `/wiki/` matches `/wiki` and `/wiki/x`, never
/// `/wikipedia`. Always in normal form (see [`super::path::normalize`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPrefix(String);

impl PathPrefix {
    pub fn parse(s: &str) -> Result<PathPrefix, String> {
        let mut p = normal_form(s)?;
        if !p.ends_with('/') {
            p.push('/');
        }
        Ok(PathPrefix(p))
    }

    pub fn matches(&self, path: &str) -> bool {
        path.starts_with(&self.0) || path == &self.0[..self.0.len() - 1]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A configured path must already be what the gate would send: no dot segments, `;`, encoded
/// separators and so on, so what the operator reads is what is matched.
fn normal_form(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("`{s}` must start with `/`"));
    }
    let n = normalize(s).map_err(|reason| format!("`{s}`: {reason}"))?;
    if n != s {
        return Err(format!("`{s}` is not in normal form; write it as `{n}`"));
    }
    Ok(n)
}

/// Whether a method may change state (anything but the safe GET, HEAD, OPTIONS and TRACE).
pub fn is_write_method(m: &Method) -> bool {
    // RFC 9110's safe methods; TRACE changes nothing upstream (what it reflects back passes
    // the gate's reflection checks like any answer).
    !matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// `exact_paths`: where a grant without `writes` may use its write methods. Each entry is a whole
/// path; a segment that is exactly `*` stands for one non-empty segment (an id), nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactPaths(Vec<String>);

impl ExactPaths {
    /// Each path must be in normal form and inside `prefix`.
    pub fn parse(list: &[String], prefix: &PathPrefix) -> Result<ExactPaths, String> {
        if list.is_empty() {
            return Err("list at least one path".into());
        }
        let mut out = Vec::new();
        for p in list {
            // `*` is not a valid path byte to refuse, so check the form with it swapped out.
            let n = normal_form(&p.replace("/*", "/x"))?;
            if n.ends_with('/') && n.len() > 1 {
                return Err(format!(
                    "`{p}` ends with `/`: exact paths are whole paths, not prefixes"
                ));
            }
            if p.split('/').any(|seg| seg.contains('*') && seg != "*") {
                return Err(format!(
                    "`{p}`: `*` may only stand for a whole segment (`/content/*/permission/check`)"
                ));
            }
            if !prefix.matches(p) {
                return Err(format!(
                    "`{p}` is outside the grant's path prefix {}",
                    prefix.as_str()
                ));
            }
            out.push(p.clone());
        }
        Ok(ExactPaths(out))
    }

    /// `path` must be normalised.
    pub fn matches(&self, path: &str) -> bool {
        self.0.iter().any(|pat| {
            let (mut a, mut b) = (pat.split('/'), path.split('/'));
            loop {
                match (a.next(), b.next()) {
                    (None, None) => return true,
                    (Some("*"), Some(seg)) if !seg.is_empty() => {}
                    (Some(x), Some(y)) if x == y => {}
                    _ => return false,
                }
            }
        })
    }

    pub fn list(&self) -> &[String] {
        &self.0
    }
}
