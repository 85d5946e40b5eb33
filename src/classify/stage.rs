//! Classification in the running sidecar: each new facet record gets the nearest topic of its
//! facet's current map (an index built once per map version), and every new map triggers a
//! backfill over the stored records of the last `backfill_window`.

use super::attributes::{Classification, NO_MATCH};
use super::index::{CentroidIndex, IndexKind};
use crate::pipeline::EngineHandle;
use crate::store::classifications::{self, ClassificationRecord};
use crate::store::facets::{self, FacetRecord};
use crate::telemetry::metrics::{Metrics, TopicLabel};
use crate::topics::{Backfill, PublishedMaps, TopicMap};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use redb::Database;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Classifies facet records against the published maps. Cheap to share.
#[derive(Clone)]
pub struct Classifier {
    maps: PublishedMaps,
    /// Per facet: the map version the index was built for.
    indices: Arc<Mutex<HashMap<String, (u64, Arc<CentroidIndex>)>>>,
    metrics: Arc<Metrics>,
}

impl Classifier {
    pub fn new(maps: PublishedMaps, metrics: Arc<Metrics>) -> Self {
        Self {
            maps,
            indices: Arc::default(),
            metrics,
        }
    }

    fn index_for(&self, map: &Arc<TopicMap>) -> Option<Arc<CentroidIndex>> {
        let mut indices = self.indices.lock().expect("index lock");
        if let Some((version, index)) = indices.get(&map.facet) {
            if *version == map.version {
                return Some(index.clone());
            }
        }
        match CentroidIndex::build(map, IndexKind::Auto) {
            Ok(index) => {
                let index = Arc::new(index);
                indices.insert(map.facet.clone(), (map.version, index.clone()));
                Some(index)
            }
            Err(e) => {
                tracing::warn!(facet = %map.facet, version = map.version, error = %e, "cannot index the topic map; its facet is not classified");
                None
            }
        }
    }

    /// The record's topic against its facet's current map; `None` when there is no map yet,
    /// the answer was excluded, or it was embedded by another model than the map's.
    pub fn classify(&self, record: &FacetRecord) -> Option<Classification> {
        let map = self.maps.get(&record.facet)?;
        classify_against(&map, self.index_for(&map)?.as_ref(), record)
    }

    /// Counts a live classification in `tracetopics_classified_traces_total`.
    pub fn count(&self, classification: &Classification) {
        self.metrics
            .classified_traces
            .get_or_create(&TopicLabel {
                facet: classification.facet.clone(),
                topic_id: classification
                    .topic_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                topic: classification.label.clone(),
            })
            .inc();
    }
}

fn classify_against(
    map: &TopicMap,
    index: &CentroidIndex,
    record: &FacetRecord,
) -> Option<Classification> {
    if record.excluded || record.embedding_model != map.embedding_model {
        return None;
    }
    let decision = index.classify(&record.embedding).ok()?;
    let topic = decision.topic.map(|i| &map.topics[i]);
    Some(Classification {
        facet: record.facet.clone(),
        topic_id: topic.map(|t| t.id),
        label: topic.map_or_else(|| NO_MATCH.to_string(), |t| t.name.clone()),
        distance: decision.distance,
        map_version: map.version,
    })
}

pub fn record(trace_id: [u8; 16], c: &Classification, time_ms: u64) -> ClassificationRecord {
    ClassificationRecord {
        trace_id,
        facet: c.facet.clone(),
        topic_id: c.topic_id,
        label: c.label.clone(),
        distance: c.distance,
        map_version: c.map_version,
        time_ms,
    }
}

/// Reclassifies stored facet records after a new map (the automation's `backfill` state).
pub struct StoredBackfill {
    pub db: Arc<Database>,
    pub window: Duration,
    /// Where `tracetopics.reclassified` log records go, when enabled.
    pub emit: Option<(EngineHandle, tokio::runtime::Handle)>,
}

impl Backfill for StoredBackfill {
    fn backfill(&self, map: &TopicMap) -> Result<u64, String> {
        let index = CentroidIndex::build(map, IndexKind::Auto).map_err(|e| e.to_string())?;
        let since = super::now_ms().saturating_sub(self.window.as_millis() as u64);
        let records = facets::since(&self.db, &map.facet, since).map_err(|e| e.to_string())?;
        let now = super::now_ms();
        let mut updated = Vec::new();
        let mut changed = Vec::new();
        for record in &records {
            let Some(c) = classify_against(map, &index, record) else {
                continue;
            };
            let previous = classifications::of_trace(&self.db, &record.trace_id)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|p| p.facet == record.facet);
            let moved = previous.as_ref().map(|p| p.topic_id) != Some(c.topic_id);
            if moved {
                changed.push((record.trace_id, c.clone(), previous));
            }
            updated.push(self::record(record.trace_id, &c, now));
        }
        for chunk in updated.chunks(1000) {
            classifications::put(&self.db, chunk, false).map_err(|e| e.to_string())?;
        }
        if let Some((engine, runtime)) = &self.emit {
            emit_reclassified(engine, runtime, &changed)?;
        }
        tracing::info!(facet = %map.facet, version = map.version, reclassified = updated.len(), changed = changed.len(), "backfill done");
        Ok(changed.len() as u64)
    }
}

/// One log record per trace whose topic changed, with the trace id, through the pipeline like
/// received log records (durable, exported, counted).
fn emit_reclassified(
    engine: &EngineHandle,
    runtime: &tokio::runtime::Handle,
    changed: &[([u8; 16], Classification, Option<ClassificationRecord>)],
) -> Result<(), String> {
    for batch in changed.chunks(500) {
        let records = batch
            .iter()
            .map(|(trace_id, c, previous)| {
                let mut attributes = super::attributes::topic(c);
                if let Some(id) = previous.as_ref().and_then(|p| p.topic_id) {
                    attributes.push(int_attr(
                        format!("tracetopics.topic.{}.previous_id", c.facet),
                        i64::from(id),
                    ));
                }
                LogRecord {
                    time_unix_nano: super::now_ms() * 1_000_000,
                    observed_time_unix_nano: super::now_ms() * 1_000_000,
                    severity_number: 9,
                    severity_text: "INFO".into(),
                    event_name: "tracetopics.reclassified".into(),
                    body: Some(AnyValue {
                        value: Some(Value::StringValue("tracetopics.reclassified".into())),
                    }),
                    attributes,
                    trace_id: trace_id.to_vec(),
                    ..Default::default()
                }
            })
            .collect();
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue("tracetopics".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let split = crate::otlp::split::split_logs(request).map_err(|e| e.to_string())?;
        runtime
            .block_on(engine.ingest(split.chunks))
            .map_err(|e| format!("cannot queue reclassified log records: {e:?}"))?;
    }
    Ok(())
}

fn int_attr(key: String, value: i64) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}
