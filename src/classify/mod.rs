//! Classification: a new trace's facet embedding is given the topic of the nearest centroid of the
//! facet's current topic map, or `no_match` when it is too far from every topic — no model call —
//! and its spans leave carrying it.

pub mod attributes;
pub mod config;
pub mod enrich;
pub mod enricher;
pub mod index;
mod quantized;
pub mod stage;
pub mod synthetic;

pub use config::ClassifyConfig;
pub use index::{AUTO_HNSW_MIN_TOPICS, CentroidIndex, ClassifyError, HnswParams, IndexKind, Match};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
