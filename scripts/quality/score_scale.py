#!/usr/bin/env python3
"""What a knn score means in the default space (issue 8): the distribution of scores between
datasets of the same family and of different families, and the sampling noise of a score
(two random halves of one dataset scored against the same other entry).

Default space (taskdb's `scatter-kmeans-absdiff`): scatter whitened by U (alpha 0.5), pair
datasets featurised as |h(a) - h(b)| of the two texts encoded alone (encode_pairs.py), centred
by the mean of U's k-means pseudo-tasks embedded in the whitened space. Nothing is fitted on the
datasets. `--library` measures the previous default instead (joint pairs, centred on the 17
datasets of the built-in reference library). Needs encode.py / encode_pairs.py features.
Prints a markdown summary."""
import json, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import methods as M
from heldout import load
from designs import unit_lr, gram_lr, centre, kmeans_Qs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LIBRARY = "--library" in sys.argv
U, ents = load(os.path.join(ROOT, ".cache", "quality"))
W = M.whitening(U, 0.5)
fd = os.path.join(ROOT, ".cache", "quality", "feat")


def X_of(e):
    if LIBRARY or e["kind"] != "dataset" or not e["pair"]:
        return e["X"]
    key = f"{e['family']}__{e['name']}"
    u = np.load(os.path.join(fd, key + ".u.npy")).astype(np.float64)
    v = np.load(os.path.join(fd, key + ".v.npy")).astype(np.float64)
    Z = np.abs(u - v)
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


rng = np.random.default_rng(0)
embs, halves = [], []
for e in ents:
    embs.append(unit_lr(M.scatter(X_of(e), e["Q"], W)))
for e in ents:
    if e["kind"] != "dataset":
        halves.append(None); continue
    X = X_of(e)
    idx = rng.permutation(len(X)); h = len(idx) // 2
    pair = []
    for part in (idx[:h], idx[h:]):
        Q = e["Q"][part]; keep = Q.sum(0) > 0
        pair.append(unit_lr(M.scatter(X[part], Q[:, keep], W)))
    halves.append(pair)
extra = [p for pr in halves if pr for p in pr]
n = len(ents)
if LIBRARY:
    # the built-in library's datasets: the names recorded in its file
    doc = json.load(open(os.path.join(ROOT, "src", "data", "reference-library-scatter.json")))
    names = {t["name"] for t in doc["tasks"]}
    G = gram_lr(embs + extra)
    ref = [i for i, e in enumerate(ents) if e["name"] in names]
else:
    refs = [unit_lr(M.scatter(U, q, W)) for q in kmeans_Qs(U)]
    G = gram_lr(embs + extra + refs)
    ref = list(range(n + len(extra), n + len(extra) + len(refs)))
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
print(f"design: {'previous default (library)' if LIBRARY else 'scatter-kmeans-absdiff'}; reference tasks: {len(ref)}")
print(f"| pairs | n | p10 | median | p90 |")
print(f"|---|---|---|---|---|")
print(f"| same family | {len(same)} | {q(same,10):.3f} | {q(same,50):.3f} | {q(same,90):.3f} |")
print(f"| different families | {len(diff)} | {q(diff,10):.3f} | {q(diff,50):.3f} | {q(diff,90):.3f} |")
print(f"| different families: p99 {q(diff,99):.3f}, max {max(diff):.3f} | | | | |")
mi = [C[i, j] for i in range(n) for j in range(n) if ents[i]["kind"] == "model" and ents[j]["kind"] == "dataset" and fam[i] == fam[j]]
md = [C[i, j] for i in range(n) for j in range(n) if ents[i]["kind"] == "model" and ents[j]["kind"] == "dataset" and fam[i] != fam[j]]
print(f"| classifier-dataset, same family | {len(mi)} | {q(mi,10):.3f} | {q(mi,50):.3f} | {q(mi,90):.3f} |")
print(f"| classifier-dataset, different families | {len(md)} | {q(md,10):.3f} | {q(md,50):.3f} | {q(md,90):.3f} |")
print(f"| noise: abs(score(half A, X) - score(half B, X)) | {len(noise)} | {q(noise,10):.3f} | {q(noise,50):.3f} | {q(noise,90):.3f} (p99 {q(noise,99):.3f}) |")
