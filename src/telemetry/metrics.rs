//! Self-metrics, named after the Collector's own (`otelcol_receiver_accepted_spans` becomes
//! `tracetopics_receiver_accepted_spans_total`), served as Prometheus text.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    pub transport: &'static str,
}

/// A receiver's transport and why it turned a request or connection away.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportReasonLabel {
    pub transport: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PreprocessLabel {
    pub preprocessor: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginErrorLabel {
    pub plugin: String,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FacetLabel {
    pub facet: String,
}

/// A labelled facet's answer label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FacetValueLabel {
    pub facet: String,
    pub label: String,
}

/// A topic of a facet's map; `topic_id` is the stable id, `topic` its current name (or
/// `no_match`, with an empty id).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub facet: String,
    pub topic_id: String,
    pub topic: String,
}

pub struct Metrics {
    registry: Registry,
    pub receiver_accepted_spans: Family<TransportLabel, Counter>,
    pub receiver_refused_spans: Family<TransportLabel, Counter>,
    pub receiver_rejected_spans: Family<TransportLabel, Counter>,
    pub receiver_failed_requests: Family<TransportReasonLabel, Counter>,
    pub receiver_closed_connections: Family<TransportReasonLabel, Counter>,
    pub receiver_accepted_log_records: Family<TransportLabel, Counter>,
    pub receiver_refused_log_records: Family<TransportLabel, Counter>,
    pub receiver_rejected_log_records: Family<TransportLabel, Counter>,
    pub assembler_traces_in_flight: Gauge,
    pub assembler_spans_in_flight: Gauge,
    pub assembler_released_traces: Family<ReasonLabel, Counter>,
    pub assembler_late_spans: Counter,
    pub assembler_late_log_records: Counter,
    pub exporter_sent_spans: Counter,
    pub exporter_send_failed_spans: Family<ReasonLabel, Counter>,
    pub exporter_sent_log_records: Counter,
    pub exporter_send_failed_log_records: Family<ReasonLabel, Counter>,
    pub exporter_requests_retried: Counter,
    pub exporter_queue_size: Gauge,
    pub exporter_queue_capacity: Gauge,
    pub preprocess_traces: Family<PreprocessLabel, Counter>,
    pub preprocess_plugin_errors: Family<PluginErrorLabel, Counter>,
    pub preprocess_output_bytes: Counter,
    pub facet_traces: Family<ReasonLabel, Counter>,
    pub facet_model_calls: Counter,
    pub facet_prompt_tokens: Counter,
    pub facet_completion_tokens: Counter,
    pub facet_failed: Family<FacetLabel, Counter>,
    pub facet_records: Counter,
    pub facet_retry_queue: Gauge,
    pub facet_reasks: Counter,
    pub facet_copied_examples: Counter,
    pub facet_without_evidence: Counter,
    pub facet_labels: Family<FacetValueLabel, Counter>,
    pub enrichment_traces: Family<ReasonLabel, Counter>,
    pub enrichment_held_traces: Gauge,
    pub enrichment_late_spans: Counter,
    pub classified_traces: Family<TopicLabel, Counter>,
    pub storage_commit_failures: Counter,
    pub storage_commit_seconds: Counter<f64, AtomicU64>,
    pub topic_map_version: Family<FacetLabel, Gauge>,
    pub topic_map_topics: Family<FacetLabel, Gauge>,
    pub topic_regeneration_seconds: Family<FacetLabel, Counter<f64, AtomicU64>>,
    pub topic_regenerations: Family<FacetLabel, Counter>,
    pub topic_regeneration_failures: Family<FacetLabel, Counter>,
    pub topic_naming_failures: Family<FacetLabel, Counter>,
    pub topic_backfill_failures: Family<FacetLabel, Counter>,
    /// Requests to model endpoints (see `model::metrics`).
    pub model: crate::model::ModelMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            receiver_accepted_spans: Family::default(),
            receiver_refused_spans: Family::default(),
            receiver_rejected_spans: Family::default(),
            receiver_failed_requests: Family::default(),
            receiver_closed_connections: Family::default(),
            receiver_accepted_log_records: Family::default(),
            receiver_refused_log_records: Family::default(),
            receiver_rejected_log_records: Family::default(),
            assembler_traces_in_flight: Gauge::default(),
            assembler_spans_in_flight: Gauge::default(),
            assembler_released_traces: Family::default(),
            assembler_late_spans: Counter::default(),
            assembler_late_log_records: Counter::default(),
            exporter_sent_spans: Counter::default(),
            exporter_send_failed_spans: Family::default(),
            exporter_sent_log_records: Counter::default(),
            exporter_send_failed_log_records: Family::default(),
            exporter_requests_retried: Counter::default(),
            exporter_queue_size: Gauge::default(),
            exporter_queue_capacity: Gauge::default(),
            preprocess_traces: Family::default(),
            preprocess_plugin_errors: Family::default(),
            preprocess_output_bytes: Counter::default(),
            facet_traces: Family::default(),
            facet_model_calls: Counter::default(),
            facet_prompt_tokens: Counter::default(),
            facet_completion_tokens: Counter::default(),
            facet_failed: Family::default(),
            facet_records: Counter::default(),
            facet_retry_queue: Gauge::default(),
            facet_reasks: Counter::default(),
            facet_copied_examples: Counter::default(),
            facet_without_evidence: Counter::default(),
            facet_labels: Family::default(),
            enrichment_traces: Family::default(),
            enrichment_held_traces: Gauge::default(),
            enrichment_late_spans: Counter::default(),
            classified_traces: Family::default(),
            storage_commit_failures: Counter::default(),
            storage_commit_seconds: Counter::default(),
            topic_map_version: Family::default(),
            topic_map_topics: Family::default(),
            topic_regeneration_seconds: Family::default(),
            topic_regenerations: Family::default(),
            topic_regeneration_failures: Family::default(),
            topic_naming_failures: Family::default(),
            topic_backfill_failures: Family::default(),
            model: crate::model::ModelMetrics::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "tracetopics_receiver_accepted_spans",
            "Spans accepted and stored durably before the client got its OK",
            m.receiver_accepted_spans.clone(),
        );
        r.register("tracetopics_receiver_refused_spans", "Spans refused with a retryable error (back-pressure or storage trouble); the client keeps them", m.receiver_refused_spans.clone());
        r.register(
            "tracetopics_receiver_rejected_spans",
            "Invalid spans rejected through OTLP partial success",
            m.receiver_rejected_spans.clone(),
        );
        r.register(
            "tracetopics_receiver_failed_requests",
            "Requests refused before their data was read: too_large, undecodable, unsupported",
            m.receiver_failed_requests.clone(),
        );
        r.register(
            "tracetopics_receiver_closed_connections",
            "Connections the receiver closed or turned away: read_header_timeout, read_timeout, max_connections",
            m.receiver_closed_connections.clone(),
        );
        r.register(
            "tracetopics_receiver_accepted_log_records",
            "Log records accepted and stored durably before the client got its OK",
            m.receiver_accepted_log_records.clone(),
        );
        r.register(
            "tracetopics_receiver_refused_log_records",
            "Log records refused with a retryable error; the client keeps them",
            m.receiver_refused_log_records.clone(),
        );
        r.register(
            "tracetopics_receiver_rejected_log_records",
            "Invalid log records rejected through OTLP partial success",
            m.receiver_rejected_log_records.clone(),
        );
        r.register(
            "tracetopics_assembler_traces_in_flight",
            "Traces waiting to be complete",
            m.assembler_traces_in_flight.clone(),
        );
        r.register(
            "tracetopics_assembler_spans_in_flight",
            "Spans and log records of traces waiting to be complete",
            m.assembler_spans_in_flight.clone(),
        );
        r.register(
            "tracetopics_assembler_released_traces",
            "Traces released to the pipeline, by reason",
            m.assembler_released_traces.clone(),
        );
        r.register(
            "tracetopics_assembler_late_spans",
            "Spans that arrived after their trace was released and were passed on at once",
            m.assembler_late_spans.clone(),
        );
        r.register(
            "tracetopics_assembler_late_log_records",
            "Log records that arrived after their trace was released and were passed on at once",
            m.assembler_late_log_records.clone(),
        );
        r.register(
            "tracetopics_exporter_sent_log_records",
            "Log records the downstream acknowledged",
            m.exporter_sent_log_records.clone(),
        );
        r.register(
            "tracetopics_exporter_send_failed_log_records",
            "Log records given up on, by reason (as for spans)",
            m.exporter_send_failed_log_records.clone(),
        );
        r.register(
            "tracetopics_exporter_sent_spans",
            "Spans the downstream acknowledged",
            m.exporter_sent_spans.clone(),
        );
        r.register("tracetopics_exporter_send_failed_spans", "Spans given up on: permanent downstream errors, partial-success rejections, retry time exhausted", m.exporter_send_failed_spans.clone());
        r.register(
            "tracetopics_exporter_requests_retried",
            "Export requests retried after a retryable failure",
            m.exporter_requests_retried.clone(),
        );
        r.register(
            "tracetopics_exporter_queue_size",
            "Spans and log records in the persistent sending queue",
            m.exporter_queue_size.clone(),
        );
        r.register(
            "tracetopics_exporter_queue_capacity",
            "Capacity of the sending queue in spans and log records (sending_queue.queue_size)",
            m.exporter_queue_capacity.clone(),
        );
        r.register(
            "tracetopics_preprocess_traces",
            "Traces preprocessed, by preprocessor and outcome (ok, fallback, skipped, failed, empty, busy, undecodable)",
            m.preprocess_traces.clone(),
        );
        r.register(
            "tracetopics_preprocess_plugin_errors",
            "JavaScript preprocessor failures, by plugin and error (threw, timeout, out_of_memory, wrong_type)",
            m.preprocess_plugin_errors.clone(),
        );
        r.register(
            "tracetopics_preprocess_output_bytes",
            "Bytes of preprocessed text handed to the facet stage",
            m.preprocess_output_bytes.clone(),
        );
        r.register(
            "tracetopics_facet_traces",
            "Traces through the facet stage, by outcome (ok, cached, filtered, too_short, not_sampled, busy, given_up)",
            m.facet_traces.clone(),
        );
        r.register(
            "tracetopics_facet_model_calls",
            "Chat calls made for facets",
            m.facet_model_calls.clone(),
        );
        r.register(
            "tracetopics_facet_prompt_tokens",
            "Prompt tokens of facet calls, as the model reported them",
            m.facet_prompt_tokens.clone(),
        );
        r.register(
            "tracetopics_facet_completion_tokens",
            "Completion tokens of facet calls, as the model reported them",
            m.facet_completion_tokens.clone(),
        );
        r.register(
            "tracetopics_facet_failed",
            "Facets that stayed unanswerable after the retry, by facet",
            m.facet_failed.clone(),
        );
        r.register(
            "tracetopics_facet_records",
            "Facet records stored",
            m.facet_records.clone(),
        );
        r.register(
            "tracetopics_facet_retry_queue",
            "Traces parked after a model failure, waiting to be retried",
            m.facet_retry_queue.clone(),
        );
        r.register(
            "tracetopics_facet_reasks",
            "Facets asked again alone because the joint reply missed them or gave an unusable answer",
            m.facet_reasks.clone(),
        );
        r.register(
            "tracetopics_facet_copied_examples",
            "Facet answers refused because they copied an example from the prompt",
            m.facet_copied_examples.clone(),
        );
        r.register(
            "tracetopics_facet_without_evidence",
            "Issues answered NONE without a model call: the trace holds no error, failed tool result, refusal or loop",
            m.facet_without_evidence.clone(),
        );
        r.register(
            "tracetopics_facet_labels",
            "Answers of labelled facets (custom facets with labels, and sentiment), by facet and label",
            m.facet_labels.clone(),
        );
        r.register(
            "tracetopics_enrichment_traces",
            "Traces released to the exporter after waiting for their topics, by outcome: enriched, without_attributes (nothing to add), timeout (max_enrichment_delay passed), shutdown",
            m.enrichment_traces.clone(),
        );
        r.register(
            "tracetopics_enrichment_held_traces",
            "Traces whose spans are waiting for their topics",
            m.enrichment_held_traces.clone(),
        );
        r.register(
            "tracetopics_enrichment_late_spans",
            "Late spans enriched from their trace's earlier result",
            m.enrichment_late_spans.clone(),
        );
        r.register(
            "tracetopics_classified_traces",
            "Traces classified, by facet and topic (topic=\"no_match\" beyond the distance threshold)",
            m.classified_traces.clone(),
        );
        r.register(
            "tracetopics_storage_commit_failures",
            "redb commits that failed",
            m.storage_commit_failures.clone(),
        );
        r.register(
            "tracetopics_storage_commit_seconds",
            "Time spent in durable redb commits",
            m.storage_commit_seconds.clone(),
        );
        r.register(
            "tracetopics_topic_map_version",
            "Version of the published topic map, by facet",
            m.topic_map_version.clone(),
        );
        r.register(
            "tracetopics_topic_map_topics",
            "Topics in the published topic map, by facet",
            m.topic_map_topics.clone(),
        );
        r.register(
            "tracetopics_topic_regeneration_seconds",
            "Time spent building topic maps (sampling, clustering, naming), by facet",
            m.topic_regeneration_seconds.clone(),
        );
        r.register(
            "tracetopics_topic_regenerations",
            "Topic maps built and published, by facet",
            m.topic_regenerations.clone(),
        );
        r.register(
            "tracetopics_topic_regeneration_failures",
            "Topic map regenerations that failed (too few summaries, clustering or storage errors), by facet",
            m.topic_regeneration_failures.clone(),
        );
        r.register(
            "tracetopics_topic_naming_failures",
            "Topic naming calls that failed; the topics keep keyword names until a retry succeeds",
            m.topic_naming_failures.clone(),
        );
        r.register(
            "tracetopics_topic_backfill_failures",
            "Backfills after a new map that failed and will be retried, by facet",
            m.topic_backfill_failures.clone(),
        );
        m.model.register(r);
        Metrics { registry, ..m }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{Metrics, ReasonLabel, TopicLabel};

    /// The shipped alerting rules must only name series this build exports.
    #[test]
    fn the_example_alert_rules_use_existing_metrics() {
        let rules = include_str!("../../packaging/prometheus/tracetopics-alerts.yaml");
        let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(rules).expect("valid YAML");
        assert!(
            parsed["groups"]
                .as_sequence()
                .is_some_and(|g| !g.is_empty())
        );
        // Labelled families only appear once they have a series.
        let metrics = Metrics::new();
        metrics
            .classified_traces
            .get_or_create(&TopicLabel {
                facet: "task".into(),
                topic_id: "1".into(),
                topic: "Refunds".into(),
            })
            .inc();
        metrics
            .enrichment_traces
            .get_or_create(&ReasonLabel { reason: "timeout" })
            .inc();
        let exported = metrics.encode();
        let names = regex::Regex::new(r"tracetopics_[a-z_]+").unwrap();
        let mut checked = 0;
        for name in names.find_iter(rules).map(|m| m.as_str()) {
            if name.starts_with("tracetopics_topic") || name == "tracetopics_pipeline" {
                continue; // rule group names, not series
            }
            let family = name.trim_end_matches("_total");
            assert!(
                exported.contains(&format!("# TYPE {family} ")),
                "{name} is not exported"
            );
            checked += 1;
        }
        assert!(checked >= 4);
    }
}
