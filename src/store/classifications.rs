//! Classification records: a trace's topic per facet, against which map version, updated by the
//! backfill after every new map.

use super::StoreError;
use redb::{Database, Durability, TableDefinition};
use serde::{Deserialize, Serialize};

/// key: trace id (16 bytes) · facet name; value: JSON `ClassificationRecord`.
pub const CLASSIFICATIONS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("classifications_v1");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationRecord {
    #[serde(skip)]
    pub trace_id: [u8; 16],
    #[serde(skip)]
    pub facet: String,
    /// Stable topic id; `None` for `no_match`.
    pub topic_id: Option<u32>,
    pub label: String,
    pub distance: f32,
    pub map_version: u64,
    pub time_ms: u64,
}

use super::trace_key as key;

fn decode(key: &[u8], value: &[u8]) -> Option<ClassificationRecord> {
    let mut record: ClassificationRecord = serde_json::from_slice(value).ok()?;
    record.trace_id = key.get(..16)?.try_into().ok()?;
    record.facet = String::from_utf8(key[16..].to_vec()).ok()?;
    Some(record)
}

/// Stores (or replaces) records. `durable` = false leaves the fsync to the next durable commit:
/// a classification lost in a crash is recomputed by the next backfill.
pub fn put(
    db: &Database,
    records: &[ClassificationRecord],
    durable: bool,
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write()?;
    let durability = if durable {
        Durability::Immediate
    } else {
        Durability::None
    };
    tx.set_durability(durability)
        .map_err(|e| StoreError::Redb(e.to_string()))?;
    {
        let mut table = tx.open_table(CLASSIFICATIONS)?;
        for record in records {
            let value = serde_json::to_vec(record).expect("records serialize");
            table.insert(
                key(&record.trace_id, &record.facet).as_slice(),
                value.as_slice(),
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Every classification of one trace.
pub fn of_trace(
    db: &Database,
    trace_id: &[u8; 16],
) -> Result<Vec<ClassificationRecord>, StoreError> {
    super::rows_of_trace(db, CLASSIFICATIONS, trace_id, decode)
}

/// Deletes the classifications of these (trace, facet) keys (retention follows the facets).
pub fn delete(db: &Database, keys: &[([u8; 16], String)]) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let tx = db.begin_write()?;
    {
        let mut table = tx.open_table(CLASSIFICATIONS)?;
        for (trace_id, facet) in keys {
            table.remove(key(trace_id, facet).as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(trace: u8, facet: &str, topic: Option<u32>) -> ClassificationRecord {
        ClassificationRecord {
            trace_id: [trace; 16],
            facet: facet.into(),
            topic_id: topic,
            label: topic.map_or("no_match".into(), |t| format!("topic {t}")),
            distance: 0.25,
            map_version: 1,
            time_ms: 5,
        }
    }

    #[test]
    fn records_round_trip_and_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("c.redb")).unwrap();
        assert!(of_trace(&db, &[1; 16]).unwrap().is_empty());
        put(
            &db,
            &[
                record(1, "task", Some(3)),
                record(1, "issues", None),
                record(2, "task", Some(1)),
            ],
            true,
        )
        .unwrap();
        put(&db, &[record(1, "task", Some(4))], false).unwrap();
        let mut one = of_trace(&db, &[1; 16]).unwrap();
        one.sort_by(|a, b| a.facet.cmp(&b.facet));
        assert_eq!(
            one,
            vec![record(1, "issues", None), record(1, "task", Some(4))]
        );
        delete(&db, &[([1; 16], "task".into())]).unwrap();
        assert_eq!(of_trace(&db, &[1; 16]).unwrap().len(), 1);
        assert_eq!(of_trace(&db, &[2; 16]).unwrap().len(), 1);
    }
}
