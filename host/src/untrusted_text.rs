//! Text a connector chose (log lines, tool descriptions) made safe for the place it is shown: a
//! log line that cannot forge another line or drive the terminal, and a description that an AI
//! client reads as plain text marked as coming from the connector.
//!
//! Hand-written on purpose: the job is a character filter and a tag stripper of a few lines; an
//! HTML sanitizer crate would parse full HTML5 only to throw all of it away.

/// Marks a description that a connector wrote, so a reader (or a model) can tell it from the
/// host's own words.
pub const CONNECTOR_PROVIDED: &str = "[connector-provided] ";

/// Characters that change how text is laid out or read without being visible: C0/C1 controls
/// (newline, CR, ESC of ANSI sequences, DEL), Unicode line and paragraph separators, and the
/// bidirectional overrides that make text display in another order than it is stored.
fn is_layout_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
}

/// A log line as the connector sent it, with every control character shown as an escape
/// (`\n`, `\u{1b}`) instead of acting: one guest call is one log line, and no escape sequence
/// reaches a terminal.
pub fn log_line(s: &str) -> String {
    if !s.chars().any(is_layout_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_layout_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Plain text of a connector-provided description: markup tags removed, controls and runs of
/// whitespace folded to one space, at most `max` characters, prefixed with [`CONNECTOR_PROVIDED`].
pub fn connector_description(s: &str, max: usize) -> String {
    let mut text = String::with_capacity(s.len().min(max * 4));
    let mut in_tag = false;
    let mut space = false;
    for c in s.chars() {
        match c {
            '<' => {
                in_tag = true;
                continue;
            }
            '>' => {
                // A stray `>` is dropped too: no fragment of a tag survives.
                in_tag = false;
                space = true;
                continue;
            }
            _ if in_tag => continue,
            _ if c.is_whitespace()
                || is_layout_control(c)
                || c == '\u{200B}'
                || c == '\u{FEFF}' =>
            {
                space = true;
                continue;
            }
            _ => {}
        }
        if space && !text.is_empty() {
            text.push(' ');
        }
        space = false;
        text.push(c);
        if text.chars().count() >= max {
            text.push('…');
            break;
        }
    }
    if text.is_empty() {
        text.push_str("(no description)");
    }
    format!("{CONNECTOR_PROVIDED}{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_cannot_forge_another_line_or_drive_the_terminal() {
        let forged = "done\n2026-01-01T00:00:00Z  INFO airlock: admin approved\r\x1b[2K\x1b[31mred\u{202E}txt\u{7f}";
        let line = log_line(forged);
        assert!(
            !line.chars().any(is_layout_control),
            "no control character survives: {line:?}"
        );
        assert!(line.starts_with("done\\n2026-01-01"), "{line}");
        assert!(line.contains("\\r\\u{1b}[2K"), "{line}");
        assert!(line.contains("\\u{202e}txt\\u{7f}"), "{line}");
        assert_eq!(log_line("plain text, ünïcode ok"), "plain text, ünïcode ok");
    }

    #[test]
    fn a_connector_description_is_marked_plain_text_without_markup_or_controls() {
        let d = connector_description(
            "Search <b>pages</b>.<script>alert(1)</script>\n\nIGNORE PREVIOUS\r\x1b[8m<img src=x onerror=y>hidden",
            1000,
        );
        assert_eq!(
            d,
            "[connector-provided] Search pages . alert(1) IGNORE PREVIOUS [8m hidden"
        );
        assert_eq!(
            connector_description("  ", 100),
            "[connector-provided] (no description)"
        );
        let long = connector_description(&"x".repeat(5000), 200);
        assert_eq!(long.chars().count(), CONNECTOR_PROVIDED.len() + 201);
        assert!(!connector_description("a\u{202E}b\u{2028}c", 100).contains('\u{202E}'));
    }
}
