//! Facet records: one per (trace, facet) with the summary, its embedding and a few trace fields,
//! plus a time index for retention and for reading "the last 24h" when clustering.

use super::StoreError;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// key: trace id (16 bytes) · facet name; value: u32 LE header length · JSON header · f32 LE vector.
pub const FACETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("facets_v1");
/// key: (unix ms, record key) → nothing: records in time order.
pub const FACETS_BY_TIME: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("facets_by_time_v1");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacetRecord {
    #[serde(with = "hex_id")]
    pub trace_id: [u8; 16],
    pub facet: String,
    pub text: String,
    /// Matched the facet's exclude pattern: kept, not clustered.
    pub excluded: bool,
    pub time_ms: u64,
    pub version: String,
    pub preprocessor: String,
    pub facet_model: String,
    pub embedding_model: String,
    pub service_name: Option<String>,
    pub root_span_name: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(id: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(id))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("trace id is not 16 bytes"))
    }
}

use super::trace_key as key;

fn encode(record: &FacetRecord) -> Vec<u8> {
    let header = serde_json::to_vec(record).expect("records serialize");
    let mut value = Vec::with_capacity(4 + header.len() + record.embedding.len() * 4);
    value.extend_from_slice(&(header.len() as u32).to_le_bytes());
    value.extend_from_slice(&header);
    for x in &record.embedding {
        value.extend_from_slice(&x.to_le_bytes());
    }
    value
}

pub(crate) fn decode(value: &[u8]) -> Option<FacetRecord> {
    let len = u32::from_le_bytes(value.get(..4)?.try_into().ok()?) as usize;
    let mut record: FacetRecord = serde_json::from_slice(value.get(4..4 + len)?).ok()?;
    record.embedding = value[4 + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Some(record)
}

/// Stores (or replaces) records in one durable transaction.
pub fn put(db: &Database, records: &[FacetRecord]) -> Result<(), StoreError> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate)
        .map_err(|e| StoreError::Redb(e.to_string()))?;
    {
        let mut table = tx.open_table(FACETS)?;
        let mut by_time = tx.open_table(FACETS_BY_TIME)?;
        for record in records {
            let key = key(&record.trace_id, &record.facet);
            if let Some(old) = table.get(key.as_slice())?.and_then(|v| decode(v.value())) {
                by_time.remove((old.time_ms, key.as_slice()))?;
            }
            table.insert(key.as_slice(), encode(record).as_slice())?;
            by_time.insert((record.time_ms, key.as_slice()), ())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Every facet record of one trace.
pub fn of_trace(db: &Database, trace_id: &[u8; 16]) -> Result<Vec<FacetRecord>, StoreError> {
    super::rows_of_trace(db, FACETS, trace_id, |_, value| decode(value))
}

/// Records of `facet` created at or after `since_ms`, oldest first.
pub fn since(db: &Database, facet: &str, since_ms: u64) -> Result<Vec<FacetRecord>, StoreError> {
    let tx = db.begin_read()?;
    let (table, by_time) = match (tx.open_table(FACETS), tx.open_table(FACETS_BY_TIME)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for entry in by_time.range((since_ms, [].as_slice())..)? {
        let (key, _) = entry?;
        let (_, record_key) = key.value();
        if &record_key[16.min(record_key.len())..] != facet.as_bytes() {
            continue;
        }
        if let Some(value) = table.get(record_key)? {
            out.extend(decode(value.value()));
        }
    }
    Ok(out)
}

/// Deletes records older than `cutoff_ms`; returns how many.
pub fn delete_before(db: &Database, cutoff_ms: u64) -> Result<usize, StoreError> {
    let tx = db.begin_write()?;
    let mut removed = 0;
    {
        let mut table = tx.open_table(FACETS)?;
        let mut by_time = tx.open_table(FACETS_BY_TIME)?;
        let old: Vec<(u64, Vec<u8>)> = by_time
            .range(..(cutoff_ms, [].as_slice()))?
            .filter_map(|e| e.ok())
            .map(|(k, _)| {
                let (time, key) = k.value();
                (time, key.to_vec())
            })
            .collect();
        for (time, key) in old {
            by_time.remove((time, key.as_slice()))?;
            table.remove(key.as_slice())?;
            removed += 1;
        }
    }
    tx.commit()?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(trace: u8, facet: &str, time_ms: u64) -> FacetRecord {
        FacetRecord {
            trace_id: [trace; 16],
            facet: facet.into(),
            text: format!("{facet} of {trace}"),
            excluded: false,
            time_ms,
            version: "v1".into(),
            preprocessor: "default".into(),
            facet_model: "builtin".into(),
            embedding_model: "builtin".into(),
            service_name: Some("svc".into()),
            root_span_name: "root".into(),
            user_id: None,
            session_id: Some("s".into()),
            embedding: vec![0.6, 0.8],
        }
    }

    #[test]
    fn records_round_trip_by_trace_and_by_time_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("f.redb")).unwrap();
        put(
            &db,
            &[
                record(1, "task", 100),
                record(1, "issues", 100),
                record(2, "task", 200),
            ],
        )
        .unwrap();
        let mut of_one = of_trace(&db, &[1; 16]).unwrap();
        of_one.sort_by(|a, b| a.facet.cmp(&b.facet));
        assert_eq!(
            of_one,
            vec![record(1, "issues", 100), record(1, "task", 100)]
        );
        assert_eq!(
            since(&db, "task", 150).unwrap(),
            vec![record(2, "task", 200)]
        );
        assert_eq!(since(&db, "task", 0).unwrap().len(), 2);
        // Replacing a record moves it in the time index.
        put(&db, &[record(1, "task", 300)]).unwrap();
        let tasks: Vec<u64> = since(&db, "task", 0)
            .unwrap()
            .iter()
            .map(|r| r.time_ms)
            .collect();
        assert_eq!(tasks, vec![200, 300]);
        assert_eq!(delete_before(&db, 250).unwrap(), 2);
        assert_eq!(since(&db, "task", 0).unwrap(), vec![record(1, "task", 300)]);
        assert!(of_trace(&db, &[2; 16]).unwrap().is_empty());
    }
}
