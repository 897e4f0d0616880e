"""The real thing: the lab, the real agent (`kubepulse run`) and the dashboard in chromium.

The agent listens on the lab host's address (not loopback), so it must be given a token; the
browser logs in with it. The map must show the lab's workloads and live edges. `refused` on
shop/db must then show, within seconds, as a firing connection_refused anomaly whose evidence
holds the refused count, with the api -> db edge failing on the map; once the fault is undone
the anomaly must show resolved. No console error during the run. Screenshots of the map and of
the anomaly's evidence go to artifacts/dashboard/.

Run it alone with the lab lock: flock /tmp/kubepulse-lab.lock .venv/bin/python -m pytest \
tests/dashboard/test_lab.py
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubepulse.lab import cluster, faults
from tests.dashboard.browser import chromium, open_page
from tests.export.servers import free_port, poll
from tests.lab.conftest import lab  # noqa: F401  (the module-scoped lab fixture)

pytestmark = [pytest.mark.lab, pytest.mark.live]

TOKEN = "lab-dashboard-token"
CONFIG = "alerts:\n  resolve_after_seconds: 5\n"
WORKLOADS = {"shop/loadgen", "shop/frontend", "shop/api", "shop/db", "shop/cache",
             "kube-system/kube-dns"}
DETECTION_S = 10.0  # fault injected -> listed, colored and evidenced on the page

ALERT_FOR_DB = """() => Array.from(document.querySelectorAll(
    '#alert-list li[data-type="connection_refused"][data-state="firing"]'))
    .filter(li => li.querySelector('.alert-edge').textContent.includes('shop/db'))
    .map(li => li.dataset.fingerprint)"""
REFUSED_IN_EVIDENCE = """(fp) => {
    const li = document.querySelector(`#alert-list li[data-fingerprint="${fp}"]`);
    if (!li) return null;
    const dts = Array.from(li.querySelectorAll('dl.evidence dt'));
    const dt = dts.find(d => d.textContent === 'refused');
    return dt ? Number(dt.nextElementSibling.textContent) : null; }"""
API_DB_HEALTH = """() => kubepulse.cy.edges().filter(e => e.source().id() === 'shop/api'
    && e.target().id() === 'shop/db').map(e => e.data('health'))"""


def _log_has(path: Path, needle: str) -> bool:
    return path.exists() and needle in path.read_text(errors="replace")


def test_the_dashboard_on_the_lab_shows_a_real_fault_and_its_end(
        lab: cluster.Lab, tmp_path: Path) -> None:  # noqa: F811
    cfg = tmp_path / "kubepulse.yaml"
    cfg.write_text(CONFIG)
    host = lab.plan.host_ip
    assert host, "the lab has no host address"
    port = free_port()
    log = tmp_path / "agent.log"
    argv = [sys.executable, "-m", "kubepulse.cli", "run", "--inventory",
            str(lab.inventory_path), "--config", str(cfg), "--state-dir",
            str(tmp_path / "state"), "--listen", f"{host}:{port}", "--quiet"]
    # Beyond loopback without a token: refused before anything attaches.
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0 and "token" in refused.stderr, refused
    with log.open("wb") as out:
        agent = subprocess.Popen([*argv, "--token", TOKEN], stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        poll("the agent running", lambda: _log_has(log, "agent running")
             or agent.poll() is not None, timeout=60, interval=0.2)
        assert agent.poll() is None, log.read_text()
        url = f"http://{host}:{port}"
        with chromium() as browser, open_page(browser, url + "/") as w:
            page = w.page
            assert page.url.endswith("/login")
            page.fill("input[name=token]", TOKEN)
            with page.expect_navigation():
                page.click("button[type=submit]")
            # -- the map: the lab's workloads and live edges ---------------------------------
            w.wait("the lab's workloads on the map", f"""() => window.kubepulse &&
                {sorted(WORKLOADS)!r}.every(id => kubepulse.cy.getElementById(id).length)""",
                   timeout=30)
            live = w.wait("live edges", """() => {
                const e = Array.from(kubepulse.state.edges.values()).filter(e => e.active)
                    .map(e => e.src.id + '>' + e.dst.id);
                return ['shop/frontend>shop/api', 'shop/api>shop/db', 'shop/api>shop/cache']
                    .every(x => e.includes(x)) && e; }""", timeout=30)
            assert any(e.endswith(">kube-system/kube-dns") for e in live), live
            assert page.evaluate(API_DB_HEALTH) == ["normal"]
            health = page.locator("#health-list").text_content()
            assert "records lost" in health and "probes attached" in health
            w.screenshot("map-lab.png")

            # -- a real fault --------------------------------------------------------------
            fault = faults.start(lab, "refused", "shop/db")
            t0 = time.monotonic()
            try:
                fp = w.wait("connection_refused on shop/db listed", ALERT_FOR_DB,
                            timeout=DETECTION_S)[0]
                listed_s = time.monotonic() - t0
                w.wait("api -> db failing on the map",
                       f"() => ({API_DB_HEALTH})().includes('failing')",
                       timeout=DETECTION_S - listed_s)
                count = page.evaluate(REFUSED_IN_EVIDENCE, fp)
                assert count is not None and count >= 1, count
                page.click(f'#alert-list li[data-fingerprint="{fp}"]')
                w.wait("its edge highlighted", """() => kubepulse.cy.edges('.highlight')
                    .some(e => e.source().id() === 'shop/api'
                          && e.target().id() === 'shop/db')""")
                page.wait_for_selector("#charts .chart canvas")
                w.wait("refused records in the edge's events", """() => Array.from(
                    document.querySelectorAll('#events tbody td.outcome'))
                    .some(td => td.textContent === 'refused')""", timeout=10)
                w.screenshot("anomaly-lab.png")
                print(f"listed {listed_s:.1f} s after the fault; refused count {count}")
            finally:
                fault.stop(tmp_path / "labels.jsonl")
            # -- its end ---------------------------------------------------------------------
            w.wait("the anomaly resolved", f"""() => !!document.querySelector(
                '#alert-list li[data-fingerprint="{fp}"][data-state="resolved"]')""",
                   timeout=40)
            w.assert_clean()
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            assert agent.wait(timeout=20) == 0, log.read_text()[-2000:]
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(10)
