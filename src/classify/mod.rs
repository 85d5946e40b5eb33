//! Classification: a new trace's facet embedding is given the topic of the nearest centroid of the
//! facet's current topic map, or `no_match` when it is too far from every topic.

pub mod index;
pub mod synthetic;

pub use index::{AUTO_HNSW_MIN_TOPICS, CentroidIndex, ClassifyError, HnswParams, IndexKind, Match};
