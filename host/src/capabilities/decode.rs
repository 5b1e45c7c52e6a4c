//! Content codings the gate undoes before it scrubs the answer to a request that carried an
//! injected credential: a connector must not receive, compressed, a credential an upstream
//! echoed back. The gate asks for `identity`; an upstream that compresses anyway is decoded
//! here (gzip, deflate, br, zstd), and an answer in any other coding is refused, never passed
//! through.

use std::io::Read;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};

/// More stacked codings than this is not a real answer (and would multiply decoding work).
const MAX_LAYERS: usize = 3;
/// zstd window cap (8 MiB), as RFC 9659 requires of HTTP decoders.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Why an answer could not be decoded.
#[derive(Debug, PartialEq)]
pub enum DecodeError {
    /// A coding the gate does not decode.
    Unsupported(String),
    /// The decoded body would exceed the response limit.
    TooLarge(usize),
    /// The body is not valid in its declared coding.
    Corrupt(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Unsupported(c) => write!(
                f,
                "content coding `{c}` is not one the gate decodes (gzip, deflate, br, zstd)"
            ),
            DecodeError::TooLarge(max) => write!(f, "decoded body larger than {max} bytes"),
            DecodeError::Corrupt(c) => write!(f, "body is not valid {c}"),
        }
    }
}

/// The codings applied to the body, in the order they were applied: `Content-Encoding`, then
/// any `Transfer-Encoding` coding other than `chunked` (hyper removes chunking itself).
fn codings(headers: &HeaderMap) -> Vec<String> {
    let list = |name: header::HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .filter(|c| !c.is_empty() && c != "identity")
            .collect()
    };
    let mut all = list(header::CONTENT_ENCODING);
    all.extend(
        list(header::TRANSFER_ENCODING)
            .into_iter()
            .filter(|c| c != "chunked"),
    );
    all
}

/// Decodes `body` per its headers, at most `max` bytes. When it was encoded, the coding
/// headers are removed and `Content-Length` states the decoded size; otherwise the body comes
/// back unchanged.
pub fn decode_body(headers: &mut HeaderMap, body: Bytes, max: usize) -> Result<Bytes, DecodeError> {
    let codings = codings(headers);
    if codings.is_empty() {
        return Ok(body);
    }
    if let Some(c) = codings.iter().find(|c| !supported(c)) {
        return Err(DecodeError::Unsupported(c.clone()));
    }
    if codings.len() > MAX_LAYERS {
        return Err(DecodeError::Unsupported(codings.join(", ")));
    }
    let mut bytes = body;
    // An empty body (HEAD, 204, 304) has nothing to decode whatever its headers say.
    if !bytes.is_empty() {
        for c in codings.iter().rev() {
            bytes = Bytes::from(decode_one(c, &bytes, max)?);
        }
    }
    headers.remove(header::CONTENT_ENCODING);
    headers.remove(header::TRANSFER_ENCODING);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(bytes)
}

fn supported(coding: &str) -> bool {
    matches!(coding, "gzip" | "x-gzip" | "deflate" | "br" | "zstd")
}

fn decode_one(coding: &str, input: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |_| DecodeError::Corrupt(coding.to_string());
    match coding {
        "gzip" | "x-gzip" => read_capped(flate2::read::MultiGzDecoder::new(input), max, coding),
        // `deflate` is zlib-wrapped by the RFC; some servers send raw deflate.
        "deflate" => read_capped(flate2::read::ZlibDecoder::new(input), max, coding)
            .or_else(|_| read_capped(flate2::read::DeflateDecoder::new(input), max, coding)),
        "br" => read_capped(
            brotli_decompressor::Decompressor::new(input, 4096),
            max,
            coding,
        ),
        "zstd" => {
            let mut d = zstd::stream::read::Decoder::new(input).map_err(corrupt)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(corrupt)?;
            read_capped(d, max, coding)
        }
        other => Err(DecodeError::Unsupported(other.to_string())),
    }
}

/// Reads all of `r`, refusing more than `max` bytes (a small body may inflate enormously).
fn read_capped(r: impl Read, max: usize, coding: &str) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    r.take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Corrupt(coding.to_string()))?;
    if out.len() > max {
        return Err(DecodeError::TooLarge(max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const TEXT: &[u8] = b"authorization: Basic c3ZjQGV4YW1wbGUuY29tOnNlY3JldA==\r\n";

    fn headers(ce: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, ce.parse().unwrap());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(1usize));
        h
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_supported_coding_is_decoded_and_its_headers_dropped() {
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(TEXT).unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(TEXT).unwrap();
        let zstd = zstd::stream::encode_all(TEXT, 3).unwrap();
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(TEXT).unwrap();
        }
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("gzip", gzip(TEXT)),
            ("x-gzip", gzip(TEXT)),
            ("deflate", zlib.finish().unwrap()),
            ("deflate", raw.finish().unwrap()),
            ("zstd", zstd),
            ("br", br),
            ("gzip, gzip", gzip(&gzip(TEXT))),
        ];
        for (ce, body) in cases {
            let mut h = headers(ce);
            let out = decode_body(&mut h, Bytes::from(body), 1 << 20).unwrap();
            assert_eq!(&out[..], TEXT, "{ce}");
            assert!(h.get(header::CONTENT_ENCODING).is_none(), "{ce}");
            assert_eq!(h[header::CONTENT_LENGTH], TEXT.len().to_string().as_str());
        }
        let mut h = headers("identity");
        let out = decode_body(&mut h, Bytes::from_static(TEXT), 1 << 20).unwrap();
        assert_eq!(&out[..], TEXT);
    }

    #[test]
    fn unknown_codings_are_refused_not_passed_through() {
        for ce in [
            "compress",
            "x-custom",
            "gzip, x-custom",
            "gzip, gzip, gzip, gzip",
        ] {
            let mut h = headers(ce);
            let r = decode_body(&mut h, Bytes::from_static(b"xx"), 1 << 20);
            assert!(matches!(r, Err(DecodeError::Unsupported(_))), "{ce}: {r:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::TRANSFER_ENCODING,
            "x-custom, chunked".parse().unwrap(),
        );
        assert!(decode_body(&mut h, Bytes::from_static(b"xx"), 10).is_err());
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_response_limit() {
        let big = vec![b'a'; 1 << 20];
        let mut h = headers("gzip");
        let r = decode_body(&mut h, Bytes::from(gzip(&big)), 64 * 1024);
        assert_eq!(r, Err(DecodeError::TooLarge(64 * 1024)));
    }

    #[test]
    fn a_body_that_is_not_what_it_claims_is_refused() {
        let mut h = headers("gzip");
        let r = decode_body(&mut h, Bytes::from_static(b"plain text"), 1 << 20);
        assert_eq!(r, Err(DecodeError::Corrupt("gzip".into())));
    }
}
