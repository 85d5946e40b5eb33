//! Topic-engine benchmark: time, peak memory and quality of `build_clusters` on generated data
//! shaped like the measurement data in the notes (40 power-law topics in 8 super-topics, 8 %
//! singletons), at 10k and 50k points, 384 and 1024 dimensions, for UMAP+HDBSCAN, PCA+HDBSCAN
//! and K-Means on the raw vectors.
//!
//! Every configuration runs in a child process, so the peak RSS (VmHWM) is that configuration's
//! own (it includes the generated input: n × dim × 4 bytes).
//!
//!   cargo bench --bench cluster                      # everything
//!   cargo bench --bench cluster -- 50000x1024 umap   # only names containing every word
//!   CLUSTER_BENCH_RECALL=1 cargo bench --bench cluster -- 10000x384 umap   # + kNN recall
//!   CLUSTER_BENCH_EPOCHS=100 …                       # override UMAP epochs

use std::process::Command;
use std::time::Instant;
use tracetopics::cluster::synthetic::{SyntheticSpec, generate};
use tracetopics::cluster::{
    Algorithm, ClusterConfig, HdbscanConfig, KmeansConfig, PcaConfig, Reduction, Stage, UmapConfig,
    build_clusters, clean_adjusted_rand_index, knn, normalized_mutual_info,
};

const SIZES: [usize; 2] = [10_000, 50_000];
const DIMS: [usize; 2] = [384, 1024];
const METHODS: [&str; 3] = ["umap+hdbscan", "pca+hdbscan", "kmeans(raw)"];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--child") {
        run_child(&args[1]);
        return;
    }
    let names: Vec<String> = SIZES
        .iter()
        .flat_map(|n| {
            DIMS.iter()
                .flat_map(move |d| METHODS.iter().map(move |m| format!("{n}x{d}/{m}")))
        })
        .filter(|name| args.iter().all(|word| name.contains(word.as_str())))
        .collect();
    if names.is_empty() {
        eprintln!("no configuration matches {args:?}");
        std::process::exit(2);
    }
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    println!("topic engine benchmark ({threads} threads); every row is a fresh child process");
    println!(
        "{:<26} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>8} {:>6} {:>6} {:>6} {:>6} {:>5} {:>7}",
        "config",
        "gen s",
        "knn",
        "graph",
        "layout",
        "pca",
        "clust",
        "summ+kw",
        "2d",
        "total s",
        "RSS MB",
        "ARI",
        "cARI",
        "NMI",
        "k",
        "noise%"
    );
    let exe = std::env::current_exe().expect("own path");
    for name in names {
        let output = Command::new(&exe)
            .args(["--child", &name])
            .output()
            .expect("run child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        match stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) {
            Some(line) => println!("{line}"),
            None => println!(
                "{name:<26} failed: {}",
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        }
        for extra in stdout.lines().filter(|l| l.starts_with("NOTE ")) {
            println!("  {}", &extra[5..]);
        }
    }
}

fn run_child(name: &str) {
    let (size, method) = name.split_once('/').expect("name is NxD/method");
    let (n, dim) = size.split_once('x').expect("NxD");
    let (n, dim): (usize, usize) = (n.parse().unwrap(), dim.parse().unwrap());

    let started = Instant::now();
    let data = generate(&SyntheticSpec::benchmark(n, dim, 7));
    let gen_seconds = started.elapsed().as_secs_f64();

    let epochs = std::env::var("CLUSTER_BENCH_EPOCHS")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut cfg = ClusterConfig::default();
    match method {
        "umap+hdbscan" => {
            let mut u = UmapConfig::default();
            if let Some(e) = epochs {
                u.n_epochs = Some(e);
            }
            cfg.reduction = Reduction::Umap(u);
        }
        "pca+hdbscan" => cfg.reduction = Reduction::Pca(PcaConfig::default()),
        "kmeans(raw)" => {
            cfg.reduction = Reduction::None;
            cfg.algorithm = Algorithm::Kmeans(KmeansConfig::default());
        }
        other => panic!("unknown method {other}"),
    }
    if !matches!(cfg.algorithm, Algorithm::Kmeans(_)) {
        cfg.algorithm = Algorithm::Hdbscan(HdbscanConfig::default());
    }
    let result =
        build_clusters(&data.vectors, dim, Some(&data.texts), &cfg, &|_, _| {}).expect("build");
    let seconds = |stages: &[Stage]| -> f64 {
        result
            .timings
            .iter()
            .filter(|t| stages.contains(&t.stage))
            .map(|t| t.seconds)
            .sum()
    };
    let ari = tracetopics::cluster::adjusted_rand_index(&data.labels, &result.labels);
    let clean = clean_adjusted_rand_index(&data.labels, &result.labels);
    let nmi = normalized_mutual_info(&data.labels, &result.labels);
    println!(
        "RESULT {:<26} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>7.2} {:>7.2} {:>8.2} {:>6.0} {:>6.3} {:>6.3} {:>6.3} {:>5} {:>7.2}",
        name,
        gen_seconds,
        seconds(&[Stage::Knn]),
        seconds(&[Stage::Graph]),
        seconds(&[Stage::Layout]),
        seconds(&[Stage::Pca]),
        seconds(&[Stage::Cluster]),
        seconds(&[Stage::Summaries, Stage::Keywords, Stage::Validate]),
        seconds(&[Stage::Layout2d]),
        result.total_seconds(),
        peak_rss_mb(),
        ari,
        clean,
        nmi,
        result.n_clusters(),
        100.0 * result.noise_share,
    );
    if std::env::var("CLUSTER_BENCH_RECALL").is_ok() && method.starts_with("umap") {
        let t = Instant::now();
        let approx = knn::build_knn(&data.vectors, dim, 14, 42);
        let knn_seconds = t.elapsed().as_secs_f64();
        // Exact neighbours of 500 points by brute force over all points.
        let mut hits = 0;
        let probes: Vec<usize> = (0..500).map(|i| i * (n / 500)).collect();
        for &i in &probes {
            let row = &data.vectors[i * dim..(i + 1) * dim];
            let mut all: Vec<(f32, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    (
                        -tracetopics::cluster::vectors::dot(
                            row,
                            &data.vectors[j * dim..(j + 1) * dim],
                        ),
                        j as u32,
                    )
                })
                .collect();
            all.select_nth_unstable_by(14, |a, b| a.0.total_cmp(&b.0));
            let truth: Vec<u32> = all[..14].iter().map(|p| p.1).collect();
            hits += approx
                .neighbors(i)
                .iter()
                .filter(|j| truth.contains(j))
                .count();
        }
        println!(
            "NOTE kNN alone: {knn_seconds:.2} s, recall@14 on 500 probes {:.3}",
            hits as f64 / (500.0 * 14.0)
        );
    }
}

/// Peak resident set size of this process in MB (VmHWM).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
