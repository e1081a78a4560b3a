"""The daemon's rooms and the direction of their includes and calls (README "Tour of the source"
as this tree has it).

daemon/ is split by job into rooms, each allowed to include, and call, only its own room and rooms
below:

    main.c  6    the process
    net/    5    listeners, connections, msgpack-RPC, HTTP, the JSON API (and the page's bytes)
    cmd/    4    one handler file per job
    store/  3    snapshots, restore, the training block, history
    run/    2    training steps, scheduled evaluation, alerts, subscriptions, merge plans
    core/   1    registry, pool and jobs, config, stats, log

store/ stands above run/ because it saves what run/ holds (the staging, the eval list, the rules);
run/ hands what it produces up through slots core gives it (srv->keep_point: an evaluated point
to the history; conn_hooks: a notification to a subscriber). An include of a higher room is a
call upward, which a lower room must make through a callback or a vtable slot instead (core/conn.h:
the hooks net/ fills in, by which the rooms below reach a connection). UPWARD lists the upward
includes a tree still has, with why; none is left. The test fails when a new one appears, and
also when a listed one is gone (so the list only shrinks, and says what is left to do).

Includes alone would not see a call declared in a low header and defined in a high room, so the
built daemon library (given as the first argument: libeigenwatchd_core.a) is read too: every
symbol a room's object uses and another room's object defines must be defined in its own room or
below (nm; main.c and core/sd.c are linked into the program, not the library)."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import Tap  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAEMON = os.path.join(ROOT, "daemon")
LEVEL = {"core": 1, "run": 2, "store": 3, "cmd": 4, "net": 5, "main": 6}
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


def member_room(member):
    """The room of an object in the daemon library: meson names it room_file.c.o; the generated
    web_assets.c (the page's bytes) belongs to net/, which serves them."""
    if "web_assets" in member:
        return "net"
    m = re.match(r"(core|run|store|cmd|net)_", member)
    assert m, f"an object of no room in the library: {member}"
    return m.group(1)


def calls_flow_down(lib):
    out = subprocess.run(["nm", "-A", lib], capture_output=True, text=True, check=True).stdout
    defined, used = {}, []
    for line in out.splitlines():
        head, _, rest = line.rpartition(":")
        member = os.path.basename(head.rsplit(":", 1)[-1])
        parts = rest.split()
        if len(parts) == 3 and parts[1] in "TDBR":
            defined[parts[2]] = member
        elif len(parts) == 2 and parts[0] == "U":
            used.append((member, parts[1]))
    assert len(defined) > 100, f"too few symbols read from {lib}: {len(defined)}"
    up = sorted({(m, sym, defined[sym]) for m, sym in used if sym in defined and
                 LEVEL[member_room(defined[sym])] > LEVEL[member_room(m)]})
    assert not up, "calls upward (use a callback or a vtable slot): " + \
        "; ".join(f"{m} calls {sym} of {d}" for m, sym, d in up)
    calls = sum(1 for m, sym in used if sym in defined and member_room(defined[sym]) !=
                member_room(m))
    print(f"# {calls} calls between rooms, none upward")


def main():
    t = Tap()
    t.case("every_file_is_in_a_room", every_file_is_in_a_room)
    t.case("includes_flow_down_but_the_listed", includes_flow_down_but_the_listed)
    if len(sys.argv) > 1:
        t.case("calls_flow_down", calls_flow_down, sys.argv[1])
    t.done()


if __name__ == "__main__":
    main()
