"""The documents against the code: docs/METRICS.md's table must be exactly what the metric table
generates, and every metric must have its own section with a definition and a reference;
proto/PROTOCOL.md must carry exactly the method, field, CONFIG key, limit, self-stat and error
tables that build/tools/ew_protocol_doc generates from the daemon's tables, and docs/STATE.md the
kind and CONF tables build/tools/ew_state_doc generates from the library's; every error code the
clients, the page and the tests name is one of that table's. Every field of the library's
configuration table, and every field of create, reaches create's table, info's CONFIG keys,
the CONF table and the CLI's create options; and a field lives in its row (the design's measure:
`sketch_rows` is named in at most three source files outside docs and tests).

usage: test_docs.py EW_METRICS_DOC EW_PROTOCOL_DOC EW_STATE_DOC EIGENWATCH_CLI"""
import ctypes as C
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import Tap  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "METRICS.md")
STATE = os.path.join(ROOT, "docs", "STATE.md")
PROTOCOL = os.path.join(ROOT, "proto", "PROTOCOL.md")
BLOCK = re.compile(r"<!-- ([a-z:_-]+): generated .*? -->\n.*?<!-- /\1 -->\n", re.S)


def generated(tool=1):
    return subprocess.run([sys.argv[tool]], check=True, capture_output=True, text=True).stdout


def protocol_tables_are_generated_from_code():
    gen = {m.group(1): m.group(0) for m in BLOCK.finditer(generated(2))}
    have = {m.group(1): m.group(0) for m in BLOCK.finditer(open(PROTOCOL).read())}
    # one block per method with fields, plus the method, limit and stat tables
    assert {"gen:methods", "gen:limits", "gen:stats", "gen:fields-query",
            "gen:errors"} <= set(gen), sorted(gen)
    missing = sorted(set(gen) - set(have))
    assert not missing, f"proto/PROTOCOL.md lacks the blocks {missing}"
    stale = sorted(n for n in gen if gen[n] != have[n])
    assert not stale, (f"proto/PROTOCOL.md blocks {stale} differ from the code; regenerate them "
                       "with tools/regen_docs.py")
    extra = sorted(n for n in have if n.startswith("gen:") and n not in gen)
    assert not extra, f"proto/PROTOCOL.md carries blocks no table generates: {extra}"


def state_tables_are_generated_from_code():
    gen = {m.group(1): m.group(0) for m in BLOCK.finditer(generated(3))}
    have = {m.group(1): m.group(0) for m in BLOCK.finditer(open(STATE).read())}
    assert {"gen:kinds", "gen:conf"} <= set(gen), sorted(gen)
    missing = sorted(set(gen) - set(have))
    assert not missing, f"docs/STATE.md lacks the blocks {missing}"
    stale = sorted(n for n in gen if gen[n] != have[n])
    assert not stale, (f"docs/STATE.md blocks {stale} differ from the code; regenerate them with "
                       "tools/regen_docs.py")
    extra = sorted(n for n in have if n.startswith("gen:") and n not in gen)
    assert not extra, f"docs/STATE.md carries blocks no table generates: {extra}"


class Field(C.Structure):  # ew_config_field_t (lib/eigenwatch.h)
    _fields_ = [("name", C.c_char_p), ("member", C.c_char_p), ("old_name", C.c_char_p),
                ("type", C.c_int), ("offset", C.c_size_t), ("values", C.c_void_p),
                ("kinds", C.c_uint), ("flags", C.c_uint), ("since", C.c_uint),
                ("default_doc", C.c_char_p), ("doc", C.c_char_p), ("error", C.c_char_p)]


def config_table():
    """(name, old name or None) of every row of the library's EW_CONFIG_MAP, from the library."""
    lib = C.CDLL(os.environ["EW_LIB"])
    lib.ew_config_field_count.restype = C.c_size_t
    lib.ew_config_field.restype = C.POINTER(Field)
    lib.ew_config_field.argtypes = [C.c_size_t]
    rows = []
    for i in range(lib.ew_config_field_count()):
        f = lib.ew_config_field(i).contents
        rows.append((f.name.decode(), f.old_name.decode() if f.old_name else None))
    assert len(rows) >= 10, rows
    return rows


def block(text, name):
    m = re.search(r"<!-- gen:%s: generated .*? -->\n(.*?)<!-- /gen:%s -->" % (name, name), text, re.S)
    assert m, f"no block gen:{name}"
    return m.group(1)


def every_create_field_reaches_docs_cli_and_info():
    """Every field of the configuration table (and its old name) is a row of create's table in
    PROTOCOL.md, a key of info's CONFIG map (the block ew_config_value itself generates) and a row
    of STATE.md's CONF table; every field of create is a CONFIG key (but the stream's key and the
    eval list and rules, which info shows apart) and, when it takes one value, an option of the
    CLI's create."""
    protocol = open(PROTOCOL).read()
    create = re.findall(r"^\| `([a-z_]+)` \| ([^|]*(?:\\\|[^|]*)*) \|", block(protocol, "fields-create"),
                        re.M)
    create_names = [n for n, _ in create]
    keys = re.findall(r"`([a-z_]+)`", block(protocol, "config-keys"))
    conf = re.findall(r"^\| `([a-z_]+)` \|", block(open(STATE).read(), "conf"), re.M)
    cli = subprocess.run([sys.argv[4], "help", "create"], check=True, capture_output=True,
                         text=True).stdout
    table = config_table()
    for name, old in table:
        for n in (name, old) if old else (name,):
            assert n in create_names, f"create's table in PROTOCOL.md lacks the field {n}"
            assert n in keys, f"info's CONFIG keys lack the field {n}"
        assert name in conf, f"STATE.md's CONF table lacks the field {name}"
    assert conf == [n for n, _ in table], f"the CONF table is not in the table's order: {conf}"
    # create's configuration rows are the table's, in its order, right after stream and run
    want = [n for name, old in table for n in ((name, old) if old else (name,))]
    assert create_names[2:2 + len(want)] == want, create_names
    for name, wtype in create:
        if name not in ("stream", "run", "eval", "rules"):
            assert name in keys, f"create's field {name} is not a key of info's CONFIG"
        if name not in ("stream", "run") and not wtype.startswith("["):
            opt = "--" + name.replace("_", "-") + " "
            assert opt in cli, f"the CLI's create lacks the option {opt.strip()}: {cli}"


def a_config_field_lives_in_its_row():
    """The design's measure of rule 1 (one table per axis): the files outside docs and tests that
    name a configuration field. `sketch_rows` was named in 10; its row (lib/eigenwatch.h), the
    kind that reads it (lib/acc/fd.c) and one message (lib/metrics/spectrum.c) are all that may."""
    found = []
    for top in ("lib", "proto", "daemon", "clients", "tools"):
        for d, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [x for x in dirs if x != "node_modules"]
            for f in files:
                if f.endswith((".c", ".h", ".py", ".js")):
                    path = os.path.join(d, f)
                    if "sketch_rows" in open(path, errors="replace").read():
                        found.append(os.path.relpath(path, ROOT))
    print(f"# sketch_rows is named in {len(found)} files outside docs and tests: {sorted(found)}")
    assert len(found) <= 3, f"sketch_rows is named in {len(found)} files: {sorted(found)}"


def markers_pair_up(path):
    """Every HTML comment of a document is a generated block's opener or its closer, each block
    appears once, and every closer closes the block just opened: a hand-kept copy of a generated
    table (PROTOCOL.md carried one behind `<!-- REMOVE -->`, ending in a second closer) fails."""
    text = open(path).read()
    comments = re.findall(r"<!--.*?-->", text, re.S)
    openers = re.findall(r"<!-- ((?:gen|metric)[a-z:_-]*): generated .*? -->", text)
    closers = re.findall(r"<!-- /([a-z:_-]+) -->", text)
    assert len(comments) == len(openers) + len(closers), (
        f"{os.path.basename(path)} has comments that are not block markers: "
        f"{[c for c in comments if 'generated' not in c and not c.startswith('<!-- /')]}")
    assert len(set(openers)) == len(openers), f"{os.path.basename(path)}: a block appears twice"
    assert openers == closers, (
        f"{os.path.basename(path)}: block openers {openers} and closers {closers} do not pair up")
    whole = "".join(m.group(0) for m in BLOCK.finditer(text))
    assert sum(len(c) for c in comments) <= len(whole), "a marker stands outside its block"


# Where a wire error code is named: expect("CODE", ...), code == "CODE", .get("code", "CODE"),
# is_rpc(rc, r, "CODE"), a ("CODE", "method", {...}) case.
CODE_USES = [re.compile(r'expect\(\s*"([A-Z][A-Z_]+)"'), re.compile(r'code\W{1,8}"([A-Z][A-Z_]+)"'),
             re.compile(r'is_rpc\([^)]*"([A-Z][A-Z_]+)"'),
             re.compile(r'\(\s*"([A-Z][A-Z_]+)",\s*"[a-z_]+",\s*\{')]
CODE_PLACES = ["clients", "daemon/web/app.js", "tests/integration", "tests/python", "tests/unit"]


def error_codes_elsewhere_are_the_tables():
    """The error codes are one table (lib EW_ERRNO_MAP, with daemon/core/errors_table.h: the gen:errors
    block). The Python and C clients, the page and the tests name codes as strings; each must be
    one of the table's, so a renamed or misspelt code fails here rather than in a user's branch."""
    block = {m.group(1): m.group(0) for m in BLOCK.finditer(generated(2))}["gen:errors"]
    codes = set(re.findall(r"^\| `([A-Z_]+)` \|", block, re.M))
    assert len(codes) >= 19, codes
    # the JavaScript client's own codes (a request it could not have answered: CONNECTION,
    # TIMEOUT) are its second table, in clients/js/lib/errors.js, and count in clients/js only
    errors_js = open(os.path.join(ROOT, "clients", "js", "lib", "errors.js"), encoding="utf-8").read()
    js_own = set(re.findall(r'^export const ([A-Z_]+) = "([A-Z_]+)";', errors_js, re.M))
    js_own = {a for a, b in js_own if a == b}
    assert js_own == {"CONNECTION", "TIMEOUT"}, js_own
    seen, wrong = {}, []
    for place in CODE_PLACES:
        path = os.path.join(ROOT, place)
        files = [path] if os.path.isfile(path) else [
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
            if f.endswith((".py", ".c", ".h", ".js")) and "node_modules" not in d]
        for f in files:
            text = open(f, encoding="utf-8").read()
            for pat in CODE_USES:
                for code in pat.findall(text):
                    rel = os.path.relpath(f, ROOT)
                    seen.setdefault(rel.split(os.sep)[0] + "/" + rel.split(os.sep)[1], set()).add(code)
                    own = js_own if rel.startswith(os.path.join("clients", "js")) else set()
                    if code not in codes and code not in own:
                        wrong.append(f"{rel}: {code}")
    assert not wrong, f"codes that are not in the error table: {wrong}"
    # the check reaches both clients and the tests (else it would pass by finding nothing)
    assert "INTERNAL" in seen.get("clients/python", ()), seen.keys()
    assert "NO_SUCH_STREAM" in seen.get("clients/c", ()), seen.keys()
    assert len(seen.get("tests/integration", ())) >= 15, seen.get("tests/integration")


def every_method_has_a_section():
    text = open(PROTOCOL).read()
    names = re.findall(r"^\| `([a-z_]+)` \|", BLOCK.search(generated(2)).group(0), re.M)
    assert len(names) >= 11, names
    for n in names:
        assert re.search(r"^### `%s` → " % n, text, re.M), f"no section for method {n}"


def table_is_generated_from_code():
    gen = {m.group(1): m.group(0) for m in BLOCK.finditer(generated())}
    have = {m.group(1): m.group(0) for m in BLOCK.finditer(open(DOC).read())}
    assert set(gen) == {"metric-table", "metric-columns"}, sorted(gen)
    for name in gen:
        assert name in have, f"docs/METRICS.md lost its {name} markers"
        if gen[name] != have[name]:
            raise AssertionError(f"docs/METRICS.md block {name} differs from the code; regenerate "
                                 "it with tools/regen_docs.py")


def every_metric_has_a_section():
    text = open(DOC).read()
    table = BLOCK.search(generated()).group(0)  # the first block: the metric table
    names = re.findall(r"^\| `([a-z_0-9]+)` \|", table, re.M)
    assert len(names) >= 20, names
    for n in names:
        sec = re.search(r"^### `%s`\n(.*?)(?=^### |\Z)" % re.escape(n), text, re.M | re.S)
        assert sec, f"no section for {n}"
        assert len(sec.group(1).split()) >= 12, f"section for {n} is too thin"


def metrics_read_views_only():
    """The layering rule: a metric reads a view (lib/view/), never a stream's or an accumulator's
    fields, so a new kind of state adds no branch inside any metric: no file of lib/metrics/
    names one."""
    room = os.path.join(ROOT, "lib", "metrics")
    src = ""
    for f in sorted(os.listdir(room)):
        if f.endswith((".c", ".h")):
            with open(os.path.join(room, f)) as fh:
                src += fh.read()
    forbidden = ["->all", "->win", "->m2", "->mean", "->mom", "->oja", "->cache", "ew__stream_",
                 "ew__moments", "ew__window", "ew__scratch", "ew_stream_matrix", "s->"]
    # a field access is the whole field name (q->window_rows is a query's, not the window's)
    found = [w for w in forbidden
             if (re.search(re.escape(w) + r"\b", src) if w.startswith("->") else w in src)]
    assert not found, f"lib/metrics/ reaches past the view: {found}"


def main():
    t = Tap()
    t.case("metrics_doc_table_matches_code", table_is_generated_from_code)
    t.case("metrics_doc_has_a_section_per_metric", every_metric_has_a_section)
    t.case("protocol_doc_tables_match_code", protocol_tables_are_generated_from_code)
    t.case("state_doc_tables_match_code", state_tables_are_generated_from_code)
    t.case("every_create_field_reaches_docs_cli_and_info",
           every_create_field_reaches_docs_cli_and_info)
    t.case("a_config_field_lives_in_its_row", a_config_field_lives_in_its_row)
    t.case("protocol_doc_markers_pair_up", markers_pair_up, PROTOCOL)
    t.case("state_doc_markers_pair_up", markers_pair_up, STATE)
    t.case("metrics_doc_markers_pair_up", markers_pair_up, DOC)
    t.case("protocol_doc_has_a_section_per_method", every_method_has_a_section)
    t.case("error_codes_elsewhere_are_the_tables", error_codes_elsewhere_are_the_tables)
    t.case("metrics_read_views_only", metrics_read_views_only)
    t.done()


if __name__ == "__main__":
    main()
