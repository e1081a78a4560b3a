#!/usr/bin/python3
"""Regenerates proto/vectors/v1.tsv by running a fresh daemon through a fixed conversation.

Each line: name <TAB> request hex <TAB> response hex (empty for notifications) <TAB> volatile
keys (comma-separated result keys whose values vary from run to run: times, durations).
Usage: /usr/bin/python3 tests/integration/make_vectors.py build/daemon/eigenwatchd
"""
import os
import sys

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import Daemon  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "proto", "vectors", "v1.tsv")


W_ROWS = [[1, 0], [0, 2], [3, 1]]


def conversation(w_state=b""):
    p = lambda *a: msgpack.packb(list(a), use_bin_type=True)  # noqa: E731
    f32 = np.array([[1, 2], [3, 5]], dtype=np.float32).tobytes()
    nan = np.array([[1, np.nan]], dtype=np.float32).tobytes()
    return [
        ("ping", p(0, 1, "ping", []), ""),
        ("create", p(0, 2, "create", [{"stream": "v", "dim": 2, "window": 8}]), ""),
        ("create_again_same_config", p(0, 3, "create", [{"stream": "v", "dim": 2, "window": 8}]), ""),
        ("create_different_config", p(0, 4, "create", [{"stream": "v", "dim": 3}]), ""),
        ("ingest_rows", p(0, 5, "ingest", [{"stream": "v", "rows": [[1, 0], [0, 1], [1, 1], [2, 0]]}]), ""),
        ("ingest_bin_f32", p(0, 6, "ingest", [{"stream": "v", "data": f32, "dtype": "f32", "shape": [2, 2]}]), ""),
        ("ingest_notification", p(2, "ingest", [{"stream": "v", "rows": [[0, 2]]}]), ""),
        ("query", p(0, 7, "query", [{"stream": "v", "metrics": ["entropy", "trace", "topk"], "params": {"k": 2}}]), "elapsed_ms"),
        ("query_cached", p(0, 8, "query", [{"stream": "v", "metrics": ["entropy"], "max_lag": 0}]), "elapsed_ms"),
        ("info", p(0, 9, "info", [{"stream": "v"}]), "last_ingest,memory_bytes"),
        ("list", p(0, 10, "list", []), "last_ingest,memory_bytes"),
        ("unknown_method", p(0, 11, "frobnicate", []), ""),
        ("no_such_stream", p(0, 12, "info", [{"stream": "ghost"}]), ""),
        ("dim_mismatch", p(0, 13, "ingest", [{"stream": "v", "rows": [[1, 2, 3]]}]), ""),
        ("bad_dtype", p(0, 14, "ingest", [{"stream": "v", "data": b"\0" * 8, "dtype": "i8", "shape": [1, 2]}]), ""),
        ("non_finite", p(0, 15, "ingest", [{"stream": "v", "data": nan, "dtype": "f32", "shape": [1, 2]}]), ""),
        ("unknown_metric", p(0, 16, "query", [{"stream": "v", "metrics": ["nope"]}]), ""),
        ("bad_param", p(0, 17, "query", [{"stream": "v", "metrics": ["renyi"], "params": {"alpha": -1}}]), ""),
        ("bad_request_params", p(0, 18, "info", ["v"]), ""),
        ("reset", p(0, 19, "reset", [{"stream": "v"}]), ""),
        ("degenerate", p(0, 20, "query", [{"stream": "v", "metrics": ["entropy"]}]), ""),
        ("drop", p(0, 21, "drop", [{"stream": "v"}]), ""),
        ("metrics", p(0, 22, "metrics", []), ""),
        ("ingest_w", p(0, 23, "ingest", [{"stream": "w", "rows": W_ROWS}]), ""),
        ("export", p(0, 24, "export", [{"stream": "w"}]), ""),
        ("merge", p(0, 25, "merge", [{"stream": "w2", "state": w_state}]), ""),
        ("merge_bad_state", p(0, 26, "merge", [{"stream": "w2", "state": b"nope"}]), ""),
        ("snapshot", p(0, 27, "snapshot", []), "seconds"),
        ("create_in_run", p(0, 28, "create", [{"stream": "w", "run": "r2", "dim": 3, "window": 0}]), ""),
        ("list_run", p(0, 29, "list", [{"run": "r2"}]), "last_ingest,memory_bytes"),
        ("runs", p(0, 30, "runs", []), "last_activity"),
        ("no_such_stream_in_run", p(0, 31, "info", [{"stream": "w2", "run": "r2"}]), ""),
        ("bad_run", p(0, 32, "info", [{"stream": "w", "run": "../x"}]), ""),
        ("framing_0xc1_closes", bytes.fromhex("940001c1"), ""),
    ]


def read_one(sock, buf):
    up = msgpack.Unpacker(raw=False)
    while True:
        up.feed(buf)
        try:
            up.unpack()
            n = up.tell()
            return buf[:n], buf[n:]
        except msgpack.OutOfData:
            data = sock.recv(1 << 16)
            if not data:
                return b"", b""
            buf += data


def exported_w():
    """The state `export` answers for stream w (deterministic: the merge vector carries it)."""
    d = Daemon()
    try:
        c = d.client()
        c.call("ingest", {"stream": "w", "rows": W_ROWS})
        return c.call("export", {"stream": "w"})["state"]
    finally:
        d.stop()


def run(daemon_bin):
    os.environ["EWD_BIN"] = daemon_bin
    w_state = exported_w()
    d = Daemon()
    c = d.client()
    lines, buf = [], b""
    try:
        for name, req, volatile in conversation(w_state):
            c.send_raw(req)
            if req[0] == 0x92 + 1 and req[1] == 2:  # [2, ...] notification: no reply
                resp = b""
            else:
                resp, buf = read_one(c.sock, buf)
            lines.append(f"{name}\t{req.hex()}\t{resp.hex()}\t{volatile}")
    finally:
        d.stop()
    return lines


if __name__ == "__main__":
    lines = run(sys.argv[1])
    with open(OUT, "w") as f:
        f.write("# eigenwatch protocol v1 test vectors: name, request hex, response hex, volatile keys\n")
        f.write("# generated by tests/integration/make_vectors.py; replayed by test_vectors.py\n")
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} vectors to {OUT}")
