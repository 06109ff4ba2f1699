//! [`Image`]: everything a snapshot holds, in memory. Read from one redb read transaction
//! ([`Image::read`]), encoded to and decoded from snapshot records ([`Image::records`],
//! [`Image::from_records`]), and written into a fresh redb database ([`Image::materialise`]) to
//! query or restore a snapshot.
//!
//! Content (what the Merkle root covers) is separated from history (ids, times, name sequences,
//! the write log), so the root depends only on what a query can see: the same entries,
//! vectors, provenance, spaces and outcomes give the same root however they were written.

use std::collections::{BTreeMap, HashMap};

use redb::{Database, ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use super::format::RecordKind;
use crate::error::{contain, Error, Result};
use crate::model::Kind;
use crate::outcome::{self, NewOutcome, Outcome};
use crate::space::{Space, SpaceDef, SpaceId};
use crate::store::codec::{self, EntryRecord, VecMeta};
use crate::store::tables::{open_read, open_write, storage};
use crate::store::v1::{MetaTable, VectorsTable};
use crate::store::{
    self, ENTRIES, LOG, META, MODEL_OUTPUTS, NAMES, NAME_SEQ, OUTCOMES, SPACES, SPACE_GEN,
    SPACE_NAMES, VECTORS,
};

/// One live entry: its record (vector metadata by space id) and its encoded vector records.
#[derive(Debug, Clone)]
pub(crate) struct ImageEntry {
    pub id: u64,
    pub rec: EntryRecord,
    /// `(method, encoded vector record)` in the order of `rec.vectors`.
    pub vectors: Vec<(String, Vec<u8>)>,
    /// A model's outputs on U as stored (`crate::outputs` record), if it has them.
    pub outputs: Option<Vec<u8>>,
}

/// Everything a snapshot holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Image {
    pub db_uuid: [u8; 16],
    pub generation: u64,
    pub next_id: u64,
    pub next_space_id: u32,
    /// The last version ever given to each name (so a restore never reuses one).
    pub name_seq: Vec<(String, u32)>,
    /// Spaces used by live entries, by name.
    pub spaces: Vec<Space>,
    /// Live entries, by (name, version).
    pub entries: Vec<ImageEntry>,
    /// Outcomes, by their content bytes.
    pub outcomes: Vec<Outcome>,
    /// The write log as stored: `(seq, bytes)`.
    pub log: Vec<(u64, Vec<u8>)>,
    pub log_head: Option<String>,
}

/// The canonical JSON head of an entry record.
#[derive(Debug, Serialize, Deserialize)]
struct EntryHead {
    name: String,
    version: u32,
    kind: Kind,
    tags: Vec<(String, String)>,
    /// The provenance JSON exactly as stored.
    provenance: String,
    vectors: Vec<VectorHead>,
    /// The byte length of the model's outputs record, which follows the vectors; absent when
    /// it has none (so entries without outputs have the payload they always had).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outputs: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct VectorHead {
    method: String,
    space: String,
    bytes: u64,
}

/// The history record: what the root does not cover.
#[derive(Debug, Default, Serialize, Deserialize)]
struct History {
    db_uuid: String,
    generation: u64,
    next_id: u64,
    next_space_id: u32,
    name_seq: Vec<(String, u32)>,
    /// `(id, created_at_ms)` per space record, in record order.
    spaces: Vec<(u32, u64)>,
    /// `(id, created_at_ms)` per entry record, in record order.
    entries: Vec<(u64, u64)>,
    /// `(id, recorded_at_ms, origin)` per outcome record, in record order.
    outcomes: Vec<(u64, u64, String)>,
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Internal(format!("snapshot json: {e}")))
}

fn meta_bytes(txn: &ReadTransaction, key: &str) -> Result<Vec<u8>> {
    let t = MetaTable::open(txn).map_err(|e| Error::storage("opening table meta", e))?;
    t.get(key)?.ok_or_else(|| Error::Corrupt {
        what: format!("table meta, key {key}"),
        detail: "missing".into(),
    })
}

fn le<const N: usize>(b: Vec<u8>, key: &str) -> Result<[u8; N]> {
    b.try_into()
        .map_err(|_| Error::Internal(format!("meta {key} malformed")))
}

/// The canonical content bytes of an outcome (what its leaf covers).
pub(crate) fn outcome_payload(o: &NewOutcome) -> Result<Vec<u8>> {
    json(o)
}

impl Image {
    /// Reads every live entry, the spaces they use, the outcomes and the log, all from `txn`
    /// (one consistent state of the store), verifying each record's checksum.
    pub(crate) fn read(txn: &ReadTransaction) -> Result<Image> {
        Image::read_saving(txn, None)
    }

    /// [`Image::read`]; with `skipped` (an export of a damaged database), a space definition or
    /// live entry that cannot be read is left out and named there instead of failing the read,
    /// and so is every entry with a vector in a space left out.
    pub(crate) fn read_saving(
        txn: &ReadTransaction,
        mut skipped: Option<&mut Vec<String>>,
    ) -> Result<Image> {
        let mut img = Image {
            db_uuid: le(meta_bytes(txn, "db_uuid")?, "db_uuid")?,
            generation: u64::from_le_bytes(le(meta_bytes(txn, "generation")?, "generation")?),
            next_id: u64::from_le_bytes(le(meta_bytes(txn, "next_id")?, "next_id")?),
            next_space_id: u32::from_le_bytes(le(
                meta_bytes(txn, "next_space_id")?,
                "next_space_id",
            )?),
            ..Image::default()
        };
        // `Err` unless the caller saves what it can, which notes the error and goes on.
        let mut set_aside = |e: Error| -> Result<()> {
            match skipped.as_deref_mut() {
                Some(s) => {
                    s.push(e.to_string());
                    Ok(())
                }
                None => Err(e),
            }
        };
        let mut spaces: BTreeMap<SpaceId, Space> = BTreeMap::new();
        for (_, s) in contain("table spaces", || crate::store::v1::spaces(txn))? {
            match s {
                Ok(s) => {
                    spaces.insert(s.id, s);
                }
                Err(e) => set_aside(e)?,
            }
        }
        contain("tables entries and vectors", || {
            let vec_t = VectorsTable::open(txn)?;
            for row in open_read(txn, ENTRIES)?
                .iter()
                .map_err(storage("reading entries"))?
            {
                let (k, v) = row.map_err(storage("reading entries"))?;
                match read_live_entry(txn, &vec_t, &spaces, k.value(), v.value()) {
                    Ok(Some(e)) => img.entries.push(e),
                    Ok(None) => {}
                    Err(e) => set_aside(e)?,
                }
            }
            Ok(())
        })?;
        match contain("table name_seq", || crate::store::v1::name_seq(txn)) {
            Ok(n) => img.name_seq = n,
            Err(e) => set_aside(e)?,
        }
        img.outcomes = crate::db::outcomes::read_outcomes(txn)?;
        img.log = contain("table log", || crate::store::log::read_raw(txn, 0))?;
        img.log_head = crate::store::log::recorded_head(txn)?;
        let used: std::collections::BTreeSet<SpaceId> = img
            .entries
            .iter()
            .flat_map(|e| e.rec.vectors.iter().map(|v| v.space))
            .collect();
        img.spaces = spaces
            .into_values()
            .filter(|s| used.contains(&s.id))
            .collect();
        img.canonicalise()?;
        Ok(img)
    }

    /// Sorts everything into the canonical order of `schema/SNAPSHOT.md`.
    fn canonicalise(&mut self) -> Result<()> {
        self.spaces.sort_by(|a, b| a.def.name.cmp(&b.def.name));
        self.entries
            .sort_by(|a, b| (&a.rec.name, a.rec.version).cmp(&(&b.rec.name, b.rec.version)));
        for e in &mut self.entries {
            let mut pairs: Vec<(VecMeta, (String, Vec<u8>))> = std::mem::take(&mut e.rec.vectors)
                .into_iter()
                .zip(std::mem::take(&mut e.vectors))
                .collect();
            pairs.sort_by(|a, b| a.0.method.cmp(&b.0.method));
            (e.rec.vectors, e.vectors) = pairs.into_iter().unzip();
        }
        let mut keyed = Vec::with_capacity(self.outcomes.len());
        for o in std::mem::take(&mut self.outcomes) {
            keyed.push((outcome_payload(&o.outcome)?, o));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
        self.outcomes = keyed.into_iter().map(|(_, o)| o).collect();
        self.name_seq.sort();
        Ok(())
    }

    /// The canonical payload of entry `e` (its leaf): a u32 LE length, the JSON head, then the
    /// encoded vector records in the head's order.
    pub(crate) fn entry_payload(&self, e: &ImageEntry) -> Result<Vec<u8>> {
        let names: HashMap<SpaceId, &str> = self
            .spaces
            .iter()
            .map(|s| (s.id, s.def.name.as_str()))
            .collect();
        let head = EntryHead {
            name: e.rec.name.clone(),
            version: e.rec.version,
            kind: e.rec.kind(e.id)?,
            tags: e.rec.tags.clone(),
            provenance: e.rec.provenance_json.clone(),
            vectors: e
                .rec
                .vectors
                .iter()
                .zip(&e.vectors)
                .map(|(vm, (_, bytes))| {
                    Ok(VectorHead {
                        method: vm.method.clone(),
                        space: names
                            .get(&vm.space)
                            .ok_or_else(|| Error::Internal(format!("space {} missing", vm.space)))?
                            .to_string(),
                        bytes: bytes.len() as u64,
                    })
                })
                .collect::<Result<_>>()?,
            outputs: e.outputs.as_ref().map(|b| b.len() as u64),
        };
        let h = json(&head)?;
        let mut out =
            Vec::with_capacity(4 + h.len() + e.vectors.iter().map(|v| v.1.len()).sum::<usize>());
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
        out.extend_from_slice(&h);
        for (_, b) in &e.vectors {
            out.extend_from_slice(b);
        }
        if let Some(b) = &e.outputs {
            out.extend_from_slice(b);
        }
        Ok(out)
    }

    /// Calls `emit` with every record of the snapshot but the manifest, in file order: spaces,
    /// entries, outcomes (the content leaves, in canonical order), history, then the log.
    pub(crate) fn records(
        &self,
        mut emit: impl FnMut(RecordKind, &[u8], &str) -> Result<()>,
    ) -> Result<()> {
        for s in &self.spaces {
            emit(RecordKind::Space, &json(&s.def)?, &s.def.name)?;
        }
        for e in &self.entries {
            let label = format!("{}@{}", e.rec.name, e.rec.version);
            emit(RecordKind::Entry, &self.entry_payload(e)?, &label)?;
        }
        for o in &self.outcomes {
            let label = format!("{} -> {}", o.outcome.source, o.outcome.target);
            emit(RecordKind::Outcome, &outcome_payload(&o.outcome)?, &label)?;
        }
        emit(RecordKind::History, &json(&self.history())?, "history")?;
        for (seq, b) in &self.log {
            emit(RecordKind::Log, b, &format!("log record {seq}"))?;
        }
        Ok(())
    }

    fn history(&self) -> History {
        History {
            db_uuid: hex::encode(self.db_uuid),
            generation: self.generation,
            next_id: self.next_id,
            next_space_id: self.next_space_id,
            name_seq: self.name_seq.clone(),
            spaces: self
                .spaces
                .iter()
                .map(|s| (s.id, s.created_at_ms))
                .collect(),
            entries: self
                .entries
                .iter()
                .map(|e| (e.id, e.rec.created_at_ms))
                .collect(),
            outcomes: self
                .outcomes
                .iter()
                .map(|o| (o.id, o.recorded_at_ms, o.origin.clone()))
                .collect(),
        }
    }

    /// Rebuilds an image from the payloads of verified records. `bad(i, detail)` builds the
    /// error for record `i` of its kind.
    pub(crate) fn from_records(
        spaces: &[&[u8]],
        entries: &[&[u8]],
        outcomes: &[&[u8]],
        history: &[u8],
        log: Vec<(u64, Vec<u8>)>,
        bad: &dyn Fn(RecordKind, usize, String) -> Error,
    ) -> Result<Image> {
        let h: History = serde_json::from_slice(history)
            .map_err(|e| bad(RecordKind::History, 0, format!("undecodable: {e}")))?;
        let count = |kind: RecordKind, n: usize, m: usize| -> Result<()> {
            if n != m {
                return Err(bad(
                    RecordKind::History,
                    0,
                    format!("it lists {m} {} records, the snapshot has {n}", kind.name()),
                ));
            }
            Ok(())
        };
        count(RecordKind::Space, spaces.len(), h.spaces.len())?;
        count(RecordKind::Entry, entries.len(), h.entries.len())?;
        count(RecordKind::Outcome, outcomes.len(), h.outcomes.len())?;
        let mut img = Image {
            db_uuid: (h.db_uuid == h.db_uuid.to_lowercase())
                .then(|| hex::decode(&h.db_uuid).ok())
                .flatten()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    bad(
                        RecordKind::History,
                        0,
                        "malformed db_uuid (32 lower-case hex digits)".into(),
                    )
                })?,
            generation: h.generation,
            next_id: h.next_id,
            next_space_id: h.next_space_id,
            name_seq: h.name_seq,
            log,
            ..Image::default()
        };
        let mut by_name: HashMap<String, SpaceId> = HashMap::new();
        for (i, (p, &(id, created))) in spaces.iter().zip(&h.spaces).enumerate() {
            let def: SpaceDef = serde_json::from_slice(p)
                .map_err(|e| bad(RecordKind::Space, i, format!("undecodable definition: {e}")))?;
            by_name.insert(def.name.clone(), id);
            img.spaces.push(Space::new(id, def, created));
        }
        for (i, (p, &(id, created))) in entries.iter().zip(&h.entries).enumerate() {
            let e = decode_entry(p, id, created, &by_name, &img.spaces)
                .map_err(|d| bad(RecordKind::Entry, i, d))?;
            img.entries.push(e);
        }
        for (i, (p, (id, at, origin))) in outcomes.iter().zip(h.outcomes).enumerate() {
            let o: NewOutcome = serde_json::from_slice(p)
                .map_err(|e| bad(RecordKind::Outcome, i, format!("undecodable: {e}")))?;
            img.outcomes.push(Outcome {
                id,
                outcome: o,
                recorded_at_ms: at,
                origin,
            });
        }
        Ok(img)
    }

    /// Writes the image into `db`, a fresh redb database, in one transaction: the same entry
    /// ids, versions, spaces, outcomes and log as the source, under `uuid`. With `restore`, a
    /// `restore` record is appended to the log (its chain continues) and the generation moves
    /// on by one; without it (an in-memory view of a snapshot), nothing is added.
    pub(crate) fn materialise(
        &self,
        db: &Database,
        uuid: [u8; 16],
        restore: Option<String>,
    ) -> Result<()> {
        let txn = db
            .begin_write()
            .map_err(|e| Error::storage("starting a write", e))?;
        {
            let w = storage("writing the restored database");
            let mut m = open_write(&txn, META)?;
            let gen = self.generation + u64::from(restore.is_some());
            for (k, v) in [
                ("magic", store::MAGIC.to_vec()),
                (
                    "format_version",
                    store::FORMAT_VERSION.to_le_bytes().to_vec(),
                ),
                ("db_uuid", uuid.to_vec()),
                ("generation", gen.to_le_bytes().to_vec()),
                ("next_id", self.next_id.to_le_bytes().to_vec()),
                ("next_space_id", self.next_space_id.to_le_bytes().to_vec()),
                (
                    "created_by",
                    format!("taskdb {}", env!("CARGO_PKG_VERSION")).into_bytes(),
                ),
            ] {
                m.insert(k.as_bytes(), v.as_slice()).map_err(&w)?;
            }
            if let Some(h) = &self.log_head {
                let b = hex::decode(h).map_err(|e| Error::Internal(format!("log head: {e}")))?;
                m.insert(b"log_head".as_slice(), b.as_slice()).map_err(&w)?;
            }
            let mut sp = open_write(&txn, SPACES)?;
            let mut sn = open_write(&txn, SPACE_NAMES)?;
            let mut sg = open_write(&txn, SPACE_GEN)?;
            for s in &self.spaces {
                let j = serde_json::to_string(s)
                    .map_err(|e| Error::Internal(format!("space json: {e}")))?;
                sp.insert(s.id, j.as_bytes()).map_err(&w)?;
                sn.insert(s.def.name.as_bytes(), s.id).map_err(&w)?;
                sg.insert(s.id, 1).map_err(&w)?;
            }
            let mut et = open_write(&txn, ENTRIES)?;
            let mut vt = open_write(&txn, VECTORS)?;
            let mut nt = open_write(&txn, NAMES)?;
            for e in &self.entries {
                et.insert(e.id, codec::encode_entry(&e.rec)?.as_slice())
                    .map_err(&w)?;
                nt.insert((e.rec.name.as_bytes(), e.rec.version), e.id)
                    .map_err(&w)?;
                for (method, b) in &e.vectors {
                    crate::store::parts::insert(&mut vt, e.id, method, b).map_err(&w)?;
                }
            }
            let mut ns = open_write(&txn, NAME_SEQ)?;
            for (n, v) in &self.name_seq {
                ns.insert(n.as_bytes(), *v).map_err(&w)?;
            }
            let mut ot = open_write(&txn, OUTCOMES)?;
            for o in &self.outcomes {
                ot.insert(o.id, outcome::encode(o)?.as_slice())
                    .map_err(&w)?;
            }
            if self.entries.iter().any(|e| e.outputs.is_some()) {
                let mut mo = open_write(&txn, MODEL_OUTPUTS)?;
                for e in &self.entries {
                    if let Some(b) = &e.outputs {
                        mo.insert(e.id, b.as_slice()).map_err(&w)?;
                    }
                }
            }
            let mut lt = open_write(&txn, LOG)?;
            for (seq, b) in &self.log {
                lt.insert(*seq, b.as_slice()).map_err(&w)?;
            }
        }
        if let Some(detail) = restore {
            let mut op = crate::store::log::LogOp::new("restore");
            op.detail = Some(detail);
            crate::store::log::append(&txn, op)?;
        }
        txn.commit()
            .map_err(|e| Error::storage("committing the restored database", e))
    }
}

/// Entry `id` with its vectors, checksums verified; `None` for a tombstone. A vector in a space
/// that is not in `spaces` (unreadable) is an error naming the entry.
fn read_live_entry(
    txn: &ReadTransaction,
    vec_t: &VectorsTable,
    spaces: &BTreeMap<SpaceId, Space>,
    id: u64,
    bytes: &[u8],
) -> Result<Option<ImageEntry>> {
    let rec = codec::decode_entry(id, bytes)?;
    if rec.deleted_at_ms.is_some() {
        return Ok(None);
    }
    let mut vectors = Vec::with_capacity(rec.vectors.len());
    for vm in &rec.vectors {
        let what = || {
            format!(
                "vector of entry {id} ({}@{}), method {:?}",
                rec.name, rec.version, vm.method
            )
        };
        if !spaces.contains_key(&vm.space) {
            return Err(Error::Corrupt {
                what: what(),
                detail: format!("its space {} is unreadable or missing", vm.space),
            });
        }
        let b = vec_t
            .get(id, &vm.method, <[u8]>::to_vec)?
            .ok_or_else(|| Error::Corrupt {
                what: what(),
                detail: "missing".into(),
            })?;
        codec::decode_vector(&b, what)?;
        vectors.push((vm.method.clone(), b));
    }
    let outputs = crate::store::tables::read_outputs_bytes(txn, id)?;
    if let Some(b) = &outputs {
        crate::outputs::decode(b, &|| {
            format!("outputs on U of entry {id} ({}@{})", rec.name, rec.version)
        })?;
    }
    Ok(Some(ImageEntry {
        id,
        rec,
        vectors,
        outputs,
    }))
}

/// Decodes an entry payload (see [`Image::entry_payload`]) and checks every vector against its
/// space: checksum, dimension, finite values, a norm that is not zero. `Err` is the detail.
fn decode_entry(
    p: &[u8],
    id: u64,
    created: u64,
    by_name: &HashMap<String, SpaceId>,
    spaces: &[Space],
) -> Result<ImageEntry, String> {
    if p.len() < 4 {
        return Err("payload too short".into());
    }
    let n = u32::from_le_bytes(p[..4].try_into().expect("4 bytes")) as usize;
    let head_bytes = p
        .get(4..4 + n)
        .ok_or_else(|| format!("its head claims {n} bytes, past the payload"))?;
    let head: EntryHead =
        serde_json::from_slice(head_bytes).map_err(|e| format!("undecodable head: {e}"))?;
    let label = format!("{}@{}", head.name, head.version);
    let mut rest = &p[4 + n..];
    let mut vecs = Vec::new();
    let mut metas = Vec::new();
    for vh in &head.vectors {
        let len = usize::try_from(vh.bytes).unwrap_or(usize::MAX);
        if len > rest.len() {
            return Err(format!(
                "{label}: vector {:?} runs past the payload",
                vh.method
            ));
        }
        let (b, r) = rest.split_at(len);
        rest = r;
        let what = || format!("{label}, vector {:?}", vh.method);
        let (emb, crc) = codec::decode_vector(b, what).map_err(|e| e.to_string())?;
        let sid = *by_name.get(&vh.space).ok_or_else(|| {
            format!(
                "{label}: vector {:?} names space {:?}, which the snapshot does not hold",
                vh.method, vh.space
            )
        })?;
        let space = spaces
            .iter()
            .find(|s| s.id == sid)
            .ok_or_else(|| format!("space {} missing", vh.space))?;
        space
            .check(&emb, &format!("{label}, vector {:?}", vh.method))
            .map_err(|e| e.to_string())?;
        let norm: f64 = match &emb {
            crate::model::Embedding::Dense(v) => v.iter().map(|x| f64::from(*x).powi(2)).sum(),
            crate::model::Embedding::LowRank(l) => l.s.iter().map(|x| f64::from(*x).powi(2)).sum(),
        };
        if !(norm.is_finite() && norm > 0.0) {
            return Err(format!(
                "{label}: vector {:?} has no finite non-zero norm",
                vh.method
            ));
        }
        let prep = space.prep(&emb).map_err(|e| e.to_string())?;
        metas.push(VecMeta {
            method: vh.method.clone(),
            space: sid,
            crc,
            prep,
        });
        vecs.push((vh.method.clone(), b.to_vec()));
    }
    let outputs = match head.outputs {
        None => None,
        Some(n) => {
            if head.kind != Kind::Model {
                return Err(format!("{label}: outputs on U for a dataset"));
            }
            let len = usize::try_from(n).unwrap_or(usize::MAX);
            if len > rest.len() {
                return Err(format!("{label}: its outputs on U run past the payload"));
            }
            let (b, r) = rest.split_at(len);
            rest = r;
            crate::outputs::decode(b, &|| format!("{label}, outputs on U"))
                .map_err(|e| e.to_string())?;
            Some(b.to_vec())
        }
    };
    if !rest.is_empty() {
        return Err(format!(
            "{label}: {} bytes after its last vector",
            rest.len()
        ));
    }
    Ok(ImageEntry {
        id,
        rec: EntryRecord {
            name: head.name,
            version: head.version,
            kind: head.kind.to_u8(),
            tags: head.tags,
            provenance_json: head.provenance,
            created_at_ms: created,
            deleted_at_ms: None,
            vectors: metas,
        },
        vectors: vecs,
        outputs,
    })
}
