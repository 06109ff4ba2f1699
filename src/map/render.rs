//! Drawing a [`TaskMap`]: SVG composed with the `svg` crate; PNG rasterised from that SVG by
//! resvg with the embedded DejaVu Sans (no system fonts: the same pixels on every machine).
//! The HTML page (`html.rs`) wraps the same SVG.
//!
//! The picture: one marker per entry, its shape by role (dataset ●, model ■, LLM + prompt ▲),
//! its colour by a tag's value (`colour_tag`, e.g. `family`) or else by role; each entry's
//! nearest-neighbour edges drawn faintly beneath; labels placed greedily so that none overlaps
//! another label or a marker (an entry that finds no room is left unlabelled and named in the
//! [`RenderReport`]); a legend on the right.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use svg::node::element::{Circle, Group, Line, Polygon, Rectangle, Text, Title};
use svg::{Document, Node};

use super::labels::{label_text, place_labels, Placed};
use super::{MapRole, TaskMap};
use crate::error::{Error, Result};

/// How to draw a map.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Colour points by the value of this tag (at most 18 values get their own colour, the
    /// rest are grey); `None`: colour by role.
    pub colour_tag: Option<String>,
    /// Label at most this many points: the most-connected first (how often an entry is among
    /// the others' nearest neighbours), then by name.
    pub label_top: usize,
    /// Nearest-neighbour edges drawn per point.
    pub edges: usize,
    /// The title (default: the space, method, layout and counts).
    pub title: Option<String>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            colour_tag: None,
            label_top: 60,
            edges: 2,
            title: None,
        }
    }
}

/// What a rendering did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RenderReport {
    /// Points drawn.
    pub points: usize,
    /// Points labelled.
    pub labelled: usize,
    /// Points chosen for a label that found no room (`name@version`), best first.
    pub unlabelled: Vec<String>,
    /// The legend: (value, colour) in order.
    pub colours: Vec<(String, String)>,
}

const W: f64 = 1440.0;
const H: f64 = 960.0;
pub(super) const PLOT: (f64, f64, f64, f64) = (30.0, 80.0, 1110.0, 940.0); // x0, y0, x1, y1
pub(super) const FONT: f64 = 12.5;
pub(super) const R: f64 = 6.0;
/// tab20 without its two greys (kept for "other" and "no tag"): dark shades first.
const PALETTE: [&str; 18] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#dbdb8d", "#9edae5",
];
const OTHER: &str = "#7f7f7f";
const NO_TAG: &str = "#c7c7c7";
const FONT_FAMILY: &str = "DejaVu Sans";

/// The embedded font's face, for measuring labels.
fn face() -> Option<&'static ttf_parser::Face<'static>> {
    static FACE: OnceLock<Option<ttf_parser::Face<'static>>> = OnceLock::new();
    FACE.get_or_init(|| ttf_parser::Face::parse(dejavu::sans::regular(), 0).ok())
        .as_ref()
}

/// The width of `s` in DejaVu Sans at `size` px.
pub(super) fn text_width(s: &str, size: f64) -> f64 {
    let Some(f) = face() else {
        return s.chars().count() as f64 * size * 0.6;
    };
    let upem = f64::from(f.units_per_em());
    s.chars()
        .map(|c| {
            f.glyph_index(c)
                .and_then(|g| f.glyph_hor_advance(g))
                .map_or(size * 0.6, |a| f64::from(a) * size / upem)
        })
        .sum()
}

/// Everything both the SVG and the HTML need: screen positions, colours, labels.
pub(super) struct Scene {
    pub(super) xy: Vec<(f64, f64)>,
    colour: Vec<String>,
    legend: Vec<(String, String, usize)>,
    legend_title: String,
    labels: Vec<Option<Placed>>,
    edges: Vec<(usize, usize)>,
    pub(super) report: RenderReport,
    pub(super) index: BTreeMap<(String, u32), usize>,
}

pub(super) fn scene(m: &TaskMap, o: &RenderOptions) -> Scene {
    let n = m.points.len();
    let index: BTreeMap<(String, u32), usize> = m
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.name.clone(), p.version), i))
        .collect();
    // Screen positions: one scale for both axes, y up.
    let (x0, y0, x1, y1) = PLOT;
    let pad = 24.0;
    let (mut lo_x, mut hi_x, mut lo_y, mut hi_y) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in &m.points {
        lo_x = lo_x.min(p.x);
        hi_x = hi_x.max(p.x);
        lo_y = lo_y.min(p.y);
        hi_y = hi_y.max(p.y);
    }
    // One scale for both axes (the geometry is kept); a single point sits in the middle.
    let fit = |span: f64, room: f64| {
        if span > 1e-12 {
            room / span
        } else {
            f64::INFINITY
        }
    };
    let scale = fit(hi_x - lo_x, x1 - x0 - 2.0 * pad).min(fit(hi_y - lo_y, y1 - y0 - 2.0 * pad));
    let scale = if scale.is_finite() { scale } else { 1.0 };
    let (cx, cy) = ((lo_x + hi_x) / 2.0, (lo_y + hi_y) / 2.0);
    let xy: Vec<(f64, f64)> = m
        .points
        .iter()
        .map(|p| {
            (
                (x0 + x1) / 2.0 + (p.x - cx) * scale,
                (y0 + y1) / 2.0 - (p.y - cy) * scale,
            )
        })
        .collect();
    let (colour, legend, legend_title) = colours(m, o);
    // Edges: each point's nearest `o.edges`, each pair once.
    let mut edges = Vec::new();
    let mut indeg = vec![0usize; n];
    for (i, p) in m.points.iter().enumerate() {
        for (r, nb) in p.neighbours.iter().enumerate() {
            if let Some(&j) = index.get(&(nb.name.clone(), nb.version)) {
                if r < o.edges.max(3) {
                    indeg[j] += 1;
                }
                if r < o.edges {
                    edges.push((i.min(j), i.max(j)));
                }
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    let (labels, unlabelled) = place_labels(m, &xy, &indeg, o.label_top);
    let labelled = labels.iter().filter(|l| l.is_some()).count();
    let report = RenderReport {
        points: n,
        labelled,
        unlabelled,
        colours: legend
            .iter()
            .map(|(v, c, _)| (v.clone(), c.clone()))
            .collect(),
    };
    Scene {
        xy,
        colour,
        legend,
        legend_title,
        labels,
        edges,
        report,
        index,
    }
}

/// Each point's colour, the legend (value, colour, count) and its title.
#[allow(clippy::type_complexity)]
fn colours(m: &TaskMap, o: &RenderOptions) -> (Vec<String>, Vec<(String, String, usize)>, String) {
    match &o.colour_tag {
        Some(tag) => {
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for p in &m.points {
                if let Some(v) = p.tags.get(tag) {
                    *count.entry(v.as_str()).or_default() += 1;
                }
            }
            let mut values: Vec<(&str, usize)> = count.into_iter().collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let of: BTreeMap<&str, &str> = values
                .iter()
                .enumerate()
                .map(|(i, (v, _))| (*v, PALETTE.get(i).copied().unwrap_or(OTHER)))
                .collect();
            let colour = m
                .points
                .iter()
                .map(|p| match p.tags.get(tag) {
                    Some(v) => of[v.as_str()].to_string(),
                    None => NO_TAG.to_string(),
                })
                .collect();
            let mut legend: Vec<(String, String, usize)> = values
                .iter()
                .take(PALETTE.len())
                .map(|(v, c)| (v.to_string(), of[v].to_string(), *c))
                .collect();
            let rest: usize = values.iter().skip(PALETTE.len()).map(|v| v.1).sum();
            if rest > 0 {
                legend.push(("other".into(), OTHER.into(), rest));
            }
            let none = m
                .points
                .iter()
                .filter(|p| !p.tags.contains_key(tag))
                .count();
            if none > 0 {
                legend.push((format!("(no {tag})"), NO_TAG.into(), none));
            }
            (colour, legend, tag.clone())
        }
        None => {
            let c = |r: MapRole| PALETTE[r as usize].to_string();
            let colour = m.points.iter().map(|p| c(p.role)).collect();
            let mut legend = Vec::new();
            for r in [MapRole::Dataset, MapRole::Model, MapRole::LlmPrompt] {
                let k = m.points.iter().filter(|p| p.role == r).count();
                if k > 0 {
                    legend.push((r.as_str().to_string(), c(r), k));
                }
            }
            (colour, legend, "kind".to_string())
        }
    }
}

/// The marker of a role at (x, y).
fn marker(role: MapRole, x: f64, y: f64, fill: &str) -> svg::node::element::Element {
    let el: svg::node::element::Element = match role {
        MapRole::Dataset => Circle::new()
            .set("cx", r2(x))
            .set("cy", r2(y))
            .set("r", R)
            .into(),
        MapRole::Model => Rectangle::new()
            .set("x", r2(x - R + 0.5))
            .set("y", r2(y - R + 0.5))
            .set("width", 2.0 * R - 1.0)
            .set("height", 2.0 * R - 1.0)
            .into(),
        MapRole::LlmPrompt => Polygon::new()
            .set(
                "points",
                format!(
                    "{},{} {},{} {},{}",
                    r2(x),
                    r2(y - R - 1.0),
                    r2(x + R + 0.5),
                    r2(y + R - 0.5),
                    r2(x - R - 0.5),
                    r2(y + R - 0.5)
                ),
            )
            .into(),
    };
    let mut el = el;
    el.assign("fill", fill);
    el.assign("stroke", "#ffffff");
    el.assign("stroke-width", 1.2);
    el
}

/// Rounds to 0.01 px (smaller files, stable text).
pub(super) fn r2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub(super) fn title_of(m: &TaskMap, o: &RenderOptions) -> String {
    o.title.clone().unwrap_or_else(|| {
        let d = m
            .points
            .iter()
            .filter(|p| p.role == MapRole::Dataset)
            .count();
        format!(
            "taskdb map: {} datasets, {} models ({} space)",
            d,
            m.points.len() - d,
            m.method
        )
    })
}

/// The SVG document and what it drew.
pub(super) fn document(m: &TaskMap, o: &RenderOptions, sc: &Scene) -> Document {
    let mut doc = Document::new()
        .set("viewBox", (0, 0, W, H))
        .set("width", W)
        .set("height", H)
        .set("font-family", format!("{FONT_FAMILY}, Verdana, sans-serif"))
        .add(
            Rectangle::new()
                .set("width", W)
                .set("height", H)
                .set("fill", "#ffffff"),
        );
    doc = doc
        .add(
            Text::new(title_of(m, o))
                .set("x", PLOT.0)
                .set("y", 34)
                .set("font-size", 20)
                .set("fill", "#222222"),
        )
        .add(
            Text::new(format!(
                "space {} · layout {} · edges: each entry's {} nearest neighbours · \
                 positions from exact similarities",
                short(&m.space, 48),
                m.layout,
                o.edges
            ))
            .set("x", PLOT.0)
            .set("y", 58)
            .set("font-size", 12)
            .set("fill", "#666666"),
        );
    let mut edges = Group::new()
        .set("stroke", "#777777")
        .set("stroke-opacity", 0.3)
        .set("stroke-width", 0.9);
    for &(i, j) in &sc.edges {
        edges = edges.add(
            Line::new()
                .set("x1", r2(sc.xy[i].0))
                .set("y1", r2(sc.xy[i].1))
                .set("x2", r2(sc.xy[j].0))
                .set("y2", r2(sc.xy[j].1)),
        );
    }
    doc = doc.add(edges).add(Group::new().set("id", "hl"));
    let mut pts = Group::new();
    for (i, p) in m.points.iter().enumerate() {
        let (x, y) = sc.xy[i];
        let g = Group::new()
            .set("class", "pt")
            .set("data-i", i)
            .add(Title::new(format!(
                "{}@{} ({})",
                p.name,
                p.version,
                p.role.as_str()
            )))
            .add(marker(p.role, x, y, &sc.colour[i]));
        pts = pts.add(g);
    }
    doc = doc.add(pts);
    let mut labels = Group::new().set("font-size", FONT).set("fill", "#222222");
    for (i, l) in sc.labels.iter().enumerate() {
        let Some((b, leader)) = l else { continue };
        if let Some((tx, ty)) = leader {
            labels = labels.add(
                Line::new()
                    .set("x1", r2(sc.xy[i].0))
                    .set("y1", r2(sc.xy[i].1))
                    .set("x2", r2(*tx))
                    .set("y2", r2(*ty))
                    .set("stroke", "#999999")
                    .set("stroke-width", 0.7),
            );
        }
        labels = labels.add(
            Text::new(label_text(m, i))
                .set("x", r2(b.0 + 1.0))
                .set("y", r2(b.3 - 3.5)),
        );
    }
    doc = doc.add(labels);
    doc.add(legend(m, sc))
}

/// The legend panel: shapes by role, then colours.
fn legend(m: &TaskMap, sc: &Scene) -> Group {
    let x = PLOT.2 + 30.0;
    let mut y = PLOT.1 + 10.0;
    let mut g = Group::new().set("font-size", 13).set("fill", "#222222");
    g = g.add(
        Text::new("shape")
            .set("x", x)
            .set("y", y)
            .set("font-weight", "bold"),
    );
    y += 22.0;
    for r in [MapRole::Dataset, MapRole::Model, MapRole::LlmPrompt] {
        let k = m.points.iter().filter(|p| p.role == r).count();
        if k == 0 {
            continue;
        }
        g = g.add(marker(r, x + 7.0, y - 4.5, "#555555")).add(
            Text::new(format!("{} ({k})", r.as_str()))
                .set("x", x + 22.0)
                .set("y", y),
        );
        y += 20.0;
    }
    y += 14.0;
    g = g.add(
        Text::new(format!("colour: {}", sc.legend_title))
            .set("x", x)
            .set("y", y)
            .set("font-weight", "bold"),
    );
    y += 22.0;
    let room = ((PLOT.3 - y) / 20.0).floor().max(0.0) as usize;
    for (k, (value, colour, count)) in sc.legend.iter().enumerate() {
        if k + 1 == room && sc.legend.len() > room {
            g = g.add(
                Text::new(format!("… {} more", sc.legend.len() - k))
                    .set("x", x)
                    .set("y", y),
            );
            break;
        }
        g = g
            .add(
                Circle::new()
                    .set("cx", x + 7.0)
                    .set("cy", y - 4.5)
                    .set("r", R)
                    .set("fill", colour.as_str()),
            )
            .add(
                Text::new(format!("{} ({count})", short(value, 30)))
                    .set("x", x + 22.0)
                    .set("y", y),
            );
        y += 20.0;
    }
    g
}

/// `s` cut to `n` characters with an ellipsis.
pub(super) fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The map as an SVG document.
pub(super) fn svg(m: &TaskMap, o: &RenderOptions) -> (String, RenderReport) {
    let sc = scene(m, o);
    (document(m, o, &sc).to_string(), sc.report)
}

/// The map as a PNG (the SVG at twice its size, the embedded font).
pub(super) fn png(m: &TaskMap, o: &RenderOptions) -> Result<(Vec<u8>, RenderReport)> {
    let (text, report) = svg(m, o);
    let mut db = resvg::usvg::fontdb::Database::new();
    db.load_font_data(dejavu::sans::regular().to_vec());
    db.load_font_data(dejavu::sans::bold().to_vec());
    db.set_sans_serif_family(FONT_FAMILY);
    let opt = resvg::usvg::Options {
        font_family: FONT_FAMILY.to_string(),
        fontdb: Arc::new(db),
        ..resvg::usvg::Options::default()
    };
    let tree = resvg::usvg::Tree::from_str(&text, &opt)
        .map_err(|e| Error::Internal(format!("map SVG did not parse: {e}")))?;
    let scale = 2.0f32;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or_else(|| Error::Internal("map size out of range".into()))?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| Error::Internal("could not allocate the map's pixels".into()))?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    let bytes = pixmap
        .encode_png()
        .map_err(|e| Error::Internal(format!("PNG encoding: {e}")))?;
    Ok((bytes, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::labels::Bx;
    use crate::map::{MapNeighbour, MapPoint, MAP_FORMAT};
    use crate::model::Kind;

    /// A crowded map: 120 points on a spiral, long names, each with two neighbours.
    fn crowded() -> TaskMap {
        let n = 120;
        let points = (0..n)
            .map(|i| {
                let a = i as f64 * 0.35;
                let r = 1.0 + i as f64 * 0.05;
                MapPoint {
                    id: i as u64,
                    name: format!("dataset_with_a_long_name_{i}"),
                    version: 1,
                    kind: Kind::Dataset,
                    role: if i % 7 == 0 {
                        MapRole::Model
                    } else {
                        MapRole::Dataset
                    },
                    tags: [("family".to_string(), format!("f{}", i % 25))].into(),
                    x: r * a.cos(),
                    y: r * a.sin(),
                    frozen: false,
                    neighbours: [1, 2]
                        .iter()
                        .map(|d| MapNeighbour {
                            name: format!("dataset_with_a_long_name_{}", (i + d) % n),
                            version: 1,
                            score: 0.5,
                        })
                        .collect(),
                }
            })
            .collect();
        TaskMap {
            format: MAP_FORMAT.into(),
            space: "s".into(),
            method: "m".into(),
            layout: "tsne".into(),
            points,
            left_out: Vec::new(),
        }
    }

    #[test]
    fn labels_never_overlap_each_other_or_a_marker_and_stay_in_the_plot() {
        let m = crowded();
        let o = RenderOptions {
            colour_tag: Some("family".into()),
            label_top: 200,
            ..RenderOptions::default()
        };
        let sc = scene(&m, &o);
        let boxes: Vec<(usize, Bx)> = sc
            .labels
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.map(|(b, _)| (i, b)))
            .collect();
        assert!(boxes.len() > 30, "only {} labels placed", boxes.len());
        assert_eq!(boxes.len() + sc.report.unlabelled.len(), 120);
        let area = Bx(PLOT.0, PLOT.1, PLOT.2, PLOT.3);
        for (k, (_, a)) in boxes.iter().enumerate() {
            assert!(a.inside(&area));
            for (_, b) in &boxes[k + 1..] {
                assert!(!a.hits(b), "{a:?} overlaps {b:?}");
            }
            for &(x, y) in &sc.xy {
                assert!(
                    !a.hits(&Bx(x - R, y - R, x + R, y + R)),
                    "label on a marker"
                );
            }
        }
        // 25 family values: 18 colours, the rest "other".
        assert_eq!(sc.legend.len(), 19);
        assert_eq!(sc.legend[18].0, "other");
        // Label widths are measured with the embedded font, not guessed.
        assert!(face().is_some());
        assert!(text_width("WWW", FONT) > text_width("iii", FONT) * 2.0);
    }
}
