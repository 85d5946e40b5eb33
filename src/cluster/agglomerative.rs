//! Agglomerative clustering without an n² matrix: k-means first condenses the points into a few
//! hundred weighted micro-clusters, then the nearest-neighbour-chain algorithm builds the Ward or
//! average-linkage hierarchy over them (O(m²) for m micro-clusters), and the hierarchy is cut at
//! `k` clusters.

use super::config::Linkage;
use super::kmeans::kmeans;

/// Labels 0..k for every point.
pub fn agglomerative(
    data: &[f32],
    dim: usize,
    k: usize,
    micro_clusters: usize,
    linkage: Linkage,
    seed: u64,
) -> Vec<i32> {
    let n = data.len() / dim;
    let micro = kmeans(data, dim, micro_clusters.min(n), 50, 1e-4, seed);
    let m = micro.sizes.len();
    let merged = merge_to_k(&micro.centers, dim, &micro.sizes, k.min(m), linkage);
    micro
        .labels
        .iter()
        .map(|&l| merged[l as usize] as i32)
        .collect()
}

/// Groups m weighted centres into `k` clusters; returns the cluster (0..k) of every centre.
pub fn merge_to_k(
    centers: &[f32],
    dim: usize,
    sizes: &[usize],
    k: usize,
    linkage: Linkage,
) -> Vec<usize> {
    let m = sizes.len();
    if m == 0 {
        return Vec::new();
    }
    // Pairwise dissimilarities: Ward's increase in within-cluster sum of squares, or the
    // Euclidean distance between centres for average linkage.
    let mut dist = vec![0.0f64; m * m];
    for i in 0..m {
        for j in i + 1..m {
            let d2: f64 = centers[i * dim..(i + 1) * dim]
                .iter()
                .zip(&centers[j * dim..(j + 1) * dim])
                .map(|(a, b)| f64::from(a - b) * f64::from(a - b))
                .sum();
            let (si, sj) = (sizes[i].max(1) as f64, sizes[j].max(1) as f64);
            let d = match linkage {
                Linkage::Ward => si * sj / (si + sj) * d2,
                Linkage::Average => d2.sqrt(),
            };
            dist[i * m + j] = d;
            dist[j * m + i] = d;
        }
    }
    let mut size: Vec<f64> = sizes.iter().map(|&s| s.max(1) as f64).collect();
    let mut active = vec![true; m];
    // (height, a, b): cluster b merged into a.
    let mut merges: Vec<(f64, usize, usize)> = Vec::with_capacity(m);
    let mut chain: Vec<usize> = Vec::new();
    let mut remaining = m;
    while remaining > 1 {
        if chain.is_empty() {
            chain.push((0..m).find(|&i| active[i]).expect("an active cluster"));
        }
        let top = *chain.last().expect("chain not empty");
        let prev = if chain.len() >= 2 {
            Some(chain[chain.len() - 2])
        } else {
            None
        };
        // Nearest active neighbour of `top`, preferring the previous chain element on ties
        // (needed for the chain to terminate).
        let mut best = (f64::INFINITY, usize::MAX);
        for j in 0..m {
            if j == top || !active[j] {
                continue;
            }
            let d = dist[top * m + j];
            if d < best.0 || (d == best.0 && Some(j) == prev) {
                best = (d, j);
            }
        }
        let (d, nearest) = best;
        if Some(nearest) == prev {
            chain.pop();
            chain.pop();
            let (a, b) = (top.min(nearest), top.max(nearest));
            merges.push((d, a, b));
            // Lance–Williams update of the merged cluster `a` against every other cluster.
            for x in 0..m {
                if !active[x] || x == a || x == b {
                    continue;
                }
                let (dax, dbx) = (dist[a * m + x], dist[b * m + x]);
                let new = match linkage {
                    Linkage::Ward => {
                        let (na, nb, nx) = (size[a], size[b], size[x]);
                        ((na + nx) * dax + (nb + nx) * dbx - nx * d) / (na + nb + nx)
                    }
                    Linkage::Average => (size[a] * dax + size[b] * dbx) / (size[a] + size[b]),
                };
                dist[a * m + x] = new;
                dist[x * m + a] = new;
            }
            size[a] += size[b];
            active[b] = false;
            remaining -= 1;
        } else {
            chain.push(nearest);
        }
    }
    // Ward and average linkage are reducible, so applying the merges by height gives the same
    // hierarchy; the first m − k merges leave k clusters.
    merges.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut parent: Vec<usize> = (0..m).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for &(_, a, b) in merges.iter().take(m.saturating_sub(k)) {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[rb] = ra;
        }
    }
    let mut ids = vec![usize::MAX; m];
    let mut next = 0;
    (0..m)
        .map(|i| {
            let r = find(&mut parent, i);
            if ids[r] == usize::MAX {
                ids[r] = next;
                next += 1;
            }
            ids[r]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_groups_of_centres_merge_into_three_clusters() {
        // Centres on a line: {0, 0.1, 0.2}, {5, 5.1}, {10, 10.2, 10.3}.
        let centers = [0.0f32, 0.1, 0.2, 5.0, 5.1, 10.0, 10.2, 10.3];
        let sizes = [3, 1, 2, 4, 4, 1, 1, 5];
        for linkage in [Linkage::Ward, Linkage::Average] {
            let groups = merge_to_k(&centers, 1, &sizes, 3, linkage);
            assert_eq!(groups[0], groups[1]);
            assert_eq!(groups[1], groups[2]);
            assert_eq!(groups[3], groups[4]);
            assert_eq!(groups[5], groups[6]);
            assert_eq!(groups[6], groups[7]);
            assert_ne!(groups[0], groups[3]);
            assert_ne!(groups[3], groups[5]);
        }
    }
}
