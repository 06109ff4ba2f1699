//! `taskdb map OUT.{svg,png,html,json}`: a picture of one task space.

use std::path::PathBuf;

use clap::Args;
use taskdb::{MapLayout, MapOptions, RenderOptions};

use crate::read::FilterArgs;
use crate::Ctx;

/// `map`.
#[derive(Args, Debug)]
pub struct MapArgs {
    /// The file to write: .svg, .png, .html (one self-contained file, hover for neighbours)
    /// or .json (the coordinates). An existing file is replaced (atomically).
    pub out: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The method whose space is drawn (default: the default method).
    #[arg(long)]
    pub method: Option<String>,
    /// `tsne` (neighbourhoods kept; up to 3,000 points) or `pca` (kernel PCA of the space's
    /// similarity). Both are deterministic.
    #[arg(long, default_value = "tsne", value_parser = ["tsne", "pca"])]
    pub layout: String,
    /// Keep the coordinates of a layout written earlier (a map .json file): old entries stay
    /// where they were, new ones are placed beside their most similar old ones. When FILE does
    /// not exist, this map's layout is written there.
    #[arg(long, value_name = "FILE")]
    pub frozen_layout: Option<PathBuf>,
    /// Colour points by this tag's value (e.g. `family`); default: by kind.
    #[arg(long, visible_alias = "color-tag", value_name = "KEY")]
    pub colour_tag: Option<String>,
    /// Label at most N points, the most connected first (every point is named on hover in
    /// HTML).
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub label_top: usize,
    /// Nearest-neighbour edges drawn per point.
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub edges: usize,
    /// Nearest neighbours kept per point (hover, JSON).
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub neighbours: usize,
    /// The picture's title.
    #[arg(long)]
    pub title: Option<String>,
    /// JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn map(ctx: &Ctx, a: MapArgs) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    if let Some(m) = &a.method {
        crate::read::check_method(&db, m)?;
    }
    let opts = MapOptions {
        method: a.method.clone(),
        filter: a.filter.filter()?,
        layout: MapLayout::parse(&a.layout)?,
        neighbours: a.neighbours.max(a.edges),
        frozen: a.frozen_layout.clone(),
    };
    let m = db.map(&opts)?;
    let render = RenderOptions {
        colour_tag: a.colour_tag.clone(),
        label_top: a.label_top,
        edges: a.edges,
        title: a.title.clone(),
    };
    let r = m.write(&a.out, &render)?;
    if a.json {
        crate::output::json(&serde_json::json!({
            "out": a.out, "space": m.space, "method": m.method, "layout": m.layout,
            "points": m.points.len(), "labelled": r.labelled, "unlabelled": r.unlabelled,
            "left_out": m.left_out,
        }))?;
        return Ok(0);
    }
    println!(
        "wrote {} ({} points of space {}, layout {})",
        a.out.display(),
        m.points.len(),
        m.space,
        m.layout
    );
    if !ctx.quiet {
        if !r.unlabelled.is_empty() && a.out.extension().is_some_and(|e| e != "json") {
            eprintln!(
                "note: {} points found no room for a label ({}); they are named on hover in \
                 the HTML map",
                r.unlabelled.len(),
                r.unlabelled.join(", ")
            );
        }
        if let Some(tag) = &a.colour_tag {
            if !m.points.iter().any(|p| p.tags.contains_key(tag)) {
                eprintln!("note: no mapped entry has the tag {tag:?}: every point is grey");
            }
        }
        if !m.left_out.is_empty() {
            eprintln!(
                "note: {} entries have their {} vector in another space and are not on this \
                 map: {}",
                m.left_out.len(),
                m.method,
                m.left_out.join(", ")
            );
        }
    }
    Ok(0)
}
