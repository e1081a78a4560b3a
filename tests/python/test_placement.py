"""Rendezvous placement in Python (eigenwatch.placement), against proto/vectors/placement.tsv —
the file the C (test_cclient) and JavaScript (clients/js/test/placement.test.js) clients are
checked against too — and its properties: FNV-1a-64's published values, the owner among a
subset of the daemons is the owner among all when it is in the subset, adding a daemon moves only
the streams it wins, and streams spread over the daemons as a hash spreads them."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "tests", "numeric")]
from eigenwatch.placement import addresses, fnv1a64, place, score  # noqa: E402
from taplib import Tap  # noqa: E402

VECTORS = os.path.join(ROOT, "proto", "vectors", "placement.tsv")


def matches_the_vector_file():
    hashes = places = 0
    for line in open(VECTORS, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        kind, run, stream, addrs, want = line.rstrip("\n").split("\t")
        if kind == "hash":
            assert f"{score(run, stream, addrs):016x}" == want, line
            hashes += 1
        else:
            assert place(run, stream, addresses(addrs)) == want, line
            places += 1
    assert hashes >= 50 and places >= 100, (hashes, places)


def properties():
    assert fnv1a64(b"") == 0xCBF29CE484222325 and fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8  # the published test values
    assert place(None, "s", ["tcp:a:1", "tcp:b:1"]) == place("default", "s", ["tcp:a:1", "tcp:b:1"])
    assert addresses(" tcp:a:1, ,tcp:b:2,tcp:a:1 ") == ["tcp:a:1", "tcp:b:2"]
    three = [f"tcp:node{i}:7700" for i in range(3)]
    four = three + ["tcp:node3:7700"]
    names = [f"layer.{i}" for i in range(2000)]
    moved = 0
    for n in names:
        a, b = place("r", n, three), place("r", n, four)
        if a != b:
            assert b == four[3], f"{n} moved from {a} to {b}, not to the new daemon"
            moved += 1
        for sub in (three[:2], three[1:], [three[0], three[2]]):
            if a in sub:
                assert place("r", n, sub) == a, (n, sub)
    # the new daemon wins about a quarter of the streams (binomial: 500 ± 3·19)
    assert 440 <= moved <= 560, moved
    counts = [sum(1 for n in names if place("r", n, three) == a) for a in three]
    assert all(600 <= k <= 733 for k in counts), counts  # 2000/3 ± 3·21


def main():
    t = Tap()
    t.case("placement_matches_the_vector_file", matches_the_vector_file)
    t.case("placement_properties", properties)
    t.done()


if __name__ == "__main__":
    main()
