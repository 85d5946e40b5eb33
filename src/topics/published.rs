//! The maps classification reads: the newest map of every facet, swapped in whole when a
//! regeneration publishes one, so a classification never sees half a map.

use super::TopicMap;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Shared, cheap to clone; readers take an `Arc` to the map and let go of the lock at once.
#[derive(Clone, Default)]
pub struct PublishedMaps(Arc<RwLock<HashMap<String, Arc<TopicMap>>>>);

impl PublishedMaps {
    /// The current map of `facet`, if one was published.
    pub fn get(&self, facet: &str) -> Option<Arc<TopicMap>> {
        self.0.read().expect("maps lock").get(facet).cloned()
    }

    /// Makes `map` the current one of its facet.
    pub fn publish(&self, map: Arc<TopicMap>) {
        self.0
            .write()
            .expect("maps lock")
            .insert(map.facet.clone(), map);
    }

    /// Every current map, by facet.
    pub fn all(&self) -> Vec<Arc<TopicMap>> {
        let mut maps: Vec<_> = self
            .0
            .read()
            .expect("maps lock")
            .values()
            .cloned()
            .collect();
        maps.sort_by(|a, b| a.facet.cmp(&b.facet));
        maps
    }
}

/// What the automation runs in its `backfill` state after publishing a map: reclassify the
/// stored facet records of the last `backfill_window` against it (the classify stage provides it).
pub trait Backfill: Send + Sync + 'static {
    /// Returns how many stored traces changed topic. An error leaves the automation in `backfill`
    /// to retry later.
    fn backfill(&self, map: &TopicMap) -> Result<u64, String>;
}

/// No classification stage: nothing to reclassify.
pub struct NoBackfill;

impl Backfill for NoBackfill {
    fn backfill(&self, _map: &TopicMap) -> Result<u64, String> {
        Ok(0)
    }
}
