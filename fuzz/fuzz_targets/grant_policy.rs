//! The grant policy: a grant built through the config parser, then `find_grant` on a request.
//! Input: text lines `GRANT_URL`, `METHODS` (comma-separated), `METHOD`, `HOST`, `PATH`.
//!
//! Besides "never panics", it checks the property the path grant exists for: a path the policy
//! allows must stay inside the granted prefix however a common upstream server reads it (once or
//! twice percent-decoded, `\` as `/`, `;params` dropped from segments as Tomcat and Jetty do,
//! empty segments collapsed, then `.`/`..` resolved).
#![no_main]

use std::path::Path;

use airlock::capabilities::policy::{HostPattern, PathPrefix, Target, find_grant};
use airlock::config::Config;
use libfuzzer_sys::fuzz_target;

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let url = lines.next().unwrap_or_default();
    let methods = lines.next().unwrap_or_default();
    let method = lines.next().unwrap_or_default();
    let host = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default();

    // The parsers on their own.
    let _ = HostPattern::parse(host).map(|h| h.matches(host));
    let _ = PathPrefix::parse(path).map(|p| p.matches(path));

    let methods: Vec<String> = methods.split(',').map(quote).collect();
    let config = format!(
        "[[connector]]\nid = \"f\"\ncomponent = \"f.wasm\"\n[[grant]]\nconnector = \"f\"\nurl = {}\nmethods = [{}]\n",
        quote(url),
        methods.join(", ")
    );
    let Ok(config) = Config::parse(&config, Path::new("/nonexistent/airlock.toml")) else {
        return;
    };
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let host = host.to_ascii_lowercase();
    for (scheme, port) in [("https", 443), ("http", 80)] {
        let t = Target {
            method: &method,
            scheme,
            host: &host,
            port,
            path,
        };
        if let Ok(i) = find_grant(&config.grants, &t) {
            let g = &config.grants[i];
            assert!(
                g.host.matches(&host),
                "grant {i} allowed another host {host}"
            );
            check_inside(g.path_prefix.as_str(), path);
        }
    }
});

/// Panics when an allowed `path` can resolve outside `prefix` on a common server.
fn check_inside(prefix: &str, path: &str) {
    // Only prefixes made of plain segments: their own server view is themselves.
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_".contains(&b))
        || prefix.contains("//")
        || path.contains(['?', '#'])
    {
        return;
    }
    let mut p = path.to_string();
    for _ in 0..3 {
        let view = resolve(&p);
        let base = &prefix[..prefix.len() - 1];
        assert!(
            view == base || view.starts_with(prefix),
            "allowed path {path:?} resolves to {view:?} on a server, outside the granted prefix {prefix:?}"
        );
        p = percent_decode(&p);
    }
}

/// Tomcat-like reading of a path: `\` is `/`, `;params` dropped per segment, empty segments
/// collapsed, dot segments resolved.
fn resolve(path: &str) -> String {
    let path = path.replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = path.split('/').collect();
    let trailing = path.ends_with('/') || matches!(segs.last(), Some(&".") | Some(&".."));
    for seg in segs {
        let seg = seg.split(';').next().unwrap_or_default();
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut r = format!("/{}", out.join("/"));
    if trailing && r != "/" {
        r.push('/');
    }
    r
}

/// One round of percent-decoding, `%uXXXX` (IIS) included; invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).and_then(|c| (*c as char).to_digit(16));
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if matches!(b.get(i + 1), Some(b'u' | b'U')) {
                let code = (2..6).try_fold(0u32, |acc, k| hex(i + k).map(|d| acc * 16 + d));
                if let Some(c) = code.and_then(char::from_u32) {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    continue;
                }
            }
            if let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2)) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
