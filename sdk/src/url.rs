//! Small URL helpers: query encoding, resolving relative links, reading query parameters.
//!
//! Deliberately minimal (no IDNA, no dot-segment normalisation): connectors deal with the URLs
//! of a handful of REST APIs, and the `url` crate would double the component's size.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything except RFC 3986 unreserved characters is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode `s` for use as a query key or value or a path segment.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Percent-decode `s` (a `+` stays a `+`); invalid UTF-8 is replaced.
pub fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Append `key=value` (both percent-encoded) to `url`'s query string.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let (url, fragment) = url
        .split_once('#')
        .map_or((url, None), |(u, f)| (u, Some(f)));
    let sep = match url.find('?') {
        None => "?",
        Some(i) if i + 1 == url.len() || url.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut out = format!("{url}{sep}{}={}", encode(key), encode(value));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// The first value of query parameter `name` in `url`, percent-decoded.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split('#').next()?.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

/// Resolve `link` (absolute, scheme-relative, host-relative like `/wiki/api/v2/pages?cursor=x`,
/// query-only, or path-relative) against the absolute URL `base`.
pub fn resolve(base: &str, link: &str) -> String {
    let link = link.trim();
    if has_scheme(link) || base.is_empty() {
        return link.to_owned();
    }
    let Some(parts) = split(base) else {
        return link.to_owned();
    };
    if let Some(rest) = link.strip_prefix("//") {
        return format!("{}://{rest}", parts.scheme);
    }
    let origin = format!("{}://{}", parts.scheme, parts.authority);
    if link.starts_with('/') {
        return format!("{origin}{link}");
    }
    let path = path_of(parts.path_and_query);
    if link.starts_with('?') {
        return format!("{origin}{path}{link}");
    }
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    format!("{origin}{dir}{link}")
}

/// `template` with each `{}` replaced by the next of `parts`, percent-encoded as a path segment
/// (`fill("/users/{}/messages/{}", &["a@b.com", "x/y"])` is `/users/a%40b.com/messages/x%2Fy`).
/// Extra parts are ignored; missing ones leave the rest of the template out.
pub fn fill(template: &str, parts: &[impl AsRef<str>]) -> String {
    let mut pieces = template.split("{}");
    let head = pieces.next().unwrap_or_default().to_owned();
    let parts = parts.iter().map(|p| encode(p.as_ref()));
    parts.zip(pieces).fold(head, |s, (p, q)| s + &p + q)
}

/// Whether two absolute URLs share scheme, host and port (a next link that leaves the API's
/// origin is not one to follow).
pub fn same_origin(a: &str, b: &str) -> bool {
    match (split(a), split(b)) {
        (Some(x), Some(y)) => {
            x.scheme.eq_ignore_ascii_case(y.scheme) && x.authority.eq_ignore_ascii_case(y.authority)
        }
        _ => false,
    }
}

/// The path of `url` without scheme, host, query or fragment (used in error messages so that
/// query values, which may hold user input, never leak into logs).
pub fn path(url: &str) -> &str {
    match split(url) {
        Some(parts) => path_of(parts.path_and_query),
        None => path_of(url),
    }
}

fn path_of(path_and_query: &str) -> &str {
    let end = path_and_query
        .find(['?', '#'])
        .unwrap_or(path_and_query.len());
    match &path_and_query[..end] {
        "" => "/",
        p => p,
    }
}

fn has_scheme(link: &str) -> bool {
    link.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// An absolute URL split the way `wasi:http` wants it.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// `http`, `https`, ...
    pub scheme: &'a str,
    /// `host[:port]`.
    pub authority: &'a str,
    /// Path and query, at least `/`; the fragment is dropped.
    pub path_and_query: &'a str,
}

/// Split an absolute URL; `None` when it has no scheme or host.
pub fn split(url: &str) -> Option<Parts<'_>> {
    let url = url.split('#').next().unwrap_or(url);
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(end);
    if scheme.is_empty() || authority.is_empty() || authority.contains('@') {
        return None;
    }
    let path_and_query = if path_and_query.is_empty() {
        "/"
    } else {
        path_and_query
    };
    Some(Parts {
        scheme,
        authority,
        path_and_query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        let u = with_query("https://x.test/s", "cql", r#"type = page AND text ~ "a&b""#);
        assert_eq!(
            u,
            "https://x.test/s?cql=type%20%3D%20page%20AND%20text%20~%20%22a%26b%22"
        );
        assert_eq!(with_query(&u, "limit", "5"), format!("{u}&limit=5"));
        assert_eq!(with_query("http://h/p?", "a", "é"), "http://h/p?a=%C3%A9");
        assert_eq!(with_query("http://h/p#f", "a", "1"), "http://h/p?a=1#f");
        assert_eq!(
            query_param(&u, "cql").as_deref(),
            Some(r#"type = page AND text ~ "a&b""#)
        );
        assert_eq!(
            query_param("/x?a=1&cursor=ab%2Bc+d&z", "cursor").as_deref(),
            Some("ab+c+d")
        );
        assert_eq!(query_param("/x?a=1", "b"), None);
    }

    #[test]
    fn templates_are_filled_with_encoded_segments() {
        assert_eq!(
            fill("/users/{}/messages/{}", &["a@b.com", "x/y"]),
            "/users/a%40b.com/messages/x%2Fy"
        );
        assert_eq!(fill("/devices/{}", &[String::from("d1")]), "/devices/d1");
        assert_eq!(fill("/static", &["unused"]), "/static");
    }

    #[test]
    fn resolving() {
        let base = "https://acme.atlassian.net/wiki/api/v2/pages?limit=5";
        assert_eq!(
            resolve(base, "/wiki/api/v2/pages?cursor=x"),
            "https://acme.atlassian.net/wiki/api/v2/pages?cursor=x"
        );
        assert_eq!(resolve(base, "http://other:81/a"), "http://other:81/a");
        assert_eq!(resolve(base, "//cdn.test/a"), "https://cdn.test/a");
        assert_eq!(
            resolve(base, "?cursor=y"),
            "https://acme.atlassian.net/wiki/api/v2/pages?cursor=y"
        );
        assert_eq!(
            resolve(base, "spaces"),
            "https://acme.atlassian.net/wiki/api/v2/spaces"
        );
        assert_eq!(
            resolve("http://127.0.0.1:8781", "next"),
            "http://127.0.0.1:8781/next"
        );
    }

    #[test]
    fn splitting() {
        let p = split("http://127.0.0.1:8781/wiki/x?a=1#frag").unwrap();
        assert_eq!(
            p,
            Parts {
                scheme: "http",
                authority: "127.0.0.1:8781",
                path_and_query: "/wiki/x?a=1"
            }
        );
        assert_eq!(split("https://h").unwrap().path_and_query, "/");
        assert_eq!(split("https://h?q=1").unwrap().path_and_query, "?q=1");
        assert!(split("/relative").is_none());
        assert!(split("https://user@h/").is_none());
        assert_eq!(path("https://h/a/b?secret=1"), "/a/b");
        assert_eq!(path("https://h"), "/");
    }
}
