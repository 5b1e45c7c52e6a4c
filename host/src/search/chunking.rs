//! Cuts a document into chunks for embedding: windows of about `size` characters over the body,
//! consecutive windows sharing about `overlap` characters (so a passage cut at a window's end is
//! whole in the next), ends moved back to a word boundary when one is near, and each chunk
//! prefixed with the document's title (a passage alone often does not say what it is about).

use sha2::{Digest, Sha256};

/// One chunk of a document: its place and its text (title line included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub seq: u32,
    pub text: String,
}

impl Chunk {
    /// The hash vectors are reused by (with the model): equal texts share one vector.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.text.as_bytes()))
    }
}

/// The chunks of a document with `title` and `body`; a document with an empty body is one chunk
/// of its title, and one with neither has none. `size` > 2 × `overlap` (the config checks it).
pub fn chunk(title: &str, body: &str, size: usize, overlap: usize) -> Vec<Chunk> {
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    let words: Vec<char> = body.chars().collect();
    let with_title = |window: &str| match (title.is_empty(), window.is_empty()) {
        (true, _) => window.to_string(),
        (false, true) => title.clone(),
        (false, false) => format!("{title}\n{window}"),
    };
    if words.iter().all(|c| c.is_whitespace()) {
        return match title.is_empty() {
            true => Vec::new(),
            false => vec![Chunk {
                seq: 0,
                text: title.clone(),
            }],
        };
    }
    let size = size.max(2);
    let overlap = overlap.min(size / 2);
    let mut out = Vec::new();
    let mut start = 0;
    let n = words.len();
    while start < n {
        let mut end = (start + size).min(n);
        if end < n {
            // Back to the last whitespace in the window's second half, if there is one.
            if let Some(ws) = (start + size / 2..end)
                .rev()
                .find(|&i| words[i].is_whitespace())
            {
                end = ws;
            }
        }
        let window: String = words[start..end].iter().collect();
        let window = window.split_whitespace().collect::<Vec<_>>().join(" ");
        if !window.is_empty() {
            out.push(Chunk {
                seq: out.len() as u32,
                text: with_title(&window),
            });
        }
        if end >= n {
            break;
        }
        let mut next = end.saturating_sub(overlap).max(start + 1);
        // Forward to the start of a word, within the overlap.
        while next < end && next > 0 && !words[next - 1].is_whitespace() {
            next += 1;
        }
        start = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_documents_are_one_chunk_with_their_title() {
        let c = chunk("VPN guide", "Connect  with the\nclient.", 100, 20);
        assert_eq!(
            c,
            vec![Chunk {
                seq: 0,
                text: "VPN guide\nConnect with the client.".into()
            }]
        );
        assert_eq!(chunk("Only a title", "  ", 100, 20).len(), 1);
        assert!(chunk("", "", 100, 20).is_empty());
    }

    #[test]
    fn long_bodies_are_windows_that_overlap_and_end_at_words() {
        let body: String = (0..300).map(|i| format!("w{i} ")).collect();
        let chunks = chunk("T", &body, 200, 50);
        assert!(chunks.len() > 5, "{}", chunks.len());
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.seq as usize, i);
            assert!(c.text.starts_with("T\n"));
            let words: Vec<&str> = c.text[2..].split(' ').collect();
            assert!(
                words.iter().all(|w| w.starts_with('w') && w.len() > 1),
                "{c:?}"
            );
            assert!(c.text.chars().count() <= 202);
        }
        // Every word is in some chunk, and consecutive chunks share words.
        for i in 0..300 {
            let w = format!("w{i}");
            assert!(
                chunks
                    .iter()
                    .any(|c| c.text.split(['\n', ' ']).any(|x| x == w)),
                "{w}"
            );
        }
        for pair in chunks.windows(2) {
            let last = pair[0].text.split(' ').next_back().unwrap();
            assert!(
                pair[1].text.split(['\n', ' ']).any(|x| x == last),
                "{pair:?}"
            );
        }
    }

    #[test]
    fn the_same_text_has_the_same_hash() {
        let a = chunk("T", "body", 100, 10);
        let b = chunk("T", "body", 100, 10);
        assert_eq!(a[0].hash(), b[0].hash());
        assert_ne!(a[0].hash(), chunk("T", "other", 100, 10)[0].hash());
    }

    #[test]
    fn text_without_spaces_and_multibyte_characters_is_cut_safely() {
        let body = "é".repeat(1000);
        let chunks = chunk("", &body, 300, 100);
        assert!(chunks.len() >= 4);
        assert!(chunks.iter().all(|c| c.text.chars().count() <= 300));
    }
}
