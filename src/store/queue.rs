//! The persistent sending queue (`queue_v2`): traces released by the engine wait here, in
//! delivery order, until the downstream acknowledged them. Two halves, after Vector's disk buffer
//! (`disk_v2/{writer,reader}.rs`): a [`QueueWriter`] used inside the engine's own write
//! transaction, so a release and its removal from `pending` commit together, and a
//! [`QueueReader`] that keeps a cursor and cuts batches. Nothing else opens the table.
//! Acknowledgement goes through the engine, the file's only writer (`pipeline::Acknowledger`).

use super::{QUEUE, StoreError, signal_from_byte};
use crate::core::Signal;
use redb::{Database, ReadableDatabase, WriteTransaction};
use std::ops::Range;
use std::sync::Arc;

/// Adds records to the queue and removes acknowledged ones, inside the caller's transaction:
/// nothing is visible to a reader before that transaction commits.
pub struct QueueWriter<'t> {
    table: redb::Table<'t, u64, &'static [u8]>,
}

impl<'t> QueueWriter<'t> {
    pub fn open(tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            table: tx.open_table(QUEUE)?,
        })
    }

    /// Queues `payload` (a `TracesData` or `LogsData` holding `items` spans or log records)
    /// under `key`; keys give the delivery order.
    pub fn push(
        &mut self,
        key: u64,
        signal: Signal,
        items: u32,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        self.table
            .insert(key, encode(signal, items, &[payload]).as_slice())?;
        Ok(())
    }

    /// Removes an acknowledged record (a key already gone is not an error).
    pub fn remove(&mut self, key: u64) -> Result<(), StoreError> {
        self.table.remove(key)?;
        Ok(())
    }
}

/// How large a batch may grow.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Spans (or log records) per batch.
    pub max_items: u64,
    /// Payload bytes per batch; a single record larger than this still makes a batch alone.
    pub max_bytes: usize,
}

/// Consecutive queue records of one signal, their payloads concatenated (concatenated
/// `TracesData` or `LogsData` messages are one message).
#[derive(Debug)]
pub struct Batch {
    pub signal: Signal,
    /// Spans or log records.
    pub items: u64,
    pub payload: Vec<u8>,
    /// Each record's key, item count and byte range in `payload`, in queue order.
    pub records: Vec<QueuedRecord>,
    /// Stopped at a limit or a change of signal: more is waiting, so there is no point waiting
    /// to fill it.
    pub full: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecord {
    pub key: u64,
    pub items: u64,
    pub range: Range<usize>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn keys(&self) -> Vec<u64> {
        self.records.iter().map(|r| r.key).collect()
    }
}

/// Reads the queue in order from a cursor. Records stay in the table until acknowledged; the
/// cursor only says which ones were handed out already.
pub struct QueueReader {
    db: Arc<Database>,
    cursor: u64,
}

impl QueueReader {
    /// A reader from the start of the queue (after a restart every record left is sent again).
    pub fn new(db: Arc<Database>) -> Self {
        Self { db, cursor: 0 }
    }

    /// The next batch after the cursor, without moving it (a batch not yet full may be read
    /// again once more records arrived). The records were usually just written, so this hits
    /// redb's page cache and is cheap enough to run inline.
    pub fn peek(&self, limits: BatchLimits) -> Result<Batch, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(QUEUE)?;
        let mut batch = Batch {
            signal: Signal::Traces,
            items: 0,
            payload: Vec::new(),
            records: Vec::new(),
            full: false,
        };
        for entry in table.range(self.cursor..)? {
            let (key, value) = entry?;
            let (signal, items, payload) = decode(value.value());
            let items = u64::from(items);
            if batch.records.is_empty() {
                batch.signal = signal;
            } else if signal != batch.signal {
                // The next signal waits for its own request; nothing to gain by waiting here.
                batch.full = true;
                break;
            } else if batch.items + items > limits.max_items
                || batch.payload.len() + payload.len() > limits.max_bytes
            {
                batch.full = true;
                break;
            }
            batch.items += items;
            let start = batch.payload.len();
            batch.payload.extend_from_slice(payload);
            batch.records.push(QueuedRecord {
                key: key.value(),
                items,
                range: start..batch.payload.len(),
            });
            if batch.items >= limits.max_items {
                batch.full = true;
                break;
            }
        }
        Ok(batch)
    }

    /// Moves the cursor past `batch`: it is being sent, and the next read starts after it.
    pub fn advance_past(&mut self, batch: &Batch) {
        if let Some(last) = batch.records.last() {
            self.cursor = self.cursor.max(last.key + 1);
        }
    }
}

/// Record layout: signal (u8) · item count (u32 LE) · `TracesData` or `LogsData` bytes.
pub(super) fn encode(signal: Signal, items: u32, payload_parts: &[&[u8]]) -> Vec<u8> {
    let len = payload_parts.iter().map(|p| p.len()).sum::<usize>();
    let mut value = Vec::with_capacity(5 + len);
    value.push(signal as u8);
    value.extend_from_slice(&items.to_le_bytes());
    for part in payload_parts {
        value.extend_from_slice(part);
    }
    value
}

pub(super) fn decode(value: &[u8]) -> (Signal, u32, &[u8]) {
    (
        signal_from_byte(value[0]),
        u32::from_le_bytes(value[1..5].try_into().expect("4 bytes")),
        &value[5..],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StorageConfig, open};

    fn store() -> (tempfile::TempDir, Arc<Database>) {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = open(&StorageConfig {
            path: dir.path().join("queue.redb"),
            cache_size_mib: 4,
        })
        .unwrap();
        (dir, Arc::new(db))
    }

    /// Pushes `(key, signal, items, payload)` records in one committed transaction.
    fn push_all(db: &Database, records: &[(u64, Signal, u32, &[u8])]) {
        let tx = db.begin_write().unwrap();
        {
            let mut writer = QueueWriter::open(&tx).unwrap();
            for &(key, signal, items, payload) in records {
                writer.push(key, signal, items, payload).unwrap();
            }
        }
        tx.commit().unwrap();
    }

    const ROOMY: BatchLimits = BatchLimits {
        max_items: 1000,
        max_bytes: 1 << 20,
    };

    #[test]
    fn writes_are_visible_only_once_the_engines_transaction_commits() {
        let (_dir, db) = store();
        let reader = QueueReader::new(db.clone());
        let tx = db.begin_write().unwrap();
        {
            let mut writer = QueueWriter::open(&tx).unwrap();
            writer.push(0, Signal::Traces, 2, b"aa").unwrap();
        }
        tx.abort().unwrap();
        assert!(reader.peek(ROOMY).unwrap().is_empty(), "aborted push");

        push_all(
            &db,
            &[(3, Signal::Traces, 2, b"aa"), (5, Signal::Traces, 1, b"b")],
        );
        let batch = reader.peek(ROOMY).unwrap();
        assert_eq!(batch.keys(), vec![3, 5]);
        assert_eq!(batch.items, 3);
        assert_eq!(batch.payload, b"aab");
        assert_eq!(batch.records[1].range, 2..3);
        assert!(!batch.full, "nothing more is waiting");
    }

    #[test]
    fn batches_stop_at_item_and_byte_limits_and_at_a_change_of_signal() {
        let (_dir, db) = store();
        push_all(
            &db,
            &[
                (0, Signal::Traces, 2, b"aa"),
                (1, Signal::Traces, 2, b"bb"),
                (2, Signal::Traces, 2, b"cccccc"),
                (3, Signal::Logs, 1, b"l"),
                (4, Signal::Traces, 1, b"t"),
            ],
        );
        let mut reader = QueueReader::new(db.clone());
        let by_items = reader
            .peek(BatchLimits {
                max_items: 3,
                max_bytes: 100,
            })
            .unwrap();
        assert_eq!((by_items.keys(), by_items.full), (vec![0], true));
        let limits = BatchLimits {
            max_items: 100,
            max_bytes: 5,
        };
        let by_bytes = reader.peek(limits).unwrap();
        assert_eq!((by_bytes.keys(), by_bytes.full), (vec![0, 1], true));

        reader.advance_past(&by_bytes);
        // One record over the byte limit still goes, alone; the logs wait for their own batch.
        let oversize = reader.peek(limits).unwrap();
        assert_eq!((oversize.keys(), oversize.full), (vec![2], true));
        reader.advance_past(&oversize);
        let logs = reader.peek(ROOMY).unwrap();
        assert_eq!(
            (logs.signal, logs.keys(), logs.full),
            (Signal::Logs, vec![3], true)
        );
        reader.advance_past(&logs);
        let last = reader.peek(ROOMY).unwrap();
        assert_eq!(
            (last.signal, last.keys(), last.full),
            (Signal::Traces, vec![4], false)
        );
        reader.advance_past(&last);
        assert!(reader.peek(ROOMY).unwrap().is_empty());
    }

    #[test]
    fn removed_records_are_gone_and_the_rest_survive_a_new_reader() {
        let (_dir, db) = store();
        push_all(
            &db,
            &[(0, Signal::Traces, 1, b"a"), (1, Signal::Logs, 4, b"b")],
        );
        let tx = db.begin_write().unwrap();
        {
            let mut writer = QueueWriter::open(&tx).unwrap();
            writer.remove(0).unwrap();
            writer.remove(7).unwrap();
        }
        tx.commit().unwrap();
        let batch = QueueReader::new(db.clone()).peek(ROOMY).unwrap();
        assert_eq!(
            (batch.signal, batch.keys(), batch.items),
            (Signal::Logs, vec![1], 4)
        );
        let recovered = crate::store::recover(&db).unwrap();
        assert_eq!((recovered.queued_records, recovered.queued_items), (1, 4));
    }
}
