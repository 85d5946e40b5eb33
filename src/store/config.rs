use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `storage:` — the single redb file that holds buffered traces and the sending queue.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Path of the redb file; created (with its directory) if missing. Default
    /// `./data/tracetopics.redb`. Every span the sidecar acknowledged is in this file until the
    /// downstream acknowledged it, so put it on a persistent volume.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// Page cache redb may use, in MiB. Default 4: the working set is the tail of the queue,
    /// and every MiB here is resident memory.
    #[serde(default = "default_cache_mib")]
    pub cache_size_mib: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: default_path(),
            cache_size_mib: default_cache_mib(),
        }
    }
}

fn default_path() -> PathBuf {
    PathBuf::from("./data/tracetopics.redb")
}
fn default_cache_mib() -> usize {
    4
}
