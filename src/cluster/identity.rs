//! Stable topic identity across rebuilds: which new cluster continues which previous one.
//!
//! Pure functions for the topic-map store. A previous and a new cluster are scored by a blend of
//! centroid cosine similarity and member overlap (Jaccard over the trace ids present in both
//! samples); the optimal one-to-one assignment (Hungarian algorithm) above a minimum score keeps
//! ids. Unmatched clusters are then explained by overlap: a new cluster that mostly holds members
//! of a previous one is a split of it, a previous cluster whose members mostly went into one new
//! cluster was merged into it; the rest are new or retired.

use super::metrics::adjusted_rand_index;
use super::vectors::dot;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// A cluster as the matcher sees it: its centroid (unit length) and its members' trace ids.
#[derive(Clone, Copy, Debug)]
pub struct ClusterSnapshot<'a, Id> {
    pub centroid: &'a [f32],
    pub members: &'a [Id],
}

/// Weights and thresholds of the matching.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchParams {
    /// Weight of centroid cosine similarity in the score. Default 0.5.
    pub centroid_weight: f64,
    /// Weight of member Jaccard overlap in the score. Default 0.5.
    pub overlap_weight: f64,
    /// Smallest score for a new cluster to keep a previous cluster's id. Default 0.5.
    pub min_score: f64,
    /// Share of a cluster's shared members that must come from / go to one other cluster to call
    /// it a split or a merge. Default 0.5.
    pub lineage_overlap: f64,
}

impl Default for MatchParams {
    fn default() -> Self {
        MatchParams {
            centroid_weight: 0.5,
            overlap_weight: 0.5,
            min_score: 0.5,
            lineage_overlap: 0.5,
        }
    }
}

/// A new cluster that keeps a previous cluster's id.
#[derive(Clone, Debug, PartialEq)]
pub struct Kept {
    pub previous: usize,
    pub current: usize,
    pub score: f64,
}

/// A new cluster (without a kept id) whose members mostly come from a previous cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub current: usize,
    pub from_previous: usize,
    pub overlap: f64,
}

/// A previous cluster (without a successor) whose members mostly went into a new cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Merge {
    pub previous: usize,
    pub into_current: usize,
    pub overlap: f64,
}

/// How a rebuild relates to the previous map (indices into the two input slices).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatchOutcome {
    pub kept: Vec<Kept>,
    pub splits: Vec<Split>,
    pub merges: Vec<Merge>,
    /// New clusters with no predecessor.
    pub new: Vec<usize>,
    /// Previous clusters with no successor.
    pub retired: Vec<usize>,
}

impl MatchOutcome {
    /// The previous cluster whose id the new cluster `current` keeps, if any.
    pub fn kept_previous(&self, current: usize) -> Option<usize> {
        self.kept
            .iter()
            .find(|k| k.current == current)
            .map(|k| k.previous)
    }
}

/// Matches the clusters of a rebuild (`current`) to those of the previous map.
pub fn match_clusters<Id: Eq + Hash>(
    previous: &[ClusterSnapshot<'_, Id>],
    current: &[ClusterSnapshot<'_, Id>],
    params: &MatchParams,
) -> MatchOutcome {
    let (np, nc) = (previous.len(), current.len());
    // Member intersections, counted over ids present in both samples.
    let mut current_of: HashMap<&Id, usize> = HashMap::new();
    for (c, cluster) in current.iter().enumerate() {
        for id in cluster.members {
            current_of.insert(id, c);
        }
    }
    let previous_ids: HashSet<&Id> = previous.iter().flat_map(|p| p.members.iter()).collect();
    let mut shared_current = vec![0usize; nc];
    for (c, cluster) in current.iter().enumerate() {
        shared_current[c] = cluster
            .members
            .iter()
            .filter(|id| previous_ids.contains(id))
            .count();
    }
    let mut shared_previous = vec![0usize; np];
    let mut intersection = vec![0usize; np * nc];
    for (p, cluster) in previous.iter().enumerate() {
        for id in cluster.members {
            if let Some(&c) = current_of.get(id) {
                intersection[p * nc + c] += 1;
                shared_previous[p] += 1;
            }
        }
    }
    // With disjoint samples there is no overlap evidence at all: the centroids decide alone.
    let samples_share_ids = shared_current.iter().any(|&s| s > 0);
    let mut score = vec![0.0f64; np * nc];
    for p in 0..np {
        for c in 0..nc {
            let cosine = f64::from(dot(previous[p].centroid, current[c].centroid));
            let inter = intersection[p * nc + c];
            let union = shared_previous[p] + shared_current[c] - inter;
            score[p * nc + c] = if !samples_share_ids {
                cosine
            } else {
                let jaccard = if union == 0 {
                    0.0
                } else {
                    inter as f64 / union as f64
                };
                (params.centroid_weight * cosine + params.overlap_weight * jaccard)
                    / (params.centroid_weight + params.overlap_weight).max(f64::MIN_POSITIVE)
            };
        }
    }

    let mut outcome = MatchOutcome::default();
    let assignment = hungarian_maximize(&score, np, nc);
    let mut current_taken = vec![false; nc];
    let mut previous_taken = vec![false; np];
    for (p, assigned) in assignment.iter().enumerate() {
        if let Some(c) = *assigned {
            let s = score[p * nc + c];
            if s >= params.min_score {
                outcome.kept.push(Kept {
                    previous: p,
                    current: c,
                    score: s,
                });
                current_taken[c] = true;
                previous_taken[p] = true;
            }
        }
    }
    for c in (0..nc).filter(|&c| !current_taken[c]) {
        let best = (0..np).max_by_key(|&p| (intersection[p * nc + c], std::cmp::Reverse(p)));
        let overlap = match best {
            Some(p) if shared_current[c] > 0 => {
                intersection[p * nc + c] as f64 / shared_current[c] as f64
            }
            _ => 0.0,
        };
        match best {
            Some(p) if overlap >= params.lineage_overlap => outcome.splits.push(Split {
                current: c,
                from_previous: p,
                overlap,
            }),
            _ => outcome.new.push(c),
        }
    }
    for p in (0..np).filter(|&p| !previous_taken[p]) {
        let best = (0..nc).max_by_key(|&c| (intersection[p * nc + c], std::cmp::Reverse(c)));
        let overlap = match best {
            Some(c) if shared_previous[p] > 0 => {
                intersection[p * nc + c] as f64 / shared_previous[p] as f64
            }
            _ => 0.0,
        };
        match best {
            Some(c) if overlap >= params.lineage_overlap => outcome.merges.push(Merge {
                previous: p,
                into_current: c,
                overlap,
            }),
            _ => outcome.retired.push(p),
        }
    }
    outcome
}

/// ARI between two labelings on the items both contain (the map's stability score); `None` when
/// fewer than two items are shared.
pub fn stability_score<Id: Eq + Hash>(
    previous: &[(Id, i32)],
    current: &[(Id, i32)],
) -> Option<f64> {
    let before: HashMap<&Id, i32> = previous.iter().map(|(id, l)| (id, *l)).collect();
    let (a, b): (Vec<i32>, Vec<i32>) = current
        .iter()
        .filter_map(|(id, l)| before.get(id).map(|&p| (p, *l)))
        .unzip();
    (a.len() >= 2).then(|| adjusted_rand_index(&a, &b))
}

/// Optimal one-to-one assignment maximizing the total score of a rows × cols matrix
/// (row-major). Returns, per row, its column (rows beyond the number of columns get `None`).
/// O(n²m) Hungarian algorithm with potentials (Kuhn–Munkres, Jonker–Volgenant style).
pub fn hungarian_maximize(score: &[f64], rows: usize, cols: usize) -> Vec<Option<usize>> {
    assert_eq!(score.len(), rows * cols);
    if rows == 0 || cols == 0 {
        return vec![None; rows];
    }
    if rows > cols {
        // Solve the transpose, where rows ≤ cols, and invert.
        let transposed: Vec<f64> = (0..cols * rows)
            .map(|k| score[(k % rows) * cols + k / rows])
            .collect();
        let by_col = hungarian_maximize(&transposed, cols, rows);
        let mut out = vec![None; rows];
        for (c, r) in by_col.iter().enumerate() {
            if let Some(r) = r {
                out[*r] = Some(c);
            }
        }
        return out;
    }
    let (n, m) = (rows, cols);
    let cost = |i: usize, j: usize| -score[i * m + j];
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut owner = vec![0usize; m + 1]; // owner[j] = row (1-based) assigned to column j
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        owner[0] = i;
        let mut j0 = 0usize;
        let mut min_to = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = owner[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let reduced = cost(i0 - 1, j - 1) - u[i0] - v[j];
                if reduced < min_to[j] {
                    min_to[j] = reduced;
                    way[j] = j0;
                }
                if min_to[j] < delta {
                    delta = min_to[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; n];
    for j in 1..=m {
        if owner[j] > 0 {
            out[owner[j] - 1] = Some(j - 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hungarian_finds_the_optimum_where_greedy_fails() {
        // Greedy takes (0,0)=10 and then must take (1,1)=1: total 11. Optimum 9 + 8 = 17.
        let score = [10.0, 9.0, 8.0, 1.0];
        assert_eq!(hungarian_maximize(&score, 2, 2), vec![Some(1), Some(0)]);
        // Classic 3×3 (as a cost matrix, negated): optimal cost 5 via (0,1),(1,0),(2,2).
        let cost = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0];
        let neg: Vec<f64> = cost.iter().map(|c| -c).collect();
        assert_eq!(
            hungarian_maximize(&neg, 3, 3),
            vec![Some(1), Some(0), Some(2)]
        );
    }

    #[test]
    fn hungarian_handles_rectangular_matrices() {
        // 3 rows, 2 columns: one row stays unassigned.
        let score = [1.0, 0.0, 0.0, 5.0, 4.0, 0.0];
        assert_eq!(
            hungarian_maximize(&score, 3, 2),
            vec![None, Some(1), Some(0)]
        );
        let wide = [0.0, 7.0, 1.0];
        assert_eq!(hungarian_maximize(&wide, 1, 3), vec![Some(1)]);
    }

    #[test]
    fn splits_merges_new_and_retired_are_explained_by_overlap() {
        let e = |i: usize| {
            let mut v = vec![0.0f32; 4];
            v[i] = 1.0;
            v
        };
        let (c0, c1, c2, c3) = (e(0), e(1), e(2), e(3));
        let prev_a: Vec<u32> = (0..100).collect(); // will split in two
        let prev_b: Vec<u32> = (100..140).collect(); // merges into prev_c's successor
        let prev_c: Vec<u32> = (140..240).collect();
        let prev_d: Vec<u32> = (240..260).collect(); // disappears
        let previous = [
            ClusterSnapshot {
                centroid: &c0,
                members: &prev_a,
            },
            ClusterSnapshot {
                centroid: &c1,
                members: &prev_b,
            },
            ClusterSnapshot {
                centroid: &c2,
                members: &prev_c,
            },
            ClusterSnapshot {
                centroid: &c3,
                members: &prev_d,
            },
        ];
        let cur_a1: Vec<u32> = (0..60).collect();
        let cur_a2: Vec<u32> = (60..100).collect();
        let cur_bc: Vec<u32> = (100..240).collect();
        let cur_new: Vec<u32> = (1000..1030).collect();
        // Halfway between prev_b's and prev_d's directions, with no shared members.
        let between: Vec<f32> = vec![
            0.0,
            std::f32::consts::FRAC_1_SQRT_2,
            0.0,
            std::f32::consts::FRAC_1_SQRT_2,
        ];
        let current = [
            ClusterSnapshot {
                centroid: &c0,
                members: &cur_a1,
            },
            ClusterSnapshot {
                centroid: &c0,
                members: &cur_a2,
            },
            ClusterSnapshot {
                centroid: &c2,
                members: &cur_bc,
            },
            ClusterSnapshot {
                centroid: &between,
                members: &cur_new,
            },
        ];
        let out = match_clusters(&previous, &current, &MatchParams::default());
        assert_eq!(out.kept_previous(0), Some(0));
        assert_eq!(out.kept_previous(2), Some(2));
        assert_eq!(out.kept.len(), 2);
        assert_eq!(
            out.splits,
            vec![Split {
                current: 1,
                from_previous: 0,
                overlap: 1.0
            }]
        );
        assert_eq!(
            out.merges,
            vec![Merge {
                previous: 1,
                into_current: 2,
                overlap: 1.0
            }]
        );
        assert_eq!(out.new, vec![3]);
        assert_eq!(out.retired, vec![3]);
    }

    #[test]
    fn disjoint_samples_are_matched_by_centroid_alone() {
        let (x, y) = (vec![1.0f32, 0.0], vec![0.0f32, 1.0]);
        let (m1, m2, m3, m4) = ([1u32, 2], [3u32, 4], [5u32, 6], [7u32, 8]);
        let previous = [
            ClusterSnapshot {
                centroid: &x,
                members: &m1,
            },
            ClusterSnapshot {
                centroid: &y,
                members: &m2,
            },
        ];
        let current = [
            ClusterSnapshot {
                centroid: &y,
                members: &m3,
            },
            ClusterSnapshot {
                centroid: &x,
                members: &m4,
            },
        ];
        let out = match_clusters(&previous, &current, &MatchParams::default());
        assert_eq!(out.kept_previous(0), Some(1));
        assert_eq!(out.kept_previous(1), Some(0));
    }

    #[test]
    fn stability_is_ari_on_shared_items() {
        let before = [(1u32, 0), (2, 0), (3, 1), (4, 1), (5, 2)];
        let after = [(1u32, 7), (2, 7), (3, 8), (4, 8), (6, 9)];
        assert_eq!(stability_score(&before, &after), Some(1.0));
        assert_eq!(stability_score(&before[..1], &after[..1]), None);
    }
}
