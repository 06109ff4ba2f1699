#!/usr/bin/env python3
"""Issue 14, design study: which dense "index vector" of a matrix-valued task embedding finds
the exact top 10 of the default scatter space among few candidates?

Population (synthetic, from the real shared datasets): each of the 33 datasets' cached
surrogate features (scripts/quality/encode.py → .cache/quality/feat) is perturbed PER times:
a bootstrap resample of 20-100% of its rows, label noise (a share ε ~ U(0, 0.3) of rows gets
another row's label), and with probability 0.3 two of its classes merged (when it has ≥ 3).
Each perturbed dataset is embedded by the reference implementation of the default design
(methods.scatter with U's whitening, unit Frobenius norm, centred by the k-means pseudo-task
reference of U): the space's exact cosine is the ground truth.

Candidate generators (each a dense vector per entry; the approximate score is their dot
product, entries' exact norms being known): Gaussian quadratic forms (the current sketch,
m = 512); PCA of the vectorised matrices fitted on entries of half of the task families only
(frozen; queries come from the other half); PCA of U-only pseudo-tasks (k-means clusterings
of U, so frozen from U alone like the reference). Recall@10 = share of the exact top 10 (over
the whole population) found among the top C candidates, for queries from the held-out half.
Prints a markdown table. Run: .cache/llm-venv/bin/python scripts/quality/index_vector_study.py
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import experiment as E  # noqa: E402
import methods as M  # noqa: E402

PER = int(os.environ.get("STUDY_PER", "60"))
QUERIES = int(os.environ.get("STUDY_QUERIES", "300"))
CS = [10, 20, 50, 100, 200, 500]


def vech(P):
    iu = np.triu_indices(P.shape[0])
    w = np.where(iu[0] == iu[1], 1.0, np.sqrt(2.0))
    return (P[iu] * w).astype(np.float32)


def unit_dense(lr):
    D = M.dense(*lr)
    return D / np.linalg.norm(D)


def perturb(X, Q, rng):
    n = X.shape[0]
    idx = rng.integers(0, n, max(20, int(n * rng.uniform(0.2, 1.0))))
    Xs, Qs = X[idx], Q[idx].copy()
    eps = rng.uniform(0.0, 0.3)
    flip = rng.random(len(idx)) < eps
    Qs[flip] = Qs[rng.permutation(np.flatnonzero(flip))] if flip.any() else Qs[flip]
    if Qs.shape[1] >= 3 and rng.random() < 0.3:
        a, b = rng.choice(Qs.shape[1], 2, replace=False)
        Qs[:, a] += Qs[:, b]
        Qs = np.delete(Qs, b, axis=1)
    Qs = Qs[:, Qs.sum(0) > 0]
    return Xs, Qs


def recall(exact, approx, qi):
    out = {}
    for C in CS:
        r = []
        for row, q in enumerate(qi):
            ex = np.argsort(-exact[row])
            ex = ex[ex != q][:10]
            ap = np.argsort(-approx[row])
            ap = ap[ap != q][:C]
            r.append(len(set(ex) & set(ap)) / 10)
        out[C] = np.mean(r)
    return out


def main():
    t0 = time.time()
    U, ents, tasks = E.load(os.path.join(E.ROOT, ".cache", "quality"), 3000)
    W = M.whitening(U)
    spec = {"type": "kmeans", "ks": [2, 3, 4, 6, 8, 12, 16, 20], "seeds": [0, 1, 2]}
    R = E.pseudo_tasks(U, "scatter", spec, M.DEFAULTS, W)
    r = vech(R)
    rng = np.random.default_rng(0)
    fam, rows = [], []
    for e, (X, Q) in zip(ents, tasks):
        if e["kind"] != "dataset":
            continue
        for _ in range(PER):
            Xs, Qs = perturb(X, Q, rng)
            if Qs.shape[1] < 2:
                continue
            rows.append(vech(unit_dense(M.scatter(Xs, Qs, W))) - r)
            fam.append(e["family"])
    A = np.stack(rows)
    del rows
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    fam = np.array(fam)
    fams = sorted(set(fam))
    half_a = set(fams[0::2])
    in_a = np.array([f in half_a for f in fam])
    print(f"# population {len(A)} entries of {len(fams)} families ({in_a.sum()} in the fit half), "
          f"dim {A.shape[1]}; built in {time.time() - t0:.0f} s", file=sys.stderr)
    qi = rng.choice(np.flatnonzero(~in_a), min(QUERIES, int((~in_a).sum())), replace=False)
    exact = A[qi] @ A.T
    results = []

    # Gaussian quadratic forms (the current sketch's family): g_m^T E g_m, centred like E.
    d = U.shape[1]
    G = rng.standard_normal((512, d)).astype(np.float32)
    # g^T E g = <vech(E), vech(g g^T)> with vech's weights: build the 512 x dim map once.
    Gq = np.stack([vech(np.outer(g, g)) for g in G]) / np.sqrt(512)
    S = A @ Gq.T
    results.append(("Gaussian quadratic forms (current sketch family)", 512, recall(exact, S[qi] @ S.T, qi)))
    del Gq, S

    # PCA of vectorised matrices, fitted on the other half's families only.
    fit = rng.choice(np.flatnonzero(in_a), min(800, int(in_a.sum())), replace=False)
    _, _, Vt = np.linalg.svd(A[fit], full_matrices=False)
    for m in [32, 64, 128, 256, 512]:
        if m > Vt.shape[0]:
            continue
        P = A @ Vt[:m].T
        results.append((f"PCA of matrices, fitted on held-in families ({len(fit)} entries)", m,
                        recall(exact, P[qi] @ P.T, qi)))

    # PCA of U-only pseudo-tasks (k-means of U with many k and seeds): frozen from U alone.
    pts = []
    for k in [2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32]:
        for seed in range(40):
            lab = M.kmeans(U, k, 100 + seed)
            Qp = M.targets_matrix(lab, "classes", k)
            Qp = Qp[:, Qp.sum(0) > 0]
            pts.append(vech(unit_dense(M.scatter(U, Qp, W))) - r)
    Pm = np.stack(pts)
    Pm /= np.linalg.norm(Pm, axis=1, keepdims=True)
    _, _, Vp = np.linalg.svd(Pm, full_matrices=False)
    for m in [64, 128, 256, 480]:
        if m > Vp.shape[0]:
            continue
        P = A @ Vp[:m].T
        results.append((f"PCA of {len(Pm)} U-only k-means pseudo-tasks", m, recall(exact, P[qi] @ P.T, qi)))

    print(f"Population: {len(A)} perturbed datasets from the 33 shared datasets ({PER} each), "
          f"{len(fams)} families; {len(qi)} queries from the {len(fams) - len(half_a)} families not used "
          f"to fit anything; recall@10 of the exact top 10 within the top C candidates.\n")
    print("| index vector | dims | " + " | ".join(f"C={c}" for c in CS) + " |")
    print("|---|---|" + "---|" * len(CS))
    for name, m, rec in results:
        print(f"| {name} | {m} | " + " | ".join(f"{rec[c]:.3f}" for c in CS) + " |")
    print(f"\n# total {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
