"""Independent numpy float64 statement of the kernel, grouped and paired metrics (DESIGN §13).

Each function recomputes its metric from the rows with numpy alone (no scipy, no sklearn, no code
shared with libeigenwatch), so tests can compare the library's answers against it. Each docstring
gives the definition, the reference code it follows (snapshot commits as in
research/wave3-anchors.md §0), and the reference's quirk it reproduces or declines to reproduce.

Pinned conventions (one place, so a test can cite them):
  - float64 throughout; eigenvalues of symmetric matrices by np.linalg.eigvalsh (lower triangle,
    as numpy's and torch's defaults), never a general eigensolver.
  - Squared distances are taken from row differences, Σ_k (x_k − y_k)², not from the
    ‖x‖² + ‖y‖² − 2x·y expansion (sklearn's pairwise_distances uses the expansion; the two differ
    by rounding only, ≤ 1e-15 relative here).
  - The Gaussian kernel is exp(−‖x−y‖²/(2σ²)) for DSE, RKE, Vendi and the RFF map alike.
  - DSE and DSMI are in bits (log2); RKE, Vendi and SCE are exp of entropies in nats.
  - Degenerate inputs raise Degenerate (a ValueError), never return 0 or NaN, as the daemon
    answers DEGENERATE (docs/METRICS.md, "Degenerate states answer an error").

Run `/usr/bin/python3 tests/numeric/kernel_ref.py` to print every anchor beside its value.
"""
import itertools
import math
import random

import numpy as np

DSE_EPS = float(np.finfo(float).eps)  # 2.220446049250313e-16, dse_dsmi's additive eps
DSMI_EXACT_MAX = 64                   # enumerate every subset when C(N, n_i) <= this
SCE_EPS = 1e-12                       # ridge added to C_xx before the pseudo-inverse
SCE_CLAMP = 1e-10                     # eigenvalue floor in schur_vendi_from_eigs


class Degenerate(ValueError):
    """The metric is undefined on this input (the daemon answers DEGENERATE)."""


def _rows(X):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or len(X) == 0:
        raise Degenerate("need a non-empty n×d array of rows")
    return X


def sqdist(X, Y=None):
    """Squared Euclidean distances ‖x_i − y_j‖², from row differences (see module conventions)."""
    X = _rows(X)
    Y = X if Y is None else _rows(Y)
    diff = X[:, None, :] - Y[None, :, :]
    return np.einsum("ijk,ijk->ij", diff, diff)


def l1dist(X, Y=None):
    """L1 distances ‖x_i − y_j‖₁."""
    X = _rows(X)
    Y = X if Y is None else _rows(Y)
    return np.abs(X[:, None, :] - Y[None, :, :]).sum(axis=2)


def gaussian_gram(X, sigma):
    """G_ij = exp(−‖x_i − x_j‖²/(2σ²)); unit diagonal."""
    if not sigma > 0:
        raise Degenerate("sigma must be > 0")
    return np.exp(-sqdist(X) / (2.0 * sigma * sigma))


def l2rows(X):
    """Rows scaled to unit L2 norm; zero rows stay zero (sklearn.preprocessing.normalize)."""
    X = _rows(X)
    nrm = np.linalg.norm(X, axis=1, keepdims=True)
    return np.where(nrm > 0, X / np.where(nrm > 0, nrm, 1.0), 0.0)


# ----------------------------------------------------------------------------------------------
# DSE / DSMI
# ----------------------------------------------------------------------------------------------

def diffusion_matrix(X, sigma=10.0):
    """K = D^−½ G D^−½, G the Gaussian Gram of the raw rows, D = diag(row sums of G).

    Reference: dse_dsmi/diffusion.py::compute_diffusion_matrix (ChenLiu-1996/
    DiffusionSpectralEntropy @ dc20ffd, pip dse-dsmi 1.1). The reference multiplies G by
    1/(σ√(2π)); that prefactor cancels in D^−½ G D^−½ and is omitted. The reference calls this
    "anisotropic density normalization", but K is similar to the random walk D⁻¹G (Coifman–Lafon
    α = 0): its spectrum lies in (−1, 1] with λ_max = 1 exactly.
    """
    G = gaussian_gram(X, sigma)
    dm = 1.0 / np.sqrt(G.sum(axis=1))
    return dm[:, None] * G * dm[None, :]


def dse_from_eigvals(lam, t=1):
    """DSE of given eigenvalues: p = |λ|^t / Σ|λ|^t, p ← p + 2.220446049250313e-16, −Σ p log2 p.

    Quirk reproduced (dse_dsmi/dse.py lines 153–180 @ dc20ffd): the eps is added to *every*
    entry after normalisation and p is NOT renormalised, so n identical rows give ≈ n·eps·52 bits,
    not 0, and n disconnected rows give log2 n + O(n·eps) (e.g. 2.0000000000000004 for n = 4).
    Negative eigenvalues count by magnitude (np.abs), as in the reference.
    """
    lam = np.abs(np.asarray(lam, dtype=np.float64)) ** t
    p = lam / lam.sum()
    p = p + DSE_EPS
    return float(-np.sum(p * np.log2(p)))


def dse(X, sigma=10.0, t=1):
    """Diffusion Spectral Entropy in bits (Liao et al. 2023; dse-dsmi 1.1 compatible).

    Definition: G = exp(−‖xᵢ−xⱼ‖²/(2σ²)) on the raw rows (no centring, no scaling), K =
    D^−½ G D^−½, λ = eigvalsh(K), then dse_from_eigvals(λ, t). Defaults σ = 10, t = 1 as the
    reference's diffusion_spectral_entropy.
    Reference: dse_dsmi/dse.py::diffusion_spectral_entropy @ dc20ffd with its defaults.
    Quirks: see dse_from_eigvals (eps added, not renormalised). The reference's eigvalsh path is
    the one taken (it checks np.allclose(K, K.T) first; K is symmetric by construction). NOT
    reproduced: the reference's subsample above max_N = 10000 rows with Python's random (the
    daemon samples above its own max_rows, so compare on ≤ max_rows rows), its eigenvalue cache.
    """
    return dse_from_eigvals(np.linalg.eigvalsh(diffusion_matrix(X, sigma)), t)


def _label_groups(labels, n):
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != n:
        raise Degenerate("need one label per row")
    values = np.unique(labels)  # ascending, as np.unique in the reference
    return values, [np.flatnonzero(labels == v) for v in values]


def dsmi_subsets(N, k, reps=5, seed=0):
    """The size-k subsets of range(N) that the matched DSMI averages over.

    If C(N, k) ≤ 64: every subset, in itertools.combinations order (the exact expectation).
    Otherwise `reps` subsets from numpy's PCG64, np.random.default_rng(seed).choice(N, k,
    replace=False), each sorted; the generator is re-created from `seed` for every label, as the
    reference re-seeds Python's random per class (so two labels of equal size get the same
    subsets, in the reference too). The daemon draws with its own seeded generator,
    so above 64 subsets a test can match it only by passing the daemon's subsets to
    dsmi_matched_with_subsets.
    """
    if math.comb(N, k) <= DSMI_EXACT_MAX:
        return [np.array(c, dtype=np.intp) for c in itertools.combinations(range(N), k)]
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(N, size=k, replace=False)) for _ in range(reps)]


def dsmi_matched_with_subsets(X, labels, subsets, sigma=10.0, t=1):
    """Matched DSMI with explicit baseline subsets: Σᵢ (nᵢ/N)(mean_S DSE(X[S]) − DSE(X[label i])).

    `subsets` maps each label value to a list of index arrays (each of size nᵢ, rows of X).
    Use it to check the daemon's seeded draw when C(N, nᵢ) > 64.
    """
    X = _rows(X)
    N = len(X)
    values, groups = _label_groups(labels, N)
    total = 0.0
    for v, idx in zip(values, groups):
        subs = subsets[v.item() if hasattr(v, "item") else v]
        for S in subs:
            if len(S) != len(idx):
                raise ValueError("a baseline subset must have as many rows as its label")
        base = float(np.mean([dse(X[np.asarray(S)], sigma, t) for S in subs]))
        total += len(idx) / N * (base - dse(X[idx], sigma, t))
    return total


def dsmi(X, labels, sigma=10.0, t=1, mode="matched", reps=5, seed=0):
    """Diffusion Spectral Mutual Information between rows X and discrete labels, in bits.

    mode="full":    DSE(X) − Σᵢ (nᵢ/N) DSE(rows of label i).
    mode="matched": Σᵢ (nᵢ/N)(E[DSE(S)] − DSE(rows of label i)), S a uniform size-nᵢ subset of
                    ALL N rows (the label's own rows included), the expectation exact (mean over
                    every subset) when C(N, nᵢ) ≤ 64, else the mean over `reps` subsets from
                    dsmi_subsets (numpy PCG64, re-seeded with `seed` per label).
    Reference: dse_dsmi/dsmi.py::diffusion_spectral_mutual_information @ dc20ffd with discrete
    labels (reference_discrete: integer [N,1]); labels taken in np.unique (ascending) order.
    Quirk: the reference's baseline is the mean of 5 DSEs of random.sample subsets (Python's
    Mersenne Twister, random.seed(random_seed) reset per class), a noisy estimate of the
    expectation; the exact mode replaces it where it is cheap. dsmi_python_random reproduces the
    reference's own draw for the anchor 0.9660793361272462.
    """
    X = _rows(X)
    N = len(X)
    values, groups = _label_groups(labels, N)
    if mode == "full":
        return dse(X, sigma, t) - sum(len(g) / N * dse(X[g], sigma, t) for g in groups)
    if mode != "matched":
        raise ValueError("mode must be 'matched' or 'full'")
    subsets = {(v.item() if hasattr(v, "item") else v): dsmi_subsets(N, len(g), reps, seed)
               for v, g in zip(values, groups)}
    return dsmi_matched_with_subsets(X, labels, subsets, sigma, t)


def dsmi_python_random(X, labels, sigma=10.0, t=1, reps=5, seed=0):
    """The reference's own matched DSMI draw: random.seed(seed) per label, then `reps` times
    random.sample(range(N), k=nᵢ) (CPython's Mersenne Twister). Only for checking the reference
    anchor 0.9660793361272462; the daemon does not use Python's generator."""
    X = _rows(X)
    N = len(X)
    values, groups = _label_groups(labels, N)
    subsets = {}
    for v, g in zip(values, groups):
        random.seed(seed)
        subsets[v.item()] = [np.array(random.sample(range(N), k=len(g))) for _ in range(reps)]
    return dsmi_matched_with_subsets(X, labels, subsets, sigma, t)


# ----------------------------------------------------------------------------------------------
# RKE and Vendi with kernels
# ----------------------------------------------------------------------------------------------

def rke(X, sigma):
    """RKE mode count, 1 / mean_{i,j} k(xᵢ,xⱼ)², k = exp(−‖x−y‖²/(2σ²)), the mean over all n²
    ordered pairs, diagonal included. Equals exp(RKE_2) = 1/‖K/n‖_F² = Vendi q=2 on the same K.

    Reference: rke_score/rke.py @ e97951b (mjalali/renyi-kernel-entropy). Quirk not reproduced:
    compute_rke_mc_frobenius_norm returns mean k² itself (not its reciprocal, the mode count);
    compute_rke_mc is an unseeded Monte-Carlo estimate of the same 1/mean k².
    """
    K = gaussian_gram(X, sigma)
    return float(1.0 / np.mean(K * K))


def kernel_matrix(X, kernel="gaussian", sigma=None):
    """K for vendi_kernel: gaussian exp(−‖x−y‖²/(2σ²)); laplacian exp(−‖x−y‖₁/σ); cosine
    x̂·ŷ on L2-normalised rows (a zero row stays zero, so its diagonal entry is 0)."""
    if kernel == "gaussian":
        if sigma is None:
            raise ValueError("gaussian needs sigma")
        return gaussian_gram(X, sigma)
    if kernel == "laplacian":
        if sigma is None or not sigma > 0:
            raise ValueError("laplacian needs sigma > 0")
        return np.exp(-l1dist(X) / sigma)
    if kernel == "cosine":
        Z = l2rows(X)
        return Z @ Z.T
    raise ValueError("kernel must be gaussian, laplacian or cosine")


def entropy_q(p, q=1):
    """vendi_score.vendi.entropy_q (natural log), with its handling of non-positive entries:
    entries ≤ 0 are DROPPED (no clamp, no eps) for q = 1 and generic q; q = inf (the float, or
    the reference's string "inf") is −ln max(p) over all entries. q must be > 0 here."""
    p = np.asarray(p, dtype=np.float64)
    p_ = p[p > 0]
    if q == "inf" or (isinstance(q, float) and math.isinf(q)):
        return float(-np.log(np.max(p)))
    q = float(q)
    if not q > 0:
        raise ValueError("q must be > 0 or inf")
    if q == 1:
        return float(-(p_ * np.log(p_)).sum())
    return float(np.log((p_ ** q).sum()) / (1 - q))


def vendi_K(K, q=1):
    """vendi_score.score_K(K, q, p=None, normalize=False): exp(entropy_q(eigvalsh(K/n), q)).

    Quirk reproduced: no trace renormalisation — the eigenvalues of K/n sum to 1 only when
    diag(K) = 1 (a zero row under the cosine kernel leaves mass < 1). Differs from the reference
    only in the eigensolver (numpy syevd here, scipy.linalg.eigvalsh = syevr there: rounding).
    """
    K = np.asarray(K, dtype=np.float64)
    return float(np.exp(entropy_q(np.linalg.eigvalsh(K / K.shape[0]), q)))


def vendi_kernel(X, kernel="gaussian", sigma=None, q=1):
    """Vendi score with a named kernel: exp(H_q(eig(K/n))), K from kernel_matrix.

    q = 1 Shannon (0 log 0 = 0, i.e. non-positive eigenvalues dropped), q = inf → −ln λ_max,
    other q > 0 → ln(Σ λ^q)/(1−q). Equals vendi_score.score(samples, k, q) / score_K(K, q)
    (vertaix/Vendi-Score @ c791c30) for these kernels: no eps, no clamp, negatives dropped.
    Reference quirks not reproduced: score_X ignores q (always order 1); float('inf') there gives
    NaN (only the string "inf" works) — here both spellings of inf are accepted.
    """
    return vendi_K(kernel_matrix(X, kernel, sigma), q)


# ----------------------------------------------------------------------------------------------
# Grouped metrics (per-row labels)
# ----------------------------------------------------------------------------------------------

def erank_of_rows(X):
    """Roy–Vetterli effective rank of the centred covariance of rows X, exactly as the project's
    `erank` (docs/METRICS.md "erank"; tests/numeric/reference.py metrics(X)["erank"]):
    C = (X − μ)ᵀ(X − μ)/n (the scale cancels), λ = eigvalsh(C) clipped at 0, p = λ/Σλ,
    exp(−Σ_{p>0} p ln p). 1 ≤ erank ≤ rank. Fewer than 2 rows or zero trace → Degenerate."""
    X = _rows(X)
    if len(X) < 2:
        raise Degenerate("erank of a label needs at least 2 rows")
    Xc = X - X.mean(axis=0)
    lam = np.clip(np.linalg.eigvalsh(Xc.T @ Xc / len(X)), 0, None)
    if not lam.sum() > 0:
        raise Degenerate("erank of identical rows (zero trace)")
    p = lam / lam.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def group_labels(labels):
    """The label values in the order the grouped metrics list them (ascending, np.unique)."""
    return [v.item() for v in np.unique(np.asarray(labels).reshape(-1))]


def group_erank(X, labels):
    """List, one per label in ascending order (group_labels), of erank_of_rows(rows of that label).
    Project definition (DESIGN §13; research/user-needs.md US-13); no external reference code."""
    X = _rows(X)
    _, groups = _label_groups(labels, len(X))
    return [erank_of_rows(X[g]) for g in groups]


def group_separation(X, labels):
    """Between- over within-label scatter: Σᵢ nᵢ‖μᵢ − μ‖² / Σ_rows ‖x − μ_label(x)‖², μ the mean
    of all rows, μᵢ of label i's rows (both uncentred means of the raw rows; the ratio is the
    trace form of the Fisher criterion). Zero within-label scatter → Degenerate."""
    X = _rows(X)
    _, groups = _label_groups(labels, len(X))
    mu = X.mean(axis=0)
    between = 0.0
    within = 0.0
    for g in groups:
        mi = X[g].mean(axis=0)
        between += len(g) * float(np.sum((mi - mu) ** 2))
        within += float(np.sum((X[g] - mi) ** 2))
    if not within > 0:
        raise Degenerate("group_separation: every label's rows are identical")
    return between / within


def centroid_cosine(X, labels):
    """Mean over label pairs i < j of cos(μᵢ, μⱼ), μᵢ the uncentred mean of label i's rows.
    Fewer than 2 labels or a zero centroid → Degenerate."""
    X = _rows(X)
    _, groups = _label_groups(labels, len(X))
    if len(groups) < 2:
        raise Degenerate("centroid_cosine needs at least 2 labels")
    M = np.array([X[g].mean(axis=0) for g in groups])
    nrm = np.linalg.norm(M, axis=1)
    if not np.all(nrm > 0):
        raise Degenerate("centroid_cosine: a label's mean is the zero vector")
    U = M / nrm[:, None]
    cos = U @ U.T
    iu = np.triu_indices(len(groups), k=1)
    return float(np.mean(cos[iu]))


# ----------------------------------------------------------------------------------------------
# Paired streams: Schur Complement Entropy (Dissecting CLIP, Ospanov et al. 2024)
# ----------------------------------------------------------------------------------------------

def rff_omega(d, m, sigma, seed=0):
    """Ω (d×m) = standard normal / σ from numpy's PCG64 default_rng(seed). The reference draws
    torch.randn, and the daemon its own generator, so tests pass the daemon's Ω explicitly."""
    return np.random.default_rng(seed).standard_normal((d, m)) / sigma


def rff_features(X, sigma=None, m=None, seed=0, omega=None):
    """Random Fourier features φ(x) = [cos xΩ, sin xΩ]/√m ∈ R^{2m}, ‖φ‖ = 1, φ(x)·φ(y) ≈
    exp(−‖x−y‖²/(2σ²)). Ω = `omega` if given, else rff_omega(d, m, sigma, seed); one Ω must be
    shared by x and y. Reference: SCE/metric/algorithm_utils.py::get_phi / cov_rff2 @ 9db5849
    (cos block first, then sin, divided by √m)."""
    X = _rows(X)
    if omega is None:
        omega = rff_omega(X.shape[1], m, sigma, seed)
    P = X @ omega
    return np.hstack([np.cos(P), np.sin(P)]) / np.sqrt(omega.shape[1])


def paired_blocks(phi_x, phi_y):
    """(C_xx, C_xy, C_yy) = uncentred Σφφᵀ/n blocks of paired rows (row i of x pairs with row i
    of y). The daemon keeps n and the three sums; this is their quotient."""
    phi_x = _rows(phi_x)
    phi_y = _rows(phi_y)
    if len(phi_x) != len(phi_y):
        raise ValueError("x and y need the same number of rows")
    n = len(phi_x)
    return phi_x.T @ phi_x / n, phi_x.T @ phi_y / n, phi_y.T @ phi_y / n


def pinv_ridge(Cxx, eps=SCE_EPS, rcond=None):
    """(C_xx + εI)⁺ as a matrix, by SVD (np.linalg.pinv). rcond=None uses torch.linalg.pinv's
    default cut-off, max(rows, cols)·2⁻⁵² relative to the largest singular value (float64; the
    reference runs float32, where it is max(rows, cols)·2⁻²³ and ε = 1e-12 is below the
    resolution of C_xx's diagonal). numpy's own default, 1e-15, differs. Only the literal
    evaluation of schur_parts uses this matrix; see there why it is not the default."""
    A = Cxx + eps * np.eye(Cxx.shape[0])
    if rcond is None:
        rcond = max(A.shape) * float(np.finfo(float).eps)
    return np.linalg.pinv(A, rcond=rcond)


def _ridge_eig(Cxx, eps=SCE_EPS, rcond=None):
    """U, w with (C_xx + εI)⁺ = U diag(w) Uᵀ: eigh of C_xx, w = 1/(λ+ε), set to 0 where
    |λ+ε| ≤ rcond·max|λ+ε| (pinv semantics; rcond default max(dim)·2⁻⁵² as pinv_ridge)."""
    lam, U = np.linalg.eigh(Cxx)
    d = lam + eps
    if rcond is None:
        rcond = Cxx.shape[0] * float(np.finfo(float).eps)
    keep = np.abs(d) > rcond * np.abs(d).max()
    w = np.zeros_like(d)
    w[keep] = 1.0 / d[keep]
    return U, w


def schur_parts(Cxx, Cxy, Cyy, eps=SCE_EPS, rcond=None, literal=False):
    """(S, Δ): Δ = C_xyᵀ (C_xx + εI)⁺ C_xy (the y variance the x side explains) and
    S = C_yy − Δ (the Schur complement, what it does not). S + Δ = C_yy.
    Reference: rff_schur_complement @ 9db5849 (same definition, same ε = 1e-12).

    Evaluation (pinned): Δ = Bᵀ diag(w) B with B = Uᵀ C_xy, U, w from _ridge_eig — the same
    quantity as the reference's C_xyᵀ · pinv(C_xx + εI) · C_xy, evaluated stably. literal=True
    forms pinv(C_xx + εI) and multiplies in the reference's order instead. When C_xx is rank-
    deficient (RFF with n < 2m, linear features with n < d: the usual case) that matrix has
    entries ~1/ε = 1e12 on C_xx's null space, and the float64 products lose ~eps·‖C‖²/ε:
    measured 2e-7..2e-6 absolute error in Δ and 2e-5 in sce (n = 5..40, 2m = 64..128), against
    1e-17 for this evaluation (checked against C_xx's range-restricted inverse). Tests of the
    daemon should compare with the default evaluation.
    """
    if literal:
        P = pinv_ridge(Cxx, eps, rcond)
        D = Cxy.T @ P @ Cxy
        return Cyy - D, D
    U, w = _ridge_eig(Cxx, eps, rcond)
    B = U.T @ Cxy
    D = (B.T * w) @ B
    return Cyy - D, D


def schur_vendi_from_eigs(lam):
    """exp(−Σ λᵢ ln(λᵢ/s)), λ clamped at 1e-10 FIRST, s = Σ of the clamped λ.

    Reference quirk reproduced (schur_vendi_from_eigs @ 9db5849): this is exp(s·H(λ/s)), the
    entropy weighted by the trace share s, not exp(H(λ/s)); each clamped (zero or negative)
    eigenvalue adds 1e-10·ln(s/1e-10). E.g. [0.25, 0.25] → √2, not 2.
    """
    lam = np.maximum(np.asarray(lam, dtype=np.float64), SCE_CLAMP)
    s = lam.sum()
    return float(np.exp(-np.sum(lam * np.log(lam / s))))


def sce_from_blocks(Cxx, Cxy, Cyy, eps=SCE_EPS, rcond=None, literal=False):
    """(sce, sce_text) from the /n blocks: schur_vendi_from_eigs of eigvalsh(S) and of
    eigvalsh(Δ) (lower triangle, as torch.linalg.eigh's default)."""
    S, D = schur_parts(Cxx, Cxy, Cyy, eps, rcond, literal)
    return (schur_vendi_from_eigs(np.linalg.eigvalsh(S)),
            schur_vendi_from_eigs(np.linalg.eigvalsh(D)))


def sce(phi_x, phi_y, eps=SCE_EPS, rcond=None, literal=False):
    """Schur Complement Entropy of the y (image) side given the x (text) side: with
    C = Σφφᵀ/n, S = C_yy − C_xyᵀ(C_xx + εI)⁺C_xy, sce = schur_vendi_from_eigs(eig S).
    φ are the feature rows as given (raw rows for features "linear", rff_features for "rff").
    Reference: SCE/metric/SCE.py::rff_sce_from_feats → `vendi_complement` ("image part",
    README's img_generator_diversity), CLIP-DISSECTION @ 9db5849. The reference computes in
    float32 torch; this is float64."""
    return sce_from_blocks(*paired_blocks(phi_x, phi_y), eps=eps, rcond=rcond, literal=literal)[0]


def sce_text(phi_x, phi_y, eps=SCE_EPS, rcond=None, literal=False):
    """The same entropy over Δ = C_xyᵀ(C_xx + εI)⁺C_xy: the reference's
    `vendi_complement_difference` ("text part", README's text_prompt_diversity)."""
    return sce_from_blocks(*paired_blocks(phi_x, phi_y), eps=eps, rcond=rcond, literal=literal)[1]


def a_star(x, y, eps=SCE_EPS, rcond=None):
    """A* = (C_xx + εI)⁺ C_xy from paired raw rows x, y (linear features), evaluated as
    U diag(w) (Uᵀ C_xy) with U, w from _ridge_eig.

    Caution for tests: along C_xx's numerical null space (n < d, or collinear columns) A*'s
    rows are rounding noise of C_xy times 1/ε (~1e-17·1e12 = 1e-5), implementation-dependent in
    any evaluation order. Compare nullify only for x in the row space of the fit x's (where that
    noise meets a zero component) or with a full-rank C_xx.
    """
    Cxx, Cxy, _ = paired_blocks(x, y)
    U, w = _ridge_eig(Cxx, eps, rcond)
    return U @ (w[:, None] * (U.T @ Cxy))


def nullify(x, y, fit_x=None, fit_y=None, eps=SCE_EPS, rcond=None):
    """"Nullify the prompt": y − x·A*, A* = (C_xx + εI)⁺ C_xy from the pairs (fit_x, fit_y)
    (default: x, y themselves; the daemon uses the stream's accumulated blocks).
    Reference: get_corrected_embedding @ 9db5849 (`image_feature − text_feature @ A_star`).
    Linear features only: the reference's gaussian branch maps the corrected embedding with a
    fresh random Ω, a bug not reproduced; its default cosine branch (column-cosine matrices / d)
    is not this definition either."""
    fit_x = x if fit_x is None else fit_x
    fit_y = y if fit_y is None else fit_y
    return _rows(y) - _rows(x) @ a_star(fit_x, fit_y, eps, rcond)


# ----------------------------------------------------------------------------------------------
# Self-check: the anchors of DESIGN §13, research/wave3-anchors.md §8 and metrics-anchors.md
# ----------------------------------------------------------------------------------------------

def _check(name, expected, got, tol=1e-9):
    ok = abs(got - expected) <= tol
    print(f"{'ok ' if ok else 'BAD'} {name:58s} expected {expected!r:24} got {got!r}")
    assert ok, f"{name}: expected {expected}, got {got}"


def _check_true(name, cond, detail=""):
    print(f"{'ok ' if cond else 'BAD'} {name:58s} {detail}")
    assert cond, name


# ---- the library's sample of the window's rows above max_rows, restated (core/rng.c: splitmix64
# seeding xoshiro256**; metrics/kernel.c: a partial Fisher-Yates, the picked indices ascending) ----

M64 = (1 << 64) - 1
SAMPLE_TAG = 0x6b65726e656c  # "kernel": mixed into the stream's seed for the sample


def _splitmix(x):
    x = (x + 0x9e3779b97f4a7c15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return x, z ^ (z >> 31)


class Xoshiro:
    """xoshiro256** seeded by four splitmix64 outputs."""

    def __init__(self, seed):
        x, self.s = seed & M64, []
        for _ in range(4):
            x, z = _splitmix(x)
            self.s.append(z)

    def next(self):
        s = self.s

        def rotl(v, k):
            return ((v << k) | (v >> (64 - k))) & M64
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        if n <= 1:
            return 0
        if n <= 0xffffffff:
            return ((self.next() >> 32) * n) >> 32
        return self.next() % n


DSMI_TAG = 0x64736d69  # "dsmi": mixed into the stream's seed for the baseline subsets


def dsmi_subsets_ew(N, k, reps, seed):
    """The library's baseline subsets of a label of k rows among N when C(N, k) > 64: `reps`
    partial Fisher-Yates draws from one generator started afresh for the label (seeded with the
    stream's seed ^ DSMI_TAG), each sorted. At most 64 subsets: every one (dsmi_subsets)."""
    if math.comb(N, k) <= DSMI_EXACT_MAX:
        return dsmi_subsets(N, k)
    r = Xoshiro(seed ^ DSMI_TAG)
    out = []
    for _ in range(reps):
        idx = list(range(N))
        for i in range(k):
            j = i + r.below(N - i)
            idx[i], idx[j] = idx[j], idx[i]
        out.append(np.array(sorted(idx[:k]), dtype=np.intp))
    return out


def sample(N, m, seed):
    """The m of N window rows (ascending indices) a kernel metric reads with the stream's seed."""
    idx = list(range(N))
    r = Xoshiro(seed ^ SAMPLE_TAG)
    for i in range(m):
        j = i + r.below(N - i)
        idx[i], idx[j] = idx[j], idx[i]
    return np.array(sorted(idx[:m]))


if __name__ == "__main__":
    Xd = np.array([[0], [1], [2], [10]], dtype=float)
    # A8 (reference run, metrics-anchors §3)
    _check("A8 DSE [[0],[1],[2],[10]] σ=10 t=1", 0.5837611880287343, dse(Xd, 10, 1))
    _check("A8 DSE σ=1 t=1", 1.701821114374677, dse(Xd, 1, 1))
    _check("A8 DSE σ=1 t=2", 1.4262562062777167, dse(Xd, 1, 2))
    _check("A8 DSE σ=0.1 t=1 (log2 4 + eps terms)", 2.0000000000000004, dse(Xd, 0.1, 1))
    lam = np.sort(np.linalg.eigvalsh(diffusion_matrix(Xd, 10)))[::-1]
    for e, g in zip([1, 0.1543376151, 0.0018443989, 0.0000022592], lam):
        _check("A8 eig(K) σ=10", e, float(g), 1e-10)

    E = np.array([[0], [.1], [.2], [5], [5.1], [5.2]])
    yE = np.array([0, 0, 0, 1, 1, 1])
    _check("W1 DSE(E) σ=1", 1.0575762277151997, dse(E, 1))
    _check("W2 DSE([[0],[.1],[.2]]) σ=1", 0.0575762358724007, dse(E[:3], 1))
    _check("W2 DSE([[5],[5.1],[5.2]]) σ=1", 0.0575762358724007, dse(E[3:], 1))
    _check("W3 DSMI full", 0.9999999918427988, dsmi(E, yE, 1, mode="full"))
    _check("W4 E[DSE(S)] over all 20 size-3 subsets",
           0.9253883331155851, float(np.mean([dse(E[S], 1) for S in dsmi_subsets(6, 3)])))
    _check("W4 DSMI matched (exact)", 0.8678120972431843, dsmi(E, yE, 1, mode="matched"))
    _check("§3 DSMI reference draw (Python random, seed 0)",
           0.9660793361272462, dsmi_python_random(E, yE, 1))
    every = {0: dsmi_subsets(6, 3), 1: dsmi_subsets(6, 3)}
    _check("DSMI explicit subsets = exact mode", dsmi(E, yE, 1),
           dsmi_matched_with_subsets(E, yE, every, 1), 1e-15)

    X12 = np.random.default_rng(3).standard_normal((12, 2))
    y12 = np.array([0] * 6 + [1] * 6)  # C(12, 6) = 924 > 64: seeded draw of 5 subsets
    drawn = {0: dsmi_subsets(12, 6, 5, 11), 1: dsmi_subsets(12, 6, 5, 11)}
    _check_true("DSMI > 64 subsets: 5 seeded PCG64 draws", len(drawn[0]) == 5,
                f"first subset {drawn[0][0].tolist()}")
    _check("DSMI > 64 subsets = explicit-subset variant on the same draw",
           dsmi_matched_with_subsets(X12, y12, drawn, 1.0), dsmi(X12, y12, 1.0, seed=11), 0)

    Xs = np.array([[0], [0], [10], [10], [20], [20]], dtype=float)
    _check("A9 RKE σ=1 on [0,0,10,10,20,20]", 3.0, rke(Xs, 1.0))
    _check("A1 Vendi laplacian σ=1 on [0,0,10,10,20,20]", 2.9999999958777006,
           vendi_kernel(Xs, "laplacian", 1.0))
    _check("§7 mean k², Xd σ=1 (1/RKE)", 0.34425931515395236, 1 / rke(Xd, 1.0))
    _check("§7 mean k², Xd σ=2 (1/RKE)", 0.4906851401835679, 1 / rke(Xd, 2.0))
    _check("§7 RKE Xd σ=2", 2.0379667492, rke(Xd, 2.0), 1e-9)
    _check("§7 Vendi-1 gaussian Xd σ=2", 2.4151623369, vendi_kernel(Xd, "gaussian", 2.0), 1e-9)
    KA2 = np.array([[1, .9, 0], [.9, 1, 0], [0, 0, 1]])
    for q, e in [(1, 2.1573004833739833), (0.5, 2.420348357053285),
                 (2, 1.9480519480519483), ("inf", 1.5789473684210527)]:
        _check(f"A2 score_K q={q}", e, vendi_K(KA2, q))
    Xv = np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=float)
    _check("A3 cosine Vendi q=1 (= score_dual)", 1.8762502975011357, vendi_kernel(Xv, "cosine"))
    _check("A3 cosine Vendi q=2 (= score_dual)", 1.7777777777777777,
           vendi_kernel(Xv, "cosine", q=2))
    _check("Vendi q=inf float = string", vendi_kernel(Xv, "cosine", q="inf"),
           vendi_kernel(Xv, "cosine", q=float("inf")), 0)

    phx = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    phy = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=float)
    S, D = schur_parts(*paired_blocks(phx, phy))
    _check_true("A11 eig S ≈ {0,0,1/4}, eig Δ ≈ {0,1/4,1/2}",
                np.allclose(np.linalg.eigvalsh(S), [0, 0, .25], atol=1e-11)
                and np.allclose(np.linalg.eigvalsh(D), [0, .25, .5], atol=1e-11),
                f"{np.linalg.eigvalsh(S)} {np.linalg.eigvalsh(D)}")
    _check("A11 sce (complement)", 1.0000000045, sce(phx, phy), 1e-9)
    _check("A11 sce_text (difference)", 1.6118549016, sce_text(phx, phy), 1e-9)
    _check("§4 schur_vendi_from_eigs([.5,.25,.25]) = 2√2", 2 * math.sqrt(2),
           schur_vendi_from_eigs([.5, .25, .25]))
    _check("§4 schur_vendi_from_eigs([.25,.25]) = √2", math.sqrt(2),
           schur_vendi_from_eigs([.25, .25]))
    _check("A11 sce, literal pinv evaluation", 1.0000000045, sce(phx, phy, literal=True), 1e-9)
    _check("A11 sce_text, literal pinv evaluation", 1.6118549016,
           sce_text(phx, phy, literal=True), 1e-9)
    print(f"    sce, sce_text at full precision: {sce(phx, phy)!r}, {sce_text(phx, phy)!r}")
    xf = np.array([[1, 0], [1, 1], [0, 2], [3, 1], [2, 2]], dtype=float)
    yf = np.array([[1, 2, 0], [0, 1, 1], [2, 0, 1], [1, 1, 1], [0, 3, 2]], dtype=float)
    _check_true("A* stable = literal pinv (full-rank C_xx)",
                np.allclose(a_star(xf, yf), pinv_ridge(paired_blocks(xf, yf)[0]) @
                            paired_blocks(xf, yf)[1], rtol=0, atol=1e-12))
    _check_true("nullify: x·A* is the least-squares fit, residual ⟂ x",
                np.abs(xf.T @ nullify(xf, yf)).max() < 1e-10)

    # Grouped metrics: hand-derived
    Xg = np.array([[0, 0], [2, 0], [10, 10], [10, 12]], dtype=float)
    yg = [0, 0, 1, 1]
    _check("group_separation hand: 202/4", 50.5, group_separation(Xg, yg))
    _check("centroid_cosine hand: 10/√221", 10 / math.sqrt(221), centroid_cosine(Xg, yg))
    _check("group_erank hand: rank-1 labels", 1.0, group_erank(Xg, yg)[0], 1e-12)
    Xr = np.array([[1, 0], [-1, 0], [0, 2], [0, -2], [5, 5], [6, 5], [5, 7]], dtype=float)
    yr = [3, 3, 3, 3, 1, 1, 1]
    h = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    _check("group_erank hand: label 3 cov diag(.5,2) → exp H(.2,.8)", math.exp(h),
           group_erank(Xr, yr)[1])
    _check_true("group_labels ascending", group_labels(yr) == [1, 3], str(group_labels(yr)))
    try:
        from reference import metrics as _proj_metrics  # tests/numeric/reference.py
        for lab, v in zip(group_labels(yr), group_erank(Xr, yr)):
            _check(f"group_erank = project erank (label {lab})",
                   _proj_metrics(Xr[np.array(yr) == lab], center=True)["erank"], v, 1e-12)
    except ImportError:
        print("    (tests/numeric/reference.py not importable: project-erank cross-check skipped)")

    # Properties
    rng = np.random.default_rng(7)
    for n, d, sig in [(5, 3, 1.0), (40, 8, 2.0), (100, 16, 10.0)]:
        X = rng.standard_normal((n, d))
        v = dse(X, sig)
        _check_true(f"0 ≤ DSE ≤ log2 n (n={n}, σ={sig})", -1e-12 <= v <= math.log2(n) + 1e-12,
                    f"{v} ≤ {math.log2(n)}")
        lmax = float(np.linalg.eigvalsh(diffusion_matrix(X, sig)).max())
        _check(f"λ_max(K) = 1 (n={n})", 1.0, lmax, 1e-12)
        _check(f"RKE = Vendi q=2 gaussian (n={n}, σ={sig})",
               vendi_kernel(X, "gaussian", sig, q=2), rke(X, sig), 1e-9 * n)
        same = np.tile(X[:1], (n, 1))
        v0 = dse(same, sig)
        _check_true(f"n identical rows: DSE ≈ 0 (n={n})", 0 <= v0 < n * 1e-13, repr(v0))
        far = np.arange(n, dtype=float)[:, None] * 1e3 * sig
        _check(f"n far-apart rows: DSE ≈ log2 n (n={n})", math.log2(n), dse(far, sig), 1e-12)
        # paired: S + Δ = C_yy, tr C_yy = 1 with RFF, Δ = C_yy when y = x
        om = rff_omega(d, 64, sig, seed=n)
        fx, fy = rff_features(X, omega=om), rff_features(X[::-1] * 0.5, omega=om)
        Cxx, Cxy, Cyy = paired_blocks(fx, fy)
        S, D = schur_parts(Cxx, Cxy, Cyy)
        _check(f"RFF tr C_yy = 1 (n={n})", 1.0, float(np.trace(Cyy)), 1e-12)
        _check_true(f"S + Δ = C_yy (n={n})", np.allclose(S + D, Cyy, atol=1e-14))
        _, Dxx = schur_parts(Cxx, Cxx, Cxx)
        _check_true(f"Δ = C_xx when y = x (n={n})", np.allclose(Dxx, Cxx, atol=1e-9))
        A = a_star(X, X)
        _check_true(f"nullify(x, x) ≈ 0 (n={n})",
                    np.abs(nullify(X, X)).max() < 1e-9 and A.shape == (d, d))
    print("all anchors and properties agree")
