//! Shared by the benches: a deterministic corpus of pronounceable words with a text-like
//! (Zipf) frequency, so queries are as selective as people's.

/// Distinct words in the corpus.
pub const VOCAB: usize = 30_000;

/// A small deterministic PRNG (splitmix64): the same corpus every run.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Roughly Zipf-distributed word rank: common words are much more frequent, like text.
    pub fn word(&mut self) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((VOCAB as f64).powf(u) as usize)
            .saturating_sub(1)
            .min(VOCAB - 1)
    }
}

pub fn word(i: usize) -> String {
    // Pronounceable, distinct words: base-20 syllables.
    const SYL: [&str; 20] = [
        "ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "be", "da", "fu", "ge", "ho", "ji", "pa",
        "qu", "se", "ti", "wa", "zo",
    ];
    let mut n = i + 20;
    let mut s = String::new();
    while n > 0 {
        s.push_str(SYL[n % 20]);
        n /= 20;
    }
    s
}
