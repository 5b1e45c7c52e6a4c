//! The pooled upstream client and the resolver behind it. Name resolution happens here, at
//! connect time, so the address check cannot be bypassed by DNS rebinding between a check and
//! the connection: a connection is only ever opened to an address that passed the check.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use super::address::{Class, classify};

/// The client type the gate sends with (request bodies are buffered, see the gate).
pub type UpstreamClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<GateResolver>>, Full<Bytes>>;

/// A resolved address the destination may not use; carried inside the connect error so the
/// gate can audit a precise reason.
#[derive(Debug)]
pub struct AddressDenied {
    pub host: String,
    pub ip: IpAddr,
    pub class: &'static str,
}

impl std::fmt::Display for AddressDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves to {}, {}", self.host, self.ip, self.class)
    }
}

impl std::error::Error for AddressDenied {}

/// Resolves with the configured overrides first, then the system resolver, and drops
/// addresses the grant may not reach.
#[derive(Clone)]
pub struct GateResolver {
    overrides: Arc<BTreeMap<String, Vec<IpAddr>>>,
    allow_private: bool,
}

impl tower_service::Service<Name> for GateResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let ips: Vec<IpAddr> = match this.overrides.get(&host) {
                Some(ips) => ips.clone(),
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await?
                    .map(|a| a.ip())
                    .collect(),
            };
            let mut allowed = Vec::new();
            let mut first_denied = None;
            for ip in ips {
                // A name never counts as naming a sensitive address on purpose.
                match check_ip(ip, this.allow_private) {
                    None => allowed.push(SocketAddr::new(ip, 0)),
                    Some(class) => {
                        first_denied.get_or_insert(AddressDenied {
                            host: host.clone(),
                            ip,
                            class,
                        });
                    }
                }
            }
            if allowed.is_empty() {
                return Err(match first_denied {
                    Some(d) => io::Error::new(io::ErrorKind::PermissionDenied, d),
                    None => {
                        io::Error::new(io::ErrorKind::NotFound, format!("{host}: no addresses"))
                    }
                });
            }
            Ok(allowed.into_iter())
        })
    }
}

/// Why `ip`, reached through a name, may not be contacted under this grant, if it may not. A name
/// never counts as naming a link-local or metadata address on purpose.
pub fn check_ip(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    check_literal_ip(ip, allow_private, false)
}

/// Why `ip` may not be contacted under this grant, if it may not. `named_exactly`: the grant's
/// host is this very IP literal, the one way to reach a link-local or metadata address (and then
/// only with `allow_private`).
pub fn check_literal_ip(
    ip: IpAddr,
    allow_private: bool,
    named_exactly: bool,
) -> Option<&'static str> {
    match classify(ip) {
        Class::Public => None,
        Class::Private(why) => (!allow_private).then_some(why),
        Class::Sensitive(_) if allow_private && named_exactly => None,
        Class::Sensitive(why) => Some(why),
    }
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

/// Finds an [`AddressDenied`] anywhere in an error's source chain.
pub fn find_address_denied<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a AddressDenied> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(d) = e.downcast_ref::<AddressDenied>() {
            return Some(d);
        }
        if let Some(ioe) = e.downcast_ref::<io::Error>()
            && let Some(inner) = ioe.get_ref()
            && let Some(d) = inner.downcast_ref::<AddressDenied>()
        {
            return Some(d);
        }
        cur = e.source();
    }
    None
}

/// Two pools: one whose resolver refuses non-public addresses, one for grants with
/// `allow_private = true`. Both keep idle connections for reuse.
pub struct Net {
    public: UpstreamClient,
    private: UpstreamClient,
}

impl Net {
    pub fn new(overrides: BTreeMap<String, Vec<IpAddr>>, connect_timeout: Duration) -> Net {
        let overrides = Arc::new(overrides);
        let build = |allow_private: bool| {
            let mut http = HttpConnector::new_with_resolver(GateResolver {
                overrides: overrides.clone(),
                allow_private,
            });
            http.enforce_http(false);
            http.set_connect_timeout(Some(connect_timeout));
            http.set_nodelay(true);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(http);
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(64)
                .build(https)
        };
        Net {
            public: build(false),
            private: build(true),
        }
    }

    pub fn client(&self, allow_private: bool) -> &UpstreamClient {
        if allow_private {
            &self.private
        } else {
            &self.public
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use tower_service::Service;

    #[tokio::test]
    async fn resolver_refuses_loopback_and_metadata_overrides() {
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "meta.test".to_string(),
            vec!["169.254.169.254".parse().unwrap()],
        );
        overrides.insert("inside.test".to_string(), vec!["10.0.0.7".parse().unwrap()]);
        let overrides = Arc::new(overrides);
        let mut public = GateResolver {
            overrides: overrides.clone(),
            allow_private: false,
        };
        let mut private = GateResolver {
            overrides,
            allow_private: true,
        };
        for (host, class) in [
            ("meta.test", "metadata"),
            ("inside.test", "private"),
            ("localhost", "loopback"),
        ] {
            let e = public
                .call(Name::from_str(host).unwrap())
                .await
                .unwrap_err();
            let d = find_address_denied(&e).expect("denied");
            assert!(d.class.contains(class), "{host}: {d}");
        }
        assert!(
            private
                .call(Name::from_str("inside.test").unwrap())
                .await
                .is_ok()
        );
        assert!(
            private
                .call(Name::from_str("meta.test").unwrap())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn resolver_refuses_link_local_and_embedded_metadata_even_with_allow_private() {
        let mut overrides = BTreeMap::new();
        for (name, ip) in [
            ("ll.test", "169.254.7.7"),
            ("ll6.test", "fe80::1"),
            ("ecs.test", "169.254.170.2"),
            ("wire.test", "168.63.129.16"),
            ("nat64.test", "64:ff9b::a9fe:a9fe"),
            ("sixtofour.test", "2002:a9fe:a9fe::1"),
            ("imds6.test", "fd00:ec2::254"),
        ] {
            overrides.insert(name.to_string(), vec![ip.parse().unwrap()]);
        }
        let mut private = GateResolver {
            overrides: Arc::new(overrides),
            allow_private: true,
        };
        for host in [
            "ll.test",
            "ll6.test",
            "ecs.test",
            "wire.test",
            "nat64.test",
            "sixtofour.test",
            "imds6.test",
        ] {
            let e = private
                .call(Name::from_str(host).unwrap())
                .await
                .expect_err(host);
            assert!(find_address_denied(&e).is_some(), "{host}: {e}");
        }
    }

    #[test]
    fn a_sensitive_address_is_reachable_only_when_named_exactly_with_allow_private() {
        let ecs: IpAddr = "169.254.170.2".parse().unwrap();
        assert!(check_literal_ip(ecs, true, true).is_none());
        assert!(check_literal_ip(ecs, false, true).is_some());
        assert!(check_literal_ip(ecs, true, false).is_some());
        let private: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(check_literal_ip(private, true, false).is_none());
        assert!(check_literal_ip(private, false, true).is_some());
    }
}
