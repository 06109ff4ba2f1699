//! Queries: filters, query forms and hits.

pub(crate) mod plan;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Embedding, EntryRef, Kind};
use crate::space::SpaceId;

/// Which entries a `list` or `nearest` may return. All set conditions must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Every `(key, value)` must be among the entry's tags.
    pub tags: BTreeMap<String, String>,
    /// Only names starting with this prefix.
    pub name_prefix: Option<String>,
    /// For `nearest` with an entry query: which of the entry's vectors to use (the method
    /// name). Required when the entry has more than one vector. For `list`: only entries
    /// with a vector for this method.
    pub method: Option<String>,
    /// For `list` only: include superseded versions (default: latest versions only).
    pub all_versions: bool,
}

impl Filter {
    /// A filter that passes everything.
    pub fn all() -> Filter {
        Filter::default()
    }
    /// Builder: restrict to a kind.
    pub fn kind(mut self, kind: Kind) -> Filter {
        self.kind = Some(kind);
        self
    }
    /// Builder: require a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Filter {
        self.tags.insert(key.into(), value.into());
        self
    }
    /// Builder: restrict to a name prefix.
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Filter {
        self.name_prefix = Some(prefix.into());
        self
    }
    /// Builder: choose the method.
    pub fn method(mut self, method: impl Into<String>) -> Filter {
        self.method = Some(method.into());
        self
    }

    /// Whether the entry-level conditions (kind, tags, prefix) are all unset.
    pub(crate) fn is_trivial(&self) -> bool {
        self.kind.is_none() && self.tags.is_empty() && self.name_prefix.is_none()
    }

    pub(crate) fn matches(&self, name: &str, kind: Kind, tags: &BTreeMap<String, String>) -> bool {
        if let Some(k) = self.kind {
            if k != kind {
                return false;
            }
        }
        if let Some(p) = &self.name_prefix {
            if !name.starts_with(p.as_str()) {
                return false;
            }
        }
        self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
    }
}

/// Which space a raw-vector query is in.
#[derive(Debug, Clone, PartialEq)]
pub enum SpaceSel {
    /// By id.
    Id(SpaceId),
    /// By name.
    Name(String),
}

/// What to search near.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// An existing entry (its vector for `Filter::method`, or its only vector). The entry
    /// itself (exactly this entry id) is left out of the hits; other versions of the same name
    /// are superseded or newer and follow the usual rule (only latest versions are returned).
    Entry(EntryRef),
    /// A raw embedding in a given space.
    Vector {
        /// The space of the vector.
        space: SpaceSel,
        /// The query value; must fit the space (dimension, finite, non-zero).
        embedding: Embedding,
    },
}

impl Query {
    /// A query by entry reference string (`name` or `name@3`).
    pub fn entry(r: &str) -> crate::Result<Query> {
        Ok(Query::Entry(EntryRef::parse(r)?))
    }
    /// A dense-vector query in the named space.
    pub fn dense(space: impl Into<String>, v: Vec<f32>) -> Query {
        Query::Vector {
            space: SpaceSel::Name(space.into()),
            embedding: Embedding::Dense(v),
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Entry id.
    pub id: u64,
    /// Entry name.
    pub name: String,
    /// Entry version.
    pub version: u32,
    /// Entry kind.
    pub kind: Kind,
    /// Exact similarity (cosine for dense spaces; higher is nearer).
    pub score: f32,
    /// Name of the space searched.
    pub space: String,
    /// The hit's method key for that space.
    pub method: String,
}

/// How a task space centres its entries before comparing them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Centring {
    /// The space's own definition: its frozen reference, or none (the default). Stored answers
    /// never change when other entries are added.
    #[default]
    Frozen,
    /// The mean of the unit-normalised embeddings of every live entry of the space (datasets
    /// and models, whatever the filter), computed at query time. Measured better on real data
    /// (docs/QUALITY.md), but every answer moves when entries are added or deleted, and the
    /// search is an exact scan. Task spaces only.
    Live,
}

/// Options of a search that are not about which entries may be returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchOptions {
    /// How entries are centred before scoring.
    pub centring: Centring,
}

/// How a query was answered (for diagnostics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchPath {
    /// Exact scan of every candidate.
    BruteForce,
    /// HNSW candidates, exactly re-scored.
    Hnsw,
    /// HNSW returned too few; fell back to an exact scan.
    HnswThenBruteForce,
    /// Matrix spaces: a flat scan over the int8 sketches, its best candidates exactly
    /// re-scored, stopped when the k-th exact score cleared every candidate left out by the
    /// sketch's error margin (or none was left out).
    SketchScan,
    /// Matrix spaces: the sketch scan was not confident within its widest round; fell back to
    /// an exact scan.
    SketchScanThenBruteForce,
}
