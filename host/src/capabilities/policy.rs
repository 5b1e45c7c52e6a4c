//! Grant matching: scheme, host (exact or `*.suffix`), port, method and path prefix; and the
//! address classes a destination may not resolve to unless a grant allows private addresses.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::Method;

use crate::config::Grant;

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
            if Method::from_bytes(up.as_bytes()).is_err() || up.is_empty() {
                return Err(format!("`{m}` is not an HTTP method"));
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
/// `/wikipedia`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPrefix(String);

impl PathPrefix {
    pub fn parse(s: &str) -> Result<PathPrefix, String> {
        if !s.starts_with('/') {
            return Err(format!("`{s}` must start with `/`"));
        }
        if let Some(reason) = unsafe_path(s) {
            return Err(format!("`{s}`: {reason}"));
        }
        let mut p = s.to_string();
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

/// Paths that an upstream could normalize to somewhere outside the granted prefix.
fn unsafe_path(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") {
        return Some("encoded `.`, `/` or `\\` are not allowed in paths");
    }
    if path.contains('\\') {
        return Some("backslashes are not allowed in paths");
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Some("`.` and `..` segments are not allowed in paths");
    }
    None
}

/// What an outbound request asks for.
pub struct Target<'a> {
    pub method: &'a Method,
    pub scheme: &'a str,
    /// Lowercase, without brackets for IPv6.
    pub host: &'a str,
    pub port: u16,
    pub path: &'a str,
}

/// Finds the grant that allows `t`, or explains the closest miss.
/// Returns the index of the matching grant in `grants`.
pub fn find_grant(grants: &[Grant], t: &Target<'_>) -> Result<usize, String> {
    if let Some(reason) = unsafe_path(t.path) {
        return Err(format!("path refused: {reason}"));
    }
    // Depth of the best partial match, for a precise reason: 1 host, 2 scheme+port, 3 path.
    let mut best: (u8, String) = (
        0,
        format!(
            "no grant for host {} (scheme {}, port {})",
            t.host, t.scheme, t.port
        ),
    );
    for (i, g) in grants.iter().enumerate() {
        if !g.host.matches(t.host) {
            continue;
        }
        if g.scheme != t.scheme || g.port != t.port {
            if best.0 < 1 {
                best = (
                    1,
                    format!(
                        "host {} is granted only as {}://…:{}, not {}://…:{}",
                        t.host, g.scheme, g.port, t.scheme, t.port
                    ),
                );
            }
            continue;
        }
        if !g.path_prefix.matches(t.path) {
            if best.0 < 2 {
                best = (
                    2,
                    format!(
                        "path {} is outside the granted prefix {} on {}",
                        t.path,
                        g.path_prefix.as_str(),
                        t.host
                    ),
                );
            }
            continue;
        }
        if !g.methods.allows(t.method) {
            if best.0 < 3 {
                best = (
                    3,
                    format!(
                        "method {} is not granted for {}{}",
                        t.method,
                        t.host,
                        g.path_prefix.as_str()
                    ),
                );
            }
            continue;
        }
        return Ok(i);
    }
    Err(best.1)
}

/// Why an address may not be contacted without `allow_private`, or None when it is public.
pub fn restricted_address(ip: IpAddr) -> Option<&'static str> {
    if is_metadata(ip) {
        return Some("a cloud metadata address");
    }
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return restricted_v4(v4);
            }
            restricted_v6(v6)
        }
    }
}

/// Cloud metadata services are never reachable, whatever the grant says.
pub fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4 == Ipv4Addr::new(169, 254, 169, 254)
                || v4 == Ipv4Addr::new(169, 254, 170, 2)
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => {
            v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_metadata(IpAddr::V4(v4)))
        }
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("an unspecified address")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("a shared (carrier-grade NAT) address")
    } else if ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("a broadcast, multicast or reserved address")
    } else {
        None
    }
}

fn restricted_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("a private (unique local) address")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthConfig, Grant};

    fn grant(url_host: &str, scheme: &str, port: u16, prefix: &str, methods: &[&str]) -> Grant {
        Grant {
            index: 0,
            connector: "c".into(),
            scheme: scheme.into(),
            host: HostPattern::parse(url_host).unwrap(),
            port,
            methods: MethodSet::parse(&methods.iter().map(|m| m.to_string()).collect::<Vec<_>>())
                .unwrap(),
            path_prefix: PathPrefix::parse(prefix).unwrap(),
            allow_private: false,
            reveal: false,
            writes: false,
            writes_preapproved: false,
            auth: AuthConfig::None,
            resilience: Default::default(),
        }
    }

    fn target<'a>(m: &'a Method, host: &'a str, path: &'a str) -> Target<'a> {
        Target {
            method: m,
            scheme: "https",
            host,
            port: 443,
            path,
        }
    }

    #[test]
    fn exact_and_wildcard_hosts() {
        let g = [grant("*.atlassian.net", "https", 443, "/wiki/", &["GET"])];
        assert!(find_grant(&g, &target(&Method::GET, "acme.atlassian.net", "/wiki/x")).is_ok());
        let e = find_grant(&g, &target(&Method::GET, "atlassian.net", "/wiki/x")).unwrap_err();
        assert!(e.contains("no grant for host"), "{e}");
        assert!(find_grant(&g, &target(&Method::GET, "evilatlassian.net", "/wiki/")).is_err());
    }

    #[test]
    fn path_prefix_is_segment_bounded() {
        let g = [grant("a.example.com", "https", 443, "/wiki", &["GET"])];
        assert!(find_grant(&g, &target(&Method::GET, "a.example.com", "/wiki")).is_ok());
        assert!(find_grant(&g, &target(&Method::GET, "a.example.com", "/wiki/p")).is_ok());
        let e = find_grant(&g, &target(&Method::GET, "a.example.com", "/wikipedia")).unwrap_err();
        assert!(e.contains("outside the granted prefix"), "{e}");
    }

    #[test]
    fn traversal_and_encoded_separators_are_refused() {
        let g = [grant("a.example.com", "https", 443, "/wiki/", &["GET"])];
        for p in [
            "/wiki/../admin",
            "/wiki/%2e%2e/admin",
            "/wiki/a%2Fb",
            "/wiki/./x",
        ] {
            let e = find_grant(&g, &target(&Method::GET, "a.example.com", p)).unwrap_err();
            assert!(e.starts_with("path refused"), "{p}: {e}");
        }
    }

    #[test]
    fn method_and_port_misses_are_explained() {
        let g = [grant("a.example.com", "https", 443, "/", &["GET"])];
        let e = find_grant(&g, &target(&Method::DELETE, "a.example.com", "/x")).unwrap_err();
        assert!(e.contains("method DELETE is not granted"), "{e}");
        let t = Target {
            method: &Method::GET,
            scheme: "http",
            host: "a.example.com",
            port: 80,
            path: "/",
        };
        let e = find_grant(&g, &t).unwrap_err();
        assert!(e.contains("granted only as https"), "{e}");
    }

    #[test]
    fn address_classes() {
        for (ip, want) in [
            ("127.0.0.1", Some("a loopback address")),
            ("10.1.2.3", Some("a private address")),
            ("192.168.0.1", Some("a private address")),
            ("172.20.0.1", Some("a private address")),
            ("169.254.169.254", Some("a cloud metadata address")),
            ("169.254.1.1", Some("a link-local address")),
            ("::1", Some("a loopback address")),
            ("::ffff:127.0.0.1", Some("a loopback address")),
            ("fd12::1", Some("a private (unique local) address")),
            ("fe80::1", Some("a link-local address")),
            ("0.0.0.0", Some("an unspecified address")),
            ("100.64.0.1", Some("a shared (carrier-grade NAT) address")),
            ("93.184.216.34", None),
            ("2606:4700::1111", None),
        ] {
            assert_eq!(restricted_address(ip.parse().unwrap()), want, "{ip}");
        }
        assert!(is_metadata("::ffff:169.254.169.254".parse().unwrap()));
    }
}
