"""kubepulse.results: the committed result files' writer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.loadfile import load_file

SRC = Path(__file__).resolve().parents[2] / "src" / "kubepulse" / "results.py"


results = load_file(SRC, "kubepulse_results_under_test")  # this tree's, not the install's


def test_write_result_has_provenance_and_a_readable_layout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEPULSE_RESULTS_DIR", str(tmp_path / "out"))
    path = results.write_result("demo", {"b": 2, "a": [1, 2]}, ["bench/x.py", "--rate", "1 2"])
    assert path == tmp_path / "out" / "demo.json"
    text = path.read_text()
    assert text.endswith("}\n") and '\n  "command"' in text  # indent 2, trailing newline
    doc = json.loads(text)
    assert list(doc) == sorted(doc) and list(doc["data"]) == ["a", "b"]
    assert doc["name"] == "demo" and doc["command"] == "bench/x.py --rate '1 2'"
    assert doc["date"].endswith("Z") and "T" in doc["date"]
    assert set(doc["machine"]) == {"nproc", "memory_gib", "kernel", "cpu_model"}
    assert doc["machine"]["nproc"] >= 1
    assert doc["commit"]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_commit_is_short_head_dirty_or_unknown(tmp_path: Path) -> None:
    assert results.commit(tmp_path) == "unknown"
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("1\n")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tmp_path, check=True,
                          capture_output=True, text=True).stdout.strip()
    assert results.commit(tmp_path) == head
    (tmp_path / "f").write_text("2\n")
    assert results.commit(tmp_path) == f"{head}-dirty"


def test_bad_names_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEPULSE_RESULTS_DIR", str(tmp_path))
    for name in ("", "../x", ".hidden"):
        with pytest.raises(ValueError):
            results.write_result(name, {}, "cmd")


def test_results_dir_is_at_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEPULSE_RESULTS_DIR", raising=False)
    assert results.results_dir() == SRC.parents[2] / "results"
