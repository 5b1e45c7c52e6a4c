//! The pooled upstream clients: TLS over the [`Dialer`] (direct through the gate's resolver, or
//! through the egress proxy), trusting the roots `[outbound]` and the grants name.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;

use super::dial::{Dialer, ProxyRoute};
use super::egress::ProxySettings;
use super::resolver::GateResolver;
use super::trust::{self, CaBundle, TrustSettings};

pub use super::resolver::{AddressDenied, check_ip, check_literal_ip, find_address_denied};

/// The client type the gate sends with (request bodies are buffered, see the gate).
pub type UpstreamClient = Client<hyper_rustls::HttpsConnector<Dialer>, Full<Bytes>>;

/// `[outbound]`: how connections leave the machine (trust and proxy), for every pool.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutboundSettings {
    pub trust: TrustSettings,
    pub proxy: ProxySettings,
    /// Read the proxy environment when `proxy` is not configured (default on).
    pub proxy_from_env: bool,
}

/// An error and all its sources, on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// Two pools: one whose resolver refuses non-public addresses, one for grants with
/// `allow_private = true`; and more for grants that trust a CA file of their own. All keep idle
/// connections for reuse.
pub struct Net {
    public: UpstreamClient,
    private: UpstreamClient,
    builder: PoolBuilder,
    /// Pools of grants with `tls.ca_file`, by (allow_private, bundle digest): grants (and
    /// reloads) that name the same bundle share one.
    with_ca: Mutex<HashMap<(bool, String), UpstreamClient>>,
}

/// What every pool is made of.
struct PoolBuilder {
    overrides: Arc<BTreeMap<String, Vec<IpAddr>>>,
    connect_timeout: Duration,
    roots: RootCertStore,
    proxy: Option<Arc<ProxyRoute>>,
}

impl PoolBuilder {
    fn http(&self, resolver: GateResolver) -> HttpConnector<GateResolver> {
        let mut http = HttpConnector::new_with_resolver(resolver);
        http.enforce_http(false);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_nodelay(true);
        http
    }

    fn build(&self, allow_private: bool, extra: Option<&CaBundle>) -> UpstreamClient {
        let resolver = GateResolver::new(self.overrides.clone(), allow_private);
        let dialer = Dialer {
            direct: self.http(resolver.clone()),
            resolver,
            proxy: self.proxy.clone(),
        };
        let mut roots = self.roots.clone();
        if let Some(ca) = extra {
            trust::add_bundle(&mut roots, ca);
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(trust::client_config(roots))
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(dialer);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(https)
    }
}

impl Net {
    pub fn new(
        overrides: BTreeMap<String, Vec<IpAddr>>,
        connect_timeout: Duration,
        outbound: &OutboundSettings,
    ) -> Net {
        let overrides = Arc::new(overrides);
        let mut builder = PoolBuilder {
            overrides: overrides.clone(),
            connect_timeout,
            roots: trust::base_roots(&outbound.trust),
            proxy: None,
        };
        if outbound.proxy.is_set() {
            builder.proxy = Some(Arc::new(ProxyRoute {
                matcher: outbound.proxy.matcher(),
                to_proxy: builder.http(GateResolver::unchecked(overrides)),
            }));
            tracing::info!(
                http = outbound.proxy.http.as_deref().unwrap_or("direct"),
                https = outbound.proxy.https.as_deref().unwrap_or("direct"),
                no_proxy = %outbound.proxy.no_proxy.join(","),
                "outbound connections go through the egress proxy (from {})",
                outbound.proxy.source
            );
        }
        Net {
            public: builder.build(false, None),
            private: builder.build(true, None),
            builder,
            with_ca: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self, allow_private: bool) -> &UpstreamClient {
        if allow_private {
            &self.private
        } else {
            &self.public
        }
    }

    /// The pool for a grant: the shared one, or one that also trusts the grant's CA file.
    pub fn client_for(&self, allow_private: bool, ca: Option<&CaBundle>) -> UpstreamClient {
        let Some(ca) = ca else {
            return self.client(allow_private).clone();
        };
        let key = (allow_private, ca.digest().to_string());
        // A poisoned lock only means another thread panicked while inserting: the map is fine.
        let mut pools = self.with_ca.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .entry(key)
            .or_insert_with(|| self.builder.build(allow_private, Some(ca)))
            .clone()
    }
}
