//! Topic maps per facet: built from stored facet records by the cluster engine, named, matched to
//! their predecessor for stable ids, stored with history, and regenerated automatically.

pub mod map;

pub use map::{MapChanges, Topic, TopicMap};
pub mod published;

pub use published::{Backfill, NoBackfill, PublishedMaps};
