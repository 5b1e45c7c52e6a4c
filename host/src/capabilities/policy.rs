//! Grant matching: scheme, host (exact or `*.suffix`), port, method, path prefix (against the
//! normalised path, see [`super::path`]) and, for write methods on a grant without `writes`, the
//! exact paths the operator named. Address classes live in [`super::address`].

use http::Method;

use super::path::normalize;
// The grant's own types live in `grant`; they are named here too, where the matching is.
pub use super::grant::{ExactPaths, Grant, HostPattern, MethodSet, PathPrefix, is_write_method};

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
/// Returns the index of the matching grant in `grants`. `t.path` must be normalised (the gate
/// sends what it matched); anything else is refused.
pub fn find_grant(grants: &[Grant], t: &Target<'_>) -> Result<usize, String> {
    match normalize(t.path) {
        Err(reason) => return Err(format!("path refused: {reason}")),
        Ok(n) if n != t.path => {
            return Err(format!("path refused: `{}` is not normalised", t.path));
        }
        Ok(_) => {}
    }
    // The deepest partial match, for a precise reason. Only its grant is kept: the reason is
    // written when the request is refused, not for every request allowed.
    let mut best: Option<(Miss, &Grant)> = None;
    let mut missed = |miss: Miss, g| {
        if best.is_none_or(|(b, _)| b < miss) {
            best = Some((miss, g));
        }
    };
    for (i, g) in grants.iter().enumerate() {
        if !g.host.matches(t.host) {
            continue;
        }
        if g.scheme != t.scheme || g.port != t.port {
            missed(Miss::SchemeOrPort, g);
            continue;
        }
        if !g.path_prefix.matches(t.path) {
            missed(Miss::Path, g);
            continue;
        }
        if !g.methods.allows(t.method) {
            missed(Miss::Method, g);
            continue;
        }
        if is_write_method(t.method)
            && let Some(exact) = &g.exact_paths
            && !exact.matches(t.path)
        {
            missed(Miss::ExactPath, g);
            continue;
        }
        return Ok(i);
    }
    Err(match best {
        None => format!(
            "no grant for host {} (scheme {}, port {})",
            t.host, t.scheme, t.port
        ),
        Some((Miss::SchemeOrPort, g)) => format!(
            "host {} is granted only as {}://…:{}, not {}://…:{}",
            t.host, g.scheme, g.port, t.scheme, t.port
        ),
        Some((Miss::Path, g)) => format!(
            "path {} is outside the granted prefix {} on {}",
            t.path,
            g.path_prefix.as_str(),
            t.host
        ),
        Some((Miss::Method, g)) => format!(
            "method {} is not granted for {}{}",
            t.method,
            t.host,
            g.path_prefix.as_str()
        ),
        Some((Miss::ExactPath, g)) => format!(
            "{} {} is not one of the exact paths grant[{}] allows it on ({})",
            t.method,
            t.path,
            g.index,
            g.exact_paths
                .as_ref()
                .map(|exact| exact.list().join(", "))
                .unwrap_or_default()
        ),
    })
}

/// How far a grant matched a refused request, in the order the checks run (the first grant
/// to reach the deepest miss names the reason).
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Miss {
    SchemeOrPort,
    Path,
    Method,
    ExactPath,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::grant::AuthConfig;

    fn grant(url_host: &str, scheme: &str, port: u16, prefix: &str, methods: &[&str]) -> Grant {
        Grant {
            index: 0,
            name: "grant-0".into(),
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
            exact_paths: None,
            auth: AuthConfig::None,
            resilience: Default::default(),
            tls_ca: None,
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
    fn unnormalised_or_ambiguous_paths_are_refused() {
        let g = [grant("a.example.com", "https", 443, "/wiki/", &["GET"])];
        for p in [
            "/wiki/../admin",
            "/wiki/%2e%2e/admin",
            "/wiki/a%2Fb",
            "/wiki/./x",
            "/wiki/..;/admin",
            "/wiki//x",
        ] {
            let e = find_grant(&g, &target(&Method::GET, "a.example.com", p)).unwrap_err();
            assert!(e.starts_with("path refused"), "{p}: {e}");
        }
    }

    #[test]
    fn prefixes_must_be_in_normal_form() {
        for p in [
            "/api/../x/",
            "/api/%2e%2e/",
            "/api;x/",
            "/a//b/",
            "/a/%7Eb/",
        ] {
            assert!(PathPrefix::parse(p).is_err(), "{p}");
        }
        assert!(PathPrefix::parse("/a/~b/").is_ok());
    }

    #[test]
    fn write_methods_on_a_grant_with_exact_paths_stay_on_those_paths() {
        let mut g = grant(
            "graph.example.com",
            "https",
            443,
            "/v1.0/",
            &["GET", "POST"],
        );
        g.exact_paths = Some(
            ExactPaths::parse(
                &["/v1.0/search/query".into(), "/v1.0/items/*/check".into()],
                &g.path_prefix,
            )
            .unwrap(),
        );
        let g = [g];
        let host = "graph.example.com";
        assert!(find_grant(&g, &target(&Method::POST, host, "/v1.0/search/query")).is_ok());
        assert!(find_grant(&g, &target(&Method::POST, host, "/v1.0/items/42/check")).is_ok());
        assert!(find_grant(&g, &target(&Method::GET, host, "/v1.0/users/u1")).is_ok());
        for p in [
            "/v1.0/users/u1/sendMail",
            "/v1.0/search/query/x",
            "/v1.0/search",
            "/v1.0/items/check",
            "/v1.0/items/42/43/check",
        ] {
            let e = find_grant(&g, &target(&Method::POST, host, p)).unwrap_err();
            assert!(e.contains("not one of the exact paths"), "{p}: {e}");
        }
        let e = find_grant(&g, &target(&Method::DELETE, host, "/v1.0/search/query")).unwrap_err();
        assert!(e.contains("method DELETE is not granted"), "{e}");
    }

    #[test]
    fn exact_paths_are_whole_paths_inside_the_prefix() {
        let prefix = PathPrefix::parse("/v1.0/").unwrap();
        for (p, want) in [
            ("/v2/search/query", "outside the grant's path prefix"),
            ("/v1.0/search/", "not prefixes"),
            ("/v1.0/sea*", "whole segment"),
            ("/v1.0/../x", "normal form"),
        ] {
            let e = ExactPaths::parse(&[p.to_string()], &prefix).unwrap_err();
            assert!(e.contains(want), "{p}: {e}");
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
}
