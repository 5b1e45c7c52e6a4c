//! The OpenAI-compatible fake's stand-in for a model answering from passages (retrieval-augmented
//! generation): when the last user message holds numbered passages (`[n] text`, one per line)
//! and a `Question:` line, the completion is extractive and deterministic: the sentence of the
//! passage sharing the most words with the question, followed by the citation `[n]` (several
//! passages that tie are all cited), or a plain "the passages do not answer" when none shares a
//! word. Any other conversation is echoed as before. Good for testing retrieval and citation
//! plumbing; not a quality figure.

use std::collections::HashSet;

/// Words too common to tie a passage to a question.
const STOP: &[&str] = &[
    "the", "and", "for", "are", "was", "what", "which", "who", "how", "why", "when", "where",
    "does", "did", "our", "your", "with", "that", "this", "from", "have", "has", "about", "into",
];

fn terms(s: &str) -> HashSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect()
}

/// The passages (`[n] text` lines) and the question of a retrieval prompt; None when the
/// message is not one.
fn parse(message: &str) -> Option<(Vec<(usize, &str)>, &str)> {
    let mut passages = Vec::new();
    let mut question = None;
    for line in message.lines() {
        if let Some(q) = line.strip_prefix("Question:") {
            question = Some(q.trim());
        } else if let Some(rest) = line.strip_prefix('[')
            && let Some((n, text)) = rest.split_once("] ")
            && let Ok(n) = n.parse::<usize>()
        {
            passages.push((n, text));
        }
    }
    (!passages.is_empty()).then_some(())?;
    Some((passages, question?))
}

/// The extractive answer to a retrieval prompt, or None when `message` is not one.
pub fn answer(message: &str) -> Option<String> {
    let (passages, question) = parse(message)?;
    let wanted = terms(question);
    let shared = |t: &str| terms(t).intersection(&wanted).count();
    let best = passages.iter().map(|(_, t)| shared(t)).max().unwrap_or(0);
    if best == 0 {
        return Some("The passages do not answer this question.".into());
    }
    let mut out = Vec::new();
    for (n, text) in passages.iter().filter(|(_, t)| shared(t) == best) {
        let sentence = text
            .split_inclusive(['.', '!', '?'])
            .max_by_key(|s| shared(s))
            .unwrap_or(text)
            .trim()
            .trim_end_matches(['.', '!', '?']);
        out.push(format!("{sentence} [{n}]."));
    }
    Some(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_passage_is_quoted_and_cited() {
        let m = "Passages:\n\n[1] Canteen. Lunch is at noon.\n\n[2] Printers. The printer on floor 3 needs toner weekly. Paper is in room 12.\n\nQuestion: How often does the printer need toner?";
        assert_eq!(
            answer(m).unwrap(),
            "The printer on floor 3 needs toner weekly [2]."
        );
    }

    #[test]
    fn no_shared_word_says_so_and_other_messages_are_not_retrieval() {
        let m = "[1] Lunch is at noon.\nQuestion: Where is the VPN guide?";
        assert_eq!(
            answer(m).unwrap(),
            "The passages do not answer this question."
        );
        assert_eq!(answer("hello there"), None);
        assert_eq!(answer("Question: alone"), None);
    }
}
