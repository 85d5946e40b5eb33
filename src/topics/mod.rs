//! Topic maps per facet: built from stored facet records by the cluster engine, named, matched to
//! their predecessor for stable ids, stored with history, and regenerated automatically.
//!
//! - [`automation::start`] runs it all and returns a [`TopicsHandle`]; the maps it publishes are
//!   read through the [`PublishedMaps`] given to it (`get(facet)` → the current `Arc<TopicMap>`).
//!   After each new map it calls [`Backfill::backfill`] until that succeeds.
//! - [`regenerate`] builds one map (sample → clusters → stable ids → changes); [`naming`] names
//!   it; [`crate::store::topics`] stores it; [`adhoc`], [`admin`] and [`cli`] serve the
//!   `cluster` and `topics` commands.

pub mod adhoc;
pub mod admin;
pub mod automation;
pub mod calibrate;
pub mod cli;
pub mod config;
pub mod handle;
pub mod labels;
pub mod map;
pub mod naming;
pub mod regenerate;

pub use map::{MapChanges, Topic, TopicMap};
pub mod published;

pub use automation::{FacetState, Phase, TopicsHandle};
pub use published::{Backfill, NoBackfill, PublishedMaps};
