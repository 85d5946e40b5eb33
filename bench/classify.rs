//! Classification benchmark: latency of one nearest-centroid decision with the embedding in
//! hand (`CentroidIndex::classify`), for maps of 10, 100 and 1,000 topics at 384 and 1024
//! dimensions, brute force and HNSW. Prints build time, p50/p99/max per query in µs and recall
//! against a plain f32 scan written here. Queries are a random centroid plus noise (cos ≈ 0.7 to
//! it), like traces near their topic. `…/grouped` maps put centroids in groups of 10 at
//! cos ≈ 0.85, the harder case for the scan's int8 pruning. Target: p99 ≤ 50 µs.
//!
//! Measured on the 2-core VM, otherwise idle (release; "scan" is int8-ranked with f32
//! re-scoring from 64 topics on, AVX-512 VNNI; max µs are scheduler outliers):
//!
//! | config              | build ms | p50 µs | p99 µs | recall |
//! |---------------------|---------:|-------:|-------:|-------:|
//! | 10x384 scan         |     0.01 |   0.30 |   0.60 | 1      |
//! | 10x384 HNSW         |     0.14 |   1.48 |   1.81 | 1      |
//! | 10x1024 scan        |     0.03 |   1.05 |   1.45 | 1      |
//! | 10x1024 HNSW        |     0.19 |   3.27 |   3.78 | 1      |
//! | 100x384 scan        |     0.26 |   1.88 |   3.23 | 1      |
//! | 100x384 grouped     |     0.24 |   2.99 |   3.53 | 1      |
//! | 100x384 HNSW        |       70 |  17.4  |  24.4  | 1      |
//! | 100x1024 scan       |     0.60 |   4.62 |   7.88 | 1      |
//! | 100x1024 HNSW       |      163 |  28.7  |  48.6  | 1      |
//! | 1000x384 scan       |     2.41 |   8.52 |  10.5  | 1      |
//! | 1000x384 grouped    |     1.53 |   7.58 |   9.61 | 1      |
//! | 1000x384 HNSW       |    1,975 |   132  |   194  | 1      |
//! | 1000x1024 scan      |     8.91 |  21.8  |  28.8  | 1      |
//! | 1000x1024 grouped   |     5.44 |  18.4  |  31.7  | 1      |
//! | 1000x1024 HNSW      |    4,839 |   221  |   313  | 1      |
//! | 10000x384 HNSW      |   79,237 |   709  |  1,396 | 0.9998 | (session 3)
//!
//! Before the int8 ranking the f32 AVX2 scan took 22.0 / 26–46 µs at 1000x384 and
//! 58.9 / ~100 µs at 1000x1024 (4 MB of rows streamed from L3 per query).
//!
//!   cargo bench --bench classify
//!   cargo bench --bench classify -- 1000x1024      # only names containing every word
//!   cargo bench --bench classify -- 10000x384      # larger maps, only when asked for
//!   CLASSIFY_BENCH_EF=16 cargo bench --bench classify   # HNSW ef_search (default 32)

use std::hint::black_box;
use std::time::Instant;
use tracetopics::classify::synthetic::{grouped_map, near, random_map};
use tracetopics::classify::{CentroidIndex, HnswParams, IndexKind};
use tracetopics::cluster::vectors::dot;

const TOPICS: [usize; 3] = [10, 100, 1_000];
/// Only run when named on the command line: an HNSW build takes tens of seconds here.
const LARGE_TOPICS: [usize; 2] = [5_000, 10_000];
const DIMS: [usize; 2] = [384, 1024];
const KINDS: [IndexKind; 2] = [IndexKind::BruteForce, IndexKind::Hnsw];
const QUERIES: usize = 20_000;
const WARMUP: usize = 1_000;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut hnsw = HnswParams::default();
    if let Some(ef) = std::env::var("CLASSIFY_BENCH_EF")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        hnsw.ef_search = ef;
    }
    println!("HNSW {hnsw:?}");
    println!(
        "{:<22} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "config", "build ms", "p50 µs", "p99 µs", "max µs", "recall"
    );
    let asked_large = |topics: usize| args.iter().any(|a| a.starts_with(&format!("{topics}x")));
    let sizes = TOPICS
        .into_iter()
        .chain(LARGE_TOPICS.into_iter().filter(|t| asked_large(*t)));
    // "grouped": centroids in groups of 10 at cos ≈ 0.85, as related topics of a real map sit;
    // only the scan is timed on it (it is the case where its pruning has most to re-score).
    let variants: [(&str, &[IndexKind]); 2] =
        [("", &KINDS), ("/grouped", &[IndexKind::BruteForce])];
    for topics in sizes {
        for dim in DIMS {
            for (variant, kinds) in variants {
                let name_of = |kind: IndexKind| format!("{topics}x{dim}/{kind:?}{variant}");
                let wanted = |kind: &IndexKind| {
                    let name = name_of(*kind);
                    args.iter().all(|word| name.contains(word.as_str()))
                };
                if !kinds.iter().any(wanted) {
                    continue;
                }
                let map = if variant.is_empty() {
                    random_map(topics, dim, 42)
                } else {
                    grouped_map(topics, dim, 10, 42)
                };
                let mut rng = fastrand::Rng::with_seed(7);
                let queries: Vec<Vec<f32>> = (0..QUERIES)
                    .map(|_| {
                        let t = rng.usize(..topics);
                        near(&mut rng, &map.topics[t].centroid, 1.0)
                    })
                    .collect();
                // The reference answer: a plain f32 scan, independent of the index code.
                let exact_topic = |q: &[f32]| {
                    map.topics
                        .iter()
                        .map(|t| 1.0 - dot(&t.centroid, q))
                        .enumerate()
                        .min_by(|a, b| a.1.total_cmp(&b.1))
                        .map(|(t, _)| t)
                };
                for &kind in kinds {
                    let name = name_of(kind);
                    if !args.iter().all(|word| name.contains(word.as_str())) {
                        continue;
                    }
                    let started = Instant::now();
                    let index = CentroidIndex::build_with(&map, kind, hnsw).expect("build");
                    let build_ms = started.elapsed().as_secs_f64() * 1e3;
                    for q in queries.iter().take(WARMUP) {
                        black_box(index.classify(q).expect("classify"));
                    }
                    let mut micros: Vec<f64> = Vec::with_capacity(QUERIES);
                    for q in &queries {
                        let started = Instant::now();
                        black_box(index.classify(black_box(q)).expect("classify"));
                        micros.push(started.elapsed().as_secs_f64() * 1e6);
                    }
                    // Recall in a separate pass, so the exact index does not evict the timed one.
                    let agree = queries
                        .iter()
                        .filter(|q| {
                            index.nearest(q).expect("nearest").map(|t| t.0) == exact_topic(q)
                        })
                        .count();
                    micros.sort_by(f64::total_cmp);
                    let pct = |p: f64| micros[((micros.len() - 1) as f64 * p).round() as usize];
                    println!(
                        "{name:<22} {build_ms:>10.2} {:>8.2} {:>8.2} {:>8.1} {:>8.4}",
                        pct(0.50),
                        pct(0.99),
                        micros[micros.len() - 1],
                        agree as f64 / QUERIES as f64
                    );
                }
            }
        }
    }
}
