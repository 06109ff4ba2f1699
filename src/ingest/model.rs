//! Model ingestion: U's features and the model's run over U (prepare, no database needed),
//! then its predictions embedded as a pseudo-dataset in each method's space (write): FUTE's
//! model task embedding.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;
use taskdb_methods::{self as methods, MethodKind, PairFeatures};
use taskdb_sources::{self as sources, ModelOutputs};
use taskdb_surrogate::TextInput;

use super::{
    Embedded, FeatureSets, IngestOptions, IngestReport, Ingestor, ModelSource, Pending, Stages,
    TaskRows, MANY_LABELS,
};
use crate::error::{Error, Result};
use crate::features::CacheStats;
use crate::model::{Kind, Provenance};
use crate::outputs::{ModelOutputs as StoredOutputs, OutputValues};
use crate::TaskDb;

impl Ingestor {
    /// Ingests a black-box model: its predictions on U become the targets of a
    /// pseudo-dataset embedded exactly like a dataset (FUTE's model task embedding).
    ///
    /// [`Ingestor::prepare_model`] then [`Ingestor::write_model`].
    pub fn model(
        &self,
        db: &TaskDb,
        name: &str,
        source: &ModelSource,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let prepared = self.prepare_model(source, opts)?;
        self.write_model(db, name, source, prepared, opts)
    }

    /// The slow half of a model ingestion, which needs no database: U's features (through the
    /// feature cache) and the model's run over U (up to its timeout). Run it before opening the
    /// database for writing, so that readers are not locked out while the model works.
    pub fn prepare_model(
        &self,
        source: &ModelSource,
        opts: &IngestOptions,
    ) -> Result<PreparedModel> {
        let t0 = Instant::now();
        let mut stages = Stages(Vec::new());
        if opts.methods.contains(&MethodKind::TextEmb) {
            return Err(Error::invalid(
                "--method textemb",
                "textemb is the mean surrogate feature of the inputs; for a model the inputs are \
                 the probe set U, so it would be identical for every model. Use scatter, fisher \
                 or tuned",
            ));
        }
        // Features first: a warm cache makes this milliseconds, and a broken surrogate should
        // fail before a slow model runs.
        let (ux, cache, truncated) = stages.time("features", || self.probe_features())?;
        let subset = self.probe_subset(source, opts.probe_limit)?;
        let u = subset.as_ref().unwrap_or(&self.probe);
        self.progress
            .stage("running the model on U", Some(u.len() as u64));
        let outputs: ModelOutputs = stages.time("model", || match source {
            ModelSource::Command { command, options } => {
                sources::run_command(command, u, options).map_err(Error::from)
            }
            ModelSource::Predictions { path, options } => {
                sources::read_predictions(path, &self.probe, options).map_err(Error::from)
            }
            ModelSource::Onnx(c) => self.run_classifier(c),
        })?;
        self.progress.done();
        Ok(PreparedModel {
            outputs,
            ux,
            cache,
            truncated,
            stages,
            t0,
        })
    }

    /// The quick half of a model ingestion: embeds a [`PreparedModel`]'s predictions in each
    /// method's space of `db` and writes them as one entry in one transaction. `source` must be
    /// the one the predictions came from (it is recorded in the provenance).
    pub fn write_model(
        &self,
        db: &TaskDb,
        name: &str,
        source: &ModelSource,
        prepared: PreparedModel,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let methods_wanted = model_methods(opts);
        let PreparedModel {
            outputs,
            ux,
            cache,
            truncated,
            mut stages,
            t0,
        } = prepared;
        let targets = sources::to_targets(&outputs, sources::ScoreKind::Probabilities)
            .map_err(Error::from)?;
        // Rows of U the model answered (verbalizer misses are left out).
        let d = self.surrogate.dim();
        let mut positions = Vec::with_capacity(targets.ids.len());
        for id in &targets.ids {
            positions.push(
                self.probe.position(*id).ok_or_else(|| {
                    Error::Internal(format!("probe id {id} answered but not in U"))
                })?,
            );
        }
        let mut x_for = |mode| {
            let owned;
            let u: &[f32] = match self.probe_mode(mode) {
                PairFeatures::Joint => &ux,
                m => {
                    owned = self.features_in(&self.probe_inputs(), m, "probe set U")?.0;
                    &owned
                }
            };
            let mut x = Vec::with_capacity(positions.len() * d);
            for &pos in &positions {
                x.extend_from_slice(&u[pos * d..(pos + 1) * d]);
            }
            Ok(x)
        };
        // The joint featurisation (U's features, computed in `prepare_model`) is at hand: only
        // another featurisation of a U with text pairs is computed (and timed) in embed_all.
        let mut prepared_x = FeatureSets::new();
        prepared_x.insert(PairFeatures::Joint, x_for(PairFeatures::Joint)?);
        let y = model_targets(&targets);
        let mut warnings = Vec::new();
        if targets.labels.len() > MANY_LABELS {
            warnings.push(many_labels_warning(targets.labels.len()));
        }
        if let Some(n) = opts.probe_limit.filter(|&n| n < self.probe.len()) {
            warnings.push(format!(
                "--probe-limit: the model ran on a seeded subset of {n} of U's {} texts; its \
                 task embedding is an estimate from those (compare it with entries made the \
                 same way, or measure the difference on a cheap model first)",
                self.probe.len()
            ));
        }
        let Embedded {
            vectors,
            details,
            spaces,
        } = self.embed_all(
            db,
            &methods_wanted,
            opts,
            TaskRows {
                xs: &mut prepared_x,
                x_for: &mut x_for,
                has_pairs: self.probe_has_pairs(),
                y: &y,
                what: &format!("model {name}'s predictions on U"),
            },
            &mut stages,
            &mut warnings,
        )?;
        warnings.extend(unmatched_warning(&outputs));
        let source_json = source_provenance(source);
        let mut rows = BTreeMap::new();
        rows.insert("probe".to_string(), self.probe.len() as u64);
        rows.insert("answered".to_string(), targets.ids.len() as u64);
        let provenance = Provenance {
            taskdb_version: String::new(),
            input_sha256: None,
            input_size: None,
            rows,
            command_line: opts.command_line.clone(),
            params: self.params_provenance(opts, &methods_wanted, Some(source_json)),
            timings: BTreeMap::new(),
            details: json!({
                "labels": targets.labels,
                "outputs": outputs.report,
                "methods": details,
                "features": cache,
            }),
        };
        let pending = Pending {
            name,
            kind: Kind::Model,
            vectors,
            spaces,
            provenance,
            stages,
            t0,
            cache,
            truncated,
            warnings,
            outputs: Some(self.stored_outputs(&targets, &positions)),
        };
        self.write(db, pending, opts)
    }

    /// What the model task embedding was computed from, to be stored with the entry: each
    /// answered row's index in U (ascending) and its label or distribution (as the f32 values
    /// the methods got).
    fn stored_outputs(&self, t: &sources::Targets, positions: &[usize]) -> StoredOutputs {
        let mut order: Vec<usize> = (0..positions.len()).collect();
        order.sort_by_key(|&i| positions[i]);
        let values = match &t.values {
            sources::TargetValues::Hard(l) => {
                OutputValues::Hard(order.iter().map(|&i| l[i]).collect())
            }
            sources::TargetValues::Soft(rows) => OutputValues::Soft(
                order
                    .iter()
                    .flat_map(|&i| rows[i].iter().map(|&p| p as f32))
                    .collect(),
            ),
        };
        StoredOutputs {
            probe_fingerprint: self.probe.fingerprint_hex(),
            probe_rows: self.probe.len() as u32,
            labels: t.labels.clone(),
            rows: order.iter().map(|&i| positions[i] as u32).collect(),
            values,
        }
    }

    /// The seeded subset of U a model command runs on under `--probe-limit` (`None`: all of
    /// U). Ids are kept, so answers map back to U's rows and the space stays U's.
    fn probe_subset(
        &self,
        source: &ModelSource,
        limit: Option<usize>,
    ) -> Result<Option<sources::ProbeSet>> {
        let Some(n) = limit else {
            return Ok(None);
        };
        if !matches!(source, ModelSource::Command { .. }) {
            return Err(Error::invalid(
                "--probe-limit",
                "applies to a model --command (a predictions file or an ONNX classifier \
                 answers all of U)",
            ));
        }
        if n == 0 {
            return Err(Error::invalid(
                "--probe-limit",
                "0 texts: give at least a few hundred (the estimate gets noisier as it shrinks)",
            ));
        }
        if n >= self.probe.len() {
            return Ok(None);
        }
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut idx: Vec<usize> = (0..self.probe.len()).collect();
        idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            super::PROBE_SUBSET_SEED,
        ));
        let mut pick: Vec<usize> = idx.into_iter().take(n).collect();
        pick.sort_unstable();
        let texts = pick.iter().map(|&i| self.probe.texts[i].clone()).collect();
        let name = format!("{} (seeded subset of {n})", self.probe.name);
        Ok(Some(sources::ProbeSet::from_texts(&name, texts)?))
    }

    /// Runs a local ONNX classifier over U; its probabilities are the soft targets.
    fn run_classifier(&self, c: &taskdb_surrogate::Classifier) -> Result<ModelOutputs> {
        let inputs: Vec<TextInput<'_>> = self
            .probe
            .texts
            .iter()
            .map(|t| match &t.text_pair {
                None => TextInput::Single(&t.text),
                Some(p) => TextInput::Pair(&t.text, p),
            })
            .collect();
        let probs = c.classify(&inputs)?;
        let labels = c.labels().to_vec();
        let mut predictions = BTreeMap::new();
        for (t, row) in self.probe.texts.iter().zip(probs) {
            let scores = labels
                .iter()
                .cloned()
                .zip(row.into_iter().map(f64::from))
                .collect();
            predictions.insert(t.id, sources::Prediction::Scores(scores));
        }
        let mut label_counts = BTreeMap::new();
        for p in predictions.values() {
            if let sources::Prediction::Scores(sc) = p {
                if let Some((l, _)) = sc
                    .iter()
                    .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
                {
                    *label_counts.entry(l.clone()).or_insert(0u64) += 1;
                }
            }
        }
        let n = predictions.len();
        Ok(ModelOutputs {
            probe_fingerprint: self.probe.fingerprint_hex(),
            predictions,
            declared_labels: labels,
            report: sources::OutputReport {
                source: format!("onnx classifier {}", c.info().model_path.display()),
                lines: n as u64,
                answered: n,
                hard_labels: 0,
                soft_scores: n,
                unmatched: 0,
                unmatched_examples: Vec::new(),
                label_counts,
                verbalized: false,
            },
        })
    }
}

/// A model's predictions on U and U's features, from [`Ingestor::prepare_model`], to be
/// written by [`Ingestor::write_model`].
pub struct PreparedModel {
    outputs: ModelOutputs,
    ux: Vec<f32>,
    cache: CacheStats,
    truncated: usize,
    stages: Stages,
    t0: Instant,
}

/// The methods a model is embedded with: those asked for, else every method that uses
/// targets (all but `textemb`, which describes inputs, and a model's inputs are U).
fn model_methods(opts: &IngestOptions) -> Vec<MethodKind> {
    if opts.methods.is_empty() {
        MethodKind::ALL
            .into_iter()
            .filter(|m| m.uses_targets())
            .collect()
    } else {
        opts.methods.clone()
    }
}

fn many_labels_warning(n: usize) -> String {
    format!(
        "the model gave {n} distinct labels on U (more than {MANY_LABELS}): a task \
         embedding has one direction per class, so this is slow and rarely what a \
         classifier means; check its output (a label per text, not a free-text reply), \
         or map replies to classes with --verbalizers"
    )
}

/// A warning when some replies matched no verbalizer (they are left out of the targets).
fn unmatched_warning(outputs: &ModelOutputs) -> Option<String> {
    let r = &outputs.report;
    (r.unmatched > 0).then(|| {
        format!(
            "{} of {} replies matched no verbalizer and were left out (e.g. {:?})",
            r.unmatched,
            r.lines,
            r.unmatched_examples
                .iter()
                .take(3)
                .map(|(_, r)| r.as_str())
                .collect::<Vec<_>>()
        )
    })
}

/// Where the model's predictions came from, for provenance.
fn source_provenance(source: &ModelSource) -> serde_json::Value {
    match source {
        ModelSource::Command { command, options } => json!({
            "type": "command", "command": command,
            "timeout_s": options.timeout.as_secs_f64(),
            "prompt": options.prompt.as_ref().map(|p| p.as_str().to_string()),
            "verbalizers": options.predictions.verbalizers.as_ref().map(|v| v.labels()),
        }),
        ModelSource::Predictions { path, options } => json!({
            "type": "predictions", "path": path,
            "sha256": crate::files::sha256_file(path).ok().map(|(h, _)| h),
            "verbalizers": options.verbalizers.as_ref().map(|v| v.labels()),
        }),
        ModelSource::Onnx(c) => json!({"type": "onnx", "classifier": c.info()}),
    }
}

fn model_targets(t: &sources::Targets) -> methods::Targets {
    let c = t.labels.len();
    match &t.values {
        sources::TargetValues::Hard(l) => methods::Targets::Classes {
            labels: l.clone(),
            n_classes: c,
        },
        sources::TargetValues::Soft(rows) => methods::Targets::Soft {
            probs: rows.iter().flatten().map(|&p| p as f32).collect(),
            n_classes: c,
        },
    }
}
