#!/usr/bin/python3
"""Kernel metrics over the wire, against the numpy statement (tests/numeric/kernel_ref.py): a real
daemon, a window of 300 rows; `dse`, `rke` and `vendi_kernel` (its `kernel` a string parameter)
by `query` equal numpy at 1e-9; above `max_rows` the answer carries `{name}_rows` and equals numpy
on the rows the documented seeded draw picks; a kernel name the table does not know is BAD_PARAM
listing the kernels; `rke` without its required sigma is BAD_PARAM. Labels over the wire
(`ingest`'s `labels`, u32 little-endian per row): the grouped metrics and dsmi equal numpy, with
`group_erank_labels`; a wrong length (BAD_REQUEST), an unlabelled batch to a labelled stream and
labels to an unlabelled one (BAD_PARAM) change nothing; a stepped batch's labels are staged and
survive a restart with the step pending."""
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
import kernel_ref as ref  # noqa: E402
from harness import Daemon, RpcError  # noqa: E402
from kernel_ref import sample  # noqa: E402  (the library's draw, restated)
from taplib import Tap  # noqa: E402


def rel(a, b):
    return abs(a - b) / max(1.0, abs(b))


def kernel_metrics_by_query():
    rng = np.random.default_rng(11)
    X = (rng.standard_normal((300, 16)) * 2 + 1).astype(np.float32)
    X64 = X.astype(np.float64)
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "k", "dim": 16, "window": 300, "seed": 77})
        c.call("ingest", {"stream": "k", "data": X.tobytes(), "dtype": "f32", "shape": [300, 16]})
        r = c.call("query", {"stream": "k", "metrics": ["dse", "rke", "vendi_kernel"],
                             "params": {"sigma": 5.0, "kernel": "laplacian", "q": 2}})["metrics"]
        want = {"dse": ref.dse(X64, 5.0, 1), "rke": ref.rke(X64, 5.0),
                "vendi_kernel": ref.vendi_kernel(X64, "laplacian", 5.0, 2.0)}
        for k, v in want.items():
            assert rel(r[k], v) <= 1e-9, (k, r[k], v)
            assert f"{k}_rows" not in r, r
        r = c.call("query", {"stream": "k", "metrics": "dse",
                             "params": {"sigma": 5.0, "max_rows": 120}})["metrics"]
        assert r["dse_rows"] == 120, r
        pick = sample(300, 120, 77)
        assert rel(r["dse"], ref.dse(X64[pick], 5.0, 1)) <= 1e-9, r
        for params, word in (({"kernel": "rbf", "sigma": 1}, "gaussian"), ({}, "sigma")):
            metric = "vendi_kernel" if "kernel" in params else "rke"
            try:
                c.call("query", {"stream": "k", "metrics": metric, "params": params})
            except RpcError as e:
                assert e.code == "BAD_PARAM" and word in e.message, (e.code, e.message)
            else:
                raise AssertionError(f"{metric} {params} answered")
    finally:
        d.stop()


def rows_msg(X, **extra):
    return dict({"data": X.tobytes(), "dtype": "f32", "shape": list(X.shape)}, **extra)


def labels_over_the_wire():
    rng = np.random.default_rng(12)
    X = np.vstack([rng.standard_normal((40, 8)) * (1 + i) + 3 * i for i in range(3)])
    X = X.astype(np.float32)
    y = np.repeat(np.array([9, 2, 5], np.uint32), 40)
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    X64 = X.astype(np.float64)
    d = Daemon()
    d2 = None
    try:
        c = d.client()
        c.call("create", {"stream": "g", "dim": 8, "window": 120})
        c.call("ingest", dict(rows_msg(X[:60]), stream="g", labels=y[:60].astype("<u4").tobytes()))
        # the second batch's labels as a list of integers: the same as the bin form
        c.call("ingest", dict(rows_msg(X[60:]), stream="g", labels=[int(v) for v in y[60:]]))
        r = c.call("query", {"stream": "g", "metrics": ["group_erank", "group_separation",
                                                          "centroid_cosine", "dsmi"],
                             "params": {"sigma": 6.0, "mode": "full"}})["metrics"]
        assert r["group_erank_labels"] == [2, 5, 9], r
        for a, b in zip(r["group_erank"], ref.group_erank(X64, y)):
            assert rel(a, b) <= 1e-9, (a, b)
        assert rel(r["group_separation"], ref.group_separation(X64, y)) <= 1e-9, r
        assert rel(r["centroid_cosine"], ref.centroid_cosine(X64, y)) <= 1e-9, r
        assert rel(r["dsmi"], ref.dsmi(X64, y, 6.0, mode="full")) <= 1e-9, r
        before = c.call("info", {"stream": "g"})["count"]
        for params, code, word in (
                (dict(rows_msg(X[:4]), labels=b"\0" * 12), "BAD_REQUEST", "12 bytes for 4 rows"),
                (dict(rows_msg(X[:4]), labels=[1, 2, 3]), "BAD_REQUEST", "12 bytes for 4 rows"),
                (dict(rows_msg(X[:2]), labels=[1, -2]), "BAD_REQUEST",
                 "'labels'[1] is not an integer in [0, 2^32)"),
                (dict(rows_msg(X[:2]), labels=[1, 2 ** 32]), "BAD_REQUEST",
                 "'labels'[1] is not an integer"),
                (rows_msg(X[:4]), "BAD_PARAM", "is labelled: every batch")):
            try:
                c.call("ingest", dict(params, stream="g"))
            except RpcError as e:
                assert e.code == code and word in e.message, (e.code, e.message)
            else:
                raise AssertionError(f"{word}: taken")
        c.call("create", {"stream": "plain", "dim": 8, "window": 50})
        c.call("ingest", dict(rows_msg(X[:10]), stream="plain"))
        try:
            c.call("ingest", dict(rows_msg(X[10:20]), stream="plain",
                                  labels=y[10:20].astype("<u4").tobytes()))
        except RpcError as e:
            assert e.code == "BAD_PARAM" and "without labels" in e.message, e.message
        else:
            raise AssertionError("labels taken by an unlabelled stream")
        assert c.call("info", {"stream": "g"})["count"] == before
        # stepped: staged with their labels, one rank still missing when the daemon restarts
        c.call("create", {"stream": "s", "dim": 8, "window": 120, "world": 2})
        for rank, part in enumerate((slice(0, 50), slice(50, 120))):
            if rank == 1:
                c.call("snapshot", {})
                assert d.stop() == 0
                d2 = Daemon(state_dir=d.dir)
                c = d2.client()
            c.call("ingest", dict(rows_msg(X[part]), stream="s", step=0, rank=rank, world=2,
                                  end_step=True, labels=y[part].astype("<u4").tobytes()))
        for _ in range(100):
            if c.call("info", {"stream": "s"})["count"] == 120:
                break
            time.sleep(0.05)
        got = c.call("query", {"stream": "s", "metrics": "group_separation"})["metrics"]
        assert rel(got["group_separation"], ref.group_separation(X64, y)) <= 1e-9, got
    finally:
        (d2 or d).stop()


if __name__ == "__main__":
    t = Tap()
    t.case("kernel_metrics_by_query", kernel_metrics_by_query)
    t.case("labels_over_the_wire", labels_over_the_wire)
    t.done()
