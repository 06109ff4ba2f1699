//! `import FILE.jsonl`: precomputed vectors, one JSON object a line:
//! `{"name", "kind", "space", "vector", "tags"?, "provenance"?, "method"?}`.
//!
//! Two passes: the whole file is validated first (so a bad line changes nothing), then written
//! in batches of `--batch-size`, each batch one transaction.
//!
//! A line whose name exists makes a new version of that entry. When the new version would have
//! another kind or another set of spaces than the latest one, the old version would silently
//! drop out of knn in the spaces it leaves, so the line is refused unless `--replace` is given
//! (and then a warning says what moved). After each commit a line
//! `committed batch N (M entries)` goes to stderr (unless `--quiet`).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use taskdb::{
    Embedding, EntryRef, Error, Kind, NewEntry, NewVector, Provenance, SpaceId, SpaceRef, TaskDb,
};

use crate::Ctx;

/// `import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The JSONL file.
    pub file: PathBuf,
    /// Entries per write transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Allow a line to make a new version of an existing entry with another kind or in other
    /// spaces than its latest version (that version then drops out of knn in the spaces it
    /// leaves); without it such a line is refused.
    #[arg(long)]
    pub replace: bool,
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

fn ctx_line(file: &Path, n: usize) -> String {
    format!("{} line {n}", file.display())
}

fn to_entry(
    line: Line,
    file: &Path,
    n: usize,
    sha: &str,
    size: u64,
    argv: &[String],
) -> taskdb::Result<NewEntry> {
    let c = ctx_line(file, n);
    let kind: Kind = line.kind.parse().map_err(|e| match e {
        Error::InvalidInput { message, .. } => Error::invalid(&c, message),
        e => e,
    })?;
    let v: Vec<f32> = line.vector.iter().map(|&x| x as f32).collect();
    let method = line.method.unwrap_or_else(|| line.space.clone());
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
            input_sha256: Some(sha.to_string()),
            input_size: Some(size),
            command_line: argv.to_vec(),
            params: serde_json::json!({ "import": { "file": file.display().to_string(), "line": n } }),
            details: line.provenance.unwrap_or(serde_json::Value::Null),
            ..Provenance::default()
        },
    };
    if e.vectors[0].space == SpaceRef::External(String::new()) {
        return Err(Error::invalid(&c, "empty space name"));
    }
    e.validate(&c)?;
    Ok(e)
}

fn lines(file: &Path) -> taskdb::Result<impl Iterator<Item = (usize, taskdb::Result<String>)>> {
    let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let p = file.to_path_buf();
    Ok(BufReader::new(f)
        .lines()
        .enumerate()
        .map(move |(i, l)| (i + 1, l.map_err(|e| Error::io(&p, e))))
        .filter(|(_, l)| !matches!(l, Ok(s) if s.trim().is_empty())))
}

fn parse(file: &Path, n: usize, s: &str) -> taskdb::Result<Line> {
    serde_json::from_str(s)
        .map_err(|e| Error::invalid(ctx_line(file, n), format!("malformed JSON: {e}")))
}

fn sha256_file(file: &Path) -> taskdb::Result<(String, u64)> {
    let mut f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).map_err(|e| Error::io(file, e))?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// When `e` would be a new version of an existing entry with another kind or another set of
/// spaces: an error naming the line, the entry, what it is now and the flag, or (with
/// `replace`) the warning to print. `None` for a new name or an ordinary new version.
fn replaces(
    db: &TaskDb,
    space_names: &HashMap<SpaceId, String>,
    e: &NewEntry,
    space: &str,
    line: &str,
    replace: bool,
) -> taskdb::Result<Option<String>> {
    let old = match db.get(&EntryRef::latest(e.name.as_str())) {
        Ok(old) => old,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(err) => return Err(err),
    };
    let old_spaces: std::collections::BTreeSet<String> = old
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
             {would}, which {hidden}. Import it under another name, or pass --replace to make \
             the new version anyway",
            e.name, old.version
        ),
    ))
}

pub fn run(ctx: &Ctx, a: ImportArgs) -> taskdb::Result<i32> {
    let argv: Vec<String> = std::env::args().collect();
    let (sha, size) = sha256_file(&a.file)?;
    let db = ctx.open_rw()?;
    // Pass 1: validate everything, including dimensions against existing and new spaces.
    let mut dims: HashMap<String, (usize, String)> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut count = 0usize;
    let space_names: HashMap<SpaceId, String> = db
        .spaces()?
        .into_iter()
        .map(|s| (s.id, s.def.name))
        .collect();
    let mut warnings = Vec::new();
    for (n, l) in lines(&a.file)? {
        let line = parse(&a.file, n, &l?)?;
        let space = line.space.clone();
        let e = to_entry(line, &a.file, n, &sha, size, &argv)?;
        if let Some(prev) = names.insert(e.name.clone(), n) {
            return Err(Error::invalid(
                ctx_line(&a.file, n),
                format!(
                    "duplicate name {:?} (also on line {prev}); import each version in its own file",
                    e.name
                ),
            ));
        }
        if let Some(w) = replaces(
            &db,
            &space_names,
            &e,
            &space,
            &ctx_line(&a.file, n),
            a.replace,
        )? {
            warnings.push(w);
        }
        let dim = e.vectors[0].embedding.dim();
        let expected = match dims.get(&space) {
            Some(d) => Some(d.clone()),
            None => match db.space(&space) {
                Ok(s) => {
                    if !s.def.is_external() {
                        return Err(Error::SpaceMismatch(format!(
                            "{}: space {space:?} is a computed space, not an external one",
                            ctx_line(&a.file, n)
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
                    ctx_line(&a.file, n),
                    format!(
                        "wrong dimension for space {space:?}: expected {d} (from {from}), got {dim}"
                    ),
                ));
            }
        }
        count += 1;
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    // Pass 2: write in batches.
    let (sha2, _) = sha256_file(&a.file)?;
    if sha2 != sha {
        return Err(Error::invalid(
            a.file.display().to_string(),
            "file changed while importing; nothing was written",
        ));
    }
    let mut batch = Vec::with_capacity(a.batch_size as usize);
    let mut batches = 0u64;
    let mut written = 0u64;
    let flush = |db: &TaskDb, batch: &mut Vec<NewEntry>, batches: &mut u64, written: &mut u64| {
        if batch.is_empty() {
            return Ok::<(), Error>(());
        }
        let n = batch.len() as u64;
        db.put(std::mem::take(batch))?;
        *batches += 1;
        *written += n;
        if !ctx.quiet {
            eprintln!("committed batch {} ({} entries)", batches, written);
        }
        Ok(())
    };
    for (n, l) in lines(&a.file)? {
        let line = parse(&a.file, n, &l?)?;
        batch.push(to_entry(line, &a.file, n, &sha, size, &argv)?);
        if batch.len() as u64 >= a.batch_size {
            flush(&db, &mut batch, &mut batches, &mut written)?;
        }
    }
    flush(&db, &mut batch, &mut batches, &mut written)?;
    db.flush()?;
    if a.json {
        crate::output::json(&serde_json::json!({
            "imported": written, "batches": batches, "file": a.file.display().to_string(), "sha256": sha
        }))?;
    } else {
        println!(
            "imported {written} entries from {} in {batches} batch(es)",
            a.file.display()
        );
    }
    debug_assert_eq!(written as usize, count);
    Ok(0)
}
