//! Regeneration on generated facet records with known topics, stored in a real redb file.

use super::*;
use crate::cluster::synthetic::{SyntheticData, SyntheticSpec, generate};
use crate::store::facets;
use crate::store::{StorageConfig, open};

const MODEL: &str = "builtin:test";

pub(crate) fn trace_id(i: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&mix_seed(7, i as u64, 0).to_le_bytes());
    id[8..].copy_from_slice(&(i as u64).to_le_bytes());
    id
}

pub(crate) fn record(data: &SyntheticData, i: usize, time_ms: u64) -> FacetRecord {
    FacetRecord {
        trace_id: trace_id(i),
        facet: "task".into(),
        text: data.texts[i].clone(),
        excluded: false,
        time_ms,
        version: "v1".into(),
        preprocessor: "default".into(),
        facet_model: "builtin".into(),
        embedding_model: MODEL.into(),
        service_name: Some(if i % 2 == 0 { "even" } else { "odd" }.into()),
        root_span_name: "agent".into(),
        user_id: None,
        session_id: None,
        embedding: data.vectors[i * data.dim..(i + 1) * data.dim].to_vec(),
    }
}

pub(crate) fn synthetic(n: usize) -> SyntheticData {
    generate(&SyntheticSpec {
        n,
        dim: 64,
        n_topics: 8,
        n_super_topics: 3,
        noise_share: 0.05,
        size_exponent: 0.7,
        seed: 3,
    })
}

pub(crate) fn test_db() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = open(&StorageConfig {
        path: dir.path().join("t.redb"),
        cache_size_mib: 16,
    })
    .unwrap();
    (dir, db)
}

pub(crate) fn small_config() -> TopicsConfig {
    TopicsConfig {
        min_traces: 50,
        min_unique_summaries: 50,
        ..Default::default()
    }
}

fn regen(db: &Database, config: &TopicsConfig, now_ms: u64) -> Regenerated {
    regenerate(db, "task", config, MODEL, None, now_ms, &|_, _| {}).expect("map builds")
}

#[test]
fn regenerating_on_mostly_the_same_data_keeps_topic_ids() {
    let data = synthetic(2400);
    let (_dir, db) = test_db();
    let config = small_config();
    // Day 1: traces 0..2000; the first 400 are old enough to leave the window by day 2.
    let day1: Vec<FacetRecord> = (0..2000)
        .map(|i| record(&data, i, if i < 400 { 1000 } else { 2000 }))
        .collect();
    facets::put(&db, &day1).unwrap();
    let first = regen(&db, &config, 3000);
    assert_eq!(first.map.version, 1);
    assert!(first.map.changes.is_none());
    assert!(
        (6..=10).contains(&first.map.topics.len()),
        "{} topics",
        first.map.topics.len()
    );
    let ids: Vec<u32> = first.map.topics.iter().map(|t| t.id).collect();
    assert_eq!(ids, (0..ids.len() as u32).collect::<Vec<_>>());
    for t in &first.map.topics {
        assert!(t.threshold > 0.0 && t.threshold <= first.map.distance_threshold);
        assert!(!t.keywords.is_empty() && !t.exemplars.is_empty());
        assert!(!t.named, "unnamed until the namer ran");
    }
    crate::store::topics::put_map(&db, &first.map, &first.members, 10).unwrap();

    // Day 2: traces 400..2400, so 80 % of the sample is shared with day 1.
    let day2: Vec<FacetRecord> = (2000..2400).map(|i| record(&data, i, 2000)).collect();
    facets::put(&db, &day2).unwrap();
    let now = 1500 + config.window.get().as_millis() as u64;
    let second = regen(&db, &config, now);
    assert_eq!(second.map.sample, 2000);
    let before: HashMap<[u8; 16], i32> = first.members.iter().copied().collect();
    let shared: Vec<(i32, i32)> = second
        .members
        .iter()
        .filter_map(|(t, id)| before.get(t).map(|&b| (b, *id)))
        .collect();
    assert_eq!(shared.len(), 1600);
    let same = shared.iter().filter(|(a, b)| a == b).count();
    assert!(
        same as f64 / shared.len() as f64 >= 0.95,
        "{same} of {} shared traces kept their topic id",
        shared.len()
    );
    let changes = second.map.changes.as_ref().expect("changes to version 1");
    assert_eq!(changes.previous_version, 1);
    assert!(changes.stability.unwrap() > 0.9, "{changes:?}");
    assert!(
        changes.kept.len() >= first.map.topics.len() - 1,
        "{changes:?}"
    );
    // A topic that is not kept gets an id never used before.
    let first_max = ids.iter().max().copied().unwrap();
    for t in &second.map.topics {
        assert!(
            changes.kept.contains(&t.id) || t.id > first_max,
            "{changes:?}"
        );
    }

    // Same data, same seed: the same map.
    let again = regen(&db, &config, now);
    assert_eq!(again.map, second.map);
    assert_eq!(again.members, second.members);
}

#[test]
fn the_sample_is_drawn_by_trace_id_hash_whatever_the_storage_order() {
    let data = synthetic(300);
    let (_dir, db) = test_db();
    let records: Vec<FacetRecord> = (0..300).map(|i| record(&data, i, i as u64)).collect();
    facets::put(&db, &records[150..]).unwrap();
    facets::put(&db, &records[..150]).unwrap();
    // Neither an excluded summary nor one without an embedding is ever sampled.
    let data_more = synthetic(302);
    let mut excluded = record(&data_more, 300, 5);
    excluded.excluded = true;
    let mut unembedded = record(&data_more, 301, 5);
    unembedded.embedding.clear();
    facets::put(&db, &[excluded, unembedded]).unwrap();
    let filter = SampleFilter {
        since_ms: 0,
        embedding_model: MODEL.into(),
        fields: vec![],
        labelled: None,
    };
    let a = load_sample(&db, "task", &filter, 100, 42).unwrap();
    assert_eq!((a.available, a.trace_ids.len(), a.dim), (300, 100, 64));
    let mut ranked: Vec<[u8; 16]> = (0..300).map(trace_id).collect();
    ranked.sort_by_key(|t| (sample_rank(t, 42), *t));
    assert_eq!(a.trace_ids, ranked[..100]);
    // A filter on a trace field keeps only matching records.
    let odd = SampleFilter {
        fields: vec![("service_name".into(), "odd".into())],
        ..filter
    };
    let b = load_sample(&db, "task", &odd, 1000, 42).unwrap();
    assert_eq!(b.available, 150);
}

#[test]
fn too_few_summaries_or_no_embeddings_are_clear_errors() {
    let data = synthetic(60);
    let (_dir, db) = test_db();
    let config = small_config();
    let few: Vec<FacetRecord> = (0..30).map(|i| record(&data, i, 10)).collect();
    facets::put(&db, &few).unwrap();
    let err = regenerate(&db, "task", &config, MODEL, None, 20, &|_, _| {}).unwrap_err();
    assert!(
        matches!(
            err,
            RegenerateError::TooFewFacets {
                found: 30,
                needed: 50,
                ..
            }
        ),
        "{err}"
    );
    let err = regenerate(&db, "task", &config, "openai:other", None, 20, &|_, _| {}).unwrap_err();
    assert!(
        matches!(err, RegenerateError::NoEmbeddings { records: 30, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("openai:other"));
    let err = regenerate(&db, "issues", &config, MODEL, None, 20, &|_, _| {}).unwrap_err();
    assert!(matches!(
        err,
        RegenerateError::TooFewFacets { found: 0, .. }
    ));
}

fn sample_of(data: &SyntheticData, rows: &[usize]) -> Sample {
    Sample {
        trace_ids: rows.iter().map(|&i| trace_id(i)).collect(),
        texts: rows.iter().map(|&i| data.texts[i].clone()).collect(),
        vectors: rows
            .iter()
            .flat_map(|&i| {
                data.vectors[i * data.dim..(i + 1) * data.dim]
                    .iter()
                    .copied()
            })
            .collect(),
        dim: data.dim,
        available: rows.len(),
    }
}

fn clustering() -> ClusterConfig {
    ClusterConfig {
        layout_2d: false,
        ..ClusterConfig::default()
    }
}

#[test]
fn noise_within_a_topic_threshold_joins_that_topic_and_the_rest_stays_noise() {
    // 10 % singletons in random directions, plus each topic's looser members that HDBSCAN
    // leaves as noise.
    let data = generate(&SyntheticSpec {
        n: 1200,
        dim: 64,
        n_topics: 8,
        n_super_topics: 3,
        noise_share: 0.10,
        size_exponent: 0.7,
        seed: 3,
    });
    let rows: Vec<usize> = (0..1200).collect();
    let sample = sample_of(&data, &rows);
    // HDBSCAN on the raw vectors leaves a topic's looser members as noise (UMAP would pull
    // nearly everything into clusters on data this clean).
    let raw = ClusterConfig {
        reduction: crate::cluster::Reduction::None,
        ..clustering()
    };
    let clustered = cluster_sample(&sample, &raw, &small_config(), &|_, _| {}).unwrap();
    assert!(
        clustered.noise_share < clustered.noise_before,
        "before {} after {}",
        clustered.noise_before,
        clustered.noise_share
    );
    let noise = clustered.labels.iter().filter(|&&l| l < 0).count();
    assert!((clustered.noise_share - noise as f32 / 1200.0).abs() < 1e-6);
    // Sizes and shares count the reassigned members.
    for (t, topic) in clustered.topics.iter().enumerate() {
        let members = clustered.labels.iter().filter(|&&l| l == t as i32).count();
        assert_eq!(topic.size, members);
    }
    // The rule is the classifier's: a point left as noise would be `no_match`, and the true
    // singletons (random directions) stay noise, while topic members were taken in.
    let map = TopicMap {
        facet: "task".into(),
        version: 1,
        created_ms: 0,
        embedding_model: MODEL.into(),
        dim: data.dim,
        params: raw.clone(),
        sample: 1200,
        noise_share: clustered.noise_share,
        noise_before_reassignment: Some(clustered.noise_before),
        distance_threshold: clustered.distance_threshold,
        topics: clustered.topics.clone(),
        changes: None,
    };
    let index = crate::classify::CentroidIndex::build(&map, crate::classify::IndexKind::BruteForce)
        .unwrap();
    let row = |i: usize| &data.vectors[i * data.dim..(i + 1) * data.dim];
    let (mut singletons, mut singletons_kept_out) = (0, 0);
    for (i, &l) in clustered.labels.iter().enumerate() {
        let classified = index.classify(row(i)).unwrap().topic;
        if l < 0 {
            assert_eq!(classified, None, "noise point {i} lies within a topic");
        }
        if data.labels[i] < 0 {
            singletons += 1;
            singletons_kept_out += usize::from(l < 0);
        }
    }
    assert!(
        singletons_kept_out * 10 >= singletons * 9,
        "{singletons_kept_out} of {singletons} singletons stayed noise"
    );
}

#[test]
fn calibrated_thresholds_reject_an_unseen_topic_and_accept_new_members() {
    let data = synthetic(2400);
    // Topic 1 is never seen (it shares a super-topic with others); 4 of 5 traces of the other
    // topics build the map, the fifth are new traces of seen topics.
    let unseen = 1;
    let (mut train, mut fresh, mut held_out) = (Vec::new(), Vec::new(), Vec::new());
    for (i, &l) in data.labels.iter().enumerate() {
        match l {
            l if l == unseen => held_out.push(i),
            l if l >= 0 && i % 5 == 0 => fresh.push(i),
            _ => train.push(i),
        }
    }
    assert!(held_out.len() >= 100, "{}", held_out.len());
    let sample = sample_of(&data, &train);
    let config = small_config();
    let clustered = cluster_sample(&sample, &clustering(), &config, &|_, _| {}).unwrap();
    let map = TopicMap {
        facet: "task".into(),
        version: 1,
        created_ms: 0,
        embedding_model: MODEL.into(),
        dim: data.dim,
        params: clustering(),
        sample: train.len(),
        noise_share: clustered.noise_share,
        noise_before_reassignment: Some(clustered.noise_before),
        distance_threshold: clustered.distance_threshold,
        topics: clustered.topics.clone(),
        changes: None,
    };
    // Learned, not the former fixed 0.8: the generated topics' members lie within ~0.3.
    for t in &map.topics {
        assert!(t.threshold > 0.0 && t.threshold <= map.distance_threshold);
    }
    let index = crate::classify::CentroidIndex::build(&map, crate::classify::IndexKind::BruteForce)
        .unwrap();
    let row = |i: usize| &data.vectors[i * data.dim..(i + 1) * data.dim];
    let rejected = held_out
        .iter()
        .filter(|&&i| index.classify(row(i)).unwrap().topic.is_none())
        .count();
    assert!(
        rejected * 4 >= held_out.len() * 3,
        "{rejected} of {} unseen traces rejected",
        held_out.len()
    );
    // A new trace of a seen topic lands in the topic most of that topic's sample went to.
    let mut majority: HashMap<usize, HashMap<i32, usize>> = HashMap::new();
    for (&i, &l) in train.iter().zip(&clustered.labels) {
        if l >= 0 {
            *majority
                .entry(l as usize)
                .or_default()
                .entry(data.labels[i])
                .or_default() += 1;
        }
    }
    let majority_of = |t: usize| {
        majority[&t]
            .iter()
            .max_by_key(|&(_, n)| *n)
            .map(|(&truth, _)| truth)
    };
    let right = fresh
        .iter()
        .filter(|&&i| {
            index
                .classify(row(i))
                .unwrap()
                .topic
                .is_some_and(|t| majority_of(t) == Some(data.labels[i]))
        })
        .count();
    assert!(
        right * 10 >= fresh.len() * 9,
        "{right} of {} new traces of seen topics got their topic",
        fresh.len()
    );
}

#[test]
fn a_labelled_facets_sample_is_its_reasons_not_its_labels() {
    let data = synthetic(60);
    let (_dir, db) = test_db();
    let config = small_config();
    let spec = crate::facet::spec::builtin("sentiment").unwrap();
    // One reason under two labels: the label must not make it two summaries.
    let records: Vec<FacetRecord> = (0..60)
        .map(|i| FacetRecord {
            facet: "sentiment".into(),
            text: format!(
                "{}: the refund is late",
                if i % 2 == 0 { "NEGATIVE" } else { "MIXED" }
            ),
            ..record(&data, i, 10)
        })
        .collect();
    facets::put(&db, &records).unwrap();
    let filter = SampleFilter {
        since_ms: 0,
        embedding_model: MODEL.into(),
        fields: vec![],
        labelled: Some(spec.clone()),
    };
    let sample = load_sample(&db, "sentiment", &filter, 100, 42).unwrap();
    assert_eq!(sample.texts.len(), 60);
    assert!(sample.texts.iter().all(|t| t == "the refund is late"));
    let err = regenerate(
        &db,
        "sentiment",
        &config,
        MODEL,
        Some(&spec),
        20,
        &|_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, RegenerateError::TooFewFacets { found: 1, .. }),
        "{err}"
    );
    let err = regenerate(&db, "sentiment", &config, MODEL, None, 20, &|_, _| {}).unwrap_err();
    assert!(
        matches!(err, RegenerateError::TooFewFacets { found: 2, .. }),
        "{err}"
    );
}
