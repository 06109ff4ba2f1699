"""Candidate designs for heldout.py (issue 8). Each yields a Gram matrix of unit embeddings over
the entries (plus label-free reference pseudo-tasks built from U alone), and is centred per fold.
"""
import json
import os

import numpy as np
import methods as M

import os as _os
# k-means pseudo-task spec of the label-free reference; taskdb's ReferenceSpec default is 8,12,16,20
KM_SPEC = dict(ks=[int(k) for k in _os.environ.get("HELDOUT_KS", "8,12,16,20").split(",")], seeds=[0, 1, 2])


def unit_lr(e):
    U, s = e
    return U, s / np.linalg.norm(s)


def gram_lr(embs):
    n = len(embs)
    G = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            G[i, j] = G[j, i] = M.lowrank_inner(embs[i], embs[j])
    d = np.sqrt(np.maximum(np.diag(G), 1e-300))
    return G / np.outer(d, d)


def gram_vec(V):
    A = np.stack([np.ravel(v) for v in V])
    A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-300)
    return A @ A.T


def centre(G, ref_idx):
    if ref_idx is None or len(ref_idx) == 0:
        return G
    ref_idx = np.asarray(ref_idx)
    a = G[:, ref_idx].mean(1)
    c = G[np.ix_(ref_idx, ref_idx)].mean()
    C = G - a[:, None] - a[None, :] + c
    d = np.sqrt(np.maximum(np.diag(C), 1e-300))
    return C / np.outer(d, d)


class GramDesign:
    """Entries' embeddings + optional reference pseudo-tasks in one Gram; centring:
    'none' | 'kmeans' (mean of U's k-means pseudo-tasks, label-free) | 'library' (mean of the
    training families' datasets: fitted on data, held out per fold)."""
    params = [None]
    datasets_only = False

    def __init__(self, name, G, n, ents, centring, n_ref=0, datasets_only=False):
        self.name, self.G, self.n, self.ents, self.centring = name, G, n, ents, centring
        self.n_ref = n_ref
        self.datasets_only = datasets_only

    def sim(self, train_fams, p):
        n = self.n
        if self.centring == "none":
            C = self.G
        elif self.centring == "kmeans":
            C = centre(self.G, list(range(n, n + self.n_ref)))
        elif self.centring == "library":
            idx = [i for i, e in enumerate(self.ents) if e["kind"] == "dataset"
                   and (train_fams is None or e["family"] in train_fams)]
            C = centre(self.G, idx)
        else:
            raise ValueError(self.centring)
        return C[:n, :n]


class Blend:
    """Label component L (a GramDesign) and input component I (textemb centred on U's mean, a
    unit vector; zero for models): embedding [sqrt(1-w) L, sqrt(w) I]. Dataset-dataset:
    (1-w) cos_L + w cos_I; a model is compared by cos_L alone (scaled by sqrt(1-w), monotone).
    w chosen by nested CV over the listed values."""
    datasets_only = False

    def __init__(self, name, L, I, ents, ws):
        self.name, self.L, self.I, self.ents, self.params = name, L, I, ents, ws

    def sim(self, train_fams, w):
        SL = self.L.sim(train_fams, None)
        SI = self.I.sim(train_fams, None)
        isd = np.array([e["kind"] == "dataset" for e in self.ents])
        both = np.outer(isd, isd)
        one = np.logical_xor.outer(isd, isd)
        return np.where(both, (1 - w) * SL + w * SI, np.where(one, np.sqrt(1 - w) * SL, SL))


class ParamGram:
    """One GramDesign per parameter value (chosen by nested CV)."""
    datasets_only = False

    def __init__(self, name, by_param):
        self.name, self.by, self.params = name, by_param, list(by_param)

    def sim(self, train_fams, p):
        return self.by[p].sim(train_fams, None)


def scatter_input(X, Q, mu_U, gamma, W=None):
    """Scatter whose factor gains one column gamma * (mean(X) - mean(U)): what the inputs are,
    beside what the labels do (a model's inputs are U, so its extra column is zero)."""
    n = X.shape[0]
    mu = X.mean(0)
    w = Q.sum(0)
    pi = w / n
    means = (Q.T @ X) / w[:, None]
    Mx = ((means - mu) * np.sqrt(pi)[:, None]).T
    Mx = np.concatenate([Mx, gamma * (mu - mu_U)[:, None]], 1)
    if W is not None:
        Mx = W @ Mx
    return M._sym_lowrank_from_factor(Mx)


def head_probs(X, Q, U, lam, iters=300):
    d = X.shape[1]
    Xs = X * np.sqrt(d)
    W, b, _ = M.fit_softmax_head(Xs, Q, lam, iters)
    Z = (U * np.sqrt(d)) @ W.T + b
    Z -= Z.max(1, keepdims=True)
    P = np.exp(Z)
    return P / P.sum(1, keepdims=True)


def kmeans_Qs(U):
    out = []
    for k in KM_SPEC["ks"]:
        for seed in KM_SPEC["seeds"]:
            lab = M.kmeans(U, k, seed)
            out.append(M.targets_matrix(lab, "classes", k))
    return out


def cka_factor(P, sqrt=False, weighted=False):
    """Centred label kernel K = A A^T on U, A = H P (columns optionally scaled by 1/sqrt(pi_c)).
    sqrt: K^(1/2) (equalises the classes' weight, like S_B^(1/2))."""
    A = P - P.mean(0)
    if weighted:
        A = A / np.sqrt(np.maximum(P.mean(0), 1e-12))
    if sqrt:
        return unit_lr(M._sym_lowrank_from_factor(A))
    # K = A A^T as (U, s) with s = squared singular values
    Uu, sv, _ = np.linalg.svd(A, full_matrices=False)
    keep = sv > sv.max() * 1e-9
    return unit_lr((Uu[:, keep], sv[keep] ** 2))


_cache = {}


def build(U, ents, which="all"):
    n = len(ents)
    out = []
    want = None if which == "all" else set(which.split(","))

    def on(name):
        return want is None or name in want or any(name.startswith(w.rstrip("*")) for w in want if w.endswith("*"))

    kmQ = kmeans_Qs(U)
    # ---- textemb
    mu_U = U.mean(0)
    te = [e["X"].mean(0) for e in ents]
    G_te_u = gram_vec([v - mu_U for v in te])
    G_te = gram_vec(te)
    if on("textemb"):
        out.append(GramDesign("textemb (no centring)", G_te, n, ents, "none", datasets_only=True))
        out.append(GramDesign("textemb - U mean", G_te_u, n, ents, "none", datasets_only=True))
        out.append(GramDesign("textemb, library-centred", G_te, n, ents, "library", datasets_only=True))
    I = GramDesign("textemb - U mean", G_te_u, n, ents, "none", datasets_only=True)

    W = M.whitening(U, 0.5)
    grams = {}
    # ---- scatter (plain / whitened)
    for tag, Wm in [("scatter", None), ("scatter-whitened", W)]:
        if not (on(tag) or on("blend")):
            continue
        embs = [unit_lr(M.scatter(e["X"], e["Q"], Wm)) for e in ents]
        refs = [unit_lr(M.scatter(U, q, Wm)) for q in kmQ]
        G = gram_lr(embs + refs)
        grams[tag] = G
        if on(tag):
            for c in ["none", "kmeans", "library"]:
                out.append(GramDesign(f"{tag}, {c}", G, n, ents, c, n_ref=len(refs)))
    # ---- fisher
    if on("fisher"):
        embs = [unit_lr(M.fisher(e["X"], e["Q"])) for e in ents]
        G = gram_lr(embs)
        for c in ["none", "library"]:
            out.append(GramDesign(f"fisher, {c}", G, n, ents, c))
    # ---- heads on U: a dataset labels U through a head fitted on its own features
    for lam in [0.1, 1.0]:
        tag = f"headU(l={lam:g})"
        if not on("headU"):
            continue
        Ps = []
        for e in ents:
            if e["kind"] == "model":
                Ps.append(e["Q"])
            else:
                key = (e["name"], lam)
                if key not in _cache:
                    _cache[key] = head_probs(e["X"], e["Q"], U, lam)
                Ps.append(_cache[key])
        kmP = kmQ
        for sub, f in [("cka", lambda P: cka_factor(P)), ("cka-sqrt", lambda P: cka_factor(P, sqrt=True)),
                       ("cka-w-sqrt", lambda P: cka_factor(P, sqrt=True, weighted=True)),
                       ("scatterU", lambda P: unit_lr(M.scatter(U, P, None))),
                       ("scatterU-whitened", lambda P: unit_lr(M.scatter(U, P, W)))]:
            embs = [f(P) for P in Ps]
            refs = [f(q) for q in kmP]
            G = gram_lr(embs + refs)
            grams[f"{tag} {sub}"] = G
            if on("headU"):
                for c in ["none", "kmeans", "library"]:
                    out.append(GramDesign(f"{tag} {sub}, {c}", G, n, ents, c, n_ref=len(refs)))
    if on("pairs") or on("pairblend"):
        fd = _FD
        def pairX(e, how):
            if e["kind"] != "dataset" or not e["pair"]:
                return e["X"]
            key = f"{e['family']}__{e['name']}"
            u = np.load(os.path.join(fd, key + ".u.npy")).astype(np.float64)
            v = np.load(os.path.join(fd, key + ".v.npy")).astype(np.float64)
            Z = {"diff": u - v, "prod": u * v, "absdiff": np.abs(u - v), "joint+diff": e["X"] + (u - v),
                 "hyp": v}[how]
            return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        for how in (["diff", "prod", "absdiff", "joint+diff", "hyp"] if on("pairs") else ["absdiff"]):
            for tag, Wm in [("scatter", None), ("scatter-whitened", W)]:
                embs = [unit_lr(M.scatter(pairX(e, how), e["Q"], Wm)) for e in ents]
                refs = [unit_lr(M.scatter(U, q, Wm)) for q in kmQ]
                G = gram_lr(embs + refs)
                grams[f"{tag} pairs={how}"] = G
                for c in ["kmeans", "library"]:
                    out.append(GramDesign(f"{tag} pairs={how}, {c}", G, n, ents, c, n_ref=len(refs)))
    if on("scatter+input"):
        for c in ["kmeans", "library", "none"]:
            by = {}
            for g in [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]:
                embs = [unit_lr(scatter_input(e["X"], e["Q"], mu_U, g if e["kind"] == "dataset" else 0.0)) for e in ents]
                refs = [unit_lr(M.scatter(U, q, None)) for q in kmQ]
                by[g] = GramDesign(f"g={g}", gram_lr(embs + refs), n, ents, c, n_ref=len(refs))
            out.append(ParamGram(f"scatter+input column, {c}", by))
    if on("round3") or any(on(k) for k in R3_KEYS):
        out += round3(U, ents, W, kmQ, mu_U, on)
    if on("names"):
        # issue 8, round 6: the default beside its label names (scripts/quality/label_names.py)
        import label_names as LN
        base = {"default": default_design(U, ents, W, kmQ)}
        out += LN.designs(U, ents, base, _DATA, os.path.join(_FD, "..", "clfU"), os.path.join(_FD, ".."), mu_U)
    if on("blend") or on("pairblend"):
        ws = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
        for key, c in [("scatter", "kmeans"), ("scatter", "library"), ("scatter-whitened", "kmeans"),
                       ("headU(l=0.1) cka-sqrt", "none"), ("headU(l=0.1) cka-sqrt", "kmeans"),
                       ("headU(l=0.1) scatterU", "kmeans"), ("headU(l=1) cka-sqrt", "kmeans"),
                       ("scatter-whitened pairs=absdiff", "kmeans"), ("scatter-whitened pairs=absdiff", "library"),
                       ("scatter-whitened pairs=diff", "kmeans")]:
            if key not in grams:
                continue
            L = GramDesign(key, grams[key], n, ents, c, n_ref=len(kmQ))
            out.append(Blend(f"blend({key}, {c}; textemb-U)", L, I, ents, ws))
    return out


# ---------------------------------------------------------------- issue 8, round 3 (2026-12-06)
# Small, label-free changes of the shipped default `scatter-whitened pairs=absdiff, kmeans`
# (whitened scatter, pair datasets featurised as |h(a) - h(b)| of the two texts encoded alone,
# centred on the frozen mean of U's k-means pseudo-tasks). Nothing here is fitted on datasets,
# and nothing is chosen on the evaluation: every fixed weight is its own row.
# Select with --designs round3 (all of them) or by the names in brackets, e.g. r3-default.

R3_KEYS = ["r3-default", "r3-prod", "r3-cat", "r3-sum", "r3-blend", "r3-balanced", "r3-spectrum",
           "r3-prod-balanced", "r3-abstain"]
# Where the pair sides (.u.npy / .v.npy) are read: heldout.py sets it to <its --cache>/feat.
_FD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".cache", "quality", "feat")
# The shared data dir (label names of the datasets): heldout.py sets it to its --data.
_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data")


def default_design(U, ents, W, kmQ):
    """The shipped default (scatter-whitened pairs=absdiff, centred on U's k-means pseudo-tasks)
    as a GramDesign; the same figures as the `r3-default` row and `scatter-whitened pairs=absdiff,
    kmeans`."""
    embs = [unit_lr(M.scatter(pair_features(e, "absdiff"), e["Q"], W)) for e in ents]
    refs = [unit_lr(M.scatter(U, q, W)) for q in kmQ]
    return GramDesign("default", gram_lr(embs + refs), len(ents), ents, "kmeans", n_ref=len(refs))


def _unit_rows(Z):
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def pair_sides(e):
    """The two sides of a pair dataset, each encoded alone (encode_pairs.py), as float64."""
    key = f"{e['family']}__{e['name']}"
    u = np.load(os.path.join(_FD, key + ".u.npy")).astype(np.float64)
    v = np.load(os.path.join(_FD, key + ".v.npy")).astype(np.float64)
    return u, v


def pair_features(e, how):
    """Features of an entry for the round-3 designs. Single-text datasets and models: X (in
    the 'cat' designs, [x, x]/sqrt 2, so that their mutual scores are unchanged exactly).
    Pair datasets: absdiff |a-b|, prod a*b, sum = unit(unit|a-b| + unit(a*b)) (384-d), cat =
    [unit|a-b|, unit(a*b)]/sqrt 2 (768-d); every row unit."""
    cat = how == "cat"
    if e["kind"] != "dataset" or not e["pair"]:
        X = e["X"]
        return np.concatenate([X, X], 1) / np.sqrt(2) if cat else X
    u, v = pair_sides(e)
    A = _unit_rows(np.abs(u - v))
    P = _unit_rows(u * v)
    if how == "absdiff":
        return A
    if how == "prod":
        return P
    if how == "sum":
        return _unit_rows(A + P)
    if how == "cat":
        return np.concatenate([A, P], 1) / np.sqrt(2)
    raise ValueError(how)


def scatter_balanced(X, Q, W=None, beta=0.0):
    """Scatter with examples of class c weighted by pi_c^(-beta): class masses pi'_c ~ pi_c^(1-beta),
    mean mu' = sum pi'_c m_c, M = [sqrt(pi'_c) (m_c - mu')]. beta 0 = M.scatter exactly (mu' = mean
    of X for hard or soft targets); 0.5 = labels weighted by 1/sqrt(prior); 1 = every class equal."""
    n = X.shape[0]
    w = Q.sum(0)
    pi = w / n
    means = (Q.T @ X) / w[:, None]
    pw = pi ** (1.0 - beta)
    pw = pw / pw.sum()
    mu = pw @ means
    Mx = ((means - mu) * np.sqrt(pw)[:, None]).T
    if W is not None:
        Mx = W @ Mx
    return M._sym_lowrank_from_factor(Mx)


def round3(U, ents, W, kmQ, mu_U, on):
    n = len(ents)
    out = []
    W2 = np.kron(np.eye(2), W)  # block-diagonal whitening for the 768-d 'cat' features

    def sel(key):
        return on("round3") or on(key)

    def kmeans_design(name, feats, Wm, beta=0.0, Uref=U, spectrum=0.5, Qs=None):
        def emb(X, Q):
            Ue, s = scatter_balanced(X, Q, Wm, beta)  # S_B^(1/2): eigenvalues s; S_B^p: s^(2p)
            return unit_lr((Ue, s ** (2 * spectrum)))
        Qs = Qs or [e["Q"] for e in ents]
        embs = [emb(f, q) for f, q in zip(feats, Qs)]
        refs = [emb(Uref, q) for q in kmQ]
        return GramDesign(name, gram_lr(embs + refs), n, ents, "kmeans", n_ref=len(refs))

    feats = {}

    def F(how):
        if how not in feats:
            feats[how] = [pair_features(e, how) for e in ents]
        return feats[how]

    default = None
    if sel("r3-default") or sel("r3-blend"):
        # [r3-default] the shipped default, recomputed here (must equal `scatter-whitened pairs=absdiff, kmeans`)
        default = kmeans_design("r3 default: scatter-whitened pairs=absdiff, kmeans", F("absdiff"), W)
        if sel("r3-default"):
            out.append(default)
    if sel("r3-prod"):
        # [r3-prod] (b) the default with pairs=prod
        out.append(kmeans_design("r3 (b) scatter-whitened pairs=prod, kmeans", F("prod"), W))
    if sel("r3-cat"):
        # [r3-cat] (a) pair features [unit|a-b|, unit(a*b)]/sqrt2, whitened block-diagonally; singles [x,x]/sqrt2
        Ucat = np.concatenate([U, U], 1) / np.sqrt(2)
        out.append(kmeans_design("r3 (a) scatter-whitened pairs=cat(absdiff,prod), kmeans", F("cat"), W2, Uref=Ucat))
    if sel("r3-sum"):
        # [r3-sum] (a') the same two features summed in 384-d: unit(unit|a-b| + unit(a*b))
        out.append(kmeans_design("r3 (a') scatter-whitened pairs=sum(absdiff,prod), kmeans", F("sum"), W))
    if sel("r3-blend"):
        # [r3-blend] (c) [sqrt(1-w) L, sqrt(w) I]: L = the default (k-means-centred, unit), I = unit W (mean(X) - mean(U))
        # (the joint-encoded mean for pair datasets, as taskdb's textemb; zero for models). Fixed w, one row each.
        Iw = gram_vec([W @ (e["X"].mean(0) - mu_U) for e in ents])
        I = GramDesign("textemb-U whitened", Iw, n, ents, "none", datasets_only=True)
        for w in [0.1, 0.2, 0.3]:
            out.append(Blend(f"r3 (c) default + w={w:g} whitened textemb-U", default, I, ents, [w]))
    if sel("r3-balanced"):
        # [r3-balanced] (d) classes reweighted: examples of class c weighted by pi_c^-beta (datasets, models
        # and the k-means pseudo-tasks alike)
        for beta in [0.5, 1.0]:
            out.append(kmeans_design(f"r3 (d) default, class weights pi^-{beta:g}", F("absdiff"), W, beta=beta))
    if sel("r3-spectrum"):
        # [r3-spectrum] (d') the default embedded as S_B^p instead of S_B^(1/2): p = 1/4 flattens the spectrum
        # (a many-class task's minor directions count more against a two-class task's single one), p = 0
        # is the projector onto the between-class span. Added after seeing rows (d): nrclex still missed.
        for p in [0.25, 0.0]:
            out.append(kmeans_design(f"r3 (d') default, spectrum S_B^{p:g}", F("absdiff"), W, spectrum=p))
    if sel("r3-prod-balanced"):
        # [r3-prod-balanced] (b)+(d): pairs=prod and class weights pi^-1 together (a combination chosen after
        # seeing both rows: post hoc)
        out.append(kmeans_design("r3 (b+d) scatter-whitened pairs=prod, class weights pi^-1, kmeans", F("prod"), W, beta=1.0))
    if sel("r3-abstain"):
        # [r3-abstain] diagnostic for the nrclex miss: a model's probe texts on which it abstains (its wrapper's
        # output is exactly {"none": 1.0}: nrclex 31% of U, empath 91%) are left out of its scatter. Needs an
        # abstention convention in the model protocol (today "none" is an ordinary class); datasets unchanged.
        feats_a, Qs_a = [], []
        for f, e in zip(F("absdiff"), ents):
            if e["kind"] == "model":
                rows = [json.loads(l) for l in open(os.path.join(_FD, "..", "clfU", e["name"] + ".jsonl"))]
                keep = np.array([r.get("scores") != {"none": 1.0} for r in rows])
                if not keep.all():
                    keys = sorted({k for r in rows for k in r["scores"]} - {"none"})
                    S = np.array([[r["scores"].get(k, 0.0) for k in keys] for r in rows])[keep]
                    Q = M.targets_matrix(S, "soft")
                    feats_a.append(f[keep]); Qs_a.append(Q[:, Q.sum(0) > 0])
                    continue
            feats_a.append(f); Qs_a.append(e["Q"])
        out.append(kmeans_design("r3 (d'') default, models' abstentions left out (diagnostic)", feats_a, W, Qs=Qs_a))
    return out
