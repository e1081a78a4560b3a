"""docs/METRICS.md against the code: the embedded table must be exactly what the metric table
generates, and every metric must have its own section with a definition and a reference."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import Tap  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "METRICS.md")


def generated():
    return subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout


def table_is_generated_from_code():
    text = open(DOC).read()
    m = re.search(r"<!-- metric-table:.*?<!-- /metric-table -->\n", text, re.S)
    assert m, "docs/METRICS.md lost its metric-table markers"
    if m.group(0) != generated():
        raise AssertionError("docs/METRICS.md table differs from the code; regenerate it with "
                             "build/tools/ew_metrics_doc")


def every_metric_has_a_section():
    text = open(DOC).read()
    names = re.findall(r"^\| `([a-z_0-9]+)` \|", generated(), re.M)
    assert len(names) >= 20, names
    for n in names:
        sec = re.search(r"^### `%s`\n(.*?)(?=^### |\Z)" % re.escape(n), text, re.M | re.S)
        assert sec, f"no section for {n}"
        assert len(sec.group(1).split()) >= 12, f"section for {n} is too thin"


def main():
    t = Tap()
    t.case("metrics_doc_table_matches_code", table_is_generated_from_code)
    t.case("metrics_doc_has_a_section_per_metric", every_metric_has_a_section)
    t.done()


if __name__ == "__main__":
    main()
