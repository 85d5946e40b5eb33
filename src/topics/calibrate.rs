//! No-match thresholds learned from the map's own sample, without labels, so that they mean the
//! same for every embedding model (e5 puts unrelated texts at ~0.2 cosine distance, the builtin
//! n-grams at ~0.9: no fixed number serves both), and outlier reassignment with them.
//!
//! A topic's threshold separates two distance distributions measured on the sample:
//! - its **members**' distances to its centroid (traces it must accept), and
//! - its **stand-ins**: members of *other* topics whose nearest centroid, once their own topic is
//!   left out, is this one, at that distance. They are what a trace of an intent the map has
//!   never seen looks like to this topic: something near, but not of it.
//!
//! The threshold is the member distance that minimizes
//! `member_weight × (share of members beyond it) + (share of stand-ins within it)`.
//! A topic with too few stand-ins (nothing else falls to it) keeps the quantile rule.
//! The map's global threshold, unless configured, is the same trade pooled over all topics, but
//! at least the distance within which [`GLOBAL_MEMBER_QUANTILE`] of all clustered traces lie
//! from their own centroid.

use super::config::{ThresholdMethod, TopicsConfig};
use crate::cluster::DistanceQuantiles;
use crate::cluster::vectors::dot;
use rayon::prelude::*;

/// Fewer stand-ins than this say nothing about where a topic ends: the quantile rule decides.
pub const MIN_STANDINS: usize = 5;
/// Share of all clustered traces within the derived global threshold of their own centroid.
pub const GLOBAL_MEMBER_QUANTILE: f64 = 0.99;

/// Per sample point: its own topic's distance (clustered points) and the nearest centroid
/// among the other topics (or among all, for noise).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointDistances {
    pub own: Option<f32>,
    /// (topic index, cosine distance) of the nearest centroid other than its own topic's.
    pub nearest_other: Option<(usize, f32)>,
}

/// Distances of every unit-length row of `data` to `centroids` (unit length), given its label
/// (−1 = noise). O(n × topics × dim), in parallel.
pub fn point_distances(
    data: &[f32],
    dim: usize,
    labels: &[i32],
    centroids: &[&[f32]],
) -> Vec<PointDistances> {
    data.par_chunks_exact(dim.max(1))
        .zip(labels.par_iter())
        .map(|(row, &label)| {
            let mut own = None;
            let mut other: Option<(usize, f32)> = None;
            for (t, c) in centroids.iter().enumerate() {
                let d = (1.0 - dot(row, c)).clamp(0.0, 2.0);
                if label >= 0 && t == label as usize {
                    own = Some(d);
                } else if other.is_none_or(|(_, best)| d < best) {
                    other = Some((t, d));
                }
            }
            PointDistances {
                own,
                nearest_other: other,
            }
        })
        .collect()
}

/// The calibrated thresholds of a map.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Per topic, in topic order.
    pub thresholds: Vec<f32>,
    /// The map's global no-match distance.
    pub distance_threshold: f32,
    /// Topics whose threshold came from stand-ins (the others used the quantile rule).
    pub calibrated_topics: usize,
}

/// Thresholds for `n_topics` topics from the sample's distances (see the module docs).
pub fn calibrate(
    distances: &[PointDistances],
    labels: &[i32],
    quantiles: &[DistanceQuantiles],
    config: &TopicsConfig,
) -> Calibration {
    let n_topics = quantiles.len();
    let mut members: Vec<Vec<f32>> = vec![Vec::new(); n_topics];
    let mut standins: Vec<Vec<f32>> = vec![Vec::new(); n_topics];
    for (p, &label) in distances.iter().zip(labels) {
        if label < 0 {
            continue;
        }
        if let Some(own) = p.own {
            members[label as usize].push(own);
        }
        if let Some((t, d)) = p.nearest_other {
            standins[t].push(d);
        }
    }
    let distance_threshold = config.distance_threshold.unwrap_or_else(|| {
        // The same trade pooled over every topic, but never below the distance that holds
        // GLOBAL_MEMBER_QUANTILE of the members (a cap must not cut into the topics it caps).
        // Without any clustered point there is nothing to learn from: 2 accepts everything.
        let mut pooled: Vec<f32> = members.iter().flatten().copied().collect();
        let mut pooled_standins: Vec<f32> = standins.iter().flatten().copied().collect();
        let spread = quantile(&mut pooled, GLOBAL_MEMBER_QUANTILE).unwrap_or(2.0);
        separating_threshold(
            &mut pooled,
            &mut pooled_standins,
            config.topic_threshold.member_weight,
        )
        .map_or(spread, |t| t.max(spread))
    });
    let rule = &config.topic_threshold;
    let mut calibrated_topics = 0;
    let thresholds = (0..n_topics)
        .map(|t| {
            let by_quantile = rule.quantile_threshold(&quantiles[t]);
            let threshold = match rule.method {
                ThresholdMethod::Calibrated if standins[t].len() >= MIN_STANDINS => {
                    match separating_threshold(
                        &mut members[t],
                        &mut standins[t],
                        rule.member_weight,
                    ) {
                        Some(threshold) => {
                            calibrated_topics += 1;
                            threshold
                        }
                        None => by_quantile,
                    }
                }
                _ => by_quantile,
            };
            threshold
                .max(rule.floor.unwrap_or(0.0))
                .min(distance_threshold)
        })
        .collect();
    Calibration {
        thresholds,
        distance_threshold,
        calibrated_topics,
    }
}

/// The member distance minimizing `member_weight × missed members + accepted stand-ins` (as
/// shares); ties go to the larger distance. `None` without members.
pub fn separating_threshold(
    members: &mut [f32],
    standins: &mut [f32],
    member_weight: f32,
) -> Option<f32> {
    if members.is_empty() {
        return None;
    }
    members.sort_by(f32::total_cmp);
    standins.sort_by(f32::total_cmp);
    let (m, s) = (members.len() as f64, standins.len().max(1) as f64);
    let weight = f64::from(member_weight);
    // (cost, index of the last accepted member, stand-ins accepted with it)
    let mut best: Option<(f64, usize, usize)> = None;
    let mut accepted_standins = 0;
    for (i, &t) in members.iter().enumerate() {
        // Accepting up to t: members i+1.. are missed (equal distances count as accepted).
        if members.get(i + 1) == Some(&t) {
            continue;
        }
        while accepted_standins < standins.len() && standins[accepted_standins] <= t {
            accepted_standins += 1;
        }
        let missed = (members.len() - i - 1) as f64 / m;
        let cost = weight * missed + accepted_standins as f64 / s;
        if best.is_none_or(|(c, _, _)| cost <= c) {
            best = Some((cost, i, accepted_standins));
        }
    }
    let (_, i, accepted) = best?;
    // Midway into the gap to the next distance either side, so a new trace a hair beyond the
    // farthest accepted member is still accepted.
    let next = [members.get(i + 1), standins.get(accepted)]
        .into_iter()
        .flatten()
        .copied()
        .fold(f32::INFINITY, f32::min);
    Some(if next.is_finite() {
        (members[i] + next) / 2.0
    } else {
        members[i]
    })
}

/// Linear-interpolated quantile (numpy's default); `None` for no values.
fn quantile(values: &mut [f32], q: f64) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f32::total_cmp);
    let pos = q * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = (pos - lo as f64) as f32;
    Some(values[lo] * (1.0 - frac) + values[hi] * frac)
}

/// What outlier reassignment did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reassigned {
    pub noise_before: usize,
    pub noise_after: usize,
}

/// Gives every noise point (label −1) the topic of its nearest centroid when it lies within that
/// topic's threshold (as `classify` would for a new trace; BERTopic's `reduce_outliers` with the
/// embeddings strategy, but with the map's thresholds instead of accepting every outlier).
/// Centroids and thresholds stay those of the clusters as found: reassigned points only join.
pub fn reassign_outliers(
    labels: &mut [i32],
    distances: &[PointDistances],
    calibration: &Calibration,
) -> Reassigned {
    let mut out = Reassigned::default();
    for (label, p) in labels.iter_mut().zip(distances) {
        if *label >= 0 {
            continue;
        }
        out.noise_before += 1;
        match p.nearest_other {
            Some((t, d))
                if d <= calibration.thresholds[t] && d <= calibration.distance_threshold =>
            {
                *label = t as i32;
            }
            _ => out.noise_after += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_sits_between_members_and_stand_ins() {
        let mut members: Vec<f32> = (0..100).map(|i| 0.02 + i as f32 * 0.0005).collect();
        let mut standins: Vec<f32> = (0..50).map(|i| 0.08 + i as f32 * 0.001).collect();
        let t = separating_threshold(&mut members, &mut standins, 3.0).unwrap();
        assert!((0.069..0.08).contains(&t), "{t}");
        // Overlap: a heavier member weight accepts more members (and more stand-ins).
        let mut standins: Vec<f32> = (0..50).map(|i| 0.05 + i as f32 * 0.001).collect();
        let loose = separating_threshold(&mut members.clone(), &mut standins.clone(), 10.0);
        let strict = separating_threshold(&mut members, &mut standins, 0.5);
        assert!(strict.unwrap() < loose.unwrap(), "{strict:?} {loose:?}");
        assert_eq!(separating_threshold(&mut [], &mut [0.1], 1.0), None);
    }

    #[test]
    fn noise_joins_its_nearest_topic_only_within_that_topic_threshold() {
        // Topic 0 along x, topic 1 along y (threshold 0.05 and 0.3); noise near each and far.
        let row = |angle: f32| [angle.cos(), angle.sin(), 0.0];
        let points = [
            row(0.0),
            row(std::f32::consts::FRAC_PI_2),
            row(0.2), // 1 − cos 0.2 ≈ 0.020 from topic 0: joins
            row(0.5), // ≈ 0.122 from topic 0: beyond its 0.05
            row(std::f32::consts::FRAC_PI_2 - 0.6), // ≈ 0.175 from topic 1: within its 0.3
            [0.0, 0.0, 1.0], // 1.0 from both: stays noise
        ];
        let data: Vec<f32> = points.iter().flatten().copied().collect();
        let mut labels = vec![0, 1, -1, -1, -1, -1];
        let centroids = [&points[0][..], &points[1][..]];
        let distances = point_distances(&data, 3, &labels, &centroids);
        assert_eq!(distances[0].own, Some(0.0));
        assert_eq!(distances[0].nearest_other.map(|(t, _)| t), Some(1));
        let calibration = Calibration {
            thresholds: vec![0.05, 0.3],
            distance_threshold: 0.5,
            calibrated_topics: 2,
        };
        let done = reassign_outliers(&mut labels, &distances, &calibration);
        assert_eq!(labels, vec![0, 1, 0, -1, 1, -1]);
        assert_eq!((done.noise_before, done.noise_after), (4, 2));
        // The global threshold caps every topic's.
        let mut labels = vec![0, 1, -1, -1, -1, -1];
        let strict = Calibration {
            distance_threshold: 0.1,
            ..calibration
        };
        reassign_outliers(&mut labels, &distances, &strict);
        assert_eq!(labels, vec![0, 1, 0, -1, -1, -1]);
    }

    fn quantiles(p95: f32) -> DistanceQuantiles {
        DistanceQuantiles {
            p50: p95 / 2.0,
            p90: p95,
            p95,
            p99: p95,
            max: p95,
        }
    }

    #[test]
    fn calibration_learns_per_topic_and_global_thresholds_unless_configured() {
        // Topic 0: members at 0.01..0.05, and topic 1's members fall to it at 0.2 when topic 1
        // is left out. Topic 1: members at 0.1..0.3, nothing else falls to it (quantile rule).
        let mut distances = Vec::new();
        let mut labels = Vec::new();
        for i in 0..50 {
            labels.push(0);
            distances.push(PointDistances {
                own: Some(0.01 + 0.04 * i as f32 / 49.0),
                nearest_other: Some((2, 0.9)),
            });
            labels.push(1);
            distances.push(PointDistances {
                own: Some(0.1 + 0.2 * i as f32 / 49.0),
                nearest_other: Some((0, 0.2)),
            });
        }
        let q = [quantiles(0.05), quantiles(0.3), quantiles(0.0)];
        let config = TopicsConfig::default();
        let c = calibrate(&distances, &labels, &q, &config);
        assert_eq!(c.calibrated_topics, 1);
        // Halfway between the farthest member (0.05) and the nearest stand-in (0.2).
        assert!((c.thresholds[0] - 0.125).abs() < 1e-4, "{:?}", c.thresholds);
        // Pooled, accepting every member beats missing topic 1's far half: the global sits
        // midway between the farthest member (0.3) and the next stand-in (0.9).
        assert!((c.distance_threshold - 0.6).abs() < 1e-4, "{c:?}");
        // Topic 1: p95 × 1.2, within the global.
        assert!((c.thresholds[1] - 0.36).abs() < 1e-5, "{c:?}");
        // A configured global and floor apply as given; the quantile method ignores stand-ins.
        let mut fixed = TopicsConfig::default();
        fixed.distance_threshold = Some(0.8);
        fixed.topic_threshold.method = ThresholdMethod::Quantile;
        fixed.topic_threshold.floor = Some(0.1);
        let c = calibrate(&distances, &labels, &q, &fixed);
        assert_eq!(c.distance_threshold, 0.8);
        assert_eq!(c.calibrated_topics, 0);
        assert!(
            (c.thresholds[0] - 0.1).abs() < 1e-6,
            "floor: {:?}",
            c.thresholds
        );
        assert!((c.thresholds[1] - 0.36).abs() < 1e-5, "{:?}", c.thresholds);
    }
}
