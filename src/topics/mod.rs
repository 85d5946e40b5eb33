//! Topic maps per facet: built from stored facet records by the cluster engine, named, matched to
//! their predecessor for stable ids, stored with history, and regenerated automatically.

pub mod adhoc;
pub mod admin;
pub mod automation;
pub mod cli;
pub mod config;
pub mod map;
pub mod naming;
pub mod regenerate;

pub use map::{MapChanges, Topic, TopicMap};
pub mod published;

pub use automation::{FacetState, Phase, TopicsHandle};
pub use published::{Backfill, NoBackfill, PublishedMaps};
