"""Task-embedding methods (numpy reference implementation of crates/taskdb-methods).

Every matrix-valued embedding is returned as low rank (U: d x r orthonormal columns, s: r),
meaning the symmetric matrix U diag(s) U^T. Dense vectors are returned as 1-D arrays.
All maths in float64; features are the surrogate's L2-normalised pooled features (n x d).
"""
import numpy as np

DEFAULTS = dict(fisher_lambda=0.1, fisher_iters=300, fisher_scale_sqrt_d=True,
                regression_bins=5, tuned_lambda=1.0, tuned_tau=10.0, tuned_iters=200)


def targets_matrix(y, kind="classes", n_classes=None, bins=5):
    """Return Q (n x C) rows summing to 1. kind: classes (int labels), soft (n x C), regression."""
    if kind == "soft":
        Q = np.asarray(y, np.float64)
        return Q / Q.sum(1, keepdims=True)
    if kind == "regression":
        y = np.asarray(y, np.float64)
        lab = quantile_bins(y, bins)
        kind, n_classes = "classes", int(lab.max()) + 1
        y = lab
    y = np.asarray(y)
    C = int(n_classes if n_classes is not None else y.max() + 1)
    Q = np.zeros((len(y), C))
    Q[np.arange(len(y)), y] = 1.0
    return Q[:, Q.sum(0) > 0]  # drop empty classes


def quantile_bins(y, bins):
    """Bin edges at the empirical quantiles k/bins (sorted values, index floor(k*n/bins));
    a value goes to the number of edges <= it. Ties can merge bins (empty bins are dropped)."""
    s = np.sort(y)
    n = len(s)
    edges = [s[(k * n) // bins] for k in range(1, bins)]
    lab = np.searchsorted(np.array(edges), y, side="right")
    # compact labels (drop empty bins), order-preserving
    _, lab = np.unique(lab, return_inverse=True)
    return lab


def _sym_lowrank_from_factor(A):
    """Given A (d x C) return (U, s) with U diag(s) U^T = (A A^T)^(1/2), via the C x C Gram."""
    G = A.T @ A
    w, V = np.linalg.eigh(G)
    keep = w > max(w.max(), 0) * 1e-12
    w, V = w[keep], V[:, keep]
    sv = np.sqrt(w)
    U = A @ V / sv
    o = np.argsort(-sv, kind="stable")
    return U[:, o], sv[o]


def whitening(U, alpha=0.5, max_rows=3000):
    """W = ((1-alpha) cov(U) + alpha tr(cov(U))/d I)^(-1/2) from the probe features (first
    max_rows rows; sample covariance). Frozen into a scatter space (crates/taskdb-methods whiten.rs)."""
    U = U[:max_rows] if max_rows else U
    C = np.cov(U.T)
    d = C.shape[0]
    C = (1 - alpha) * C + alpha * np.trace(C) / d * np.eye(d)
    w, V = np.linalg.eigh(C)
    return (V / np.sqrt(w)) @ V.T


def scatter(X, Q, W=None):
    """Design B: S_B^(1/2) with M = [sqrt(pi_c) (m_c - mu)]; with a whitening W, M <- W M."""
    n = X.shape[0]
    mu = X.mean(0)
    w = Q.sum(0)
    pi = w / n
    means = (Q.T @ X) / w[:, None]
    M = ((means - mu) * np.sqrt(pi)[:, None]).T  # d x C
    if W is not None:
        M = W @ M
    return _sym_lowrank_from_factor(M)


def fit_softmax_head(Xs, Q, lam, iters):
    """Multinomial logistic head, L2 penalty lam on W (not the bias), Nesterov from zero with a
    fixed step 1/L, L = ||Xs||_2^2/(2n) + lam, strongly-convex momentum. Returns W (C x d), b, P."""
    n, d = Xs.shape
    C = Q.shape[1]
    L = np.linalg.norm(Xs, 2) ** 2 / (2 * n) + lam
    L = max(L, 0.5)  # bias term curvature <= 1/2
    mu = lam
    k = np.sqrt(L / mu)
    beta = (k - 1) / (k + 1)
    W = np.zeros((C, d)); b = np.zeros(C)
    Wy, by = W.copy(), b.copy()
    for _ in range(iters):
        Z = Xs @ Wy.T + by
        Z -= Z.max(1, keepdims=True)
        P = np.exp(Z); P /= P.sum(1, keepdims=True)
        R = (P - Q) / n
        gW = R.T @ Xs + lam * Wy
        gb = R.sum(0)
        Wn = Wy - gW / L; bn = by - gb / L
        Wy = Wn + beta * (Wn - W); by = bn + beta * (bn - b)
        W, b = Wn, bn
    Z = Xs @ W.T + b; Z -= Z.max(1, keepdims=True)
    P = np.exp(Z); P /= P.sum(1, keepdims=True)
    return W, b, P


def fisher(X, Q, lam=0.1, iters=300, scale_sqrt_d=True):
    """Design A: F = W^T Qm W, Qm = (1/n) sum (q-p)(q-p)^T; embedding F^(1/2) (in the scaled space)."""
    n, d = X.shape
    Xs = X * np.sqrt(d) if scale_sqrt_d else X
    W, b, P = fit_softmax_head(Xs, Q, lam, iters)
    E = Q - P
    Qm = E.T @ E / n  # C x C
    w, V = np.linalg.eigh(Qm)
    w = np.clip(w, 0, None)
    A = W.T @ (V * np.sqrt(w))  # d x C, F = A A^T
    return _sym_lowrank_from_factor(A)


def tuned(X, Q, lam=1.0, tau=10.0, iters=200):
    """TuPaTE-like: per-dimension scale s on h, logits_ic = tau * sum_j s_j x_ij p_cj with
    prototypes p_c = centred class means; CE + lam/2 ||s-1||^2 by gradient descent from s=1.
    Embedding: s - 1 (d-vector)."""
    n, d = X.shape
    w = Q.sum(0)
    mu = X.mean(0)
    Pm = (Q.T @ X) / w[:, None] - mu  # C x d
    Xc = X - mu
    s = np.ones(d)
    # logits Z = tau * (Xc * s) @ Pm^T ; dZ_ic/ds_j = tau Xc_ij Pm_cj
    # safe step: 1 / (tau^2/n * sum_j (sum_i Xc_ij^2)(sum_c Pm_cj^2) + lam)  (Frobenius bound)
    Lb = tau ** 2 / n * float((Xc ** 2).sum(0) @ (Pm ** 2).sum(0)) + lam
    step = 1.0 / Lb
    for _ in range(iters):
        Z = tau * (Xc * s) @ Pm.T
        Z -= Z.max(1, keepdims=True)
        P = np.exp(Z); P /= P.sum(1, keepdims=True)
        R = (P - Q) / n
        g = tau * (Xc * (R @ Pm)).sum(0) + lam * (s - 1)
        s = s - step * g
    return s - 1


def textemb(X):
    return X.mean(0)


def dense(U, s):
    return (U * s) @ U.T


def embed(kind, X, Q, params=DEFAULTS, W=None):
    if kind == "scatter":
        return scatter(X, Q, W)
    if kind == "fisher":
        return fisher(X, Q, params["fisher_lambda"], params["fisher_iters"], params["fisher_scale_sqrt_d"])
    if kind == "tuned":
        return tuned(X, Q, params["tuned_lambda"], params["tuned_tau"], params["tuned_iters"])
    if kind == "textemb":
        return textemb(X)
    raise ValueError(kind)


def lowrank_inner(a, b):
    """Exact Frobenius inner product of U_a diag(s_a) U_a^T and U_b diag(s_b) U_b^T."""
    (Ua, sa), (Ub, sb) = a, b
    G = Ua.T @ Ub
    return float(sa @ (G * G) @ sb)


def kmeans(X, k, seed, iters=30):
    """Plain Lloyd k-means with k-means++ init (numpy RNG seeded)."""
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    C = [X[rng.integers(n)]]
    d2 = ((X - C[0]) ** 2).sum(1)
    for _ in range(1, k):
        c = X[rng.choice(n, p=d2 / d2.sum())]
        C.append(c)
        d2 = np.minimum(d2, ((X - c) ** 2).sum(1))
    C = np.array(C)
    for _ in range(iters):
        lab = np.argmin(((X[:, None, :] - C[None]) ** 2).sum(2), 1)
        for j in range(k):
            if (lab == j).any():
                C[j] = X[lab == j].mean(0)
    return lab
