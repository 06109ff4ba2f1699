"""Issue 8, round 6: what a task's *label names* say, as a component beside the default.

FUTE's embeddings see labels only as a partition of the inputs: "joy/sadness/anger" and
"positive/negative" are both "some classes". A person reading a dataset reads its label names
first. This module embeds the names of an entry's classes with the surrogate itself and offers
them as a second, label-free-fitted component of one embedding:

    e = [sqrt(1 - w) * L, sqrt(w) * N]      (L: the default's unit embedding; N: unit names vector)

so that dataset-dataset and model-dataset scores are (1 - w) cos_L + w cos_N, and an entry
without informative names (a regression set, labels "0"/"1" or "LABEL_3") has N = 0.

Names -> text: '_', '-', '.', '/' become spaces, camelCase is split, lower-cased
("not_entailment" -> "not entailment", "ynQuestion" -> "yn question"). Uninformative sets:
every name numeric, or "label N" / "class N" / "LABEL_N", or a regression target.

N (one unit vector per entry), variants:
  - 'prior': sum_c pi_c e_c  (pi_c: the class's share of the entry's rows, soft for models)
  - 'set':   mean_c e_c      (every class equal)
each then centred on a frozen vector c0 and unit-normalised. c0: 'none' (0), 'U' (the mean of
U's text embeddings: label-free), 'library' (the mean N of the fitting side's datasets: fitted,
held out per split like every library statistic).
"""
import json
import os
import re

import numpy as np

_NUM = re.compile(r"^(?:label|class|lbl|cat)?\s*[-+]?\d+(?:\.\d+)?$")


def name_text(name):
    s = str(name)
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", s)
    s = re.sub(r"[_\-./]+", " ", s)
    return " ".join(s.lower().split())


def informative(names):
    texts = [name_text(n) for n in names]
    return len(texts) > 1 and not all(_NUM.match(t) for t in texts)


def entry_classes(e, data_dir, clf_dir):
    """(class names, class masses) of an entry, in the order of its Q columns; None for regression."""
    if e["kind"] == "dataset":
        if e["family"] == "similarity":
            return None
        path = os.path.join(data_dir, "datasets", e["family"], e["name"] + ".jsonl")
        labs = [json.loads(l)["label"] for l in open(path)]
        if isinstance(labs[0], float):
            return None
        names = sorted(set(map(str, labs)))
    else:
        rows = [json.loads(l) for l in open(os.path.join(clf_dir, e["name"] + ".jsonl"))]
        if "scores" in rows[0]:
            names = sorted({k for r in rows for k in r["scores"]})
            S = np.array([[r["scores"].get(k, 0.0) for k in names] for r in rows])
            keep = S.sum(0) > 0
        else:
            names = sorted({r["label"] for r in rows})
            keep = np.ones(len(names), bool)
        names = [n for n, k in zip(names, keep) if k]
    mass = np.asarray(e["Q"]).sum(0)
    assert len(mass) == len(names), (e["name"], len(mass), len(names))
    return names, mass / mass.sum()


def name_vectors(ents, data_dir, clf_dir, cache):
    """Per entry: (unit name embeddings C x d, priors C) or None (uninformative). Encoded with the
    default surrogate once and cached in <cache>/label_names.npz."""
    per = []
    for e in ents:
        c = entry_classes(e, data_dir, clf_dir)
        per.append(c if c is not None and informative(c[0]) else None)
    texts = sorted({name_text(n) for c in per if c for n in c[0]})
    path = os.path.join(cache, "label_names.npz")
    emb = {}
    if os.path.exists(path):
        z = np.load(path, allow_pickle=False)
        emb = dict(zip(z["texts"].tolist(), z["emb"]))
    todo = [t for t in texts if t not in emb]
    if todo:
        import sys
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from encode import Surrogate
        E = Surrogate(threads=2).encode(todo)
        emb.update(zip(todo, E))
        keys = sorted(emb)
        np.savez(path, texts=np.array(keys), emb=np.stack([emb[k] for k in keys]))
    out = []
    for c in per:
        if c is None:
            out.append(None)
            continue
        names, pi = c
        out.append((np.stack([emb[name_text(n)] for n in names]).astype(np.float64), pi))
    return out


def names_matrix(nv, how, dim):
    """N x d uncentred names vectors (zero rows for uninformative entries)."""
    A = np.zeros((len(nv), dim))
    for i, v in enumerate(nv):
        if v is None:
            continue
        E, pi = v
        w = pi if how == "prior" else np.full(len(pi), 1.0 / len(pi))
        m = w @ E
        A[i] = m / np.linalg.norm(m)
    return A


class NamesBlend:
    """(1-w) S_L + w cos_N over [sqrt(1-w) L, sqrt(w) N]; N centred on c0 ('none', 'U', 'library').
    An entry with N = 0 scores sqrt(1-w) S_L against named entries and S_L against unnamed ones
    (its embedding is [L, 0], unit)."""
    datasets_only = False

    def __init__(self, name, L, A, ents, centring, mu_U, ws, fallback="unit"):
        self.name, self.L, self.A, self.ents, self.centring, self.mu_U = name, L, A, ents, centring, mu_U
        self.fallback = fallback
        self.params = ws
        self.has = np.linalg.norm(A, axis=1) > 0

    def names_cos(self, train_fams):
        A = self.A
        if self.centring == "U":
            c0 = self.mu_U
        elif self.centring == "library":
            idx = [i for i, e in enumerate(self.ents) if e["kind"] == "dataset" and self.has[i]
                   and (train_fams is None or e["family"] in train_fams)]
            c0 = A[idx].mean(0)
        else:
            c0 = np.zeros(A.shape[1])
        B = np.where(self.has[:, None], A - c0, 0.0)
        n = np.linalg.norm(B, axis=1, keepdims=True)
        B = np.where(n > 0, B / np.maximum(n, 1e-300), 0.0)
        return B @ B.T

    def sim(self, train_fams, w):
        SL = self.L.sim(train_fams, None)
        SN = self.names_cos(train_fams)
        h = self.has
        both = np.outer(h, h)
        none = np.outer(~h, ~h)
        if self.fallback == "zero":
            # an unnamed entry's names component is 0 and its L part keeps the weight sqrt(1-w)
            # (its vector is not unit): every score is (1-w) S_L + w S_N with S_N = 0 for it
            return (1 - w) * SL + w * np.where(both, SN, 0.0)
        return np.where(both, (1 - w) * SL + w * SN, np.where(none, SL, np.sqrt(1 - w) * SL))


def designs(U, ents, L_by_name, data_dir, clf_dir, cache, mu_U):
    """Round-6 rows: for each base design L (a designs.GramDesign), names 'prior'/'set' x centring, w nested
    in WS, plus fixed-w rows for the 'prior, U' variant."""
    nv = name_vectors(ents, data_dir, clf_dir, cache)
    d = U.shape[1]
    out = []
    WS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    for lname, L in L_by_name.items():
        for how in ["prior", "set"]:
            A = names_matrix(nv, how, d)
            for c in ["none", "U", "library"]:
                out.append(NamesBlend(f"{lname} + names({how}, c0={c}) w nested", L, A, ents, c, mu_U, WS))
            for w in [0.2, 0.3, 0.5]:
                out.append(NamesBlend(f"{lname} + names({how}, c0=U) w={w:g}", L, A, ents, "U", mu_U, [w]))
        for how in ["prior", "set"]:
            A = names_matrix(nv, how, d)
            for w in [0.1, 0.2, 0.3]:
                out.append(NamesBlend(f"{lname} + names({how}, c0=U) w={w:g}, unnamed=0", L, A, ents, "U", mu_U, [w],
                                      fallback="zero"))
        # names alone (w = 1): what the names say by themselves
        A = names_matrix(nv, "prior", d)
        out.append(NamesBlend(f"names(prior, c0=U) alone", L, A, ents, "U", mu_U, [1.0]))
    return out


# ---------------------------------------------------------------- robustness (round 6)
def robustness(cache, data, seeds=8):
    """What happens when not every entry has informative names: the default + names blend
    (w 0.1 / 0.2, 'set' and 'prior', both fallbacks) on the real names, then (a) a random half of
    the entries unnamed (labels "0"/"1", "LABEL_k": a common case for fine-tuned models), (b) a
    random half of the two-class entries named "yes"/"no" (generic names that say nothing of the
    task). Split-half held-out figures (heldout.evaluate_split), means over `seeds` draws."""
    import heldout as H
    import designs as D
    import methods as M
    from encode import Surrogate
    U, ents = H.load(cache)
    transfer = H.load_transfer(os.path.join(data, "transfer", "taskweb_visible.csv"))
    D._FD = os.path.join(cache, "feat")
    D._DATA = data
    n = len(ents)
    mu_U = U.mean(0)
    L = D.default_design(U, ents, M.whitening(U, 0.5), D.kmeans_Qs(U))
    nv = name_vectors(ents, data, os.path.join(cache, "clfU"), cache)
    yn = Surrogate().encode(["yes", "no"]).astype(np.float64).mean(0)
    yn /= np.linalg.norm(yn)
    binary = np.array([v is not None and len(v[1]) == 2 for v in nv])

    def fig(d):
        h = H.evaluate_split(d, ents, transfer)
        return h["nn"], h["map"], h["clf_share"] * h["clf_of"], h["ndcg"]

    def line(name, f):
        print(f"| {name} | {f[0]:.2f} | {f[1]:.3f} | {f[2]:.1f} | {f[3]:.3f} |", flush=True)

    print("| design (held out, split-half) | nn | MAP | clf (of 8) | NDCG@3 |\n|---|---|---|---|---|")
    line("default (no names)", fig(L))
    for how in ["set", "prior"]:
        A0 = names_matrix(nv, how, U.shape[1])
        for w in [0.1, 0.2]:
            for fb in ["unit", "zero"]:
                tag = f"default + names({how}) w={w:g}, unnamed entries {'[L, 0] unit' if fb == 'unit' else 'scaled sqrt(1-w)'}"
                line(f"{tag}: every entry named", fig(NamesBlend("x", L, A0, ents, "U", mu_U, [w], fallback=fb)))
                R1, R2 = [], []
                for seed in range(seeds):
                    rng = np.random.default_rng(100 + seed)
                    A = A0.copy()
                    A[rng.random(n) < 0.5] = 0
                    R1.append(fig(NamesBlend("x", L, A, ents, "U", mu_U, [w], fallback=fb)))
                    A = A0.copy()
                    A[binary & (rng.random(n) < 0.5)] = yn
                    R2.append(fig(NamesBlend("x", L, A, ents, "U", mu_U, [w], fallback=fb)))
                line(f"{tag}: half the entries unnamed (mean of {seeds})", np.mean(R1, 0))
                line(f"{tag}: half the two-class entries named yes/no (mean of {seeds})", np.mean(R2, 0))


if __name__ == "__main__":
    import argparse
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap = argparse.ArgumentParser(description="issue 8 round 6: label names beside the default, robustness")
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache", "quality"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--seeds", type=int, default=8)
    a = ap.parse_args()
    robustness(a.cache, a.data, a.seeds)
