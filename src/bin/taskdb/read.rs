//! Read commands: list, show, knn, stats.

use std::collections::BTreeMap;

use clap::Args;
use serde::Serialize;
use taskdb::{Centring, Embedding, Filter, Kind, Query, SearchOptions};

use crate::output::{self, parse_tag};
use crate::Ctx;

/// Just `--json`.
#[derive(Args, Debug)]
pub struct JsonArg {
    /// Machine-readable JSON output (shape documented in schema/cli-json.md).
    #[arg(long)]
    pub json: bool,
}

/// Entry filters shared by list and knn.
#[derive(Args, Debug)]
pub struct FilterArgs {
    /// Only this kind.
    #[arg(long, value_parser = ["dataset", "model"])]
    pub kind: Option<String>,
    /// Only entries with this tag (repeatable; all must match).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Only names starting with this prefix.
    #[arg(long)]
    pub prefix: Option<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> taskdb::Result<Filter> {
        let mut f = Filter::all();
        if let Some(k) = &self.kind {
            f.kind = Some(k.parse::<Kind>()?);
        }
        f.tags = self.tags.iter().cloned().collect();
        f.name_prefix = self.prefix.clone();
        Ok(f)
    }
}

/// `list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Include superseded versions.
    #[arg(long)]
    pub all_versions: bool,
    /// Only entries with a vector for this method.
    #[arg(long)]
    pub method: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

pub fn list(ctx: &Ctx, a: ListArgs) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    let mut f = a.filter.filter()?;
    f.all_versions = a.all_versions;
    if let Some(m) = &a.method {
        check_method(&db, m)?;
    }
    f.method = a.method;
    let rows = db.list(&f)?;
    if a.json {
        output::json(&rows)?;
    } else {
        for r in &rows {
            println!(
                "{}@{}\t{}\t{}\t{}",
                r.name,
                r.version,
                r.kind,
                r.methods.join(","),
                output::tags(&r.tags)
            );
        }
    }
    Ok(0)
}

/// `--method M` must name a method taskdb computes or one some entry has (an external
/// space's method), so that a typo is an error, not an empty listing.
pub fn check_method(db: &taskdb::TaskDb, m: &str) -> taskdb::Result<()> {
    if m.parse::<taskdb::MethodKind>().is_ok() {
        return Ok(());
    }
    let mut all = Filter::all();
    all.all_versions = true;
    let mut known: Vec<String> = db.list(&all)?.into_iter().flat_map(|r| r.methods).collect();
    if known.iter().any(|k| k == m) {
        return Ok(());
    }
    known.extend(["scatter", "fisher", "tuned", "textemb"].map(String::from));
    known.sort();
    known.dedup();
    Err(taskdb::Error::NotFound {
        what: format!(
            "method {m:?} (no entry has a vector for it; methods here: {})",
            known.join(", ")
        ),
    })
}

/// `show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// NAME or NAME@VERSION.
    pub name: String,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ShowVector {
    space: String,
    space_id: u32,
    embedding: &'static str,
    dim: usize,
    /// Dense: the components. Low rank: empty (see `rank`, `eigenvalues`, `factors`).
    vector: Vec<f32>,
    /// Low rank: the number of factors.
    #[serde(skip_serializing_if = "Option::is_none")]
    rank: Option<usize>,
    /// Low rank: s, the eigenvalues of the stored matrix U diag(s) Uᵀ.
    #[serde(skip_serializing_if = "Option::is_none")]
    eigenvalues: Option<Vec<f32>>,
    /// Low rank: U, column-major (dim × rank).
    #[serde(skip_serializing_if = "Option::is_none")]
    factors: Option<Vec<f32>>,
}

#[derive(Serialize)]
struct ShowEntry {
    id: u64,
    name: String,
    version: u32,
    kind: Kind,
    latest: bool,
    created_at_ms: u64,
    tags: BTreeMap<String, String>,
    vectors: BTreeMap<String, ShowVector>,
    provenance: taskdb::Provenance,
}

pub fn show(ctx: &Ctx, a: ShowArgs) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    let e = db.get(&db.entry_ref(&a.name)?)?;
    let spaces: BTreeMap<u32, String> = db
        .spaces()?
        .into_iter()
        .map(|s| (s.id, s.def.name))
        .collect();
    let mut vectors = BTreeMap::new();
    for (m, (sid, emb)) in &e.vectors {
        let (kind, v, low) = match emb {
            Embedding::Dense(v) => ("dense", v.clone(), None),
            Embedding::LowRank(l) => ("low_rank", Vec::new(), Some(l)),
            #[allow(unreachable_patterns)]
            _ => ("other", Vec::new(), None),
        };
        vectors.insert(
            m.clone(),
            ShowVector {
                space: spaces.get(sid).cloned().unwrap_or_default(),
                space_id: *sid,
                embedding: kind,
                dim: emb.dim(),
                vector: v,
                rank: low.map(|l| l.s.len()),
                eigenvalues: low.map(|l| l.s.clone()),
                factors: low.map(|l| l.u.clone()),
            },
        );
    }
    let out = ShowEntry {
        id: e.id,
        name: e.name,
        version: e.version,
        kind: e.kind,
        latest: e.latest,
        created_at_ms: e.created_at_ms,
        tags: e.tags,
        vectors,
        provenance: e.provenance,
    };
    if a.json {
        output::json(&out)?;
    } else {
        println!(
            "name:     {}@{}{}",
            out.name,
            out.version,
            if out.latest { " (latest)" } else { "" }
        );
        println!("id:       {}", out.id);
        println!("kind:     {}", out.kind);
        println!("created:  {} ms since epoch", out.created_at_ms);
        println!("tags:     {}", output::tags(&out.tags));
        for (m, v) in &out.vectors {
            let shown = v.eigenvalues.as_ref().unwrap_or(&v.vector);
            let head: Vec<String> = shown.iter().take(4).map(|x| format!("{x:.4}")).collect();
            let (what, n) = match v.rank {
                Some(r) => (format!("dim {}, rank {r}, eigenvalues", v.dim), r),
                None => (format!("dim {}", v.dim), v.dim),
            };
            println!(
                "vector:   {m} in space {:?} ({} {what}): [{}{}]",
                v.space,
                v.embedding,
                head.join(", "),
                if n > 4 { ", ..." } else { "" }
            );
        }
        let prov = serde_json::to_string(&out.provenance).unwrap_or_default();
        println!("provenance: {prov}");
    }
    Ok(0)
}

/// `knn`.
#[derive(Args, Debug)]
pub struct KnnArgs {
    /// NAME or NAME@VERSION of the query entry (left out of the results).
    pub name: String,
    /// Number of neighbours.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    pub k: usize,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Which of the entry's vectors to search with (required if it has several).
    #[arg(long)]
    pub method: Option<String>,
    /// How task embeddings are centred before comparing. `frozen` (default): as the space
    /// defines, so answers never change when other entries are added. `live`: on the mean
    /// of every live entry of the space; measured better on real data (docs/QUALITY.md), but
    /// answers move whenever entries are added or deleted, and the search is an exact scan.
    #[arg(long, value_enum, default_value_t = CentreArg::Frozen)]
    pub centre: CentreArg,
    /// JSON output: an array of hits, best first.
    #[arg(long)]
    pub json: bool,
    /// Show each hit's labels as recorded at ingestion (a dataset's labels, a model's
    /// declared or given ones). Scores do not see label names; a person reading a close
    /// call does (docs/METHODS.md).
    #[arg(long, conflicts_with = "json")]
    pub labels: bool,
}

/// `knn --centre`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CentreArg {
    Frozen,
    Live,
}

pub fn knn(ctx: &Ctx, a: KnnArgs) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    let mut f = a.filter.filter()?;
    f.method = a.method;
    let opts = SearchOptions {
        centring: match a.centre {
            CentreArg::Frozen => Centring::Frozen,
            CentreArg::Live => Centring::Live,
        },
    };
    let (hits, _) = db.nearest_with(&Query::Entry(db.entry_ref(&a.name)?), a.k, &f, &opts)?;
    if a.json {
        output::json(&hits)?;
    } else {
        for (i, h) in hits.iter().enumerate() {
            let labels = if a.labels {
                let e = db.get(&taskdb::EntryRef {
                    name: h.name.clone(),
                    version: Some(h.version),
                })?;
                format!("  labels: {}", label_list(&e.labels()))
            } else {
                String::new()
            };
            println!(
                "{:>3}  {:.6}  {}@{}  {}{labels}",
                i + 1,
                h.score,
                h.name,
                h.version,
                h.kind
            );
        }
        flat_note(ctx, &hits);
    }
    Ok(0)
}

/// `knn --labels`: the first 8 label names, most frequent first (then by name), and how many
/// more; `-` when none were recorded.
fn label_list(labels: &std::collections::BTreeMap<String, u64>) -> String {
    const SHOWN: usize = 8;
    if labels.is_empty() {
        return "-".to_string();
    }
    let mut names: Vec<(&String, &u64)> = labels.iter().collect();
    names.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let mut out = names
        .iter()
        .take(SHOWN)
        .map(|(n, _)| {
            // a name with a control character (a tab, a newline) is shown quoted and escaped,
            // so that it cannot break the one-line-per-hit layout
            if n.chars().any(char::is_control) {
                format!("{n:?}")
            } else {
                n.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" (+{} more)", names.len() - SHOWN));
    }
    out
}

/// A note on stderr when the first hits are within sampling noise of each other, so nobody
/// reads meaning into their order (docs/METHODS.md, "What a score means"). Only for scatter
/// spaces, whose noise was measured (`taskdb::score_noise`); off with `--quiet` and `--json`.
fn flat_note(ctx: &Ctx, hits: &[taskdb::Hit]) {
    let Some(noise) = hits.first().and_then(taskdb::score_noise) else {
        return;
    };
    let tied = taskdb::tied_within(hits, noise);
    if ctx.quiet || tied < 2 {
        return;
    }
    let which = if tied == hits.len() {
        format!("all {tied} hits")
    } else {
        format!("the first {tied} hits")
    };
    eprintln!(
        "note: {which} score within {noise} of the best ({:.6} to {:.6}), which is sampling noise in this space: their order is not meaningful (docs/METHODS.md, \"What a score means\")",
        hits[0].score,
        hits[tied - 1].score
    );
}

pub fn stats(ctx: &Ctx, a: JsonArg) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    let s = db.stats()?;
    if a.json {
        output::json(&s)?;
    } else {
        println!("database:   {}", s.path);
        println!("format:     {}", s.format_version);
        println!("generation: {}", s.generation);
        println!(
            "names:      {} ({} datasets, {} models)",
            s.names, s.datasets, s.models
        );
        println!("versions:   {}", s.versions);
        println!("tombstones: {}", s.tombstones);
        println!("file bytes: {}", s.file_bytes);
        for sp in &s.spaces {
            println!(
                "space {} {:?}: dim {}, method {}, {} vectors ({} live), index {}{}",
                sp.id,
                sp.name,
                sp.dim,
                sp.method.as_deref().unwrap_or("external"),
                sp.points,
                sp.live,
                sp.index,
                sp.centring
                    .as_deref()
                    .map(|c| format!(", centring: {c}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(0)
}

/// `outputs`.
#[derive(Args, Debug)]
pub struct OutputsArgs {
    /// A model entry: NAME or NAME@VERSION.
    pub name: String,
    /// JSON lines: a head line, then one line per answered row of U.
    #[arg(long)]
    pub json: bool,
}

/// The head line of `outputs --json`.
#[derive(Serialize)]
struct OutputsHead<'a> {
    name: &'a str,
    version: u32,
    kind: &'static str,
    labels: &'a [String],
    answered: usize,
    probe_rows: u32,
    probe_fingerprint: &'a str,
}

pub fn outputs(ctx: &Ctx, a: OutputsArgs) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    let r = db.entry_ref(&a.name)?;
    let e = db.get(&r)?;
    let label = format!("{}@{}", e.name, e.version);
    let r = taskdb::EntryRef {
        name: e.name.clone(),
        version: Some(e.version),
    };
    let Some(o) = db.model_outputs(&r)? else {
        let why = match e.kind {
            Kind::Dataset => "it is a dataset; outputs on U belong to model entries",
            Kind::Model => {
                "none are stored (it was imported, or ingested before taskdb stored a model's \
                 outputs); ingest the model again to store them"
            }
        };
        return Err(taskdb::Error::NotFound {
            what: format!("outputs on U of {label}: {why}"),
        });
    };
    match write_outputs(&label, &e.name, e.version, &o, a.json) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(taskdb::Error::Internal(
            format!("writing the outputs to stdout: {err}"),
        )),
        _ => Ok(0),
    }
}

/// Writes `outputs`' rows to stdout, as text or JSON lines.
fn write_outputs(
    label: &str,
    name: &str,
    version: u32,
    o: &taskdb::ModelOutputs,
    json: bool,
) -> std::io::Result<()> {
    use std::io::Write;
    let kind = if o.is_hard() { "hard" } else { "soft" };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let head = OutputsHead {
            name,
            version,
            kind,
            labels: &o.labels,
            answered: o.rows.len(),
            probe_rows: o.probe_rows,
            probe_fingerprint: &o.probe_fingerprint,
        };
        let line = |v: serde_json::Value| v.to_string();
        writeln!(
            out,
            "{}",
            line(serde_json::to_value(&head).unwrap_or_default())
        )?;
        for (i, row) in o.rows.iter().enumerate() {
            let v = match &o.values {
                taskdb::OutputValues::Hard(l) => {
                    serde_json::json!({"row": row, "label": o.labels[l[i] as usize]})
                }
                taskdb::OutputValues::Soft(p) => {
                    let k = o.labels.len();
                    serde_json::json!({"row": row, "probs": &p[i * k..(i + 1) * k]})
                }
            };
            writeln!(out, "{}", line(v))?;
        }
    } else {
        writeln!(
            out,
            "{label}: outputs on U ({kind} labels), {} of {} rows answered, probe set {}\nrow\t{}",
            o.rows.len(),
            o.probe_rows,
            o.probe_fingerprint,
            if o.is_hard() {
                "label".to_string()
            } else {
                o.labels.join("\t")
            }
        )?;
        for (i, row) in o.rows.iter().enumerate() {
            let cells: Vec<String> = match &o.values {
                taskdb::OutputValues::Hard(l) => vec![o.labels[l[i] as usize].clone()],
                _ => o
                    .distribution(i)
                    .iter()
                    .map(|p| format!("{p:.4}"))
                    .collect(),
            };
            writeln!(out, "{row}\t{}", cells.join("\t"))?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::label_list;

    #[test]
    fn label_list_puts_frequent_labels_first_caps_at_eight_and_escapes_control_characters() {
        assert_eq!(label_list(&BTreeMap::new()), "-");
        let m: BTreeMap<String, u64> = (0..10u64).map(|i| (format!("l{i}"), i)).collect();
        assert_eq!(label_list(&m), "l9, l8, l7, l6, l5, l4, l3, l2 (+2 more)");
        let m: BTreeMap<String, u64> = [("b", 1), ("a", 1), ("x\ty", 0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(label_list(&m), r#"a, b, "x\ty""#);
    }
}
