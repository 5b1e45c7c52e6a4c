//! Ranking quality against graded judgements (the retrieval bench, `benches/retrieval.rs`):
//! nDCG@k, recall@k and reciprocal rank of one ranked list of document ids.

use std::collections::{HashMap, HashSet};

/// Graded judgements of one query: document id → grade (0 or absent: not relevant; 2 answers
/// the query better than 1).
pub type Judgements = HashMap<String, u32>;

/// The gain of a document at `grade`: 2^grade − 1, so one answer outweighs several merely
/// related documents (the usual choice for graded nDCG).
fn gain(grade: u32) -> f64 {
    2f64.powi(grade.min(30) as i32) - 1.0
}

/// The discount of the 0-based rank `i`: 1 / log2(i + 2).
fn discount(i: usize) -> f64 {
    1.0 / ((i + 2) as f64).log2()
}

/// The first `k` ids, each counted once (a list that repeats a document earns nothing for it).
fn top<'a>(ranked: &'a [&'a str], k: usize) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    let mut seen = HashSet::new();
    ranked
        .iter()
        .copied()
        .filter(move |id| seen.insert(*id))
        .take(k)
        .enumerate()
}

/// Normalised discounted cumulative gain at `k` (Järvelin & Kekäläinen, 2002): the ranking's
/// discounted gain divided by that of the best possible ordering of the judged documents. 1 is
/// the ideal order; 0 when nothing relevant is in the first `k` (or nothing is relevant).
pub fn ndcg_at(ranked: &[&str], judged: &Judgements, k: usize) -> f64 {
    let dcg: f64 = top(ranked, k)
        .map(|(i, id)| gain(judged.get(id).copied().unwrap_or(0)) * discount(i))
        .sum();
    let mut ideal: Vec<u32> = judged.values().copied().filter(|g| *g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .into_iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| gain(g) * discount(i))
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// The share of the documents graded at least `min_grade` that are in the first `k` (0 when
/// there are none).
pub fn recall_at(ranked: &[&str], judged: &Judgements, k: usize, min_grade: u32) -> f64 {
    let relevant = judged.values().filter(|g| **g >= min_grade.max(1)).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = top(ranked, k)
        .filter(|(_, id)| judged.get(*id).is_some_and(|g| *g >= min_grade.max(1)))
        .count();
    found as f64 / relevant as f64
}

/// 1 / the rank of the first document graded at least `min_grade` within the first `k`, 0 when
/// none is (averaged over queries: MRR@k).
pub fn reciprocal_rank_at(ranked: &[&str], judged: &Judgements, k: usize, min_grade: u32) -> f64 {
    top(ranked, k)
        .find(|(_, id)| judged.get(*id).is_some_and(|g| *g >= min_grade.max(1)))
        .map_or(0.0, |(i, _)| 1.0 / (i + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, u32)]) -> Judgements {
        pairs.iter().map(|(id, g)| (id.to_string(), *g)).collect()
    }

    #[test]
    fn the_ideal_order_scores_one_and_a_swap_scores_the_known_value() {
        let j = judged(&[("answer", 2), ("related", 1)]);
        assert!((ndcg_at(&["answer", "related", "x"], &j, 10) - 1.0).abs() < 1e-12);
        // DCG = (2^1−1)/log2 2 + (2^2−1)/log2 3 = 1 + 3/1.58496 = 2.89279;
        // IDCG = 3/log2 2 + 1/log2 3 = 3.63093; nDCG = 0.79671.
        let swapped = ndcg_at(&["related", "answer"], &j, 10);
        assert!((swapped - 0.796_708).abs() < 1e-6, "{swapped}");
        // The answer third behind an unjudged document: (1 + 3/log2 4) / 3.63093 = 0.68853.
        let third = ndcg_at(&["related", "x", "answer"], &j, 10);
        assert!((third - 0.688_529).abs() < 1e-6, "{third}");
    }

    #[test]
    fn documents_past_k_repeats_and_unjudged_ones_earn_nothing() {
        let j = judged(&[("a", 2), ("zero", 0)]);
        assert_eq!(ndcg_at(&["x", "y", "a"], &j, 2), 0.0);
        assert_eq!(ndcg_at(&["zero", "x"], &j, 10), 0.0);
        assert_eq!(ndcg_at(&[], &j, 10), 0.0);
        // "a" twice counts once, so the second place goes to "b".
        let j2 = judged(&[("a", 1), ("b", 1)]);
        assert!((ndcg_at(&["a", "a", "b"], &j2, 2) - 1.0).abs() < 1e-12);
        assert_eq!(ndcg_at(&["a"], &judged(&[]), 10), 0.0, "nothing relevant");
    }

    #[test]
    fn recall_and_reciprocal_rank_count_the_relevant_documents_in_the_first_k() {
        let j = judged(&[("a", 2), ("b", 1), ("c", 2)]);
        let ranked = ["x", "b", "a", "y", "c"];
        assert!((recall_at(&ranked, &j, 3, 1) - 2.0 / 3.0).abs() < 1e-12);
        assert!((recall_at(&ranked, &j, 5, 2) - 1.0).abs() < 1e-12);
        assert_eq!(recall_at(&ranked, &j, 1, 1), 0.0);
        assert!((reciprocal_rank_at(&ranked, &j, 10, 1) - 0.5).abs() < 1e-12);
        assert!((reciprocal_rank_at(&ranked, &j, 10, 2) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(reciprocal_rank_at(&ranked, &j, 2, 2), 0.0);
    }
}
