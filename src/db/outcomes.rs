//! Recorded transfer outcomes (see [`crate::outcome`]): add, list, remove. They live in their
//! own table and touch neither the catalog nor the graphs; every write bumps the store
//! generation like any other.

use std::collections::HashMap;

use redb::{ReadableTable, TableError};

use super::TaskDb;
use crate::error::{contain, Error, Result};
use crate::outcome::{self, NewOutcome, Outcome};
use crate::store::log::{self, LogOp};
use crate::store::tables::{bump_generation, open_write, storage};
use crate::store::{self, OUTCOMES};

impl TaskDb {
    /// Records outcomes in one transaction. Each names existing entries (any version), has a
    /// finite value, and is not a record already stored or repeated in the batch (same source,
    /// target, metric, model and seed): such a batch is refused whole, naming the record.
    /// `origin` says where the records came from (`origin(i)` for the i-th); returns their ids.
    pub fn add_outcomes(
        &self,
        outcomes: Vec<NewOutcome>,
        origin: &dyn Fn(usize) -> String,
    ) -> Result<Vec<u64>> {
        let db = self.rw("add outcomes")?;
        let mut st = self.write()?;
        for (i, o) in outcomes.iter().enumerate() {
            let at = origin(i);
            o.validate(&at)?;
            for name in [&o.source, &o.target] {
                if !st.catalog.names.contains_key(name.as_str()) {
                    return Err(Error::invalid(
                        &at,
                        format!(
                            "no entry named {name:?} in this database; ingest or import it \
                             first (`taskdb list` shows the names)"
                        ),
                    ));
                }
            }
        }
        contain("table outcomes", || {
            let txn = db.begin_write().map_err(storage("starting a write"))?;
            let mut ids = Vec::with_capacity(outcomes.len());
            {
                let mut t = open_write(&txn, OUTCOMES)?;
                // The records already stored, read in this write transaction (so no other
                // writer's record can slip in between the check and the insert).
                let mut existing = Vec::new();
                for row in t.iter().map_err(storage("reading outcomes"))? {
                    let (k, v) = row.map_err(storage("reading outcomes"))?;
                    existing.push(outcome::decode(k.value(), v.value())?);
                }
                let mut seen: HashMap<_, String> = existing
                    .iter()
                    .map(|o| (o.outcome.identity(), format!("outcome {}", o.id)))
                    .collect();
                let first = t
                    .last()
                    .map_err(storage("reading outcomes"))?
                    .map(|(k, _)| k.value() + 1)
                    .unwrap_or(1);
                let now = store::now_ms();
                for ((i, o), id) in outcomes.iter().enumerate().zip(first..) {
                    let at = origin(i);
                    if let Some(prev) = seen.insert(o.identity(), at.clone()) {
                        return Err(Error::invalid(
                            &at,
                            format!(
                                "{} → {}{} is already recorded ({prev}); record another seed \
                                 or model, or remove the old one with `taskdb outcome rm`",
                                o.source,
                                o.target,
                                qualifiers(o)
                            ),
                        ));
                    }
                    let rec = Outcome {
                        id,
                        outcome: o.clone(),
                        recorded_at_ms: now,
                        origin: at,
                    };
                    t.insert(id, outcome::encode(&rec)?.as_slice())
                        .map_err(storage("writing an outcome"))?;
                    ids.push(id);
                }
            }
            bump_generation(&txn)?;
            let mut op = LogOp::new("outcome-add");
            op.outcomes = ids.clone();
            log::append(&txn, op)?;
            txn.commit().map_err(storage("committing"))?;
            st.meta.generation += 1;
            Ok(ids)
        })
        .map_err(|e| e.on_file(&self.path))
    }

    /// Every stored outcome, by id. A database made before outcomes existed has none.
    pub fn outcomes(&self) -> Result<Vec<Outcome>> {
        let txn = self.db.begin_read()?;
        read_outcomes(&txn)
    }

    /// Removes the outcome `id`; [`Error::NotFound`] if there is none.
    pub fn remove_outcome(&self, id: u64) -> Result<Outcome> {
        let db = self.rw("remove an outcome")?;
        let mut st = self.write()?;
        contain("table outcomes", || {
            let txn = db.begin_write().map_err(storage("starting a write"))?;
            let removed = {
                let mut t = open_write(&txn, OUTCOMES)?;
                let old = t.remove(id).map_err(storage("removing an outcome"))?;
                match old {
                    // A damaged record can still be removed.
                    Some(v) => outcome::decode(id, v.value()).unwrap_or_else(|_| Outcome {
                        id,
                        outcome: NewOutcome::new("?", "?", 0.0),
                        recorded_at_ms: 0,
                        origin: "damaged record".into(),
                    }),
                    None => {
                        return Err(Error::NotFound {
                            what: format!("outcome {id} (`taskdb outcome list` shows the ids)"),
                        })
                    }
                }
            };
            bump_generation(&txn)?;
            let mut op = LogOp::new("outcome-remove");
            op.outcomes = vec![id];
            log::append(&txn, op)?;
            txn.commit().map_err(storage("committing"))?;
            st.meta.generation += 1;
            Ok(removed)
        })
        .map_err(|e| e.on_file(&self.path))
    }
}

/// ` (metric accuracy, model t5, seed 1)`: the identifying fields an outcome has, if any.
fn qualifiers(o: &NewOutcome) -> String {
    let mut q = Vec::new();
    if let Some(m) = &o.metric {
        q.push(format!("metric {m}"));
    }
    if let Some(m) = &o.model {
        q.push(format!("model {m}"));
    }
    if let Some(s) = o.seed {
        q.push(format!("seed {s}"));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!(" ({})", q.join(", "))
    }
}

/// Every outcome stored as of `txn`, by id, each checksum verified (none in a database made
/// before outcomes existed).
pub(crate) fn read_outcomes(txn: &redb::ReadTransaction) -> Result<Vec<Outcome>> {
    contain("table outcomes", || {
        let t = match txn.open_table(OUTCOMES) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(Error::storage("opening table outcomes", e)),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(storage("reading outcomes"))? {
            let (k, v) = row.map_err(storage("reading outcomes"))?;
            out.push(outcome::decode(k.value(), v.value())?);
        }
        Ok(out)
    })
}
