//! Reciprocal rank fusion (Cormack, Clarke & Büttcher, 2009): a document's fused score is the
//! sum over the ranked lists it appears in of 1 / (K + rank). It needs no calibration between
//! bm25 and cosine scores, which are not comparable.

use std::collections::HashMap;

use crate::store::documents::Hit;

/// The usual constant: damps the weight of the very first ranks.
pub const K: f64 = 60.0;

/// One ranked list (best first) to fuse, how much its ranks count, and whether it may bring
/// documents of its own or only add to those the other lists found.
pub struct Ranked {
    pub hits: Vec<Hit>,
    pub weight: f64,
    /// Its hits count only for documents another list has (it reorders, never adds).
    pub reorders_only: bool,
}

impl Ranked {
    pub fn new(hits: Vec<Hit>, weight: f64) -> Ranked {
        Ranked {
            hits,
            weight,
            reorders_only: false,
        }
    }
}

/// Fuses ranked lists (best first) into one of at most `limit` hits, best first, every list
/// counting alike; a hit keeps the fields of the first list it appears in (so keyword snippets,
/// with highlights, win) and gets the fused score. Ties keep the order of first appearance.
pub fn rrf(lists: Vec<Vec<Hit>>, limit: usize) -> Vec<Hit> {
    fuse(
        lists.into_iter().map(|l| Ranked::new(l, 1.0)).collect(),
        limit,
    )
}

/// Weighted reciprocal rank fusion: a document's score is the sum over the lists it appears in
/// of weight / (K + rank). A list that only reorders counts for documents the lists that may
/// add found; its other hits are dropped. Otherwise as [`rrf`] (fields of the first list that
/// has the hit, ties by first appearance).
pub fn fuse(lists: Vec<Ranked>, limit: usize) -> Vec<Hit> {
    let mut fused: Vec<Hit> = Vec::new();
    let mut scores: Vec<f64> = Vec::new();
    let mut at: HashMap<(String, String, String), usize> = HashMap::new();
    // Lists that may add go first (a stable sort keeps their order), so a reordering list finds
    // every document it may add to; each keeps its place for whose fields win.
    let mut ordered: Vec<(usize, Ranked)> = lists.into_iter().enumerate().collect();
    ordered.sort_by_key(|(_, l)| l.reorders_only);
    let mut fields_from: Vec<usize> = Vec::new();
    for (place, list) in ordered {
        let may_add = !list.reorders_only;
        add(
            &mut fused,
            &mut scores,
            &mut at,
            &mut fields_from,
            place,
            list,
            may_add,
        );
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

/// Adds one list's ranks to the fused scores (new documents only when `may_add`); a hit from
/// an earlier-placed list replaces the fields kept so far.
fn add(
    fused: &mut Vec<Hit>,
    scores: &mut Vec<f64>,
    at: &mut HashMap<(String, String, String), usize>,
    fields_from: &mut Vec<usize>,
    place: usize,
    list: Ranked,
    may_add: bool,
) {
    for (rank, hit) in list.hits.into_iter().enumerate() {
        let add = list.weight / (K + rank as f64 + 1.0);
        let key = (hit.connector.clone(), hit.kind.clone(), hit.id.clone());
        match at.get(&key) {
            Some(&i) => {
                scores[i] += add;
                if place < fields_from[i] {
                    fields_from[i] = place;
                    fused[i] = hit;
                }
            }
            None if may_add => {
                at.insert(key, fused.len());
                fused.push(hit);
                scores.push(add);
                fields_from.push(place);
            }
            None => {}
        }
    }
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
    fn weights_scale_a_lists_ranks_and_a_reordering_list_adds_no_document() {
        let keyword = || vec![hit("k"), hit("b")];
        let semantic = || vec![hit("s"), hit("b")];
        // Equal weights: "k" (keyword's first) and "s" tie; "b" in both wins.
        let even = rrf(vec![keyword(), semantic()], 10);
        assert_eq!(ids(&even), vec!["b", "k", "s"]);
        // Keyword at a quarter: semantic's first outranks keyword's first.
        let weighted = fuse(
            vec![Ranked::new(keyword(), 0.25), Ranked::new(semantic(), 1.0)],
            10,
        );
        assert_eq!(ids(&weighted), vec!["b", "s", "k"]);
        let s: Vec<f64> = weighted.iter().map(|h| h.score.unwrap()).collect();
        assert!((s[1] - 1.0 / 61.0).abs() < 1e-12 && (s[2] - 0.25 / 61.0).abs() < 1e-12);
        // Keyword only reordering: "k" is dropped, "b" still gets keyword's rank.
        let mut k = Ranked::new(keyword(), 1.0);
        k.reorders_only = true;
        let reordered = fuse(vec![k, Ranked::new(semantic(), 1.0)], 10);
        assert_eq!(ids(&reordered), vec!["b", "s"]);
        assert!((reordered[0].score.unwrap() - (1.0 / 62.0 + 1.0 / 62.0)).abs() < 1e-12);
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
