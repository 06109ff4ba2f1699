//! Dataset ingestion: read the file, encode its rows (prepare, no database needed), then embed
//! them in each method's space and write one entry (write).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use taskdb_methods::{self as methods, MethodKind, PairFeatures};
use taskdb_sources::{self as sources, Dataset};

use super::{
    add_stats, features_stage, Embedded, FeatureSets, IngestOptions, IngestReport, Ingestor,
    Pending, Stages, TaskRows,
};
use crate::error::{Error, Result};
use crate::features::{CacheStats, FeatureInput};
use crate::model::{Kind, Provenance};
use crate::recommend::UnstoredTarget;
use crate::space::SpaceRef;
use crate::TaskDb;

impl Ingestor {
    /// Ingests a dataset file as a new entry (or a new version of `name`):
    /// [`Ingestor::prepare_dataset`] then [`Ingestor::write_dataset`].
    pub fn dataset(
        &self,
        db: &TaskDb,
        name: &str,
        path: &Path,
        dopts: &sources::DatasetOptions,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let prepared = self.prepare_dataset(path, dopts, opts)?;
        self.write_dataset(db, name, prepared, opts)
    }

    /// The slow half of a dataset ingestion, which needs no database: reads the file and
    /// encodes its rows (through the feature cache) for the featurisations the default spaces
    /// of `opts`'s methods use. Run it before opening the database for writing, so that readers
    /// are not locked out while the surrogate works.
    pub fn prepare_dataset(
        &self,
        path: &Path,
        dopts: &sources::DatasetOptions,
        opts: &IngestOptions,
    ) -> Result<PreparedDataset> {
        let t0 = Instant::now();
        let mut stages = Stages(Vec::new());
        self.progress
            .stage(&format!("reading {}", path.display()), None);
        let ds: Dataset = stages.time("read", || {
            sources::read_dataset(path, dopts).map_err(Error::from)
        })?;
        self.progress.done();
        let has_pairs = ds.rows.iter().any(|r| r.text_pair.is_some());
        let mut modes = std::collections::BTreeSet::new();
        for m in dataset_methods(opts) {
            let params = opts
                .params
                .clone()
                .unwrap_or_else(|| self.default_params(m));
            modes.insert(match has_pairs {
                true => params.pair_features(m),
                false => PairFeatures::Joint,
            });
        }
        let mut xs = FeatureSets::new();
        let (mut cache, mut truncated) = (CacheStats::default(), 0);
        {
            let inputs = dataset_inputs(&ds);
            for mode in modes {
                let (x, c, t) = stages.time(features_stage(mode), || {
                    self.features_in(&inputs, mode, "dataset rows")
                })?;
                add_stats(&mut cache, c);
                truncated += t;
                xs.insert(mode, x);
            }
        }
        Ok(PreparedDataset {
            path: path.to_path_buf(),
            ds,
            xs,
            cache,
            truncated,
            stages,
            t0,
        })
    }

    /// The quick half of a dataset ingestion: embeds a [`PreparedDataset`] in each method's
    /// space of `db` (features a stored space needs that were not prepared are computed
    /// here) and writes it as one entry in one transaction.
    pub fn write_dataset(
        &self,
        db: &TaskDb,
        name: &str,
        prepared: PreparedDataset,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let pending = self.embed_prepared(db, name, prepared, opts)?;
        self.write(db, pending, opts)
    }

    /// Embeds a [`PreparedDataset`] in the spaces `db` already has, without storing it: the
    /// target of a question about a dataset that is not in the database (`taskdb recommend
    /// --file`). A method whose space `db` does not have yet is left out (nothing stored could
    /// be compared with it), and so is every vector if `db` has none of the spaces; the
    /// warnings say so.
    pub fn embed_dataset(
        &self,
        db: &TaskDb,
        name: &str,
        prepared: PreparedDataset,
        opts: &IngestOptions,
    ) -> Result<(UnstoredTarget, Vec<String>)> {
        let mut p = self.embed_prepared(db, name, prepared, opts)?;
        let mut vectors = BTreeMap::new();
        for v in p.vectors {
            let space = p.spaces.get(&v.method).cloned().unwrap_or_default();
            match v.space {
                SpaceRef::Id(_) => {
                    vectors.insert(v.method, (space, v.embedding));
                }
                _ => p.warnings.push(format!(
                    "{}: the database has no {} space {space:?} yet, so nothing stored can be                      compared with this method",
                    v.method, v.method
                )),
            }
        }
        let target = UnstoredTarget {
            name: name.to_string(),
            vectors,
        };
        Ok((target, p.warnings))
    }

    /// Embeds a prepared dataset in each wanted method's space: everything of an ingestion but
    /// the write.
    fn embed_prepared<'a>(
        &self,
        db: &TaskDb,
        name: &'a str,
        prepared: PreparedDataset,
        opts: &IngestOptions,
    ) -> Result<Pending<'a>> {
        let methods_wanted = dataset_methods(opts);
        let PreparedDataset {
            path,
            ds,
            mut xs,
            mut cache,
            mut truncated,
            mut stages,
            t0,
        } = prepared;
        let inputs = dataset_inputs(&ds);
        let has_pairs = inputs.iter().any(|i| i.pair.is_some());
        let mut x_for = |mode| {
            let (x, c, t) = self.features_in(&inputs, mode, "dataset rows")?;
            add_stats(&mut cache, c);
            truncated += t;
            Ok(x)
        };
        let y = dataset_targets(&ds);
        let what = format!("dataset {}", path.display());
        let mut warnings = Vec::new();
        let Embedded {
            vectors,
            details,
            spaces,
        } = self.embed_all(
            db,
            &methods_wanted,
            opts,
            TaskRows {
                xs: &mut xs,
                x_for: &mut x_for,
                has_pairs,
                y: &y,
                what: &what,
            },
            &mut stages,
            &mut warnings,
        )?;
        let summary = serde_json::to_value(&ds.summary).unwrap_or_default();
        let mut rows = BTreeMap::new();
        rows.insert("read".to_string(), ds.summary.rows_read);
        rows.insert("used".to_string(), ds.summary.rows_kept);
        let provenance = Provenance {
            taskdb_version: String::new(),
            input_sha256: Some(ds.summary.sha256.clone()),
            input_size: Some(ds.summary.bytes),
            rows,
            command_line: opts.command_line.clone(),
            params: self.params_provenance(opts, &methods_wanted, None),
            timings: BTreeMap::new(),
            details: json!({"dataset": summary, "methods": details, "features": cache, "truncated": truncated}),
        };
        let pending = Pending {
            name,
            kind: Kind::Dataset,
            vectors,
            spaces,
            provenance,
            stages,
            t0,
            cache,
            truncated,
            warnings,
            outputs: None,
        };
        Ok(pending)
    }
}

/// A dataset read and encoded by [`Ingestor::prepare_dataset`], to be written by
/// [`Ingestor::write_dataset`] (holds the rows and their features; a few MB for 2,000 rows).
pub struct PreparedDataset {
    path: PathBuf,
    ds: Dataset,
    xs: FeatureSets,
    cache: CacheStats,
    truncated: usize,
    stages: Stages,
    t0: Instant,
}

impl PreparedDataset {
    /// Rows kept (after the file's sampling limit).
    pub fn rows(&self) -> usize {
        self.ds.rows.len()
    }

    /// The rows' features for one pair featurisation (row-major, the surrogate's width), when
    /// they were prepared (see [`Ingestor::prepare_dataset`]).
    pub fn features(&self, mode: PairFeatures) -> Option<&[f32]> {
        self.xs.get(&mode).map(Vec::as_slice)
    }

    /// Whether the rows are text pairs.
    pub fn has_pairs(&self) -> bool {
        self.ds.rows.iter().any(|r| r.text_pair.is_some())
    }

    /// The rows' targets, as every method receives them.
    pub fn targets(&self) -> methods::Targets {
        dataset_targets(&self.ds)
    }
}

/// The feature-cache inputs of a dataset's rows (a text, or a text pair).
fn dataset_inputs(ds: &Dataset) -> Vec<FeatureInput<'_>> {
    ds.rows
        .iter()
        .map(|r| FeatureInput {
            text: &r.text,
            pair: r.text_pair.as_deref(),
        })
        .collect()
}

/// The methods a dataset ingestion computes: `opts.methods`, or all four.
fn dataset_methods(opts: &IngestOptions) -> Vec<MethodKind> {
    if opts.methods.is_empty() {
        MethodKind::ALL.to_vec()
    } else {
        opts.methods.clone()
    }
}

fn dataset_targets(ds: &Dataset) -> methods::Targets {
    match ds.task {
        sources::Task::Classification => methods::Targets::Classes {
            labels: ds.class_indices().unwrap_or_default(),
            n_classes: ds.labels.len(),
        },
        sources::Task::Regression => methods::Targets::Regression {
            values: ds
                .values()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        },
    }
}
