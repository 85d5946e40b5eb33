//! Traces whose facet call failed, kept until a retry succeeds: their spans left long ago, so
//! this text is the only copy a restart could still facet.

use super::StoreError;
use crate::preprocess::{Preprocessed, TraceMeta};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// key: trace id (hex) · `/` · configured preprocessor; value: JSON `ParkedTrace`.
pub const FACET_RETRY: TableDefinition<&str, &[u8]> = TableDefinition::new("facet_retry_v1");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedTrace {
    pub attempts: u32,
    pub configured: String,
    pub preprocessor: String,
    pub segments: Vec<String>,
    pub meta: TraceMeta,
    pub omitted_tokens: usize,
}

impl ParkedTrace {
    pub fn new(trace: &Preprocessed, attempts: u32) -> Self {
        Self {
            attempts,
            configured: trace.configured.clone(),
            preprocessor: trace.preprocessor.clone(),
            segments: trace.segments.clone(),
            meta: trace.meta.clone(),
            omitted_tokens: trace.omitted_tokens,
        }
    }

    pub fn into_trace(self) -> (Preprocessed, u32) {
        let trace = Preprocessed {
            configured: self.configured,
            preprocessor: self.preprocessor,
            segments: self.segments,
            meta: self.meta,
            omitted_tokens: self.omitted_tokens,
            plugin_error: None,
        };
        (trace, self.attempts)
    }
}

pub fn key(trace: &Preprocessed) -> String {
    format!("{}/{}", trace.meta.trace_id, trace.configured)
}

/// Parks (or re-parks) a trace. Not fsynced on its own: a crash loses at most the last few
/// parked traces, whose facets only feed the topic maps.
pub fn put(db: &Database, trace: &ParkedTrace) -> Result<(), StoreError> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::None)
        .map_err(|e| StoreError::Redb(e.to_string()))?;
    {
        let mut table = tx.open_table(FACET_RETRY)?;
        let key = format!("{}/{}", trace.meta.trace_id, trace.configured);
        let value = serde_json::to_vec(trace).expect("parked traces serialize");
        table.insert(key.as_str(), value.as_slice())?;
    }
    tx.commit()?;
    Ok(())
}

pub fn remove(db: &Database, keys: &[String]) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::None)
        .map_err(|e| StoreError::Redb(e.to_string()))?;
    {
        let mut table = tx.open_table(FACET_RETRY)?;
        for key in keys {
            table.remove(key.as_str())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Every parked trace (at start-up).
pub fn all(db: &Database) -> Result<Vec<ParkedTrace>, StoreError> {
    let tx = db.begin_read()?;
    let table = match tx.open_table(FACET_RETRY) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        // A record this build cannot read is skipped, not fatal: it only feeds topic maps.
        out.extend(serde_json::from_slice(value.value()).ok());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(trace: &str, attempts: u32) -> ParkedTrace {
        ParkedTrace {
            attempts,
            configured: "default".into(),
            preprocessor: "default".into(),
            segments: vec!["[user] hello".into()],
            meta: TraceMeta {
                trace_id: trace.into(),
                ..TraceMeta::default()
            },
            omitted_tokens: 0,
        }
    }

    #[test]
    fn parked_traces_survive_reopening_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        {
            let db = Database::create(&path).unwrap();
            put(&db, &parked("aa", 1)).unwrap();
            put(&db, &parked("bb", 1)).unwrap();
            put(&db, &parked("aa", 2)).unwrap();
        }
        let db = Database::create(&path).unwrap();
        let mut all_parked = all(&db).unwrap();
        all_parked.sort_by(|a, b| a.meta.trace_id.cmp(&b.meta.trace_id));
        assert_eq!(all_parked, vec![parked("aa", 2), parked("bb", 1)]);
        let (trace, attempts) = all_parked[0].clone().into_trace();
        assert_eq!((key(&trace), attempts), ("aa/default".to_string(), 2));
        remove(&db, &["aa/default".into()]).unwrap();
        assert_eq!(all(&db).unwrap(), vec![parked("bb", 1)]);
    }
}
