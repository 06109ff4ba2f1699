#!/usr/bin/env python3
"""How well compact sketches of matrix-valued embeddings (scatter, frozen-kmeans centring) rank:
Pearson correlation of sketch cosines with exact centred cosines over all entry pairs, and
recall of each entry's exact top-3 dataset neighbours within the sketch's top-6."""
import os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import methods as M, experiment as E

U, ents, tasks = E.load(E.os.path.join(E.ROOT, ".cache", "quality"), 3000)
lr = [M.scatter(X, Q) for X, Q in tasks]
embs = [E.unit(M.dense(*l)) for l in lr]
R = E.pseudo_tasks(U, "scatter", {"type": "kmeans", "ks": [2, 3, 4, 6, 8, 12, 16, 20], "seeds": [0, 1, 2]}, M.DEFAULTS)
exact = E.cos_matrix(embs, R)
iu = np.triu_indices(len(embs), 1)
ds = [i for i, e in enumerate(ents) if e["kind"] == "dataset"]


def report(name, V):
    V = V / np.linalg.norm(V, axis=1, keepdims=True)
    S = V @ V.T
    c = np.corrcoef(S[iu], exact[iu])[0, 1]
    rec = []
    for i in range(len(embs)):
        cand = [j for j in ds if j != i]
        ex = sorted(cand, key=lambda j: -exact[i, j])[:3]
        sk = sorted(cand, key=lambda j: -S[i, j])[:6]
        rec.append(len(set(ex) & set(sk)) / 3)
    print(f"| {name} | {V.shape[1]} | {c:.3f} | {np.mean(rec):.3f} |")


def vech(P):
    k = P.shape[0]
    iu2 = np.triu_indices(k)
    w = np.where(iu2[0] == iu2[1], 1.0, np.sqrt(2))
    return P[iu2] * w


Cu = U.T @ U / len(U)
w, V = np.linalg.eigh(Cu)
V = V[:, ::-1]
print("| sketch | dims | pearson vs exact | top-3 recall in top-6 |\n|---|---|---|---|")
for k in [16, 32, 45, 64, 96]:
    B = V[:, :k]
    vs = np.stack([vech(B.T @ e @ B) for e in embs]) - vech(B.T @ R @ B)[None]
    report(f"PCA basis k={k}", vs)
rng = np.random.default_rng(0)
for m in [256, 512, 1024]:
    G = rng.standard_normal((m, U.shape[1]))
    def qs(e):
        return np.einsum("md,de,me->m", G, e, G) - np.trace(e)
    vs = np.stack([qs(e) for e in embs]) - qs(R)[None]
    report(f"Gaussian quadratic forms m={m}", vs)
