#!/usr/bin/env python3
"""What a knn score means in the default space (issue 8): the distribution of scores between
datasets of the same family and of different families, and the sampling noise of a score
(two random halves of one dataset scored against the same other entry).

Default space: scatter whitened by U (alpha 0.5), centred on the mean of the 17 datasets of the
built-in reference library. Needs encode.py features. Prints a markdown summary."""
import json, os, subprocess, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import methods as M
from heldout import load
from designs import unit_lr, gram_lr, centre

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
U, ents = load(os.path.join(ROOT, ".cache", "quality"))
W = M.whitening(U, 0.5)
# the built-in library's datasets: the names recorded in its file
doc = json.load(open(os.path.join(ROOT, "src", "data", "reference-library-scatter.json")))
names = {t["name"] for t in doc["tasks"]}
rng = np.random.default_rng(0)
embs, halves = [], []
for e in ents:
    embs.append(unit_lr(M.scatter(e["X"], e["Q"], W)))
for e in ents:
    if e["kind"] != "dataset":
        halves.append(None); continue
    idx = rng.permutation(len(e["X"])); h = len(idx) // 2
    pair = []
    for part in (idx[:h], idx[h:]):
        Q = e["Q"][part]; keep = Q.sum(0) > 0
        pair.append(unit_lr(M.scatter(e["X"][part], Q[:, keep], W)))
    halves.append(pair)
extra = [p for pr in halves if pr for p in pr]
G = gram_lr(embs + extra)
n = len(ents)
ref = [i for i, e in enumerate(ents) if e["name"] in names]
C = centre(G, ref)
fam = [e["family"] for e in ents]
same, diff, noise = [], [], []
for i in range(n):
    for j in range(i + 1, n):
        if ents[i]["kind"] == ents[j]["kind"] == "dataset":
            (same if fam[i] == fam[j] else diff).append(C[i, j])
k = n
for i, pr in enumerate(halves):
    if not pr:
        continue
    a, b = k, k + 1; k += 2
    for j in range(n):
        if j != i:
            noise.append(abs(C[a, j] - C[b, j]))
q = lambda v, p: float(np.percentile(v, p))
print(f"library datasets found: {len(ref)}")
print(f"| pairs | n | p10 | median | p90 |")
print(f"|---|---|---|---|---|")
print(f"| same family | {len(same)} | {q(same,10):.3f} | {q(same,50):.3f} | {q(same,90):.3f} |")
print(f"| different families | {len(diff)} | {q(diff,10):.3f} | {q(diff,50):.3f} | {q(diff,90):.3f} |")
print(f"| different families: p99 {q(diff,99):.3f}, max {max(diff):.3f} | | | | |")
mi = [C[i, j] for i in range(n) for j in range(n) if ents[i]["kind"] == "model" and ents[j]["kind"] == "dataset" and fam[i] == fam[j]]
md = [C[i, j] for i in range(n) for j in range(n) if ents[i]["kind"] == "model" and ents[j]["kind"] == "dataset" and fam[i] != fam[j]]
print(f"| classifier-dataset, same family | {len(mi)} | {q(mi,10):.3f} | {q(mi,50):.3f} | {q(mi,90):.3f} |")
print(f"| classifier-dataset, different families | {len(md)} | {q(md,10):.3f} | {q(md,50):.3f} | {q(md,90):.3f} |")
print(f"| noise: abs(score(half A, X) - score(half B, X)) | {len(noise)} | {q(noise,10):.3f} | {q(noise,50):.3f} | {q(noise,90):.3f} |")
