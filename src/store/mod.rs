//! The redb file: buffered trace chunks (`pending`) and the persistent sending queue
//! (`queue.rs`).
//! Everything a client got an OK for lives here until the downstream acknowledged it. Both tables
//! hold spans and log records alike, each record tagged with its signal.

pub mod classifications;
pub mod config;
pub mod facet_retry;
pub mod facets;
pub mod queue;
pub mod topics;

use crate::core::Signal;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;

pub use config::StorageConfig;

/// Bumped whenever a table's layout changes. A file from a newer build is refused, never guessed.
/// Version 2 tagged every record with its signal (spans or log records); version 3 added the
/// facet tables (`facets.rs`); version 4 added topic maps and automation state (`topics.rs`).
/// Older files just get the new tables.
pub const SCHEMA_VERSION: u64 = 4;

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// key: sequence number; value: trace id (16 bytes) · signal (u8) · item count (u32 LE) ·
/// `TracesData` or `LogsData` bytes.
pub const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending_v2");
/// key: sequence number (delivery order); value: signal (u8) · item count (u32 LE) · `TracesData`
/// or `LogsData` bytes.
/// Only `queue.rs` opens it.
const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_v2");

// Schema 1 (spans only): the same layouts without the signal byte. Migrated on open.
const PENDING_V1: TableDefinition<u64, &[u8]> = TableDefinition::new("pending_v1");
const QUEUE_V1: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_v1");

/// The signal a stored record's tag byte names. Only this process writes the tables; an unknown
/// byte cannot come from a known schema.
fn signal_from_byte(byte: u8) -> Signal {
    if byte == Signal::Logs as u8 {
        Signal::Logs
    } else {
        Signal::Traces
    }
}

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

/// The key of a per-(trace, facet) row: trace id (16 bytes) · facet name, so one trace's rows
/// are one key range.
pub(crate) fn trace_key(trace_id: &[u8; 16], facet: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + facet.len());
    key.extend_from_slice(trace_id);
    key.extend_from_slice(facet.as_bytes());
    key
}

/// Every row of `table` keyed by `trace_key(trace_id, …)`, decoded (rows that do not decode are
/// skipped); none while the table does not exist yet.
pub(crate) fn rows_of_trace<T>(
    db: &Database,
    table: TableDefinition<&[u8], &[u8]>,
    trace_id: &[u8; 16],
    decode: impl Fn(&[u8], &[u8]) -> Option<T>,
) -> Result<Vec<T>, StoreError> {
    let tx = db.begin_read()?;
    let table = match tx.open_table(table) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut end = trace_id.to_vec();
    end.push(0xff);
    let mut out = Vec::new();
    for entry in table.range(trace_id.as_slice()..end.as_slice())? {
        let (key, value) = entry?;
        out.extend(decode(key.value(), value.value()));
    }
    Ok(out)
}

/// A buffered chunk found at start-up, to be put back into the assembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredChunk {
    pub key: u64,
    pub trace_id: [u8; 16],
    pub signal: Signal,
    pub items: u32,
}

/// What the file held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    pub pending: Vec<RecoveredChunk>,
    /// Spans and log records waiting in the queue.
    pub queued_items: u64,
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
            Some(found @ (1..=3)) => {
                if found == 1 {
                    migrate_v1(&tx)?;
                }
                meta.insert("schema_version", SCHEMA_VERSION)?;
                tracing::info!(path = %path.display(), from = found, to = SCHEMA_VERSION, "storage schema migrated");
            }
            Some(_) => {}
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)?;
            }
        }
        tx.open_table(PENDING)?;
        tx.open_table(QUEUE)?;
        tx.open_table(facets::FACETS)?;
        tx.open_table(facets::FACETS_BY_TIME)?;
        topics::create_tables(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

/// Copies schema-1 records (all spans) into the schema-2 tables, keeping their keys and order.
fn migrate_v1(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    {
        let old = tx.open_table(PENDING_V1)?;
        let mut new = tx.open_table(PENDING)?;
        for entry in old.iter()? {
            let (key, value) = entry?;
            let value = value.value();
            if value.len() < 20 {
                continue;
            }
            let trace_id: [u8; 16] = value[..16].try_into().expect("16 bytes");
            let spans = u32::from_le_bytes(value[16..20].try_into().expect("4 bytes"));
            let record = pending_value(&trace_id, Signal::Traces, spans, &value[20..]);
            new.insert(key.value(), record.as_slice())?;
        }
        let old = tx.open_table(QUEUE_V1)?;
        let mut new = tx.open_table(QUEUE)?;
        for entry in old.iter()? {
            let (key, value) = entry?;
            let value = value.value();
            if value.len() < 4 {
                continue;
            }
            let spans = u32::from_le_bytes(value[..4].try_into().expect("4 bytes"));
            let record = queue::encode(Signal::Traces, spans, &[&value[4..]]);
            new.insert(key.value(), record.as_slice())?;
        }
    }
    tx.delete_table(PENDING_V1)?;
    tx.delete_table(QUEUE_V1)?;
    Ok(())
}

pub fn recover(db: &Database) -> Result<Recovered, StoreError> {
    let tx = db.begin_read()?;
    let pending_table = tx.open_table(PENDING)?;
    let queue_table = tx.open_table(QUEUE)?;
    let mut recovered = Recovered::default();
    for entry in pending_table.iter()? {
        let (key, value) = entry?;
        let (trace_id, signal, items, _) = split_pending(value.value());
        recovered.pending.push(RecoveredChunk {
            key: key.value(),
            trace_id,
            signal,
            items,
        });
    }
    for entry in queue_table.iter()? {
        let (_, value) = entry?;
        recovered.queued_items += u64::from(queue::decode(value.value()).1);
        recovered.queued_records += 1;
    }
    let last_pending = pending_table.last()?.map(|(k, _)| k.value());
    let last_queued = queue_table.last()?.map(|(k, _)| k.value());
    recovered.next_key = last_pending.max(last_queued).map_or(0, |k| k + 1);
    debug_assert_eq!(queue_table.len()?, recovered.queued_records);
    Ok(recovered)
}

pub fn pending_value(trace_id: &[u8; 16], signal: Signal, items: u32, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(21 + payload.len());
    value.extend_from_slice(trace_id);
    value.push(signal as u8);
    value.extend_from_slice(&items.to_le_bytes());
    value.extend_from_slice(payload);
    value
}

pub fn split_pending(value: &[u8]) -> ([u8; 16], Signal, u32, &[u8]) {
    let trace_id: [u8; 16] = value[..16].try_into().expect("16 bytes");
    let items = u32::from_le_bytes(value[17..21].try_into().expect("4 bytes"));
    (trace_id, signal_from_byte(value[16]), items, &value[21..])
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
            .insert(7, pending_value(&[1; 16], Signal::Logs, 3, b"x").as_slice())
            .unwrap();
        tx.open_table(QUEUE)
            .unwrap()
            .insert(
                9,
                queue::encode(Signal::Traces, 5, &[b"a", b"b"]).as_slice(),
            )
            .unwrap();
        tx.commit().unwrap();
        drop(db);
        let (_, recovered) = open(&config).unwrap();
        assert_eq!(
            recovered.pending,
            vec![RecoveredChunk {
                key: 7,
                trace_id: [1; 16],
                signal: Signal::Logs,
                items: 3
            }]
        );
        assert_eq!(
            (
                recovered.queued_items,
                recovered.queued_records,
                recovered.next_key
            ),
            (5, 1, 10)
        );
    }

    #[test]
    fn a_schema_1_file_is_migrated_keeping_every_record_and_its_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", 1)
                .unwrap();
            let mut v1 = [0u8; 20 + 3];
            v1[..16].copy_from_slice(&[4; 16]);
            v1[16..20].copy_from_slice(&2u32.to_le_bytes());
            v1[20..].copy_from_slice(b"abc");
            tx.open_table(PENDING_V1)
                .unwrap()
                .insert(3, v1.as_slice())
                .unwrap();
            let mut q = 6u32.to_le_bytes().to_vec();
            q.extend_from_slice(b"spans");
            tx.open_table(QUEUE_V1)
                .unwrap()
                .insert(8, q.as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let config = StorageConfig {
            path,
            cache_size_mib: 4,
        };
        let (db, recovered) = open(&config).unwrap();
        assert_eq!(
            recovered.pending,
            vec![RecoveredChunk {
                key: 3,
                trace_id: [4; 16],
                signal: Signal::Traces,
                items: 2
            }]
        );
        assert_eq!((recovered.queued_items, recovered.next_key), (6, 9));
        let tx = db.begin_read().unwrap();
        let queue = tx.open_table(QUEUE).unwrap();
        let value = queue.get(8).unwrap().unwrap();
        assert_eq!(
            queue::decode(value.value()),
            (Signal::Traces, 6, &b"spans"[..])
        );
        let pending = tx.open_table(PENDING).unwrap();
        let value = pending.get(3).unwrap().unwrap();
        assert_eq!(split_pending(value.value()).3, b"abc");
        let meta = tx.open_table(META).unwrap();
        assert_eq!(
            meta.get("schema_version").unwrap().unwrap().value(),
            SCHEMA_VERSION
        );
    }
}
