//! A loopback server that reflects the request it received (request line and headers), in the
//! representation the path asks for, to prove the gate never hands a connector an injected
//! credential in any encoding. `GET /{as}`: `plain`, `gzip`, `deflate`, `br`, `zstd`,
//! `gzip-gzip` (two layers), `negotiate` (gzip only when the request's `Accept-Encoding` allows
//! it), `x-custom` (a coding nobody decodes), `range` (206 with the `Range` slice asked for),
//! `json-u` (JSON, every other character `\u` escaped), `qp` (quoted-printable with soft
//! breaks), `pct` (percent-encoding, mixed case), `html` (character references), `b64`
//! (base64 of the whole echo), `header-pct` (percent-encoded echo in a response header).
//! Everything else but the first two kinds ignores `Accept-Encoding`, as a careless debug
//! route would.

use std::io::Write;

use base64::Engine as _;

/// Every representation the server answers in.
pub const REPRESENTATIONS: &[&str] = &[
    "plain",
    "gzip",
    "deflate",
    "br",
    "zstd",
    "gzip-gzip",
    "negotiate",
    "x-custom",
    "range",
    "json-u",
    "qp",
    "pct",
    "html",
    "b64",
    "header-pct",
];

/// Starts the server on a free loopback port.
pub async fn spawn_reflecting_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind reflect");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let head = text
                    .split("\r\n\r\n")
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let (status, headers, body) = answer(&head);
                let mut resp = format!(
                    "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n",
                    body.len()
                )
                .into_bytes();
                for (k, v) in headers {
                    resp.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                }
                resp.extend_from_slice(b"\r\n");
                resp.extend_from_slice(&body);
                let _ = sock.write_all(&resp).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

/// (status line, extra headers, body) for the request `head`.
fn answer(head: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    let path = head.split(' ').nth(1).unwrap_or("/");
    let kind = path
        .trim_start_matches('/')
        .split(['?', '/'])
        .next()
        .unwrap_or("");
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let echo = head.as_bytes().to_vec();
    let ok = "200 OK".to_string();
    let coded = |coding: &str, body: Vec<u8>| {
        (
            ok.clone(),
            vec![("content-encoding".to_string(), coding.to_string())],
            body,
        )
    };
    let text = |ct: &str, body: String| {
        (
            ok.clone(),
            vec![("content-type".to_string(), ct.to_string())],
            body.into_bytes(),
        )
    };
    match kind {
        "gzip" => coded("gzip", gzip(&echo)),
        "gzip-gzip" => coded("gzip, gzip", gzip(&gzip(&echo))),
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&echo).expect("deflate");
            coded("deflate", e.finish().expect("deflate"))
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(&echo).expect("br");
            }
            coded("br", out)
        }
        "zstd" => coded(
            "zstd",
            zstd::stream::encode_all(&echo[..], 3).expect("zstd"),
        ),
        "x-custom" => coded("x-custom", echo.iter().rev().copied().collect()),
        "negotiate" => {
            let accepts = header("accept-encoding").unwrap_or_default();
            if accepts.contains("gzip") {
                coded("gzip", gzip(&echo))
            } else {
                text("text/plain", head.to_string())
            }
        }
        "range" => match header("range").and_then(|r| parse_range(&r, echo.len())) {
            Some((a, b)) => (
                "206 Partial Content".to_string(),
                vec![(
                    "content-range".to_string(),
                    format!("bytes {a}-{b}/{}", echo.len()),
                )],
                echo[a..=b].to_vec(),
            ),
            None => text("text/plain", head.to_string()),
        },
        "json-u" => {
            let escaped = alternate(
                head,
                |c| format!("\\u{:04x}", c as u32),
                |c| match c {
                    '"' => "\\\"".to_string(),
                    '\\' => "\\\\".to_string(),
                    '\r' => "\\r".to_string(),
                    '\n' => "\\n".to_string(),
                    c => c.to_string(),
                },
            );
            text("application/json", format!("{{\"echo\":\"{escaped}\"}}"))
        }
        "qp" => {
            let escaped = alternate(head, |c| format!("={:02X}", c as u32), |c| c.to_string());
            // Soft line breaks every 30 characters, between escapes.
            let mut out = String::new();
            let mut since = 0;
            for part in escaped.split_inclusive(|c: char| c != '=' && !c.is_ascii_hexdigit()) {
                out.push_str(part);
                since += part.len();
                if since > 30 {
                    out.push_str("=\r\n");
                    since = 0;
                }
            }
            text("text/plain; charset=utf-8", out)
        }
        "pct" => {
            let escaped = alternate(
                head,
                |c| {
                    let h = format!("%{:02x}", c as u32);
                    if (c as u32).is_multiple_of(3) {
                        h.to_uppercase()
                    } else {
                        h
                    }
                },
                |c| c.to_string(),
            );
            text("text/plain", escaped)
        }
        "html" => text(
            "text/html",
            alternate(head, |c| format!("&#x{:x};", c as u32), |c| c.to_string()),
        ),
        "b64" => text(
            "text/plain",
            base64::engine::general_purpose::STANDARD.encode(&echo),
        ),
        "header-pct" => {
            let escaped = alternate(
                head,
                |c| format!("%{:02X}", c as u32),
                |c| match c {
                    '\r' | '\n' => format!("%{:02X}", c as u32),
                    c => c.to_string(),
                },
            );
            (
                ok.clone(),
                vec![("x-echo".to_string(), escaped)],
                b"see x-echo".to_vec(),
            )
        }
        _ => text("text/plain", head.to_string()),
    }
}

/// Every other character through `odd`, the rest through `even` (a mix of escaped and plain).
fn alternate(s: &str, odd: impl Fn(char) -> String, even: impl Fn(char) -> String) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 1 || !c.is_ascii() {
                odd(c)
            } else {
                even(c)
            }
        })
        .collect()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

/// `bytes=A-B` within `len`.
fn parse_range(r: &str, len: usize) -> Option<(usize, usize)> {
    let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
    let a: usize = a.trim().parse().ok()?;
    let b: usize = b.trim().parse::<usize>().ok()?.min(len.checked_sub(1)?);
    (a <= b).then_some((a, b))
}

/// Every way the test undoes what a connector received, to grep each for the credential: the
/// bytes as they are, decompressed (each coding, and twice), JSON-unescaped, percent-,
/// quoted-printable-, HTML- and base64-decoded.
pub fn decoded_views(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut views: Vec<(String, Vec<u8>)> = vec![("raw".into(), bytes.to_vec())];
    let inflate = |name: &str, b: &[u8]| -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let ok = match name {
            "gzip" => flate2::read::MultiGzDecoder::new(b)
                .read_to_end(&mut out)
                .is_ok(),
            "deflate" => flate2::read::ZlibDecoder::new(b)
                .read_to_end(&mut out)
                .is_ok(),
            "br" => brotli::Decompressor::new(b, 4096)
                .read_to_end(&mut out)
                .is_ok(),
            "zstd" => zstd::stream::decode_all(b).map(|v| out = v).is_ok(),
            _ => false,
        };
        (ok && !out.is_empty()).then_some(out)
    };
    for c in ["gzip", "deflate", "br", "zstd"] {
        if let Some(once) = inflate(c, bytes) {
            if let Some(twice) = inflate(c, &once) {
                views.push((format!("{c} twice"), twice));
            }
            views.push((c.into(), once));
        }
    }
    let text_views: Vec<(String, Vec<u8>)> = views.clone();
    for (name, v) in text_views {
        let s = String::from_utf8_lossy(&v).to_string();
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(&s) {
            let all: String = m
                .values()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect();
            views.push((format!("{name}+json"), all.into_bytes()));
        }
        views.push((
            format!("{name}+pct"),
            percent_encoding::percent_decode(&v).collect(),
        ));
        let qp = s.replace("=\r\n", "");
        if let Ok(d) = quoted_printable::decode(qp.as_bytes(), quoted_printable::ParseMode::Robust)
        {
            views.push((format!("{name}+qp"), d));
        }
        views.push((format!("{name}+html"), html_decode(&s).into_bytes()));
        let b64: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/'))
            .collect();
        let padded = format!("{b64}{}", "=".repeat((4 - b64.len() % 4) % 4));
        if let Ok(d) = base64::engine::general_purpose::STANDARD.decode(padded) {
            views.push((format!("{name}+b64"), d));
        }
    }
    views
}

fn html_decode(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("&#") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find(';').unwrap_or(0);
        let code = after[..end]
            .strip_prefix(['x', 'X'])
            .map(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or_else(|| after[..end].parse().ok());
        match code.and_then(char::from_u32) {
            Some(c) if end > 0 => {
                out.push(c);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("&#");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every form of `secret` (and of the Basic value for `user`) the test greps for.
pub fn credential_forms(user: &str, secret: &str) -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        secret.to_string(),
        b64(secret).trim_end_matches('=').to_string(),
        b64(&format!("{user}:{secret}"))
            .trim_end_matches('=')
            .to_string(),
        secret.bytes().map(|b| format!("{b:02x}")).collect(),
    ]
}
