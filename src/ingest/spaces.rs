//! The spaces an ingestion writes into: today's default space of each method, or the
//! database's existing one; for a new space, its frozen statistics (whitening, centring
//! reference) built from U's features through the per-machine cache (`frozen.rs`).

use serde_json::json;
use taskdb_methods::{self as methods, MethodKind, MethodParams, PairFeatures};

use super::{method_err, Ingestor, ProbeX, WHITENING_ROWS};
use crate::error::{Error, Result};
use crate::space::{SpaceRef, StoredReference, StoredWhitening, TaskSpaceParams};
use crate::TaskDb;

impl Ingestor {
    /// The definition of the space of `method` for this surrogate and probe set. When the space
    /// exists in `db` its stored definition is used as is (its frozen reference is never
    /// recomputed); otherwise its frozen statistics are built from U's features. `wanted`:
    /// parameters the caller insists on (`None`: the stored ones, or the defaults for a new
    /// space).
    pub(super) fn space_def(
        &self,
        db: &TaskDb,
        method: MethodKind,
        wanted: Option<&MethodParams>,
        probe_x: &mut ProbeX,
        notes: &mut Vec<String>,
    ) -> Result<(SpaceRef, String, TaskSpaceParams)> {
        let (sfp, pfp) = (self.surrogate.fingerprint(), self.probe.fingerprint_hex());
        let params = &match wanted {
            Some(p) => p.clone(),
            None => self.default_params(method),
        };
        let mut name = space_name(method, params, sfp, &pfp);
        if wanted.is_none() && matches!(db.space(&name), Err(Error::NotFound { .. })) {
            // A database made under an earlier default keeps growing its own space, so that
            // new entries stay comparable with the ones it holds; it says so.
            let earlier = db
                .spaces()?
                .into_iter()
                .filter(|s| {
                    s.def.method.as_deref() == Some(method.name())
                        && s.def.surrogate_fingerprint.as_deref() == Some(sfp)
                        && s.def.probe_fingerprint.as_deref() == Some(pfp.as_str())
                })
                .max_by_key(|s| s.id);
            if let Some(s) = earlier {
                notes.push(format!(
                    "{method}: this database's {method} entries are in space {:?}, made with an \
                     earlier default; this entry joins it so that it stays comparable with them. \
                     Today's default {method} space is {name:?} (docs/METHODS.md); to move to it, \
                     ingest the entries again into a new database",
                    s.def.name
                ));
                name = s.def.name;
            }
        }
        match db.space(&name) {
            Ok(s) => {
                let stored = TaskSpaceParams::from_def(&s.def)?;
                if let Some(params) = wanted.filter(|p| **p != stored.method_params) {
                    return Err(Error::SpaceMismatch(format!(
                        "space {name:?} was created with other {method} parameters ({}) than \
                         the ones asked for ({}); taskdb never changes a space's definition: \
                         leave the parameters unset to use the stored ones",
                        serde_json::to_string(&stored.method_params).unwrap_or_default(),
                        serde_json::to_string(params).unwrap_or_default()
                    )));
                }
                // An existing space is named by id: `put` need not compare its definition.
                Ok((SpaceRef::Id(s.id), s.def.name, stored))
            }
            Err(Error::NotFound { .. }) => {
                let mut p = TaskSpaceParams::new(method, params.clone(), None);
                // The whitening first: a reference of a whitening space is built in it.
                if let (true, Some(alpha)) =
                    (method.uses_whitening(params), params.scatter_whitening)
                {
                    p.whitening = Some(self.whitening(method, params, alpha, probe_x)?);
                }
                if method.uses_reference(params) {
                    let w = p.whitening(&name)?;
                    p.reference = Some(self.reference(method, params, w.as_ref(), probe_x)?);
                } else if let Some(lib) = self.library_for(method, params)? {
                    p = p.with_library_reference(&lib.reference()?, lib.describe());
                }
                let def = p.clone().into_def(
                    name.clone(),
                    self.surrogate.dim() as u32,
                    self.surrogate.fingerprint(),
                    &self.probe.fingerprint_hex(),
                );
                Ok((SpaceRef::Def(def), name, p))
            }
            Err(e) => Err(e),
        }
    }

    /// U's features as a space featurising pairs by `mode` sees them, computed (from the
    /// feature cache) on first use.
    pub(super) fn probe_x<'a>(
        &self,
        probe_x: &'a mut ProbeX,
        mode: PairFeatures,
    ) -> Result<&'a [f32]> {
        let mode = self.probe_mode(mode);
        let x = match probe_x.entry(mode) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(
                self.features_in(&self.probe_inputs(), mode, "probe set U")?
                    .0,
            ),
        };
        Ok(x.as_slice())
    }

    /// The frozen reference of a new space. Building it fits dozens of pseudo-tasks on U
    /// (seconds to a minute), so it is cached per machine (see [`Ingestor::frozen`]). Once in a
    /// space definition, the reference is part of the database.
    pub(super) fn reference(
        &self,
        method: MethodKind,
        params: &MethodParams,
        whitening: Option<&methods::Whitening>,
        probe_x: &mut ProbeX,
    ) -> Result<StoredReference> {
        let spec = methods::ReferenceSpec::default();
        let key = json!({"v": 1, "method": method, "params": params, "spec": spec});
        let verify = |r: &StoredReference| {
            TaskSpaceParams {
                reference: Some(r.clone()),
                ..TaskSpaceParams::new(method, params.clone(), None)
            }
            .reference("cached")
            .is_ok()
        };
        let mode = params.pair_features(method);
        self.frozen(method.name(), key, verify, (probe_x, mode), |f| {
            self.progress.stage(
                &format!("building the {method} space's frozen reference (once per machine)"),
                None,
            );
            let reference = methods::build_reference_in(method, params, whitening, f, &spec)
                .map_err(method_err("probe set U"))?;
            self.progress.done();
            TaskSpaceParams::new(method, params.clone(), Some(reference))
                .reference
                .ok_or_else(|| Error::Internal(format!("{method} has no reference")))
        })
    }

    /// The frozen whitening of a new space (scatter). It needs U's features, which a fresh
    /// database's feature cache does not have (encoding U costs ~20 s on 2 cores), so it is
    /// cached per machine like the references (see [`Ingestor::frozen`]).
    pub(super) fn whitening(
        &self,
        method: MethodKind,
        params: &MethodParams,
        alpha: f64,
        probe_x: &mut ProbeX,
    ) -> Result<StoredWhitening> {
        let key = json!({"v": 1, "whitening": alpha, "rows": WHITENING_ROWS});
        let shell = TaskSpaceParams::new(method, params.clone(), None);
        let verify = |w: &StoredWhitening| {
            TaskSpaceParams {
                whitening: Some(w.clone()),
                ..shell.clone()
            }
            .whitening("cached")
            .is_ok()
        };
        let mode = params.pair_features(method);
        self.frozen("whitening", key, verify, (probe_x, mode), |f| {
            let w = methods::build_whitening(f, alpha, WHITENING_ROWS)
                .map_err(method_err("probe set U"))?;
            shell
                .clone()
                .with_whitening(Some(&w))
                .whitening
                .ok_or_else(|| Error::Internal(format!("{method} does not whiten")))
        })
    }
}

/// The name of a method's space for a surrogate and probe set: `method:surrogate12:probe12`,
/// with the method's design tag when its parameters change what the first design of that
/// method computed (`scatter-kmeans-absdiff:…` for today's default; see
/// [`MethodParams::design_tag`]). So a changed default makes a new space, and a database made
/// before it keeps its old spaces, which stay readable and searchable as they were.
pub fn space_name(
    method: MethodKind,
    params: &MethodParams,
    surrogate_fp: &str,
    probe_fp: &str,
) -> String {
    let short = |s: &str| s.chars().take(12).collect::<String>();
    let method = match params.design_tag(method) {
        Some(tag) => format!("{}-{tag}", method.name()),
        None => method.name().to_string(),
    };
    format!("{method}:{}:{}", short(surrogate_fp), short(probe_fp))
}
