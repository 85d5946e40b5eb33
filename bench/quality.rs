//! Opt-in quality check with real local models (not part of CI; run `bench/quality.sh`, which
//! installs and starts the model servers). How well do the topic maps recover the load
//! generator's known intents, and do off-topic traces come out as `no_match`?
//!
//! Pipeline per trace, as in the sidecar: generated OTLP trace → default preprocessor → Task
//! facet (builtin rules, or the chat model at `QUALITY_FACETS_URL`) → embedding (builtin, and
//! the model at `QUALITY_EMBEDDINGS_URL`) → UMAP + HDBSCAN on 80 % of the traces → each held-out
//! trace classified by nearest centroid with the map's thresholds.
//!
//! Printed per embedding: topics, noise share, ARI / NMI of the clusters against the intents,
//! held-out accuracy (topic → its majority intent), and the share of off-topic traces labelled
//! `no_match` and of on-topic traces wrongly labelled so.
//!
//!   QUALITY_EMBEDDINGS_URL=http://127.0.0.1:18001/v1 cargo bench --bench quality
//!   QUALITY_FACETS_URL=http://127.0.0.1:18002/v1 QUALITY_FACETS_MODEL=qwen … (optional)
//!   QUALITY_TRACES=1200 (default); QUALITY_DISTANCE_THRESHOLD=0.15 (topics.distance_threshold)

use prost::Message;
use std::collections::HashMap;
use tracetopics::classify::{CentroidIndex, IndexKind};
use tracetopics::cluster::{
    ClusterConfig, adjusted_rand_index, build_clusters, normalized_mutual_info,
};
use tracetopics::embed::Embedder;
use tracetopics::facet::extract::{AnswerCache, FacetModel, extract};
use tracetopics::loadgen::Workload;
use tracetopics::model::{ModelConfig, Provider};
use tracetopics::preprocess::{Preprocessor, TraceView};
use tracetopics::topics::config::TopicsConfig;
use tracetopics::topics::{Topic, TopicMap};

fn remote(url: &str, model: &str) -> ModelConfig {
    ModelConfig {
        provider: Provider::Openai,
        base_url: url.into(),
        model: model.into(),
        timeout: tracetopics::config::types::HumanDuration::from_secs(300),
        ..ModelConfig::default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::var("QUALITY_TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1200);
    let embeddings_url = std::env::var("QUALITY_EMBEDDINGS_URL").ok();
    let facets_url = std::env::var("QUALITY_FACETS_URL").ok();
    let facet_model = match &facets_url {
        Some(url) => {
            let model = std::env::var("QUALITY_FACETS_MODEL").unwrap_or_else(|_| "local".into());
            FacetModel::new(&remote(url, &model)).expect("facet model")
        }
        None => FacetModel::new(&ModelConfig::default()).expect("builtin facets"),
    };
    println!(
        "quality check: {n} generated support-agent traces (5% off-topic), facets by `{}`",
        facet_model.model_id()
    );

    // Preprocess and facet (Task only: the facet whose topics should be the intents).
    let workload = Workload::new(7).with_ood_share(0.05);
    let mut preprocessor = Preprocessor::builtin(128_000);
    let task = tracetopics::facet::spec::builtin("task").expect("task facet");
    let cache = AnswerCache::new(0);
    let mut texts = Vec::new();
    let mut truth = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..n {
        let (data, t) = workload.trace(i);
        let trace_id = data.resource_spans[0].scope_spans[0].spans[0]
            .trace_id
            .clone();
        let view = TraceView::decode(&trace_id, &data.encode_to_vec(), &[]).expect("decodes");
        let Ok(pre) = preprocessor.run(&view) else {
            continue;
        };
        match extract(&facet_model, &cache, &pre.segments, &[&task]).await {
            Ok(x) if !x.answers.is_empty() => {
                texts.push(x.answers[0].text.clone());
                truth.push(if t.ood { -1 } else { t.intent as i32 });
            }
            Ok(_) => eprintln!("trace {i}: no task answer"),
            Err(e) => eprintln!("trace {i}: facet call failed: {e}"),
        }
    }
    println!(
        "  {} task summaries in {:.1} s; e.g. {:?}",
        texts.len(),
        started.elapsed().as_secs_f64(),
        &texts[..3.min(texts.len())]
    );

    let mut embedders = vec![(
        "builtin".to_string(),
        Embedder::new(&ModelConfig::default()).unwrap(),
    )];
    if let Some(url) = &embeddings_url {
        embedders.push((
            format!("remote {url}"),
            Embedder::new(&remote(url, "e5")).unwrap(),
        ));
    } else {
        println!("  (set QUALITY_EMBEDDINGS_URL to compare a real embedding model)");
    }
    println!(
        "\n{:<40} {:>6} {:>7} {:>6} {:>6} {:>9} {:>9} {:>9} {:>7}",
        "embedding", "topics", "noise%", "ARI", "NMI", "held-out", "ood→nm", "in→nm", "embed s"
    );
    for (name, embedder) in embedders {
        let t0 = std::time::Instant::now();
        let mut vectors = Vec::new();
        for chunk in texts.chunks(64) {
            vectors.extend(embedder.embed(chunk).await.expect("embeddings"));
        }
        let seconds = t0.elapsed().as_secs_f64();
        let row = evaluate(&vectors, &texts, &truth);
        println!(
            "{:<40} {:>6} {:>7.1} {:>6.3} {:>6.3} {:>8.1}% {:>8.1}% {:>8.1}% {:>7.1}",
            name,
            row.topics,
            row.noise * 100.0,
            row.ari,
            row.nmi,
            row.held_out_accuracy * 100.0,
            row.ood_no_match * 100.0,
            row.in_no_match * 100.0,
            seconds
        );
    }
}

struct Row {
    topics: usize,
    noise: f32,
    ari: f64,
    nmi: f64,
    held_out_accuracy: f64,
    ood_no_match: f64,
    in_no_match: f64,
}

fn evaluate(vectors: &[Vec<f32>], texts: &[String], truth: &[i32]) -> Row {
    let dim = vectors[0].len();
    // Every fifth trace is held out for classification.
    let (train, test): (Vec<usize>, Vec<usize>) = (0..vectors.len()).partition(|i| i % 5 != 0);
    let flat: Vec<f32> = train.iter().flat_map(|&i| vectors[i].clone()).collect();
    let train_texts: Vec<String> = train.iter().map(|&i| texts[i].clone()).collect();
    let config = ClusterConfig::default();
    let result =
        build_clusters(&flat, dim, Some(&train_texts), &config, &|_, _| {}).expect("clusters");
    let train_truth: Vec<i32> = train.iter().map(|&i| truth[i]).collect();
    // Quality of the map on on-topic traces (off-topic ones have no intent to recover).
    let on_topic: Vec<usize> = (0..train.len()).filter(|&k| train_truth[k] >= 0).collect();
    let pick = |v: &[i32]| on_topic.iter().map(|&k| v[k]).collect::<Vec<i32>>();
    let ari = adjusted_rand_index(&pick(&train_truth), &pick(&result.labels));
    let nmi = normalized_mutual_info(&pick(&train_truth), &pick(&result.labels));

    // Majority intent per cluster, then a TopicMap with the sidecar's threshold rules.
    let mut votes: HashMap<i32, HashMap<i32, usize>> = HashMap::new();
    for (k, &label) in result.labels.iter().enumerate() {
        *votes
            .entry(label)
            .or_default()
            .entry(train_truth[k])
            .or_default() += 1;
    }
    // This bench keeps the former fixed thresholds (global 0.8, floor 0.1, the quantile rule);
    // calibrated thresholds are measured by `bench/calibration.rs`.
    let mut topics_config = TopicsConfig::default();
    topics_config.topic_threshold.floor = Some(0.1);
    let global: f32 = std::env::var("QUALITY_DISTANCE_THRESHOLD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.8);
    topics_config.distance_threshold = Some(global);
    let map = TopicMap {
        facet: "task".into(),
        version: 1,
        created_ms: 0,
        embedding_model: "x".into(),
        dim,
        params: config.clone(),
        sample: train.len(),
        noise_share: result.noise_share,
        noise_before_reassignment: None,
        distance_threshold: global,
        topics: result
            .clusters
            .iter()
            .map(|c| Topic {
                id: c.label as u32,
                name: String::new(),
                description: String::new(),
                named: true,
                keywords: Vec::new(),
                centroid: c.centroid.clone(),
                threshold: topics_config
                    .topic_threshold
                    .threshold(&c.distance_quantiles, global),
                size: c.size,
                share: 0.0,
                exemplars: Vec::new(),
            })
            .collect(),
        changes: None,
    };
    let index = CentroidIndex::build(&map, IndexKind::Auto).expect("index");
    let (mut correct, mut on, mut in_nm, mut ood, mut ood_nm) = (0, 0, 0, 0, 0);
    for &i in &test {
        let decision = index.classify(&vectors[i]).expect("classify");
        if truth[i] < 0 {
            ood += 1;
            ood_nm += usize::from(decision.topic.is_none());
            continue;
        }
        on += 1;
        match decision.topic {
            None => in_nm += 1,
            Some(t) => {
                let majority = votes[&(t as i32)]
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(intent, _)| *intent);
                correct += usize::from(majority == Some(truth[i]));
            }
        }
    }
    Row {
        topics: result.clusters.len(),
        noise: result.noise_share,
        ari,
        nmi,
        held_out_accuracy: correct as f64 / on.max(1) as f64,
        ood_no_match: ood_nm as f64 / ood.max(1) as f64,
        in_no_match: in_nm as f64 / on.max(1) as f64,
    }
}
