//! The subset of CQL a connector sends: `text ~`, `title ~|=`, `type`, `space`, `lastmodified`/`created`
//! comparisons, joined with AND, plus `order by` (asc/desc). Anything else is a parse error (400).

use std::cmp::Ordering;

use crate::common::parse_date_minute;

/// What a page exposes to a CQL query.
pub struct Doc<'a> {
    pub title: &'a str,
    pub text: &'a str,
    pub space_key: &'a str,
    pub created_ms: i64,
    pub modified_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let (chars, mut i, mut out) = (s.chars().collect::<Vec<_>>(), 0, Vec::new());
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('\\') => {
                        v.extend(chars.get(i + 1));
                        i += 2;
                    }
                    Some(&q) if q == c => break,
                    Some(&o) => {
                        v.push(o);
                        i += 1;
                    }
                }
            }
            i += 1;
            out.push(Tok::Str(v));
        } else if let Some(op) = ["!=", "!~", ">=", "<=", "=", "~", ">", "<"]
            .into_iter()
            .find(|op| {
                let n = op.chars().count();
                chars
                    .get(i..i + n)
                    .is_some_and(|w| w.iter().copied().eq(op.chars()))
            })
        {
            i += op.len();
            out.push(Tok::Op(op));
        } else if "(),".contains(c) {
            out.push(
                [Tok::LParen, Tok::RParen, Tok::Comma]
                    .into_iter()
                    .nth("(),".find(c).unwrap_or(0))
                    .unwrap_or(Tok::Comma),
            );
            i += 1;
        } else if c.is_alphanumeric() || "._-:*".contains(c) {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "._-:*".contains(chars[i])) {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

/// Words (lower-cased, `*` kept for prefix match) or an exact phrase when the value itself is quoted.
#[derive(Debug)]
struct TextQuery {
    words: Vec<String>,
    phrase: bool,
}

fn split_words(s: &str) -> Vec<String> {
    let lower = s.to_lowercase();
    lower
        .split(|c: char| !(c.is_alphanumeric() || c == '*'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

impl TextQuery {
    fn new(v: &str) -> Result<Self, String> {
        let v = v.trim();
        let phrase = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
        let words = split_words(v);
        if words.is_empty() {
            Err("empty text query".into())
        } else {
            Ok(TextQuery { words, phrase })
        }
    }
    fn matches(&self, hay: &str) -> bool {
        let hay: Vec<String> = split_words(&hay.replace('*', " "));
        if self.phrase {
            return format!(" {} ", hay.join(" ")).contains(&format!(" {} ", self.words.join(" ")));
        }
        self.words.iter().all(|w| match w.strip_suffix('*') {
            Some(prefix) => hay.iter().any(|h| h.starts_with(prefix)),
            None => hay.contains(w),
        })
    }
}

#[derive(Debug)]
enum Cond {
    Text(TextQuery),
    Title(TextQuery),
    TitleEq(String),
    Type(Vec<String>),
    Space(Vec<String>),
    Date {
        modified: bool,
        op: &'static str,
        ms: i64,
    },
}

#[derive(Debug, Clone, Copy)]
enum OrderField {
    Modified,
    Created,
    Title,
    Id,
}

#[derive(Debug)]
pub struct Cql {
    conds: Vec<(Cond, bool)>,
    order: Vec<(OrderField, bool)>,
}

impl Cql {
    pub fn matches(&self, d: &Doc) -> bool {
        self.conds.iter().all(|(c, negated)| {
            let hit = match c {
                Cond::Text(q) => q.matches(&format!("{} {}", d.title, d.text)),
                Cond::Title(q) => q.matches(d.title),
                Cond::TitleEq(t) => d.title == t,
                Cond::Type(types) => types.iter().any(|t| t == "page"),
                Cond::Space(keys) => keys.iter().any(|k| k.eq_ignore_ascii_case(d.space_key)),
                Cond::Date { modified, op, ms } => {
                    let v = if *modified {
                        d.modified_ms
                    } else {
                        d.created_ms
                    };
                    match *op {
                        ">=" => v >= *ms,
                        ">" => v > *ms,
                        "<=" => v <= *ms,
                        "<" => v < *ms,
                        "=" => (*ms..*ms + 60_000).contains(&v),
                        _ => !(*ms..*ms + 60_000).contains(&v),
                    }
                }
            };
            hit != *negated
        })
    }

    /// Compares two pages given as (modified ms, created ms, title, id); ties break on ascending id.
    pub fn order(&self, a: &(i64, i64, &String, u64), b: &(i64, i64, &String, u64)) -> Ordering {
        let by = |f: OrderField| match f {
            OrderField::Modified => a.0.cmp(&b.0),
            OrderField::Created => a.1.cmp(&b.1),
            OrderField::Title => a.2.cmp(b.2),
            OrderField::Id => a.3.cmp(&b.3),
        };
        let ordering = self.order.iter().fold(Ordering::Equal, |acc, (f, desc)| {
            acc.then_with(|| if *desc { by(*f).reverse() } else { by(*f) })
        });
        ordering.then(a.3.cmp(&b.3))
    }

    /// First word of the first text/title condition (to centre excerpts on), lower-cased.
    pub fn first_word(&self) -> String {
        let first = self.conds.iter().find_map(|(c, _)| match c {
            Cond::Text(q) | Cond::Title(q) => {
                q.words.first().map(|w| w.trim_end_matches('*').to_owned())
            }
            _ => None,
        });
        first.unwrap_or_default()
    }
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Tok> {
        self.at += 1;
        self.toks.get(self.at - 1).cloned()
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.at), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Str(s) | Tok::Word(s)) => Ok(s),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
    fn values(&mut self) -> Result<Vec<String>, String> {
        if self.next() != Some(Tok::LParen) {
            return Err("expected '(' after IN".into());
        }
        let mut out = vec![self.value()?];
        loop {
            match self.next() {
                Some(Tok::Comma) => out.push(self.value()?),
                Some(Tok::RParen) => return Ok(out),
                other => return Err(format!("expected ',' or ')', found {other:?}")),
            }
        }
    }
    fn clause(&mut self) -> Result<(Cond, bool), String> {
        let field = match self.next() {
            Some(Tok::Word(w)) => w.to_lowercase(),
            other => return Err(format!("expected a field, found {other:?}")),
        };
        let op: &'static str = match self.next() {
            Some(Tok::Op(op)) => op,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("in") => "in",
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") && self.keyword("in") => {
                self.at += 1;
                "not in"
            }
            other => {
                return Err(format!(
                    "expected an operator after '{field}', found {other:?}"
                ));
            }
        };
        let vals = if op.ends_with("in") {
            self.values()?
        } else {
            vec![self.value()?]
        };
        let list = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
        let cond = match (field.as_str(), op) {
            ("text", "~" | "!~") => Cond::Text(TextQuery::new(&vals[0])?),
            ("title", "~" | "!~") => Cond::Title(TextQuery::new(&vals[0])?),
            ("title", "=" | "!=") => Cond::TitleEq(vals[0].clone()),
            ("type", "=" | "!=" | "in" | "not in") => Cond::Type(list(&vals)),
            ("space" | "space.key", "=" | "!=" | "in" | "not in") => Cond::Space(vals),
            ("lastmodified" | "created", "=" | "!=" | ">" | ">=" | "<" | "<=") => {
                let ms = parse_date_minute(&vals[0]).ok_or_else(|| {
                    format!("bad date '{}', expected \"yyyy-MM-dd HH:mm\"", vals[0])
                })?;
                Cond::Date {
                    modified: field == "lastmodified",
                    op,
                    ms,
                }
            }
            _ => return Err(format!("unsupported field or operator: {field} {op}")),
        };
        // Date conditions handle "!=" themselves; elsewhere a negated operator flips the match.
        let negated = !matches!(cond, Cond::Date { .. }) && matches!(op, "!=" | "!~" | "not in");
        Ok((cond, negated))
    }
}

pub fn parse(s: &str) -> Result<Cql, String> {
    let mut p = Parser {
        toks: lex(s)?,
        at: 0,
    };
    let mut conds = Vec::new();
    while !p.keyword("order") {
        conds.push(p.clause()?);
        match p.next() {
            None => break,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("and") => continue,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("order") => p.at -= 1,
            Some(other) => return Err(format!("expected AND or ORDER BY, found {other:?}")),
        }
    }
    if conds.is_empty() {
        return Err("no condition".into());
    }
    let mut order = Vec::new();
    if p.keyword("order") {
        p.at += 1;
        if !p.keyword("by") {
            return Err("expected BY after ORDER".into());
        }
        p.at += 1;
        loop {
            let field = match p.next() {
                Some(Tok::Word(w)) => match w.to_lowercase().as_str() {
                    "lastmodified" => OrderField::Modified,
                    "created" => OrderField::Created,
                    "title" => OrderField::Title,
                    "id" => OrderField::Id,
                    other => return Err(format!("cannot order by '{other}'")),
                },
                other => return Err(format!("expected a field after ORDER BY, found {other:?}")),
            };
            let desc = p.keyword("desc");
            if desc || p.keyword("asc") {
                p.at += 1;
            }
            order.push((field, desc));
            match p.next() {
                None => break,
                Some(Tok::Comma) => continue,
                Some(other) => return Err(format!("unexpected {other:?} after ORDER BY")),
            }
        }
    }
    if p.at < p.toks.len() {
        return Err("unexpected trailing input".into());
    }
    Ok(Cql { conds, order })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc<'a>(title: &'a str, text: &'a str) -> Doc<'a> {
        Doc {
            title,
            text,
            space_key: "ENG",
            created_ms: 0,
            modified_ms: crate::common::utc_ms(2025, 3, 1, 10, 30),
        }
    }

    #[test]
    fn parses_connector_queries() {
        let q = parse(
            r#"type = page AND space = ENG AND text ~ "Airlock review" AND lastmodified >= "2025-03-01 10:30" order by lastmodified desc"#,
        );
        let q = q.expect("parses");
        assert!(q.matches(&doc("x", "the quarterly airlock REVIEW")));
        assert!(!q.matches(&doc("x", "airlock only")));
        let q = parse(
            r#"title ~ "gate*" and space in (OPS, eng) and lastmodified < "2025/03/01 10:31""#,
        )
        .expect("parses");
        assert!(q.matches(&doc("Gateway notes", "")));
        let phrase = parse(r#"text ~ "\"airlock review\"""#).expect("parses");
        assert!(
            phrase.matches(&doc("", "airlock review"))
                && !phrase.matches(&doc("", "review airlock"))
        );
        assert!(parse(r#"space != ENG"#).is_ok_and(|q| !q.matches(&doc("", ""))));
        for bad in [
            "",
            "text ~",
            "text ~ \"x\" OR title ~ y",
            "lastmodified >= \"soon\"",
            "foo = bar",
            "text ~ \"x",
            "order by title",
        ] {
            assert!(parse(bad).is_err(), "{bad} should fail");
        }
    }
}
