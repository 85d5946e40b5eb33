//! Classification: every faceted trace gets the nearest topic of each facet's current map, and
//! its spans leave carrying it.

pub mod attributes;
pub mod config;
pub mod enrich;

pub use config::ClassifyConfig;
