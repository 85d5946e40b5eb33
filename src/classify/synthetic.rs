//! Generated topic maps and queries for the index tests and the classify benchmark: random unit
//! centroids, and queries that are a centroid plus noise (as real traces sit near a topic) or
//! uniformly random (the hardest case for an approximate index).

use crate::cluster::ClusterConfig;
use crate::cluster::vectors::{gaussian, normalize};
use crate::topics::{Topic, TopicMap};

/// A map of `topics` random unit centroids in `dim` dimensions, every threshold 1.0.
pub fn random_map(topics: usize, dim: usize, seed: u64) -> TopicMap {
    let mut rng = fastrand::Rng::with_seed(seed);
    TopicMap {
        facet: "synthetic".into(),
        version: 1,
        created_ms: 0,
        embedding_model: "synthetic".into(),
        dim,
        params: ClusterConfig::default(),
        sample: topics,
        noise_share: 0.0,
        noise_before_reassignment: None,
        distance_threshold: 1.0,
        topics: (0..topics)
            .map(|i| Topic {
                id: i as u32,
                name: format!("topic {i}"),
                description: String::new(),
                named: false,
                keywords: Vec::new(),
                centroid: random_unit(&mut rng, dim),
                threshold: 1.0,
                size: 1,
                share: 1.0 / topics as f32,
                exemplars: Vec::new(),
            })
            .collect(),
        changes: None,
    }
}

/// Like `random_map`, but the centroids come in groups of `group` around shared directions
/// (cos ≈ 0.85 within a group), as related topics of a real map do: the harder case for a scan
/// that prunes by bounds.
pub fn grouped_map(topics: usize, dim: usize, group: usize, seed: u64) -> TopicMap {
    let mut map = random_map(topics, dim, seed);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x9e37_79b9);
    let mut center = Vec::new();
    for (i, topic) in map.topics.iter_mut().enumerate() {
        if i % group.max(1) == 0 {
            center = random_unit(&mut rng, dim);
        }
        topic.centroid = near(&mut rng, &center, 0.4);
    }
    map
}

pub fn random_unit(rng: &mut fastrand::Rng, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim).map(|_| gaussian(rng)).collect();
    normalize(&mut v);
    v
}

/// `centroid` plus isotropic noise, renormalized. With `noise` = 1 the expected cosine to the
/// centroid is ≈ 0.7, about what a trace has to its topic's centroid.
pub fn near(rng: &mut fastrand::Rng, centroid: &[f32], noise: f32) -> Vec<f32> {
    let noise_dir = random_unit(rng, centroid.len());
    let mut v: Vec<f32> = centroid
        .iter()
        .zip(&noise_dir)
        .map(|(c, n)| c + noise * n)
        .collect();
    normalize(&mut v);
    v
}
