//! Behaviour of the topic engine on generated data with known topics. Sizes are small (a few
//! thousand points, 64 dims) because tests build the crate without optimization.

use std::sync::LazyLock;
use tracetopics::cluster::synthetic::{SyntheticData, SyntheticSpec, generate};
use tracetopics::cluster::{
    AgglomerativeConfig, Algorithm, ClusterConfig, ClusterError, ClusterResult, ClusterSnapshot,
    KmeansConfig, Linkage, MatchParams, Reduction, UmapConfig, adjusted_rand_index, build_clusters,
    clean_adjusted_rand_index, knn, match_clusters, normalized_mutual_info,
};

fn spec(n: usize, seed: u64) -> SyntheticSpec {
    SyntheticSpec {
        n,
        dim: 64,
        n_topics: 8,
        n_super_topics: 3,
        noise_share: 0.05,
        size_exponent: 0.7,
        seed,
    }
}

fn build(data: &SyntheticData, cfg: &ClusterConfig) -> ClusterResult {
    build_clusters(&data.vectors, data.dim, Some(&data.texts), cfg, &|_, _| {}).expect("map builds")
}

/// One default (UMAP + HDBSCAN) run shared by several tests.
static DEFAULT_RUN: LazyLock<(SyntheticData, ClusterResult)> = LazyLock::new(|| {
    let data = generate(&spec(2500, 1));
    let result = build(&data, &ClusterConfig::default());
    (data, result)
});

#[test]
fn umap_hdbscan_recovers_the_topics_with_little_noise() {
    let (data, result) = &*DEFAULT_RUN;
    let clean = clean_adjusted_rand_index(&data.labels, &result.labels);
    assert!(clean >= 0.95, "clean ARI {clean}");
    assert!(normalized_mutual_info(&data.labels, &result.labels) > 0.85);
    // 5 % of the points are true singletons; the map may absorb them, but must not invent
    // much noise among real topic members.
    assert!(
        result.noise_share <= 0.08,
        "noise share {}",
        result.noise_share
    );
    assert_eq!(result.n_clusters(), 8, "clusters: {}", result.n_clusters());
    // Labels are numbered by size, and summaries agree with the labels.
    for (label, cluster) in result.clusters.iter().enumerate() {
        assert_eq!(cluster.label, label as i32);
        assert_eq!(
            cluster.size,
            result.labels.iter().filter(|&&l| l == label as i32).count()
        );
        let q = &cluster.distance_quantiles;
        assert!(q.p50 <= q.p90 && q.p90 <= q.p95 && q.p95 <= q.p99 && q.p99 <= q.max);
        let norm: f32 = cluster.centroid.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(cluster.exemplars.len(), 5);
        assert!(
            cluster
                .exemplars
                .iter()
                .all(|&i| result.labels[i] == label as i32)
        );
        assert_eq!(cluster.diverse_exemplars.len(), 3);
    }
    assert!(result.clusters.windows(2).all(|w| w[0].size >= w[1].size));
    let coords = result.coords_2d.as_ref().expect("2-D coordinates");
    assert_eq!(coords.len(), data.labels.len());
    assert!(coords.iter().all(|c| c[0].is_finite() && c[1].is_finite()));
}

#[test]
fn same_seed_gives_an_identical_map() {
    let (data, first) = &*DEFAULT_RUN;
    let second = build(data, &ClusterConfig::default());
    assert_eq!(first.labels, second.labels);
    assert_eq!(first.reduced, second.reduced, "reduced coordinates differ");
    assert_eq!(first.coords_2d, second.coords_2d);
}

#[test]
fn keywords_are_the_topics_own_words() {
    let (data, result) = &*DEFAULT_RUN;
    for cluster in &result.clusters {
        // The true topic most members belong to.
        let mut counts = std::collections::HashMap::new();
        for (i, &l) in result.labels.iter().enumerate() {
            if l == cluster.label && data.labels[i] >= 0 {
                *counts.entry(data.labels[i]).or_insert(0) += 1;
            }
        }
        let topic = *counts.iter().max_by_key(|e| e.1).unwrap().0 as usize;
        let own = &data.topic_words[topic];
        let top5: Vec<&str> = cluster
            .keywords
            .iter()
            .take(5)
            .map(|(w, _)| w.as_str())
            .collect();
        let hits = top5.iter().filter(|w| own.iter().any(|o| o == *w)).count();
        assert!(
            hits >= 3,
            "cluster {} keywords {top5:?}, topic words {own:?}",
            cluster.label
        );
    }
}

#[test]
fn nn_descent_finds_most_true_neighbours() {
    let data = generate(&spec(2000, 3));
    let exact = knn::brute_force_knn(&data.vectors, data.dim, 14);
    let approx = knn::nn_descent(
        &data.vectors,
        data.dim,
        14,
        &knn::NnDescentParams::for_size(2000, 14),
        5,
    );
    let recall = knn::recall(&approx, &exact);
    assert!(recall >= 0.9, "recall {recall}");
    let again = knn::nn_descent(
        &data.vectors,
        data.dim,
        14,
        &knn::NnDescentParams::for_size(2000, 14),
        5,
    );
    assert_eq!(again.indices, approx.indices, "same seed, same graph");
    assert_eq!(again.distances, approx.distances);
    for i in 0..2000 {
        let d = approx.neighbor_distances(i);
        assert!(d.windows(2).all(|w| w[0] <= w[1]), "row {i} sorted");
        assert!(
            !approx.neighbors(i).contains(&(i as u32)),
            "no self neighbour"
        );
    }
}

/// Topics far apart (no super-topics, no noise).
fn separated_blobs() -> SyntheticData {
    generate(&SyntheticSpec {
        n: 2000,
        dim: 64,
        n_topics: 5,
        n_super_topics: 5,
        noise_share: 0.0,
        size_exponent: 0.5,
        seed: 11,
    })
}

#[test]
fn kmeans_recovers_separated_blobs() {
    let data = separated_blobs();
    let cfg = ClusterConfig {
        reduction: Reduction::None,
        algorithm: Algorithm::Kmeans(KmeansConfig {
            k: 5,
            ..KmeansConfig::default()
        }),
        ..ClusterConfig::default()
    };
    let result = build(&data, &cfg);
    let ari = adjusted_rand_index(&data.labels, &result.labels);
    assert!(ari >= 0.95, "ARI {ari}");
    assert_eq!(result.noise_share, 0.0);
}

#[test]
fn agglomerative_recovers_separated_blobs_with_both_linkages() {
    let data = separated_blobs();
    for linkage in [Linkage::Ward, Linkage::Average] {
        let cfg = ClusterConfig {
            reduction: Reduction::None,
            algorithm: Algorithm::Agglomerative(AgglomerativeConfig {
                k: 5,
                linkage,
                micro_clusters: 60,
            }),
            layout_2d: false,
            ..ClusterConfig::default()
        };
        let result = build(&data, &cfg);
        let ari = adjusted_rand_index(&data.labels, &result.labels);
        assert!(ari >= 0.95, "{linkage:?}: ARI {ari}");
        assert_eq!(result.n_clusters(), 5);
    }
}

#[test]
fn rebuilding_on_overlapping_data_keeps_cluster_ids() {
    // Two samples of one population sharing 80 % of their items.
    let population = generate(&spec(3000, 21));
    let take = |range: std::ops::Range<usize>| -> (Vec<f32>, Vec<usize>) {
        let ids: Vec<usize> = range.collect();
        let mut v = Vec::with_capacity(ids.len() * 64);
        for &i in &ids {
            v.extend_from_slice(&population.vectors[i * 64..(i + 1) * 64]);
        }
        (v, ids)
    };
    let (va, ids_a) = take(0..2500);
    let (vb, ids_b) = take(500..3000);
    let cfg = ClusterConfig {
        layout_2d: false,
        ..ClusterConfig::default()
    };
    let a = build_clusters(&va, 64, None, &cfg, &|_, _| {}).unwrap();
    let b = build_clusters(&vb, 64, None, &cfg, &|_, _| {}).unwrap();
    let members = |r: &ClusterResult, ids: &[usize]| -> Vec<Vec<usize>> {
        let mut m = vec![Vec::new(); r.n_clusters()];
        for (pos, &l) in r.labels.iter().enumerate() {
            if l >= 0 {
                m[l as usize].push(ids[pos]);
            }
        }
        m
    };
    let (ma, mb) = (members(&a, &ids_a), members(&b, &ids_b));
    let snapshots = |r: &ClusterResult, m: &[Vec<usize>]| -> Vec<(Vec<f32>, Vec<usize>)> {
        r.clusters
            .iter()
            .zip(m)
            .map(|(c, m)| (c.centroid.clone(), m.clone()))
            .collect()
    };
    let (sa, sb) = (snapshots(&a, &ma), snapshots(&b, &mb));
    let prev: Vec<ClusterSnapshot<usize>> = sa
        .iter()
        .map(|(c, m)| ClusterSnapshot {
            centroid: c,
            members: m,
        })
        .collect();
    let cur: Vec<ClusterSnapshot<usize>> = sb
        .iter()
        .map(|(c, m)| ClusterSnapshot {
            centroid: c,
            members: m,
        })
        .collect();
    let outcome = match_clusters(&prev, &cur, &MatchParams::default());
    // Shared items (500..2500): same id means noise in both, or b's cluster keeps a's cluster.
    let (mut same, mut total) = (0, 0);
    for item in 500..2500 {
        let la = a.labels[item];
        let lb = b.labels[item - 500];
        total += 1;
        let kept = if lb >= 0 {
            outcome.kept_previous(lb as usize)
        } else {
            None
        };
        if (la < 0 && lb < 0) || (la >= 0 && kept == Some(la as usize)) {
            same += 1;
        }
    }
    let share = same as f64 / total as f64;
    assert!(
        share >= 0.95,
        "{share:.3} of shared items kept their cluster id ({outcome:?})"
    );
}

#[test]
fn invalid_inputs_get_clear_errors() {
    let cfg = ClusterConfig::default();
    let none = |_: tracetopics::cluster::Stage, _: f32| {};
    assert!(matches!(
        build_clusters(&[], 8, None, &cfg, &none),
        Err(ClusterError::EmptyInput)
    ));
    assert!(matches!(
        build_clusters(&[1.0; 10], 4, None, &cfg, &none),
        Err(ClusterError::DimensionMismatch { len: 10, dim: 4 })
    ));
    let mut with_nan = vec![0.5f32; 8];
    with_nan[5] = f32::NAN;
    assert!(matches!(
        build_clusters(&with_nan, 4, None, &cfg, &none),
        Err(ClusterError::NonFiniteValue { row: 1 })
    ));
    let small = ClusterConfig {
        sample_size: 2,
        ..ClusterConfig::default()
    };
    assert!(matches!(
        build_clusters(&[1.0, 0.0, 0.0, 1.0, 1.0, 0.0], 2, None, &small, &none),
        Err(ClusterError::TooManyPoints {
            n: 3,
            sample_size: 2
        })
    ));
    let texts = vec!["only one".to_string()];
    assert!(matches!(
        build_clusters(&[1.0, 0.0, 0.0, 1.0], 2, Some(&texts), &cfg, &none),
        Err(ClusterError::TextCountMismatch {
            texts: 1,
            vectors: 2
        })
    ));
    let bad = ClusterConfig {
        algorithm: Algorithm::Kmeans(KmeansConfig {
            k: 1,
            ..KmeansConfig::default()
        }),
        ..ClusterConfig::default()
    };
    let err = build_clusters(&[1.0, 0.0], 2, None, &bad, &none).unwrap_err();
    assert!(
        err.to_string().contains("algorithm.k must be at least 2"),
        "{err}"
    );
}

#[test]
fn degenerate_inputs_give_sensible_maps() {
    let none = |_: tracetopics::cluster::Stage, _: f32| {};
    // All points identical: one cluster (HDBSCAN needs min_cluster_size of them).
    let same: Vec<f32> = (0..40).flat_map(|_| [0.6f32, 0.8, 0.0]).collect();
    let r = build_clusters(&same, 3, None, &ClusterConfig::default(), &none).unwrap();
    assert!(r.labels.iter().all(|&l| l == 0));
    assert_eq!(r.n_clusters(), 1);
    let r = build_clusters(&same[..3 * 5], 3, None, &ClusterConfig::default(), &none).unwrap();
    assert!(
        r.labels.iter().all(|&l| l == -1),
        "5 points < min_cluster_size"
    );

    // Fewer points than n_neighbors, and not normalized: still a map, every point labelled.
    let tiny = generate(&SyntheticSpec {
        n: 10,
        dim: 16,
        n_topics: 2,
        n_super_topics: 2,
        noise_share: 0.0,
        size_exponent: 0.0,
        seed: 2,
    });
    let scaled: Vec<f32> = tiny.vectors.iter().map(|x| x * 3.0).collect();
    let cfg = ClusterConfig {
        algorithm: Algorithm::Kmeans(KmeansConfig {
            k: 2,
            ..KmeansConfig::default()
        }),
        ..ClusterConfig::default()
    };
    let r = build_clusters(&scaled, 16, None, &cfg, &none).unwrap();
    assert_eq!(r.labels.len(), 10);
    assert_eq!(r.n_clusters(), 2);
    let norm: f32 = r.clusters[0].centroid.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-4);
}

#[test]
fn progress_reports_every_stage_from_start_to_end() {
    let data = separated_blobs();
    let seen = std::sync::Mutex::new(Vec::new());
    let cfg = ClusterConfig {
        reduction: Reduction::Umap(UmapConfig {
            n_epochs: Some(20),
            ..UmapConfig::default()
        }),
        ..ClusterConfig::default()
    };
    let r = build_clusters(&data.vectors, data.dim, None, &cfg, &|stage, done| {
        seen.lock().unwrap().push((stage, done))
    })
    .unwrap();
    let seen = seen.into_inner().unwrap();
    for timing in &r.timings {
        assert!(
            seen.contains(&(timing.stage, 0.0)),
            "{:?} started",
            timing.stage
        );
        assert!(
            seen.contains(&(timing.stage, 1.0)),
            "{:?} finished",
            timing.stage
        );
    }
    let layout_steps = seen
        .iter()
        .filter(|(s, _)| *s == tracetopics::cluster::Stage::Layout)
        .count();
    assert!(layout_steps >= 20, "per-epoch progress, got {layout_steps}");
}

#[test]
fn config_defaults_parse_from_empty_documents_and_unknown_fields_are_rejected() {
    let from_json: ClusterConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(from_json, ClusterConfig::default());
    let from_yaml: ClusterConfig = serde_yaml_ng::from_str("{}").unwrap();
    assert_eq!(from_yaml, ClusterConfig::default());
    let yaml = "reduction:\n  method: umap\n  n_neighbors: 30\nalgorithm:\n  method: kmeans\n  k: 12\nseed: 7\n";
    let cfg: ClusterConfig = serde_yaml_ng::from_str(yaml).unwrap();
    match (&cfg.reduction, &cfg.algorithm) {
        (Reduction::Umap(u), Algorithm::Kmeans(k)) => {
            assert_eq!((u.n_neighbors, u.n_components, k.k), (30, 5, 12));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(serde_yaml_ng::from_str::<ClusterConfig>("sampel_size: 10\n").is_err());
    let err =
        serde_yaml_ng::from_str::<ClusterConfig>("reduction:\n  method: umap\n  n_neighbours: 5\n")
            .unwrap_err();
    assert!(err.to_string().contains("n_neighbours"), "{err}");
    assert!(serde_yaml_ng::from_str::<ClusterConfig>("reduction:\n  method: tsne\n").is_err());
    let none: ClusterConfig = serde_yaml_ng::from_str("reduction:\n  method: none\n").unwrap();
    assert_eq!(none.reduction, Reduction::None);
    let invalid = ClusterConfig {
        reduction: Reduction::Umap(UmapConfig {
            n_neighbors: 1,
            ..UmapConfig::default()
        }),
        ..ClusterConfig::default()
    };
    assert!(
        invalid
            .validate()
            .unwrap_err()
            .to_string()
            .contains("n_neighbors")
    );
}
