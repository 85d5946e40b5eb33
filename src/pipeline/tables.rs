//! What one engine commit writes: queue records for released traces (through the queue's
//! writer), and the pending records a trace is read back from.

use crate::core::{AssembledTrace, Signal, TraceChunk, TraceId};
use crate::store::queue::QueueWriter;
use crate::store::{self, StoreError};
use redb::ReadableTable;

#[derive(Default)]
pub(super) struct CommitOutcome {
    pub(super) queued_records: u64,
    pub(super) queued_items: u64,
    pub(super) late_spans: u64,
    pub(super) late_log_records: u64,
    pub(super) late_spans_enriched: u64,
    /// Held traces released, by outcome.
    pub(super) enrichment: std::collections::HashMap<&'static str, u64>,
}

/// What one commit writes to the queue: the next free key and the counts.
pub(super) struct Output {
    pub(super) key: u64,
    pub(super) outcome: CommitOutcome,
}

impl Output {
    pub(super) fn queue(
        &mut self,
        queue: &mut QueueWriter<'_>,
        signal: Signal,
        items: u64,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        queue.push(self.key, signal, items as u32, payload)?;
        self.key += 1;
        self.outcome.queued_records += 1;
        self.outcome.queued_items += items;
        Ok(())
    }

    /// Spans before their logs, so a downstream sees the trace the logs point to.
    pub(super) fn queue_trace(
        &mut self,
        queue: &mut QueueWriter<'_>,
        trace: &AssembledTrace,
    ) -> Result<(), StoreError> {
        let records = [
            (Signal::Traces, trace.spans, &trace.payload),
            (Signal::Logs, trace.log_records, &trace.logs),
        ];
        for (signal, items, payload) in records {
            if items == 0 && payload.is_empty() {
                continue;
            }
            self.queue(queue, signal, items, payload)?;
        }
        Ok(())
    }
}

pub(super) fn pending_value(chunk: &TraceChunk) -> Vec<u8> {
    store::pending_value(&chunk.trace_id, chunk.signal, chunk.items, &chunk.payload)
}

/// A trace's stored chunks, concatenated per signal (concatenated `TracesData` or `LogsData`
/// messages are one message).
pub(super) fn read_trace(
    pending: &redb::Table<u64, &[u8]>,
    trace_id: TraceId,
    keys: &[u64],
) -> Result<AssembledTrace, StoreError> {
    let mut assembled = AssembledTrace {
        trace_id,
        ..AssembledTrace::default()
    };
    for k in keys {
        if let Some(value) = pending.get(k)? {
            let (_, signal, items, payload) = store::split_pending(value.value());
            match signal {
                Signal::Traces => {
                    assembled.spans += u64::from(items);
                    assembled.payload.extend_from_slice(payload);
                }
                Signal::Logs => {
                    assembled.log_records += u64::from(items);
                    assembled.logs.extend_from_slice(payload);
                }
            }
        }
    }
    Ok(assembled)
}
