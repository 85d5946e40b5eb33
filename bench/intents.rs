//! Opt-in side-by-side benchmark on real labelled intent corpora (run `bench/intents.sh`, which
//! installs and serves the embedding model and the Python reference). Not part of CI: it needs
//! `../shared/data` (or `INTENTS_DATA`) and a local embedding server.
//!
//! Per corpus (HWU64: one utterance per intent-labelled row; SGD: each dialogue's first user turn
//! and its first intent), every utterance goes through the sidecar's path: an OTLP trace as the
//! OpenAI instrumentation writes it → default preprocessor → builtin Task facet → embedding from
//! the model at `INTENTS_EMBEDDINGS_URL` → the map, built by `topics::regenerate::cluster_sample`
//! (the code path of the automation) with default settings → held-out traces classified against
//! the map's centroids and thresholds.
//!
//! Split: every 8th intent (sorted by name) is held out whole ("unseen": its traces should be
//! `no_match`); of the rest, every 5th trace is held out ("seen": its topic's majority intent
//! should be its own); the remaining traces are the map's sample.
//!
//! The reference, in the same run and on the same sample embeddings: BERTopic's default
//! clustering, reproduced with umap-learn + hdbscan directly (`bench/intents_reference.py`:
//! UMAP 15 neighbours, 5 dims, `min_dist` 0, cosine; HDBSCAN `min_cluster_size` 10, EOM —
//! exactly what `BERTopic()` constructs). Its held-out accuracy assigns each held-out trace to
//! the nearest cluster centroid (BERTopic has no `no_match`).
//!
//!   INTENTS_EMBEDDINGS_URL=http://127.0.0.1:18001/v1 INTENTS_PYTHON=python3 \
//!     cargo bench --bench intents
//!   INTENTS_CORPORA=hwu64,sgd (default)  INTENTS_DATA=../shared/data  INTENTS_MAX=0 (all rows)

use prost::Message;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracetopics::classify::{CentroidIndex, IndexKind};
use tracetopics::cluster::{ClusterConfig, adjusted_rand_index, normalized_mutual_info};
use tracetopics::embed::Embedder;
use tracetopics::facet::extract::{AnswerCache, FacetModel, extract};
use tracetopics::model::{ModelConfig, Provider};
use tracetopics::preprocess::{Preprocessor, TraceView};
use tracetopics::topics::TopicMap;
use tracetopics::topics::config::TopicsConfig;
use tracetopics::topics::regenerate::{Sample, cluster_sample};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Any};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let data_dir = PathBuf::from(std::env::var("INTENTS_DATA").unwrap_or("../shared/data".into()));
    let Ok(url) = std::env::var("INTENTS_EMBEDDINGS_URL") else {
        eprintln!("set INTENTS_EMBEDDINGS_URL (bench/intents.sh does); nothing to do");
        return;
    };
    let python = std::env::var("INTENTS_PYTHON").unwrap_or("python3".into());
    let max_rows: usize = std::env::var("INTENTS_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let corpora = std::env::var("INTENTS_CORPORA").unwrap_or("hwu64,sgd".into());
    let work = PathBuf::from("target/intents");
    std::fs::create_dir_all(&work).expect("target/intents");
    let embedder = Embedder::new(&ModelConfig {
        provider: Provider::Openai,
        base_url: url.clone(),
        model: "e5".into(),
        timeout: tracetopics::config::types::HumanDuration::from_secs(600),
        ..ModelConfig::default()
    })
    .expect("embedder");

    let mut rows = Vec::new();
    for name in corpora.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (mut utterances, mut intents) = match name {
            "hwu64" => load_hwu64(&data_dir.join("hwu64/hwu64.tsv")),
            "sgd" => load_sgd(&data_dir.join("sgd/conversations.json")),
            other => panic!("unknown corpus {other} (hwu64, sgd)"),
        };
        if max_rows > 0 && utterances.len() > max_rows {
            // A deterministic spread over the file, not its first rows (often sorted by intent).
            let step = utterances.len() as f64 / max_rows as f64;
            let keep: Vec<usize> = (0..max_rows).map(|k| (k as f64 * step) as usize).collect();
            utterances = keep.iter().map(|&i| utterances[i].clone()).collect();
            intents = keep.iter().map(|&i| intents[i].clone()).collect();
        }
        println!(
            "{name}: {} utterances, {} intents",
            utterances.len(),
            intents.iter().collect::<BTreeSet<_>>().len()
        );
        let t0 = Instant::now();
        let (texts, kept) = task_summaries(&utterances).await;
        println!(
            "  preprocess + Task facet: {} summaries in {:.1} s, e.g. {:?} → {:?}",
            texts.len(),
            t0.elapsed().as_secs_f64(),
            utterances[kept[0]],
            texts[0]
        );
        let intents: Vec<String> = kept.iter().map(|&i| intents[i].clone()).collect();
        let t0 = Instant::now();
        let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(64) {
            vectors.extend(embedder.embed(chunk).await.expect("embeddings"));
        }
        println!("  embedded by {url} in {:.1} s", t0.elapsed().as_secs_f64());
        let split = Split::new(&intents);
        let engine = run_engine(&texts, &vectors, &split);
        let reference = run_reference(&python, &work, name, &vectors, &split);
        rows.push((name.to_string(), engine, reference));
    }

    println!(
        "\n{:<7} {:<26} {:>6} {:>6} {:>6} {:>6} {:>13} {:>6} {:>9} {:>10} {:>9} {:>7}",
        "corpus",
        "method",
        "ARI",
        "NMI",
        "ARIcl",
        "NMIcl",
        "noise%",
        "topics",
        "held-out",
        "unseen→nm",
        "seen→nm",
        "secs"
    );
    for (name, engine, reference) in &rows {
        for (method, r) in [
            ("tracetopics (defaults)", Some(engine)),
            ("umap-learn+hdbscan (BERTopic)", reference.as_ref()),
        ] {
            match r {
                Some(r) => println!(
                    "{:<7} {:<26} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>13} {:>6} {:>8.1}% {:>10} {:>9} {:>7.1}",
                    name,
                    method,
                    r.ari_all,
                    r.nmi_all,
                    r.ari_clustered,
                    r.nmi_clustered,
                    match r.noise_before {
                        Some(before) => format!("{:.1}→{:.1}", before * 100.0, r.noise * 100.0),
                        None => format!("{:.1}", r.noise * 100.0),
                    },
                    r.topics,
                    r.held_out_accuracy * 100.0,
                    percent(r.unseen_no_match),
                    percent(r.seen_no_match),
                    r.seconds
                ),
                None => println!("{name:<7} {method:<26} (reference failed; see stderr)"),
            }
        }
    }
    println!(
        "\nARI/NMI: all sample traces, noise as its own label; ARIcl/NMIcl: traces placed in a topic.\n\
         noise%: the engine's before → after outlier reassignment (ARI/NMI are after).\n\
         held-out: seen-intent held-out traces whose topic's majority intent is theirs (no_match counts as wrong).\n\
         unseen→nm: traces of held-out intents classified no_match; seen→nm: seen held-out traces classified no_match."
    );
}

fn percent(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

fn load_hwu64(path: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (set INTENTS_DATA)", path.display()));
    let (mut utterances, mut intents) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        if let Some((u, i)) = line.split_once('\t')
            && !u.trim().is_empty()
        {
            utterances.push(u.to_string());
            intents.push(i.trim().to_string());
        }
    }
    (utterances, intents)
}

fn load_sgd(path: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (set INTENTS_DATA)", path.display()));
    let dialogues: Vec<serde_json::Value> = serde_json::from_str(&text).expect("SGD JSON");
    let (mut utterances, mut intents) = (Vec::new(), Vec::new());
    for d in dialogues {
        let first = d["turns"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["speaker"] == "USER"))
            .and_then(|t| t["utterance"].as_str());
        if let (Some(u), Some(i)) = (first, d["first_intent"].as_str()) {
            utterances.push(u.to_string());
            intents.push(i.to_string());
        }
    }
    (utterances, intents)
}

fn text_kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Any::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The trace the OpenAI instrumentation (GenAI semconv ≥ 1.37) writes for one chat call with
/// this user message: an `invoke_agent` root and a `chat` span with the message history.
fn trace_for(i: usize, utterance: &str) -> ([u8; 16], Vec<u8>) {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    trace_id[8..].copy_from_slice(&0x7472_6163_6574_6f70u64.to_be_bytes());
    let root_id = ((i as u64) << 1 | 1).to_be_bytes().to_vec();
    let start = 1_748_779_200_000_000_000u64 + i as u64 * 1_000_000_000;
    let input = json!([
        {"role":"system","parts":[{"type":"text","content":"You are a helpful assistant."}]},
        {"role":"user","parts":[{"type":"text","content":utterance}]}
    ]);
    let output = json!([{"role":"assistant","parts":[{"type":"text","content":"Sure, let me help with that."}],"finish_reason":"stop"}]);
    let chat = Span {
        trace_id: trace_id.to_vec(),
        span_id: ((i as u64) << 1 | 2).to_be_bytes().to_vec(),
        parent_span_id: root_id.clone(),
        name: "chat gpt-4o-mini".into(),
        kind: 3,
        start_time_unix_nano: start + 1_000_000,
        end_time_unix_nano: start + 800_000_000,
        attributes: vec![
            text_kv("gen_ai.operation.name", "chat"),
            text_kv("gen_ai.provider.name", "openai"),
            text_kv("gen_ai.request.model", "gpt-4o-mini"),
            text_kv("gen_ai.input.messages", input.to_string()),
            text_kv("gen_ai.output.messages", output.to_string()),
        ],
        ..Default::default()
    };
    let root = Span {
        trace_id: trace_id.to_vec(),
        span_id: root_id,
        name: "invoke_agent assistant".into(),
        kind: 1,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 900_000_000,
        attributes: vec![text_kv("gen_ai.operation.name", "invoke_agent")],
        ..Default::default()
    };
    let data = TracesData {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text_kv("service.name", "assistant")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![chat, root],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    (trace_id, data.encode_to_vec())
}

/// Default preprocessor → builtin Task facet per utterance; returns the summaries and the
/// indices of the utterances that produced one.
async fn task_summaries(utterances: &[String]) -> (Vec<String>, Vec<usize>) {
    let mut preprocessor = Preprocessor::builtin(128_000);
    let model = FacetModel::new(&ModelConfig::default()).expect("builtin facets");
    let task = tracetopics::facet::spec::builtin("task").expect("task facet");
    let cache = AnswerCache::new(0);
    let (mut texts, mut kept) = (Vec::new(), Vec::new());
    for (i, u) in utterances.iter().enumerate() {
        let (trace_id, bytes) = trace_for(i, u);
        let view = TraceView::decode(&trace_id, &bytes, &[]).expect("trace decodes");
        let Ok(pre) = preprocessor.run(&view) else {
            eprintln!("utterance {i}: skipped by the preprocessor");
            continue;
        };
        match extract(&model, &cache, &pre.segments, &[&task]).await {
            Ok(x) if !x.answers.is_empty() && !x.answers[0].text.trim().is_empty() => {
                texts.push(x.answers[0].text.clone());
                kept.push(i);
            }
            _ => eprintln!("utterance {i}: no Task answer"),
        }
    }
    (texts, kept)
}

/// Which traces build the map and which are held out.
struct Split {
    /// Intent id per trace (ids by sorted name).
    truth: Vec<i32>,
    sample: Vec<usize>,
    seen_held_out: Vec<usize>,
    unseen: Vec<usize>,
}

impl Split {
    fn new(intents: &[String]) -> Self {
        let names: Vec<&String> = intents
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let id: HashMap<&String, i32> = names
            .iter()
            .enumerate()
            .map(|(k, n)| (*n, k as i32))
            .collect();
        let truth: Vec<i32> = intents.iter().map(|i| id[i]).collect();
        let (mut sample, mut seen_held_out, mut unseen) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &t) in truth.iter().enumerate() {
            if t % 8 == 7 {
                unseen.push(i);
            } else if i % 5 == 0 {
                seen_held_out.push(i);
            } else {
                sample.push(i);
            }
        }
        Split {
            truth,
            sample,
            seen_held_out,
            unseen,
        }
    }
}

struct Row {
    ari_all: f64,
    nmi_all: f64,
    ari_clustered: f64,
    nmi_clustered: f64,
    /// Noise share of the map (after outlier reassignment, for the engine).
    noise: f64,
    /// The engine's noise share before outlier reassignment.
    noise_before: Option<f64>,
    topics: usize,
    held_out_accuracy: f64,
    unseen_no_match: Option<f64>,
    seen_no_match: Option<f64>,
    seconds: f64,
}

/// Partition quality of `labels` (per sample trace) against the sample's intents.
fn partition_scores(truth: &[i32], labels: &[i32]) -> (f64, f64, f64, f64, f64) {
    let clustered: Vec<usize> = (0..labels.len()).filter(|&k| labels[k] >= 0).collect();
    let pick = |v: &[i32]| clustered.iter().map(|&k| v[k]).collect::<Vec<i32>>();
    (
        adjusted_rand_index(truth, labels),
        normalized_mutual_info(truth, labels),
        adjusted_rand_index(&pick(truth), &pick(labels)),
        normalized_mutual_info(&pick(truth), &pick(labels)),
        1.0 - clustered.len() as f64 / labels.len().max(1) as f64,
    )
}

/// Majority intent per cluster label (noise has none).
fn majorities(truth: &[i32], labels: &[i32]) -> HashMap<i32, i32> {
    let mut votes: HashMap<i32, HashMap<i32, usize>> = HashMap::new();
    for (&t, &l) in truth.iter().zip(labels) {
        if l >= 0 {
            *votes.entry(l).or_default().entry(t).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .map(|(l, v)| {
            let best = v
                .into_iter()
                .max_by_key(|&(intent, n)| (n, -intent))
                .map(|(intent, _)| intent)
                .expect("non-empty");
            (l, best)
        })
        .collect()
}

fn run_engine(texts: &[String], vectors: &[Vec<f32>], split: &Split) -> Row {
    let dim = vectors[0].len();
    let started = Instant::now();
    let sample = Sample {
        trace_ids: split
            .sample
            .iter()
            .map(|&i| {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
                id
            })
            .collect(),
        texts: split.sample.iter().map(|&i| texts[i].clone()).collect(),
        vectors: split
            .sample
            .iter()
            .flat_map(|&i| vectors[i].iter().copied())
            .collect(),
        dim,
        available: split.sample.len(),
    };
    let mut clustering = ClusterConfig::default();
    clustering.layout_2d = false;
    let config = TopicsConfig::default();
    let clustered = cluster_sample(&sample, &clustering, &config, &|_, _| {}).expect("map builds");
    let (topics, labels) = (clustered.topics, clustered.labels);
    let seconds = started.elapsed().as_secs_f64();
    let truth: Vec<i32> = split.sample.iter().map(|&i| split.truth[i]).collect();
    let (ari_all, nmi_all, ari_clustered, nmi_clustered, _) = partition_scores(&truth, &labels);
    let majority = majorities(&truth, &labels);
    let map = TopicMap {
        facet: "task".into(),
        version: 1,
        created_ms: 0,
        embedding_model: "e5".into(),
        dim,
        params: clustering,
        sample: split.sample.len(),
        noise_share: clustered.noise_share,
        noise_before_reassignment: Some(clustered.noise_before),
        distance_threshold: clustered.distance_threshold,
        topics: topics.clone(),
        changes: None,
    };
    let index = CentroidIndex::build(&map, IndexKind::Auto).expect("centroid index");
    let (mut correct, mut seen_nm) = (0usize, 0usize);
    for &i in &split.seen_held_out {
        match index.classify(&vectors[i]).expect("classify").topic {
            None => seen_nm += 1,
            Some(t) => {
                let label = topics[t].id as i32;
                correct += usize::from(majority.get(&label) == Some(&split.truth[i]));
            }
        }
    }
    let unseen_nm = split
        .unseen
        .iter()
        .filter(|&&i| {
            index
                .classify(&vectors[i])
                .expect("classify")
                .topic
                .is_none()
        })
        .count();
    Row {
        ari_all,
        nmi_all,
        ari_clustered,
        nmi_clustered,
        noise: f64::from(clustered.noise_share),
        noise_before: Some(f64::from(clustered.noise_before)),
        topics: topics.len(),
        held_out_accuracy: correct as f64 / split.seen_held_out.len().max(1) as f64,
        unseen_no_match: Some(unseen_nm as f64 / split.unseen.len().max(1) as f64),
        seen_no_match: Some(seen_nm as f64 / split.seen_held_out.len().max(1) as f64),
        seconds,
    }
}

/// BERTopic's clustering (umap-learn + hdbscan) on the same sample, in a Python child process.
fn run_reference(
    python: &str,
    work: &Path,
    name: &str,
    vectors: &[Vec<f32>],
    split: &Split,
) -> Option<Row> {
    let dim = vectors[0].len();
    let input = work.join(format!("{name}.sample.f32"));
    let output = work.join(format!("{name}.reference.i32"));
    let bytes: Vec<u8> = split
        .sample
        .iter()
        .flat_map(|&i| vectors[i].iter().flat_map(|x| x.to_le_bytes()))
        .collect();
    std::fs::write(&input, bytes).expect("write sample");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/intents_reference.py");
    let run = std::process::Command::new(python)
        .arg(&script)
        .arg(&input)
        .arg(dim.to_string())
        .arg(&output)
        .output();
    let run = match run {
        Ok(r) if r.status.success() => r,
        Ok(r) => {
            eprintln!("reference failed: {}", String::from_utf8_lossy(&r.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("reference did not start ({python}): {e}");
            return None;
        }
    };
    let seconds: f64 = String::from_utf8_lossy(&run.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("seconds "))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let labels: Vec<i32> = std::fs::read(&output)
        .expect("reference labels")
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    assert_eq!(
        labels.len(),
        split.sample.len(),
        "one reference label per trace"
    );
    let truth: Vec<i32> = split.sample.iter().map(|&i| split.truth[i]).collect();
    let (ari_all, nmi_all, ari_clustered, nmi_clustered, noise) = partition_scores(&truth, &labels);
    let majority = majorities(&truth, &labels);
    // Held out: nearest cluster centroid in the embedding space (no threshold, as BERTopic).
    let topics = labels
        .iter()
        .copied()
        .max()
        .map_or(0, |m| (m + 1).max(0) as usize);
    let mut centroids = vec![0.0f32; topics * dim];
    for (k, &l) in labels.iter().enumerate() {
        if l >= 0 {
            let row = &mut centroids[l as usize * dim..(l as usize + 1) * dim];
            for (c, x) in row.iter_mut().zip(&vectors[split.sample[k]]) {
                *c += x;
            }
        }
    }
    let correct = split
        .seen_held_out
        .iter()
        .filter(|&&i| {
            let best = (0..topics).max_by(|&a, &b| {
                let score = |t: usize| -> f32 {
                    let c = &centroids[t * dim..(t + 1) * dim];
                    let norm = c.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    c.iter().zip(&vectors[i]).map(|(x, y)| x * y).sum::<f32>() / norm
                };
                score(a).total_cmp(&score(b))
            });
            best.and_then(|t| majority.get(&(t as i32))) == Some(&split.truth[i])
        })
        .count();
    Some(Row {
        ari_all,
        nmi_all,
        ari_clustered,
        nmi_clustered,
        noise,
        noise_before: None,
        topics,
        held_out_accuracy: correct as f64 / split.seen_held_out.len().max(1) as f64,
        unseen_no_match: None,
        seen_no_match: None,
        seconds,
    })
}
