//! The `builtin` embedding: deterministic, offline, no model. Words (stop words dropped), word
//! bigrams and character trigrams are hashed into a fixed number of signed buckets, weighted by
//! sublinear term frequency times a fixed IDF prior (a deterministic embedding cannot learn IDF
//! from the corpus: longer, rarer-looking words weigh more, very common words less), then
//! L2-normalized. Good enough to group near-identical summaries in demos and tests; it knows no
//! synonyms — use a real embedding model in production.

use std::hash::{Hash, Hasher};

pub const DEFAULT_DIMENSIONS: usize = 384;

const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with",
    "from", "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that",
    "these", "those", "i", "me", "my", "we", "our", "you", "your", "he", "she", "they", "them",
    "their", "his", "her", "do", "does", "did", "have", "has", "had", "not", "no", "so", "than",
    "then", "there", "here", "what", "which", "who", "whom", "how", "when", "where", "why", "can",
    "could", "would", "should", "will", "shall", "may", "might", "must", "about", "into", "over",
    "after", "before", "up", "down", "out", "off", "again", "very", "just", "also", "only", "some",
    "any", "all", "each", "other", "such", "own", "same", "too", "s", "t", "user", "wants",
];

pub struct BuiltinEmbedder {
    dimensions: usize,
}

impl BuiltinEmbedder {
    pub fn new(dimensions: usize) -> Self {
        Self {
            dimensions: dimensions.max(8),
        }
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    pub fn embed(&self, text: &str) -> Vec<f32> {
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            // Ids, order numbers and codes ("NW-8195" → "nw", "8195") say nothing about the topic
            // and would pull summaries of the same request apart.
            .filter(|w| w.chars().count() > 2 && !w.chars().any(|c| c.is_ascii_digit()))
            .map(str::to_lowercase)
            .filter(|w| !STOP_WORDS.contains(&w.as_str()))
            .collect();
        // Features are hashed as they are found (no strings built): kind tag + pieces.
        let hash = |kind: u8, pieces: &[&str]| {
            let mut hasher = rustc_hash::FxHasher::default();
            kind.hash(&mut hasher);
            for piece in pieces {
                piece.hash(&mut hasher);
            }
            hasher.finish()
        };
        // Fx, not the std RandomState: the summing order must not change between processes,
        // or the last bits of a vector (and so the maps built on them) would.
        let mut features: rustc_hash::FxHashMap<u64, (f32, f32)> = Default::default();
        let mut add = |feature: u64, idf: f32| {
            features.entry(feature).or_insert((0.0, idf)).0 += 1.0;
        };
        let mut padded = String::new();
        for word in &words {
            add(hash(b'w', &[word]), idf_prior(word));
            padded.clear();
            padded.push('<');
            padded.push_str(word);
            padded.push('>');
            let bounds: Vec<usize> = padded
                .char_indices()
                .map(|(i, _)| i)
                .chain([padded.len()])
                .collect();
            for w in bounds.windows(4) {
                add(hash(b'c', &[&padded[w[0]..w[3]]]), 0.35);
            }
        }
        for pair in words.windows(2) {
            add(hash(b'b', &[&pair[0], &pair[1]]), 0.8 * idf_prior(&pair[1]));
        }
        let mut vector = vec![0f32; self.dimensions];
        for (hash, (tf, idf)) in features {
            let bucket = (hash % self.dimensions as u64) as usize;
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            vector[bucket] += sign * (1.0 + tf.ln()) * idf;
        }
        if !crate::model::client::normalize(&mut vector) {
            // Empty text: a fixed unit vector, so it is still a valid point.
            vector[0] = 1.0;
        }
        vector
    }
}

/// Longer words are rarer in English (Zipf); a prior in [0.6, 1.6].
fn idf_prior(word: &str) -> f32 {
    let len = word.chars().count() as f32;
    let numeric = word.chars().all(|c| c.is_ascii_digit());
    if numeric {
        0.5
    } else {
        (0.4 + 0.15 * len).clamp(0.6, 1.6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn the_same_text_gives_bit_identical_vectors() {
        let embedder = BuiltinEmbedder::new(384);
        let text = "Customer wants a refund for the cracked headphones and a new delivery date";
        let first = embedder.embed(text);
        for _ in 0..20 {
            assert!(
                embedder
                    .embed(text)
                    .iter()
                    .zip(&first)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
    }

    #[test]
    fn similar_summaries_are_closer_than_different_ones() {
        let e = BuiltinEmbedder::new(DEFAULT_DIMENSIONS);
        let refund_a = e.embed("Get a refund for a damaged blender");
        let refund_b = e.embed("Request a refund for the damaged blender order");
        let flight = e.embed("Book a flight from Paris to Rome next Tuesday");
        assert!(
            cosine(&refund_a, &refund_b) > 0.5,
            "{}",
            cosine(&refund_a, &refund_b)
        );
        assert!(
            cosine(&refund_a, &flight) < 0.2,
            "{}",
            cosine(&refund_a, &flight)
        );
        assert_eq!(
            refund_a,
            e.embed("Get a refund for a damaged blender"),
            "deterministic"
        );
        let norm: f32 = refund_a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(e.embed("").len(), DEFAULT_DIMENSIONS);
    }
}
