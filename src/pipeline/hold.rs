//! Traces held back from export while their topics are worked out. A released trace's chunks stay
//! in the `pending` table; the engine queues them once the trace's [`EnrichmentTicket`] comes back
//! (every clone dropped, with whatever attributes the stages added) or once
//! `max_enrichment_delay` has passed — whichever comes first. A held trace is never lost: a crash
//! leaves its chunks pending, and the next start re-assembles them.

use crate::core::{EnrichmentTicket, TraceId};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

/// A ticket for a trace the engine holds: its attributes arrive on `completions` when the last
/// clone is dropped, and `wake` rouses the engine to release it.
pub(super) fn ticket(
    trace_id: TraceId,
    completions: Sender<(TraceId, Vec<KeyValue>)>,
    wake: impl Fn() + Send + Sync + 'static,
) -> EnrichmentTicket {
    EnrichmentTicket::new(
        trace_id,
        Box::new(move |trace_id, attributes| {
            // Unbounded, so a ticket dropped on the engine thread itself cannot block it. A
            // closed channel means the engine stopped; the held chunks stay pending for the
            // next start.
            if completions.send((trace_id, attributes)).is_ok() {
                wake();
            }
        }),
    )
}

/// A trace waiting for its ticket.
#[derive(Debug)]
pub(super) struct HeldTrace {
    /// Its chunks in the `pending` table, oldest first (late chunks appended).
    pub keys: Vec<u64>,
    /// Spans and log records in those chunks.
    pub items: u64,
    pub deadline: Instant,
}

/// The engine's held traces, with their deadlines in release order (the delay is the same for
/// all, so that order is deadline order).
#[derive(Debug, Default)]
pub(super) struct Held {
    traces: HashMap<TraceId, HeldTrace>,
    order: VecDeque<(Instant, TraceId)>,
    items: u64,
}

impl Held {
    pub fn insert(&mut self, trace_id: TraceId, keys: Vec<u64>, items: u64, deadline: Instant) {
        self.items += items;
        self.order.push_back((deadline, trace_id));
        self.traces.insert(
            trace_id,
            HeldTrace {
                keys,
                items,
                deadline,
            },
        );
    }

    pub fn contains(&self, trace_id: &TraceId) -> bool {
        self.traces.contains_key(trace_id)
    }

    /// A late chunk of a held trace leaves with it.
    pub fn append(&mut self, trace_id: &TraceId, key: u64, items: u64) {
        if let Some(trace) = self.traces.get_mut(trace_id) {
            trace.keys.push(key);
            trace.items += items;
            self.items += items;
        }
    }

    pub fn take(&mut self, trace_id: &TraceId) -> Option<HeldTrace> {
        let trace = self.traces.remove(trace_id)?;
        self.items -= trace.items;
        Some(trace)
    }

    /// Traces whose deadline passed.
    pub fn take_due(&mut self, now: Instant) -> Vec<(TraceId, HeldTrace)> {
        let mut due = Vec::new();
        while let Some(&(deadline, trace_id)) = self.order.front() {
            if deadline > now {
                break;
            }
            self.order.pop_front();
            // Entries of traces already released by their ticket are skipped; a trace released
            // and held again has a later entry of its own.
            if self
                .traces
                .get(&trace_id)
                .is_some_and(|t| t.deadline == deadline)
            {
                due.extend(self.take(&trace_id).map(|t| (trace_id, t)));
            }
        }
        due
    }

    pub fn take_all(&mut self) -> Vec<(TraceId, HeldTrace)> {
        self.order.clear();
        self.items = 0;
        self.traces.drain().collect()
    }

    pub fn next_deadline(&mut self) -> Option<Instant> {
        // Drop stale entries so the engine does not wake for traces already gone.
        while let Some(&(deadline, trace_id)) = self.order.front() {
            if self
                .traces
                .get(&trace_id)
                .is_some_and(|t| t.deadline == deadline)
            {
                return Some(deadline);
            }
            self.order.pop_front();
        }
        None
    }

    pub fn len(&self) -> usize {
        self.traces.len()
    }

    /// Spans and log records held.
    pub fn items(&self) -> u64 {
        self.items
    }
}

/// Attributes of recently enriched traces, for their late spans. Bounded: the oldest entries go
/// first.
#[derive(Debug)]
pub(super) struct RecentlyEnriched {
    capacity: usize,
    attributes: HashMap<TraceId, Arc<Vec<KeyValue>>>,
    order: VecDeque<TraceId>,
}

impl RecentlyEnriched {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            attributes: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn insert(&mut self, trace_id: TraceId, attributes: Arc<Vec<KeyValue>>) {
        if self.capacity == 0 {
            return;
        }
        if self.attributes.insert(trace_id, attributes).is_none() {
            self.order.push_back(trace_id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.attributes.remove(&old);
            }
        }
    }

    pub fn get(&self, trace_id: &TraceId) -> Option<Arc<Vec<KeyValue>>> {
        self.attributes.get(trace_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Command;
    use std::time::Duration;

    #[test]
    fn deadlines_come_due_in_order_and_released_traces_are_skipped() {
        let start = Instant::now();
        let mut held = Held::default();
        held.insert([1; 16], vec![1], 2, start + Duration::from_secs(1));
        held.insert([2; 16], vec![2], 3, start + Duration::from_secs(2));
        held.append(&[2; 16], 7, 1);
        assert_eq!(held.items(), 6);
        assert!(held.take(&[1; 16]).is_some());
        assert_eq!(held.next_deadline(), Some(start + Duration::from_secs(2)));
        assert!(
            held.take_due(start + Duration::from_millis(1500))
                .is_empty()
        );
        let due = held.take_due(start + Duration::from_secs(2));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.keys, vec![2, 7]);
        assert_eq!(held.items(), 0);
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn dropping_the_last_ticket_clone_reports_the_attributes_once() {
        let (wake, woken) = std::sync::mpsc::sync_channel(4);
        let (sender, receiver) = std::sync::mpsc::channel();
        let ticket = ticket([9; 16], sender, move || {
            let _ = wake.try_send(Command::Wake);
        });
        let other = ticket.clone();
        ticket.add([KeyValue {
            key: "a".into(),
            ..Default::default()
        }]);
        drop(ticket);
        assert!(receiver.try_recv().is_err(), "a clone is still in flight");
        other.add([KeyValue {
            key: "a".into(),
            ..Default::default()
        }]);
        drop(other);
        let (trace_id, attributes) = receiver.try_recv().expect("the ticket's report");
        assert_eq!(trace_id, [9; 16]);
        assert_eq!(attributes.len(), 1, "a repeated key is kept once");
        assert!(matches!(woken.try_recv(), Ok(Command::Wake)));
    }

    #[test]
    fn recently_enriched_is_bounded() {
        let mut recent = RecentlyEnriched::new(2);
        for i in 0..3u8 {
            recent.insert([i; 16], Arc::new(Vec::new()));
        }
        assert!(recent.get(&[0; 16]).is_none());
        assert!(recent.get(&[2; 16]).is_some());
    }
}
