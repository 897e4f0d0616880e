"""Scenario 2, consumer stall: the agent is frozen (SIGSTOP) for 10 s while connections churn,
then thawed (SIGCONT). It must be ready again within seconds, account for every record (read,
or counted as lost in the kernel), and still detect a new fault.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.export.servers import poll

from .agentproc import AgentProc, agent_running, closed_port, fire_refused, run_churn
from .record import record

pytestmark = pytest.mark.live

STALL_SECONDS = 10.0
RECOVERY_BOUND_S = 5.0


def _fresh(a: AgentProc) -> bool:
    """Ready, and the newest tick judged fresh records (the backlog has been worked off)."""
    if not a.ready():
        return False
    m = a.metrics()
    return (a.metric("kubepulse_last_tick_age_seconds", m) < 1.0
            and a.metric("kubepulse_detection_lag_seconds", m) < 1.0)


def test_sigstop_10s_then_recovers_reconciles_and_detects(tmp_path: Path, bpf: None,
                                                          churn: Path) -> None:
    with agent_running(tmp_path, config="alerts:\n  resolve_after_seconds: 3\n") as a:
        poll("the agent ready", a.ready)
        m0 = a.metrics()
        lost0 = a.metric("kubepulse_records_lost_total", m0, stage="kernel")
        proc0 = a.metric("kubepulse_records_processed_total", m0, probe="tcp_conn")
        os.kill(a.pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        try:
            # Traffic goes on while nobody reads: ~8 s of churn on one client thread.
            work = run_churn(churn, duration=8.0, threads=1, servers=1)
            left = STALL_SECONDS - (time.monotonic() - t_stop)
            if left > 0:
                time.sleep(left)  # the stall itself is the scenario, not a synchronisation
            assert not a.ready(), "a stopped agent must not answer ready"
        finally:
            os.kill(a.pid, signal.SIGCONT)
        t_cont = time.monotonic()
        poll("ready with fresh ticks after SIGCONT", lambda: _fresh(a), timeout=30)
        recovery_s = time.monotonic() - t_cont
        m1 = poll("a reconciled tick", a.reconciled)
        lost = a.metric("kubepulse_records_lost_total", m1, stage="kernel") - lost0
        processed = a.metric("kubepulse_records_processed_total", m1, probe="tcp_conn") - proc0
        port = closed_port()
        t_fault = time.monotonic()
        fired = fire_refused(a, port)
        detect_s = time.monotonic() - t_fault
        rc, _ = a.stop()
        summary = a.summary()
    print(f"stall: {STALL_SECONDS:.0f} s stopped, {work['completed']} connections meanwhile; "
          f"ready and fresh {recovery_s:.2f} s after SIGCONT; processed {processed:.0f}, lost in "
          f"kernel {lost:.0f} for {2 * work['completed']} expected; "
          f"new refused alert after {detect_s:.2f} s")
    assert rc == 0
    assert recovery_s < RECOVERY_BOUND_S
    assert summary.lost_user == 0, "records the kernel submitted were never read"
    # Every record of the stall is either processed or counted lost (other tests on this
    # host only ever add records).
    assert processed + lost >= 2 * work["completed"]
    assert fired["state"] == "firing" and detect_s < 10
    record("stall", {"stall_s": STALL_SECONDS, "connections": work["completed"],
                     "recovery_s": round(recovery_s, 2), "processed": int(processed),
                     "lost_kernel": int(lost), "expected_records": 2 * work["completed"],
                     "detect_s": round(detect_s, 2), "queue_lost": summary.lost_user})
