//! The topic stages' side of enrichment: the engine (`pipeline::SpanEnricher`) asks how
//! attributes go onto spans and what is stored for a trace; the answers live here.

use super::enrich::{Target, add_attributes};
use crate::core::TraceId;
use crate::otlp::wire::WireError;
use crate::pipeline::SpanEnricher;
use crate::store::StoreError;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use redb::Database;
use std::sync::Arc;

/// Topic attributes on the spans `target` names, and on the root of late spans.
pub struct TopicEnricher {
    pub db: Arc<Database>,
    /// Spans of a held trace that get the attributes.
    pub target: Target,
    /// Facet summaries on spans are cut to this many characters.
    pub summary_max_chars: usize,
}

impl SpanEnricher for TopicEnricher {
    fn apply(
        &self,
        payload: &[u8],
        attributes: &[KeyValue],
        late: bool,
    ) -> Result<(Vec<u8>, usize), WireError> {
        // A late chunk's local roots are long gone: only its root span gets them.
        let target = match (late, self.target) {
            (true, Target::All) => Target::All,
            (true, _) => Target::Roots,
            (false, target) => target,
        };
        add_attributes(payload, attributes, target)
    }

    fn stored(&self, trace_id: &TraceId) -> Result<Vec<KeyValue>, StoreError> {
        super::attributes::stored(&self.db, trace_id, self.summary_max_chars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
    use prost::Message;

    fn enricher(target: Target) -> (tempfile::TempDir, TopicEnricher) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("e.redb")).unwrap();
        let enricher = TopicEnricher {
            db: Arc::new(db),
            target,
            summary_max_chars: 100,
        };
        (dir, enricher)
    }

    /// A root span and a span whose parent lives upstream (a local root).
    fn payload() -> Vec<u8> {
        let span = |id: u8, parent: Vec<u8>| Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            parent_span_id: parent,
            ..Default::default()
        };
        TracesData {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1, Vec::new()), span(2, vec![9; 8])],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn late_spans_get_attributes_on_their_root_only_unless_every_span_does() {
        let attributes = [KeyValue {
            key: "t".into(),
            ..Default::default()
        }];
        let (_dir, local_roots) = enricher(Target::LocalRoots);
        assert_eq!(
            local_roots.apply(&payload(), &attributes, false).unwrap().1,
            2
        );
        assert_eq!(
            local_roots.apply(&payload(), &attributes, true).unwrap().1,
            1
        );
        let (_dir, all) = enricher(Target::All);
        assert_eq!(all.apply(&payload(), &attributes, true).unwrap().1, 2);
    }

    #[test]
    fn a_trace_with_nothing_stored_has_no_attributes() {
        let (_dir, enricher) = enricher(Target::LocalRoots);
        assert!(enricher.stored(&[7; 16]).unwrap().is_empty());
    }
}
