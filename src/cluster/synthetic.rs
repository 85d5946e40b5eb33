//! Generated embeddings with known topics, shaped like the measurement data in the notes:
//! unit vectors in `dim` dimensions, topics with power-law sizes grouped into super-topics (so
//! some topics sit close together), and a share of singletons labelled noise. Mean cosine
//! similarity is ≈ 0.70 within a topic, ≈ 0.40 between topics of one super-topic and ≈ 0.20
//! otherwise. Each point also gets a short text whose words come mostly from its topic's own
//! vocabulary, for keyword tests. Used by the tests and the benchmark.

use super::vectors::{gaussian, mix_seed, normalize};
use rayon::prelude::*;

/// What to generate.
#[derive(Clone, Debug)]
pub struct SyntheticSpec {
    pub n: usize,
    pub dim: usize,
    pub n_topics: usize,
    pub n_super_topics: usize,
    /// Share of points that are singletons (truth label −1).
    pub noise_share: f32,
    /// Topic t (0-based) gets a size ∝ 1 / (t + 1)^exponent.
    pub size_exponent: f32,
    pub seed: u64,
}

impl SyntheticSpec {
    /// The notes' benchmark data: 40 topics in 8 super-topics, 8 % noise, sizes ∝ 1/rank.
    pub fn benchmark(n: usize, dim: usize, seed: u64) -> Self {
        SyntheticSpec {
            n,
            dim,
            n_topics: 40,
            n_super_topics: 8,
            noise_share: 0.08,
            size_exponent: 1.0,
            seed,
        }
    }
}

/// Generated data: vectors (n × dim, unit rows), the true topic per point (−1 = noise) and texts.
#[derive(Clone, Debug)]
pub struct SyntheticData {
    pub dim: usize,
    pub vectors: Vec<f32>,
    pub labels: Vec<i32>,
    pub texts: Vec<String>,
    /// The words that only topic t uses (what c-TF-IDF should surface).
    pub topic_words: Vec<Vec<String>>,
}

// Squared weights of the shared, super-topic, topic and per-point parts (they sum to 1, so a
// pair's expected cosine is the sum of the weights they share).
const GLOBAL: f32 = 0.2;
const SUPER: f32 = 0.2;
const TOPIC: f32 = 0.3;
const OWN: f32 = 0.3;
const WORDS_PER_TOPIC: usize = 6;

/// Generates the data described by `spec` (deterministic for its seed).
pub fn generate(spec: &SyntheticSpec) -> SyntheticData {
    let dim = spec.dim;
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let direction = |rng: &mut fastrand::Rng| {
        let mut v: Vec<f32> = (0..dim).map(|_| gaussian(rng)).collect();
        normalize(&mut v);
        v
    };
    let global = direction(&mut rng);
    let supers: Vec<Vec<f32>> = (0..spec.n_super_topics.max(1))
        .map(|_| direction(&mut rng))
        .collect();
    let topics: Vec<Vec<f32>> = (0..spec.n_topics).map(|_| direction(&mut rng)).collect();

    // Power-law sizes, rounded so they add up exactly.
    let clustered = ((spec.n as f32) * (1.0 - spec.noise_share)).round() as usize;
    let weights: Vec<f64> = (0..spec.n_topics)
        .map(|t| 1.0 / ((t + 1) as f64).powf(f64::from(spec.size_exponent)))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut sizes: Vec<usize> = weights
        .iter()
        .map(|w| (w / total * clustered as f64).floor() as usize)
        .collect();
    let mut short = clustered.saturating_sub(sizes.iter().sum());
    for s in sizes.iter_mut() {
        if short == 0 {
            break;
        }
        *s += 1;
        short -= 1;
    }
    let mut labels: Vec<i32> = Vec::with_capacity(spec.n);
    for (t, &s) in sizes.iter().enumerate() {
        labels.extend(std::iter::repeat_n(t as i32, s));
    }
    labels.resize(spec.n, -1);
    rng.shuffle(&mut labels);

    let super_of = |t: usize| t % spec.n_super_topics.max(1);
    let mut vectors = vec![0.0f32; spec.n * dim];
    vectors
        .par_chunks_mut(dim * 256)
        .enumerate()
        .for_each(|(chunk, block)| {
            let mut rng = fastrand::Rng::with_seed(mix_seed(spec.seed, 41, chunk as u64));
            for (k, row) in block.chunks_exact_mut(dim).enumerate() {
                let label = labels[chunk * 256 + k];
                let own_scale =
                    if label >= 0 { OWN } else { 1.0 - GLOBAL }.sqrt() / (dim as f32).sqrt();
                for (d, x) in row.iter_mut().enumerate() {
                    *x = GLOBAL.sqrt() * global[d] + own_scale * gaussian(&mut rng);
                    if label >= 0 {
                        let t = label as usize;
                        *x += SUPER.sqrt() * supers[super_of(t)][d] + TOPIC.sqrt() * topics[t][d];
                    }
                }
                normalize(row);
            }
        });

    // Texts: words of the point's topic, of its super-topic and generic agent vocabulary.
    let topic_words: Vec<Vec<String>> = (0..spec.n_topics)
        .map(|t| {
            (0..WORDS_PER_TOPIC)
                .map(|w| pseudo_word(1000 + t * WORDS_PER_TOPIC + w))
                .collect()
        })
        .collect();
    let super_words: Vec<Vec<String>> = (0..spec.n_super_topics.max(1))
        .map(|s| (0..4).map(|w| pseudo_word(100 + s * 4 + w)).collect())
        .collect();
    const COMMON: &[&str] = &[
        "user", "agent", "request", "tool", "answer", "step", "call", "result", "the", "with",
        "for",
    ];
    let mut text_rng = fastrand::Rng::with_seed(mix_seed(spec.seed, 42, 0));
    let texts = labels
        .iter()
        .map(|&label| {
            let len = 6 + text_rng.usize(0..6);
            let words: Vec<&str> = (0..len)
                .map(|_| {
                    let r = text_rng.f32();
                    if label >= 0 && r < 0.45 {
                        let own = &topic_words[label as usize];
                        own[text_rng.usize(0..own.len())].as_str()
                    } else if label >= 0 && r < 0.6 {
                        let sup = &super_words[super_of(label as usize)];
                        sup[text_rng.usize(0..sup.len())].as_str()
                    } else {
                        COMMON[text_rng.usize(0..COMMON.len())]
                    }
                })
                .collect();
            words.join(" ")
        })
        .collect();
    SyntheticData {
        dim,
        vectors,
        labels,
        texts,
        topic_words,
    }
}

/// A pronounceable, unique word for every number (consonant–vowel syllables).
fn pseudo_word(mut number: usize) -> String {
    const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
    const VOWELS: &[u8] = b"aeiou";
    let mut word = String::new();
    for _ in 0..3 {
        let syllable = number % (CONSONANTS.len() * VOWELS.len());
        number /= CONSONANTS.len() * VOWELS.len();
        word.push(CONSONANTS[syllable / VOWELS.len()] as char);
        word.push(VOWELS[syllable % VOWELS.len()] as char);
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::vectors::dot;

    #[test]
    fn similarities_and_sizes_match_the_design() {
        let data = generate(&SyntheticSpec {
            n: 2000,
            dim: 128,
            n_topics: 10,
            n_super_topics: 3,
            noise_share: 0.1,
            size_exponent: 1.0,
            seed: 9,
        });
        let row = |i: usize| &data.vectors[i * 128..(i + 1) * 128];
        let (mut within, mut nw, mut across, mut na) = (0.0f32, 0, 0.0f32, 0);
        for i in 0..300 {
            for j in i + 1..300 {
                let (a, b) = (data.labels[i], data.labels[j]);
                if a < 0 || b < 0 {
                    continue;
                }
                let c = dot(row(i), row(j));
                if a == b {
                    within += c;
                    nw += 1;
                } else if a as usize % 3 != b as usize % 3 {
                    across += c;
                    na += 1;
                }
            }
        }
        let (within, across) = (within / nw as f32, across / na as f32);
        assert!((within - 0.70).abs() < 0.05, "within {within}");
        assert!((across - 0.20).abs() < 0.05, "across {across}");
        assert_eq!(data.labels.iter().filter(|&&l| l == -1).count(), 200);
        let count = |t: i32| data.labels.iter().filter(|&&l| l == t).count();
        assert!(count(0) > 4 * count(9), "power-law sizes");
        assert_ne!(pseudo_word(1000), pseudo_word(1001));
    }
}
