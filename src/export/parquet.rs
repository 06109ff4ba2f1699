//! The Parquet export: one file per space (`schema/EXPORT.md`), because a fixed-size vector
//! column has one length.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, ListBuilder};
use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

use super::{rows, ExportReport, Row};
use crate::error::{Error, Result};
use crate::model::Embedding;
use crate::TaskDb;

/// The rows of one space, column by column.
#[derive(Default)]
struct Columns {
    id: Vec<u64>,
    name: Vec<String>,
    version: Vec<u32>,
    kind: Vec<String>,
    method: Vec<String>,
    tags: Vec<String>,
    provenance: Vec<String>,
    created_at_ms: Vec<u64>,
    index_vector: Vec<Vec<f32>>,
    /// Dense spaces: the exact stored vector.
    vector: Vec<Vec<f32>>,
    /// Matrix spaces: the exact factors (U column-major, s).
    u: Vec<Vec<f32>>,
    s: Vec<Vec<f32>>,
}

/// A file name for a space: its name with every character outside `[A-Za-z0-9._-]` as `_`,
/// and the space id, so that two names cannot meet in one file.
fn file_name(space: &str, id: u32) -> String {
    let clean: String = space
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    format!("{clean}.{id}.parquet")
}

fn fixed(values: &[Vec<f32>], dim: usize) -> Result<ArrayRef> {
    let mut b = FixedSizeListBuilder::new(Float32Builder::new(), dim as i32);
    for v in values {
        if v.len() != dim {
            return Err(Error::Internal(format!(
                "a vector of {} in a column of {dim}",
                v.len()
            )));
        }
        b.values().append_slice(v);
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}

fn list(values: &[Vec<f32>]) -> ArrayRef {
    let mut b = ListBuilder::new(Float32Builder::new());
    for v in values {
        b.values().append_slice(v);
        b.append(true);
    }
    Arc::new(b.finish())
}

fn strings(v: &[String]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

impl Columns {
    fn push(&mut self, r: Row<'_>) -> Result<()> {
        let e = r.entry;
        self.id.push(e.id);
        self.name.push(e.rec.name.clone());
        self.version.push(e.rec.version);
        self.kind.push(e.rec.kind(e.id)?.as_str().to_string());
        self.method.push(r.method.to_string());
        let tags: BTreeMap<&str, &str> = e
            .rec
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.tags
            .push(serde_json::to_string(&tags).map_err(|e| Error::Internal(e.to_string()))?);
        self.provenance.push(e.rec.provenance_json.clone());
        self.created_at_ms.push(e.rec.created_at_ms);
        self.index_vector.push(r.index_vector);
        match r.value {
            Embedding::Dense(v) => self.vector.push(v),
            Embedding::LowRank(l) => {
                self.u.push(l.u);
                self.s.push(l.s);
            }
        }
        Ok(())
    }

    fn batch(&self, dense_dim: Option<usize>, index_dim: usize) -> Result<RecordBatch> {
        let f32_item = || Arc::new(Field::new("item", DataType::Float32, true));
        let mut fields = vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("version", DataType::UInt32, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("method", DataType::Utf8, false),
            Field::new("tags", DataType::Utf8, false),
            Field::new("provenance", DataType::Utf8, false),
            Field::new("created_at_ms", DataType::UInt64, false),
            Field::new(
                "index_vector",
                DataType::FixedSizeList(f32_item(), index_dim as i32),
                false,
            ),
        ];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(self.id.clone())),
            strings(&self.name),
            Arc::new(UInt32Array::from(self.version.clone())),
            strings(&self.kind),
            strings(&self.method),
            strings(&self.tags),
            strings(&self.provenance),
            Arc::new(UInt64Array::from(self.created_at_ms.clone())),
            fixed(&self.index_vector, index_dim)?,
        ];
        match dense_dim {
            Some(d) => {
                fields.push(Field::new(
                    "vector",
                    DataType::FixedSizeList(f32_item(), d as i32),
                    false,
                ));
                cols.push(fixed(&self.vector, d)?);
            }
            None => {
                fields.push(Field::new("factors_u", DataType::List(f32_item()), false));
                fields.push(Field::new("factors_s", DataType::List(f32_item()), false));
                cols.push(list(&self.u));
                cols.push(list(&self.s));
            }
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .map_err(|e| Error::Internal(format!("building a record batch: {e}")))
    }
}

impl TaskDb {
    /// Writes every live entry as Parquet into the directory `dir` (created; must not exist):
    /// one file per space, named after it, with columns `id`, `name`, `version`, `kind`,
    /// `method`, `tags` (JSON), `provenance` (JSON), `created_at_ms`, `index_vector` (the unit
    /// vector the space indexes: load this into a vector store) and the exact values: `vector`
    /// (dense spaces) or `factors_u` and `factors_s` (matrix spaces). The space's definition
    /// is in each file's key-value metadata (`taskdb.space`).
    pub fn export_parquet(&self, dir: &Path) -> Result<ExportReport> {
        if dir.exists() {
            return Err(Error::invalid(
                dir.display().to_string(),
                "exists; an export never writes into an existing path: choose a new directory",
            ));
        }
        let mut skipped = Vec::new();
        let img = self.read_image_saving(&mut skipped)?;
        let mut per_space: BTreeMap<u32, Columns> = BTreeMap::new();
        let mut nrows = 0u64;
        rows(&img, |r| {
            nrows += 1;
            per_space.entry(r.space.id).or_default().push(r)
        })?;
        let parent = crate::files::parent_dir(dir);
        let tmp = tempfile::Builder::new()
            .prefix(".taskdb-export-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(dir, e))?;
        let mut files = Vec::new();
        for s in &img.spaces {
            let Some(cols) = per_space.get(&s.id) else {
                continue;
            };
            let dense = matches!(s.def.embedding, crate::space::EmbeddingKind::Dense)
                .then_some(s.def.dim as usize);
            let index_dim = cols.index_vector.first().map(Vec::len).unwrap_or(0);
            let batch = cols.batch(dense, index_dim)?;
            let name = file_name(&s.def.name, s.id);
            let path: PathBuf = tmp.path().join(&name);
            let f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            let def = serde_json::to_string(&s.def).map_err(|e| Error::Internal(e.to_string()))?;
            let props = parquet::file::properties::WriterProperties::builder()
                .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
                    "taskdb.space".to_string(),
                    def,
                )]))
                .build();
            let pq = |e: parquet::errors::ParquetError| match e {
                parquet::errors::ParquetError::External(x) => {
                    match x.downcast::<std::io::Error>() {
                        Ok(io) => Error::io(&path, *io),
                        Err(x) => Error::Internal(format!("writing {}: {x}", path.display())),
                    }
                }
                other => Error::Internal(format!("writing {}: {other}", path.display())),
            };
            let mut w = ArrowWriter::try_new(f, batch.schema(), Some(props)).map_err(pq)?;
            w.write(&batch).map_err(pq)?;
            let f = w.into_inner().map_err(pq)?;
            f.sync_all().map_err(|e| Error::io(&path, e))?;
            files.push(dir.join(name));
        }
        let staged = tmp.keep();
        std::fs::rename(&staged, dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staged);
            Error::io(dir, e)
        })?;
        crate::files::sync_dir(&parent).map_err(|e| Error::io(&parent, e))?;
        Ok(ExportReport {
            entries: img.entries.len() as u64,
            rows: nrows,
            spaces: files.len() as u64,
            files,
            skipped,
        })
    }
}
