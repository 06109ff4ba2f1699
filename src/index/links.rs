//! A graph's structure without its vectors: which point is where, and who links to whom.
//!
//! [`Links`] is what taskdb persists of a graph ([`super::persist`], with the graph's own
//! vectors only where they cannot be derived from the store: matrix spaces' sketches), what
//! the flat dense search walks ([`super::graph`]), and what an hnsw_rs graph is made again
//! from ([`Links::graph`], through the vendored `Hnsw::from_lists`, `vendor/hnsw_rs/TASKDB-PATCH.md`).
//! Rows follow hnsw_rs's own order (layer by layer from 0, by rank within a layer), so a row
//! keeps its place when a graph goes from hnsw_rs to `Links` and back.

use std::collections::HashMap;

use hnsw_rs::prelude::DistDot;

use super::Graph;
use crate::embedding::EntryId;

/// The layers hnsw_rs is given (`index::new_graph`): points are drawn into 0..16.
pub(crate) const MAX_LAYER: usize = 16;

/// A graph's points and neighbour lists, as rows.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Links {
    /// Row → entry id.
    pub ids: Vec<EntryId>,
    /// Row → the point's top layer.
    pub levels: Vec<u8>,
    /// Layer 0: row r's neighbours are `nbrs[start[r]..start[r + 1]]` (`start` has one more
    /// element than `ids`, or none when there are no rows).
    pub start: Vec<u32>,
    pub nbrs: Vec<u32>,
    /// Layers ≥ 1: (layer, row) → neighbours, for the few rows that reach them.
    pub upper: HashMap<(u8, u32), Vec<u32>>,
    /// The entry row and its layer (`None` for an empty graph).
    pub entry: Option<(u32, u8)>,
    /// hnsw_rs's `M` and `ef_construction` the graph was built with (kept, so that points
    /// inserted later are linked as the rest were).
    pub m: usize,
    pub ef_construction: usize,
}

impl Links {
    /// The structure of an hnsw_rs graph. `None` when it is inconsistent (a neighbour that is
    /// not a point, a layer out of range).
    pub fn of(graph: &Graph) -> Option<Links> {
        let mut l = Links {
            m: graph.get_max_nb_connection() as usize,
            ef_construction: graph.get_ef_construction(),
            ..Links::default()
        };
        if graph.get_nb_point() == 0 {
            return Some(l);
        }
        let pi = graph.get_point_indexation();
        let points: Vec<_> = pi.into_iter().collect();
        let top = pi.get_max_level_observed();
        // hnsw_rs names a point by (layer, rank in layer).
        let mut row_of: Vec<Vec<u32>> = vec![Vec::new(); top as usize + 1];
        for (r, p) in points.iter().enumerate() {
            let id = p.get_point_id();
            let layer = row_of.get_mut(id.0 as usize)?;
            let rank = usize::try_from(id.1).ok()?;
            if layer.len() <= rank {
                layer.resize(rank + 1, u32::MAX);
            }
            layer[rank] = r as u32;
        }
        let row_of = |layer: u8, rank: i32| -> Option<u32> {
            let r = *row_of
                .get(layer as usize)?
                .get(usize::try_from(rank).ok()?)?;
            (r != u32::MAX).then_some(r)
        };
        l.ids.reserve(points.len());
        l.levels.reserve(points.len());
        l.start.reserve(points.len() + 1);
        l.start.push(0);
        for (r, p) in points.iter().enumerate() {
            let level = p.get_point_id().0;
            l.ids.push(p.get_origin_id() as EntryId);
            l.levels.push(level);
            if level == top && l.entry.is_none() {
                l.entry = Some((r as u32, level));
            }
            // Every list hnsw_rs holds, as it holds it: some are in layers above the point's
            // own (the nearest point its insertion met there on the way down), some name a
            // point of a lower layer (the entry point of the time), and a walk can read them.
            for (layer, list) in p.get_neighborhood_id().iter().enumerate() {
                let rows: Vec<u32> = list
                    .iter()
                    .map(|n| row_of(n.p_id.0, n.p_id.1))
                    .collect::<Option<_>>()?;
                if layer == 0 {
                    l.nbrs.extend_from_slice(&rows);
                } else if !rows.is_empty() {
                    l.upper.insert((layer as u8, r as u32), rows);
                }
            }
            l.start.push(l.nbrs.len() as u32);
        }
        Some(l)
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Row `r`'s neighbours in `layer` (empty where it has none or does not reach it).
    pub fn list(&self, r: u32, layer: u8) -> &[u32] {
        match layer {
            0 => {
                let r = r as usize;
                match (self.start.get(r), self.start.get(r + 1)) {
                    (Some(&a), Some(&b)) => self.nbrs.get(a as usize..b as usize).unwrap_or(&[]),
                    _ => &[],
                }
            }
            _ => self.upper.get(&(layer, r)).map_or(&[], Vec::as_slice),
        }
    }

    /// Whether the structure is one a graph can have: as many levels as ids, a well-formed
    /// layer-0 array, every neighbour a row, upper lists in layers 1.. of rows that exist, an
    /// entry of the top layer, and rows in hnsw_rs's order (levels never decreasing). Lists
    /// are not checked against the layers of their rows: hnsw_rs's own graphs have lists
    /// above a point's layer and neighbours below the list's (see [`Links::of`]). The reader
    /// of the persisted file checks this before anything uses it.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.ids.len();
        if self.levels.len() != n {
            return Err(format!("{} levels for {n} rows", self.levels.len()));
        }
        if n == 0 {
            return match (self.entry, self.upper.is_empty() && self.nbrs.is_empty()) {
                (None, true) => Ok(()),
                _ => Err("links in an empty graph".into()),
            };
        }
        if self.start.len() != n + 1
            || self.start[0] != 0
            || self.start.windows(2).any(|w| w[0] > w[1])
            || self.start[n] as usize != self.nbrs.len()
        {
            return Err("layer 0's offsets are malformed".into());
        }
        if self.levels.windows(2).any(|w| w[0] > w[1]) {
            return Err("rows are not in layer order".into());
        }
        if self.levels.iter().any(|&l| l as usize >= MAX_LAYER) {
            return Err("a point above the top layer".into());
        }
        let top = self.levels[n - 1];
        match self.entry {
            Some((r, l)) if (r as usize) < n && self.levels[r as usize] == l && l == top => {}
            _ => return Err("the entry point is not a point of the top layer".into()),
        }
        if let Some(j) = self.nbrs.iter().find(|&&j| j as usize >= n) {
            return Err(format!("a neighbour {j} in layer 0, of {n} rows"));
        }
        for (&(layer, r), list) in &self.upper {
            if layer == 0 || layer as usize >= MAX_LAYER || r as usize >= n {
                return Err(format!("a list of row {r} in layer {layer}"));
            }
            if list.iter().any(|&j| j as usize >= n) {
                return Err(format!(
                    "row {r} has a neighbour out of range in layer {layer}"
                ));
            }
        }
        Ok(())
    }

    /// The hnsw_rs graph of this structure, row r's graph vector `vectors[r]` (as hnsw_rs held
    /// it: a dense space's scaled unit vector, a matrix space's sketch). Each list's distances
    /// are recomputed by hnsw_rs's `DistDot`, so points inserted afterwards are linked exactly
    /// as into the graph the structure was taken from.
    pub fn graph(&self, vectors: Vec<Vec<f32>>) -> Result<Graph, String> {
        self.validate()?;
        if vectors.len() != self.len() {
            return Err(format!("{} vectors for {} rows", vectors.len(), self.len()));
        }
        let points: Vec<(Vec<f32>, usize, u8)> = vectors
            .into_iter()
            .zip(self.ids.iter().zip(&self.levels))
            .map(|(v, (&id, &level))| (v, id as usize, level))
            .collect();
        let entry = self.entry.map_or(0, |(r, _)| r as usize);
        let layer0 = (0..self.len() as u32).map(|r| (r as usize, 0, self.list(r, 0)));
        let upper = self
            .upper
            .iter()
            .map(|(&(l, r), v)| (r as usize, l, v.as_slice()));
        let lists = layer0.chain(upper).filter(|(_, _, v)| !v.is_empty());
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Graph::from_lists(
                self.m.clamp(2, 255),
                MAX_LAYER,
                self.ef_construction,
                DistDot {},
                points,
                lists,
                entry,
            )
        }))
        .map_err(|_| "hnsw_rs panicked making the graph".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{new_graph, IndexParams};

    fn unit(i: usize, d: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..d)
            .map(|j| (((i * 31 + j * 17) % 23) as f32 - 11.0) + (i % 7) as f32)
            .collect();
        crate::unit::unit(&v).unwrap()
    }

    fn built(n: usize, d: usize) -> Graph {
        let g = new_graph(&IndexParams::default(), n);
        let vecs: Vec<Vec<f32>> = (0..n).map(|i| unit(i, d)).collect();
        let refs: Vec<(&Vec<f32>, usize)> = vecs.iter().zip(100..).collect();
        g.parallel_insert(&refs);
        g
    }

    #[test]
    fn a_graph_made_from_its_links_has_the_same_links_and_answers() {
        let g = built(1500, 24);
        let l = Links::of(&g).unwrap();
        l.validate().unwrap();
        assert_eq!(l.len(), 1500);
        assert!(
            l.upper.len() > 10,
            "too few upper-layer lists to test anything"
        );
        let vectors = l
            .ids
            .iter()
            .map(|&id| unit(id as usize - 100, 24))
            .collect();
        let h = l.graph(vectors).unwrap();
        assert_eq!(Links::of(&h).unwrap(), l);
        for i in 0..50 {
            let q = unit(i * 7 + 3, 24);
            let a: Vec<usize> = g.search(&q, 10, 64).iter().map(|n| n.d_id).collect();
            let b: Vec<usize> = h.search(&q, 10, 64).iter().map(|n| n.d_id).collect();
            assert_eq!(a, b, "query {i}");
        }
        // Points inserted into the made graph are found like any other.
        // (`unit` repeats every 23 · 7 rows; this one is like none of them.)
        let extra =
            crate::unit::unit(&(0..24).map(|j| (j * j) as f32).collect::<Vec<_>>()).unwrap();
        h.insert_slice((&extra, 9999));
        let got: Vec<usize> = h.search(&extra, 1, 64).iter().map(|n| n.d_id).collect();
        assert_eq!(got, vec![9999]);
    }

    #[test]
    fn damaged_links_are_refused_not_made() {
        let g = built(300, 8);
        let l = Links::of(&g).unwrap();
        let vectors = || (0..300).map(|r| unit(r, 8)).collect::<Vec<_>>();
        type Damage = Box<dyn Fn(&mut Links)>;
        let cases: Vec<(&str, Damage)> = vec![
            ("a neighbour past the end", Box::new(|l| l.nbrs[3] = 10_000)),
            (
                "an upper neighbour past the end",
                Box::new(|l| {
                    l.upper.values_mut().next().unwrap()[0] = 300;
                }),
            ),
            (
                "a list in layer 0 of the map",
                Box::new(|l| {
                    l.upper.insert((0, 1), vec![2]);
                }),
            ),
            ("offsets out of order", Box::new(|l| l.start[5] = u32::MAX)),
            (
                "a level lost",
                Box::new(|l| {
                    l.levels.pop();
                }),
            ),
            (
                "the entry below the top",
                Box::new(|l| l.entry = Some((0, 0))),
            ),
            ("rows out of layer order", Box::new(|l| l.levels[0] = 1)),
        ];
        for (what, damage) in cases {
            let mut bad = l.clone();
            damage(&mut bad);
            assert!(bad.validate().is_err(), "{what}: validated");
            assert!(bad.graph(vectors()).is_err(), "{what}: made");
        }
        assert!(Links::default().validate().is_ok());
    }
}
