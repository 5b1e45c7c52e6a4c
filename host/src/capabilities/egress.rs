//! The egress proxy: where outbound connections go on a network that only lets a proxy out.
//! `[outbound] proxy` and `no_proxy`, or else the usual `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/
//! `NO_PROXY` environment (read when the config loads, so `config check` judges it too). Only
//! `http://` proxies; credentials in a proxy URL are refused (they would be a secret written
//! in plain text where the vault's references are the rule).

use hyper_util::client::proxy::matcher::Matcher;

/// Validated proxy settings: which proxy for http and https targets, and who bypasses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProxySettings {
    /// Proxy for `http://` targets (absolute-form requests), as `http://host:port`.
    pub http: Option<String>,
    /// Proxy for `https://` targets (CONNECT tunnels), as `http://host:port`.
    pub https: Option<String>,
    /// `NO_PROXY` entries: names (and their subdomains), IPs, CIDRs, or `*`.
    pub no_proxy: Vec<String>,
    /// Where these came from, for messages: `outbound.proxy` or the variable's name.
    pub source: String,
}

impl ProxySettings {
    /// Whether any target goes through a proxy.
    pub fn is_set(&self) -> bool {
        self.http.is_some() || self.https.is_some()
    }

    /// `[outbound] proxy` (both schemes) and `no_proxy`.
    pub fn from_config(proxy: &str, no_proxy: &[String]) -> Result<ProxySettings, String> {
        let url = check_proxy_url(proxy).map_err(|m| format!("outbound.proxy: {m}"))?;
        Ok(ProxySettings {
            http: Some(url.clone()),
            https: Some(url),
            no_proxy: clean_list(no_proxy.iter().map(String::as_str)),
            source: "outbound.proxy".into(),
        })
    }

    /// The proxy environment, as curl reads it: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` (and
    /// their lowercase forms, lowercase first), `NO_PROXY` as a comma-separated list.
    pub fn from_env() -> Result<ProxySettings, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ProxySettings, String> {
        let first = |names: [&'static str; 2]| -> Option<(&'static str, String)> {
            names
                .into_iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
        };
        let read = |names: [&'static str; 2]| -> Result<Option<String>, String> {
            match first(names) {
                None => Ok(None),
                Some((name, v)) => check_proxy_url(&v)
                    .map(Some)
                    .map_err(|m| format!("{name}: {m}")),
            }
        };
        let all = read(["all_proxy", "ALL_PROXY"])?;
        let http = read(["http_proxy", "HTTP_PROXY"])?.or_else(|| all.clone());
        let https = read(["https_proxy", "HTTPS_PROXY"])?.or(all);
        let no_proxy = first(["no_proxy", "NO_PROXY"])
            .map(|(_, v)| clean_list(v.split(',')))
            .unwrap_or_default();
        Ok(ProxySettings {
            http,
            https,
            no_proxy,
            source: "the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY)".into(),
        })
    }

    /// The matcher the dialer asks per target (hyper-util's, which reads `no_proxy` as curl does).
    pub fn matcher(&self) -> Matcher {
        let mut b = Matcher::builder().no(self.no_proxy.join(","));
        if let Some(h) = &self.http {
            b = b.http(h.clone());
        }
        if let Some(h) = &self.https {
            b = b.https(h.clone());
        }
        b.build()
    }
}

fn clean_list<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    items
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// `http://host:port` (port required: a proxy has no default worth guessing), nothing else.
fn check_proxy_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let uri: http::Uri = raw
        .parse()
        .map_err(|_| format!("`{}` is not a URL like http://proxy.corp:3128", redact(raw)))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "`{other}://` proxies are not supported; use an http:// proxy (HTTPS targets are \
                 tunnelled through it with CONNECT, so they stay end-to-end TLS)"
            ));
        }
        None => {
            return Err(format!(
                "`{}` needs a scheme: http://HOST:PORT",
                redact(raw)
            ));
        }
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("`{}` names no host", redact(raw)));
    };
    if authority.as_str().contains('@') {
        return Err(
            "credentials in the proxy URL are not supported (they would sit in plain text); \
             use a proxy that admits this host without them"
                .into(),
        );
    }
    if authority.port_u16().is_none() {
        return Err(format!("`{raw}` needs a port: http://HOST:PORT"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(format!("`{raw}` must be http://HOST:PORT, without a path"));
    }
    Ok(format!("http://{authority}"))
}

/// A URL as it may be shown in a message: user information dropped.
fn redact(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &raw[..s], &raw[at + 1..]),
        (None, Some(at)) => format!("…@{}", &raw[at + 1..]),
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<ProxySettings, String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxySettings::from_lookup(|n| m.get(n).cloned())
    }

    #[test]
    fn the_environment_is_read_as_curl_reads_it() {
        let s = env(&[
            ("HTTPS_PROXY", "http://proxy.corp:3128"),
            ("NO_PROXY", "localhost, .internal ,10.0.0.0/8"),
        ])
        .unwrap();
        assert_eq!(s.https.as_deref(), Some("http://proxy.corp:3128"));
        assert_eq!(s.http, None);
        assert_eq!(s.no_proxy, ["localhost", ".internal", "10.0.0.0/8"]);
        let s = env(&[("ALL_PROXY", "http://p:8080"), ("http_proxy", "http://q:1")]).unwrap();
        assert_eq!(s.http.as_deref(), Some("http://q:1"));
        assert_eq!(s.https.as_deref(), Some("http://p:8080"));
        assert!(!env(&[]).unwrap().is_set());
    }

    #[test]
    fn bad_proxy_urls_are_refused_and_credentials_never_echoed() {
        for (v, want) in [
            ("socks5://p:1080", "not supported"),
            ("https://p:443", "not supported"),
            ("http://p", "needs a port"),
            ("http://p:3128/x", "without a path"),
            ("http://user:hunter22@p:3128", "credentials"),
        ] {
            let e = env(&[("HTTPS_PROXY", v)]).unwrap_err();
            assert!(e.contains(want) && e.starts_with("HTTPS_PROXY"), "{v}: {e}");
            assert!(!e.contains("hunter22"), "{e}");
        }
        let e = ProxySettings::from_config("ftp://x:1", &[]).unwrap_err();
        assert!(e.starts_with("outbound.proxy"), "{e}");
    }

    #[test]
    fn the_matcher_sends_no_proxy_hosts_direct() {
        let s = ProxySettings::from_config("http://127.0.0.1:3128", &["skip.test".into()]).unwrap();
        let m = s.matcher();
        let via = |u: &str| {
            m.intercept(&u.parse().unwrap())
                .map(|i| i.uri().to_string())
        };
        assert_eq!(
            via("https://api.example.com/x").as_deref(),
            Some("http://127.0.0.1:3128/")
        );
        assert_eq!(
            via("http://api.example.com/x").as_deref(),
            Some("http://127.0.0.1:3128/")
        );
        assert_eq!(via("https://skip.test/"), None);
        assert_eq!(via("https://a.skip.test/"), None);
    }
}
