#!/usr/bin/python3
"""Kernel metrics over the wire, against the numpy statement (tests/numeric/kernel_ref.py): a real
daemon, a window of 300 rows; `dse`, `rke` and `vendi_kernel` (its `kernel` a string parameter)
by `query` equal numpy at 1e-9; above `max_rows` the answer carries `{name}_rows` and equals numpy
on the rows the documented seeded draw picks; a kernel name the table does not know is BAD_PARAM
listing the kernels; `rke` without its required sigma is BAD_PARAM."""
import os
import sys

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


if __name__ == "__main__":
    t = Tap()
    t.case("kernel_metrics_by_query", kernel_metrics_by_query)
    t.done()
