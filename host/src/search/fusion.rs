//! Reciprocal rank fusion (Cormack, Clarke & Büttcher, 2009): a document's fused score is the
//! sum over the ranked lists it appears in of 1 / (K + rank). It needs no calibration between
//! bm25 and cosine scores, which are not comparable.

use std::collections::HashMap;

use crate::store::documents::Hit;

/// The usual constant: damps the weight of the very first ranks.
pub const K: f64 = 60.0;

/// Fuses ranked lists (best first) into one of at most `limit` hits, best first; a hit keeps
/// the fields of the first list it appears in (so keyword snippets, with highlights, win) and
/// gets the fused score. Ties keep the order of first appearance.
pub fn rrf(lists: Vec<Vec<Hit>>, limit: usize) -> Vec<Hit> {
    let mut fused: Vec<Hit> = Vec::new();
    let mut scores: Vec<f64> = Vec::new();
    let mut at: HashMap<(String, String, String), usize> = HashMap::new();
    for list in lists {
        for (rank, hit) in list.into_iter().enumerate() {
            let add = 1.0 / (K + rank as f64 + 1.0);
            let key = (hit.connector.clone(), hit.kind.clone(), hit.id.clone());
            match at.get(&key) {
                Some(&i) => scores[i] += add,
                None => {
                    at.insert(key, fused.len());
                    fused.push(hit);
                    scores.push(add);
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..fused.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut slots: Vec<Option<Hit>> = fused.into_iter().map(Some).collect();
    order
        .into_iter()
        .take(limit.max(1))
        .filter_map(|i| {
            let mut h = slots[i].take()?;
            h.score = Some(scores[i]);
            Some(h)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str) -> Hit {
        Hit {
            connector: "c".into(),
            kind: "page".into(),
            id: id.into(),
            title: id.into(),
            url: None,
            updated_at: String::new(),
            snippet: String::new(),
            score: None,
            source: "local",
            acl: vec![],
        }
    }

    fn ids(h: &[Hit]) -> Vec<&str> {
        h.iter().map(|h| h.id.as_str()).collect()
    }

    #[test]
    fn a_document_in_both_lists_outranks_one_at_the_top_of_only_one() {
        let keyword = vec![hit("a"), hit("b"), hit("c")];
        let vector = vec![hit("d"), hit("b"), hit("a")];
        let fused = rrf(vec![keyword, vector], 10);
        assert_eq!(ids(&fused), vec!["a", "b", "d", "c"]);
        let s: Vec<f64> = fused.iter().map(|h| h.score.unwrap()).collect();
        assert!((s[0] - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-12);
        assert!(s.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn the_limit_applies_and_the_first_lists_fields_are_kept() {
        let mut k = hit("a");
        k.snippet = "[keyword]".into();
        let mut v = hit("a");
        v.snippet = "vector".into();
        let fused = rrf(vec![vec![k, hit("b")], vec![v, hit("c")]], 2);
        assert_eq!(fused.len(), 2);
        assert_eq!(fused[0].snippet, "[keyword]");
        assert!(rrf(vec![], 5).is_empty());
    }
}
