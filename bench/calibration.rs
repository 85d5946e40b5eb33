//! Opt-in check of no-match thresholds and outlier reassignment on real labelled intents (not
//! part of CI). Needs pre-computed embeddings: `<dir>/<corpus>.npy` (float32 n × d, L2-normalized
//! rows, as numpy saves them) and `<dir>/<corpus>.labels.txt` (one intent per row), e.g. the
//! first user utterances of HWU64 or SGD embedded by multilingual-e5-small.
//!
//! Whole intents are held out (a fifth of them, per seed): the map is built from 80 % of the
//! other intents' traces through the real topics code path (`regenerate::cluster_sample`:
//! clustering, threshold calibration, outlier reassignment), and every remaining trace is
//! classified by `classify::CentroidIndex` with the map's thresholds. Printed per threshold
//! setting: topics, noise before / after reassignment, the share of held-out traces of seen
//! intents whose topic's majority intent is theirs (and that got `no_match`), and the share of
//! traces of unseen intents that got `no_match`. The former defaults (quantile rule, floor 0.1,
//! global 0.8) run first as the baseline.
//!
//!   CALIBRATION_DATA=/work/cache cargo bench --bench calibration
//!   CALIBRATION_CORPORA=hwu64,sgd (default)  CALIBRATION_SEEDS=3  CALIBRATION_WEIGHTS=3
//!   CALIBRATION_MIN_CLUSTER_SIZE=10 CALIBRATION_MIN_SAMPLES=5 (default: the shipped, sample-scaled settings)

use std::collections::HashMap;
use std::time::Instant;
use tracetopics::classify::{CentroidIndex, IndexKind};
use tracetopics::cluster::vectors::mix_seed;
use tracetopics::cluster::{Algorithm, ClusterConfig};
use tracetopics::topics::config::{ThresholdMethod, TopicsConfig};
use tracetopics::topics::regenerate::{Sample, cluster_sample};
use tracetopics::topics::{Topic, TopicMap};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A numpy `.npy` file of float32 rows: (values, rows, columns).
fn read_npy(path: &std::path::Path) -> Result<(Vec<f32>, usize, usize), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("{} is not a .npy file", path.display()));
    }
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        )
    };
    let header =
        std::str::from_utf8(&bytes[start..start + header_len]).map_err(|e| e.to_string())?;
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(format!(
            "{}: want little-endian float32 C order, got {header}",
            path.display()
        ));
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let [rows, cols] = dims[..] else {
        return Err(format!("shape ({shape}) is not 2-D"));
    };
    let values: Vec<f32> = bytes[start + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if values.len() != rows * cols {
        return Err("size does not match the shape".into());
    }
    Ok((values, rows, cols))
}

struct Corpus {
    name: String,
    vectors: Vec<f32>,
    dim: usize,
    labels: Vec<String>,
}

fn load(dir: &std::path::Path, name: &str) -> Result<Corpus, String> {
    let (vectors, rows, dim) = read_npy(&dir.join(format!("{name}.npy")))?;
    let labels_path = dir.join(format!("{name}.labels.txt"));
    let labels: Vec<String> = std::fs::read_to_string(&labels_path)
        .map_err(|e| format!("{}: {e}", labels_path.display()))?
        .lines()
        .map(str::to_string)
        .take(rows)
        .collect();
    if labels.len() != rows {
        return Err(format!("{} labels for {rows} rows", labels.len()));
    }
    Ok(Corpus {
        name: name.into(),
        vectors,
        dim,
        labels,
    })
}

/// One threshold setting to measure.
struct Setting {
    name: String,
    config: TopicsConfig,
}

fn settings(weights: &[f32]) -> Vec<Setting> {
    let mut former = TopicsConfig::default();
    former.distance_threshold = Some(0.8);
    former.topic_threshold.method = ThresholdMethod::Quantile;
    former.topic_threshold.floor = Some(0.1);
    let mut out = vec![Setting {
        name: "former defaults (p95×1.2, floor 0.1, global 0.8)".into(),
        config: former,
    }];
    let mut quantile = TopicsConfig::default();
    quantile.topic_threshold.method = ThresholdMethod::Quantile;
    out.push(Setting {
        name: "quantile p95×1.2, learned global".into(),
        config: quantile,
    });
    for &w in weights {
        let mut c = TopicsConfig::default();
        c.topic_threshold.member_weight = w;
        out.push(Setting {
            name: format!("calibrated, member_weight {w}"),
            config: c,
        });
    }
    out
}

#[derive(Default)]
struct Figures {
    topics: f64,
    noise_before: f64,
    noise_after: f64,
    seen_correct: f64,
    seen_no_match: f64,
    unseen_no_match: f64,
    global: f64,
    median_threshold: f64,
    seconds: f64,
}

fn run(corpus: &Corpus, seed: u64, clustering: &ClusterConfig, setting: &Setting) -> Figures {
    let started = Instant::now();
    let mut intents: Vec<&String> = corpus.labels.iter().collect();
    intents.sort();
    intents.dedup();
    let mut order: Vec<(u64, &String)> = intents
        .iter()
        .map(|i| {
            let h = i.bytes().fold(0u64, |h, b| mix_seed(h, u64::from(b), 1));
            (mix_seed(seed, h, 2), *i)
        })
        .collect();
    order.sort();
    let unseen: std::collections::HashSet<&String> = order
        .iter()
        .take(intents.len() / 5)
        .map(|(_, i)| *i)
        .collect();
    let (mut train, mut test, mut held_out) = (Vec::new(), Vec::new(), Vec::new());
    for (row, label) in corpus.labels.iter().enumerate() {
        if unseen.contains(label) {
            held_out.push(row);
        } else if mix_seed(seed, row as u64, 3) % 5 == 0 {
            test.push(row);
        } else {
            train.push(row);
        }
    }
    train.truncate(clustering.sample_size);
    let dim = corpus.dim;
    let row = |r: usize| &corpus.vectors[r * dim..(r + 1) * dim];
    let sample = Sample {
        trace_ids: train
            .iter()
            .map(|&r| {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&(r as u64).to_le_bytes());
                id
            })
            .collect(),
        texts: train.iter().map(|r| format!("row {r}")).collect(),
        vectors: train.iter().flat_map(|&r| row(r).iter().copied()).collect(),
        dim,
        available: train.len(),
    };
    let clustered =
        cluster_sample(&sample, clustering, &setting.config, &|_, _| {}).expect("map builds");
    // The majority intent of every topic, over its members (reassigned ones included).
    let mut votes: Vec<HashMap<&String, usize>> = vec![HashMap::new(); clustered.topics.len()];
    for (&r, &l) in train.iter().zip(&clustered.labels) {
        if l >= 0 {
            *votes[l as usize].entry(&corpus.labels[r]).or_default() += 1;
        }
    }
    let majority: Vec<Option<&String>> = votes
        .iter()
        .map(|v| v.iter().max_by_key(|(i, n)| (**n, *i)).map(|(i, _)| *i))
        .collect();
    let mut thresholds: Vec<f32> = clustered.topics.iter().map(|t| t.threshold).collect();
    thresholds.sort_by(f32::total_cmp);
    let map = TopicMap {
        facet: "task".into(),
        version: 1,
        created_ms: 0,
        embedding_model: corpus.name.clone(),
        dim,
        params: clustering.clone(),
        sample: train.len(),
        noise_share: clustered.noise_share,
        noise_before_reassignment: Some(clustered.noise_before),
        distance_threshold: clustered.distance_threshold,
        topics: clustered.topics,
        changes: None,
    };
    let index = CentroidIndex::build(&map, IndexKind::BruteForce).expect("index");
    let topic_of = |r: usize| index.classify(row(r)).expect("classifies").topic;
    let (mut correct, mut seen_none) = (0usize, 0usize);
    for &r in &test {
        match topic_of(r) {
            Some(t) if majority[t] == Some(&corpus.labels[r]) => correct += 1,
            Some(_) => {}
            None => seen_none += 1,
        }
    }
    let unseen_none = held_out.iter().filter(|&&r| topic_of(r).is_none()).count();
    let _: &[Topic] = &map.topics;
    Figures {
        topics: map.topics.len() as f64,
        noise_before: f64::from(clustered.noise_before),
        noise_after: f64::from(clustered.noise_share),
        seen_correct: correct as f64 / test.len().max(1) as f64,
        seen_no_match: seen_none as f64 / test.len().max(1) as f64,
        unseen_no_match: unseen_none as f64 / held_out.len().max(1) as f64,
        global: f64::from(map.distance_threshold),
        median_threshold: thresholds
            .get(thresholds.len() / 2)
            .map_or(0.0, |&t| f64::from(t)),
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn main() {
    let Ok(dir) = std::env::var("CALIBRATION_DATA") else {
        println!(
            "calibration bench skipped: set CALIBRATION_DATA to a directory with <corpus>.npy and <corpus>.labels.txt"
        );
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let corpora: String = env("CALIBRATION_CORPORA", "hwu64,sgd".to_string());
    let seeds: u64 = env("CALIBRATION_SEEDS", 3);
    let weights: Vec<f32> = env("CALIBRATION_WEIGHTS", "3".to_string())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let mut clustering = ClusterConfig::default();
    if let Algorithm::Hdbscan(h) = &mut clustering.algorithm {
        if let Ok(v) = std::env::var("CALIBRATION_MIN_CLUSTER_SIZE") {
            h.min_cluster_size = v.parse().ok();
        }
        if let Ok(v) = std::env::var("CALIBRATION_MIN_SAMPLES") {
            h.min_samples = v.parse().ok();
        }
    }
    println!(
        "no-match calibration: a fifth of the intents held out, map from 80 % of the rest, {seeds} seed(s); clustering {:?}",
        clustering.algorithm
    );
    for name in corpora.split(',') {
        let corpus = match load(&dir, name.trim()) {
            Ok(c) => c,
            Err(e) => {
                println!("{name}: skipped ({e})");
                continue;
            }
        };
        println!(
            "\n{}: {} traces, {} dims",
            corpus.name,
            corpus.labels.len(),
            corpus.dim
        );
        println!(
            "{:<52} {:>6} {:>7} {:>7} {:>9} {:>9} {:>9} {:>7} {:>7} {:>6}",
            "thresholds",
            "topics",
            "noise0",
            "noise",
            "seen ok",
            "seen nm",
            "unseen nm",
            "global",
            "med t",
            "s"
        );
        for setting in settings(&weights) {
            let mut sum = Figures::default();
            for seed in 0..seeds {
                let f = run(&corpus, seed + 1, &clustering, &setting);
                sum.topics += f.topics;
                sum.noise_before += f.noise_before;
                sum.noise_after += f.noise_after;
                sum.seen_correct += f.seen_correct;
                sum.seen_no_match += f.seen_no_match;
                sum.unseen_no_match += f.unseen_no_match;
                sum.global += f.global;
                sum.median_threshold += f.median_threshold;
                sum.seconds += f.seconds;
            }
            let k = seeds.max(1) as f64;
            println!(
                "{:<52} {:>6.0} {:>6.1}% {:>6.1}% {:>8.1}% {:>8.1}% {:>8.1}% {:>7.3} {:>7.3} {:>6.1}",
                setting.name,
                sum.topics / k,
                sum.noise_before / k * 100.0,
                sum.noise_after / k * 100.0,
                sum.seen_correct / k * 100.0,
                sum.seen_no_match / k * 100.0,
                sum.unseen_no_match / k * 100.0,
                sum.global / k,
                sum.median_threshold / k,
                sum.seconds / k
            );
        }
    }
}
