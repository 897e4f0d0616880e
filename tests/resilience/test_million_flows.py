"""Scenario 11 (``make soak``): a million distinct flows.

tests/resilience/flows.c makes KUBEPULSE_FLOWS (default 1,000,000) connections inside a kpr-*
namespace, each from its own source address (127.1.0.0 + i), to 2,000 server ports: every
connection is a distinct 4-tuple. The agent judges only that namespace (an inventory naming it
as the one pod), with ``tracking.max_edges: 1000``, so its edge tables must stay at the cap
and count their evictions, every connection end must be processed, counted lost, or counted as
an untracked close (a socket the kernel's LRU map evicted), and RSS must stay under 200 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.export.servers import poll

from .agentproc import REPO, agent_running

pytestmark = [pytest.mark.live, pytest.mark.soak]

FLOWS = int(os.environ.get("KUBEPULSE_FLOWS", "1000000"))
PORTS = 2000
MAX_EDGES = 1000
RSS_BOUND_KIB = 200 * 1024


@pytest.mark.timeout(1200)
def test_million_distinct_flows_stay_bounded(tmp_path: Path, bpf: None,
                                             kpr_pod: tuple[str, Path]) -> None:
    netns, inventory = kpr_pod
    exe = tmp_path / "flows"
    subprocess.run(["cc", "-O2", "-pthread", "-o", str(exe),
                    str(REPO / "tests/resilience/flows.c")], check=True, timeout=120)
    config = f"tracking:\n  max_edges: {MAX_EDGES}\n"
    with agent_running(tmp_path / "agent", config=config,
                       extra=["--inventory", str(inventory)]) as a:
        poll("the agent ready", a.ready)
        m0 = a.metrics()
        proc0 = a.metric("kubepulse_records_processed_total", m0, probe="tcp_conn")
        lost0 = a.metric("kubepulse_records_lost_total", m0, stage="kernel")
        untracked0 = a.metric("kubepulse_kernel_untracked_closes_total", m0)
        result: dict[str, Any] = {}

        def run() -> None:
            out = subprocess.run(["ip", "netns", "exec", netns, str(exe), "--count",
                                  str(FLOWS), "--ports", str(PORTS), "--threads", "2",
                                  "--duration", "900"], check=True, capture_output=True,
                                 text=True, timeout=960)
            result.update(json.loads(out.stdout))

        gen = threading.Thread(target=run)
        gen.start()
        edges_max = 0.0
        ready: list[bool] = []
        while gen.is_alive():  # bounded by the generator's own --count/--duration
            m = a.metrics()
            edges_max = max(edges_max, a.metric("kubepulse_tracked", m, kind="edges"))
            ready.append(a.ready())
            gen.join(1.0)

        def ends(m: dict[Any, float]) -> tuple[float, float, float]:
            # A socket the kernel's LRU map (kp_socks) evicted closes without a record: that
            # is counted too, as an untracked close.
            return (a.metric("kubepulse_records_processed_total", m, probe="tcp_conn") - proc0,
                    a.metric("kubepulse_records_lost_total", m, stage="kernel") - lost0,
                    a.metric("kubepulse_kernel_untracked_closes_total", m) - untracked0)

        # User space is far behind at the end (its ring full): wait until it has worked off
        # the backlog, and time that.
        t_end = time.monotonic()
        m1 = poll("every connection end accounted for", lambda: a.metrics_where(
            lambda m: a.reconciled() is not None
            and sum(ends(m)) >= 2 * result["connected"]), timeout=120)
        catch_up_s = time.monotonic() - t_end
        processed, lost, untracked = ends(m1)
        evictions = a.metric("kubepulse_tracker_evictions_total", m1)
        edges = a.metric("kubepulse_tracked", m1, kind="edges")
        hwm = a.status("VmHWM")
        rc, _ = a.stop()
    figures = {"flows": result.get("connected"), "failed": result.get("failed"),
               "seconds": result.get("seconds"), "records_processed": processed,
               "records_lost_kernel": lost, "untracked_closes": untracked,
               "edges_tracked_max": edges_max,
               "edges_tracked_end": edges, "evictions": evictions,
               "peak_rss_mib": round(hwm / 1024, 1), "ready": f"{sum(ready)}/{len(ready)}",
               "caught_up_s": round(catch_up_s, 1)}
    print("million flows:", json.dumps(figures))
    assert rc == 0
    assert result["connected"] >= FLOWS * 0.99, result
    assert edges_max <= MAX_EDGES and evictions > 0, figures
    # Issue 9's targets, asserted: this fails until the data path meets them. Measured on
    # 2026-11-26: at ~12,500 new distinct flows/s user space falls behind (86 % of records
    # lost in the kernel, counted), /readyz is 503 most of the run and peak RSS is ~270 MiB
    # (docs/reliability.md).
    assert hwm <= RSS_BOUND_KIB, f"peak RSS {hwm / 1024:.0f} MiB over the 200 MiB bound: {figures}"
    assert ready, "/readyz was never polled"
    assert all(ready), f"/readyz not ready {len(ready) - sum(ready)}/{len(ready)} polls: {figures}"
