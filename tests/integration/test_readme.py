"""The README's Python example, run verbatim against a real daemon (on a free port instead of
7700), must print a query result with the metrics it asks for."""
import contextlib
import io
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import Daemon  # noqa: E402
from taplib import Tap  # noqa: E402

README = os.path.join(HERE, "..", "..", "README.md")


def readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", open(README).read(), re.S)
    raw = [b for b in blocks if "msgpack" in b and "7700" in b]
    assert raw, "the README lost its raw msgpack example on the default port"
    code = raw[0]
    d = Daemon()
    try:
        port = d.tcp.rsplit(":", 1)[1]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code.replace("7700", port), "README.md", "exec"), {})
        text = out.getvalue()
        for key in ("'entropy'", "'erank'", "'topk'", "'as_of': 256"):
            assert key in text, f"{key} missing from: {text[:300]}"
    finally:
        d.stop()


def main():
    t = Tap()
    t.case("readme_python_example_runs", readme_python_example_runs)
    t.done()


if __name__ == "__main__":
    main()
