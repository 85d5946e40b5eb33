//! Random-projection trees: the first neighbour candidates of NN-descent.
//!
//! Each tree splits the points recursively by a random hyperplane through the origin (angular
//! trees: the normal is the difference of two random points) until leaves hold ≤ `leaf_size`
//! points. The side of every point is read off the int8 copy of the rows: only the sign of the
//! margin matters, and a tree level is then a pass over 1 KB instead of 4 KB per 1024-d point.

use super::quantized::I8Rows;

/// The leaves of one tree: a permutation of 0..n with leaf boundaries.
pub struct Leaves {
    pub order: Vec<u32>,
    /// Leaf l is `order[bounds[l]..bounds[l + 1]]`.
    pub bounds: Vec<usize>,
}

impl Leaves {
    pub fn count(&self) -> usize {
        self.bounds.len().saturating_sub(1)
    }

    pub fn leaf(&self, l: usize) -> &[u32] {
        &self.order[self.bounds[l]..self.bounds[l + 1]]
    }
}

/// Builds one tree and returns its leaves (deterministic for a seed).
pub fn rp_tree_leaves(rows: &I8Rows, leaf_size: usize, seed: u64) -> Leaves {
    let n = rows.len();
    let dim = rows.dim;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut bounds = vec![0usize];
    let mut stack = vec![(0usize, n)];
    let mut normal = vec![0.0f32; dim];
    let mut margins = Vec::new();
    let mut side = Vec::new();
    let (mut left, mut right) = (Vec::new(), Vec::new());
    while let Some((start, end)) = stack.pop() {
        let len = end - start;
        if len <= leaf_size {
            // Leaves are emitted left to right: the stack pops the left half first.
            bounds.push(end);
            continue;
        }
        let a = order[start + rng.usize(0..len)] as usize;
        let mut b = order[start + rng.usize(0..len)] as usize;
        if a == b {
            b = order[start + (rng.usize(0..len - 1) + 1 + (a % len)) % len] as usize;
        }
        let (ra, rb) = (rows.row(a), rows.row(b));
        let (sa, sb) = (rows.scale(a), rows.scale(b));
        for ((nrm, &x), &y) in normal.iter_mut().zip(ra).zip(rb) {
            *nrm = f32::from(x) * sa - f32::from(y) * sb;
        }
        let (query, _) = rows.quantize_query(&normal);
        margins.resize(len, 0.0f32);
        rows.raw_dots(&query, &order[start..end], &mut margins);
        side.clear();
        side.extend(margins.iter().map(|&m| {
            if m > 0.0 {
                true
            } else if m < 0.0 {
                false
            } else {
                rng.bool()
            }
        }));
        let mut left_count = side.iter().filter(|&&s| s).count();
        // Identical or symmetric points: fall back to a random split so the recursion ends.
        if left_count == 0 || left_count == len {
            for s in side.iter_mut() {
                *s = rng.bool();
            }
            left_count = side.iter().filter(|&&s| s).count();
            if left_count == 0 || left_count == len {
                side.iter_mut()
                    .enumerate()
                    .for_each(|(i, s)| *s = i < len / 2);
                left_count = len / 2;
            }
        }
        // Stable partition of the slice by side.
        let slice = &mut order[start..end];
        left.clear();
        right.clear();
        for (&i, &s) in slice.iter().zip(&side) {
            if s { left.push(i) } else { right.push(i) }
        }
        slice[..left_count].copy_from_slice(&left);
        slice[left_count..].copy_from_slice(&right);
        stack.push((start + left_count, end));
        stack.push((start, start + left_count));
    }
    Leaves { order, bounds }
}
