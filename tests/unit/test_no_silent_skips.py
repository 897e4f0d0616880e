"""tests/conftest.py turns every skip and xfail into a failure under KUBEPULSE_REQUIRE_BPF=1.

Checked on a throw-away test tree run by a real pytest in a subprocess, with the project's
hooks as its conftest: a test skip, an xfail, a module-level skip and an importorskip each
fail with their reason, and without the variable they are skipped as usual.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TEST_CASES = {
    "test_skip.py": "import pytest\n\ndef test_skip():\n    pytest.skip('no widget')\n",
    "test_xfail.py": ("import pytest\n\n@pytest.mark.xfail(reason='known gap')\n"
                      "def test_xfail():\n    assert False\n"),
    "test_ok.py": "def test_ok():\n    pass\n",
}
MODULE_CASES = {
    "test_module.py": ("import pytest\npytest.skip('no root', allow_module_level=True)\n\n"
                       "def test_never():\n    pass\n"),
    "test_import.py": ("import pytest\npytest.importorskip('kp_no_such_module')\n\n"
                       "def test_never():\n    pass\n"),
}


def _run(tmp_path: Path, cases: dict[str, str],
         strict: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_make_collect_report, pytest_runtest_makereport\n"
        "__all__ = ['pytest_make_collect_report', 'pytest_runtest_makereport']\n")
    for name, body in cases.items():
        (tmp_path / name).write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "KUBEPULSE_REQUIRE_BPF"}
    env["PYTHONPATH"] = str(REPO)
    if strict:
        env["KUBEPULSE_REQUIRE_BPF"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-c",
         os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path, env=env)


def test_skips_and_xfails_fail_under_require_bpf(tmp_path: Path) -> None:
    res = _run(tmp_path, TEST_CASES, strict=True)
    out, last = res.stdout, res.stdout.splitlines()[-1]
    assert res.returncode == 1, out
    assert last.startswith("2 failed, 1 passed"), out
    assert "no widget" in out and "known gap" in out, out


def test_module_skips_fail_collection_under_require_bpf(tmp_path: Path) -> None:
    res = _run(tmp_path, MODULE_CASES, strict=True)
    out = res.stdout
    assert res.returncode == 2, out  # collection errors: pytest stops before running anything
    assert "2 errors" in out.splitlines()[-1], out
    assert "no root" in out and "kp_no_such_module" in out, out


def test_skips_stay_skips_without_it(tmp_path: Path) -> None:
    res = _run(tmp_path, {**TEST_CASES, **MODULE_CASES}, strict=False)
    last = res.stdout.splitlines()[-1]
    assert res.returncode == 0, res.stdout
    assert "1 passed" in last and "3 skipped" in last and "1 xfailed" in last, last
