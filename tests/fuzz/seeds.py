#!/usr/bin/python3
"""Seeds for the fuzz targets, from proto/vectors/v1.tsv.

usage: seeds.py VECTORS.tsv DECODER_DIR DISPATCH_DIR

decoder: each vector's request and response bytes. dispatch (input = one flag byte, then what
the client sends; see fuzz_dispatch.c): each request alone, the whole recorded session in one
input, and requests on the stream "s" the target creates for every input (queries of every kind
of metric, the window, top-k with vectors, a pipelined ingest, reset and drop), on a trusted
connection and on one that must authenticate."""
import os
import struct
import sys

import msgpack


def req(msgid, method, params):
    return msgpack.packb([0, msgid, method, params], use_bin_type=True)


def note(method, params):
    return msgpack.packb([2, method, params], use_bin_type=True)


def main():
    vectors, dec, dis = sys.argv[1:4]
    os.makedirs(dec, exist_ok=True)
    os.makedirs(dis, exist_ok=True)
    session = b""
    for line in open(vectors):
        if line.startswith("#") or not line.strip():
            continue
        name, rq, rs = line.rstrip("\n").split("\t")[:3]
        rq, rs = bytes.fromhex(rq), bytes.fromhex(rs)
        open(os.path.join(dec, "req_" + name), "wb").write(rq)
        if rs:
            open(os.path.join(dec, "resp_" + name), "wb").write(rs)
        open(os.path.join(dis, "vec_" + name), "wb").write(b"\x00" + rq)
        if not name.startswith("framing"):
            session += rq
    open(os.path.join(dis, "session"), "wb").write(b"\x00" + session)
    rows = struct.pack("<8f", *[1.5, -2, 0.25, 3, 0, 1, -1, 2])
    on_s = {
        "entropy_erank": req(1, "query", {"stream": "s", "metrics": ["entropy", "erank"]}),
        "renyi_params": req(2, "query", {"stream": "s", "metrics": ["renyi", "vendi"],
                                         "params": {"alpha": 2.0}}),
        "topk_vectors": req(3, "query", {"stream": "s", "metrics": "topk",
                                         "params": {"k": 2, "vectors": True}, "fresh": True}),
        "window": req(4, "query", {"stream": "s", "metrics": ["trace", "rankme"],
                                   "source": "window", "center": False}),
        "pipelined": note("ingest", {"stream": "s", "data": rows, "dtype": "f32",
                                     "shape": [2, 4]})
                     + req(5, "query", {"stream": "s", "metrics": "spectrum", "max_lag": 4}),
        "rows_reset_drop": req(6, "ingest", {"stream": "s", "rows": [[1, 2, 3, 4]]})
                           + req(7, "reset", {"stream": "s"}) + req(8, "info", {"stream": "s"})
                           + req(9, "drop", {"stream": "s"}) + req(10, "list", {}),
        "stats_metrics": req(11, "stats", {}) + req(12, "metrics", {}),
        "steps": note("ingest", {"stream": "s", "data": rows, "dtype": "f32", "shape": [2, 4],
                                 "step": 3, "producer": "p", "seq": 1})
                 + note("ingest", {"stream": "s", "rows": [[1, 2, 3, 4]], "step": 2})
                 + req(13, "ingest", {"stream": "s", "rows": [], "step": 4, "end_step": True})
                 + req(14, "ingest", {"stream": "s", "rows": [[1, 2, 3, 4]], "step": 5,
                                      "producer": "p", "seq": 1})
                 + req(15, "flush", {"stream": "s"}) + req(16, "info", {"stream": "s"})
                 + req(17, "runs", {}),
        "ranks": req(18, "create", {"stream": "w", "run": "r", "dim": 4, "world": 2,
                                    "step_timeout": 0.05})
                 + req(19, "ingest", {"stream": "w", "run": "r", "rows": [[1, 2, 3, 5]],
                                      "step": 7, "rank": 1, "world": 2})
                 + req(20, "ingest", {"stream": "w", "run": "r", "rows": [[1, 0, 3, 5]],
                                      "step": 8, "rank": 0})
                 + req(21, "reset", {"stream": "w", "run": "r"})
                 + req(22, "ingest", {"stream": "w", "run": "r", "rows": [[1, 0, 3, 5]],
                                      "step": 9, "rank": 1}),
        # a tokens stream and a stats stream: create, stepped batches with mask and lengths,
        # their metrics on every source, export and merge back
        "tokens": req(23, "create", {"stream": "t", "kind": "tokens",
                                     "columns": ["entropy", "logp", "advantage"], "world": 2,
                                     "window_steps": 2})
                  + req(24, "ingest", {"stream": "t", "step": 0, "rank": 0, "world": 2,
                                       "columns": {c: {"dtype": "f32", "data": rows}
                                                   for c in ("entropy", "logp", "advantage")},
                                       "mask": bytes([1, 1, 0, 1, 1, 1, 1, 1]),
                                       "lengths": struct.pack("<2I", 3, 5), "end_step": True})
                  + req(25, "ingest", {"stream": "t", "step": 0, "rank": 1, "world": 2,
                                       "columns": {c: {"dtype": "bf16", "data": rows[:8]}
                                                   for c in ("entropy", "logp", "advantage")},
                                       "end_step": True})
                  + req(26, "query", {"stream": "t", "metrics": ["token_mean", "quantile", "cov",
                                                                 "seq_mean", "histogram"],
                                      "params": {"level": 0.9}, "source": "step"})
                  + req(27, "query", {"stream": "t", "metrics": ["quantile", "corr"],
                                      "source": "all"})
                  + req(28, "export", {"stream": "t"}),
        "stats": req(29, "create", {"stream": "a", "kind": "stats", "shape": [2, 2],
                                    "reduce": "mean"})
                 + req(30, "ingest", {"stream": "a", "step": 1, "values": {
                     "dtype": "f32", "data": rows[:16]}, "counts": {"dtype": "f32",
                                                                   "data": struct.pack("<4f", 1, 2, 3, 4)}})
                 + req(31, "query", {"stream": "a", "metrics": ["cells", "by_row", "cell_mean"],
                                     "source": "all"}),
        # a labelled stream: rows with labels (plain and stepped), the grouped and kernel
        # metrics, a batch without labels refused
        "labels": req(32, "create", {"stream": "g", "dim": 4, "window": 16, "world": 2})
                  + req(33, "ingest", {"stream": "g", "data": rows[:32], "dtype": "f32",
                                       "shape": [2, 4], "labels": struct.pack("<2I", 3, 7)})
                  + req(34, "ingest", {"stream": "g", "step": 0, "rank": 0, "world": 2,
                                       "rows": [[1, 2, 3, 4], [4, 3, 2, 1]],
                                       "labels": struct.pack("<2I", 7, 3), "end_step": True})
                  + req(35, "ingest", {"stream": "g", "rows": [[1, 0, 0, 1]]})
                  + req(36, "query", {"stream": "g", "metrics": ["group_erank", "dsmi", "dse",
                                                                 "vendi_kernel"],
                                      "params": {"kernel": "cosine", "max_rows": 3}}),
        # a paired stream: create with dims, x/y ingest (plain, mixed dtypes, stepped), the
        # Schur entropies, nullify; an rff stream's nullify refused
        "paired": req(37, "create", {"stream": "p", "kind": "paired", "dims": [2, 3], "world": 2})
                  + req(38, "ingest", {"stream": "p",
                                       "x": {"dtype": "f32", "data": struct.pack("<4f", 1, 0, 0, 1),
                                             "shape": [2, 2]},
                                       "y": {"dtype": "f64",
                                             "data": struct.pack("<6d", 1, 0, 0, 0, 1, 1),
                                             "shape": [2, 3]}})
                  + req(39, "ingest", {"stream": "p", "step": 0, "rank": 1, "world": 2,
                                       "x": {"dtype": "f16", "data": struct.pack("<2e", 1, 2),
                                             "shape": [1, 2]},
                                       "y": {"dtype": "f16", "data": struct.pack("<3e", 3, 2, 1),
                                             "shape": [1, 3]}, "end_step": True})
                  + req(40, "query", {"stream": "p", "metrics": ["sce", "sce_text"]})
                  + req(41, "nullify", {"stream": "p",
                                        "x": {"dtype": "f32", "data": struct.pack("<2f", 1, 1),
                                              "shape": [1, 2]},
                                        "y": {"dtype": "f32", "data": struct.pack("<3f", 1, 2, 3),
                                              "shape": [1, 3]}})
                  + req(42, "create", {"stream": "r", "kind": "paired", "dims": [2, 2],
                                       "features": "rff", "sigma": 1.5, "rff_dim": 4})
                  + req(43, "nullify", {"stream": "r",
                                        "x": {"dtype": "f32", "data": struct.pack("<2f", 1, 1),
                                              "shape": [1, 2]},
                                        "y": {"dtype": "f32", "data": struct.pack("<2f", 1, 2),
                                              "shape": [1, 2]}}),
    }
    for name, body in on_s.items():
        open(os.path.join(dis, "s_" + name), "wb").write(b"\x40" + body)
    auth = req(1, "auth", {"token": "fuzz-token-0123456789"})
    open(os.path.join(dis, "auth_then_query"), "wb").write(b"\x01" + auth + on_s["entropy_erank"])
    open(os.path.join(dis, "auth_wrong"), "wb").write(
        b"\x01" + req(1, "auth", {"token": "wrong"}) + on_s["stats_metrics"])


if __name__ == "__main__":
    main()
