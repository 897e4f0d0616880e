"""Scenario 8: missing privilege, missing BTF, a missing tracepoint, a missing optional hook.

Each is made for real, for one process only: an unprivileged user or a dropped capability
(setpriv), or a private mount namespace (unshare -m) in which /sys/kernel/btf, tracefs or the
cgroup v2 mount is hidden. The host itself is never touched. A required piece missing is one
sentence naming it and its remedy, with exit 77 (privilege) or 3 (kernel); an optional hook
missing (DNS needs cgroup v2) is a warning and a 0 in health and metrics, never a stop.

tests/live/test_events_cli.py covers `kubepulse events` with every capability dropped.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from kubepulse.kernel.doctor import required_tracepoints
from tests.export.servers import poll

from .agentproc import KUBEPULSE, REPO, AgentProc

pytestmark = pytest.mark.live


def _run(prefix: list[str], tmp: Path, shell: str = "") -> subprocess.CompletedProcess[str]:
    argv = [*KUBEPULSE, "run", "--state-dir", str(tmp / "state"), "--listen", "",
            "--duration", "2"]
    if shell:  # run inside a private mount namespace after `shell` changed its mounts
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                shell + ' && exec "$@"', "sh", *argv]
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=60,
                          check=False, cwd=REPO)


def _error(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_unprivileged_user(tmp_path: Path, bpf: None) -> None:
    tmp_path.chmod(0o777)
    res = _run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"], tmp_path)
    line = _error(res)
    assert res.returncode == 77
    assert line.startswith("kubepulse: error: privileges: uid 65534, capabilities: none.")
    assert "Fix: run as root" in line and "CAP_BPF, CAP_PERFMON" in line


def test_root_without_cap_bpf_and_sys_admin(tmp_path: Path, bpf: None) -> None:
    res = _run(["setpriv", "--bounding-set=-bpf,-sys_admin", "--inh-caps=-bpf,-sys_admin"],
               tmp_path)
    line = _error(res)
    assert res.returncode == 77
    assert "privileges: uid 0, capabilities: CAP_NET_ADMIN, CAP_PERFMON." in line, line
    assert "grant CAP_BPF" in line


def test_missing_btf(tmp_path: Path, bpf: None) -> None:
    res = _run([], tmp_path, shell="mount -t tmpfs kpr-nobtf /sys/kernel/btf")
    line = _error(res)
    assert res.returncode == 3
    assert "btf: /sys/kernel/btf/vmlinux missing." in line
    assert "CONFIG_DEBUG_INFO_BTF=y" in line


def test_missing_required_tracepoint(tmp_path: Path, bpf: None) -> None:
    # A tracefs look-alike with every tracepoint but one required one.
    gone = "sock:inet_sock_set_state"
    assert required_tracepoints()[gone]
    fake = tmp_path / "tracing"
    for tp in required_tracepoints():
        if tp != gone:
            (fake / "events" / tp.replace(":", "/")).mkdir(parents=True)
    (fake / "events" / "sock").mkdir(exist_ok=True)
    # Both places libbpf and the doctor look for tracefs show the look-alike. The debugfs
    # one is made inside the private namespace: a tmpfs over /sys/kernel/debug (debugfs need
    # not be mounted on the host) with its own tracing/ mount point; the host never sees it.
    hide = (f"mount --bind {fake} /sys/kernel/tracing && "
            "{ [ ! -d /sys/kernel/debug ] || { mount -t tmpfs kp-hide /sys/kernel/debug && "
            "mkdir /sys/kernel/debug/tracing && "
            f"mount --bind {fake} /sys/kernel/debug/tracing; }}; }}")
    res = _run([], tmp_path, shell=hide)
    line = _error(res)
    assert res.returncode == 3
    assert f"tracepoint {gone}: missing. Fix: this kernel lacks the tracepoint" in line, line


def _without_cgroup2(tmp_path: Path) -> AgentProc:
    """An agent that sees no cgroup v2 mount: the DNS hooks and the drops probe's listen hook
    (both cgroup_skb on the cgroup v2 root) cannot attach."""
    cg2 = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()
           if ln.split()[2] == "cgroup2"]
    assert cg2, "no cgroup v2 on this host"
    unmount = " && ".join(f"umount -l {m}" for m in cg2)
    return AgentProc(tmp_path, prefix=["unshare", "--mount", "--propagation", "private", "sh",
                                       "-c", unmount + ' && exec "$@"', "sh"])


def test_optional_hooks_missing_are_a_warning_and_show_in_metrics(tmp_path: Path,
                                                                  bpf: None) -> None:
    a = _without_cgroup2(tmp_path)
    try:
        a.start()
        m = poll("a tick", lambda: a.metrics_where(
            lambda m: a.metric("kubepulse_ticks_total", m) > 0))
        attached = {dict(lab)["probe"]: v for (n, lab), v in m.items()
                    if n == "kubepulse_probe_attached"}
        rc, _ = a.stop(signal.SIGTERM)
    finally:
        a.kill()
    err = a.stderr()
    print(f"no cgroup v2: attach status {attached}")
    assert rc == 0 and "Traceback" not in err
    assert err.count("dns probe not attached") == 1, err
    assert attached["dns"] == 0
    missing = {p for p, v in attached.items() if v == 0}
    assert missing == {"dns", "cgroup_skb/ingress:listen"}, attached
    assert sum(attached.values()) >= 6  # every TCP tracepoint, and kfree_skb


def test_optional_hooks_missing_keep_the_agent_ready(tmp_path: Path, bpf: None) -> None:
    a = _without_cgroup2(tmp_path)
    try:
        a.start()
        poll("ready", a.ready, timeout=10)
        text = a.get("/readyz").text
        assert "optional probes missing: cgroup_skb/ingress:listen, dns" in text, text
    finally:
        a.kill()
