//! The text tables in both formats, and the migration from format 1 to format 2.
//!
//! Format 1 stored text keys and values (`meta` keys, `vectors` methods, `names`, `name_seq`,
//! `spaces`, `space_names`) as redb `&str`, whose decoding redb `unwrap`s: a damaged byte made
//! redb panic (contained by [`crate::error::contain`], RELIABILITY.md promise 12). Format 2
//! stores the same bytes as `&[u8]` under the same table names, decoded by taskdb
//! ([`codec::text`]) into [`Error::Corrupt`] naming the table and key.
//!
//! A handle reads whichever format the file has: each reader here opens the format-2 table
//! and, when redb says the stored types differ, the format-1 one (read-only opens of old files:
//! `check --read-only`, `snapshot create`, read-only mounts; their panics stay contained by the
//! callers). A writable open migrates a format-1 file first ([`migrate`], one transaction).

use redb::{
    Database, Key, ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError, TableHandle, Value, WriteTransaction,
};

use super::codec;
use super::log::{self, LogOp};
use super::tables::{open_write, storage};
use crate::error::{Error, Result};
use crate::space::{Space, SpaceId};

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const VECTORS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("vectors");
pub(crate) const NAMES: TableDefinition<(&str, u32), u64> = TableDefinition::new("names");
pub(crate) const NAME_SEQ: TableDefinition<&str, u32> = TableDefinition::new("name_seq");
pub(crate) const SPACES: TableDefinition<u32, &str> = TableDefinition::new("spaces");
pub(crate) const SPACE_NAMES: TableDefinition<&str, u32> = TableDefinition::new("space_names");

/// A table opened in the file's format: `New` (format 2) or `Old` (format 1).
pub(crate) enum Either<A, B> {
    New(A),
    Old(B),
}

type Ro<K, V> = ReadOnlyTable<K, V>;
type Bytes = &'static [u8];
type Text = &'static str;
/// What [`open_either`] gives.
type Opened<K1, V1, K2, V2> = std::result::Result<Either<Ro<K1, V1>, Ro<K2, V2>>, TableError>;
type MetaEither = Either<Ro<Bytes, Bytes>, Ro<Text, Bytes>>;
type VectorsEither = Either<Ro<(u64, Bytes), Bytes>, Ro<(u64, Text), Bytes>>;
type NamesEither = Either<Ro<(Bytes, u32), u64>, Ro<(Text, u32), u64>>;

/// Opens `new`, or `old` when the stored table has format 1's types.
fn open_either<K1, V1, K2, V2>(
    txn: &ReadTransaction,
    new: TableDefinition<'static, K1, V1>,
    old: TableDefinition<'static, K2, V2>,
) -> Opened<K1, V1, K2, V2>
where
    K1: Key + 'static,
    V1: Value + 'static,
    K2: Key + 'static,
    V2: Value + 'static,
{
    match txn.open_table(new) {
        Err(TableError::TableTypeMismatch { .. }) => txn.open_table(old).map(Either::Old),
        r => r.map(Either::New),
    }
}

fn opened<T>(name: &str, r: std::result::Result<T, TableError>) -> Result<T> {
    r.map_err(|e| Error::storage(format!("opening table {name}"), e))
}

/// The `meta` table in either format.
pub(crate) struct MetaTable(MetaEither);

impl MetaTable {
    pub(crate) fn open(txn: &ReadTransaction) -> std::result::Result<MetaTable, TableError> {
        open_either(txn, super::META, META).map(MetaTable)
    }

    /// Whether the table has format 1's types.
    pub(crate) fn is_v1(&self) -> bool {
        matches!(self.0, Either::Old(_))
    }

    /// The value under `key` (a lookup compares bytes: format 1's `&str` keys are not decoded).
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let r = match &self.0 {
            Either::New(t) => t.get(key.as_bytes()).map(|g| g.map(|g| g.value().to_vec())),
            Either::Old(t) => t.get(key).map(|g| g.map(|g| g.value().to_vec())),
        };
        r.map_err(storage("reading meta"))
    }
}

/// The `vectors` table in either format.
pub(crate) struct VectorsTable(VectorsEither);

impl VectorsTable {
    pub(crate) fn open(txn: &ReadTransaction) -> Result<VectorsTable> {
        opened("vectors", open_either(txn, super::VECTORS, VECTORS)).map(VectorsTable)
    }

    /// `f` of the record of entry `id`, method `method`, if there is one.
    pub(crate) fn get<R>(
        &self,
        id: u64,
        method: &str,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        let r = match &self.0 {
            // Format 3 may store a record in parts; format 2's whole records read the same.
            Either::New(t) => super::parts::read(t, id, method, f),
            Either::Old(t) => t.get((id, method)).map(|g| g.map(|g| f(g.value()))),
        };
        r.map_err(storage("reading vector"))
    }
}

/// The `names` table in either format.
pub(crate) struct NamesTable(NamesEither);

impl NamesTable {
    pub(crate) fn open(txn: &ReadTransaction) -> Result<NamesTable> {
        opened("names", open_either(txn, super::NAMES, NAMES)).map(NamesTable)
    }

    /// The id stored for `name@version`.
    pub(crate) fn get(&self, name: &str, version: u32) -> Result<Option<u64>> {
        let r = match &self.0 {
            Either::New(t) => t
                .get((name.as_bytes(), version))
                .map(|g| g.map(|g| g.value())),
            Either::Old(t) => t.get((name, version)).map(|g| g.map(|g| g.value())),
        };
        r.map_err(storage("reading names"))
    }

    pub(crate) fn len(&self) -> Result<u64> {
        match &self.0 {
            Either::New(t) => t.len(),
            Either::Old(t) => t.len(),
        }
        .map_err(storage("reading names"))
    }
}

/// A space definition as stored (format 2: its JSON's bytes), decoded.
pub(crate) fn decode_space(id: SpaceId, bytes: &[u8]) -> Result<Space> {
    let what = || format!("table spaces, id {id}");
    let json = codec::text(bytes, what)?;
    let s: Space = serde_json::from_str(json).map_err(|e| Error::Corrupt {
        what: what(),
        detail: format!("undecodable space definition: {e}"),
    })?;
    if s.id != id {
        return Err(Error::Corrupt {
            what: what(),
            detail: format!("the definition stored under id {id} says id {}", s.id),
        });
    }
    Ok(s)
}

/// Every stored space definition, each decoded on its own (a damaged one is an `Err` beside
/// the others). In format 1 a damaged byte panics in redb: call this under `contain`.
pub(crate) fn spaces(txn: &ReadTransaction) -> Result<Vec<(SpaceId, Result<Space>)>> {
    let mut out = Vec::new();
    let e = storage("reading spaces");
    match opened("spaces", open_either(txn, super::SPACES, SPACES))? {
        Either::New(t) => {
            for row in t.iter().map_err(&e)? {
                let (k, v) = row.map_err(&e)?;
                out.push((k.value(), decode_space(k.value(), v.value())));
            }
        }
        Either::Old(t) => {
            for row in t.iter().map_err(&e)? {
                let (k, v) = row.map_err(&e)?;
                out.push((k.value(), decode_space(k.value(), v.value().as_bytes())));
            }
        }
    }
    Ok(out)
}

/// The `name_seq` table: the last version given to each name, in name order.
pub(crate) fn name_seq(txn: &ReadTransaction) -> Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    let e = storage("reading name_seq");
    match opened("name_seq", open_either(txn, super::NAME_SEQ, NAME_SEQ))? {
        Either::New(t) => {
            for row in t.iter().map_err(&e)? {
                let (k, v) = row.map_err(&e)?;
                let name = codec::text(k.value(), || {
                    format!("table name_seq, key {}", String::from_utf8_lossy(k.value()))
                })?;
                out.push((name.to_string(), v.value()));
            }
        }
        Either::Old(t) => {
            for row in t.iter().map_err(&e)? {
                let (k, v) = row.map_err(&e)?;
                out.push((k.value().to_string(), v.value()));
            }
        }
    }
    Ok(out)
}

/// Every text key or value of a format-2 file that is not UTF-8, one problem each, naming the
/// table and the key or id (`check`). Format 1 files are not scanned here (redb decodes their
/// text; `check` reads them contained).
pub(crate) fn damaged_text(txn: &ReadTransaction) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut note = |r: Result<&str>| {
        if let Err(e) = r {
            problems.push(e.to_string());
        }
    };
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let e = storage("reading a text table");
    let Ok(meta) = txn.open_table(super::META) else {
        return Ok(Vec::new());
    };
    for row in meta.iter().map_err(&e)? {
        let (k, _) = row.map_err(&e)?;
        note(codec::text(k.value(), || {
            format!("table meta, key {}", lossy(k.value()))
        }));
    }
    for row in opened("vectors", txn.open_table(super::VECTORS))?
        .iter()
        .map_err(&e)?
    {
        let (k, _) = row.map_err(&e)?;
        let (id, m) = k.value();
        let m = super::parts::method_of(m);
        note(codec::text(m, || {
            format!("table vectors, entry {id}, method {}", lossy(m))
        }));
    }
    for row in opened("names", txn.open_table(super::NAMES))?
        .iter()
        .map_err(&e)?
    {
        let (k, v) = row.map_err(&e)?;
        let (n, version) = k.value();
        note(codec::text(n, || {
            format!("table names, entry {} ({}@{version})", v.value(), lossy(n))
        }));
    }
    for (def, table) in [
        (super::NAME_SEQ, "name_seq"),
        (super::SPACE_NAMES, "space_names"),
    ] {
        for row in opened(table, txn.open_table(def))?.iter().map_err(&e)? {
            let (k, v) = row.map_err(&e)?;
            let what = if table == "name_seq" {
                "last version"
            } else {
                "space id"
            };
            note(codec::text(k.value(), || {
                format!(
                    "table {table}, key {} ({what} {})",
                    lossy(k.value()),
                    v.value()
                )
            }));
        }
    }
    Ok(problems)
}

/// Decodes every key and value of the format-1 text tables, in one read transaction, each
/// table contained: a damaged byte is [`Error::Corrupt`] naming the table.
fn read_all(db: &Database) -> Result<()> {
    use redb::ReadableDatabase;
    fn each<K: Key + 'static, V: Value + 'static>(
        txn: &ReadTransaction,
        def: TableDefinition<'static, K, V>,
    ) -> Result<()> {
        crate::error::contain(&format!("table {} (format 1)", def.name()), || {
            let t = match txn.open_table(def) {
                Err(TableError::TableDoesNotExist(_)) => return Ok(()),
                r => opened(def.name(), r)?,
            };
            let e = storage("reading a format-1 table");
            for row in t.iter().map_err(&e)? {
                let (k, v) = row.map_err(&e)?;
                let _ = (k.value(), v.value());
            }
            Ok(())
        })
    }
    let txn = db
        .begin_read()
        .map_err(|e| Error::storage("starting a read transaction", e))?;
    each(&txn, META)?;
    each(&txn, VECTORS)?;
    each(&txn, NAMES)?;
    each(&txn, NAME_SEQ)?;
    each(&txn, SPACES)?;
    each(&txn, SPACE_NAMES)
}

/// Reads every row of `def` (format 1) into `f`'s owned form, then deletes the table.
fn take<K: Key + 'static, V: Value + 'static, T>(
    txn: &WriteTransaction,
    def: TableDefinition<'static, K, V>,
    f: impl for<'a> Fn(K::SelfType<'a>, V::SelfType<'a>) -> T,
) -> Result<Vec<T>> {
    let rows = {
        let t = open_write(txn, def)?;
        let e = storage("reading a format-1 table");
        let mut rows = Vec::new();
        for row in t.iter().map_err(&e)? {
            let (k, v) = row.map_err(&e)?;
            rows.push(f(k.value(), v.value()));
        }
        rows
    };
    txn.delete_table(def)
        .map_err(|e| Error::storage(format!("replacing table {}", def.name()), e))?;
    Ok(rows)
}

/// Migrates a format-1 database to format 2 in one write transaction: each text table is read
/// whole, deleted and written again with the same bytes as `&[u8]`; `format_version` becomes 2
/// and a `migrate` record is appended to the write log. Nothing else changes (ids, generations,
/// the graphs' manifests stay valid). All or nothing: on any error (a damaged text byte makes
/// redb panic while format 1 is read: call this under `contain`) the transaction is dropped
/// and the file keeps format 1. Memory: one table's rows at a time (the `vectors` table is the
/// largest: about the size of the stored vectors).
pub(crate) fn migrate(db: &Database) -> Result<()> {
    // Every format-1 text is decoded in a read transaction first: redb panics on a damaged
    // byte there, and a panic inside a write transaction would leave the file needing
    // recovery (not unchanged).
    read_all(db)?;
    let txn = db
        .begin_write()
        .map_err(storage("starting the format migration"))?;
    let w = storage("writing the migrated tables");
    let meta = take(&txn, META, |k, v| (k.as_bytes().to_vec(), v.to_vec()))?;
    {
        let mut t = open_write(&txn, super::META)?;
        for (k, v) in &meta {
            t.insert(k.as_slice(), v.as_slice()).map_err(&w)?;
        }
        t.insert(
            b"format_version".as_slice(),
            super::FORMAT_VERSION.to_le_bytes().as_slice(),
        )
        .map_err(&w)?;
    }
    let vectors = take(&txn, VECTORS, |(id, m), v| {
        (id, m.as_bytes().to_vec(), v.to_vec())
    })?;
    {
        let mut t = open_write(&txn, super::VECTORS)?;
        for (id, m, v) in &vectors {
            super::parts::insert_bytes(&mut t, *id, m, v).map_err(&w)?;
        }
    }
    let n_vectors = vectors.len();
    drop(vectors);
    let names = take(&txn, NAMES, |(n, ver), id| (n.as_bytes().to_vec(), ver, id))?;
    {
        let mut t = open_write(&txn, super::NAMES)?;
        for (n, ver, id) in &names {
            t.insert((n.as_slice(), *ver), *id).map_err(&w)?;
        }
    }
    let seq = take(&txn, NAME_SEQ, |n, v| (n.as_bytes().to_vec(), v))?;
    {
        let mut t = open_write(&txn, super::NAME_SEQ)?;
        for (n, v) in &seq {
            t.insert(n.as_slice(), *v).map_err(&w)?;
        }
    }
    let spaces = take(&txn, SPACES, |id, j| (id, j.as_bytes().to_vec()))?;
    {
        let mut t = open_write(&txn, super::SPACES)?;
        for (id, j) in &spaces {
            t.insert(*id, j.as_slice()).map_err(&w)?;
        }
    }
    let space_names = take(&txn, SPACE_NAMES, |n, id| (n.as_bytes().to_vec(), id))?;
    {
        let mut t = open_write(&txn, super::SPACE_NAMES)?;
        for (n, id) in &space_names {
            t.insert(n.as_slice(), *id).map_err(&w)?;
        }
    }
    let mut op = LogOp::new("migrate");
    op.detail = Some(format!(
        "format 1 -> {}: text keys and values stored as bytes ({} vectors, {} names, {} spaces)",
        super::FORMAT_VERSION,
        n_vectors,
        names.len(),
        spaces.len()
    ));
    log::append(&txn, op)?;
    txn.commit()
        .map_err(storage("committing the format migration"))
}
