#!/usr/bin/env python3
"""Held-out-by-family evaluation of task-embedding designs (issue 8).

Every statistic that is fitted on datasets (a reference library's mean, a blend weight) is fitted
only on datasets of *other* task families than the query's: for each outer fold F (a family),
queries are F's datasets and the classifiers of F, the reference / parameters come from the
datasets of the remaining families (nested: a parameter is chosen by an inner leave-one-family-out
run over the remaining families only). Statistics built from the probe set U alone (k-means
pseudo-tasks, U's mean feature, whitening by U) hold no dataset and are not in-sample; the
choice *between* designs was still made on these figures (say so when quoting them).

Needs encode.py's features (<cache>/feat: the 33 datasets and probe_default = taskdb's U) and the
classifiers' labels of taskdb's U (<cache>/clfU, run_classifiers.sh over probe_default.jsonl).

Metrics: nn (1-NN family accuracy over datasets with a family-mate), MAP (same-family retrieval),
clf (classifiers whose nearest dataset is of their family), and transfer-source ranking against
../shared/data/transfer/taskweb_visible.csv (NDCG@3, Regret@3, Spearman; random in the same table).
"""
import argparse, glob, itertools, json, os, sys, time
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import methods as M

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CLF_FAMILY = {"vader": "sentiment", "textblob_polarity": "sentiment", "afinn_sentiment": "sentiment",
              "alt_profanity_check": "toxicity", "hatesonar_toxicity": "toxicity", "spam": "spam",
              "nrclex_emotion": "emotion", "empath_emotion": "emotion"}


# ---------------------------------------------------------------- data
def load(cache, bins=5):
    fd = os.path.join(cache, "feat")
    U = np.load(os.path.join(fd, "probe_default.npy")).astype(np.float64)
    ents = []
    for f in sorted(glob.glob(os.path.join(fd, "*__*.npy"))):
        key = os.path.basename(f)[:-4]
        if "." in key:
            continue
        fam, name = key.split("__")
        X = np.load(f).astype(np.float64)
        meta = json.load(open(f[:-4] + ".labels.json"))
        lab = meta["labels"]
        if isinstance(lab[0], float) or fam == "similarity":
            Q = M.targets_matrix(lab, "regression", bins=bins)
        else:
            names = sorted(set(lab))
            Q = M.targets_matrix([names.index(l) for l in lab], "classes", len(names))
        ents.append(dict(name=name, kind="dataset", family=fam, X=X, Q=Q, pair=meta["pair"]))
    for clf, fam in sorted(CLF_FAMILY.items()):
        p = os.path.join(cache, "clfU", clf + ".jsonl")
        if not os.path.exists(p):
            print(f"# missing classifier output {p}", file=sys.stderr)
            continue
        rows = [json.loads(l) for l in open(p)]
        assert len(rows) == len(U), (p, len(rows))
        if "scores" in rows[0]:
            keys = sorted({k for r in rows for k in r["scores"]})
            S = np.array([[r["scores"].get(k, 0.0) for k in keys] for r in rows])
            Q = M.targets_matrix(S, "soft")
        else:
            keys = sorted({r["label"] for r in rows})
            Q = M.targets_matrix([keys.index(r["label"]) for r in rows], "classes", len(keys))
        Q = Q[:, Q.sum(0) > 0]
        ents.append(dict(name=clf, kind="model", family=fam, X=U, Q=Q, pair=False))
    return U, ents


def load_transfer(path):
    import csv
    out = {}
    for r in csv.DictReader(open(path)):
        out.setdefault(r["target"], {})[r["source"]] = float(r["combined_score"])
    return out


# ---------------------------------------------------------------- embeddings as Gram matrices
# Every design is reduced to a Gram matrix G (N x N inner products of the entries' embeddings,
# each embedding unit-normalised) plus, where a design is centred, the Gram rows of reference
# embeddings. Centring by a mean r of unit embeddings R: <e_i - r, e_j - r>.

def lowrank(e):
    return e  # (U, s)


def gram_lowrank(embs):
    n = len(embs)
    G = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            G[i, j] = G[j, i] = M.lowrank_inner(embs[i], embs[j])
    d = np.sqrt(np.diag(G))
    return G / np.outer(d, d)


def gram_dense(V):
    A = np.stack([v.ravel() for v in V])
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    return A @ A.T


def centred_cos(G, ref_idx):
    """Cosine after centring every entry on the mean of the (unit) embeddings ref_idx.
    G includes the reference rows; returns the centred cosine matrix over all rows."""
    if ref_idx is None or len(ref_idx) == 0:
        return G
    ref_idx = np.asarray(ref_idx)
    a = G[:, ref_idx].mean(1)
    c = G[np.ix_(ref_idx, ref_idx)].mean()
    C = G - a[:, None] - a[None, :] + c
    d = np.sqrt(np.maximum(np.diag(C), 1e-300))
    return C / np.outer(d, d)


# ---------------------------------------------------------------- metrics
def rank_lists(S, ents, pool):
    """For each entry i: the datasets of pool (indices) other than i, best first."""
    out = {}
    for i in range(len(ents)):
        cand = [j for j in pool if j != i and ents[j]["kind"] == "dataset"]
        cand.sort(key=lambda j: (-S[i, j], ents[j]["name"]))
        out[i] = cand
    return out


def retrieval_metrics(S, ents, queries, pool, datasets_only=False):
    fam = [e["family"] for e in ents]
    if datasets_only:
        queries = [i for i in queries if ents[i]["kind"] == "dataset"]
    rl = rank_lists(S, ents, pool)
    nn, aps, clf, ranks = [], [], [], {}
    for i in queries:
        ranked = rl[i]
        rel = [fam[j] == fam[i] for j in ranked]
        if ents[i]["kind"] == "dataset":
            if not any(rel):
                continue
            nn.append(rel[0])
            found, ap = 0, 0.0
            for k, r in enumerate(rel, 1):
                if r:
                    found += 1
                    ap += found / k
            aps.append(ap / found)
        else:
            clf.append(rel[0])
            ranks[ents[i]["name"]] = (rel.index(True) + 1) if any(rel) else None
    return nn, aps, clf, ranks


def ndcg_at(scores_true, order, k=3):
    rel = {s: v - min(scores_true.values()) for s, v in scores_true.items()}
    dcg = sum(rel[s] / np.log2(r + 2) for r, s in enumerate(order[:k]))
    ideal = sorted(rel.values(), reverse=True)
    idcg = sum(v / np.log2(r + 2) for r, v in enumerate(ideal[:k]))
    return dcg / idcg if idcg > 0 else 0.0


def spearman(a, b):
    ra = np.argsort(np.argsort(a)); rb = np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def transfer_metrics(S, ents, transfer):
    idx = {e["name"]: i for i, e in enumerate(ents)}
    nd, rg, sp = [], [], []
    for t, cands in transfer.items():
        if t not in idx or any(c not in idx for c in cands):
            continue
        names = sorted(cands)
        sims = [S[idx[t], idx[c]] for c in names]
        order = [names[j] for j in np.argsort(-np.array(sims), kind="stable")]
        nd.append(ndcg_at(cands, order))
        true = sorted(cands.values(), reverse=True)
        rg.append(np.mean(true[:3]) - np.mean([cands[s] for s in order[:3]]))
        sp.append(spearman(sims, [cands[c] for c in names]))
    return float(np.mean(nd)), float(np.mean(rg)), float(np.mean(sp))


def random_transfer(transfer, reps=2000, seed=0):
    rng = np.random.default_rng(seed)
    nd, rg = [], []
    for t, cands in transfer.items():
        names = sorted(cands)
        true = sorted(cands.values(), reverse=True)
        for _ in range(reps):
            order = list(rng.permutation(names))
            nd.append(ndcg_at(cands, order))
            rg.append(np.mean(true[:3]) - np.mean([cands[s] for s in order[:3]]))
    return float(np.mean(nd)), float(np.mean(rg)), 0.0


# ---------------------------------------------------------------- folds
def outer_families(ents):
    """Families that have something to query: >= 2 datasets, or a classifier."""
    fams = {}
    for e in ents:
        fams.setdefault(e["family"], []).append(e)
    out = []
    for f, es in sorted(fams.items()):
        nd = sum(e["kind"] == "dataset" for e in es)
        nm = sum(e["kind"] == "model" for e in es)
        if nd >= 2 or (nm >= 1 and nd >= 1):
            out.append(f)
    return out


def summarise(nn, aps, clf):
    return dict(nn=float(np.mean(nn)) if nn else float("nan"), map=float(np.mean(aps)) if aps else float("nan"),
                clf=int(sum(clf)), nclf=len(clf), nq=len(nn))


def objective(r):
    """Inner-CV selection criterion: mean of nn, MAP and the classifier share."""
    parts = [r["nn"], r["map"]] + ([r["clf"] / r["nclf"]] if r["nclf"] else [])
    return float(np.nanmean(parts))


# ---------------------------------------------------------------- designs
class Design:
    """A design produces, for a set of 'training' families (None = all), a similarity matrix over
    the entries. `params` is a list of candidate parameter values chosen by nested CV."""
    name = "?"
    params = [None]
    uses_library = False  # True when a statistic is fitted on datasets

    def sim(self, train_fams, p):
        raise NotImplementedError


def evaluate_design(d, ents, transfer):
    N = len(ents)
    fams = outer_families(ents)
    all_fams = sorted({e["family"] for e in ents})
    # in-sample: every parameter, reference from all datasets
    ins = {}
    for p in d.params:
        S = d.sim(None, p)
        nn, aps, clf, ranks = retrieval_metrics(S, ents, range(N), range(N), d.datasets_only)
        ins[p] = (summarise(nn, aps, clf), S, ranks)
    # held out by family (nested when there are parameters)
    NN, AP, CL, RK, chosen = [], [], [], {}, {}
    S_tr = np.zeros((N, N))
    for F in fams:
        train = [f for f in all_fams if f != F]
        if len(d.params) > 1:
            best, bestv = None, -1
            inner_pool = [i for i in range(N) if ents[i]["family"] != F]
            for p in d.params:
                vals = []
                for G in [f for f in outer_families([ents[i] for i in inner_pool])]:
                    tr2 = [f for f in train if f != G]
                    S = d.sim(tr2, p)
                    q = [i for i in inner_pool if ents[i]["family"] == G]
                    vals.append(summarise(*retrieval_metrics(S, ents, q, inner_pool, d.datasets_only)[:3]))
                agg = dict(nn=np.nanmean([v["nn"] for v in vals]), map=np.nanmean([v["map"] for v in vals]),
                           clf=sum(v["clf"] for v in vals), nclf=sum(v["nclf"] for v in vals))
                o = objective(agg)
                if o > bestv + 1e-12:
                    best, bestv = p, o
            p = best
        else:
            p = d.params[0]
        chosen[F] = p
        S = d.sim(train, p)
        q = [i for i in range(N) if ents[i]["family"] == F]
        nn, aps, clf, ranks = retrieval_metrics(S, ents, q, range(N), d.datasets_only)
        NN += nn; AP += aps; CL += clf; RK.update(ranks)
    ho = summarise(NN, AP, CL)
    # transfer: targets' own family is held out too (the six are nli, paraphrase, sentiment,
    # similarity: use the parameter chosen for the target's family, or the in-sample one)
    if len(d.params) > 1:
        # held-out transfer: each target scored with a reference/parameter fitted without its family
        idx = {e["name"]: i for i, e in enumerate(ents)}
        S_t = np.zeros((N, N))
        for t in [t for t in transfer if t in idx]:
            F = ents[idx[t]]["family"]
            p = chosen.get(F, d.params[0])
            S = d.sim([f for f in all_fams if f != F], p)
            S_t[idx[t]] = S[idx[t]]
    else:
        idx = {e["name"]: i for i, e in enumerate(ents)}
        S_t = np.zeros((N, N))
        for t in [t for t in transfer if t in idx]:
            F = ents[idx[t]]["family"]
            S = d.sim([f for f in all_fams if f != F], d.params[0])
            S_t[idx[t]] = S[idx[t]]
    tr = transfer_metrics(S_t, ents, transfer) if transfer else (float("nan"),) * 3
    return dict(heldout=ho, insample={str(k): v[0] for k, v in ins.items()}, chosen={k: str(v) for k, v in chosen.items()},
                ranks=RK, transfer=tr)


def evaluate_split(d, ents, transfer, splits=24, seed=0):
    """Held out by family, split-half: each split puts a random half A of the task families on
    the fitting side (a library reference, a chosen parameter) and scores only queries of the
    other half B, retrieving among B's entries (so the distractors are unseen too). Parameters
    are chosen on A alone (queries of A in A's pool). Returns pooled query-level means."""
    rng = np.random.default_rng(seed)
    fams = sorted({e["family"] for e in ents})
    NN, AP, CL, ND, RG, SP = [], [], [], [], [], []
    chosen = []
    idx = {e["name"]: i for i, e in enumerate(ents)}
    for _ in range(splits):
        perm = list(rng.permutation(fams))
        A = set(perm[: len(fams) // 2]); B = set(perm[len(fams) // 2:])
        pa = [i for i, e in enumerate(ents) if e["family"] in A]
        pb = [i for i, e in enumerate(ents) if e["family"] in B]
        if len(d.params) > 1:
            best, bestv = d.params[0], -1
            for p in d.params:
                r = summarise(*retrieval_metrics(d.sim(sorted(A), p), ents, pa, pa, d.datasets_only)[:3])
                o = objective(r)
                if o > bestv + 1e-12:
                    best, bestv = p, o
            p = best
        else:
            p = d.params[0]
        chosen.append(p)
        S = d.sim(sorted(A), p)
        nn, aps, clf, _ = retrieval_metrics(S, ents, pb, pb, d.datasets_only)
        NN += nn; AP += aps; CL += clf
        tb = {t: c for t, c in transfer.items() if t in idx and ents[idx[t]]["family"] in B}
        if tb:
            nd, rg, sp = transfer_metrics(S, ents, tb)
            ND += [nd] * len(tb); RG += [rg] * len(tb); SP += [sp] * len(tb)
    ncl = sum(e["kind"] == "model" for e in ents)
    return dict(nn=float(np.mean(NN)), map=float(np.mean(AP)), clf_share=float(np.mean(CL)) if CL else float("nan"),
                clf_of=ncl, ndcg=float(np.mean(ND)), regret=float(np.mean(RG)), spearman=float(np.mean(SP)),
                chosen=sorted({str(c) for c in chosen}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache", "quality"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--designs", default="all")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    U, ents = load(a.cache)
    transfer = load_transfer(os.path.join(a.data, "transfer", "taskweb_visible.csv"))
    import designs as D
    D._FD = os.path.join(a.cache, "feat")
    D._DATA = a.data
    ds = D.build(U, ents, a.designs)
    print(f"# {sum(e['kind']=='dataset' for e in ents)} datasets, {sum(e['kind']=='model' for e in ents)} classifiers; "
          f"folds: {', '.join(outer_families(ents))}")
    rnd = random_transfer(transfer)
    print("| design | held-out nn | MAP | clf (of 8) | NDCG@3 | Regret@3 | Spearman | all-data nn | MAP | clf | NDCG@3 | chosen |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| random | | | | {rnd[0]:.3f} | {rnd[1]:.4f} | 0 | | | | {rnd[0]:.3f} | |")
    res = {}
    for d in ds:
        t = time.time()
        h = evaluate_split(d, ents, transfer)
        # all data: every statistic fitted on every dataset (in-sample where anything is fitted)
        best_p, best_r = None, None
        for p in d.params:
            S = d.sim(None, p)
            r = summarise(*retrieval_metrics(S, ents, range(len(ents)), range(len(ents)), d.datasets_only)[:3])
            r["transfer"] = transfer_metrics(S, ents, transfer)
            if best_r is None or objective(r) > objective(best_r):
                best_p, best_r = p, r
        res[d.name] = dict(heldout=h, all_data=best_r, all_data_param=str(best_p))
        clf = f"{h['clf_share'] * h['clf_of']:.1f}" if not d.datasets_only else "n/a"
        ch = ",".join(h["chosen"]) if len(d.params) > 1 else ""
        print(f"| {d.name} | {h['nn']:.2f} | {h['map']:.3f} | {clf} | {h['ndcg']:.3f} | {h['regret']:.4f} | {h['spearman']:.2f} | "
              f"{best_r['nn']:.2f} | {best_r['map']:.3f} | {best_r['clf']}/{best_r['nclf']} | {best_r['transfer'][0]:.3f} | {ch} |"
              f" <!-- {time.time()-t:.0f}s -->", flush=True)
    if a.out:
        json.dump(res, open(a.out, "w"), indent=1, default=str)


if __name__ == "__main__":
    main()
