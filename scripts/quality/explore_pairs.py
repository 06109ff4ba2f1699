#!/usr/bin/env python3
"""Scatter on pair features [u, v, |u-v|, u*v] (docs/QUALITY-experiment.md); single texts and
models (U has no pairs) get [x, x, 0, x*x]. Needs encode_pairs.py output; run from the repo root."""
import sys, os, json, numpy as np
sys.path.insert(0, "scripts/quality")
import methods as M
from experiment import load, unit, cos_matrix
from evaluate import evaluate, rankings_from_scores, markdown_row
cache = ".cache/quality"; fd = cache + "/feat"
U, entries, tasks = load(cache, 3000)
keys = sorted(f[:-4] for f in os.listdir(fd) if f.count("__") == 1 and f.endswith(".npy") and "." not in f[:-4])
def single(X): return np.hstack([X, X, np.zeros_like(X), X * X])
feats = []
for e, (X, Q) in zip(entries, tasks):
    k = [k for k in keys if k.endswith("__" + e["name"])]
    if e["kind"] == "dataset" and os.path.exists(f"{fd}/{k[0]}.u.npy"):
        u = np.load(f"{fd}/{k[0]}.u.npy").astype(np.float64); v = np.load(f"{fd}/{k[0]}.v.npy").astype(np.float64)
        feats.append((np.hstack([u, v, np.abs(u - v), u * v]), Q))
    else:
        feats.append((single(X), Q))
mu = np.vstack([single(U)]).mean(0); C = np.cov(single(U).T)
def run(name, T):
    embs = [unit(M.dense(*M.scatter(T(X), Q)).ravel()) for X, Q in feats]
    for cen, ref in (("none", None), ("live", np.mean(embs, 0))):
        S = cos_matrix(embs, ref)
        print(markdown_row(f"{name} / {cen}", evaluate(entries, rankings_from_scores(entries, S.tolist()))), flush=True)
run("scatter pair-features [u,v,|u-v|,u*v] (single: [x,x,0,x*x])", lambda X: X)
