"""The docs' tables agree with the committed result files they are rendered from.

docs/detection.md, docs/benchmarks.md and docs/reliability.md hold their tables between
``<!-- results:NAME[:TABLE] -->`` and ``<!-- /results -->``; scripts/render_docs.py renders
them from results/NAME.json. When this fails, run ``make docs`` (and commit the result file
that changed the figures), or re-run the benchmark that the stale region names.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.loadfile import load_file

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "render_docs.py"


rd = load_file(SCRIPT, "render_docs")


def _copy(tmp: Path) -> Path:
    """A copy of the three docs and results/ to alter freely."""
    (tmp / "docs").mkdir()
    for doc in rd.DOCS:
        shutil.copy(REPO / doc, tmp / doc)
    shutil.copytree(REPO / "results", tmp / "results")
    return tmp


def test_docs_agree_with_their_result_files(capsys: pytest.CaptureFixture[str]) -> None:
    rc = rd.main(["--check", "--root", str(REPO)])
    assert rc == 0, capsys.readouterr().err


@pytest.mark.parametrize("doc", rd.DOCS)
def test_every_table_is_inside_a_results_region(doc: str) -> None:
    text = (REPO / doc).read_text()
    assert rd.tables_outside(text) == [], f"{doc}: tables outside a results region"
    assert rd.REGION.search(text), f"{doc} has no results region"


def test_an_altered_figure_in_a_doc_is_named(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(tmp_path)
    doc = root / "docs" / "detection.md"
    text = doc.read_text()
    m = re.search(r"<!-- results:detection_full -->\n.*?\| connection_refused \| (\d+) \|",
                  text, re.DOTALL)
    assert m, "the full-suite table lost its connection_refused row"
    doc.write_text(text[:m.start(1)] + str(int(m.group(1)) + 1) + text[m.end(1):])
    assert rd.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "docs/detection.md: results:detection_full is stale" in err
    assert "benchmarks.md" not in err and "reliability.md" not in err
    # Rendering puts the figure back, and the check then passes.
    assert rd.main(["--root", str(root)]) == 0
    assert doc.read_text() == (REPO / "docs" / "detection.md").read_text()
    assert rd.main(["--check", "--root", str(root)]) == 0


def test_an_altered_result_file_is_named(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(tmp_path)
    path = root / "results" / "detection_full.json"
    doc = json.loads(path.read_text())
    doc["data"]["per_type"]["packet_loss"]["ttd_p95_s"] += 1.0
    path.write_text(json.dumps(doc))
    assert rd.main(["--check", "--root", str(root)]) == 1
    assert "results:detection_full is stale" in capsys.readouterr().err


def test_a_table_outside_a_region_and_a_missing_file_fail(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(tmp_path)
    doc = root / "docs" / "benchmarks.md"
    doc.write_text(doc.read_text() + "\n| typed | in |\n|---|---|\n| 1 | 2 |\n")
    (root / "results" / "decode_micro.json").unlink()
    assert rd.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "a table outside a results region" in err
    assert "decode_micro.json" in err


def test_result_files_carry_their_provenance() -> None:
    for path in sorted((REPO / "results").glob("*.json")):
        doc = json.loads(path.read_text())
        assert doc["name"] == path.stem
        for key in ("commit", "date", "machine", "command", "data"):
            assert doc.get(key) not in (None, ""), f"{path.name}: no {key}"
        assert path.read_text().endswith("}\n")
