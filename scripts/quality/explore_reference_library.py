#!/usr/bin/env python3
"""Would a *shipped reference library* (the mean of real public tasks' embeddings, frozen into the
space) recover library centring without its drift? Whitened scatter (alpha 0.5).

A per-query reference that leaves out the query's own family is NOT an honest estimate (it
leaks the family: the query and its family-mates keep the one component the reference lacks;
it scores ~1.0). The honest estimate: split the families in two halves at random; build one
fixed reference from the datasets of half A; score only the queries (datasets with a
family-mate, classifiers) of half B; swap; repeat over many random splits and average.
Run from the repo root.
"""
import sys, os, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import methods as M
from experiment import load, unit
from evaluate import evaluate, markdown_row

U, entries, tasks = load(".cache/quality", 3000)
W = M.whitening(U, 0.5)
embs = np.stack([unit(M.dense(*M.scatter(X, Q, W)).ravel()) for X, Q in tasks])
ds = [i for i, e in enumerate(entries) if e["kind"] == "dataset"]


def rank_with(ref_of):
    ans = {}
    for i, e in enumerate(entries):
        R = ref_of(e)
        A = embs - R if R is not None else embs
        A = A / np.linalg.norm(A, axis=1, keepdims=True)
        s = A @ A[i]
        order = [j for j in np.argsort(-s, kind="stable") if j != i]
        ans[e["name"]] = [entries[j]["name"] for j in order if entries[j]["kind"] == "dataset"]
    return evaluate(entries, ans)


mean_all = embs[ds].mean(0)
print(markdown_row("whitened scatter / none", rank_with(lambda e: None)))
r = rank_with(lambda e: mean_all)
print(markdown_row("whitened scatter / mean of all 17 datasets (in-sample: the shipped design)", r))
# evaluate.py's input format, for scripts/quality/report.py's Python column
import json
A = embs - mean_all
A = A / np.linalg.norm(A, axis=1, keepdims=True)
os.makedirs(".cache/quality/results", exist_ok=True)
json.dump({"entries": entries, "scores": (A @ A.T).tolist(), "result": r},
          open(".cache/quality/results/scatter[white0.5]__reference-library.json", "w"))
lofo = lambda e: embs[[j for j in ds if entries[j]["family"] != e["family"]]].mean(0)
print(markdown_row("whitened scatter / per-query mean of the other families (LEAKS, see docstring)", rank_with(lofo)))


def held_out(splits=50, seed=0):
    rng = np.random.default_rng(seed)
    fams = sorted({entries[j]["family"] for j in ds})
    nn, aps, clf, nclf = [], [], 0, 0
    for _ in range(splits):
        perm = rng.permutation(fams)
        halves = [set(perm[: len(fams) // 2]), set(perm[len(fams) // 2:])]
        for a, b in ((0, 1), (1, 0)):
            R = embs[[j for j in ds if entries[j]["family"] in halves[a]]].mean(0)
            r = rank_with(lambda e: R)
            for n, v in r["datasets"].items():
                fam = next(e["family"] for e in entries if e["name"] == n)
                if fam in halves[b]:
                    nn.append(v["hit"]); aps.append(v["ap"])
            for n, v in r["models"].items():
                if v["family"] in halves[b]:
                    nclf += 1; clf += v["match_rank"] == 1
    return np.mean(nn), np.mean(aps), clf / nclf


def held_out_none():
    r = rank_with(lambda e: None)
    return r["nn"], r["map"], r["models_top1"] / len(r["models"])


nn, mp, c = held_out()
print(f"| whitened scatter / fixed reference from half the families, scored on the other half (50 random splits x 2) | {nn:.2f} | {mp:.3f} | {8*c:.1f}/8 |")
