//! Request paths in one canonical form. The gate normalises a path once, matches grants against
//! the result, and sends exactly that result upstream, so the upstream cannot resolve the request
//! somewhere the grant check did not look. Spellings that common servers resolve differently from
//! RFC 3986 (Tomcat/Jetty matrix parameters, double decoding, `%u` escapes, backslashes, empty
//! segments, overlong UTF-8, look-alike dots and slashes) are refused, not guessed at.
//!
//! Written by hand rather than with `url`/`percent-encoding`: those keep `%2e` and `;` as they are,
//! and the point here is to decide, byte by byte, what every server would agree on.

/// Normalises an origin-form path (no query): decodes percent-encoded unreserved octets, upper-
/// cases the hex of the rest, then applies RFC 3986 `remove_dot_segments`. Errors say why the
/// path is refused.
pub fn normalize(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') {
        return Err("a path must start with `/`".into());
    }
    let decoded = decode_unreserved(raw)?;
    let mut dot_segments = false;
    let mut segments = decoded[1..].split('/').peekable();
    while let Some(seg) = segments.next() {
        if seg.is_empty() && segments.peek().is_some() {
            return Err("empty segments (`//`) are not allowed: servers disagree on them".into());
        }
        if seg.len() > 2 && seg.bytes().all(|b| b == b'.') {
            return Err(format!(
                "a segment of only dots (`{seg}`) is not allowed: some servers treat it as `..`"
            ));
        }
        dot_segments |= seg == "." || seg == "..";
        check_segment_text(seg)?;
    }
    // Without `.` or `..` there is nothing to remove: the decoded path is the normal form (the
    // common case, on every request the gate admits).
    if !dot_segments {
        return Ok(decoded);
    }
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    Ok(remove_dot_segments(&segments))
}

/// The first pass: refuses what must never appear, decodes unreserved octets, keeps the rest
/// encoded with uppercase hex.
fn decode_unreserved(raw: &str) -> Result<String, String> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|x| hex(*x)),
                b.get(i + 2).and_then(|x| hex(*x)),
            ) else {
                return Err(
                    "malformed percent-encoding (`%` must be followed by two hex digits; `%u` escapes are refused)"
                        .into(),
                );
            };
            let v = (h << 4) | l;
            match v {
                b'%' => {
                    return Err("an encoded `%` (`%25`) is refused: a second decoding would change the path".into());
                }
                b'/' => return Err("an encoded `/` (`%2F`) is refused".into()),
                b'\\' => return Err("an encoded backslash (`%5C`) is refused".into()),
                b';' => return Err("an encoded `;` (`%3B`) is refused".into()),
                0..=0x1f | 0x7f => return Err("encoded control characters are refused".into()),
                _ if is_unreserved(v) => out.push(v as char),
                _ => {
                    out.push('%');
                    out.push(HEX[(v >> 4) as usize] as char);
                    out.push(HEX[(v & 15) as usize] as char);
                }
            }
            i += 3;
            continue;
        }
        match c {
            0..=0x1f | 0x7f => return Err("control characters are refused".into()),
            b'\\' => return Err("backslashes are refused: some servers read them as `/`".into()),
            b';' => {
                return Err(
                    "`;` is refused: servers such as Tomcat and Jetty strip `;parameters` before resolving `..`"
                        .into(),
                );
            }
            0x80.. => return Err("raw non-ASCII bytes are refused; percent-encode them".into()),
            _ => out.push(c as char),
        }
        i += 1;
    }
    Ok(out)
}

/// Percent-encoded bytes of a segment must be valid UTF-8 (no overlong `%C0%AE`), and must not
/// spell a look-alike of `.`, `/` or `\` that a Unicode-normalising server would fold.
fn check_segment_text(seg: &str) -> Result<(), String> {
    if !seg.contains('%') {
        return Ok(());
    }
    let b = seg.as_bytes();
    let mut bytes = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // decode_unreserved already checked the two hex digits.
            let v = (hex(b[i + 1]).unwrap_or(0) << 4) | hex(b[i + 2]).unwrap_or(0);
            bytes.push(v);
            i += 3;
        } else {
            bytes.push(b[i]);
            i += 1;
        }
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| "percent-encoded bytes that are not UTF-8 (overlong forms) are refused")?;
    if let Some(c) = text.chars().find(|c| LOOKALIKES.contains(c)) {
        return Err(format!(
            "U+{:04X} is refused: it normalises to `.`, `/` or `\\` on some servers",
            c as u32
        ));
    }
    Ok(())
}

/// Characters that NFKC (or a lenient server) folds to `.`, `/` or `\`.
const LOOKALIKES: &[char] = &[
    '\u{2024}', // one dot leader
    '\u{FE52}', // small full stop
    '\u{FF0E}', // fullwidth full stop
    '\u{2215}', // division slash
    '\u{2044}', // fraction slash
    '\u{FF0F}', // fullwidth solidus
    '\u{2216}', // set minus
    '\u{FE68}', // small reverse solidus
    '\u{FF3C}', // fullwidth reverse solidus
];

/// RFC 3986 section 5.2.4 over the segments after the leading `/`.
fn remove_dot_segments(segments: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        // A trailing dot segment leaves the path ending in `/`.
        if i == last {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// Query parameters that ask a framework (Rails, Laravel, Symfony, ...) to treat the request as
/// another method.
pub fn method_override_param(query: &str) -> Option<String> {
    query
        .split('&')
        .map(|pair| pair.split('=').next().unwrap_or_default())
        .map(|key| {
            // `%5Fmethod` is `_method` to every framework.
            let mut k = key.to_ascii_lowercase();
            k = k.replace("%5f", "_");
            k
        })
        .find(|k| k == "_method" || k == "x-http-method-override" || k == "x-method-override")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (spelling, what the gate matches and sends; None = refused)
    const TABLE: &[(&str, Option<&str>)] = &[
        // Plain and already-normal paths are unchanged.
        ("/", Some("/")),
        ("/api/", Some("/api/")),
        ("/api/items", Some("/api/items")),
        ("/api/items/", Some("/api/items/")),
        ("/api/a-b_c~d.e", Some("/api/a-b_c~d.e")),
        // Unreserved octets are decoded; other encodings keep uppercase hex.
        ("/api/%61dmin", Some("/api/admin")),
        ("/api/%7Euser", Some("/api/~user")),
        ("/api/a%20b", Some("/api/a%20b")),
        ("/api/a%3ab", Some("/api/a%3Ab")),
        ("/api/caf%C3%A9", Some("/api/caf%C3%A9")),
        (
            "/sites/root/search(q='x')",
            Some("/sites/root/search(q='x')"),
        ),
        // Dot segments are resolved once, as RFC 3986 says.
        ("/api/./items", Some("/api/items")),
        ("/api/x/../items", Some("/api/items")),
        ("/api/../admin", Some("/admin")),
        ("/api/..", Some("/")),
        ("/api/items/.", Some("/api/items/")),
        ("/api/items/..", Some("/api/")),
        ("/..", Some("/")),
        ("/../../etc/passwd", Some("/etc/passwd")),
        ("/api/%2e%2e/admin", Some("/admin")),
        ("/api/%2E%2E/admin", Some("/admin")),
        ("/api/.%2e/admin", Some("/admin")),
        ("/api/%2e/items", Some("/api/items")),
        ("/api/..a/b", Some("/api/..a/b")),
        // Matrix parameters: Tomcat/Jetty strip them, then resolve `..`.
        ("/api/..;/admin", None),
        ("/api/;/../admin", None),
        ("/api/.;x/admin", None),
        ("/api/items;jsessionid=1", None),
        ("/api/..%3b/admin", None),
        ("/api/%3B/admin", None),
        // Double encoding and %u escapes.
        ("/api/%252e%252e/admin", None),
        ("/api/%25/x", None),
        ("/api/%u002e%u002e/admin", None),
        ("/api/%", None),
        ("/api/%2", None),
        ("/api/%zz", None),
        // Backslashes in every encoding.
        ("/api/..\\admin", None),
        ("/api\\..\\admin", None),
        ("/api/..%5cadmin", None),
        ("/api/..%5Cadmin", None),
        ("/api/..%255cadmin", None),
        ("/api/..%c0%afadmin", None),
        ("/api/..%ef%bc%bcadmin", None),
        // Encoded slashes and empty segments.
        ("/api/..%2fadmin", None),
        ("/api/%2F../admin", None),
        ("/api//admin", None),
        ("//admin", None),
        ("/api/.//admin", None),
        // Overlong UTF-8 and look-alike dots.
        ("/api/%c0%ae%c0%ae/admin", None),
        ("/api/%e0%80%ae/admin", None),
        ("/api/%ef%bc%8e%ef%bc%8e/admin", None),
        ("/api/%e2%80%a4%e2%80%a4/admin", None),
        ("/api/%e2%88%95admin", None),
        ("/api/.../admin", None),
        // Control characters, NUL, raw non-ASCII.
        ("/api/%00/admin", None),
        ("/api/a%0d%0aX-Injected:1", None),
        ("/api/%7f", None),
        ("/api/\u{7f}", None),
        ("/api/caf\u{e9}", None),
        ("api/items", None),
    ];

    #[test]
    fn spellings_normalise_to_what_is_sent_or_are_refused() {
        assert!(TABLE.len() >= 40);
        for (raw, want) in TABLE {
            let got = normalize(raw);
            match want {
                Some(w) => assert_eq!(got.as_deref(), Ok(*w), "{raw}"),
                None => assert!(got.is_err(), "{raw} should be refused, got {got:?}"),
            }
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for (raw, want) in TABLE {
            if want.is_some() {
                let once = normalize(raw).expect("normal");
                assert_eq!(normalize(&once).as_deref(), Ok(once.as_str()), "{raw}");
            }
        }
    }

    #[test]
    fn refusals_say_why() {
        let e = normalize("/api/..;/admin").unwrap_err();
        assert!(e.contains("Tomcat"), "{e}");
        let e = normalize("/api/%252e").unwrap_err();
        assert!(e.contains("%25"), "{e}");
        let e = normalize("/api//x").unwrap_err();
        assert!(e.contains("empty segments"), "{e}");
    }

    #[test]
    fn method_override_parameters_are_found_in_any_spelling() {
        assert_eq!(
            method_override_param("_method=DELETE").as_deref(),
            Some("_method")
        );
        assert_eq!(
            method_override_param("a=1&%5Fmethod=PUT").as_deref(),
            Some("_method")
        );
        assert_eq!(
            method_override_param("a=1&_METHOD").as_deref(),
            Some("_method")
        );
        assert!(method_override_param("method=x&q=_method").is_none());
    }
}
