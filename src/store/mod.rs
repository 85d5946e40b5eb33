//! The redb file: buffered trace chunks (`pending`) and the persistent sending queue (`queue`).
//! Everything a client got an OK for lives here until the downstream acknowledged it.

pub mod config;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;

pub use config::StorageConfig;

/// Bumped whenever a table's layout changes. A file from a newer build is refused, never guessed.
pub const SCHEMA_VERSION: u64 = 1;

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// key: sequence number; value: trace id (16 bytes) · span count (u32 LE) · `TracesData` bytes.
pub const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending_v1");
/// key: sequence number (delivery order); value: span count (u32 LE) · `TracesData` bytes.
pub const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_v1");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open storage file {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error(
        "storage file {path} has schema version {found}, newer than this build understands ({SCHEMA_VERSION}); run a newer tracetopics or point storage.path elsewhere"
    )]
    NewerSchema { path: String, found: u64 },
    #[error("storage: {0}")]
    Redb(String),
    #[error("cannot create directory for storage file {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Redb(e.to_string()) }
        }
    )*};
}
redb_errors!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A buffered chunk found at start-up, to be put back into the assembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredChunk {
    pub key: u64,
    pub trace_id: [u8; 16],
    pub spans: u32,
}

/// What the file held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    pub pending: Vec<RecoveredChunk>,
    pub queued_spans: u64,
    pub queued_records: u64,
    pub next_key: u64,
}

pub fn open(config: &StorageConfig) -> Result<(Database, Recovered), StoreError> {
    let path = &config.path;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let db = Database::builder()
        .set_cache_size(config.cache_size_mib.max(1) * 1024 * 1024)
        .create(path)
        .map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
    check_schema(&db, path)?;
    let recovered = recover(&db)?;
    Ok((db, recovered))
}

fn check_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    {
        let mut meta = tx.open_table(META)?;
        let found = meta.get("schema_version")?.map(|v| v.value());
        match found {
            Some(found) if found > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    path: path.display().to_string(),
                    found,
                });
            }
            Some(_) => {}
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)?;
            }
        }
        tx.open_table(PENDING)?;
        tx.open_table(QUEUE)?;
    }
    tx.commit()?;
    Ok(())
}

pub fn recover(db: &Database) -> Result<Recovered, StoreError> {
    let tx = db.begin_read()?;
    let pending_table = tx.open_table(PENDING)?;
    let queue_table = tx.open_table(QUEUE)?;
    let mut recovered = Recovered::default();
    for entry in pending_table.iter()? {
        let (key, value) = entry?;
        let (trace_id, spans, _) = split_pending(value.value());
        recovered.pending.push(RecoveredChunk {
            key: key.value(),
            trace_id,
            spans,
        });
    }
    for entry in queue_table.iter()? {
        let (_, value) = entry?;
        recovered.queued_spans += u64::from(split_queued(value.value()).0);
        recovered.queued_records += 1;
    }
    let last_pending = pending_table.last()?.map(|(k, _)| k.value());
    let last_queued = queue_table.last()?.map(|(k, _)| k.value());
    recovered.next_key = last_pending.max(last_queued).map_or(0, |k| k + 1);
    debug_assert_eq!(queue_table.len()?, recovered.queued_records);
    Ok(recovered)
}

pub fn pending_value(trace_id: &[u8; 16], spans: u32, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(20 + payload.len());
    value.extend_from_slice(trace_id);
    value.extend_from_slice(&spans.to_le_bytes());
    value.extend_from_slice(payload);
    value
}

pub fn split_pending(value: &[u8]) -> ([u8; 16], u32, &[u8]) {
    let mut trace_id = [0u8; 16];
    trace_id.copy_from_slice(&value[..16]);
    let spans = u32::from_le_bytes(value[16..20].try_into().expect("4 bytes"));
    (trace_id, spans, &value[20..])
}

pub fn queued_value(spans: u32, payload_parts: &[&[u8]]) -> Vec<u8> {
    let len = payload_parts.iter().map(|p| p.len()).sum::<usize>();
    let mut value = Vec::with_capacity(4 + len);
    value.extend_from_slice(&spans.to_le_bytes());
    for part in payload_parts {
        value.extend_from_slice(part);
    }
    value
}

pub fn split_queued(value: &[u8]) -> (u32, &[u8]) {
    (
        u32::from_le_bytes(value[..4].try_into().expect("4 bytes")),
        &value[4..],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            path: dir.path().join("nested/t.redb"),
            cache_size_mib: 4,
        };
        let (db, recovered) = open(&config).unwrap();
        assert_eq!(recovered.next_key, 0);
        let tx = db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert("schema_version", SCHEMA_VERSION + 1)
            .unwrap();
        tx.commit().unwrap();
        drop(db);
        let err = open(&config).unwrap_err().to_string();
        assert!(err.contains("newer than this build"), "{err}");
    }

    #[test]
    fn recovery_finds_pending_chunks_and_queued_spans() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            path: dir.path().join("t.redb"),
            cache_size_mib: 4,
        };
        let (db, _) = open(&config).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(PENDING)
            .unwrap()
            .insert(7, pending_value(&[1; 16], 3, b"x").as_slice())
            .unwrap();
        tx.open_table(QUEUE)
            .unwrap()
            .insert(9, queued_value(5, &[b"a", b"b"]).as_slice())
            .unwrap();
        tx.commit().unwrap();
        drop(db);
        let (_, recovered) = open(&config).unwrap();
        assert_eq!(
            recovered.pending,
            vec![RecoveredChunk {
                key: 7,
                trace_id: [1; 16],
                spans: 3
            }]
        );
        assert_eq!(
            (
                recovered.queued_spans,
                recovered.queued_records,
                recovered.next_key
            ),
            (5, 1, 10)
        );
    }
}
