//! The data model: entries, kinds, embeddings, provenance and entry references.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::embedding::Embedding;
use crate::error::{Error, Result};
use crate::space::{SpaceId, SpaceRef};

pub use crate::embedding::EntryId;

/// What a task embedding describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A labelled dataset.
    Dataset,
    /// A model (a black box that labels the probe set).
    Model,
}

impl Kind {
    /// The lowercase name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dataset => "dataset",
            Kind::Model => "model",
        }
    }
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Kind::Dataset => 0,
            Kind::Model => 1,
        }
    }
    pub(crate) fn from_u8(v: u8) -> Option<Kind> {
        match v {
            0 => Some(Kind::Dataset),
            1 => Some(Kind::Model),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Kind> {
        match s {
            "dataset" => Ok(Kind::Dataset),
            "model" => Ok(Kind::Model),
            other => Err(Error::invalid(
                "kind",
                format!("unknown kind {other:?}; expected \"dataset\" or \"model\""),
            )),
        }
    }
}

/// Everything an auditor needs to reproduce a vector. Free-form parts are JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Provenance {
    /// The taskdb version that wrote the entry (filled in by `put` when empty).
    #[serde(default)]
    pub taskdb_version: String,
    /// sha256 (hex) of the input content, when there is an input file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_sha256: Option<String>,
    /// Size in bytes of the input content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_size: Option<u64>,
    /// Row counts (e.g. `{"read": 2000, "used": 1990}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rows: BTreeMap<String, u64>,
    /// The command line that produced the entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command_line: Vec<String>,
    /// Parameters (JSON object).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
    /// Timings in seconds per stage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timings: BTreeMap<String, f64>,
    /// Method-specific details (JSON).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// One vector of a new entry: which method produced it, in which space it lives.
#[derive(Debug, Clone)]
pub struct NewVector {
    /// The method name (key of [`Entry::vectors`]); for imported vectors, the space name.
    pub method: String,
    /// The space: an existing id, a full definition (created when new), or an external name.
    pub space: SpaceRef,
    /// The value.
    pub embedding: Embedding,
}

/// An entry to be written by [`crate::TaskDb::put`]. Its version is assigned on write.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The name; re-using a name creates a new version.
    pub name: String,
    /// Dataset or model.
    pub kind: Kind,
    /// One vector per method (at least one).
    pub vectors: Vec<NewVector>,
    /// User tags (`key=value`).
    pub tags: BTreeMap<String, String>,
    /// Provenance.
    pub provenance: Provenance,
}

impl NewEntry {
    /// A new entry with a single vector in an external (named) space; the method is the space name.
    pub fn external(
        name: impl Into<String>,
        kind: Kind,
        space: impl Into<String>,
        vector: Vec<f32>,
    ) -> NewEntry {
        let space = space.into();
        NewEntry {
            name: name.into(),
            kind,
            vectors: vec![NewVector {
                method: space.clone(),
                space: SpaceRef::External(space),
                embedding: Embedding::Dense(vector),
            }],
            tags: BTreeMap::new(),
            provenance: Provenance::default(),
        }
    }

    /// Validates what needs no database: name, vectors (finite, non-zero), methods, tags.
    /// [`crate::TaskDb::put`] runs the same checks (plus space and dimension checks).
    pub fn validate(&self, context: &str) -> Result<()> {
        validate_name(&self.name, context)?;
        if self.vectors.is_empty() {
            return Err(Error::invalid(context, "no vectors"));
        }
        let mut methods = std::collections::BTreeSet::new();
        for v in &self.vectors {
            if v.method.is_empty() {
                return Err(Error::invalid(context, "empty method name"));
            }
            // A stored record's parts are keyed by its method, a 0 byte and an index
            // (`store::parts`): no method may hold a control character.
            if v.method.chars().any(char::is_control) {
                return Err(Error::invalid(
                    context,
                    format!(
                        "method {:?} contains a control character: use printable text",
                        v.method
                    ),
                ));
            }
            if !methods.insert(v.method.as_str()) {
                return Err(Error::invalid(
                    context,
                    format!("method {:?} given twice", v.method),
                ));
            }
            v.embedding
                .validate(&format!("{context}, method {:?}", v.method))?;
        }
        for k in self.tags.keys() {
            if k.is_empty() || k.contains('=') {
                return Err(Error::invalid(
                    context,
                    format!("tag key {k:?} must be non-empty and contain no '='"),
                ));
            }
        }
        Ok(())
    }

    /// Adds a tag (builder style).
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> NewEntry {
        self.tags.insert(key.into(), value.into());
        self
    }
}

/// A stored entry, as returned by [`crate::TaskDb::get`].
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Unique id of this version.
    pub id: EntryId,
    /// Name.
    pub name: String,
    /// Version (1, 2, ... per name; never reused).
    pub version: u32,
    /// Dataset or model.
    pub kind: Kind,
    /// One embedding per method, each with its space.
    pub vectors: BTreeMap<String, (SpaceId, Embedding)>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// Provenance.
    pub provenance: Provenance,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Whether this is the latest version of its name (only latest versions are found by knn).
    pub latest: bool,
}

impl Entry {
    /// Its labels as recorded at ingestion: a dataset's labels with their row counts, or the
    /// labels a model declared or gave on U (count 0: a model's counts per label are in its
    /// outputs report). Empty for a regression dataset and for entries made by `import`. Task
    /// embeddings do not see these names (docs/METHODS.md): they are for the person reading an
    /// answer (`taskdb knn --labels`, `taskdb compare`).
    pub fn labels(&self) -> BTreeMap<String, u64> {
        let d = &self.provenance.details;
        let mut labels = BTreeMap::new();
        if let Some(counts) = d["dataset"]["label_counts"].as_object() {
            for (k, v) in counts {
                labels.insert(k.clone(), v.as_u64().unwrap_or(0));
            }
        } else if let Some(ls) = d["labels"].as_array() {
            for l in ls {
                let name = l
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| l.to_string());
                labels.insert(name, 0);
            }
        }
        labels
    }
}

/// A short description of an entry (no vectors), as returned by [`crate::TaskDb::list`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntrySummary {
    /// Unique id.
    pub id: EntryId,
    /// Name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// Kind.
    pub kind: Kind,
    /// Methods with a vector, sorted.
    pub methods: Vec<String>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
}

/// A reference to an entry: `name` (latest version) or `name@3` (version 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryRef {
    /// The name.
    pub name: String,
    /// A specific version, or `None` for the latest.
    pub version: Option<u32>,
}

impl EntryRef {
    /// The latest version of `name`.
    pub fn latest(name: impl Into<String>) -> EntryRef {
        EntryRef {
            name: name.into(),
            version: None,
        }
    }
    /// Parses `name` or `name@N`. Names containing `@` can be addressed as `name@N` with the
    /// last `@` separating the version, when what follows it is a number. New names may not
    /// end in `@` and a number; for such a name stored by an older taskdb, the database
    /// resolves a reference that is exactly a stored name to that name (see
    /// [`crate::TaskDb::entry_ref`]).
    pub fn parse(s: &str) -> Result<EntryRef> {
        if let Some((n, v)) = s.rsplit_once('@') {
            if let Ok(v) = v.parse::<u32>() {
                if n.is_empty() {
                    return Err(Error::invalid(
                        format!("entry reference {s:?}"),
                        "empty name",
                    ));
                }
                if v == 0 {
                    return Err(Error::invalid(
                        format!("entry reference {s:?}"),
                        "versions start at 1",
                    ));
                }
                return Ok(EntryRef {
                    name: n.to_string(),
                    version: Some(v),
                });
            }
        }
        if s.is_empty() {
            return Err(Error::invalid("entry reference", "empty name"));
        }
        Ok(EntryRef::latest(s))
    }
}

impl FromStr for EntryRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<EntryRef> {
        EntryRef::parse(s)
    }
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

/// Checks a name: non-empty, no control characters, at most 512 bytes, no leading/trailing space.
pub(crate) fn validate_name(name: &str, context: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(context, "empty name"));
    }
    if name.len() > 512 {
        return Err(Error::invalid(context, "name longer than 512 bytes"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(context, "name contains control characters"));
    }
    if name.trim() != name {
        return Err(Error::invalid(
            context,
            "name has leading or trailing whitespace",
        ));
    }
    // A name must read back as itself: `a@1` would be version 1 of `a` in every reference
    // (`show`, `knn`, `rm`), so `rm a@1` would delete the wrong entry.
    let reads_back =
        matches!(EntryRef::parse(name), Ok(r) if r.version.is_none() && r.name == name);
    if !reads_back && !crate::testing::unvalidated() {
        let (base, version) = name.rsplit_once('@').unwrap_or((name, ""));
        return Err(Error::invalid(
            context,
            format!(
                "name {name:?} ends in '@' and a number, which taskdb reads as a version \
                 (`{name}` means version {version} of {base:?} in `show`, `knn` and `rm`); \
                 use another name, e.g. {:?}",
                format!("{base}-{version}")
            ),
        ));
    }
    Ok(())
}

/// Checks that `name` can be the name of a new entry (see [`EntryRef::parse`]): not empty,
/// at most 512 bytes, no control characters, no leading or trailing whitespace, and not ending
/// in `@` and a number (which references read as a version). `context` prefixes the error.
pub fn validate_name_for_new_entry(name: &str, context: &str) -> Result<()> {
    validate_name(name, context)
}
