"""proto/vectors/v1.tsv against a fresh daemon: each request's bytes are sent as they are and
the reply must be byte-identical to the recorded one — except replies with volatile keys (times,
durations, and memory_bytes, which is the size of this build's structs), which must be identical
after those keys are removed. Also checks that each
recorded request is what msgpack (the reference encoder a client would use) produces for the
decoded value, so the file stays usable as client encoding vectors."""
import os
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import Daemon  # noqa: E402
from make_vectors import read_one  # noqa: E402
from taplib import Tap  # noqa: E402

VECTORS = os.path.join(HERE, "..", "..", "proto", "vectors", "v1.tsv")


def load():
    out = []
    for line in open(VECTORS):
        if line.startswith("#") or not line.strip():
            continue
        name, req, resp, vol = line.rstrip("\n").split("\t")
        out.append((name, bytes.fromhex(req), bytes.fromhex(resp), [v for v in vol.split(",") if v]))
    return out


def strip(o, keys):
    if isinstance(o, dict):
        return {k: strip(v, keys) for k, v in o.items() if k not in keys}
    if isinstance(o, list):
        return [strip(v, keys) for v in o]
    return o


def main():
    vecs = load()
    t = Tap()
    t.case("vectors_file_has_the_conversation", lambda: None if len(vecs) >= 20 else
           (_ for _ in ()).throw(AssertionError(len(vecs))))

    def requests_are_canonical_msgpack():
        for name, req, _, _ in vecs:
            if name.startswith("framing"):
                continue
            v = msgpack.unpackb(req, raw=False)
            assert msgpack.packb(v, use_bin_type=True) == req, f"{name}: not canonical"

    t.case("requests_are_canonical_msgpack", requests_are_canonical_msgpack)
    d = Daemon()
    c = d.client()
    buf = b""
    try:
        for name, req, want, vol in vecs:
            def replay(name=name, req=req, want=want, vol=vol):
                nonlocal buf
                c.send_raw(req)
                if not want:
                    return
                got, buf = read_one(c.sock, buf)
                if not vol:
                    assert got == want, f"{name}: bytes differ\n got  {got.hex()}\n want {want.hex()}"
                else:
                    g, w = msgpack.unpackb(got, raw=False), msgpack.unpackb(want, raw=False)
                    assert strip(g, vol) == strip(w, vol), f"{name}: {g} != {w}"
                    for k in vol:  # the volatile keys are still there
                        assert k in repr(g), f"{name}: {k} missing"
            t.case(f"vector_{name}", replay)
    finally:
        c.close()
        d.stop()
    t.done()


if __name__ == "__main__":
    main()
