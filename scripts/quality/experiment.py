#!/usr/bin/env python3
"""Measure task-embedding designs on the real datasets + real classifiers (issue 4).

Needs: encode.py output (<cache>/feat) and run_classifiers.sh output (<cache>/clf).
Prints a markdown table: design | nn | MAP | classifiers top-1 | per-classifier match ranks.
Writes <cache>/results/<design>.json (entries + score matrix, evaluate.py's input format).
"""
import argparse, glob, json, os, sys, time
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import methods as M
from evaluate import evaluate, rankings_from_scores, markdown_row

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CLF_FAMILY = {"vader": "sentiment", "textblob_polarity": "sentiment", "afinn_sentiment": "sentiment",
              "alt_profanity_check": "toxicity", "hatesonar_toxicity": "toxicity", "spam": "spam",
              "nrclex_emotion": "emotion", "empath_emotion": "emotion"}


def load(cache, n_probe, soft=True, bins=5):
    fd = os.path.join(cache, "feat")
    U = np.load(os.path.join(fd, "probe.npy")).astype(np.float64)[:n_probe]
    entries, tasks = [], []
    for f in sorted(glob.glob(os.path.join(fd, "*__*.npy"))):
        key = os.path.basename(f)[:-4]
        if "." in key:  # <key>.u.npy / <key>.v.npy: separate pair sides (encode_pairs.py)
            continue
        fam, name = key.split("__")
        X = np.load(f).astype(np.float64)
        lab = json.load(open(f[:-4] + ".labels.json"))["labels"]
        if isinstance(lab[0], float) or fam == "similarity":
            Q = M.targets_matrix(lab, "regression", bins=bins)
        else:
            names = sorted(set(lab))
            Q = M.targets_matrix([names.index(l) for l in lab], "classes", len(names))
        entries.append({"name": name, "kind": "dataset", "family": fam}); tasks.append((X, Q))
    for clf, fam in sorted(CLF_FAMILY.items()):
        p = os.path.join(cache, "clf", clf + ".jsonl")
        if not os.path.exists(p):
            print(f"# missing classifier output {p}", file=sys.stderr); continue
        rows = [json.loads(l) for l in open(p)][:n_probe]
        if "scores" in rows[0]:
            keys = sorted({k for r in rows for k in r["scores"]})
            S = np.array([[r["scores"].get(k, 0.0) for k in keys] for r in rows])
            if not soft:
                S = np.eye(len(keys))[S.argmax(1)]
            Q = M.targets_matrix(S, "soft")
        else:
            keys = sorted({r["label"] for r in rows})
            Q = M.targets_matrix([keys.index(r["label"]) for r in rows], "classes", len(keys))
        Q = Q[:, Q.sum(0) > 0]
        entries.append({"name": clf, "kind": "model", "family": fam}); tasks.append((U, Q))
    return U, entries, tasks


def as_dense(e):
    if isinstance(e, tuple):
        return M.dense(*e)
    return e


def unit(v):
    return v / np.linalg.norm(v)


def cos_matrix(V, ref):
    """V: list of unit-norm dense arrays; ref: array (same shape) or None."""
    A = np.stack([v.ravel() for v in V])
    if ref is not None:
        A = A - ref.ravel()[None]
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    return A @ A.T


def pseudo_tasks(U, kind, spec, params, W=None):
    """Reference pseudo-tasks from U only: k-means clusterings (kmeans) or random labels (random)."""
    out = []
    for k in spec["ks"]:
        for seed in spec["seeds"]:
            if spec["type"] == "kmeans":
                lab = M.kmeans(U, k, seed)
            else:
                lab = np.random.default_rng(seed).integers(0, k, len(U))
            Q = M.targets_matrix(lab, "classes", k)
            out.append(unit(as_dense(M.embed(kind, U, Q, params, W))))
    return np.mean(out, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache", "quality"))
    ap.add_argument("--n-probe", type=int, default=3000)
    ap.add_argument("--methods", default="textemb,scatter,fisher,tuned")
    ap.add_argument("--hard", action="store_true", help="argmax classifier scores instead of soft")
    ap.add_argument("--bins", type=int, default=5)
    ap.add_argument("--fisher-lambda", type=float, default=0.1)
    ap.add_argument("--tuned-lambda", type=float, default=1.0)
    ap.add_argument("--tuned-tau", type=float, default=10.0)
    ap.add_argument("--ref-ks", default="2,3,4,6,8,12,16,20")
    ap.add_argument("--ref-seeds", default="0,1,2")
    ap.add_argument("--centrings", default="none,live,frozen-kmeans,frozen-random")
    ap.add_argument("--tag", default="")
    ap.add_argument("--whiten", type=float, default=None,
                    help="scatter: whiten by U's covariance shrunk by this alpha (taskdb's default: 0.5)")
    a = ap.parse_args()
    params = dict(M.DEFAULTS, fisher_lambda=a.fisher_lambda, tuned_lambda=a.tuned_lambda, tuned_tau=a.tuned_tau)
    U, entries, tasks = load(a.cache, a.n_probe, soft=not a.hard, bins=a.bins)
    rd = os.path.join(a.cache, "results"); os.makedirs(rd, exist_ok=True)
    ks = [int(x) for x in a.ref_ks.split(",")]; seeds = [int(x) for x in a.ref_seeds.split(",")]
    print("| design | nn | MAP | classifiers top-1 | match ranks (" + ",".join(e["name"] for e in entries if e["kind"] == "model") + ") |")
    print("|---|---|---|---|---|")
    for kind in a.methods.split(","):
        t = time.time()
        W = M.whitening(U, a.whiten) if (a.whiten and kind == "scatter") else None
        embs = [unit(as_dense(M.embed(kind, X, Q, params, W))) for X, Q in tasks]
        t_embed = (time.time() - t) / len(tasks)
        ents = entries
        if kind == "textemb":  # label-free: identical for every model, so datasets only
            keep = [i for i, e in enumerate(entries) if e["kind"] == "dataset"]
            embs = [embs[i] for i in keep]; ents = [entries[i] for i in keep]
        for cen in a.centrings.split(","):
            if cen == "none":
                ref = None
            elif cen == "live":
                ref = np.mean(embs, 0)
            elif cen == "live-datasets":
                ref = np.mean([v for v, e in zip(embs, ents) if e["kind"] == "dataset"], 0)
            elif cen.startswith("frozen-"):
                typ = cen[len("frozen-"):]
                if kind == "textemb":
                    ref = unit(U.mean(0)) if typ == "kmeans" else None
                    if ref is None:
                        continue
                else:
                    ref = pseudo_tasks(U, kind, {"type": typ, "ks": ks, "seeds": seeds}, params, W)
            S = cos_matrix(embs, ref)
            r = evaluate(ents, rankings_from_scores(ents, S.tolist()))
            name = f"{kind}{a.tag} / {cen}"
            print(markdown_row(name, r) + f" <!-- {t_embed*1000:.0f} ms/embed -->", flush=True)
            json.dump({"entries": ents, "scores": S.tolist(), "result": r},
                      open(os.path.join(rd, f"{kind}{a.tag}__{cen}.json"), "w"))


if __name__ == "__main__":
    main()
