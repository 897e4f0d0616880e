"""The agent installs without the lab's Python packages (pyproject.toml's `lab` extra); the lab
commands then say in one sentence how to add them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kubepulse.errors import ConfigError
from kubepulse.lab import sh

_WITHOUT_DNSLIB = "import sys; sys.modules['dnslib'] = None; "  # `import dnslib` now fails


def test_the_agents_commands_work_without_dnslib() -> None:
    # every command registers at start-up (the lab's too); --help exits once the parser is built
    code = _WITHOUT_DNSLIB + "from kubepulse.cli import main; sys.exit(main(['run', '--help']))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert "usage: kubepulse run" in r.stdout


def test_the_lab_names_its_extra_when_dnslib_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dnslib", None)
    with pytest.raises(ConfigError) as exc:
        sh.require_lab_extra()
    msg = str(exc.value)
    assert "dnslib" in msg and "pip install '.[lab]'" in msg, msg
    assert msg.count(". ") == 0  # one sentence
