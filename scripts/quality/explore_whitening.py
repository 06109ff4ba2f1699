#!/usr/bin/env python3
"""One-off explorations behind the whitening rows of docs/QUALITY-experiment.md (issue 4).

Usage (from the repository root, after encode.py and run_classifiers.sh):
  python scripts/quality/explore_whitening.py pow wU wT wU2 fw
pow: S^p, p in 1/4 and 1 (unwhitened); wU: U-whitening, alpha 0.1/0.5/0.9 (none, live, frozen
k-means); wT: each task whitened by its own covariance; wU2: alpha 0.3/0.5/0.7 x S^1/2, S^1/4 x
(none, identity, live); fw: fisher on U-whitened features.
"""
import sys, os, json, numpy as np, itertools
sys.path.insert(0, "scripts/quality")
import methods as M
from experiment import load, unit, cos_matrix, as_dense
from evaluate import evaluate, rankings_from_scores, markdown_row
cache = ".cache/quality"
U, entries, tasks = load(cache, 3000)
params = dict(M.DEFAULTS)
ks, seeds = [8,12,16,20], [0,1,2]
_km = {}
def kms(X):
    key = id(X)
    if key not in _km:
        _km[key] = [M.kmeans(X, k, s) for k in ks for s in seeds]
    return _km[key]

def run(name, fn, tasks=tasks, Uref=U, cens=("none","live","frozen")):
    embs = [unit(fn(X, Q).ravel()) for X, Q in tasks]
    out = {}
    for cen in cens:
        if cen == "none": ref = None
        elif cen == "live": ref = np.mean(embs, 0)
        else:
            ref = np.mean([unit(fn(Uref, M.targets_matrix(lab, "classes", lab.max()+1)).ravel()) for lab in kms(Uref)], 0)
        S = cos_matrix(embs, ref)
        r = evaluate(entries, rankings_from_scores(entries, S.tolist()))
        print(markdown_row(f"{name} / {cen}", r), flush=True)
        out[cen] = S
    return out

def powlr(X, Q, p=0.5, base=M.scatter):
    Uf, s = base(X, Q)
    return M.dense(Uf, s ** (2*p))   # base returns S^(1/2): s are sqrt eigenvalues of S

def whiten_U(alpha):
    mu = U.mean(0); C = np.cov(U.T)
    C = (1-alpha)*C + alpha*np.trace(C)/C.shape[0]*np.eye(C.shape[0])
    w, V = np.linalg.eigh(C); W = V @ np.diag(w**-0.5) @ V.T
    return lambda X: (X - mu) @ W

def pertask_white(X, Q, alpha=0.5):
    n = X.shape[0]; mu = X.mean(0); w = Q.sum(0); pi = w/n
    means = (Q.T @ X)/w[:,None]
    Mm = ((means-mu)*np.sqrt(pi)[:,None]).T
    C = np.cov(X.T); C = (1-alpha)*C + alpha*np.trace(C)/C.shape[0]*np.eye(C.shape[0])
    ev, V = np.linalg.eigh(C); Wh = V @ np.diag(ev**-0.5) @ V.T
    Uf, s = M._sym_lowrank_from_factor(Wh @ Mm)
    return M.dense(Uf, s)

what = sys.argv[1:]
if "pow" in what:
    for p in (0.25, 1.0):
        run(f"scatter S^{p}", lambda X,Q: powlr(X,Q,p))
if "wU" in what:
    for a in (0.1, 0.5, 0.9):
        T = whiten_U(a)
        run(f"scatter U-whitened a={a}", lambda X,Q: M.dense(*M.scatter(T(X), Q)), Uref=U)
if "wT" in what:
    for a in (0.1, 0.5, 0.9):
        run(f"scatter task-whitened a={a}", lambda X,Q: pertask_white(X,Q,a))

def run_ref(name, fn, refs):
    embs = [unit(fn(X, Q).ravel()) for X, Q in tasks]
    res = {}
    for rn, ref in refs(embs).items():
        S = cos_matrix(embs, ref)
        r = evaluate(entries, rankings_from_scores(entries, S.tolist()))
        print(markdown_row(f"{name} / {rn}", r), flush=True)
        res[rn] = S
    return res

d = U.shape[1]
I = unit(np.eye(d).ravel())
def refs_basic(embs):
    return {"none": None, "identity": I, "live": np.mean(embs, 0)}
if "wU2" in what:
    for a in (0.3, 0.5, 0.7):
        T = whiten_U(a)
        for p in (0.5, 0.25):
            run_ref(f"scatter U-whitened a={a} S^{p}", lambda X,Q: powlr(T(X),Q,p), refs_basic)
if "fw" in what:
    T = whiten_U(0.5)
    for lam in (0.1, 1.0):
        run_ref(f"fisher U-whitened a=0.5 lam={lam}", lambda X,Q: M.dense(*M.fisher(T(X),Q,lam,300,False)), refs_basic)
