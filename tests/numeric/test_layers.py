"""The daemon's rooms and the direction of their includes (DESIGN rule 5 as this tree has it).

daemon/ is split by job into rooms, each allowed to include only its own room and rooms below:

    main.c  5    the process
    net/    4    listeners, connections, msgpack-RPC, HTTP, the JSON API
    cmd/    3    one handler file per job
    run/    2    training steps, scheduled evaluation, alerts, subscriptions, merge plans
    store/  2    snapshots, restore, the training block, history
    core/   1    registry, pool and jobs, config, stats, log

run/ and store/ stand side by side (a step's evaluation writes history; a snapshot saves the eval
list and the rules). An include of a higher room is a call upward, which a lower room must make
through a callback or a vtable slot instead (core/conn.h: the hooks net/ fills in, by which the
rooms below reach a connection). UPWARD lists the upward includes a tree still has, with why;
none is left. The test fails when a new one appears, and also when a listed one is gone (so the
list only shrinks, and says what is left to do)."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import Tap  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAEMON = os.path.join(ROOT, "daemon")
LEVEL = {"core": 1, "run": 2, "store": 2, "cmd": 3, "net": 4, "main": 5}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

# (file, included header): upward includes not yet replaced by callbacks, and why each exists
# (empty: every room includes only its own and those below).
UPWARD = {}


def room_of(rel):
    return "main" if "/" not in rel else rel.split("/", 1)[0]


def edges():
    out = []
    for dirpath, _, names in os.walk(DAEMON):
        if "web" in os.path.relpath(dirpath, DAEMON).split(os.sep):
            continue
        for n in names:
            if not n.endswith((".c", ".h")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, n), DAEMON).replace(os.sep, "/")
            for inc in INCLUDE.findall(open(os.path.join(dirpath, n)).read()):
                if room_of(inc) in LEVEL and "/" in inc:
                    out.append((rel, inc))
    return out


def every_file_is_in_a_room():
    loose = [f for f in os.listdir(DAEMON) if f.endswith((".c", ".h")) and f != "main.c"]
    assert not loose, f"files outside the rooms: {loose}"
    for rel, inc in edges():
        assert os.path.exists(os.path.join(DAEMON, inc)), f"{rel} includes {inc}, which is not there"


def includes_flow_down_but_the_listed():
    up = {(rel, inc) for rel, inc in edges() if LEVEL[room_of(inc)] > LEVEL[room_of(rel)]}
    new = sorted(up - set(UPWARD))
    gone = sorted(set(UPWARD) - up)
    assert not new, f"new upward includes (use a callback or a vtable slot): {new}"
    assert not gone, f"upward includes no longer there: take them off UPWARD: {gone}"
    print(f"# {len(edges())} includes between rooms, {len(up)} upward (listed, with why)")


def main():
    t = Tap()
    t.case("every_file_is_in_a_room", every_file_is_in_a_room)
    t.case("includes_flow_down_but_the_listed", includes_flow_down_but_the_listed)
    t.done()


if __name__ == "__main__":
    main()
