//! Text helpers: HTML (and Confluence storage format) and Atlassian Document Format to plain
//! text, RFC 3339 timestamps and the clock, non-blank parts joined, quoted query literals.

/// Convert HTML or XHTML (including Confluence storage format) to plain text for indexing.
///
/// Tags are removed; block elements (`p`, `div`, headings, lists, tables, ...) become line or
/// paragraph breaks; other whitespace collapses to single spaces; common named and all numeric
/// entities are decoded; `<![CDATA[...]]>` content is kept; comments, `script`, `style` and
/// Confluence macro parameters (`ac:parameter`) are dropped.
pub fn html_to_text(html: &str) -> String {
    let mut out = Out::default();
    let mut rest = html;
    let mut skip_until: Option<String> = None;
    while let Some(lt) = rest.find('<') {
        if skip_until.is_none() {
            out.text(&rest[..lt]);
        }
        rest = &rest[lt..];
        if let Some(body) = rest.strip_prefix("<![CDATA[") {
            let end = body.find("]]>").unwrap_or(body.len());
            if skip_until.is_none() {
                out.raw(&body[..end]);
            }
            rest = body.get(end + 3..).unwrap_or("");
            continue;
        }
        if let Some(body) = rest.strip_prefix("<!--") {
            rest = body.find("-->").map_or("", |i| &body[i + 3..]);
            continue;
        }
        let end = tag_end(rest);
        let tag = rest[1..end].trim_end_matches('>');
        rest = &rest[end..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/' && *c != '>')
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(until) = &skip_until {
            if closing && *until == name {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "script" | "style" | "ac:parameter" if !closing && !tag.ends_with('/') => {
                skip_until = Some(name)
            }
            "br" | "li" | "tr" | "dt" | "dd" => out.brk(1),
            "td" | "th" => out.space(),
            "p"
            | "div"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "ul"
            | "ol"
            | "dl"
            | "table"
            | "blockquote"
            | "pre"
            | "hr"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "ac:structured-macro"
            | "ac:layout-section"
            | "ac:layout-cell" => out.brk(2),
            _ => {}
        }
    }
    if skip_until.is_none() {
        out.text(rest);
    }
    out.s
}

/// Index just past the `>` closing the tag that starts `s` (quotes may contain `>`).
fn tag_end(s: &str) -> usize {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// Output with whitespace collapsing and pending breaks (so leading/trailing ones vanish).
#[derive(Default)]
struct Out {
    s: String,
    space: bool,
    brk: u8,
}

impl Out {
    fn brk(&mut self, n: u8) {
        self.brk = self.brk.max(n);
    }
    fn space(&mut self) {
        self.space = true;
    }
    fn push(&mut self, c: char) {
        if c.is_whitespace() {
            self.space = true;
            return;
        }
        if !self.s.is_empty() {
            match self.brk {
                0 if self.space => self.s.push(' '),
                0 => {}
                1 => self.s.push('\n'),
                _ => self.s.push_str("\n\n"),
            }
        }
        self.space = false;
        self.brk = 0;
        self.s.push(c);
    }
    fn raw(&mut self, text: &str) {
        text.chars().for_each(|c| self.push(c));
    }
    fn text(&mut self, text: &str) {
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            self.raw(&rest[..amp]);
            rest = &rest[amp..];
            let decoded = rest[1..]
                .find(';')
                .filter(|&i| i <= 10)
                .and_then(|i| entity(&rest[1..=i]).map(|c| (c, i + 2)));
            match decoded {
                Some((c, len)) => {
                    self.push(c);
                    rest = &rest[len..];
                }
                None => {
                    self.push('&');
                    rest = &rest[1..];
                }
            }
        }
        self.raw(rest);
    }
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "euro" => '€',
        "times" => '×',
        _ => return None,
    })
}

/// An HTTP date (`Wed, 25 Nov 2026 23:18:39 GMT`, RFC 9110 IMF-fixdate, as in a `Date` header)
/// as RFC 3339 (`2026-11-25T23:18:39Z`); `None` for anything else.
pub fn http_date_to_rfc3339(value: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? + 1;
    let (day, year): (u32, u32) = (day.parse().ok()?, year.parse().ok()?);
    let out = format!("{year:04}-{month:02}-{day:02}T{time}Z");
    parse_rfc3339(&out).map(|_| out)
}

/// Parse an RFC 3339 / ISO 8601 timestamp (`2024-01-15T10:20:30.123Z`, `...+02:00`, `...+0000`)
/// into milliseconds since the Unix epoch. Compare timestamps with this, not as strings: the
/// number of fractional digits varies.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        let ms = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = ms.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = rest[1..].replace(':', "");
            if hm.len() != 4 {
                return None;
            }
            sign * (hm[..2].parse::<i64>().ok()? * 60 + hm[2..].parse::<i64>().ok()?)
        }
    };
    // Days from civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// An ISO 8601 timestamp as RFC 3339: a `+hhmm`/`-hhmm` offset gets its colon (Atlassian's
/// `2026-01-02T03:04:05.000+0000` becomes `...+00:00`); anything else is returned unchanged.
pub fn rfc3339(s: &str) -> String {
    let (b, n) = (s.as_bytes(), s.len());
    let digits = n > 5 && b[n - 4..].iter().all(u8::is_ascii_digit);
    if digits && matches!(b[n - 5], b'+' | b'-') && b.get(n.saturating_sub(8)) != Some(&b'T') {
        return format!("{}:{}", &s[..n - 2], &s[n - 2..]);
    }
    s.to_owned()
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC, whole seconds (`2026-01-02T03:04:05Z`):
/// the inverse of [`parse_rfc3339`] for a time an upstream wants as text (a window, a watermark).
pub fn rfc3339_of_ms(ms: i64) -> String {
    const DAY_MS: i64 = 86_400_000;
    let (days, secs) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS) / 1000);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, min, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z")
}

/// Wall-clock milliseconds since the Unix epoch (`wasi:clocks` through std); 0 if the clock is
/// before the epoch.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The non-blank `parts`, trimmed, joined with `sep`.
pub fn join_non_blank(parts: &[String], sep: &str) -> String {
    let parts = parts.iter().map(|s| s.trim()).filter(|s| !s.is_empty());
    parts.collect::<Vec<_>>().join(sep)
}

/// The non-blank `parts`, trimmed, one per line (a document body assembled from fields).
pub fn lines(parts: &[String]) -> String {
    join_non_blank(parts, "\n")
}

/// `value`, or `fallback` when `value` is blank (a title that may be empty).
pub fn or(value: String, fallback: impl Into<String>) -> String {
    if value.trim().is_empty() {
        fallback.into()
    } else {
        value
    }
}

/// A body as plain text by its content type: HTML converted ([`html_to_text`]) when the type is
/// `html` or `text/html` (any case, parameters ignored), anything else trimmed.
pub fn to_plain(content: &str, content_type: &str) -> String {
    let kind = content_type.split(';').next().unwrap_or_default().trim();
    if kind.eq_ignore_ascii_case("html") || kind.eq_ignore_ascii_case("text/html") {
        html_to_text(content)
    } else {
        content.trim().to_owned()
    }
}

/// `s` as a double-quoted string literal with `\` and `"` escaped, as JQL, CQL and most search
/// query languages write one.
pub fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `s` without the highlight marks Atlassian search APIs put around matches in titles and
/// excerpts (`@@@hl@@@`...`@@@endhl@@@`).
pub fn strip_highlight(s: &str) -> String {
    s.replace("@@@hl@@@", "").replace("@@@endhl@@@", "")
}

/// The later of two RFC 3339 timestamps, compared as instants ([`parse_rfc3339`]), not as
/// strings; one that does not parse loses, and `None` only when both are.
pub fn later(a: Option<String>, b: Option<String>) -> Option<String> {
    let at = |t: &Option<String>| t.as_deref().and_then(parse_rfc3339);
    if at(&a) >= at(&b) { a.or(b) } else { b }
}

/// Plain text of an Atlassian Document Format node (Jira and Confluence rich text): `text` nodes
/// concatenated, block nodes on lines of their own, `hardBreak` as a newline, mentions, emoji,
/// statuses and dates by their text, cards by their URL; blank lines dropped.
pub fn adf_to_text(node: &serde_json::Value) -> String {
    use serde_json::Value;
    fn walk(node: &Value, out: &mut String) {
        let kind = node["type"].as_str().unwrap_or("");
        let attr = |key: &str| node["attrs"][key].as_str().unwrap_or("");
        let text = match (node, kind) {
            (Value::Array(items), _) => return items.iter().for_each(|n| walk(n, out)),
            (Value::String(s), _) => s.as_str(),
            (_, "text") => node["text"].as_str().unwrap_or(""),
            (_, "hardBreak") => "\n",
            (_, "mention" | "emoji" | "status" | "date") => attr("text"),
            (_, "inlineCard" | "blockCard") => attr("url"),
            (Value::Object(_), "doc" | "") => return walk(&node["content"], out),
            // Blocks on lines of their own (the empty lines this leaves are dropped below).
            (Value::Object(_), _) => {
                out.push('\n');
                walk(&node["content"], out);
                "\n"
            }
            _ => "",
        };
        out.push_str(text);
    }
    let mut out = String::new();
    walk(node, &mut out);
    let lines = out.lines().map(str::trim_end).filter(|l| !l.is_empty());
    lines.collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_are_stripped_and_the_later_instant_wins() {
        assert_eq!(strip_highlight("a @@@hl@@@b@@@endhl@@@ c"), "a b c");
        let (old, new) = (
            Some("2025-01-01T00:00:00Z".to_owned()),
            Some("2025-01-01T01:00:00.5+01:00".to_owned()),
        );
        let newer = Some("2025-01-01T00:00:00.5Z".to_owned());
        assert_eq!(later(old.clone(), newer.clone()), newer);
        assert_eq!(later(newer.clone(), old.clone()), newer);
        assert_eq!(
            later(new.clone(), newer.clone()),
            new,
            "compared as instants"
        );
        assert_eq!(later(None, old.clone()), old);
        assert_eq!(later(Some("garbage".into()), old.clone()), old);
        assert_eq!(later(None, None), None);
    }

    #[test]
    fn an_http_date_becomes_rfc3339_and_anything_else_none() {
        assert_eq!(
            http_date_to_rfc3339("Wed, 25 Nov 2026 23:18:39 GMT").as_deref(),
            Some("2026-11-25T23:18:39Z")
        );
        for bad in [
            "yesterday",
            "Wed, 25 Foo 2026 23:18:39 GMT",
            "Wed, 25 Nov 2026 25:00:00 GMT",
        ] {
            assert_eq!(http_date_to_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn html() {
        let html = "<h1>Title</h1>\n<p>Hello&nbsp;<b>big</b>   world &amp; more &#8212; &#x41;&unknown; a&lt;b&gt;</p>\
                    <ul><li>one</li><li>two</li></ul><p>line<br/>break</p>\
                    <script>var x = '<p>';</script><!-- hidden <p> -->\
                    <ac:structured-macro ac:name=\"code\"><ac:parameter ac:name=\"language\">java</ac:parameter>\
                    <ac:plain-text-body><![CDATA[if (a < b) {}]]></ac:plain-text-body></ac:structured-macro>\
                    <a href=\"x?a>b\">link</a><table><tr><td>c1</td><td>c2</td></tr></table>";
        assert_eq!(
            html_to_text(html),
            "Title\n\nHello big world & more — A&unknown; a<b>\n\none\ntwo\n\nline\nbreak\n\nif (a < b) {}\n\nlink\n\nc1 c2"
        );
        assert_eq!(html_to_text("  plain   text \n"), "plain text");
        assert_eq!(html_to_text("a &amp"), "a &amp");
        assert_eq!(html_to_text("<p>unterminated <bé"), "unterminated");
        assert_eq!(html_to_text(""), "");
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-01-15T10:20:30Z"),
            Some(1_705_314_030_000)
        );
        assert_eq!(
            parse_rfc3339("2024-01-15T10:20:30.5Z"),
            Some(1_705_314_030_500)
        );
        assert_eq!(
            parse_rfc3339("2024-01-15T12:20:30.123456+02:00"),
            Some(1_705_314_030_123)
        );
        assert_eq!(
            parse_rfc3339("2024-01-15T10:20:30.000+0000"),
            Some(1_705_314_030_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00-01:00"),
            Some(1_709_168_400_000)
        );
        assert!(parse_rfc3339("2024-01-15T10:20:30.5Z") > parse_rfc3339("2024-01-15T10:20:30Z"));
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2024-01-15T10:20:30"), None);
    }

    #[test]
    fn an_offset_without_colon_gets_one_and_other_text_stays() {
        assert_eq!(
            rfc3339("2026-01-02T03:04:05.000+0000"),
            "2026-01-02T03:04:05.000+00:00"
        );
        assert_eq!(
            rfc3339("2026-01-02T03:04:05-0130"),
            "2026-01-02T03:04:05-01:30"
        );
        for same in [
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05+01:00",
            "2026-01-02",
            "",
        ] {
            assert_eq!(rfc3339(same), same);
        }
    }

    #[test]
    fn milliseconds_become_rfc3339_and_parse_back_to_the_second() {
        assert_eq!(rfc3339_of_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_of_ms(1_705_314_030_999), "2024-01-15T10:20:30Z");
        assert_eq!(rfc3339_of_ms(1_709_168_400_000), "2024-02-29T01:00:00Z");
        assert_eq!(rfc3339_of_ms(-1), "1969-12-31T23:59:59Z");
        for ms in [0, 951_782_400_000, 4_107_542_399_000, -62_135_596_800_000] {
            assert_eq!(parse_rfc3339(&rfc3339_of_ms(ms)), Some(ms), "{ms}");
        }
    }

    #[test]
    fn adf_becomes_text_with_blocks_on_their_own_lines() {
        use serde_json::{Value, json};
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Hello", "marks": [{"type": "strong"}]},
                {"type": "text", "text": " world."}, {"type": "hardBreak"},
                {"type": "mention", "attrs": {"id": "1", "text": "@Ada"}}]},
            {"type": "bulletList", "content": [{"type": "listItem", "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "one"}]}]}]},
            {"type": "paragraph", "content": [{"type": "inlineCard", "attrs": {"url": "https://x"}}]}
        ]});
        assert_eq!(adf_to_text(&doc), "Hello world.\n@Ada\none\nhttps://x");
        assert_eq!(adf_to_text(&Value::Null), "");
        assert_eq!(adf_to_text(&json!("plain")), "plain");
    }

    #[test]
    fn parts_join_without_blanks_and_literals_are_escaped() {
        let parts = [
            "  Ann ".to_string(),
            " ".into(),
            String::new(),
            "CFO".into(),
        ];
        assert_eq!(lines(&parts), "Ann\nCFO");
        assert_eq!(join_non_blank(&parts, ", "), "Ann, CFO");
        assert_eq!(or("  ".into(), "(no subject)"), "(no subject)");
        assert_eq!(or("Hi".into(), "(no subject)"), "Hi");
        assert_eq!(quoted(r#"say "hi" \ now"#), r#""say \"hi\" \\ now""#);
        assert_eq!(to_plain("<p>a &amp; b</p>", "HTML"), "a & b");
        assert_eq!(to_plain("<p>x</p>", "text/html; charset=utf-8"), "x");
        assert_eq!(to_plain(" <p>x</p> ", "text"), "<p>x</p>");
        let now = now_ms();
        assert!(now > 1_700_000_000_000, "{now}");
    }
}
