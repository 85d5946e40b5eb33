//! Topic maps per facet: built from stored facet records by the cluster engine, named, matched to
//! their predecessor for stable ids, stored with history, and regenerated automatically.

pub mod config;
pub mod map;
pub mod naming;
pub mod regenerate;

pub use map::{MapChanges, Topic, TopicMap};
pub mod published;

pub use published::{Backfill, NoBackfill, PublishedMaps};
