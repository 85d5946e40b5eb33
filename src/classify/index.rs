//! Nearest-centroid lookup over one topic map: an exact scan over a contiguous buffer, or an
//! HNSW graph (`instant-distance`) for maps with many topics. Both return the cosine distance
//! (1 − cos) of unit vectors, so thresholds mean the same whichever index answers.

use super::quantized::{Quantized, has_vnni};
use crate::cluster::vectors::{dot, has_avx2_fma};
use crate::topics::TopicMap;
use instant_distance::{Builder, HnswMap, Search};
use std::cell::RefCell;

/// Topic count from which `IndexKind::Auto` builds an HNSW graph instead of scanning.
///
/// Measured with `cargo bench --bench classify` (release, 2-core VM, HNSW ef_search 32; random
/// unit centroids, queries at cos ≈ 0.7 to one of them), p50 µs per query. "f32 scan" is the
/// AVX2 scan of session 3; "scan" the int8-ranked one used from `QUANTIZED_MIN_TOPICS` topics:
///
/// | topics × dim | f32 scan | scan | HNSW | HNSW build |
/// |--------------|----------|------|------|------------|
/// | 100 × 384    | 2.3      | 1.8  | 17   | 0.1 s      |
/// | 1,000 × 384  | 22       | 8.5  | 105  | 2.7 s      |
/// | 1,000 × 1024 | 59       | 22   | 212  | 7.4 s      |
/// | 10,000 × 384 | 229      |      | 709  | 79 s       |
///
/// The scan won at every size measured, by 3× or more, and builds in milliseconds; there is
/// no crossover up to 10,000 topics (far more than a topic map has). The cutoff is therefore
/// set beyond anything measured: it only guards against a pathological map, where a scan of
/// ≥ 100,000 centroids (≈ 2.3 ms at 384 dims, extrapolated linearly) would be worse than
/// HNSW on embeddings with more structure than the benchmark's random ones.
pub const AUTO_HNSW_MIN_TOPICS: usize = 100_000;

/// Fixed so that the same map always yields the same graph (and the same answers).
const HNSW_SEED: u64 = 0x7ace_70b1c;

/// HNSW tuning (the `ef` parameters of the paper; `M` is fixed at 32 by instant-distance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswParams {
    /// Candidates kept while searching: recall against latency.
    pub ef_search: usize,
    /// Candidates kept while inserting: graph quality against build time.
    pub ef_construction: usize,
}

impl Default for HnswParams {
    /// ef_search 32: recall 1.0000 at 1,000 topics and 0.9998 at 10,000 over 20,000 near-topic
    /// queries in the benchmark (16 was also 1.0000 at 1,000 topics, ~30 % faster, but leaves
    /// no margin); ef_construction 100 is instant-distance's default.
    fn default() -> Self {
        Self {
            ef_search: 32,
            ef_construction: 100,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IndexKind {
    /// Brute force below `AUTO_HNSW_MIN_TOPICS` topics, HNSW from there on.
    #[default]
    Auto,
    BruteForce,
    Hnsw,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassifyError {
    #[error("embedding has {got} dimensions but the topic map's centroids have {expected}")]
    DimensionMismatch { expected: usize, got: usize },
    #[error(
        "topic {topic_id}'s centroid has {got} dimensions but the topic map declares {expected}"
    )]
    BadCentroid {
        topic_id: u32,
        expected: usize,
        got: usize,
    },
}

/// The decision for one embedding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Match {
    /// Index into `TopicMap::topics`; `None` is `no_match`.
    pub topic: Option<usize>,
    /// Cosine distance to the nearest centroid, also reported for `no_match`
    /// (`f32::INFINITY` when the map has no topics).
    pub distance: f32,
}

/// A nearest-centroid index over one topic map, built once per map version.
pub struct CentroidIndex {
    dim: usize,
    /// Per-topic cosine distance thresholds, in `TopicMap::topics` order.
    thresholds: Vec<f32>,
    distance_threshold: f32,
    backend: Backend,
}

enum Backend {
    BruteForce(BruteForce),
    Hnsw(HnswMap<UnitVector, usize>),
}

impl CentroidIndex {
    /// Fails when a centroid's length is not the map's `dim`. Centroids are renormalized, so a
    /// map stored with rounding error still yields distances in [0, 2].
    pub fn build(map: &TopicMap, kind: IndexKind) -> Result<Self, ClassifyError> {
        Self::build_with(map, kind, HnswParams::default())
    }

    /// `build` with explicit HNSW parameters (used only when an HNSW graph is built).
    pub fn build_with(
        map: &TopicMap,
        kind: IndexKind,
        hnsw: HnswParams,
    ) -> Result<Self, ClassifyError> {
        let dim = map.dim;
        let mut data = Vec::with_capacity(map.topics.len() * dim);
        for topic in &map.topics {
            if topic.centroid.len() != dim {
                return Err(ClassifyError::BadCentroid {
                    topic_id: topic.id,
                    expected: dim,
                    got: topic.centroid.len(),
                });
            }
            let norm = dot(&topic.centroid, &topic.centroid).sqrt();
            let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            data.extend(topic.centroid.iter().map(|x| x * scale));
        }
        let use_hnsw = match kind {
            IndexKind::BruteForce => false,
            IndexKind::Hnsw => true,
            IndexKind::Auto => map.topics.len() >= AUTO_HNSW_MIN_TOPICS,
        };
        let backend = if use_hnsw && dim > 0 {
            let points: Vec<UnitVector> = data
                .chunks_exact(dim)
                .map(|row| UnitVector(row.into()))
                .collect();
            let values: Vec<usize> = (0..points.len()).collect();
            Backend::Hnsw(
                Builder::default()
                    .ef_construction(hnsw.ef_construction)
                    .ef_search(hnsw.ef_search)
                    .seed(HNSW_SEED)
                    .build(points, values),
            )
        } else {
            Backend::BruteForce(BruteForce::new(dim, data))
        };
        Ok(Self {
            dim,
            thresholds: map.topics.iter().map(|t| t.threshold).collect(),
            distance_threshold: map.distance_threshold,
            backend,
        })
    }

    pub fn kind(&self) -> IndexKind {
        match self.backend {
            Backend::BruteForce(_) => IndexKind::BruteForce,
            Backend::Hnsw(_) => IndexKind::Hnsw,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.thresholds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }

    /// The nearest topic (index into `TopicMap::topics`) and its cosine distance, for a
    /// unit-length embedding; `None` for a map without topics.
    pub fn nearest(&self, unit_embedding: &[f32]) -> Result<Option<(usize, f32)>, ClassifyError> {
        if unit_embedding.len() != self.dim {
            return Err(ClassifyError::DimensionMismatch {
                expected: self.dim,
                got: unit_embedding.len(),
            });
        }
        if self.is_empty() {
            return Ok(None);
        }
        let found = match &self.backend {
            Backend::BruteForce(scan) => scan.nearest(unit_embedding),
            Backend::Hnsw(map) => hnsw_nearest(map, unit_embedding),
        };
        // Rounding can put 1 − cos a hair outside [0, 2].
        Ok(found.map(|(topic, distance)| (topic, distance.clamp(0.0, 2.0))))
    }

    /// The topic of a unit-length embedding, or `no_match` when the nearest centroid is farther
    /// than the map's global `distance_threshold` or than that topic's own `threshold`.
    pub fn classify(&self, unit_embedding: &[f32]) -> Result<Match, ClassifyError> {
        let Some((topic, distance)) = self.nearest(unit_embedding)? else {
            return Ok(Match {
                topic: None,
                distance: f32::INFINITY,
            });
        };
        let within = distance <= self.distance_threshold && distance <= self.thresholds[topic];
        Ok(Match {
            topic: within.then_some(topic),
            distance,
        })
    }
}

/// Topic count from which the scan first ranks int8 codes of the centroids (where the CPU has
/// AVX-512 VNNI). Below it the f32 rows are small enough that quantizing the query costs more
/// than it saves (`cargo bench --bench classify`: see `bench/classify.rs`).
pub const QUANTIZED_MIN_TOPICS: usize = 64;

/// All centroids row after row, so a query streams through one buffer.
struct BruteForce {
    dim: usize,
    data: Vec<f32>,
    /// Built only where the CPU has AVX-512 VNNI (and so `nearest_vnni` may run).
    quantized: Option<Quantized>,
}

impl BruteForce {
    fn new(dim: usize, data: Vec<f32>) -> Self {
        let topics = data.len().checked_div(dim).unwrap_or(0);
        let quantized =
            (topics >= QUANTIZED_MIN_TOPICS && has_vnni()).then(|| Quantized::new(&data, dim));
        BruteForce {
            dim,
            data,
            quantized,
        }
    }

    /// The default x86-64 target only guarantees SSE2; the whole scan (not each dot product)
    /// is dispatched once to a copy compiled for AVX2+FMA when the CPU has it, so the inner
    /// loop inlines into that copy.
    fn nearest(&self, query: &[f32]) -> Option<(usize, f32)> {
        #[cfg(target_arch = "x86_64")]
        if let Some(quantized) = &self.quantized {
            let dim = self.dim;
            // SAFETY (both): `quantized` is only built when `has_vnni`, which includes AVX2+FMA.
            let exact =
                |r: usize| unsafe { distance_avx2_fma(&self.data[r * dim..(r + 1) * dim], query) };
            if let Some(found) = unsafe { quantized.nearest_vnni(query, exact) } {
                return Some(found);
            }
        }
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2_fma() {
                // SAFETY: the CPU supports the features the function was compiled for.
                return unsafe { scan_avx2_fma(&self.data, self.dim, query) };
            }
        }
        scan::<false>(&self.data, self.dim, query)
    }
}

/// The same arithmetic as one step of `scan::<true>`, so a re-scored row gets the exact
/// distance the full scan would give it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn distance_avx2_fma(row: &[f32], query: &[f32]) -> f32 {
    1.0 - dot_lanes::<true>(row, query)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_avx2_fma(data: &[f32], dim: usize, query: &[f32]) -> Option<(usize, f32)> {
    scan::<true>(data, dim, query)
}

#[inline(always)]
fn scan<const FMA: bool>(data: &[f32], dim: usize, query: &[f32]) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for (topic, row) in data.chunks_exact(dim).enumerate() {
        let distance = 1.0 - dot_lanes::<FMA>(row, query);
        if best.is_none_or(|(_, d)| distance < d) {
            best = Some((topic, distance));
        }
    }
    best
}

/// Independent accumulators: enough for the compiler to keep several SIMD registers busy
/// without one long dependency chain (it does not reassociate float additions for us).
const LANES: usize = 16;

/// Dot product written to auto-vectorize: fixed-size array chunks (no bounds checks in the
/// loop) into `LANES` separate accumulators, then the tail.
#[inline(always)]
fn dot_lanes<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a_chunks, a_tail) = a[..n].as_chunks::<LANES>();
    let (b_chunks, b_tail) = b[..n].as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..LANES {
            acc[lane] = if FMA {
                x[lane].mul_add(y[lane], acc[lane])
            } else {
                acc[lane] + x[lane] * y[lane]
            };
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// A centroid as an HNSW point: distance is 1 − cos of unit vectors.
#[derive(Clone)]
struct UnitVector(Box<[f32]>);

impl instant_distance::Point for UnitVector {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

thread_local! {
    // The search scratch space (visited set, heaps) is reused across queries on a thread, so a
    // lookup does not allocate it anew and `nearest` can take `&self`.
    static HNSW_SEARCH: RefCell<Search> = RefCell::new(Search::default());
}

fn hnsw_nearest(map: &HnswMap<UnitVector, usize>, query: &[f32]) -> Option<(usize, f32)> {
    let query = UnitVector(query.into());
    HNSW_SEARCH.with(|search| {
        let mut search = search.borrow_mut();
        map.search(&query, &mut search)
            .next()
            .map(|item| (*item.value, item.distance))
    })
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
