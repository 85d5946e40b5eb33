//! Topic maps with history, the sample membership of each map, the highest topic id ever used,
//! and the automation state, per facet.

use super::StoreError;
use super::facets::FacetRecord;
use crate::topics::TopicMap;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};

/// key: (facet, version); value: u32 LE header length · JSON map · every topic's centroid as
/// `dim` f32 LE, in topic order (the JSON skips centroids: binary is 4× smaller and exact).
pub const TOPIC_MAPS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("topic_maps_v1");
/// key: (facet, version); value: repeated (trace id 16 bytes · topic id i32 LE, −1 = noise):
/// the sample the map was built from, for member-overlap matching and stability next time.
pub const TOPIC_MEMBERS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("topic_members_v1");
/// key: facet; value: the next topic id to hand out (ids are never reused, even once their map
/// was pruned from the history).
pub const TOPIC_NEXT_ID: TableDefinition<&str, u32> = TableDefinition::new("topic_next_id_v1");
/// key: facet; value: JSON automation state.
pub const TOPIC_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("topic_state_v1");

/// Opens (creates) every topic table; called when the file is opened.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(TOPIC_MAPS)?;
    tx.open_table(TOPIC_MEMBERS)?;
    tx.open_table(TOPIC_NEXT_ID)?;
    tx.open_table(TOPIC_STATE)?;
    Ok(())
}

/// One sampled trace and the topic it landed in (−1 = noise).
pub type Membership = ([u8; 16], i32);

fn encode_map(map: &TopicMap) -> Vec<u8> {
    let header = serde_json::to_vec(map).expect("maps serialize");
    let floats: usize = map.topics.iter().map(|t| t.centroid.len()).sum();
    let mut value = Vec::with_capacity(4 + header.len() + floats * 4);
    value.extend_from_slice(&(header.len() as u32).to_le_bytes());
    value.extend_from_slice(&header);
    for topic in &map.topics {
        debug_assert_eq!(topic.centroid.len(), map.dim);
        for x in &topic.centroid {
            value.extend_from_slice(&x.to_le_bytes());
        }
    }
    value
}

fn decode_map(value: &[u8]) -> Result<TopicMap, StoreError> {
    let corrupt = |why: &str| StoreError::Redb(format!("stored topic map is corrupt: {why}"));
    let len = u32::from_le_bytes(
        value
            .get(..4)
            .ok_or_else(|| corrupt("short"))?
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    let header = value
        .get(4..4 + len)
        .ok_or_else(|| corrupt("short header"))?;
    let mut map: TopicMap = serde_json::from_slice(header).map_err(|e| corrupt(&e.to_string()))?;
    let floats = &value[4 + len..];
    if floats.len() != map.topics.len() * map.dim * 4 {
        return Err(corrupt("centroids do not match the dimension"));
    }
    let mut chunks = floats.chunks_exact(4);
    for topic in &mut map.topics {
        topic.centroid = chunks
            .by_ref()
            .take(map.dim)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
    }
    Ok(map)
}

fn encode_members(members: &[Membership]) -> Vec<u8> {
    let mut value = Vec::with_capacity(members.len() * 20);
    for (trace, topic) in members {
        value.extend_from_slice(trace);
        value.extend_from_slice(&topic.to_le_bytes());
    }
    value
}

fn decode_members(value: &[u8]) -> Vec<Membership> {
    value
        .chunks_exact(20)
        .map(|c| {
            (
                c[..16].try_into().expect("16 bytes"),
                i32::from_le_bytes(c[16..].try_into().expect("4 bytes")),
            )
        })
        .collect()
}

/// Stores `map` with its sample membership, raises the facet's next topic id past every id in
/// the map, and keeps only the newest `history` versions (at least 1), in one transaction.
pub fn put_map(
    db: &Database,
    map: &TopicMap,
    members: &[Membership],
    history: usize,
) -> Result<(), StoreError> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate)
        .map_err(|e| StoreError::Redb(e.to_string()))?;
    {
        let facet = map.facet.as_str();
        tx.open_table(TOPIC_MAPS)?
            .insert((facet, map.version), encode_map(map).as_slice())?;
        tx.open_table(TOPIC_MEMBERS)?
            .insert((facet, map.version), encode_members(members).as_slice())?;
        let mut next = tx.open_table(TOPIC_NEXT_ID)?;
        let current = next.get(facet)?.map_or(0, |v| v.value());
        let needed = map.topics.iter().map(|t| t.id + 1).max().unwrap_or(0);
        if needed > current {
            next.insert(facet, needed)?;
        }
    }
    prune_in(&tx, &map.facet, history.max(1))?;
    tx.commit()?;
    Ok(())
}

fn versions_in<T: ReadableTable<(&'static str, u64), &'static [u8]>>(
    table: &T,
    facet: &str,
) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    for entry in table.range((facet, 0)..=(facet, u64::MAX))? {
        out.push(entry?.0.value().1);
    }
    Ok(out)
}

fn prune_in(tx: &redb::WriteTransaction, facet: &str, keep: usize) -> Result<usize, StoreError> {
    let mut maps = tx.open_table(TOPIC_MAPS)?;
    let mut members = tx.open_table(TOPIC_MEMBERS)?;
    let versions = versions_in(&maps, facet)?;
    let old = versions.len().saturating_sub(keep);
    for &version in &versions[..old] {
        maps.remove((facet, version))?;
        members.remove((facet, version))?;
    }
    Ok(old)
}

/// Deletes all but the newest `keep` versions of `facet`; returns how many were deleted.
pub fn prune(db: &Database, facet: &str, keep: usize) -> Result<usize, StoreError> {
    let tx = db.begin_write()?;
    let removed = prune_in(&tx, facet, keep.max(1))?;
    tx.commit()?;
    Ok(removed)
}

/// Stored versions of `facet`, oldest first.
pub fn versions(db: &Database, facet: &str) -> Result<Vec<u64>, StoreError> {
    let tx = db.begin_read()?;
    versions_in(&tx.open_table(TOPIC_MAPS)?, facet)
}

/// One stored version of `facet`'s map.
pub fn load(db: &Database, facet: &str, version: u64) -> Result<Option<TopicMap>, StoreError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(TOPIC_MAPS)?;
    let value = table.get((facet, version))?;
    value.map(|v| decode_map(v.value())).transpose()
}

/// The newest stored map of `facet`.
pub fn latest(db: &Database, facet: &str) -> Result<Option<TopicMap>, StoreError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(TOPIC_MAPS)?;
    let last = table.range((facet, 0)..=(facet, u64::MAX))?.next_back();
    match last {
        Some(entry) => decode_map(entry?.1.value()).map(Some),
        None => Ok(None),
    }
}

/// The newest map of every facet that has one.
pub fn latest_all(db: &Database) -> Result<Vec<TopicMap>, StoreError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(TOPIC_MAPS)?;
    let mut out: Vec<TopicMap> = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        let (facet, _) = key.value();
        // Keys sort by (facet, version): a later entry of the same facet replaces the earlier.
        if out.last().is_some_and(|m| m.facet == facet) {
            out.pop();
        }
        out.push(decode_map(value.value())?);
    }
    Ok(out)
}

/// The sample membership stored with one version (empty if the version is gone).
pub fn members(db: &Database, facet: &str, version: u64) -> Result<Vec<Membership>, StoreError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(TOPIC_MEMBERS)?;
    let value = table.get((facet, version))?;
    Ok(value.map(|v| decode_members(v.value())).unwrap_or_default())
}

/// The first id a new topic of `facet` may take: above every id any stored map ever used.
pub fn next_topic_id(db: &Database, facet: &str) -> Result<u32, StoreError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(TOPIC_NEXT_ID)?;
    Ok(table.get(facet)?.map_or(0, |v| v.value()))
}

/// Facet records of `facet` stored at or after `since_ms`, counted from the time index alone
/// (no record is decoded), so polling it is cheap.
pub fn count_records(db: &Database, facet: &str, since_ms: u64) -> Result<usize, StoreError> {
    let tx = db.begin_read()?;
    let by_time = match tx.open_table(super::facets::FACETS_BY_TIME) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut count = 0;
    for entry in by_time.range((since_ms, [].as_slice())..)? {
        let (key, _) = entry?;
        let (_, record_key) = key.value();
        if record_key.get(16..) == Some(facet.as_bytes()) {
            count += 1;
        }
    }
    Ok(count)
}

/// Visits every record of `facet` stored at or after `since_ms`, decoded one at a time, in the
/// order of `rank(trace id)` (ties by key). A sampler keeps the first n it accepts without holding
/// the whole window (embeddings included) in memory.
pub fn visit_ranked(
    db: &Database,
    facet: &str,
    since_ms: u64,
    rank: impl Fn(&[u8; 16]) -> u64,
    mut visit: impl FnMut(FacetRecord),
) -> Result<(), StoreError> {
    let tx = db.begin_read()?;
    let (table, by_time) = match (
        tx.open_table(super::facets::FACETS),
        tx.open_table(super::facets::FACETS_BY_TIME),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Ok(()),
    };
    let mut keys: Vec<(u64, Vec<u8>)> = Vec::new();
    for entry in by_time.range((since_ms, [].as_slice())..)? {
        let (key, _) = entry?;
        let (_, record_key) = key.value();
        if record_key.get(16..) == Some(facet.as_bytes()) {
            let trace: [u8; 16] = record_key[..16].try_into().expect("16 bytes");
            keys.push((rank(&trace), record_key.to_vec()));
        }
    }
    keys.sort_unstable();
    for (_, key) in keys {
        if let Some(record) = table
            .get(key.as_slice())?
            .and_then(|v| super::facets::decode(v.value()))
        {
            visit(record);
        }
    }
    Ok(())
}

/// The persisted automation state of `facet`; `None` if never stored or unreadable (an older
/// or corrupt state restarts the state machine rather than failing the start).
pub fn state<T: DeserializeOwned>(db: &Database, facet: &str) -> Result<Option<T>, StoreError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(TOPIC_STATE)?;
    let value = table.get(facet)?;
    Ok(value.and_then(|v| serde_json::from_slice(v.value()).ok()))
}

pub fn put_state<T: Serialize>(db: &Database, facet: &str, state: &T) -> Result<(), StoreError> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate)
        .map_err(|e| StoreError::Redb(e.to_string()))?;
    {
        let bytes = serde_json::to_vec(state).expect("state serializes");
        tx.open_table(TOPIC_STATE)?
            .insert(facet, bytes.as_slice())?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StorageConfig, open};
    use crate::topics::{MapChanges, Topic};

    pub(crate) fn topic(id: u32, centroid: Vec<f32>) -> Topic {
        Topic {
            id,
            name: format!("topic {id}"),
            description: "about it".into(),
            named: true,
            keywords: vec!["refund".into()],
            centroid,
            threshold: 0.3,
            size: 10,
            share: 0.5,
            exemplars: vec!["get a refund".into()],
        }
    }

    fn map(facet: &str, version: u64, ids: &[u32]) -> TopicMap {
        TopicMap {
            facet: facet.into(),
            version,
            created_ms: 1000 * version,
            embedding_model: "builtin".into(),
            dim: 3,
            params: Default::default(),
            sample: 20,
            noise_share: 0.0,
            noise_before_reassignment: None,
            distance_threshold: 0.5,
            topics: ids
                .iter()
                .map(|&id| topic(id, vec![id as f32, 0.5, -1.25]))
                .collect(),
            changes: (version > 1).then(|| MapChanges {
                previous_version: version - 1,
                stability: Some(0.9),
                ..Default::default()
            }),
        }
    }

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = open(&StorageConfig {
            path: dir.path().join("t.redb"),
            cache_size_mib: 4,
        })
        .unwrap();
        (dir, db)
    }

    #[test]
    fn maps_round_trip_with_binary_centroids_and_membership() {
        let (_dir, db) = db();
        let stored = map("task", 1, &[0, 3]);
        let members = vec![([1; 16], 0), ([2; 16], 3), ([3; 16], -1)];
        put_map(&db, &stored, &members, 10).unwrap();
        assert_eq!(load(&db, "task", 1).unwrap(), Some(stored.clone()));
        assert_eq!(latest(&db, "task").unwrap(), Some(stored));
        assert_eq!(members_of(&db, 1), members);
        assert_eq!(latest(&db, "issues").unwrap(), None);
        assert_eq!(next_topic_id(&db, "task").unwrap(), 4);
    }

    fn members_of(db: &Database, version: u64) -> Vec<Membership> {
        members(db, "task", version).unwrap()
    }

    #[test]
    fn history_keeps_the_newest_versions_and_ids_are_never_reused() {
        let (_dir, db) = db();
        put_map(&db, &map("task", 1, &[0, 1, 7]), &[([1; 16], 7)], 2).unwrap();
        put_map(&db, &map("issues", 1, &[0]), &[], 2).unwrap();
        put_map(&db, &map("task", 2, &[0]), &[], 2).unwrap();
        put_map(&db, &map("task", 3, &[1]), &[], 2).unwrap();
        assert_eq!(versions(&db, "task").unwrap(), vec![2, 3]);
        assert_eq!(load(&db, "task", 1).unwrap(), None);
        assert!(members_of(&db, 1).is_empty(), "membership pruned too");
        // Version 1 (with id 7) is gone, but 8 is still the next id.
        assert_eq!(next_topic_id(&db, "task").unwrap(), 8);
        assert_eq!(latest(&db, "task").unwrap().unwrap().version, 3);
        let all: Vec<(String, u64)> = latest_all(&db)
            .unwrap()
            .into_iter()
            .map(|m| (m.facet, m.version))
            .collect();
        assert_eq!(all, vec![("issues".into(), 1), ("task".into(), 3)]);
        assert_eq!(prune(&db, "task", 1).unwrap(), 1);
        assert_eq!(versions(&db, "task").unwrap(), vec![3]);
    }

    #[test]
    fn state_round_trips_and_garbage_reads_as_none() {
        let (_dir, db) = db();
        assert_eq!(state::<Vec<u32>>(&db, "task").unwrap(), None);
        put_state(&db, "task", &vec![1u32, 2]).unwrap();
        assert_eq!(state::<Vec<u32>>(&db, "task").unwrap(), Some(vec![1, 2]));
        assert_eq!(state::<String>(&db, "task").unwrap(), None);
    }

    #[test]
    fn a_schema_3_file_gets_the_topic_tables_and_keeps_its_facets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(crate::store::META)
                .unwrap()
                .insert("schema_version", 3)
                .unwrap();
            tx.open_table(crate::store::facets::FACETS)
                .unwrap()
                .insert(b"k".as_slice(), b"v".as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let config = StorageConfig {
            path,
            cache_size_mib: 4,
        };
        let (db, _) = open(&config).unwrap();
        assert_eq!(latest_all(&db).unwrap(), vec![]);
        let tx = db.begin_read().unwrap();
        let meta = tx.open_table(crate::store::META).unwrap();
        assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), 4);
        let facets = tx.open_table(crate::store::facets::FACETS).unwrap();
        assert!(facets.get(b"k".as_slice()).unwrap().is_some());
    }
}
