//! Importing precomputed vectors from a JSON-lines file, one entry a line:
//! `{"name", "kind", "space", "vector", "tags"?, "provenance"?, "method"?}` (schema/FORMAT.md).
//!
//! Two passes: the whole file is validated first (so a bad line changes nothing), then written
//! in batches of [`ImportOptions::batch_size`], each batch one transaction. The file's sha256 is
//! taken before the first pass and checked again before the second, so a file that changes
//! while it is imported writes nothing.
//!
//! A line whose name exists makes a new version of that entry. When the new version would have
//! another kind or another set of spaces than the latest one, the old version would silently
//! drop out of knn in the spaces it leaves, so the line is refused unless
//! [`ImportOptions::replace`] is set (and then a warning says what moved).
//!
//! A failed batch (a full disk, say) commits nothing, and the batches before it stay; the
//! error says how many. [`ImportOptions::skip_identical`] (`import --resume`) makes a re-run of
//! the same file write only the rest: a line whose name's latest version already holds exactly
//! its kind, space, method, vector and tags is skipped (and counted) instead of becoming a
//! duplicate version.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::{Embedding, Entry, EntryRef, Kind, NewEntry, NewVector, Provenance};
use crate::space::{SpaceId, SpaceRef};
use crate::TaskDb;

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Entries per write transaction (at least 1).
    pub batch_size: usize,
    /// Allow a line to make a new version of an existing entry with another kind or in other
    /// spaces than its latest version; without it such a line is refused.
    pub replace: bool,
    /// Skip a line whose name's latest version already holds exactly the same kind, space,
    /// method, vector (bit for bit, as f32) and tags, instead of writing it as a new version;
    /// so that re-running an import that stopped part-way (a full disk) writes only the rest.
    /// Provenance is not compared.
    pub skip_identical: bool,
    /// The command line, for provenance.
    pub command_line: Vec<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch_size: 1000,
            replace: false,
            skip_identical: false,
            command_line: Vec::new(),
        }
    }
}

/// What an import reports while it runs (the CLI prints these on stderr).
#[derive(Debug, Clone, PartialEq)]
pub enum ImportEvent<'a> {
    /// Validation passed with a warning (a replaced kind or set of spaces); sent before
    /// anything is written.
    Warning(&'a str),
    /// A batch was committed: `batch` batches and `entries` entries so far are durable.
    Committed {
        /// Batches committed so far.
        batch: u64,
        /// Entries committed so far.
        entries: u64,
    },
}

/// The outcome of a finished import.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// Entries written.
    pub imported: u64,
    /// Lines skipped as identical to their name's latest version
    /// ([`ImportOptions::skip_identical`]).
    pub skipped: u64,
    /// Write transactions.
    pub batches: u64,
    /// The file.
    pub file: PathBuf,
    /// Its sha256 (lower-case hex).
    pub sha256: String,
    /// The warnings sent as [`ImportEvent::Warning`].
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    name: String,
    kind: String,
    space: String,
    vector: Vec<f64>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    provenance: Option<serde_json::Value>,
    #[serde(default)]
    method: Option<String>,
}

/// The file being imported, and what every line's provenance records of it.
struct Source<'a> {
    file: &'a Path,
    sha256: String,
    size: u64,
    command_line: &'a [String],
}

impl Source<'_> {
    fn at(&self, n: usize) -> String {
        format!("{} line {n}", self.file.display())
    }

    fn lines(&self) -> Result<impl Iterator<Item = (usize, Result<String>)>> {
        let f = std::fs::File::open(self.file).map_err(|e| Error::io(self.file, e))?;
        let p = self.file.to_path_buf();
        Ok(BufReader::new(f)
            .lines()
            .enumerate()
            .map(move |(i, l)| {
                let l = l.map_err(|e| match e.kind() {
                    // Found by the `import` fuzz target: not an I/O failure but bad input.
                    std::io::ErrorKind::InvalidData => Error::invalid(
                        format!("{} line {}", p.display(), i + 1),
                        "not valid UTF-8; an import file is UTF-8 JSON lines",
                    ),
                    _ => Error::io(&p, e),
                });
                (i + 1, l)
            })
            .filter(|(_, l)| !matches!(l, Ok(s) if s.trim().is_empty())))
    }

    /// Line `n` (text `s`) as an entry, validated on its own; also returns its space's name.
    fn entry(&self, n: usize, s: &str) -> Result<(NewEntry, String)> {
        let c = self.at(n);
        let line: Line = serde_json::from_str(s)
            .map_err(|e| Error::invalid(&c, format!("malformed JSON: {e}")))?;
        let kind: Kind = line.kind.parse().map_err(|e| match e {
            Error::InvalidInput { message, .. } => Error::invalid(&c, message),
            e => e,
        })?;
        if line.space.is_empty() {
            return Err(Error::invalid(&c, "empty space name"));
        }
        let v: Vec<f32> = line.vector.iter().map(|&x| x as f32).collect();
        let method = line.method.unwrap_or_else(|| line.space.clone());
        let space = line.space.clone();
        let e = NewEntry {
            name: line.name,
            kind,
            vectors: vec![NewVector {
                method,
                space: SpaceRef::External(line.space),
                embedding: Embedding::Dense(v),
            }],
            tags: line.tags,
            provenance: Provenance {
                input_sha256: Some(self.sha256.clone()),
                input_size: Some(self.size),
                command_line: self.command_line.to_vec(),
                params: serde_json::json!({
                    "import": { "file": self.file.display().to_string(), "line": n }
                }),
                details: line.provenance.unwrap_or(serde_json::Value::Null),
                ..Provenance::default()
            },
        };
        e.validate(&c)?;
        Ok((e, space))
    }
}

impl TaskDb {
    /// Imports the JSON-lines file `file` (see the [module docs](crate::import) and
    /// schema/FORMAT.md): validates every line first, then writes in batches, telling `events`
    /// about warnings and each commit. A bad line is an error naming the file and line, and
    /// nothing is written; a failure while writing leaves the batches already committed (each
    /// [`ImportEvent::Committed`] says how far it got) and nothing of the failed one.
    ///
    /// ```no_run
    /// use taskdb::{ImportEvent, ImportOptions, TaskDb};
    /// # fn main() -> taskdb::Result<()> {
    /// let db = TaskDb::open("tasks.taskdb")?;
    /// let report = db.import_jsonl("vectors.jsonl".as_ref(), &ImportOptions::default(), &mut |ev| {
    ///     if let ImportEvent::Warning(w) = ev {
    ///         eprintln!("warning: {w}");
    ///     }
    /// })?;
    /// println!("imported {} entries", report.imported);
    /// # Ok(()) }
    /// ```
    pub fn import_jsonl(
        &self,
        file: &Path,
        opts: &ImportOptions,
        events: &mut dyn FnMut(ImportEvent<'_>),
    ) -> Result<ImportReport> {
        let (sha256, size) = crate::files::sha256_file(file).map_err(|e| Error::io(file, e))?;
        let src = Source {
            file,
            sha256,
            size,
            command_line: &opts.command_line,
        };
        let Validated { warnings, skip } = self.validate_import(&src, opts)?;
        for w in &warnings {
            events(ImportEvent::Warning(w));
        }
        // The file must be the one that was validated.
        let (again, _) = crate::files::sha256_file(file).map_err(|e| Error::io(file, e))?;
        if again != src.sha256 {
            return Err(Error::invalid(
                file.display().to_string(),
                "file changed while importing; nothing was written",
            ));
        }
        let batch_size = opts.batch_size.max(1);
        let mut batch = Vec::with_capacity(batch_size.min(1 << 16));
        let mut lines = (0usize, 0usize);
        let (mut batches, mut written) = (0u64, 0u64);
        let mut commit = |batch: &mut Vec<NewEntry>, lines: (usize, usize)| -> Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let n = batch.len() as u64;
            self.put(std::mem::take(batch))
                .map_err(|e| stopped_at(e, &src, batches, written, lines))?;
            batches += 1;
            written += n;
            events(ImportEvent::Committed {
                batch: batches,
                entries: written,
            });
            Ok(())
        };
        for (n, l) in src.lines()? {
            let l = l?;
            if skip.contains(&n) {
                continue;
            }
            if batch.is_empty() {
                lines.0 = n;
            }
            lines.1 = n;
            batch.push(src.entry(n, &l)?.0);
            if batch.len() >= batch_size {
                commit(&mut batch, lines)?;
            }
        }
        commit(&mut batch, lines)?;
        self.flush()?;
        Ok(ImportReport {
            imported: written,
            skipped: skip.len() as u64,
            batches,
            file: file.to_path_buf(),
            sha256: src.sha256,
            warnings,
        })
    }

    /// Pass 1: every line parses and validates, names are unique in the file, dimensions agree
    /// with existing and new spaces, and no line changes an entry's kind or spaces unless
    /// `replace`. Returns the warnings of the replacements allowed, and the lines to skip as
    /// identical to their latest version (with `skip_identical`).
    fn validate_import(&self, src: &Source<'_>, opts: &ImportOptions) -> Result<Validated> {
        let mut dims: HashMap<String, (usize, String)> = HashMap::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let space_names: HashMap<SpaceId, String> = self
            .spaces()?
            .into_iter()
            .map(|s| (s.id, s.def.name))
            .collect();
        let mut warnings = Vec::new();
        let mut skip = HashSet::new();
        for (n, l) in src.lines()? {
            let (e, space) = src.entry(n, &l?)?;
            if let Some(prev) = names.insert(e.name.clone(), n) {
                return Err(Error::invalid(
                    src.at(n),
                    format!(
                        "duplicate name {:?} (also on line {prev}); import each version in its own file",
                        e.name
                    ),
                ));
            }
            let old = match self.get(&EntryRef::latest(e.name.as_str())) {
                Ok(old) => Some(old),
                Err(Error::NotFound { .. }) => None,
                Err(err) => return Err(err),
            };
            if opts.skip_identical
                && old
                    .as_ref()
                    .is_some_and(|o| identical(o, &e, &space, &space_names))
            {
                skip.insert(n);
            }
            let w = replaced(
                &space_names,
                old.as_ref(),
                &e,
                &space,
                &src.at(n),
                opts.replace,
            )?;
            warnings.extend(w);
            let dim = e.vectors[0].embedding.dim();
            let expected = match dims.get(&space) {
                Some(d) => Some(d.clone()),
                None => match self.space(&space) {
                    Ok(s) => {
                        if !s.def.is_external() {
                            return Err(Error::SpaceMismatch(format!(
                                "{}: space {space:?} is a computed space, not an external one",
                                src.at(n)
                            )));
                        }
                        let d = (s.def.dim as usize, "the database".to_string());
                        dims.insert(space.clone(), d.clone());
                        Some(d)
                    }
                    Err(Error::NotFound { .. }) => {
                        dims.insert(space.clone(), (dim, format!("line {n}")));
                        None
                    }
                    Err(e) => return Err(e),
                },
            };
            if let Some((d, from)) = expected {
                if d != dim {
                    return Err(Error::invalid(
                        src.at(n),
                        format!(
                            "wrong dimension for space {space:?}: expected {d} (from {from}), got {dim}"
                        ),
                    ));
                }
            }
        }
        Ok(Validated { warnings, skip })
    }
}

/// When `e` would be a new version of `old`, the existing entry, with another kind or another
/// set of spaces: an error naming the line, the entry, what it is now and the option, or (with
/// `replace`) the warning to give. `None` for a new name or an ordinary new version.
fn replaced(
    space_names: &HashMap<SpaceId, String>,
    old: Option<&Entry>,
    e: &NewEntry,
    space: &str,
    line: &str,
    replace: bool,
) -> Result<Option<String>> {
    let Some(old) = old else {
        return Ok(None);
    };
    let old_spaces: BTreeSet<String> = old
        .vectors
        .values()
        .map(|(sid, _)| {
            space_names
                .get(sid)
                .cloned()
                .unwrap_or_else(|| format!("#{sid}"))
        })
        .collect();
    let same_spaces = old_spaces.len() == 1 && old_spaces.contains(space);
    if old.kind == e.kind && same_spaces {
        return Ok(None);
    }
    let quoted = |v: &mut dyn Iterator<Item = &String>| {
        v.map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
    };
    let plural = |n: usize| if n == 1 { "space" } else { "spaces" };
    let was = format!(
        "a {} in {} {}",
        old.kind,
        plural(old_spaces.len()),
        quoted(&mut old_spaces.iter())
    );
    let would = format!("a {} in space {space:?}", e.kind);
    let hidden = if same_spaces {
        "changes its kind".to_string()
    } else {
        format!(
            "hides the entry from knn in {}",
            quoted(&mut old_spaces.iter().filter(|s| *s != space))
        )
    };
    if replace {
        return Ok(Some(format!(
            "{line}: entry {:?} version {} was {was}; its new version is {would} (this {hidden})",
            e.name, old.version
        )));
    }
    Err(Error::invalid(
        line,
        format!(
            "entry {:?} exists (version {}, {was}); this line would make its new version \
             {would}, which {hidden}. Import it under another name, or pass --replace to \
             make the new version anyway",
            e.name, old.version
        ),
    ))
}

/// What pass 1 found: the warnings to give, and the lines to skip.
struct Validated {
    warnings: Vec<String>,
    skip: HashSet<usize>,
}

/// Whether `old` (a name's latest version) holds exactly what line `e` would write into the
/// external space `space`: the same kind, one vector of the same method in that space with the
/// same f32 bits, and the same tags.
fn identical(
    old: &Entry,
    e: &NewEntry,
    space: &str,
    space_names: &HashMap<SpaceId, String>,
) -> bool {
    let [new] = e.vectors.as_slice() else {
        return false;
    };
    let mut vectors = old.vectors.iter();
    let (Some((method, (sid, emb))), None) = (vectors.next(), vectors.next()) else {
        return false;
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let same_vector = match (emb, &new.embedding) {
        (Embedding::Dense(a), Embedding::Dense(b)) => bits(a) == bits(b),
        _ => false,
    };
    old.kind == e.kind
        && old.tags == e.tags
        && *method == new.method
        && space_names.get(sid).map(String::as_str) == Some(space)
        && same_vector
}

/// The error of a batch that failed after `batches` batches (`written` entries) of this import
/// were committed: a full disk says what stays and how to go on.
fn stopped_at(
    e: Error,
    src: &Source<'_>,
    batches: u64,
    written: u64,
    lines: (usize, usize),
) -> Error {
    let stays = match batches {
        0 => format!(
            "no batch of this import was committed (the failed one held lines {} to {} of {})",
            lines.0,
            lines.1,
            src.file.display()
        ),
        _ => format!(
            "the {batches} batch(es) of this import before it ({written} entries, the lines \
             before line {} of {}) were committed and stay",
            lines.0,
            src.file.display()
        ),
    };
    e.with_committed(
        stays,
        format!(
            "Free space on that file system (or raise the disk quota), then run the same \
             import again with --resume (ImportOptions::skip_identical): lines already committed \
             are skipped, not duplicated, and only the rest is written ({}).",
            src.file.display()
        ),
    )
}
