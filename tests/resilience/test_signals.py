"""Scenarios 3 and 4: SIGTERM, and SIGKILL then restart.

kubepulse attaches through BPF links owned by the process (no pins, no tc filters), so even a
SIGKILL leaves nothing in the kernel: the IDs of every program, link and map the agent held
(read from /proc/<pid>/fdinfo while it ran) must all be gone from bpftool's lists afterwards.
Freeing is deferred by the kernel (RCU), so that is polled with a deadline.

tests/live/test_agent.py already proves that a SIGTERM saves the open alert and a restart
resolves it once; here: the exit time, the kernel, the files' integrity, the webhook and a
real Alertmanager across a SIGKILL.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kubepulse.export.http import HttpListener, Request, Response
from tests.export.servers import alertmanager, poll

from .agentproc import (
    AgentProc,
    bpf_ids_of,
    closed_port,
    fire_refused,
    kernel_objects,
    leftovers,
    pinned_of_ours,
    refuse,
    sqlite_check,
    tc_filters_of_ours,
)
from .record import record

pytestmark = pytest.mark.live


def _gone(ids: dict[str, set[int]]) -> bool:
    return not any(leftovers(ids).values())


def test_sigterm_exits_0_leaves_nothing_and_files_are_consistent(tmp_path: Path,
                                                                 bpf: None) -> None:
    a = AgentProc(tmp_path)
    try:
        a.start()
        ids = a.bpf
        assert ids["prog"] and ids["link"] and ids["map"], ids
        fired = fire_refused(a, closed_port())
        rc, secs = a.stop(signal.SIGTERM)
    finally:
        a.kill()
    t0 = time.monotonic()
    poll("every program, link and map of the agent freed", lambda: _gone(ids), timeout=10)
    freed_s = time.monotonic() - t0
    print(f"sigterm: exit {rc} after {secs:.2f} s; {len(ids['prog'])} programs, "
          f"{len(ids['link'])} links, {len(ids['map'])} maps freed {freed_s:.2f} s later")
    assert rc == 0 and secs < 10
    assert tc_filters_of_ours() == [] and pinned_of_ours() == []
    text = a.jsonl.read_text()
    assert text.endswith("\n"), "the JSONL ends in a partial line"
    lines = [json.loads(line) for line in text.splitlines()]
    assert fired["fingerprint"] in {x["fingerprint"] for x in lines}
    integrity, open_fps = sqlite_check(a.state / "alerts.db")
    assert integrity == "ok"
    assert fired["fingerprint"] in open_fps
    assert "Traceback" not in a.stderr()
    record("sigterm", {"rc": rc, "exit_s": round(secs, 2), "programs": len(ids["prog"]),
                       "links": len(ids["link"]), "maps": len(ids["map"]),
                       "freed_s": round(freed_s, 2), "integrity": integrity})


class Receiver:
    """POSTs recorded by path: /hook (the agent's webhook), /am (Alertmanager's webhook)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.listener = HttpListener("127.0.0.1:0")
        for path in ("/hook", "/am"):
            self.listener.route(path, self.post, methods=("POST",))

    def post(self, req: Request) -> Response:
        with self.lock:
            self.posts.append((req.path, json.loads(req.body)))
        return Response(200)

    def webhook_states(self, fp: str) -> list[str]:
        with self.lock:
            return [b["state"] for p, b in self.posts if p == "/hook" and b["fingerprint"] == fp]

    def am_states(self, fp: str) -> list[str]:
        """Alertmanager notifications that carried ``fp``, by status."""
        with self.lock:
            return [a["status"] for p, b in self.posts if p == "/am" for a in b["alerts"]
                    if a["labels"].get("kubepulse_fingerprint") == fp]


AM_ROUTE = """
route:
  receiver: rx
  group_by: [kubepulse_fingerprint]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: rx
    webhook_configs:
      - url: {url}/am
        send_resolved: true
"""

# Alertmanager keeps a firing alert for ends_at_intervals x resend_seconds after the last
# send (10 s here): the restarted agent must take over the re-sending within that time.
CONFIG = """\
alerts:
  resolve_after_seconds: 4
alertmanager:
  resend_seconds: 1
  ends_at_intervals: 10
  backoff_seconds: 0.1
  backoff_max_seconds: 0.5
"""


def _am_active(base: str) -> set[str]:
    import httpx

    body = httpx.get(base + "/api/v2/alerts", timeout=5).json()
    return {a["labels"].get("kubepulse_fingerprint", "") for a in body
            if a["status"]["state"] == "active"}


def test_sigkill_then_restart_attaches_once_and_notifies_once(
        tmp_path: Path, bpf: None, kpr_pod: tuple[str, Path]) -> None:
    rx = Receiver()
    rx.listener.start()
    try:
        with alertmanager(tmp_path, AM_ROUTE.format(url=rx.listener.url)) as am:
            _kill_and_restart(tmp_path, rx, am, kpr_pod)
    finally:
        rx.listener.close()


def _kill_and_restart(tmp_path: Path, rx: Receiver, am: str, pod: tuple[str, Path]) -> None:
    # The fault happens inside the pod's namespace, and the agent judges only that pod: no
    # other alert on this host can join in.
    netns, inventory = pod
    root = tmp_path / "agent"
    extra = ["--inventory", str(inventory), "--webhook", rx.listener.url + "/hook",
             "--alertmanager", am]
    port = 20001
    first = AgentProc(root, config=CONFIG, extra=extra)
    second = AgentProc(root, config=CONFIG, extra=extra)
    try:
        first.start()
        a_ids = first.bpf
        fp = fire_refused(first, port, netns=netns)["fingerprint"]
        poll("the webhook's firing POST", lambda: rx.webhook_states(fp))
        poll("Alertmanager's firing notification", lambda: rx.am_states(fp))
        rc, _ = first.stop(signal.SIGKILL)
        assert rc == -signal.SIGKILL
        t0 = time.monotonic()
        poll("the killed agent's programs, links and maps freed by the kernel",
             lambda: _gone(a_ids), timeout=10)
        freed_s = time.monotonic() - t0
        assert tc_filters_of_ours() == [] and pinned_of_ours() == []
        integrity, open_fps = sqlite_check(root / "state" / "alerts.db")
        assert integrity == "ok" and fp in open_fps, (integrity, open_fps)

        before = kernel_objects()
        second.start()
        b = bpf_ids_of(second.pid)
        attached = re.search(r"(\d+)/(\d+) hooks attached", second.stderr())
        assert attached, second.stderr()
        # Attached exactly once: one link per attached hook, each on one of its own programs,
        # and no link on the host that points at its programs without being its own.
        links = {lk["id"]: lk["prog_id"] for lk in _links()}
        on_its_progs = {i for i, prog in links.items() if prog in b["prog"]}
        assert on_its_progs == b["link"], (on_its_progs, b["link"])
        assert len(b["link"]) == int(attached.group(1))
        assert b["prog"] <= (kernel_objects()["prog"] - before["prog"])
        assert "restored 1 firing alert(s)" in second.stderr()

        # The fault goes on for longer than Alertmanager would keep the alert on its own.
        t_end = time.monotonic() + 12
        while time.monotonic() < t_end:  # bounded: 12 s of a few connects per round
            refuse(port, 3, netns)
            time.sleep(0.3)  # pacing the fault, not synchronisation
        still_active = fp in _am_active(am)
        # Then it stops: the restarted agent resolves the alert, once, everywhere.
        poll("the resolve on the webhook", lambda: "resolved" in rx.webhook_states(fp),
             timeout=20)
        poll("Alertmanager's resolved notification", lambda: "resolved" in rx.am_states(fp),
             timeout=20)
        rc, _ = second.stop()
    finally:
        first.kill()
        second.kill()
    jsonl = [x["state"] for x in second.alerts() if x["fingerprint"] == fp]
    print(f"sigkill: kernel objects freed {freed_s:.2f} s after the kill; restart attached "
          f"{len(b['link'])} links once; webhook saw {rx.webhook_states(fp)}, Alertmanager "
          f"notified {rx.am_states(fp)}; JSONL {jsonl}")
    assert rc == 0
    assert rx.webhook_states(fp) == ["firing", "resolved"]
    assert rx.am_states(fp) == ["firing", "resolved"]
    assert jsonl == ["firing", "resolved"]
    assert still_active, ("Alertmanager expired the alert while the restarted agent still "
                          "held it firing: restored alerts are not re-sent")
    record("sigkill", {"freed_s": round(freed_s, 2), "links": len(b["link"]),
                       "webhook": rx.webhook_states(fp), "alertmanager": rx.am_states(fp),
                       "jsonl": jsonl, "active_after_expiry": bool(still_active)})


def _links() -> list[dict[str, Any]]:
    import subprocess

    out = subprocess.run(["bpftool", "-j", "link", "list"], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out or "[]")  # type: ignore[no-any-return]
