//! Classification against a published map: nearest centroid or `no_match`, only for records
//! embedded by the map's model; the backfill rewrites stored classifications after a new map.

use std::sync::Arc;
use tracetopics::classify::stage::{Classifier, StoredBackfill};
use tracetopics::cluster::ClusterConfig;
use tracetopics::store::classifications;
use tracetopics::store::facets::{self, FacetRecord};
use tracetopics::telemetry::metrics::Metrics;
use tracetopics::topics::{Backfill, PublishedMaps, Topic, TopicMap};

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn topic(id: u32, name: &str, centroid: &[f32]) -> Topic {
    Topic {
        id,
        name: name.into(),
        description: String::new(),
        named: true,
        keywords: vec![],
        centroid: unit(centroid),
        threshold: 0.3,
        size: 10,
        share: 0.5,
        exemplars: vec![],
    }
}

fn map(version: u64, topics: Vec<Topic>) -> TopicMap {
    TopicMap {
        facet: "task".into(),
        version,
        created_ms: 0,
        embedding_model: "builtin:e".into(),
        dim: 3,
        params: ClusterConfig::default(),
        sample: 20,
        noise_share: 0.0,
        noise_before_reassignment: None,
        distance_threshold: 0.5,
        topics,
        changes: None,
    }
}

fn record(trace: u8, embedding: &[f32], model: &str) -> FacetRecord {
    FacetRecord {
        trace_id: [trace; 16],
        facet: "task".into(),
        text: format!("trace {trace}"),
        excluded: false,
        time_ms: tracetopics_now_ms(),
        version: "1".into(),
        preprocessor: "default".into(),
        facet_model: "builtin".into(),
        embedding_model: model.into(),
        service_name: None,
        root_span_name: String::new(),
        user_id: None,
        session_id: None,
        embedding: unit(embedding),
    }
}

fn tracetopics_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn nearest_topic_or_no_match_and_only_for_the_maps_embedding_model() {
    let maps = PublishedMaps::default();
    let metrics = Arc::new(Metrics::new());
    let classifier = Classifier::new(maps.clone(), metrics.clone());
    let near_refunds = record(1, &[1.0, 0.1, 0.0], "builtin:e");
    assert!(classifier.classify(&near_refunds).is_none(), "no map yet");

    maps.publish(Arc::new(map(
        1,
        vec![
            topic(4, "Refunds", &[1.0, 0.0, 0.0]),
            topic(9, "Shipping", &[0.0, 1.0, 0.0]),
        ],
    )));
    let c = classifier.classify(&near_refunds).unwrap();
    assert_eq!(
        (c.topic_id, c.label.as_str(), c.map_version),
        (Some(4), "Refunds", 1)
    );
    assert!(c.distance < 0.01);

    let off_topic = record(2, &[0.0, 0.0, 1.0], "builtin:e");
    let c = classifier.classify(&off_topic).unwrap();
    assert_eq!((c.topic_id, c.label.as_str()), (None, "no_match"));
    assert!(c.distance > 0.9);

    let other_model = record(3, &[1.0, 0.0, 0.0], "openai:other");
    assert!(classifier.classify(&other_model).is_none());

    // A new version is picked up: the index is rebuilt for it.
    maps.publish(Arc::new(map(
        2,
        vec![topic(9, "Shipping", &[0.0, 1.0, 0.0])],
    )));
    let c = classifier.classify(&near_refunds).unwrap();
    assert_eq!((c.topic_id, c.map_version), (None, 2));

    classifier.count(&c);
    let text = metrics.encode();
    assert!(
        text.contains(
            r#"tracetopics_classified_traces_total{facet="task",topic_id="",topic="no_match"} 1"#
        ),
        "{text}"
    );
}

#[test]
fn backfill_rewrites_stored_classifications_and_counts_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("b.redb")).unwrap());
    facets::put(
        &db,
        &[
            record(1, &[1.0, 0.1, 0.0], "builtin:e"),
            record(2, &[0.1, 1.0, 0.0], "builtin:e"),
            record(3, &[0.0, 0.0, 1.0], "builtin:e"),
        ],
    )
    .unwrap();
    let backfill = StoredBackfill {
        db: db.clone(),
        window: std::time::Duration::from_secs(3600),
        emit: None,
    };
    let first = map(
        1,
        vec![
            topic(4, "Refunds", &[1.0, 0.0, 0.0]),
            topic(9, "Shipping", &[0.0, 1.0, 0.0]),
        ],
    );
    assert_eq!(backfill.backfill(&first).unwrap(), 3, "all new");
    let topic_of = |trace: u8| classifications::of_trace(&db, &[trace; 16]).unwrap()[0].clone();
    assert_eq!(topic_of(1).topic_id, Some(4));
    assert_eq!(topic_of(2).topic_id, Some(9));
    assert_eq!(topic_of(3).label, "no_match");

    // The same map again changes nothing; a map without Shipping moves trace 2 only.
    assert_eq!(backfill.backfill(&first).unwrap(), 0);
    let second = map(2, vec![topic(4, "Refunds", &[1.0, 0.0, 0.0])]);
    assert_eq!(backfill.backfill(&second).unwrap(), 1);
    assert_eq!(topic_of(2).label, "no_match");
    assert_eq!(topic_of(1).map_version, 2);
}
