//! Groups spans into whole traces. Pure bookkeeping over an injected clock: the span bytes live in
//! the redb file, this only tracks which stored chunks belong to which trace and when each trace
//! is complete, so memory stays small however long `idle_wait` is.

pub mod config;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

pub use config::AssemblerConfig;

use crate::core::TraceId;

/// Why a trace left the assembler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseReason {
    /// No span for `idle_wait`.
    Idle,
    /// `wait_after_root` elapsed after the root span arrived.
    RootWait,
    /// `max_trace_age` reached.
    MaxAge,
    /// `max_spans_per_trace` reached.
    MaxSpans,
    /// Shutdown released everything.
    Shutdown,
}

impl ReleaseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::Idle => "idle",
            ReleaseReason::RootWait => "root",
            ReleaseReason::MaxAge => "max_age",
            ReleaseReason::MaxSpans => "max_spans",
            ReleaseReason::Shutdown => "shutdown",
        }
    }
}

#[derive(Debug)]
struct Buffered {
    first_seen: Instant,
    last_seen: Instant,
    root_seen: Option<Instant>,
    keys: Vec<u64>,
    spans: u64,
    deadline: Instant,
    reason: ReleaseReason,
}

/// A trace ready for the pipeline: the stored chunks that make it up, oldest first.
#[derive(Debug, PartialEq, Eq)]
pub struct ReleasedTrace {
    pub trace_id: TraceId,
    pub keys: Vec<u64>,
    pub spans: u64,
    pub reason: ReleaseReason,
}

/// Where an incoming chunk goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Joins (or starts) a buffered trace.
    Buffer,
    /// Its trace was already released: pass it on at once.
    Late,
}

pub struct Assembler {
    config: AssemblerConfig,
    traces: HashMap<TraceId, Buffered>,
    deadlines: BTreeSet<(Instant, TraceId)>,
    released: HashSet<TraceId>,
    released_order: VecDeque<TraceId>,
    buffered_spans: u64,
}

impl Assembler {
    pub fn new(config: AssemblerConfig) -> Self {
        Self {
            config,
            traces: HashMap::new(),
            deadlines: BTreeSet::new(),
            released: HashSet::new(),
            released_order: VecDeque::new(),
            buffered_spans: 0,
        }
    }

    pub fn traces_in_flight(&self) -> usize {
        self.traces.len()
    }

    pub fn spans_in_flight(&self) -> u64 {
        self.buffered_spans
    }

    /// Where a chunk of `trace_id` would go, without changing anything.
    pub fn placement(&self, trace_id: &TraceId) -> Placement {
        if !self.traces.contains_key(trace_id) && self.released.contains(trace_id) {
            Placement::Late
        } else {
            Placement::Buffer
        }
    }

    pub fn is_buffered(&self, trace_id: &TraceId) -> bool {
        self.traces.contains_key(trace_id)
    }

    /// How late a release may be: a small fraction of the shortest wait, at most 100ms, so due
    /// traces are released in batches rather than one wake-up each.
    pub fn release_tick(&self) -> Duration {
        let shortest = match self.config.wait_after_root {
            Some(root) => root.get().min(self.config.idle_wait.get()),
            None => self.config.idle_wait.get(),
        };
        (shortest / 20).clamp(Duration::from_millis(1), Duration::from_millis(100))
    }

    /// Forgets every buffered trace (the caller re-adds them from storage).
    pub fn reset(&mut self) {
        self.traces.clear();
        self.deadlines.clear();
        self.buffered_spans = 0;
    }

    /// How many traces can still start before `max_traces` is reached.
    pub fn free_trace_slots(&self) -> usize {
        self.config.max_traces.saturating_sub(self.traces.len())
    }

    /// Records a stored chunk of a buffered trace (call only for `Placement::Buffer`).
    pub fn add(&mut self, now: Instant, trace_id: TraceId, key: u64, spans: u32, has_root: bool) {
        let config = &self.config;
        let trace = self.traces.entry(trace_id).or_insert_with(|| Buffered {
            first_seen: now,
            last_seen: now,
            root_seen: None,
            keys: Vec::new(),
            spans: 0,
            deadline: now,
            reason: ReleaseReason::Idle,
        });
        if !trace.keys.is_empty() {
            self.deadlines.remove(&(trace.deadline, trace_id));
        }
        trace.keys.push(key);
        trace.spans += u64::from(spans);
        trace.last_seen = now;
        if has_root && trace.root_seen.is_none() {
            trace.root_seen = Some(now);
        }
        self.buffered_spans += u64::from(spans);
        let (deadline, reason) = deadline_of(config, trace);
        trace.deadline = deadline;
        trace.reason = reason;
        self.deadlines.insert((deadline, trace_id));
    }

    /// The earliest moment a trace becomes due, if any is buffered.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Removes and returns every trace that is due at `now`.
    pub fn release_due(&mut self, now: Instant) -> Vec<ReleasedTrace> {
        let mut due = Vec::new();
        while let Some(&(deadline, trace_id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            due.push(self.take(trace_id, None));
        }
        due
    }

    /// Removes and returns every buffered trace (shutdown).
    pub fn release_all(&mut self) -> Vec<ReleasedTrace> {
        let ids: Vec<TraceId> = self.deadlines.iter().map(|(_, id)| *id).collect();
        self.deadlines.clear();
        ids.into_iter()
            .map(|id| self.take(id, Some(ReleaseReason::Shutdown)))
            .collect()
    }

    fn take(&mut self, trace_id: TraceId, reason: Option<ReleaseReason>) -> ReleasedTrace {
        let trace = self
            .traces
            .remove(&trace_id)
            .expect("deadline entries track buffered traces");
        self.buffered_spans -= trace.spans;
        self.remember_released(trace_id);
        ReleasedTrace {
            trace_id,
            keys: trace.keys,
            spans: trace.spans,
            reason: reason.unwrap_or(trace.reason),
        }
    }

    fn remember_released(&mut self, trace_id: TraceId) {
        if self.config.remember_released_traces == 0 {
            return;
        }
        if self.released.insert(trace_id) {
            self.released_order.push_back(trace_id);
        }
        while self.released_order.len() > self.config.remember_released_traces {
            if let Some(old) = self.released_order.pop_front() {
                self.released.remove(&old);
            }
        }
    }
}

fn deadline_of(config: &AssemblerConfig, trace: &Buffered) -> (Instant, ReleaseReason) {
    if trace.spans >= config.max_spans_per_trace as u64 {
        return (trace.last_seen, ReleaseReason::MaxSpans);
    }
    let mut best = (
        trace.last_seen + config.idle_wait.get(),
        ReleaseReason::Idle,
    );
    if let (Some(root), Some(wait)) = (trace.root_seen, config.wait_after_root) {
        let after_root = root + wait.get();
        if after_root < best.0 {
            best = (after_root, ReleaseReason::RootWait);
        }
    }
    let age_limit = trace.first_seen + config.max_trace_age.get();
    if age_limit < best.0 {
        best = (age_limit, ReleaseReason::MaxAge);
    }
    best
}

/// How long to wait for the next deadline, capped so the caller still wakes up now and then.
pub fn wait_until(next: Option<Instant>, now: Instant, cap: Duration) -> Duration {
    next.map_or(cap, |d| d.saturating_duration_since(now).min(cap))
}

#[cfg(test)]
mod tests;
