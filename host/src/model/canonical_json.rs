//! Recognizes JSON text that is already exactly what `serde_json::Value::to_string` writes for
//! the value it holds: no whitespace, object keys in byte order and each once, serde_json's
//! string escapes, integers as written. A connector's metadata in that form is kept as its own
//! text, so a sync page's documents need no `Value` built, walked or written again; the SDK writes
//! metadata this way. Anything else (a float, an escaped key, `\/`, deep nesting) is answered
//! "no", and the caller takes the parse-and-write path: a "no" is never wrong, a "yes" must be.

/// Deeper nesting is left to the parser, which knows serde_json's own recursion limit.
const MAX_DEPTH: usize = 64;

/// True when `text` is one JSON value written exactly as `Value::to_string` writes it.
pub fn is_canonical(text: &str) -> bool {
    let mut p = Reader {
        b: text.as_bytes(),
        i: 0,
    };
    p.value(0) && p.i == p.b.len()
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }

    fn word(&mut self, w: &[u8]) -> bool {
        let hit = self.b[self.i..].starts_with(w);
        if hit {
            self.i += w.len();
        }
        hit
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => depth < MAX_DEPTH && self.object(depth + 1),
            Some(b'[') => depth < MAX_DEPTH && self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'n') => self.word(b"null"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.eat(b'}') {
            return true;
        }
        let mut last: Option<&[u8]> = None;
        loop {
            // An escaped key sorts by its decoded text, which this reader does not build.
            let Some(key) = self.string().filter(|k| !k.contains(&b'\\')) else {
                return false;
            };
            // serde_json's map is ordered by the keys' bytes, and a repeated key keeps one value.
            if last.is_some_and(|l| l >= key) {
                return false;
            }
            last = Some(key);
            if !self.eat(b':') || !self.value(depth) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    /// A string's text between its quotes, when it is escaped as serde_json escapes: `\"`, `\\`,
    /// the five short escapes, and `\u00xx` (lowercase) for the other control characters only.
    fn string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        loop {
            // Plain text up to the next quote, backslash or control character, in one sweep.
            let plain = self.b[self.i..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            self.i += plain;
            match self.b[self.i] {
                b'"' => {
                    let s = &self.b[start..self.i];
                    self.i += 1;
                    return Some(s);
                }
                b'\\' => self.escape()?,
                _ => return None,
            }
        }
    }

    fn escape(&mut self) -> Option<()> {
        match *self.b.get(self.i + 1)? {
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.i += 2;
                Some(())
            }
            b'u' => {
                let code = match self.b.get(self.i + 2..self.i + 6)? {
                    [b'0', b'0', h, l] => lower_hex(*h)? * 16 + lower_hex(*l)?,
                    _ => return None,
                };
                // The short escapes' characters are never written as `\u`.
                let short = matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d);
                (code < 0x20 && !short).then(|| self.i += 6)
            }
            _ => None,
        }
    }

    /// An integer as serde_json writes an `i64` or `u64`; a fraction or exponent (a float,
    /// whose shortest form this reader does not compute), `-0` or a larger integer is "no".
    fn integer(&mut self) -> bool {
        let negative = self.eat(b'-');
        let digits = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let n = &self.b[digits..self.i];
        if n.is_empty() || (n[0] == b'0' && (n.len() > 1 || negative)) {
            return false;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return false;
        }
        // Within `i64`/`u64`: fewer digits than the limit's always are; as many, compared.
        let limit: &[u8] = match negative {
            true => b"9223372036854775808",
            false => b"18446744073709551615",
        };
        n.len() < limit.len() || (n.len() == limit.len() && n <= limit)
    }
}

fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use serde_json::{Value, json};

    /// What the parse-and-write path would store for `text`.
    fn written(text: &str) -> Option<String> {
        serde_json::from_str::<Value>(text)
            .ok()
            .map(|v| v.to_string())
    }

    #[test]
    fn text_serde_json_writes_is_canonical() {
        for v in [
            json!({}),
            json!([]),
            json!(null),
            json!({"a": 1, "b": [true, false, null], "c": {"d": "e"}}),
            json!({"n": -9_223_372_036_854_775_808i64, "u": u64::MAX, "z": 0}),
            json!({"esc": "quote \" backslash \\ nl \n tab \t cr \r bs \u{8} ff \u{c} nul \u{0} us \u{1f} del \u{7f}"}),
            json!({"ünï": "çødé ✓ \u{2028} 🦀", "A": 1, "a": 2, "B": 3}),
            json!("a lone string"),
            json!([[[[{"deep": [1, [2, [3]]]}]]]]),
        ] {
            let text = v.to_string();
            assert!(is_canonical(&text), "{text}");
        }
    }

    #[test]
    fn text_serde_json_would_write_differently_is_not_canonical() {
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{ "a":1}"#,
            r#"{"a": 1}"#,
            r#"[1, 2]"#,
            " {}",
            "{}\n",
            r#"{"a":1.0}"#,
            r#"{"a":1e3}"#,
            r#"{"a":-0}"#,
            r#"{"a":01}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":-9223372036854775809}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":"\u000A"}"#,
            r#"{"a":"\u000a"}"#,
            r#"{"a":"\u001F"}"#,
            r#"{"a":"\ud83e\udd80"}"#,
            r#"{"a\n":1}"#,
            "{\"a\":\"raw\u{1}control\"}",
            r#"{"a":1}{}"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"{"a"}"#,
            "",
            "tru",
            "nul",
            r#""unterminated"#,
            r#""\"#,
            r#""\u00"#,
        ] {
            assert!(!is_canonical(text), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(written(&deep).is_some());
        assert!(!is_canonical(&deep), "deeper than the reader goes");
    }

    /// Random JSON-like text, mostly near the canonical form, so that both answers come up.
    fn random_text(rng: &mut StdRng, depth: usize, out: &mut String) {
        const PIECES: &[&str] = &[
            "0",
            "7",
            "-3",
            "12",
            "01",
            "-0",
            "1.5",
            "2e3",
            "true",
            "false",
            "null",
            "\"\"",
            "\"a\"",
            "\"b\"",
            "\"\\n\"",
            "\"\\u0000\"",
            "\"\\u001f\"",
            "\"\\u00e9\"",
            "\"\\/\"",
            "\"é\"",
            "\"\\\\\"",
            "\"\\\"\"",
            " ",
            ",",
            ":",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "\"\\t\"",
            "\"\\u0009\"",
        ];
        match rng.gen_range(0..10) {
            0 | 1 if depth < 4 => {
                out.push('[');
                for i in 0..rng.gen_range(0..4) {
                    if i > 0 {
                        out.push(',');
                    }
                    random_text(rng, depth + 1, out);
                }
                out.push(']');
            }
            2..=4 if depth < 4 => {
                out.push('{');
                let mut keys: Vec<&str> = ["a", "b", "B", "é", "ab", "a\\n", "", "\\u0041"]
                    .into_iter()
                    .filter(|_| rng.gen_bool(0.4))
                    .collect();
                if rng.gen_bool(0.8) {
                    keys.sort();
                }
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(k);
                    out.push_str("\":");
                    random_text(rng, depth + 1, out);
                }
                out.push('}');
            }
            _ => out.push_str(PIECES[rng.gen_range(0..PIECES.len())]),
        }
    }

    #[test]
    fn canonical_text_is_exactly_what_parsing_and_writing_it_gives() {
        let mut rng = StdRng::seed_from_u64(17);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..200_000 {
            let mut text = String::new();
            random_text(&mut rng, 0, &mut text);
            if is_canonical(&text) {
                assert_eq!(written(&text).as_deref(), Some(text.as_str()), "{text}");
                yes += 1;
            } else {
                // A "no" for text serde_json writes the same would only cost speed; count it.
                no += 1;
            }
        }
        assert!(
            yes > 20_000 && no > 20_000,
            "both answers exercised: {yes} / {no}"
        );
    }
}
