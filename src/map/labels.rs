//! Label placement: greedy, measured with the embedded font, never overlapping another label or
//! a marker.

use super::render::{text_width, FONT, PLOT, R};
use super::TaskMap;

/// An axis-aligned box (x0, y0, x1, y1).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bx(
    pub(super) f64,
    pub(super) f64,
    pub(super) f64,
    pub(super) f64,
);

impl Bx {
    pub(super) fn hits(&self, o: &Bx) -> bool {
        self.0 < o.2 && o.0 < self.2 && self.1 < o.3 && o.1 < self.3
    }
    pub(super) fn inside(&self, o: &Bx) -> bool {
        self.0 >= o.0 && self.1 >= o.1 && self.2 <= o.2 && self.3 <= o.3
    }
}

/// A placed label: its box, and where a leader line from the point ends (for labels placed
/// away from their point).
pub(super) type Placed = (Bx, Option<(f64, f64)>);

/// Greedy label placement: the `top` most-connected points, each tries 8 positions around its
/// marker at three distances (the farther ones with a leader line) and takes the first that
/// overlaps no marker and no label already placed and stays inside the plot.
pub(super) fn place_labels(
    m: &TaskMap,
    xy: &[(f64, f64)],
    indeg: &[usize],
    top: usize,
) -> (Vec<Option<Placed>>, Vec<String>) {
    let n = m.points.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        indeg[b]
            .cmp(&indeg[a])
            .then(m.points[a].name.cmp(&m.points[b].name))
    });
    order.truncate(top);
    let area = Bx(PLOT.0, PLOT.1, PLOT.2, PLOT.3);
    let mut taken: Vec<Bx> = xy
        .iter()
        .map(|&(x, y)| Bx(x - R - 1.0, y - R - 1.0, x + R + 1.0, y + R + 1.0))
        .collect();
    let mut out = vec![None; n];
    let mut missing = Vec::new();
    let h = FONT + 2.0;
    for i in order {
        let text = label_text(m, i);
        let w = text_width(&text, FONT) + 2.0;
        let (x, y) = xy[i];
        let mut found = None;
        'search: for (k, dist) in [R + 3.0, R + 18.0, R + 36.0].into_iter().enumerate() {
            for (dx, dy) in [
                (1.0, 0.0),
                (-1.0, 0.0),
                (0.0, -1.0),
                (0.0, 1.0),
                (1.0, -1.0),
                (1.0, 1.0),
                (-1.0, -1.0),
                (-1.0, 1.0),
            ] {
                let ax = x + dx * dist;
                let ay = y + dy * dist * 0.8;
                let bx0 = if dx > 0.0 {
                    ax
                } else if dx < 0.0 {
                    ax - w
                } else {
                    ax - w / 2.0
                };
                let by0 = if dy > 0.0 {
                    ay
                } else if dy < 0.0 {
                    ay - h
                } else {
                    ay - h / 2.0
                };
                let b = Bx(bx0, by0, bx0 + w, by0 + h);
                if !b.inside(&area) || taken.iter().any(|t| t.hits(&b)) {
                    continue;
                }
                // A leader line from the point to the middle of the box's near side.
                let leader = (k > 0).then(|| (near_side(dx, b.0, b.2), near_side(dy, b.1, b.3)));
                found = Some((b, leader));
                break 'search;
            }
        }
        match found {
            Some(f) => {
                taken.push(f.0);
                out[i] = Some(f);
            }
            None => missing.push(format!("{}@{}", m.points[i].name, m.points[i].version)),
        }
    }
    (out, missing)
}

/// A point's label: its name, with `@version` when it is not the first version.
pub(super) fn label_text(m: &TaskMap, i: usize) -> String {
    let p = &m.points[i];
    if p.version > 1 {
        format!("{}@{}", p.name, p.version)
    } else {
        p.name.clone()
    }
}

/// The coordinate of a box's side nearest a point that lies in direction −`d` from it
/// (`lo` when the box is after the point, `hi` when before, the middle when level).
fn near_side(d: f64, lo: f64, hi: f64) -> f64 {
    if d > 0.0 {
        lo
    } else if d < 0.0 {
        hi
    } else {
        (lo + hi) / 2.0
    }
}
