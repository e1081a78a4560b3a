"""Independent numpy float64 definitions of every metric, for comparison with libeigenwatch.

Each function takes the rows exactly as the library saw them (after dtype conversion), as float64,
and recomputes from scratch with numpy: two-pass covariance, np.linalg.eigvalsh, np.linalg.svd.
These follow docs/METRICS.md and the reference code it cites; they share no code with the C side.
"""
import numpy as np


def l2rows(X):
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return np.where(n > 0, X / np.where(n > 0, n, 1), 0.0)


def matrix(X, center, weights=None):
    if weights is None:
        weights = np.ones(len(X))
    w = weights / weights.sum()
    mu = w @ X
    if center:
        Xc = X - mu
        return (Xc * w[:, None]).T @ Xc
    return (X * w[:, None]).T @ X


def eig(A):
    e = np.linalg.eigvalsh(A)[::-1]
    return np.clip(e, 0, None)


def entropy_p(e):
    p = e / e.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def renyi(e, a):
    p = e / e.sum()
    p = p[p > 0]
    if a == 1:
        return float(-(p * np.log(p)).sum())
    if np.isinf(a):
        return float(-np.log(p.max()))
    return float(np.log((p ** a).sum()) / (1 - a))


def metrics(X, center=True, weights=None):
    """All sketch metrics of rows X (n×d float64) for the chosen centring: name -> value."""
    n, d = X.shape
    A = matrix(X, center, weights)
    e = eig(A)
    tr = e.sum()
    out = {
        "entropy": entropy_p(e),
        "erank": float(np.exp(entropy_p(e))),
        "renyi": renyi(e, 2.0),
        "renyi_a0.5": renyi(e, 0.5),
        "renyi_a3": renyi(e, 3.0),
        "renyi_ainf": renyi(e, np.inf),
        "vendi": float(np.exp(renyi(e, 1))),
        "vendi_q2": float(np.exp(renyi(e, 2))),
        "participation_ratio": float(np.trace(A) ** 2 / (A * A).sum()),
        "stable_rank": float(tr / e[0]),
        "anisotropy": float(e[0] / tr),
        "trace": float(np.trace(A)),
        "spectrum": e,
        "topk": e[:8],
        "entropy_truncated": (-(lambda p: (p[p > 0] * np.log(p[p > 0])).sum())((e / tr)[:32]))
        / np.log(d) if d > 1 else None,
    }
    if d > 1:
        out["entropy_normalized"] = entropy_p(e) / np.log(d)
        out["spectral_gap"] = float(e[0] / e[1]) if e[1] > 0 else None
    rc = 1e-5
    out["condition_number_rc"] = float(e[0] / e[e > rc * e[0]].min())
    wsum = (weights.sum() if weights is not None else n)
    if weights is None:
        Xc = X - X.mean(0) if center else X
        out["nuclear_norm"] = float(np.linalg.svd(Xc, compute_uv=False).sum() / n)
        cn = np.sort(np.linalg.norm(Xc, axis=0))[::-1]
        out["mnn"] = float(cn[:min(n, d)].sum() / n)
    else:
        out["nuclear_norm"] = float(np.sqrt(e).sum() / np.sqrt(wsum))
    return out


def rankme(X, eps=1e-7):
    n, d = X.shape
    s = np.linalg.svd(X, compute_uv=False)[:min(n, d)]
    r = s / s.sum() + eps
    return float(np.exp(-(r * np.log(r)).sum()))


def cn_rows(Xw):
    Z = Xw - Xw.mean(0)
    return l2rows(Z)


def diff_erank(Xw):
    Z = cn_rows(Xw)
    return float(np.exp(entropy_p(eig(Z.T @ Z / len(Z)))))


def mnn_exact(Xw):
    Z = cn_rows(Xw)
    n, d = Z.shape
    cn = np.sort(np.linalg.norm(Z, axis=0))[::-1]
    return float(cn[:min(n, d)].sum() / n)


def l2_std(Xw):
    return float(l2rows(Xw).std(axis=0, ddof=1).mean())
