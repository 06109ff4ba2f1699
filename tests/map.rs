//! Maps (issue 13): coordinates from a space's own exact similarities, deterministic, frozen
//! layouts that keep old points where they were, and pictures (SVG, PNG, self-contained HTML)
//! that say what they promise.

mod engine_common;

use std::path::Path;

use engine_common::*;
use taskdb::{
    Filter, Kind, MapLayout, MapOptions, MapRole, NewEntry, Provenance, Query, RenderOptions,
    TaskDb, TaskMap,
};

/// `n` entries in three clusters of the external space "dense", tagged with their cluster.
fn clustered_entries(prefix: &str, n: usize, seed: u64) -> Vec<NewEntry> {
    let v = clustered(n, 8, 3, seed);
    v.iter()
        .enumerate()
        .map(|(i, x)| {
            NewEntry::external(format!("{prefix}{i}"), Kind::Dataset, "dense", x.clone())
                .with_tag("cluster", format!("c{}", i % 3))
        })
        .collect()
}

fn dense_opts() -> MapOptions {
    MapOptions {
        method: Some("dense".into()),
        ..MapOptions::default()
    }
}

fn dist(a: &taskdb::MapPoint, b: &taskdb::MapPoint) -> f64 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

/// The share of points whose nearest point on the map has their cluster tag.
fn cluster_agreement(m: &TaskMap) -> f64 {
    let ok = m
        .points
        .iter()
        .filter(|p| {
            let q = m
                .points
                .iter()
                .filter(|q| q.id != p.id)
                .min_by(|a, b| dist(p, a).total_cmp(&dist(p, b)))
                .unwrap();
            q.tags["cluster"] == p.tags["cluster"]
        })
        .count();
    ok as f64 / m.points.len() as f64
}

#[test]
fn a_map_is_deterministic_keeps_clusters_and_agrees_with_knn() {
    let d = tempfile::tempdir().unwrap();
    let db = TaskDb::open(d.path().join("m.taskdb")).unwrap();
    db.put(clustered_entries("e", 45, 7)).unwrap();
    for layout in [MapLayout::Tsne, MapLayout::Pca] {
        let opts = MapOptions {
            layout,
            ..dense_opts()
        };
        let a = db.map(&opts).unwrap();
        assert_eq!(a, db.map(&opts).unwrap(), "{layout:?} is not deterministic");
        assert_eq!(a.points.len(), 45);
        assert_eq!(a.space, "dense");
        let agree = cluster_agreement(&a);
        assert!(agree >= 0.95, "{layout:?}: {agree}");
    }
    // Each point's neighbours are knn's answer, scores included.
    let m = db.map(&dense_opts()).unwrap();
    for p in m.points.iter().take(5) {
        let hits = db
            .nearest(&Query::entry(&p.name).unwrap(), 5, &Filter::all())
            .unwrap();
        let want: Vec<(String, f32)> = hits.into_iter().map(|h| (h.name, h.score)).collect();
        let got: Vec<(String, f32)> = p
            .neighbours
            .iter()
            .map(|n| (n.name.clone(), n.score))
            .collect();
        assert_eq!(got.len(), 5);
        for ((gn, gs), (wn, ws)) in got.iter().zip(&want) {
            assert!((gs - ws).abs() < 1e-6, "{gn} {gs} vs {wn} {ws}");
        }
    }
}

#[test]
fn a_frozen_layout_keeps_old_points_and_places_new_ones_beside_their_kin() {
    let d = tempfile::tempdir().unwrap();
    let db = TaskDb::open(d.path().join("m.taskdb")).unwrap();
    db.put(clustered_entries("old", 30, 11)).unwrap();
    let layout = d.path().join("layout.json");
    let opts = MapOptions {
        frozen: Some(layout.clone()),
        ..dense_opts()
    };
    let first = db.map(&opts).unwrap();
    let written = std::fs::read(&layout).unwrap();
    // Same centres (seed), new noise: 9 new entries of the same three clusters.
    let new: Vec<NewEntry> = clustered_entries("new", 39, 11).split_off(30);
    db.put(new).unwrap();
    let second = db.map(&opts).unwrap();
    assert_eq!(
        std::fs::read(&layout).unwrap(),
        written,
        "a frozen layout is never rewritten"
    );
    assert_eq!(second.points.len(), 39);
    assert!(second.layout.starts_with("frozen+"), "{}", second.layout);
    for p in &first.points {
        let q = second.points.iter().find(|q| q.id == p.id).unwrap();
        assert_eq!((p.x, p.y), (q.x, q.y), "{} moved", p.name);
        assert!(q.frozen);
    }
    for q in second.points.iter().filter(|q| !q.frozen) {
        let nearest_old = second
            .points
            .iter()
            .filter(|o| o.frozen)
            .min_by(|a, b| dist(q, a).total_cmp(&dist(q, b)))
            .unwrap();
        assert_eq!(nearest_old.tags["cluster"], q.tags["cluster"], "{}", q.name);
    }
    // Without the frozen layout, the new entries may move everything: a fresh layout.
    assert_ne!(db.map(&dense_opts()).unwrap().layout, second.layout);
}

#[test]
fn bad_layout_files_and_empty_maps_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let db = TaskDb::open(d.path().join("m.taskdb")).unwrap();
    let err = db.map(&dense_opts()).unwrap_err().to_string();
    assert!(err.contains("nothing to map"), "{err}");
    db.put(clustered_entries("e", 6, 3)).unwrap();
    let junk = d.path().join("junk.json");
    std::fs::write(&junk, "{not json").unwrap();
    let err = db
        .map(&MapOptions {
            frozen: Some(junk.clone()),
            ..dense_opts()
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("junk.json") && err.contains("not a map JSON file"),
        "{err}"
    );
    // A layout of another space.
    let other = d.path().join("other.json");
    let mut m = db.map(&dense_opts()).unwrap();
    m.space = "another".into();
    m.write(&other, &RenderOptions::default()).unwrap();
    let err = db
        .map(&MapOptions {
            frozen: Some(other),
            ..dense_opts()
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("made for space \"another\""), "{err}");
    let err = m
        .write(&d.path().join("m.bmp"), &RenderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("m.bmp") && err.contains(".svg, .png, .html or .json"),
        "{err}"
    );
}

/// The JSON inside the HTML page's data script.
fn html_data(page: &str) -> serde_json::Value {
    let start = page.find("id=\"taskdb-map-data\">").unwrap() + "id=\"taskdb-map-data\">".len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

fn pictures(dir: &Path, db: &TaskDb) -> (String, Vec<u8>, String) {
    let m = db.map(&dense_opts()).unwrap();
    let o = RenderOptions {
        colour_tag: Some("cluster".into()),
        ..RenderOptions::default()
    };
    for ext in ["svg", "png", "html"] {
        let r = m.write(&dir.join(format!("m.{ext}")), &o).unwrap();
        assert_eq!(r.points, m.points.len());
        assert_eq!(r.labelled + r.unlabelled.len(), m.points.len().min(60));
    }
    (
        std::fs::read_to_string(dir.join("m.svg")).unwrap(),
        std::fs::read(dir.join("m.png")).unwrap(),
        std::fs::read_to_string(dir.join("m.html")).unwrap(),
    )
}

#[test]
fn pictures_hold_every_point_a_legend_and_nothing_from_the_network() {
    let d = tempfile::tempdir().unwrap();
    let db = TaskDb::open(d.path().join("m.taskdb")).unwrap();
    let mut es = clustered_entries("e", 20, 5);
    // A tag value that tries to close the HTML's script element.
    es[0] = es[0].clone().with_tag("note", "</script><b>x</b>");
    // An LLM run with a prompt: a model whose provenance names its prompt.
    let mut llm = NewEntry::external("llm-p1", Kind::Model, "dense", vec![1.0; 8]);
    llm.provenance = Provenance {
        params: serde_json::json!({"source": {"type": "command", "prompt": "Is this {text} positive?"}}),
        ..Provenance::default()
    };
    es.push(llm);
    es.push(NewEntry::external(
        "clf",
        Kind::Model,
        "dense",
        vec![0.5; 8],
    ));
    db.put(es).unwrap();
    let m = db.map(&dense_opts()).unwrap();
    let role = |n: &str| m.points.iter().find(|p| p.name == n).unwrap().role;
    assert_eq!(role("llm-p1"), MapRole::LlmPrompt);
    assert_eq!(role("clf"), MapRole::Model);
    assert_eq!(role("e3"), MapRole::Dataset);

    let (svg, png, html) = pictures(d.path(), &db);
    // The SVG parses, names every point (a <title> each), and has the legend's values.
    let tree = resvg::usvg::Tree::from_str(&svg, &resvg::usvg::Options::default()).unwrap();
    assert_eq!(tree.size().width(), 1440.0);
    assert_eq!(svg.matches("<title>").count(), 22);
    for v in [
        "c0 (7)",
        "c1 (7)",
        "c2 (6)",
        "(no cluster) (2)",
        "dataset (20)",
        "llm-prompt (1)",
    ] {
        assert!(svg.contains(v), "legend lacks {v}");
    }
    // The PNG decodes at twice the SVG's size and shows the first cluster colour.
    let pix = resvg::tiny_skia::Pixmap::decode_png(&png).unwrap();
    assert_eq!((pix.width(), pix.height()), (2880, 1920));
    let blue = pix
        .pixels()
        .iter()
        .filter(|p| (p.red(), p.green(), p.blue()) == (0x1f, 0x77, 0xb4))
        .count();
    assert!(blue > 500, "{blue} pixels of the first colour");
    // The HTML is self-contained: no external resource, and its data parses back whole.
    for bad in ["src=", "href=", "<link", "@import", "https://"] {
        assert!(!html.contains(bad), "HTML references {bad}");
    }
    assert!(html.contains("<svg") && html.contains("addEventListener('mouseenter'"));
    let data = html_data(&html);
    let points = data["points"].as_array().unwrap();
    assert_eq!(points.len(), 22);
    assert_eq!(points[0]["tags"]["note"], "</script><b>x</b>");
    assert_eq!(points[0]["nb"].as_array().unwrap().len(), 5);
}

#[test]
fn the_cli_draws_a_map_of_a_database_or_a_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.taskdb");
    {
        let db = TaskDb::open(&p).unwrap();
        db.put(clustered_entries("e", 12, 2)).unwrap();
        db.snapshot(d.path().join("m.tdbsnap"), &Default::default())
            .unwrap();
    }
    let out = d.path().join("m.svg");
    let (c, o, e) = cli(&[
        "--db",
        s(&p),
        "map",
        s(&out),
        "--method",
        "dense",
        "--colour-tag",
        "cluster",
    ]);
    assert_eq!(c, 0, "{e}");
    assert!(
        o.contains("wrote") && o.contains("12 points of space dense"),
        "{o}"
    );
    assert!(std::fs::read_to_string(&out).unwrap().contains("c0 (4)"));
    // A snapshot maps the same, read-only.
    let snap_json = d.path().join("s.json");
    let (c, _, e) = cli(&[
        "--db",
        s(&d.path().join("m.tdbsnap")),
        "map",
        s(&snap_json),
        "--method",
        "dense",
    ]);
    assert_eq!(c, 0, "{e}");
    let db_json = d.path().join("d.json");
    assert_eq!(
        cli(&["--db", s(&p), "map", s(&db_json), "--method", "dense"]).0,
        0
    );
    assert_eq!(
        std::fs::read(&snap_json).unwrap(),
        std::fs::read(&db_json).unwrap()
    );
    // Errors: an unknown format (exit 4, invalid input), a mistyped database (exit 3), an unknown method.
    let (c, _, e) = cli(&[
        "--db",
        s(&p),
        "map",
        s(&d.path().join("m.gif")),
        "--method",
        "dense",
    ]);
    assert_eq!(c, 4, "{e}");
    assert!(
        e.contains("m.gif") && e.contains(".svg, .png, .html or .json"),
        "{e}"
    );
    let (c, _, _) = cli(&["--db", s(&d.path().join("nope.taskdb")), "map", s(&out)]);
    assert_eq!(c, 3);
    assert!(!d.path().join("nope.taskdb").exists());
    let (c, _, e) = cli(&["--db", s(&p), "map", s(&out), "--method", "bogus"]);
    assert_ne!(c, 0);
    assert!(e.contains("bogus"), "{e}");
}
