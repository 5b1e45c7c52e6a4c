//! Name resolution for upstream connections, and the address rules it applies. Resolution
//! happens at connect time, so the address check cannot be bypassed by DNS rebinding between a
//! check and the connection: a connection is only ever opened to an address that passed it.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

use super::address::{Class, classify};

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
    /// Only for the operator's egress proxy: no address rules (the operator named it).
    unchecked: bool,
}

impl GateResolver {
    pub fn new(overrides: Arc<BTreeMap<String, Vec<IpAddr>>>, allow_private: bool) -> Self {
        GateResolver {
            overrides,
            allow_private,
            unchecked: false,
        }
    }

    /// For the egress proxy the operator configured: overrides apply, address rules do not.
    pub fn unchecked(overrides: Arc<BTreeMap<String, Vec<IpAddr>>>) -> Self {
        GateResolver {
            overrides,
            allow_private: true,
            unchecked: true,
        }
    }
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
            if this.unchecked {
                return Ok(ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter());
            }
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
        let mut public = GateResolver::new(overrides.clone(), false);
        let mut private = GateResolver::new(overrides, true);
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
        let mut private = GateResolver::new(Arc::new(overrides), true);
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
