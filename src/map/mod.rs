//! Maps of a task space (`taskdb map`, `db.map()` in Python): where each entry of one space
//! lies on a plane, with its nearest neighbours, drawn as SVG, PNG or one self-contained HTML
//! file, or written as JSON.
//!
//! * `layout.rs`: the pure, deterministic projections (t-SNE started from kernel PCA, or the
//!   kernel PCA alone) of the space's own exact similarity matrix, and the placement of new
//!   points on a frozen layout.
//! * `render.rs`: the picture (the `svg` crate composes it, resvg rasterises it with the
//!   embedded DejaVu Sans, so the same map gives the same pixels everywhere).
//!
//! The similarities are the exact scores `knn` returns ([`TaskDb::nearest`]), so a map never
//! disagrees with a query. One map is one space: the entries of the method that live in
//! another space (an older default's, say) are listed in [`TaskMap::left_out`].

mod html;
mod labels;
mod layout;
mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use layout::TSNE_MAX_POINTS;
pub use render::{RenderOptions, RenderReport};

use crate::db::{TaskDb, DEFAULT_METHOD};
use crate::error::{Error, Result};
use crate::model::{EntryRef, Kind};
use crate::search::{Filter, Query};

/// The format tag of a map written as JSON (also a frozen layout file).
pub const MAP_FORMAT: &str = "taskdb-map-1";

/// Above this many points a map is refused (the similarity matrix is n² exact scores); narrow
/// it with a kind, tag or name filter.
pub const MAP_MAX_POINTS: usize = 20_000;

/// How coordinates are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapLayout {
    /// Exact t-SNE started from the kernel PCA: neighbourhoods kept (up to
    /// [`TSNE_MAX_POINTS`] points).
    #[default]
    Tsne,
    /// Kernel PCA of the similarity matrix: the best two-dimensional picture of its geometry.
    Pca,
}

impl MapLayout {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MapLayout::Tsne => "tsne",
            MapLayout::Pca => "pca",
        }
    }
    /// Parses `tsne` or `pca`.
    pub fn parse(s: &str) -> Result<MapLayout> {
        match s {
            "tsne" => Ok(MapLayout::Tsne),
            "pca" => Ok(MapLayout::Pca),
            _ => Err(Error::invalid(
                format!("layout {s:?}"),
                "unknown layout: use tsne or pca",
            )),
        }
    }
}

/// What to map and how.
#[derive(Debug, Clone)]
pub struct MapOptions {
    /// The method whose space is mapped (default: [`DEFAULT_METHOD`]).
    pub method: Option<String>,
    /// Which entries (kind, tags, name prefix; latest versions only).
    pub filter: Filter,
    /// The projection.
    pub layout: MapLayout,
    /// Nearest neighbours kept per point (shown on hover, drawn as edges).
    pub neighbours: usize,
    /// A frozen layout: a map JSON file written earlier. Points it holds keep their
    /// coordinates; new entries are placed beside their most similar frozen points. When the
    /// file does not exist it is written with this map's layout (and never replaced later).
    pub frozen: Option<PathBuf>,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            method: None,
            filter: Filter::all(),
            layout: MapLayout::default(),
            neighbours: 5,
            frozen: None,
        }
    }
}

/// What an entry is, for the picture: a dataset, a model, or an LLM run with a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MapRole {
    /// A labelled dataset.
    Dataset,
    /// A model (classifier, command, predictions).
    Model,
    /// A model ingested with a prompt template (an LLM and its prompt).
    LlmPrompt,
}

impl MapRole {
    /// `dataset`, `model` or `llm-prompt`.
    pub fn as_str(self) -> &'static str {
        match self {
            MapRole::Dataset => "dataset",
            MapRole::Model => "model",
            MapRole::LlmPrompt => "llm-prompt",
        }
    }
}

/// One neighbour of a point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapNeighbour {
    /// Entry name.
    pub name: String,
    /// Entry version.
    pub version: u32,
    /// Exact similarity (the `knn` score).
    pub score: f32,
}

/// One entry on the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapPoint {
    /// Entry id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// Dataset or model.
    pub kind: Kind,
    /// Dataset, model or LLM with a prompt.
    pub role: MapRole,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// Coordinates (unitless; only relative positions mean something).
    pub x: f64,
    /// Coordinates.
    pub y: f64,
    /// Whether the coordinates come from a frozen layout file.
    #[serde(default)]
    pub frozen: bool,
    /// The nearest other mapped entries, best first.
    pub neighbours: Vec<MapNeighbour>,
}

/// A map of one space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMap {
    /// [`MAP_FORMAT`].
    pub format: String,
    /// The space mapped.
    pub space: String,
    /// The method (the entries' vector key).
    pub method: String,
    /// `tsne` or `pca`, or `frozen+tsne` when a frozen layout placed some points.
    pub layout: String,
    /// The points, by entry id.
    pub points: Vec<MapPoint>,
    /// Entries passing the filter whose vector of this method lives in another space.
    #[serde(default)]
    pub left_out: Vec<String>,
}

impl TaskDb {
    /// A map of the entries passing `opts.filter` in `opts.method`'s space: coordinates from
    /// the space's exact similarities, and each point's nearest neighbours.
    pub fn map(&self, opts: &MapOptions) -> Result<TaskMap> {
        let method = opts.method.as_deref().unwrap_or(DEFAULT_METHOD).to_string();
        let filter = opts.filter.clone().method(method.clone());
        let listed = self.list(&filter)?;
        if listed.is_empty() {
            return Err(Error::NotFound {
                what: format!("entries with a {method} vector passing the filter (nothing to map)"),
            });
        }
        // Group by space: a map is one space.
        let mut by_space: BTreeMap<u64, Vec<crate::Entry>> = BTreeMap::new();
        for s in &listed {
            let e = self.get(&EntryRef {
                name: s.name.clone(),
                version: Some(s.version),
            })?;
            let Some((sid, _)) = e.vectors.get(&method) else {
                continue;
            };
            by_space.entry(*sid as u64).or_default().push(e);
        }
        let (&sid, _) = by_space
            .iter()
            .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
            .ok_or_else(|| Error::Internal("no space among listed entries".into()))?;
        let mut entries = by_space.remove(&sid).unwrap_or_default();
        let left_out: Vec<String> = by_space
            .values()
            .flatten()
            .map(|e| format!("{}@{}", e.name, e.version))
            .collect();
        entries.sort_by_key(|e| e.id);
        let n = entries.len();
        if n > MAP_MAX_POINTS {
            return Err(Error::invalid(
                format!("map of {n} entries"),
                format!(
                    "more than {MAP_MAX_POINTS} points: narrow it with --kind, --tag or \
                     --prefix (a map needs every pair's exact score)"
                ),
            ));
        }
        let space = self
            .spaces()?
            .into_iter()
            .find(|s| u64::from(s.id) == sid)
            .map(|s| s.def.name)
            .ok_or_else(|| Error::Internal(format!("space {sid} not found")))?;
        // Read (and check) a frozen layout before the O(n²) work, once.
        let frozen = match &opts.frozen {
            Some(p) if p.exists() => Some(read_frozen(p, &space)?),
            _ => None,
        };
        if opts.layout == MapLayout::Tsne && n > TSNE_MAX_POINTS && frozen.is_none() {
            return Err(Error::invalid(
                format!("map of {n} entries"),
                format!(
                    "t-SNE is exact here and refuses more than {TSNE_MAX_POINTS} points: \
                     use --layout pca, or narrow the map with --kind, --tag or --prefix"
                ),
            ));
        }
        let sim = self.similarity_matrix(&entries, &method, &opts.filter)?;
        let (coords, fixed, layout_name) =
            coordinates(&entries, &sim, opts.layout, frozen.as_ref());
        let points = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut row: Vec<usize> = (0..n).filter(|&j| j != i).collect();
                row.sort_by(|&a, &b| sim[i * n + b].total_cmp(&sim[i * n + a]).then(a.cmp(&b)));
                MapPoint {
                    id: e.id,
                    name: e.name.clone(),
                    version: e.version,
                    kind: e.kind,
                    role: role_of(e),
                    tags: e.tags.clone(),
                    x: coords[i][0],
                    y: coords[i][1],
                    frozen: fixed[i],
                    neighbours: row
                        .into_iter()
                        .take(opts.neighbours)
                        .map(|j| MapNeighbour {
                            name: entries[j].name.clone(),
                            version: entries[j].version,
                            score: sim[i * n + j] as f32,
                        })
                        .collect(),
                }
            })
            .collect();
        let map = TaskMap {
            format: MAP_FORMAT.into(),
            space,
            method,
            layout: layout_name,
            points,
            left_out,
        };
        if let Some(p) = &opts.frozen {
            if frozen.is_none() {
                let bytes = map.to_json()?;
                crate::files::write_new_file(p, "a frozen layout", |w| {
                    w.write_all(&bytes).map_err(|e| Error::io(p, e))
                })?;
            }
        }
        Ok(map)
    }

    /// The exact similarity of every pair of `entries` (row-major, diagonal 1), from one
    /// `nearest` query per entry over the others (so the same scores `knn` gives).
    fn similarity_matrix(
        &self,
        entries: &[crate::Entry],
        method: &str,
        filter: &Filter,
    ) -> Result<Vec<f64>> {
        let n = entries.len();
        let pos: BTreeMap<u64, usize> =
            entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        let f = filter.clone().method(method.to_string());
        let rows: Vec<Vec<(usize, f64)>> = entries
            .par_iter()
            .map(|e| {
                let q = Query::Entry(EntryRef {
                    name: e.name.clone(),
                    version: Some(e.version),
                });
                let hits = self.nearest(&q, n, &f)?;
                Ok(hits
                    .into_iter()
                    .filter_map(|h| pos.get(&h.id).map(|&j| (j, h.score as f64)))
                    .collect())
            })
            .collect::<Result<_>>()?;
        let mut sim = vec![0.0f64; n * n];
        for (i, row) in rows.into_iter().enumerate() {
            sim[i * n + i] = 1.0;
            for (j, s) in row {
                sim[i * n + j] = s;
            }
        }
        // Scores are symmetric up to rounding; make them exactly so.
        for i in 0..n {
            for j in (i + 1)..n {
                let m = 0.5 * (sim[i * n + j] + sim[j * n + i]);
                sim[i * n + j] = m;
                sim[j * n + i] = m;
            }
        }
        Ok(sim)
    }
}

/// Dataset, model, or a model ingested with a prompt template (its provenance names one).
fn role_of(e: &crate::Entry) -> MapRole {
    match e.kind {
        Kind::Dataset => MapRole::Dataset,
        Kind::Model => {
            let prompt = e.provenance.params.pointer("/source/prompt");
            if prompt.is_some_and(|p| p.is_string()) {
                MapRole::LlmPrompt
            } else {
                MapRole::Model
            }
        }
    }
}

/// Reads a frozen layout (a map JSON file) and checks it is of `space`.
fn read_frozen(path: &Path, space: &str) -> Result<TaskMap> {
    let what = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let m: TaskMap = serde_json::from_slice(&bytes).map_err(|e| {
        Error::invalid(
            &what,
            format!("not a map JSON file written by `taskdb map OUT.json` ({e})"),
        )
    })?;
    if m.format != MAP_FORMAT {
        return Err(Error::invalid(
            &what,
            format!("format {:?}, expected {MAP_FORMAT:?}", m.format),
        ));
    }
    if m.space != space {
        return Err(Error::invalid(
            &what,
            format!(
                "this layout was made for space {:?}; the map is of space {space:?}: \
                 use another --frozen-layout file",
                m.space
            ),
        ));
    }
    if let Some(p) = m
        .points
        .iter()
        .find(|p| !p.x.is_finite() || !p.y.is_finite())
    {
        return Err(Error::invalid(
            &what,
            format!("point {:?} has non-finite coordinates", p.name),
        ));
    }
    Ok(m)
}

/// The layout: computed, or taken from a frozen map for the points it holds (by entry id)
/// with the others placed beside their most similar frozen points.
fn coordinates(
    entries: &[crate::Entry],
    sim: &[f64],
    layout: MapLayout,
    frozen: Option<&TaskMap>,
) -> (Vec<[f64; 2]>, Vec<bool>, String) {
    let n = entries.len();
    let Some(f) = frozen else {
        let c = match layout {
            MapLayout::Tsne => layout::tsne(sim, n, layout::TsneParams::default()),
            MapLayout::Pca => layout::pca(sim, n),
        };
        return (c, vec![false; n], layout.as_str().to_string());
    };
    let held: BTreeMap<u64, [f64; 2]> = f.points.iter().map(|p| (p.id, [p.x, p.y])).collect();
    let fixed: Vec<bool> = entries.iter().map(|e| held.contains_key(&e.id)).collect();
    let coords = (0..n)
        .map(|i| {
            if let Some(c) = held.get(&entries[i].id) {
                return *c;
            }
            let near: Vec<(f64, [f64; 2])> = (0..n)
                .filter(|&j| fixed[j])
                .map(|j| (sim[i * n + j], held[&entries[j].id]))
                .collect();
            layout::place(&near).unwrap_or([0.0, 0.0])
        })
        .collect();
    (
        coords,
        fixed,
        format!("frozen+{}", f.layout.trim_start_matches("frozen+")),
    )
}

impl TaskMap {
    /// The map as pretty-printed JSON (the `.json` file, and a frozen layout).
    fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::Internal(format!("map JSON: {e}")))
    }

    /// Writes the map to `path`, by extension: `.svg`, `.png`, `.html` (one self-contained
    /// file: no network) or `.json` (the coordinates; usable as a frozen layout). The file is
    /// written atomically and replaces an existing one (a map is derived; re-rendering is
    /// the normal use).
    pub fn write(&self, path: &Path, opts: &RenderOptions) -> Result<RenderReport> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        let (bytes, report) = match ext.as_str() {
            "svg" => {
                let (s, r) = render::svg(self, opts);
                (s.into_bytes(), r)
            }
            "png" => render::png(self, opts)?,
            "html" | "htm" => {
                let (s, r) = html::html(self, opts)?;
                (s.into_bytes(), r)
            }
            "json" => (self.to_json()?, RenderReport::default()),
            _ => {
                return Err(Error::invalid(
                    path.display().to_string(),
                    "unknown map format: name the file .svg, .png, .html or .json",
                ))
            }
        };
        crate::files::write_atomic(path, &bytes).map_err(|e| Error::io(path, e))?;
        Ok(report)
    }
}
