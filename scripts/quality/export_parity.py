#!/usr/bin/env python3
"""Export a small synthetic case and the numpy reference embeddings for the Rust parity test
(crates/taskdb-methods/tests/data/parity.json). Features are rounded to f32 before use."""
import json, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import methods as M

rng = np.random.default_rng(7)
n, d, C = 60, 8, 3
centres = rng.standard_normal((C, d))
y = rng.integers(0, C, n)
X = centres[y] + 0.8 * rng.standard_normal((n, d))
X /= np.linalg.norm(X, axis=1, keepdims=True)
X = X.astype(np.float32).astype(np.float64)
soft = rng.dirichlet(np.ones(C), n).astype(np.float32).astype(np.float64)
reg = (X[:, 0] * 3 + rng.standard_normal(n) * 0.1).astype(np.float32).astype(np.float64)
P = dict(M.DEFAULTS)
out = {"n": n, "d": d, "n_classes": C, "features": X.ravel().tolist(), "labels": y.tolist(),
       "soft": soft.ravel().tolist(), "regression": reg.tolist(), "params": P, "expected": {}}
for tname, Q in [("classes", M.targets_matrix(y, "classes", C)), ("soft", M.targets_matrix(soft, "soft")),
                 ("regression", M.targets_matrix(reg, "regression", bins=5))]:
    for kind in ["scatter", "fisher", "tuned"]:
        e = M.embed(kind, X, Q, P)
        out["expected"][f"{kind}/{tname}"] = (M.dense(*e) if isinstance(e, tuple) else e).ravel().tolist()
out["expected"]["textemb"] = M.textemb(X).tolist()
# whitened scatter: the "probe set" is the same features (alpha 0.5, all rows)
W = M.whitening(X, 0.5, 0)
out["whitening"] = W.ravel().tolist()
out["expected"]["scatter_whitened/classes"] = M.dense(*M.scatter(X, M.targets_matrix(y, "classes", C), W)).ravel().tolist()
dst = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "taskdb-methods", "tests", "data", "parity.json")
json.dump(out, open(dst, "w"), separators=(",", ":"))
print(dst, os.path.getsize(dst))
