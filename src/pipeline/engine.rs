//! The engine thread: the only writer of the redb file. It takes ingested chunks, releases
//! complete traces into the sending queue, and deletes what the exporter delivered — batching all
//! of it into one durable commit per wake-up (group commit), so an OK costs one fsync shared by
//! every request that arrived meanwhile.

use super::TraceHook;
use super::enrich::Enrichment;
use super::hold::{Held, HeldTrace, RecentlyEnriched, ticket};
use super::tables::{CommitOutcome, Output, pending_value, read_trace};
use crate::assemble::{Assembler, Placement, ReleasedTrace};
use crate::core::{Signal, TraceChunk, TraceId, UNTRACED};
use crate::store::queue::QueueWriter;
use crate::store::{self, PENDING, StoreError};
use crate::telemetry::metrics::{Metrics, ReasonLabel};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use redb::{Database, Durability};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};

/// Why the engine did not accept a request; the receivers turn both into retryable errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Buffer or queue full: the client should retry after the given delay.
    Full {
        what: &'static str,
        retry_after: Duration,
    },
    /// The redb commit failed (e.g. disk full); nothing of the request was kept.
    Storage(String),
    /// The engine is shutting down.
    Stopped,
    /// The request alone holds more spans than the whole sending queue; retrying cannot help.
    TooLarge,
}

pub enum Command {
    Ingest {
        chunks: Vec<TraceChunk>,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// The downstream acknowledged (or permanently refused) these queue records, which held
    /// `items` spans or log records.
    Delivered { keys: Vec<u64>, items: u64 },
    /// Release every buffered trace into the queue now (shutdown).
    ReleaseAll { reply: oneshot::Sender<()> },
    /// A held trace's ticket came back (on the completions channel): wake up and release it.
    Wake,
    /// Finish the commands received so far and stop, whoever still holds a handle.
    Stop,
}

/// Cloneable sender side of the engine.
#[derive(Clone)]
pub struct EngineHandle {
    sender: SyncSender<Command>,
    /// Woken whenever records enter the sending queue.
    pub queue_grew: Arc<Notify>,
}

/// The engine's receiving end. Made together with its handle before the engine starts, so what
/// is built earlier (the topic backfill) can hold the handle; commands wait in the channel.
pub struct EngineInbox {
    receiver: Receiver<Command>,
    sender: SyncSender<Command>,
    queue_grew: Arc<Notify>,
}

impl EngineHandle {
    /// A handle and the inbox an engine started later reads.
    pub fn channel() -> (EngineHandle, EngineInbox) {
        let (sender, receiver) = sync_channel(1024);
        let queue_grew = Arc::new(Notify::new());
        let handle = EngineHandle {
            sender: sender.clone(),
            queue_grew: queue_grew.clone(),
        };
        (
            handle,
            EngineInbox {
                receiver,
                sender,
                queue_grew,
            },
        )
    }

    pub async fn ingest(&self, chunks: Vec<TraceChunk>) -> Result<(), Refusal> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Ingest { chunks, reply }).await?;
        answer.await.map_err(|_| Refusal::Stopped)?
    }

    pub async fn delivered(&self, keys: Vec<u64>, items: u64) {
        let _ = self.send(Command::Delivered { keys, items }).await;
    }

    pub async fn release_all(&self) {
        let (reply, answer) = oneshot::channel();
        if self.send(Command::ReleaseAll { reply }).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Asks the engine thread to finish and exit.
    pub async fn stop(&self) {
        let _ = self.send(Command::Stop).await;
    }

    async fn send(&self, command: Command) -> Result<(), Refusal> {
        // The channel is bounded; a full channel means the engine is behind, so wait off the
        // async workers rather than grow memory.
        match self.sender.try_send(command) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(Refusal::Stopped),
            Err(std::sync::mpsc::TrySendError::Full(command)) => {
                let sender = self.sender.clone();
                tokio::task::spawn_blocking(move || {
                    sender.send(command).map_err(|_| Refusal::Stopped)
                })
                .await
                .map_err(|_| Refusal::Stopped)?
            }
        }
    }
}

pub struct Engine {
    db: Arc<Database>,
    assembler: Assembler,
    hook: Box<dyn TraceHook>,
    metrics: Arc<Metrics>,
    queue_grew: Arc<Notify>,
    next_key: u64,
    /// Spans and log records in the sending queue.
    queued_items: u64,
    queue_capacity: u64,
    release_tick: Duration,
    /// Deletes of delivered records whose commit failed, retried with the next commit.
    retry_deletes: (Vec<u64>, u64),
    /// Set when released traces wait for their topics.
    enrichment: Option<Enrichment>,
    held: Held,
    recent: RecentlyEnriched,
    /// Tickets report on `completions` and wake the engine through `own_sender`.
    own_sender: SyncSender<Command>,
    completions: (
        std::sync::mpsc::Sender<(TraceId, Vec<KeyValue>)>,
        Receiver<(TraceId, Vec<KeyValue>)>,
    ),
}

/// Back-off asked of clients when the buffer or queue is full.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_COMMANDS_PER_COMMIT: usize = 512;

impl Engine {
    /// Starts the engine thread on an opened store, reading the `inbox` of a handle made with
    /// [`EngineHandle::channel`], putting recovered chunks back into the assembler so they get a
    /// fresh `idle_wait` (their trace may still be arriving).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        inbox: EngineInbox,
        db: Arc<Database>,
        recovered: store::Recovered,
        assembler: Assembler,
        hook: Box<dyn TraceHook>,
        queue_capacity: u64,
        enrichment: Option<Enrichment>,
        metrics: Arc<Metrics>,
    ) -> std::thread::JoinHandle<()> {
        let EngineInbox {
            receiver,
            sender,
            queue_grew,
        } = inbox;
        let release_tick = assembler.release_tick();
        let late_span_memory = enrichment.as_ref().map_or(0, |e| e.late_span_memory);
        let mut engine = Engine {
            db,
            assembler,
            hook,
            metrics,
            queue_grew,
            next_key: recovered.next_key,
            queued_items: recovered.queued_items,
            queue_capacity,
            release_tick,
            retry_deletes: (Vec::new(), 0),
            enrichment,
            held: Held::default(),
            recent: RecentlyEnriched::new(late_span_memory),
            own_sender: sender,
            completions: std::sync::mpsc::channel(),
        };
        let now = Instant::now();
        for chunk in &recovered.pending {
            engine
                .assembler
                .add(now, chunk.trace_id, chunk.key, chunk.items, false);
        }
        engine
            .metrics
            .exporter_queue_capacity
            .set(queue_capacity as i64);
        engine.update_gauges();
        std::thread::Builder::new()
            .name("tracetopics-engine".into())
            .spawn(move || engine.run(receiver))
            .expect("spawning the engine thread")
    }

    fn run(mut self, receiver: Receiver<Command>) {
        let mut last_step = Instant::now();
        loop {
            let now = Instant::now();
            // Every trace has its own deadline; waking for each would cost a commit per trace.
            // Releases are batched instead: at most one timer wake-up per tick.
            let next = [self.assembler.next_deadline(), self.held.next_deadline()]
                .into_iter()
                .flatten()
                .min()
                .map(|deadline| deadline.max(last_step + self.release_tick));
            let wait = crate::assemble::wait_until(next, now, Duration::from_secs(3600));
            let mut commands = Vec::new();
            match receiver.recv_timeout(wait) {
                Ok(command) => commands.push(command),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while commands.len() < MAX_COMMANDS_PER_COMMIT {
                match receiver.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            let stop = commands.iter().any(|c| matches!(c, Command::Stop));
            last_step = Instant::now();
            self.step(commands, last_step);
            if stop {
                break;
            }
        }
        tracing::debug!("engine stopped");
    }

    /// One group commit: deliveries, ingests, due releases.
    fn step(&mut self, commands: Vec<Command>, now: Instant) {
        let (mut delivered_keys, mut delivered_spans) = std::mem::take(&mut self.retry_deletes);
        let mut ingests = Vec::new();
        let mut release_all_replies = Vec::new();
        let enriched: Vec<_> = self.completions.1.try_iter().collect();
        for command in commands {
            match command {
                Command::Delivered { keys, items } => {
                    delivered_keys.extend(keys);
                    delivered_spans += items;
                }
                Command::Ingest { chunks, reply } => ingests.push((chunks, reply)),
                Command::ReleaseAll { reply } => release_all_replies.push(reply),
                Command::Wake | Command::Stop => {}
            }
        }

        // Admission: count what is already promised plus what each request adds.
        let mut free_slots = self.assembler.free_trace_slots();
        let mut room = self.queue_capacity.saturating_sub(
            self.queued_items + self.assembler.spans_in_flight() + self.held.items(),
        );
        let mut admitted: Vec<(Vec<TraceChunk>, oneshot::Sender<Result<(), Refusal>>)> = Vec::new();
        let mut new_ids = std::collections::HashSet::new();
        for (chunks, reply) in ingests {
            let spans: u64 = chunks.iter().map(|c| u64::from(c.items)).sum();
            // Distinct traces this request would start.
            let starts: std::collections::HashSet<_> = chunks
                .iter()
                .filter(|c| {
                    !self.assembler.is_buffered(&c.trace_id)
                        && placement(&self.assembler, c) == Placement::Buffer
                        && !new_ids.contains(&c.trace_id)
                })
                .map(|c| c.trace_id)
                .collect();
            if spans > self.queue_capacity {
                let _ = reply.send(Err(Refusal::TooLarge));
            } else if spans > room {
                let _ = reply.send(Err(Refusal::Full {
                    what: "sending queue is full",
                    retry_after: FULL_RETRY_AFTER,
                }));
            } else if starts.len() > free_slots {
                let _ = reply.send(Err(Refusal::Full {
                    what: "trace buffer is full (assembler.max_traces)",
                    retry_after: FULL_RETRY_AFTER,
                }));
            } else {
                room -= spans;
                free_slots -= starts.len();
                new_ids.extend(starts);
                admitted.push((chunks, reply));
            }
        }

        let release_all = !release_all_replies.is_empty();
        match self.commit(&delivered_keys, &admitted, enriched, now, release_all) {
            Ok(outcome) => {
                self.queued_items =
                    self.queued_items.saturating_sub(delivered_spans) + outcome.queued_items;
                // Metrics first: a client that got its OK sees them up to date.
                self.metrics.assembler_late_spans.inc_by(outcome.late_spans);
                self.metrics
                    .assembler_late_log_records
                    .inc_by(outcome.late_log_records);
                self.update_gauges();
                for (_, reply) in admitted {
                    let _ = reply.send(Ok(()));
                }
                if outcome.queued_records > 0 {
                    self.queue_grew.notify_one();
                }
            }
            Err(e) => {
                self.metrics.storage_commit_failures.inc();
                tracing::error!(error = %e, "storage commit failed; refusing the affected requests so clients retry");
                for (_, reply) in admitted {
                    let _ = reply.send(Err(Refusal::Storage(e.to_string())));
                }
                // The exporter's cursor is past these records: their deletes must not be lost.
                self.retry_deletes = (delivered_keys, delivered_spans);
                // The aborted transaction kept nothing; the file is the truth, so rebuild the
                // in-memory view from it.
                if let Err(e) = self.resync(now) {
                    tracing::error!(error = %e, "cannot re-read storage after a failed commit");
                }
            }
        }
        for reply in release_all_replies {
            let _ = reply.send(());
        }
        self.update_gauges();
    }

    fn resync(&mut self, now: Instant) -> Result<(), StoreError> {
        let recovered = store::recover(&self.db)?;
        self.assembler.reset();
        // Held chunks are pending in the file too: they are assembled and released again.
        for (_, trace) in self.held.take_all() {
            drop(trace);
        }
        for chunk in &recovered.pending {
            self.assembler
                .add(now, chunk.trace_id, chunk.key, chunk.items, false);
        }
        self.queued_items = recovered.queued_items;
        self.next_key = self.next_key.max(recovered.next_key);
        Ok(())
    }

    fn commit(
        &mut self,
        delivered: &[u64],
        admitted: &[(Vec<TraceChunk>, oneshot::Sender<Result<(), Refusal>>)],
        enriched: Vec<(TraceId, Vec<KeyValue>)>,
        now: Instant,
        release_all: bool,
    ) -> Result<CommitOutcome, StoreError> {
        let started = Instant::now();
        let mut tx = self.db.begin_write()?;
        // Only an ingest needs its own fsync: its OK promises durability. Releases and deletes
        // may be lost in a crash without losing spans — a lost release leaves the chunks
        // pending, a lost delete re-sends a batch (at-least-once) — and the next durable commit
        // persists them anyway.
        let durability = if admitted.is_empty() {
            Durability::None
        } else {
            Durability::Immediate
        };
        tx.set_durability(durability)
            .map_err(|e| StoreError::Redb(e.to_string()))?;
        let mut out = Output {
            key: self.next_key,
            outcome: CommitOutcome::default(),
        };
        let mut buffered = Vec::new();
        let mut all_released = Vec::new();
        {
            let mut pending = tx.open_table(PENDING)?;
            let mut queue = QueueWriter::open(&tx)?;
            for &k in delivered {
                queue.remove(k)?;
            }
            for (chunks, _) in admitted {
                for chunk in chunks {
                    let key = out.key;
                    match placement(&self.assembler, chunk) {
                        // A late chunk of a held trace leaves with it, enriched alike.
                        Placement::Late if self.held.contains(&chunk.trace_id) => {
                            pending.insert(key, pending_value(chunk).as_slice())?;
                            self.held
                                .append(&chunk.trace_id, key, u64::from(chunk.items));
                            out.key += 1;
                        }
                        Placement::Late => {
                            let (payload, enriched) = self.enrich_late(chunk);
                            out.outcome.late_spans_enriched += enriched;
                            out.queue(&mut queue, chunk.signal, u64::from(chunk.items), &payload)?;
                            if chunk.trace_id != UNTRACED {
                                match chunk.signal {
                                    Signal::Traces => {
                                        out.outcome.late_spans += u64::from(chunk.items)
                                    }
                                    Signal::Logs => {
                                        out.outcome.late_log_records += u64::from(chunk.items)
                                    }
                                }
                            }
                        }
                        Placement::Buffer => {
                            pending.insert(key, pending_value(chunk).as_slice())?;
                            buffered.push((chunk.trace_id, key, chunk.items, chunk.has_root));
                            out.key += 1;
                        }
                    }
                }
            }
            // Chunks join the assembler before due traces are computed, so a chunk arriving in
            // the same wake-up as its trace's deadline extends the wait instead of being late.
            for &(trace_id, k, spans, has_root) in &buffered {
                self.assembler.add(now, trace_id, k, spans, has_root);
            }
            let mut to_release: Vec<ReleasedTrace> = self.assembler.release_due(now);
            if release_all {
                to_release.extend(self.assembler.release_all());
            }
            for trace in to_release {
                all_released.push(trace.reason);
                // At shutdown nothing waits: the stages may not finish before the deadline.
                let hold_for = self.enrichment.as_ref().map(|e| e.max_delay);
                let hold_for = hold_for.filter(|_| !release_all);
                let mut assembled = read_trace(&pending, trace.trace_id, &trace.keys)?;
                if let Some(max_delay) = hold_for {
                    let wake = self.own_sender.clone();
                    assembled.ticket = Some(ticket(
                        trace.trace_id,
                        self.completions.0.clone(),
                        // A full command channel means the engine is awake anyway.
                        move || {
                            let _ = wake.try_send(Command::Wake);
                        },
                    ));
                    let items = assembled.spans + assembled.log_records;
                    self.hook.on_trace(&mut assembled);
                    self.held
                        .insert(trace.trace_id, trace.keys, items, now + max_delay);
                } else {
                    for k in &trace.keys {
                        pending.remove(k)?;
                    }
                    self.hook.on_trace(&mut assembled);
                    out.queue_trace(&mut queue, &assembled)?;
                }
            }
            for (trace_id, attributes) in enriched {
                let attributes = Arc::new(attributes);
                if !attributes.is_empty() {
                    self.recent.insert(trace_id, attributes.clone());
                }
                if let Some(held) = self.held.take(&trace_id) {
                    let outcome = if attributes.is_empty() {
                        "without_attributes"
                    } else {
                        "enriched"
                    };
                    self.release_held(
                        &mut pending,
                        &mut queue,
                        &mut out,
                        trace_id,
                        held,
                        &attributes,
                        outcome,
                    )?;
                }
            }
            // Past their deadline, or all of them at shutdown: they leave without attributes.
            let mut expired: Vec<_> = self
                .held
                .take_due(now)
                .into_iter()
                .map(|trace| (trace, "timeout"))
                .collect();
            if release_all {
                expired.extend(self.held.take_all().into_iter().map(|t| (t, "shutdown")));
            }
            for ((trace_id, held), outcome) in expired {
                self.release_held(
                    &mut pending,
                    &mut queue,
                    &mut out,
                    trace_id,
                    held,
                    &[],
                    outcome,
                )?;
            }
        }
        tx.commit()?;
        self.next_key = out.key;
        for reason in all_released {
            self.metrics
                .assembler_released_traces
                .get_or_create(&ReasonLabel {
                    reason: reason.as_str(),
                })
                .inc();
        }
        for (outcome, count) in std::mem::take(&mut out.outcome.enrichment) {
            self.metrics
                .enrichment_traces
                .get_or_create(&ReasonLabel { reason: outcome })
                .inc_by(count);
        }
        self.metrics
            .enrichment_late_spans
            .inc_by(out.outcome.late_spans_enriched);
        self.metrics
            .storage_commit_seconds
            .inc_by(started.elapsed().as_secs_f64());
        Ok(out.outcome)
    }

    /// Queues a held trace, its spans carrying `attributes`.
    #[allow(clippy::too_many_arguments)]
    fn release_held(
        &self,
        pending: &mut redb::Table<u64, &[u8]>,
        queue: &mut QueueWriter<'_>,
        out: &mut Output,
        trace_id: TraceId,
        held: HeldTrace,
        attributes: &[KeyValue],
        outcome: &'static str,
    ) -> Result<(), StoreError> {
        let mut assembled = read_trace(pending, trace_id, &held.keys)?;
        for k in &held.keys {
            pending.remove(k)?;
        }
        // Nothing from the stages (e.g. a trace re-assembled after a restart, or the rest of one
        // whose first part was classified): what is stored for it still applies.
        let stored;
        let attributes = if attributes.is_empty() {
            stored = self.stored_attributes(&trace_id);
            stored.as_deref().map_or(&[][..], Vec::as_slice)
        } else {
            attributes
        };
        let enricher = self.enrichment.as_ref().map(|e| &e.enricher);
        if let Some(enricher) =
            enricher.filter(|_| !attributes.is_empty() && !assembled.payload.is_empty())
        {
            match enricher.apply(&assembled.payload, attributes, false) {
                Ok((payload, _)) => assembled.payload = payload,
                // Stored spans were validated on receipt; should one not parse, it still leaves.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot add topic attributes to a trace; exporting it as received")
                }
            }
        }
        out.queue_trace(queue, &assembled)?;
        *out.outcome.enrichment.entry(outcome).or_default() += 1;
        Ok(())
    }

    /// The trace's attributes from its stored records, if it has any.
    fn stored_attributes(&self, trace_id: &TraceId) -> Option<Arc<Vec<KeyValue>>> {
        match self.enrichment.as_ref()?.enricher.stored(trace_id) {
            Ok(attributes) if !attributes.is_empty() => Some(Arc::new(attributes)),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read a trace's stored topics");
                None
            }
        }
    }

    /// A late chunk of an enriched trace gets its trace's attributes (on its root span in
    /// `root` mode: the local roots it had are long gone).
    fn enrich_late(&self, chunk: &TraceChunk) -> (Vec<u8>, u64) {
        let attributes = match (&self.enrichment, chunk.signal) {
            (Some(enrichment), Signal::Traces) => self
                .recent
                .get(&chunk.trace_id)
                .or_else(|| self.stored_attributes(&chunk.trace_id))
                .map(|attributes| (enrichment, attributes)),
            _ => None,
        };
        let Some((enrichment, attributes)) = attributes else {
            return (chunk.payload.to_vec(), 0);
        };
        match enrichment.enricher.apply(&chunk.payload, &attributes, true) {
            Ok((payload, n)) => (payload, n as u64),
            Err(_) => (chunk.payload.to_vec(), 0),
        }
    }

    fn update_gauges(&self) {
        self.metrics
            .assembler_traces_in_flight
            .set(self.assembler.traces_in_flight() as i64);
        self.metrics
            .assembler_spans_in_flight
            .set(self.assembler.spans_in_flight() as i64);
        self.metrics
            .exporter_queue_size
            .set(self.queued_items as i64);
        self.metrics
            .enrichment_held_traces
            .set(self.held.len() as i64);
    }
}

/// Where a chunk goes: log records without a trace id have no trace to wait for.
fn placement(assembler: &Assembler, chunk: &TraceChunk) -> Placement {
    if chunk.trace_id == UNTRACED {
        Placement::Late
    } else {
        assembler.placement(&chunk.trace_id)
    }
}
