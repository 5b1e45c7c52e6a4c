//! Decoded views of an upstream's answer: the text as it reads once one kind of escape (JSON
//! `\u`, percent-encoding, quoted-printable, HTML character references) is undone, for the
//! gate's reveal scan. A view is its input with each escape replaced by what it decodes to, so
//! a view is kept as its list of escapes: [`Unbuilt`] builds only the stretches a scan asks for
//! (around its escapes), or the whole text into a caller's buffer (a first view, which the
//! second level decodes again). The escapes are found by one scan of the whole input, front to
//! back, so a stretch never starts inside an escape.

/// One escape: the input's bytes `from..to` decode to `piece`.
#[derive(Debug, PartialEq)]
pub(super) struct Escape {
    from: usize,
    to: usize,
    piece: Piece,
}

/// What one escape decodes to: at most one character.
#[derive(Debug, PartialEq)]
struct Piece {
    bytes: [u8; 4],
    len: usize,
}

impl Piece {
    const NOTHING: Piece = Piece {
        bytes: [0; 4],
        len: 0,
    };

    fn byte(b: u8) -> Piece {
        Piece {
            bytes: [b, 0, 0, 0],
            len: 1,
        }
    }

    fn char(c: char) -> Piece {
        let mut bytes = [0u8; 4];
        let len = c.encode_utf8(&mut bytes).len();
        Piece { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A decoding an upstream's answer may hide a secret behind: the escapes of its kind in the
/// input, in order, or None when the input holds none.
pub(super) type Decoding = fn(&[u8]) -> Option<Vec<Escape>>;

pub(super) const DECODINGS: &[(&str, Decoding)] = &[
    ("JSON escapes", json_escapes),
    ("percent-encoding", percent_escapes),
    ("quoted-printable", quoted_printable_escapes),
    ("HTML character references", html_escapes),
];

/// A view a scan can read around its escapes.
pub(super) trait View {
    /// The view's length.
    fn len(&self) -> usize;
    /// Where each escape's decoded piece lies in the view (start, end), in order.
    fn pieces(&self) -> impl Iterator<Item = (usize, usize)>;
    /// The view's bytes `start..end`, built in `scratch` if they must be (one buffer serves
    /// every stretch of a scan).
    fn stretch<'s>(&'s self, start: usize, end: usize, scratch: &'s mut Vec<u8>) -> &'s [u8];
}

/// A decoded text and where its decoded pieces lie in it (start, end); everything between
/// them is the input copied as it was. Built whole: the tests' reference for [`Unbuilt`].
#[cfg(test)]
#[derive(Debug, PartialEq)]
pub(super) struct Decoded {
    pub bytes: Vec<u8>,
    pieces: Vec<(usize, usize)>,
}

#[cfg(test)]
impl Decoded {
    /// The whole view of `input` with `escapes` undone.
    pub fn build(input: &[u8], escapes: &[Escape]) -> Decoded {
        let mut bytes = Vec::with_capacity(input.len());
        let mut pieces = Vec::with_capacity(escapes.len());
        let mut copied = 0;
        for e in escapes {
            bytes.extend_from_slice(&input[copied..e.from]);
            let start = bytes.len();
            bytes.extend_from_slice(e.piece.as_bytes());
            pieces.push((start, bytes.len()));
            copied = e.to;
        }
        bytes.extend_from_slice(&input[copied..]);
        Decoded { bytes, pieces }
    }
}

/// `input` decoded by `decoding`, whole, or None when it holds nothing to decode (tests).
#[cfg(test)]
pub(super) fn decode(input: &[u8], decoding: Decoding) -> Option<Decoded> {
    decoding(input).map(|escapes| Decoded::build(input, &escapes))
}

#[cfg(test)]
impl View for Decoded {
    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn pieces(&self) -> impl Iterator<Item = (usize, usize)> {
        self.pieces.iter().copied()
    }

    fn stretch<'s>(&'s self, start: usize, end: usize, _: &'s mut Vec<u8>) -> &'s [u8] {
        &self.bytes[start..end]
    }
}

/// A view that is not built: its input, its escapes and where each escape's piece starts in
/// the view. Only the stretches a scan asks for are built (a page of JSON is ~1 MB, and each
/// second-level view of it was a whole copy).
pub(super) struct Unbuilt<'a> {
    input: &'a [u8],
    escapes: Vec<Escape>,
    /// Where each escape's piece lies in the view (start, end), in order.
    pieces: Vec<(usize, usize)>,
    len: usize,
}

impl<'a> Unbuilt<'a> {
    pub fn new(input: &'a [u8], escapes: Vec<Escape>) -> Unbuilt<'a> {
        let mut pieces = Vec::with_capacity(escapes.len());
        // `at` is a position in the view, `from` the input byte it is copied from.
        let (mut at, mut from) = (0, 0);
        for e in &escapes {
            at += e.from - from;
            pieces.push((at, at + e.piece.len));
            at += e.piece.len;
            from = e.to;
        }
        Unbuilt {
            len: at + (input.len() - from),
            input,
            escapes,
            pieces,
        }
    }
}

impl Unbuilt<'_> {
    /// The whole view, written into `out` (cleared first).
    pub fn build_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.len);
        self.stretch(0, self.len, out);
    }
}

impl View for Unbuilt<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn pieces(&self) -> impl Iterator<Item = (usize, usize)> {
        self.pieces.iter().copied()
    }

    fn stretch<'s>(&'s self, start: usize, end: usize, out: &'s mut Vec<u8>) -> &'s [u8] {
        out.clear();
        // The first escape whose piece ends after `start` (found by halving: a scan reads a
        // stretch around every piece); before it, the view is the input shifted by what the
        // escapes before it saved.
        let first = self.pieces.partition_point(|&(_, e)| e <= start);
        let (mut at, mut from) = match first {
            0 => (0, 0),
            i => (self.pieces[i - 1].1, self.escapes[i - 1].to),
        };
        // `at` is a position in the view, `from` the input byte it was copied from.
        let mut copy = |view_from: usize, bytes: &[u8]| {
            let (a, b) = (start.max(view_from), end.min(view_from + bytes.len()));
            if a < b {
                out.extend_from_slice(&bytes[a - view_from..b - view_from]);
            }
        };
        for (e, &(s, piece_end)) in self.escapes[first..].iter().zip(&self.pieces[first..]) {
            if at >= end {
                break;
            }
            copy(at, &self.input[from..e.from]);
            copy(s, e.piece.as_bytes());
            at = piece_end;
            from = e.to;
        }
        if at < end {
            copy(at, &self.input[from..]);
        }
        out
    }
}

/// JSON string escapes (`\uXXXX` with surrogate pairs, `\/`, `\n`, ...) wherever they appear.
pub(super) fn json_escapes(input: &[u8]) -> Option<Vec<Escape>> {
    let hex4 = |at: usize| -> Option<u32> {
        let s = std::str::from_utf8(input.get(at..at + 4)?).ok()?;
        u32::from_str_radix(s, 16).ok()
    };
    escapes(input, b'\\', |i| {
        let simple = match input.get(i + 1)? {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(c) = simple {
            return Some((Piece::byte(c), 2));
        }
        if input[i + 1] != b'u' {
            return None;
        }
        let hi = hex4(i + 2)?;
        let mut used = 6;
        let code = if (0xD800..0xDC00).contains(&hi)
            && input.get(i + 6..i + 8) == Some(&b"\\u"[..])
            && let Some(lo) = hex4(i + 8)
            && (0xDC00..0xE000).contains(&lo)
        {
            used = 12;
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
        Some((Piece::char(c), used))
    })
}

/// The escapes of one kind in `input`: `step(i)` looks at an occurrence of `trigger` at `i` and
/// answers what it decodes to and how many bytes it used, or None to keep it as is. Nothing is
/// allocated for a text without a single escape (the common case: every upstream answer passes
/// through here).
fn escapes(
    input: &[u8],
    trigger: u8,
    step: impl Fn(usize) -> Option<(Piece, usize)>,
) -> Option<Vec<Escape>> {
    let mut out: Vec<Escape> = Vec::new();
    let mut from = 0;
    while let Some(off) = memchr::memchr(trigger, &input[from..]) {
        let i = from + off;
        match step(i) {
            Some((piece, used)) => {
                out.push(Escape {
                    from: i,
                    to: i + used,
                    piece,
                });
                from = i + used;
            }
            None => from = i + 1,
        }
        if from >= input.len() {
            break;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `%XX` escapes, upper, lower or mixed case. (On [`escapes`]: a page of JSON whose links hold a
/// few escapes was decoded byte by byte, a few percent of a whole sync's time.)
pub(super) fn percent_escapes(input: &[u8]) -> Option<Vec<Escape>> {
    let hex = |b: u8| (b as char).to_digit(16);
    escapes(input, b'%', |i| {
        let (h, l) = (hex(*input.get(i + 1)?)?, hex(*input.get(i + 2)?)?);
        Some((Piece::byte((h * 16 + l) as u8), 3))
    })
}

/// Quoted-printable: `=XX` escapes (any case) and `=` soft line breaks. Written here because
/// the decoders on crates.io reject or rewrite the rest of a text that is not a clean MIME
/// part, and this one must leave everything else alone.
pub(super) fn quoted_printable_escapes(input: &[u8]) -> Option<Vec<Escape>> {
    let hex = |b: u8| (b as char).to_digit(16);
    escapes(input, b'=', |i| {
        match (input.get(i + 1), input.get(i + 2)) {
            (Some(b'\r'), Some(b'\n')) => Some((Piece::NOTHING, 3)),
            (Some(b'\n'), _) => Some((Piece::NOTHING, 2)),
            (Some(&a), Some(&b)) => {
                let (h, l) = (hex(a)?, hex(b)?);
                Some((Piece::byte((h * 16 + l) as u8), 3))
            }
            _ => None,
        }
    })
}

/// HTML numeric character references (`&#65;`, `&#x41;`) and the five XML entities.
pub(super) fn html_escapes(input: &[u8]) -> Option<Vec<Escape>> {
    const NAMED: &[(&[u8], u8)] = &[
        (b"&amp;", b'&'),
        (b"&lt;", b'<'),
        (b"&gt;", b'>'),
        (b"&quot;", b'"'),
        (b"&apos;", b'\''),
    ];
    escapes(input, b'&', |i| {
        let rest = &input[i..];
        if let Some((name, c)) = NAMED.iter().find(|(name, _)| rest.starts_with(name)) {
            return Some((Piece::byte(*c), name.len()));
        }
        if rest.get(1) != Some(&b'#') {
            return None;
        }
        let len = rest.iter().take(12).position(|&b| b == b';')?;
        let body = &rest[2..len];
        let code = match body.first() {
            Some(b'x' | b'X') => std::str::from_utf8(&body[1..])
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok()),
            _ => std::str::from_utf8(body).ok().and_then(|s| s.parse().ok()),
        };
        let c = code.and_then(char::from_u32)?;
        Some((Piece::char(c), len + 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts with every kind of escape, next to each other, cut short, and none.
    fn texts() -> Vec<Vec<u8>> {
        let parts: [&[u8]; 16] = [
            b"plain ",
            b"\\u0041",
            b"\\",
            b"\\n",
            b"\\ud83d\\ude00",
            b"%41",
            b"%4",
            b"%",
            b"=3D",
            b"=\r\n",
            b"=\n",
            b"=",
            b"&amp;",
            b"&#x41;",
            b"&#65",
            b"\xc3\xa9",
        ];
        let mut texts = vec![Vec::new()];
        // A small deterministic generator: every text is a run of parts.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 1..40 {
            for _ in 0..40 {
                let mut t = Vec::new();
                for _ in 0..len {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    t.extend_from_slice(parts[(seed % parts.len() as u64) as usize]);
                }
                texts.push(t);
            }
        }
        texts
    }

    #[test]
    fn an_unbuilt_view_reads_exactly_what_the_built_view_holds_in_every_stretch() {
        let mut checked = 0;
        for text in texts() {
            for (name, decoding) in DECODINGS {
                let Some(escapes) = decoding(&text) else {
                    continue;
                };
                let built = Decoded::build(&text, &escapes);
                let unbuilt = Unbuilt::new(&text, escapes);
                assert_eq!(unbuilt.len(), built.len(), "{name}: {text:?}");
                let mut whole = b"left over".to_vec();
                unbuilt.build_into(&mut whole);
                assert_eq!(whole, built.bytes, "{name}: {text:?}");
                assert!(unbuilt.pieces().eq(built.pieces()), "{name}: {text:?}");
                let n = built.len();
                for start in 0..=n {
                    for end in [start, start + 1, start + 5, n]
                        .into_iter()
                        .filter(|e| *e <= n)
                    {
                        let (mut a, mut b) = (vec![b'?'; 3], Vec::new());
                        assert_eq!(
                            unbuilt.stretch(start, end, &mut a),
                            built.stretch(start, end, &mut b),
                            "{name} {start}..{end}: {text:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }
}
