"""Published anchor values from the reference implementations (with their provenance
in docs/METRICS.md, "Definitions, references and anchors"), reproduced by libeigenwatch to 1e-9 relative."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewlib import Stream  # noqa: E402
from taplib import Tap, close  # noqa: E402

TOL = 1e-9
X_VENDI = np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float64)
R = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3], [1, 1, 1]], dtype=np.float64)
Z_RANKME = np.array([[3, 0, 0], [0, 2, 0], [0, 0, 1], [0, 0, 0]], dtype=np.float64)


def stream_of(X, **kw):
    s = Stream(X.shape[1], window=64, **kw)
    s.ingest(X)
    return s


def vendi_score_dual():
    # A3: vendi_score.score_dual(X, q): L2-normalised rows, uncentred XᵀX/n
    s = stream_of(X_VENDI, normalize="l2")
    close(s.q("vendi", center=False), 1.8762502975011357, TOL, "score_dual q=1")
    close(s.q("vendi", center=False, q=2), 1.7777777777777777, TOL, "score_dual q=2")


def vendi_dual_equals_f32_input():
    # the same anchor through the f32 path (values are exact in f32) at the f32-state tolerance
    s = Stream(2, normalize="l2", window=64)
    s.ingest(X_VENDI.astype(np.float32))
    close(s.q("vendi", center=False), 1.8762502975011357, 1e-7, "score_dual q=1 (f32 rows)")


def diff_erank_anchor():
    # A5: Diff-eRank erank / entropy / normalised entropy on R (centre, row-normalise, Z'Z/N)
    s = stream_of(R)
    close(s.q("diff_erank"), 2.8241109120, 1e-10, "diff_erank (10 published digits)")
    close(s.q("diff_erank"), 2.824110912008349, TOL, "diff_erank vs score_dual(center R)")
    close(s.q("entropy", source="window_cn"), 1.0381935937, 1e-10, "entropy nats")
    close(s.q("entropy_normalized", source="window_cn"), 0.9450045338, 1e-10, "normalised")
    close(s.q("erank", source="window_cn"), 2.824110912008349, TOL, "erank on window_cn")


def mnn_anchor():
    # A6: Matrix Nuclear-Norm / N on R
    s = stream_of(R)
    close(s.q("mnn_exact"), 0.8611746102, 1e-10, "MNN/N")
    close(s.q("mnn", source="window_cn"), 0.8611746102, 1e-10, "mnn on window_cn")


def uncomp_anchor():
    # A7: UNComp H_1/H_2/H_3 with R as one head (k leading eigenvalues, divided by ln d)
    s = stream_of(R)
    for k, want in [(1, 0.3155802701), (2, 0.6377854676), (3, 0.9450045338)]:
        close(s.q("entropy_truncated", source="window_cn", k=k), want, 1e-9, f"H_{k}")


def rankme_anchor():
    # A12: RankMe of Z with singular values [3,2,1], eps=1e-7, and eps=0 (Roy–Vetterli)
    s = stream_of(Z_RANKME)
    close(s.q("rankme"), 2.7494594344, 1e-10, "RankMe eps=1e-7")
    close(s.q("rankme", eps=0), 2.7494592740, 1e-10, "RankMe eps=0")
    close(s.q("rankme", eps=1e-5), 2.7494753161, 1e-10, "RankMe eps=1e-5")


def rankme_rank1_anchor():
    # A13: rank-1 Z with min(N, K) = 2048: eps=1e-7 → 1.0033047228, eps=1e-5 → 1.2657433578
    d = 2048
    s = Stream(d, window=0, live_k=0)
    X = np.zeros((d, d), dtype=np.float32)
    X[:, 0] = np.linspace(1, 2, d, dtype=np.float32)  # axis-aligned: exact zeros elsewhere
    s.ingest(X)
    close(s.q("rankme"), 1.0033047228, 1e-9, "rank-1 eps=1e-7")
    close(s.q("rankme", eps=1e-5), 1.2657433578, 1e-9, "rank-1 eps=1e-5")


def participation_ratio_anchors():
    # PR(eig = [9,4,1]) = 2.0 (uncentred S of Z has eigenvalues [9,4,1]/4)
    s = stream_of(Z_RANKME)
    close(s.q("participation_ratio", center=False), 2.0, 1e-12, "PR [9,4,1]")
    close(s.q("vendi", center=False, q=2), 2.0, 1e-12, "PR == Vendi q=2")
    # A14: PR(eig(A)) for R of A5 = 2.6616991858 = score_dual(center(R), q=2)
    s = stream_of(R)
    close(s.q("participation_ratio", source="window_cn"), 2.6616991858, 1e-10, "PR of A5")
    close(s.q("vendi", source="window_cn", q=2), 2.6616991857, 1e-10, "score_dual(center R) q=2")


def vendi_kernel_anchor_via_features():
    # A2 in feature form: K = [[1,.9,0],[.9,1,0],[0,0,1]] = F Fᵀ with unit rows F; score_dual on F
    # gives score_K(K) for every q: 2.1573004833739833 / 2.420348357053285 (q=.5) /
    # 1.9480519480519483 (q=2) / 1.5789473684210527 (q=inf)
    a = np.sqrt(1 - 0.81)
    F = np.array([[1, 0, 0], [0.9, a, 0], [0, 0, 1]])
    s = stream_of(F, normalize="l2")
    close(s.q("vendi", center=False), 2.1573004833739833, TOL, "q=1")
    close(s.q("vendi", center=False, q=0.5), 2.420348357053285, TOL, "q=0.5")
    close(s.q("vendi", center=False, q=2), 1.9480519480519483, TOL, "q=2")
    close(s.q("vendi", center=False, q="inf"), 1.5789473684210527, TOL, "q=inf")


def main():
    t = Tap()
    t.case("vendi_score_dual_anchor_A3", vendi_score_dual)
    t.case("vendi_score_dual_anchor_through_f32_rows", vendi_dual_equals_f32_input)
    t.case("vendi_score_K_anchor_A2_via_unit_features", vendi_kernel_anchor_via_features)
    t.case("diff_erank_anchor_A5", diff_erank_anchor)
    t.case("mnn_anchor_A6", mnn_anchor)
    t.case("uncomp_truncated_entropy_anchor_A7", uncomp_anchor)
    t.case("rankme_anchor_A12", rankme_anchor)
    t.case("rankme_rank1_anchor_A13", rankme_rank1_anchor)
    t.case("participation_ratio_anchors_A14", participation_ratio_anchors)
    t.done()


if __name__ == "__main__":
    main()
