//! The sending queue as the exporter sees it: a reader with a cursor, a wake-up when the engine
//! queued more, and one handle to acknowledge what was sent. The engine writes the queue inside
//! its own commit (`store::queue::QueueWriter`) and is the only one to delete from it, so an
//! acknowledgement is a message to the engine, which removes the records with its next commit.

use super::EngineHandle;
use crate::store::StoreError;
use crate::store::queue::{Batch, BatchLimits, QueueReader};
use redb::Database;
use std::sync::Arc;
use tokio::sync::Notify;

/// The exporter's end of the queue: reads batches in order and hands out [`Acknowledger`]s.
pub struct QueueConsumer {
    reader: QueueReader,
    grew: Arc<Notify>,
    acknowledger: Acknowledger,
}

impl QueueConsumer {
    /// Reads `db`'s queue from its start; acknowledgements go to `engine`.
    pub fn new(db: Arc<Database>, engine: &EngineHandle) -> Self {
        Self {
            reader: QueueReader::new(db),
            grew: engine.queue_grew.clone(),
            acknowledger: Acknowledger {
                engine: engine.clone(),
            },
        }
    }

    /// The next batch after the cursor, which does not move (see [`QueueConsumer::take`]).
    pub fn peek(&self, limits: BatchLimits) -> Result<Batch, StoreError> {
        self.reader.peek(limits)
    }

    /// Marks `batch` as being sent: the next batch starts after it.
    pub fn take(&mut self, batch: &Batch) {
        self.reader.advance_past(batch);
    }

    /// Completes once the engine queued more records (or already had since the last call).
    pub fn grew(&self) -> Arc<Notify> {
        self.grew.clone()
    }

    pub fn acknowledger(&self) -> Acknowledger {
        self.acknowledger.clone()
    }
}

/// Tells the engine a batch is done with — delivered, or given up on and counted — so its
/// records leave the queue. Cheap to clone into each send.
#[derive(Clone)]
pub struct Acknowledger {
    engine: EngineHandle,
}

impl Acknowledger {
    pub async fn acknowledge(&self, batch: &Batch) {
        self.engine.delivered(batch.keys(), batch.items).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::{Assembler, AssemblerConfig};
    use crate::core::{Signal, TraceChunk};
    use crate::pipeline::{Engine, PassThrough};
    use crate::store::{StorageConfig, open};
    use crate::telemetry::metrics::Metrics;

    const LIMITS: BatchLimits = BatchLimits {
        max_items: 100,
        max_bytes: 1 << 20,
    };

    fn chunk(trace: u8, items: u32) -> TraceChunk {
        TraceChunk {
            trace_id: [trace; 16],
            signal: Signal::Traces,
            items,
            has_root: true,
            payload: vec![trace; 4],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acknowledged_batch_leaves_the_queue_and_the_rest_stays_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageConfig {
            path: dir.path().join("q.redb"),
            cache_size_mib: 4,
        };
        let (db, recovered) = open(&storage).unwrap();
        let db = Arc::new(db);
        let metrics = Arc::new(Metrics::new());
        let (engine, inbox) = EngineHandle::channel();
        let thread = Engine::start(
            inbox,
            db.clone(),
            recovered,
            Assembler::new(AssemblerConfig::default()),
            Box::new(PassThrough),
            1000,
            None,
            metrics.clone(),
        );
        let mut queue = QueueConsumer::new(db.clone(), &engine);
        engine.ingest(vec![chunk(1, 2)]).await.unwrap();
        engine.release_all().await;
        engine.ingest(vec![chunk(2, 3)]).await.unwrap();
        engine.release_all().await;

        let first = queue
            .peek(BatchLimits {
                max_items: 2,
                ..LIMITS
            })
            .unwrap();
        assert_eq!((first.records.len(), first.items, first.full), (1, 2, true));
        queue.take(&first);
        let second = queue.peek(LIMITS).unwrap();
        assert_eq!((second.records.len(), second.items), (1, 3));
        queue.take(&second);
        assert!(queue.peek(LIMITS).unwrap().is_empty(), "cursor past both");

        queue.acknowledger().acknowledge(&first).await;
        // Stop is handled after the acknowledgement: the thread ends once both are committed.
        engine.stop().await;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        assert_eq!(metrics.exporter_queue_size.get(), 3);
        let left = QueueReader::new(db.clone()).peek(LIMITS).unwrap();
        assert_eq!((left.keys(), left.items), (second.keys(), 3));
    }
}
