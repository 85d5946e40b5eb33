//! NN-descent (pynndescent's algorithm) on the int8 copy of the rows.
//!
//! 1. A forest of random-projection trees: every pair inside a leaf is a candidate.
//! 2. Rounds of local joins: each point's sampled new and old candidates (both directions of the
//!    current lists) are compared pairwise, and closer pairs enter both lists; stop once fewer
//!    than `delta · n · k` entries changed in a round.
//! 3. The final k distances per point are recomputed exactly in `f32` and sorted.
//!
//! Distances during the search come from [`I8Rows`] (4× fewer bytes per row and VNNI dot
//! products); they only rank candidates.
//!
//! Every step runs in parallel and is still deterministic for a seed: random choices are hashes
//! of (seed, round, entry), every list is owned by one fixed block of points, and the proposals
//! of a round are applied per block in the fixed order of the chunks that found them.

use super::knn::{KnnGraph, NnDescentParams};
use super::quantized::I8Rows;
use super::rptree::{Leaves, rp_tree_leaves};
use super::vectors::{dot, mix_seed};
use rayon::prelude::*;

/// Points per block that owns its neighbour and candidate lists (fixed, so results do not
/// depend on the thread count).
const BLOCK: usize = 2048;
/// Points per local-join work unit.
const JOIN_CHUNK: usize = 256;

/// The per-point lists of one block: max-heaps of (distance, index, is-new), stored flat.
struct HeapRows<'a> {
    k: usize,
    indices: &'a mut [i32],
    distances: &'a mut [f32],
    is_new: &'a mut [bool],
}

impl HeapRows<'_> {
    /// Inserts `j` into local row `r` if closer than its worst entry and not present yet.
    fn push(&mut self, r: usize, j: u32, d: f32) -> bool {
        let base = r * self.k;
        let range = base..base + self.k;
        if d >= self.distances[base] || self.indices[range.clone()].contains(&(j as i32)) {
            return false;
        }
        sift_down_replace(
            &mut self.distances[range.clone()],
            &mut self.indices[range.clone()],
            Some(&mut self.is_new[range]),
            d,
            j as i32,
        );
        true
    }
}

/// Replaces the root of a max-heap and restores the heap property; a new entry is flagged new.
fn sift_down_replace(
    keys: &mut [f32],
    values: &mut [i32],
    mut flags: Option<&mut [bool]>,
    key: f32,
    value: i32,
) {
    let len = keys.len();
    let mut pos = 0;
    loop {
        let left = 2 * pos + 1;
        if left >= len {
            break;
        }
        let right = left + 1;
        let child = if right < len && keys[right] > keys[left] {
            right
        } else {
            left
        };
        if keys[child] <= key {
            break;
        }
        keys[pos] = keys[child];
        values[pos] = values[child];
        if let Some(f) = flags.as_deref_mut() {
            f[pos] = f[child];
        }
        pos = child;
    }
    keys[pos] = key;
    values[pos] = value;
    if let Some(f) = flags {
        f[pos] = true;
    }
}

/// All neighbour lists.
struct Heaps {
    k: usize,
    indices: Vec<i32>,
    distances: Vec<f32>,
    is_new: Vec<bool>,
}

impl Heaps {
    /// The lists split into blocks of `BLOCK` points, with each block's first point.
    fn blocks_mut(&mut self) -> impl IndexedParallelIterator<Item = (usize, HeapRows<'_>)> {
        let k = self.k;
        self.indices
            .par_chunks_mut(BLOCK * k)
            .zip(self.distances.par_chunks_mut(BLOCK * k))
            .zip(self.is_new.par_chunks_mut(BLOCK * k))
            .enumerate()
            .map(move |(b, ((indices, distances), is_new))| {
                (
                    b * BLOCK,
                    HeapRows {
                        k,
                        indices,
                        distances,
                        is_new,
                    },
                )
            })
    }

    fn worst(&self, i: usize) -> f32 {
        self.distances[i * self.k]
    }
}

/// Sampled candidate lists of one round (`cap` per point; -1 = empty).
struct Candidates {
    cap: usize,
    new: Vec<i32>,
    old: Vec<i32>,
}

impl Candidates {
    fn row<'a>(list: &'a [i32], cap: usize, i: usize) -> impl Iterator<Item = u32> + 'a {
        list[i * cap..(i + 1) * cap]
            .iter()
            .filter(|&&j| j >= 0)
            .map(|&j| j as u32)
    }
}

/// A proposal (target list, candidate, distance), grouped by the target's block.
type Update = (u32, u32, f32);

/// Approximate k nearest neighbours by NN-descent seeded with a random-projection forest.
pub fn nn_descent(
    data: &[f32],
    dim: usize,
    k: usize,
    params: &NnDescentParams,
    seed: u64,
) -> KnnGraph {
    let n = data.len() / dim;
    let k = k.min(n.saturating_sub(1));
    let rows = I8Rows::quantize(data, dim);
    let mut heaps = Heaps {
        k,
        indices: vec![-1; n * k],
        distances: vec![f32::INFINITY; n * k],
        is_new: vec![false; n * k],
    };
    if k == 0 {
        return finish(data, dim, n, k, &heaps);
    }

    forest_start(&rows, &mut heaps, params, seed);

    let threshold = (params.delta as f64 * n as f64 * k as f64) as usize;
    for round in 0..params.max_iterations {
        let candidates = sample_candidates(&mut heaps, params.max_candidates, seed, round);
        let updates = local_joins(&rows, &heaps, &candidates);
        let changed = apply_updates(&mut heaps, &updates);

        tracing::debug!(round, changed, "nn-descent round");
        if changed <= threshold {
            break;
        }
    }
    finish(data, dim, n, k, &heaps)
}

/// One tree's leaves with each leaf's full distance matrix.
struct TreeStart {
    leaves: Leaves,
    /// Leaf of every point.
    leaf_of: Vec<u32>,
    /// Leaf l's len × len matrix is `matrices[offsets[l]..offsets[l + 1]]`.
    matrices: Vec<f32>,
    offsets: Vec<usize>,
}

/// Fills every list from the leaves of the forest (then random points where still empty).
fn forest_start(rows: &I8Rows, heaps: &mut Heaps, params: &NnDescentParams, seed: u64) {
    let n = rows.len();
    let forest: Vec<TreeStart> = (0..params.n_trees)
        .into_par_iter()
        .map(|t| {
            let leaves = rp_tree_leaves(rows, params.leaf_size, mix_seed(seed, 1, t as u64));
            // Per leaf, its full distance matrix (both halves from one computation).
            let mut leaf_of = vec![0u32; n];
            let mut offsets = Vec::with_capacity(leaves.count() + 1);
            offsets.push(0usize);
            for l in 0..leaves.count() {
                let len = leaves.leaf(l).len();
                offsets.push(offsets[l] + len * len);
            }
            let mut matrices = vec![0.0f32; offsets[leaves.count()]];
            let mut row = Vec::new();
            for l in 0..leaves.count() {
                let leaf = leaves.leaf(l);
                let len = leaf.len();
                let m = &mut matrices[offsets[l]..offsets[l + 1]];
                for (a, &p) in leaf.iter().enumerate() {
                    leaf_of[p as usize] = l as u32;
                    row.resize(len - a - 1, 0.0);
                    rows.distances(p as usize, &leaf[a + 1..], &mut row);
                    for (b, &d) in (a + 1..len).zip(&row) {
                        m[a * len + b] = d;
                        m[b * len + a] = d;
                    }
                }
            }
            TreeStart {
                leaves,
                leaf_of,
                matrices,
                offsets,
            }
        })
        .collect();

    heaps.blocks_mut().for_each(|(first, mut block)| {
        let count = block.distances.len() / block.k;
        for r in 0..count {
            let i = first + r;
            for tree in &forest {
                let (leaves, leaf_of) = (&tree.leaves, &tree.leaf_of);
                let (matrices, offsets) = (&tree.matrices, &tree.offsets);
                let l = leaf_of[i] as usize;
                let leaf = leaves.leaf(l);
                let len = leaf.len();
                let a = leaf
                    .iter()
                    .position(|&p| p as usize == i)
                    .expect("point in its leaf");
                let dists = &matrices[offsets[l] + a * len..offsets[l] + (a + 1) * len];
                for (b, (&q, &d)) in leaf.iter().zip(dists).enumerate() {
                    if b != a {
                        block.push(r, q, d);
                    }
                }
            }
            // Points that no leaf paired up (tiny leaves) still need k entries to start from.
            let mut rng = fastrand::Rng::with_seed(mix_seed(seed, 2, i as u64));
            let mut tries = 0;
            let mut d = [0.0f32];
            while block.distances[r * block.k].is_infinite() && tries < 4 * block.k {
                let j = rng.usize(0..n);
                if j != i {
                    rows.distances(i, &[j as u32], &mut d);
                    block.push(r, j as u32, d[0]);
                }
                tries += 1;
            }
        }
    });
}

/// Samples up to `cap` new and `cap` old candidates per point from both directions of the
/// lists (random priorities: the kept ones are a uniform sample), and marks the sampled new
/// entries as old for later rounds.
fn sample_candidates(heaps: &mut Heaps, cap: usize, seed: u64, round: usize) -> Candidates {
    let n = heaps.indices.len() / heaps.k.max(1);
    let k = heaps.k;
    let round_seed = mix_seed(seed, 3, round as u64);
    let mut new = vec![-1i32; n * cap];
    let mut old = vec![-1i32; n * cap];
    let (indices, is_new) = (&heaps.indices, &heaps.is_new);
    // Reverse lists by counting sort: for every point, the entries (i, slot) that name it.
    let mut rev_offsets = vec![0u32; n + 1];
    for &j in indices {
        if j >= 0 {
            rev_offsets[j as usize + 1] += 1;
        }
    }
    for i in 0..n {
        rev_offsets[i + 1] += rev_offsets[i];
    }
    let mut fill = rev_offsets.clone();
    let mut rev = vec![0u32; rev_offsets[n] as usize];
    for (e, &j) in indices.iter().enumerate() {
        if j >= 0 {
            rev[fill[j as usize] as usize] = e as u32;
            fill[j as usize] += 1;
        }
    }
    new.par_chunks_mut(BLOCK * cap)
        .zip(old.par_chunks_mut(BLOCK * cap))
        .enumerate()
        .for_each(|(b, (new_block, old_block))| {
            let mut new_prio = vec![f32::INFINITY; new_block.len()];
            let mut old_prio = vec![f32::INFINITY; old_block.len()];
            for r in 0..new_block.len() / cap {
                let target = b * BLOCK + r;
                let range = r * cap..(r + 1) * cap;
                let (new_list, new_p) =
                    (&mut new_block[range.clone()], &mut new_prio[range.clone()]);
                let (old_list, old_p) = (&mut old_block[range.clone()], &mut old_prio[range]);
                let forward = (target * k..(target + 1) * k).map(|e| (e, indices[e]));
                let reverse = rev[rev_offsets[target] as usize..rev_offsets[target + 1] as usize]
                    .iter()
                    .map(|&e| (e as usize, (e as usize / k) as i32));
                for (e, j) in forward.chain(reverse) {
                    if j < 0 {
                        continue;
                    }
                    // The same priority for both directions of an entry, as pynndescent does.
                    let priority = (mix_seed(round_seed, e as u64, 0) >> 40) as f32;
                    let (list, prio) = if is_new[e] {
                        (&mut *new_list, &mut *new_p)
                    } else {
                        (&mut *old_list, &mut *old_p)
                    };
                    if priority < prio[0] && !list.contains(&j) {
                        sift_down_replace(prio, list, None, priority, j);
                    }
                }
            }
        });
    // Entries sampled as new candidates have now been "seen": later rounds treat them as old.
    heaps
        .indices
        .par_chunks(k)
        .zip(heaps.is_new.par_chunks_mut(k))
        .enumerate()
        .for_each(|(i, (row, flags))| {
            let sampled = &new[i * cap..(i + 1) * cap];
            for (&j, flag) in row.iter().zip(flags.iter_mut()) {
                if *flag && j >= 0 && sampled.contains(&j) {
                    *flag = false;
                }
            }
        });
    Candidates { cap, new, old }
}

/// Compares every point's new candidates with each other and with its old ones; returns the
/// pairs that would improve a list, per join chunk and per target block.
fn local_joins(rows: &I8Rows, heaps: &Heaps, candidates: &Candidates) -> Vec<Vec<Vec<Update>>> {
    let n = rows.len();
    let blocks = n.div_ceil(BLOCK);
    let cap = candidates.cap;
    (0..n.div_ceil(JOIN_CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let mut out: Vec<Vec<Update>> = vec![Vec::new(); blocks];
            let (mut new_row, mut old_row) = (Vec::with_capacity(cap), Vec::with_capacity(cap));
            let mut others = Vec::with_capacity(2 * cap);
            let mut dists = vec![0.0f32; 2 * cap];
            for i in chunk * JOIN_CHUNK..((chunk + 1) * JOIN_CHUNK).min(n) {
                new_row.clear();
                new_row.extend(Candidates::row(&candidates.new, cap, i));
                old_row.clear();
                old_row.extend(Candidates::row(&candidates.old, cap, i));
                for (a, &p) in new_row.iter().enumerate() {
                    others.clear();
                    others.extend(
                        new_row[a + 1..]
                            .iter()
                            .chain(&old_row)
                            .copied()
                            .filter(|&q| q != p),
                    );
                    rows.distances(p as usize, &others, &mut dists);
                    let p_worst = heaps.worst(p as usize);
                    for (&q, &d) in others.iter().zip(&dists) {
                        if d < p_worst {
                            out[p as usize / BLOCK].push((p, q, d));
                        }
                        if d < heaps.worst(q as usize) {
                            out[q as usize / BLOCK].push((q, p, d));
                        }
                    }
                }
            }
            out
        })
        .collect()
}

/// Applies the proposals block by block in parallel, each block in chunk order; returns how many
/// list entries changed.
fn apply_updates(heaps: &mut Heaps, updates: &[Vec<Vec<Update>>]) -> usize {
    heaps
        .blocks_mut()
        .map(|(first, mut block)| {
            let b = first / BLOCK;
            let mut changed = 0;
            for chunk in updates {
                for &(p, q, d) in &chunk[b] {
                    changed += usize::from(block.push(p as usize - first, q, d));
                }
            }
            changed
        })
        .sum()
}

/// Exact `f32` distances for the final lists, sorted ascending.
fn finish(data: &[f32], dim: usize, n: usize, k: usize, heaps: &Heaps) -> KnnGraph {
    let mut graph = KnnGraph {
        n,
        k,
        indices: vec![0; n * k],
        distances: vec![0.0; n * k],
    };
    graph
        .indices
        .par_chunks_mut(k.max(1))
        .zip(graph.distances.par_chunks_mut(k.max(1)))
        .enumerate()
        .for_each(|(i, (idx_row, dist_row))| {
            let x = &data[i * dim..(i + 1) * dim];
            let neighbours = &heaps.indices[i * k..(i + 1) * k];
            let mut row: Vec<(f32, i32)> = neighbours
                .iter()
                .enumerate()
                .map(|(s, &j)| {
                    // The rows are scattered over a large buffer: fetch the next one early.
                    if let Some(&next) = neighbours.get(s + 1).filter(|&&x| x >= 0) {
                        prefetch_row(&data[next as usize * dim..(next as usize + 1) * dim]);
                    }
                    let d = if j >= 0 {
                        let y = &data[j as usize * dim..(j as usize + 1) * dim];
                        (1.0 - dot(x, y)).max(0.0)
                    } else {
                        f32::INFINITY
                    };
                    (d, j)
                })
                .collect();
            row.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (s, (d, j)) in row.into_iter().enumerate() {
                // A slot can only stay empty when n ≤ k, which build_knn rules out.
                idx_row[s] = j.max(0) as u32;
                dist_row[s] = if d.is_finite() { d } else { 2.0 };
            }
        });
    graph
}

/// Hints the CPU to start loading a row into cache.
#[inline(always)]
fn prefetch_row(row: &[f32]) {
    let _ = row; // (only used on x86-64)
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(16) {
        // SAFETY: prefetching is a hint and never faults; the pointer is in bounds.
        unsafe {
            core::arch::x86_64::_mm_prefetch(line.as_ptr().cast(), core::arch::x86_64::_MM_HINT_T0)
        };
    }
}
