//! The HTML map: one self-contained file (the SVG inline, the points as JSON, a short
//! script for hover); nothing is fetched from the network.

use super::render::{document, r2, scene, short, title_of, RenderOptions, RenderReport};
use super::TaskMap;
use crate::error::{Error, Result};

/// The map as one self-contained HTML file: the SVG inline, the points as JSON, and a short
/// script that shows a point's name, kind, tags and nearest neighbours on hover and draws
/// its neighbour edges. No external resource is referenced.
pub(super) fn html(m: &TaskMap, o: &RenderOptions) -> Result<(String, RenderReport)> {
    let sc = scene(m, o);
    let doc = document(m, o, &sc).to_string();
    let data: Vec<serde_json::Value> = m
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let nb: Vec<serde_json::Value> = p
                .neighbours
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "name": n.name, "version": n.version, "score": n.score,
                        "i": sc.index.get(&(n.name.clone(), n.version)),
                    })
                })
                .collect();
            serde_json::json!({
                "name": p.name, "version": p.version, "role": p.role.as_str(),
                "tags": p.tags, "x": r2(sc.xy[i].0), "y": r2(sc.xy[i].1), "nb": nb,
            })
        })
        .collect();
    let json = serde_json::to_string(&serde_json::json!({
        "space": m.space, "method": m.method, "layout": m.layout, "points": data,
    }))
    .map_err(|e| Error::Internal(format!("map JSON: {e}")))?
    // '<' only occurs inside JSON strings, where \u003c is the same character: the data
    // can never close the script element.
    .replace('<', "\\u003c");
    let title = short(&title_of(m, o), 200)
        .replace('&', "&amp;")
        .replace('<', "&lt;");
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{doc}\n\
         <div id=\"tip\"></div>\n<script type=\"application/json\" id=\"taskdb-map-data\">\
         {json}</script>\n<script>{JS}</script>\n</body>\n</html>\n"
    );
    Ok((page, sc.report))
}

const CSS: &str = "body{margin:0;background:#fff;font-family:'DejaVu Sans',Verdana,sans-serif}\
svg{display:block;max-width:100%;height:auto}.pt{cursor:pointer}.pt:hover>*{stroke:#000;\
stroke-width:2}#tip{position:absolute;display:none;pointer-events:none;background:#fffffb;\
border:1px solid #999;border-radius:4px;padding:6px 9px;font-size:13px;line-height:1.4;\
box-shadow:0 2px 6px rgba(0,0,0,.2);max-width:360px}#tip b{font-size:14px}\
#tip td{padding:0 6px 0 0}";

const JS: &str = r#"
(function () {
  var data = JSON.parse(document.getElementById('taskdb-map-data').textContent);
  var tip = document.getElementById('tip');
  var hl = document.getElementById('hl');
  var NS = 'http://www.w3.org/2000/svg';
  function el(tag, text) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; }
  function show(p) {
    tip.replaceChildren();
    tip.appendChild(el('b', p.name + '@' + p.version));
    tip.appendChild(el('div', p.role));
    var tags = Object.keys(p.tags).map(function (k) { return k + '=' + p.tags[k]; }).join(', ');
    if (tags) tip.appendChild(el('div', tags));
    if (p.nb.length) {
      tip.appendChild(el('div', 'nearest:'));
      var t = el('table');
      p.nb.forEach(function (n) {
        var r = el('tr'); r.appendChild(el('td', n.score.toFixed(3))); r.appendChild(el('td', n.name + '@' + n.version)); t.appendChild(r);
      });
      tip.appendChild(t);
    }
    tip.style.display = 'block';
    hl.replaceChildren();
    p.nb.forEach(function (n) {
      if (n.i === null || n.i === undefined) return;
      var q = data.points[n.i], l = document.createElementNS(NS, 'line');
      l.setAttribute('x1', p.x); l.setAttribute('y1', p.y); l.setAttribute('x2', q.x); l.setAttribute('y2', q.y);
      l.setAttribute('stroke', '#d62728'); l.setAttribute('stroke-width', '1.6'); l.setAttribute('stroke-opacity', '0.8');
      hl.appendChild(l);
    });
  }
  // map.html#NAME opens with NAME's card shown (a link to one entry, and a way to check the
  // page headlessly).
  function showNamed() {
    var name = decodeURIComponent(location.hash.slice(1));
    var i = data.points.findIndex(function (p) { return p.name === name || p.name + '@' + p.version === name; });
    if (i < 0) return;
    show(data.points[i]);
    var r = document.querySelector('.pt[data-i="' + i + '"]').getBoundingClientRect();
    tip.style.left = (r.right + window.scrollX + 8) + 'px'; tip.style.top = (r.bottom + window.scrollY + 8) + 'px';
  }
  window.addEventListener('hashchange', showNamed);
  if (location.hash.length > 1) showNamed();
  document.querySelectorAll('.pt').forEach(function (g) {
    var p = data.points[+g.getAttribute('data-i')];
    g.addEventListener('mouseenter', function () { show(p); });
    g.addEventListener('mousemove', function (ev) { tip.style.left = (ev.pageX + 14) + 'px'; tip.style.top = (ev.pageY + 14) + 'px'; });
    g.addEventListener('mouseleave', function () { tip.style.display = 'none'; hl.replaceChildren(); });
  });
})();
"#;
