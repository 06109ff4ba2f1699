#!/usr/bin/env python3
"""Paired comparison of two surrogates' feature sets on the same rows (issue 8's
second-surrogate experiment; encode_capped.py makes the feature sets).

  compare_surrogates.py CACHE_A CACHE_B [--designs textemb,round3] [--names A,B]

For label-free designs (nothing fitted on datasets: every round-3 row, textemb − U mean) the
all-33 similarity matrix is the held-out one up to the pool, so each query's AP, each
classifier's rank and each transfer target's NDCG@3 can be paired across the two feature
sets. Prints per-family mean AP, the classifiers' ranks, per-target NDCG@3, and exact
sign-flip tests (two-sided) of the family-mean AP and per-target NDCG@3 differences.
"""
import argparse, itertools, os, sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import heldout as H
import designs as D


def signflip(d):
    d = np.asarray(d, float)
    obs = abs(d.mean())
    hits = sum(abs((d * np.array(s)).mean()) >= obs - 1e-12 for s in itertools.product([1, -1], repeat=len(d)))
    return hits / 2 ** len(d)


def per_design(cache, designs, data):
    U, ents = H.load(cache)
    D._FD = os.path.join(cache, "feat")
    transfer = H.load_transfer(os.path.join(data, "transfer", "taskweb_visible.csv"))
    out = {}
    for d in D.build(U, ents, designs):
        if len(d.params) > 1:
            continue
        S = d.sim(None, d.params[0])
        allq = range(len(ents))
        nn, aps, clf, ranks = H.retrieval_metrics(S, ents, allq, allq, d.datasets_only)
        qs = [i for i in allq if ents[i]["kind"] == "dataset" and sum(e["family"] == ents[i]["family"] for e in ents if e["kind"] == "dataset") > 1]
        fams = [ents[i]["family"] for i in qs]
        nd = {}
        idx = {e["name"]: i for i, e in enumerate(ents)}
        for tgt, cands in transfer.items():
            if tgt not in idx:
                continue
            order = sorted(cands, key=lambda s: -S[idx[tgt], idx[s]])
            nd[tgt] = H.ndcg_at(cands, order)
        out[d.name] = dict(nn=nn, aps=aps, fams=fams, ranks=ranks, ndcg=nd)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a"); ap.add_argument("b")
    ap.add_argument("--designs", default="textemb,round3")
    ap.add_argument("--names", default="A,B")
    ap.add_argument("--data", default=os.path.join(H.ROOT, "..", "shared", "data"))
    x = ap.parse_args()
    na, nb = x.names.split(",")
    A = per_design(x.a, x.designs, x.data)
    B = per_design(x.b, x.designs, x.data)
    for name in A:
        if name not in B:
            continue
        a, b = A[name], B[name]
        print(f"\n### {name}")
        fams = sorted(set(a["fams"]))
        fa = [np.mean([ap for ap, f in zip(a["aps"], a["fams"]) if f == g]) for g in fams]
        fb = [np.mean([ap for ap, f in zip(b["aps"], b["fams"]) if f == g]) for g in fams]
        print(f"nn {na} {np.mean(a['nn']):.2f} / {nb} {np.mean(b['nn']):.2f}; MAP {np.mean(a['aps']):.3f} / {np.mean(b['aps']):.3f}")
        print("family mean AP: " + ", ".join(f"{g} {p:.2f}→{q:.2f}" for g, p, q in zip(fams, fa, fb)))
        diff = np.array(fb) - np.array(fa)
        print(f"family-mean AP difference {nb} − {na}: mean {diff.mean():+.3f}, sign-flip p = {signflip(diff):.2f} over {len(fams)} families")
        qd = np.array(b["aps"]) - np.array(a["aps"])
        print(f"per-query AP: {int((qd > 1e-9).sum())} better, {int((qd < -1e-9).sum())} worse, {int((abs(qd) <= 1e-9).sum())} equal of {len(qd)}")
        if a["ranks"]:
            print("classifier ranks: " + ", ".join(f"{k} {a['ranks'][k]}→{b['ranks'].get(k)}" for k in sorted(a["ranks"])))
        t = sorted(a["ndcg"])
        nd = np.array([b["ndcg"][k] - a["ndcg"][k] for k in t])
        print("NDCG@3 per target: " + ", ".join(f"{k} {a['ndcg'][k]:.2f}→{b['ndcg'][k]:.2f}" for k in t))
        print(f"NDCG@3 mean {np.mean([a['ndcg'][k] for k in t]):.3f} → {np.mean([b['ndcg'][k] for k in t]):.3f}; sign-flip p = {signflip(nd):.2f} over {len(t)} targets")


if __name__ == "__main__":
    main()
