//! Export (issue 13): the JSON-lines export reads back exactly (same spaces, names, versions,
//! tags, provenance, bit-identical vectors: the same snapshot root), Parquet files hold what
//! they promise, and bad or cut files are refused naming the line.

mod engine_common;

use std::path::Path;

use arrow_array::{Array, FixedSizeListArray, Float32Array, StringArray, UInt32Array};
use engine_common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use taskdb::{
    Embedding, Error, Kind, NewEntry, NewVector, Provenance, SnapshotOptions, SpaceRef, TaskDb,
};

fn fisher(name: &str, seed: usize) -> NewEntry {
    let a = (seed as f32 * 0.7).sin();
    let c = (1.0 - a * a).sqrt();
    let mut e = fisher_entry(
        name,
        "fisher:x",
        4,
        vec![a, c, 0.0, 0.0],
        vec![1.0 + seed as f32 / 10.0],
    );
    e.provenance = Provenance {
        command_line: vec!["ingest".into(), name.into()],
        params: serde_json::json!({"method": "fisher", "seed": seed}),
        ..Provenance::default()
    };
    e
}

/// A database with two-method entries, a matrix space, tags, provenance, a second version
/// and an awkward f32 (a subnormal-adjacent value, a value with no short decimal form).
fn populated(p: &Path) -> TaskDb {
    let db = TaskDb::open(p).unwrap();
    let v = clustered(6, 5, 2, 11);
    let mut es = entries("e", "dense", &v);
    if let Embedding::Dense(x) = &mut es[0].vectors[0].embedding {
        x[0] = 1.0e-37;
        x[1] = 0.1f32 + f32::EPSILON;
    }
    es[1].vectors.push(NewVector {
        method: "other".into(),
        space: SpaceRef::External("second".into()),
        embedding: Embedding::Dense(vec![0.25, -0.5, 1.0]),
    });
    es[1].provenance.details = serde_json::json!({"source": "hand", "n": 3});
    db.put(es).unwrap();
    db.put(vec![fisher("m0", 1), fisher("m1", 2)]).unwrap();
    db.put(vec![NewEntry::external(
        "e2",
        Kind::Dataset,
        "dense",
        v[3].clone(),
    )])
    .unwrap();
    db
}

#[test]
fn a_jsonl_export_reads_back_exactly() {
    let d = tempfile::tempdir().unwrap();
    let db = populated(&d.path().join("a.taskdb"));
    let out = d.path().join("x.jsonl");
    let r = db.export_jsonl(&out).unwrap();
    assert_eq!((r.entries, r.rows, r.spaces), (9, 10, 3));
    assert!(taskdb::is_export(&out));
    let b = TaskDb::open(d.path().join("b.taskdb")).unwrap();
    let (n, warnings) = b.import_export(&out).unwrap();
    assert_eq!(n, 9);
    assert!(warnings.is_empty(), "{warnings:?}");
    // Same content, bit for bit: the snapshot roots (over spaces, entries with their vectors,
    // tags and provenance) are equal.
    let ra = db
        .snapshot(d.path().join("a.tdbsnap"), &SnapshotOptions::default())
        .unwrap();
    let rb = b
        .snapshot(d.path().join("b.tdbsnap"), &SnapshotOptions::default())
        .unwrap();
    assert_eq!(ra.entries, rb.entries);
    assert_eq!(ra.spaces, rb.spaces);
    assert_eq!(ra.root, rb.root);
    // Both versions of e2 came back as versions 1 and 2.
    let e2 = b.get(&"e2@1".parse().unwrap()).unwrap();
    assert!(!e2.latest);
    assert_eq!(b.get(&"e2".parse().unwrap()).unwrap().version, 2);
    // Into a database that already has a name: imported, with a warning naming the version.
    let (_, warnings) = b.import_export(&out).unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("e0 was exported as version 1 and imported as version 2")),
        "{warnings:?}"
    );
}

#[test]
fn a_cut_or_edited_export_is_refused_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let db = populated(&d.path().join("a.taskdb"));
    let out = d.path().join("x.jsonl");
    db.export_jsonl(&out).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let b = TaskDb::open(d.path().join("b.taskdb")).unwrap();
    let try_import = |body: String| {
        let f = d.path().join("bad.jsonl");
        std::fs::write(&f, body).unwrap();
        b.import_export(&f)
    };
    // Cut: the header's counts no longer hold.
    let err = try_import(lines[..lines.len() - 2].join("\n")).unwrap_err();
    assert!(err.to_string().contains("it was cut or edited"), "{err}");
    // A row before its space's definition.
    let mut moved: Vec<&str> = lines.clone();
    let def = moved.remove(1);
    moved.push(def);
    let err = try_import(moved.join("\n")).unwrap_err();
    assert!(
        err.to_string().contains("line 4") && err.to_string().contains("no definition line"),
        "{err}"
    );
    // A malformed row names its line.
    let mut broken: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    broken[5] = broken[5].replace("\"kind\":", "\"kind_\":");
    let err = try_import(broken.join("\n")).unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }) && err.to_string().contains("line 6"),
        "{err}"
    );
    // A newer export format.
    let newer = text.replacen("\"taskdb_export\":2", "\"taskdb_export\":3", 1);
    assert_ne!(newer, text);
    let err = try_import(newer).unwrap_err();
    assert!(err.to_string().contains("upgrade taskdb"), "{err}");
    assert!(
        b.list(&taskdb::Filter::all()).unwrap().is_empty(),
        "nothing was written"
    );
    // An existing output is never replaced.
    let err = db.export_jsonl(&out).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
}

#[test]
fn parquet_files_hold_exact_values_and_the_indexed_vector() {
    let d = tempfile::tempdir().unwrap();
    let db = populated(&d.path().join("a.taskdb"));
    let dir = d.path().join("pq");
    let r = db.export_parquet(&dir).unwrap();
    assert_eq!((r.entries, r.rows, r.spaces), (9, 10, 3));
    let mut names: Vec<String> = r
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["dense.1.parquet", "fisher_x.3.parquet", "second.2.parquet"]
    );
    // The dense file: exact vectors, unit index vectors, the space definition in metadata.
    let f = std::fs::File::open(dir.join("dense.1.parquet")).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
    let meta = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .clone();
    assert!(meta
        .iter()
        .any(|kv| kv.key == "taskdb.space" && kv.value.as_deref().unwrap().contains("\"dense\"")));
    let batch = builder.build().unwrap().next().unwrap().unwrap();
    assert_eq!(batch.num_rows(), 7);
    let col = |n: &str| batch.column(batch.schema().index_of(n).unwrap()).clone();
    let names = col("name");
    let names = names.as_any().downcast_ref::<StringArray>().unwrap();
    let versions = col("version");
    let versions = versions.as_any().downcast_ref::<UInt32Array>().unwrap();
    let vectors = col("vector");
    let vectors = vectors
        .as_any()
        .downcast_ref::<FixedSizeListArray>()
        .unwrap();
    assert_eq!(vectors.value_length(), 5);
    let e0 = db.get(&"e0".parse().unwrap()).unwrap();
    let Embedding::Dense(want) = &e0.vectors["dense"].1 else {
        unreachable!()
    };
    let row = (0..names.len()).find(|&i| names.value(i) == "e0").unwrap();
    let got = vectors.value(row);
    let got = got.as_any().downcast_ref::<Float32Array>().unwrap();
    assert_eq!(
        got.values().iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(
        (0..names.len())
            .filter(|&i| names.value(i) == "e2")
            .map(|i| versions.value(i))
            .collect::<Vec<_>>(),
        [1, 2]
    );
    let index = col("index_vector");
    let index = index.as_any().downcast_ref::<FixedSizeListArray>().unwrap();
    for i in 0..index.len() {
        let v = index.value(i);
        let v = v.as_any().downcast_ref::<Float32Array>().unwrap();
        let n: f64 = v.values().iter().map(|x| f64::from(*x).powi(2)).sum();
        assert!((n - 1.0).abs() < 1e-5, "row {i}: |index_vector|² = {n}");
    }
    // The matrix file has the factors.
    let f = std::fs::File::open(dir.join("fisher_x.3.parquet")).unwrap();
    let batch = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        batch.schema().index_of("factors_u").is_ok() && batch.schema().index_of("vector").is_err()
    );
    // An existing directory is refused.
    assert!(db
        .export_parquet(&dir)
        .unwrap_err()
        .to_string()
        .contains("exists"));
}

#[test]
fn the_cli_round_trip_goes_through_import() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.taskdb");
    drop(populated(&a));
    let x = d.path().join("x.jsonl");
    let (c, _, e) = cli(&["--db", a.to_str().unwrap(), "export", x.to_str().unwrap()]);
    assert_eq!(c, 0, "{e}");
    let (c, _, e) = cli(&["--db", a.to_str().unwrap(), "export", x.to_str().unwrap()]);
    assert_eq!(c, 4, "{e}");
    let b = d.path().join("b.taskdb");
    let (c, out, e) = cli(&["--db", b.to_str().unwrap(), "import", x.to_str().unwrap()]);
    assert_eq!(c, 0, "{e}");
    assert!(out.contains("imported 9 entries from the export"), "{out}");
    let roots: Vec<String> = [&a, &b]
        .iter()
        .enumerate()
        .map(|(i, db)| {
            let s = d.path().join(format!("{i}.tdbsnap"));
            let (c, out, e) = cli(&[
                "--db",
                db.to_str().unwrap(),
                "snapshot",
                "create",
                s.to_str().unwrap(),
                "--json",
            ]);
            assert_eq!(c, 0, "{e}");
            serde_json::from_str::<serde_json::Value>(&out).unwrap()["root"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(roots[0], roots[1]);
}
