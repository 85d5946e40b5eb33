use super::*;
use crate::classify::synthetic::{near, random_map, random_unit};

fn exact(map: &TopicMap) -> CentroidIndex {
    CentroidIndex::build(map, IndexKind::BruteForce).unwrap()
}

/// Share of queries where HNSW finds the exact nearest centroid (or one at the same distance).
fn recall(map: &TopicMap, queries: &[Vec<f32>]) -> f64 {
    let brute = exact(map);
    let hnsw = CentroidIndex::build(map, IndexKind::Hnsw).unwrap();
    assert_eq!(hnsw.kind(), IndexKind::Hnsw);
    let agree = queries
        .iter()
        .filter(|q| {
            let (want, want_d) = brute.nearest(q).unwrap().unwrap();
            let (got, got_d) = hnsw.nearest(q).unwrap().unwrap();
            got == want || (got_d - want_d).abs() < 1e-6
        })
        .count();
    agree as f64 / queries.len() as f64
}

#[test]
fn brute_force_finds_the_true_nearest_centroid() {
    let map = random_map(50, 40, 1);
    let index = exact(&map);
    let mut rng = fastrand::Rng::with_seed(2);
    for _ in 0..200 {
        let q = random_unit(&mut rng, 40);
        let naive = map
            .topics
            .iter()
            .map(|t| 1.0 - t.centroid.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>())
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        let (topic, distance) = index.nearest(&q).unwrap().unwrap();
        assert_eq!(topic, naive.0);
        assert!((distance - naive.1).abs() < 1e-5);
    }
}

#[test]
fn a_query_equal_to_a_centroid_is_that_topic_at_distance_zero() {
    let map = random_map(100, 384, 3);
    for kind in [IndexKind::BruteForce, IndexKind::Hnsw] {
        let index = CentroidIndex::build(&map, kind).unwrap();
        for t in [0, 17, 99] {
            let (topic, distance) = index.nearest(&map.topics[t].centroid).unwrap().unwrap();
            assert_eq!(topic, t, "{kind:?}");
            assert!(distance < 1e-5, "{kind:?}: {distance}");
        }
    }
}

// Sizes are kept small because tests run unoptimized; `cargo bench --bench classify` reports
// recall at 1,000 topics × 384 and 1024 dimensions over 20,000 queries.
#[test]
fn hnsw_agrees_with_brute_force_on_queries_near_topics() {
    for (topics, dim) in [(200, 384), (1000, 32)] {
        let map = random_map(topics, dim, topics as u64);
        let mut rng = fastrand::Rng::with_seed(7);
        let queries: Vec<Vec<f32>> = (0..1000)
            .map(|_| {
                let t = rng.usize(..topics);
                near(&mut rng, &map.topics[t].centroid, 1.0)
            })
            .collect();
        let r = recall(&map, &queries);
        assert!(r >= 0.99, "{topics}×{dim}: recall {r}");
    }
}

#[test]
fn hnsw_agrees_with_brute_force_on_uniformly_random_queries() {
    // Low dimension, so nearest neighbours are well separated rather than all at ≈ 1.
    let map = random_map(600, 12, 11);
    let mut rng = fastrand::Rng::with_seed(12);
    let queries: Vec<Vec<f32>> = (0..1000).map(|_| random_unit(&mut rng, 12)).collect();
    let r = recall(&map, &queries);
    assert!(r >= 0.99, "recall {r}");
}

#[test]
fn thresholds_turn_a_far_nearest_topic_into_no_match() {
    let mut map = random_map(20, 64, 5);
    let mut rng = fastrand::Rng::with_seed(6);
    let q = near(&mut rng, &map.topics[4].centroid, 1.0);
    let distance = exact(&map).nearest(&q).unwrap().unwrap().1;
    assert!(distance > 0.1 && distance < 0.6, "{distance}");

    let matched = exact(&map).classify(&q).unwrap();
    assert_eq!(matched.topic, Some(4));
    assert_eq!(matched.distance, distance);

    // Global threshold below the distance.
    map.distance_threshold = distance - 0.01;
    let global = exact(&map).classify(&q).unwrap();
    assert_eq!(global.topic, None);
    assert_eq!(
        global.distance, distance,
        "the distance is reported for no_match too"
    );

    // The nearest topic's own threshold below the distance, global threshold loose.
    map.distance_threshold = 1.0;
    map.topics[4].threshold = distance - 0.01;
    assert_eq!(exact(&map).classify(&q).unwrap().topic, None);

    // Another topic's tight threshold does not matter.
    map.topics[4].threshold = 1.0;
    map.topics[5].threshold = 0.0;
    assert_eq!(exact(&map).classify(&q).unwrap().topic, Some(4));
}

#[test]
fn an_empty_map_matches_nothing() {
    let map = random_map(0, 384, 1);
    for kind in [IndexKind::Auto, IndexKind::BruteForce, IndexKind::Hnsw] {
        let index = CentroidIndex::build(&map, kind).unwrap();
        assert!(index.is_empty());
        let q = vec![0.0; 384];
        assert_eq!(index.nearest(&q).unwrap(), None);
        let m = index.classify(&q).unwrap();
        assert_eq!(m.topic, None);
        assert_eq!(m.distance, f32::INFINITY);
    }
}

#[test]
fn a_wrong_dimension_is_an_error() {
    let map = random_map(10, 384, 1);
    for kind in [IndexKind::BruteForce, IndexKind::Hnsw] {
        let index = CentroidIndex::build(&map, kind).unwrap();
        let err = index.classify(&[0.5; 1024]).unwrap_err();
        assert_eq!(
            err,
            ClassifyError::DimensionMismatch {
                expected: 384,
                got: 1024
            }
        );
        assert!(index.nearest(&[]).is_err());
    }
    // Also for an empty map: the map still says which space it lives in.
    let empty = CentroidIndex::build(&random_map(0, 384, 1), IndexKind::Auto).unwrap();
    assert!(empty.classify(&[1.0; 3]).is_err());
}

#[test]
fn a_centroid_of_the_wrong_length_fails_the_build() {
    let mut map = random_map(3, 8, 1);
    map.topics[1].centroid.pop();
    let err = CentroidIndex::build(&map, IndexKind::Auto).err().unwrap();
    assert!(matches!(err, ClassifyError::BadCentroid { got: 7, .. }));
}

#[test]
fn auto_scans_every_realistic_map() {
    let kind = |map| CentroidIndex::build(map, IndexKind::Auto).unwrap().kind();
    assert_eq!(kind(&random_map(2_000, 4, 1)), IndexKind::BruteForce);
}

#[test]
fn centroids_are_renormalized() {
    let mut map = random_map(2, 16, 1);
    let unit = map.topics[0].centroid.clone();
    map.topics[0].centroid.iter_mut().for_each(|x| *x *= 1.01);
    let (topic, distance) = exact(&map).nearest(&unit).unwrap().unwrap();
    assert_eq!(topic, 0);
    assert!(distance < 1e-5, "{distance}");
}

#[test]
fn dot_lanes_match_a_naive_sum() {
    let mut rng = fastrand::Rng::with_seed(1);
    for len in [0usize, 1, 15, 16, 17, 384, 1023] {
        let a: Vec<f32> = (0..len).map(|_| rng.f32() - 0.5).collect();
        let b: Vec<f32> = (0..len).map(|_| rng.f32() - 0.5).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot_lanes::<false>(&a, &b) - naive).abs() < 1e-4);
        assert!((dot_lanes::<true>(&a, &b) - naive).abs() < 1e-4);
    }
}

/// From `QUANTIZED_MIN_TOPICS` on, the scan ranks int8 codes first (on CPUs with AVX-512
/// VNNI); it must still return exactly the plain f32 scan's answer, also when related topics
/// sit close together.
#[test]
fn scan_of_a_large_grouped_map_matches_a_plain_f32_scan() {
    use crate::classify::synthetic::grouped_map;
    let map = grouped_map(QUANTIZED_MIN_TOPICS * 3, 256, 8, 9);
    let index = exact(&map);
    let mut rng = fastrand::Rng::with_seed(10);
    for i in 0..300 {
        let q = if i % 4 == 0 {
            random_unit(&mut rng, 256)
        } else {
            {
                let t = rng.usize(..map.topics.len());
                near(&mut rng, &map.topics[t].centroid, 0.5)
            }
        };
        let plain = map
            .topics
            .iter()
            .map(|t| 1.0 - dot(&t.centroid, &q))
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        let (topic, distance) = index.nearest(&q).unwrap().unwrap();
        assert_eq!(topic, plain.0, "query {i}");
        assert!((distance - plain.1).abs() < 1e-5, "query {i}");
    }
}
