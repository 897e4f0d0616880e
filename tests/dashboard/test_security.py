"""Security of the dashboard: injected markup never runs, and the listener needs a token
beyond loopback.

- A pod named ``<img src=x onerror=alert(1)>`` (in a real inventory file, named by the real
  resolver), markup in labels, a namespace, a process name and a DNS-name-like string in an
  alert's evidence: the page shows each as text, no dialog opens, no element is injected.
- A token guard: 401 (or a redirect to /login for the page) without it; a bearer header or the
  login cookie with it; the probes stay open. No CORS header, a strict CSP.
- `kubepulse run --listen <not loopback>` without a token refuses to start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kubepulse.enrich import inventory
from kubepulse.enrich.resolver import Resolver
from tests.dashboard.browser import chromium, open_page
from tests.dashboard.fakes import DashAgent, alert, dns, records, sample
from tests.dashboard.feed import now, served

XSS_POD = "<img src=x onerror=alert(1)>"
XSS_NS = "<svg onload=alert(2)>"
XSS_DNS = "<img src=x onerror=alert(3)>.evil.svc.cluster.local"
XSS_COMM = "<b onclick=x>"


def _inventory(tmp_path: Path) -> Path:
    inv = {
        "version": 1, "cluster": "xss",
        "nodes": [{"name": "node1"}],
        "pods": [
            {"name": XSS_POD, "namespace": "shop", "workload": XSS_POD, "node": "node1",
             "ip": "10.3.0.5", "labels": {"app": "<script>window.__xss=1</script>"}},
            {"name": "api-0", "namespace": XSS_NS, "workload": "api", "node": "node1",
             "ip": "10.3.0.9"},
            {"name": "kube-dns-0", "namespace": "kube-system", "workload": "kube-dns",
             "node": "node1", "ip": "10.3.0.53"},
        ],
        "services": [],
    }
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inv))
    return path


def test_markup_from_the_network_and_kubernetes_never_runs(tmp_path: Path) -> None:
    resolver = Resolver(inventory.load(_inventory(tmp_path)), node="node1")
    bad, api = resolver.remote("10.3.0.5", 0), resolver.remote("10.3.0.9", 8080)
    assert bad.pod == XSS_POD
    a = DashAgent(resolver=resolver)
    t = now()
    a.last_samples = [sample(bad, api, 8080, ok=1, refused=5)]
    a.last_dns = [dns(bad, "10.3.0.53", 5, 0.001, nxdomain=5)]
    a.last_records = records([{"ts": t, "pid": 7, "comm": XSS_COMM, "src": "10.3.0.5",
                               "sport": 4000, "dst": "10.3.0.9", "dport": 8080,
                               "outcome": "refused"}])
    a.alerts.open["f1"] = alert(
        "f1", "dns_errors", "warning", "firing", t - 2, None,
        {"src_namespace": "shop", "src_workload": XSS_POD, "src_pod": XSS_POD,
         "dns_server": "10.3.0.53"},
        f"shop/{XSS_POD}: 5 of 5 answers NXDOMAIN ({XSS_DNS})", f"no such name: {XSS_DNS}",
        {"nxdomain": 5, "names": [[XSS_DNS, "NXDOMAIN", 5]]},
        {"src": f"shop/{XSS_POD}", "dst_service": XSS_DNS})
    with served(a) as s, chromium() as browser:
        s.tick()
        with open_page(browser, s.url + "/") as w:
            page = w.page
            w.wait("the alert listed", "() => document.querySelectorAll("
                   "'#alert-list li').length === 1")
            w.wait("the raw record listed", "() => document.querySelectorAll("
                   "'#events tbody tr').length === 1")
            alerts = page.locator("#alert-list").text_content()
            assert XSS_DNS in alerts and f"shop/{XSS_POD}" in alerts
            row = page.locator("#events tbody").text_content()
            assert f"shop/{XSS_POD}" in row and XSS_COMM in row
            options = page.eval_on_selector_all("#ns-filter option", "os => os.map(o => o.text)")
            assert XSS_NS in options
            assert page.evaluate("() => kubepulse.cy.nodes().map(n => n.id())").count(
                f"shop/{XSS_POD}") == 1
            page.click("#alert-list li")
            page.select_option("#ns-filter", XSS_NS)
            page.fill("#search", XSS_POD)
            page.locator("#search").press("Enter")
            page.select_option("#ns-filter", "")
            w.wait("a snapshot after the clicks", "() => kubepulse.state.snap !== null")
            injected = page.evaluate("""() => ({
                imgs: document.querySelectorAll('img').length,
                svgs: document.querySelectorAll('svg').length,
                scripts: Array.from(document.scripts).map(s => s.src.split('/').pop()),
                bold: document.querySelectorAll('b').length,
                xss: window.__xss === undefined ? null : window.__xss })""")
            assert injected == {"imgs": 0, "svgs": 0, "bold": 0, "xss": None, "scripts": [
                "cytoscape.min.js", "uPlot.iife.min.js", "app.js"]}, injected
            w.screenshot("xss.png")
            w.assert_clean()


def _get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with opener.open(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_a_token_guards_everything_but_the_probes() -> None:
    a = DashAgent()
    with served(a, token="s3cret-token") as s:
        s.tick()
        for path in ("/api/v1/edges", "/api/v1/alerts", "/api/v1/health", "/api/v1/stream",
                     "/api/v1/events", "/openapi.json", "/metrics"):
            status, headers, _ = _get(s.url + path)
            assert status == 401, path
            assert headers.get("WWW-Authenticate", "").startswith("Bearer")
        status, headers, _ = _get(s.url + "/")
        assert (status, headers["Location"]) == (303, "/login")
        assert _get(s.url + "/api/v1/edges", {"Authorization": "Bearer wrong"})[0] == 401
        assert _get(s.url + "/api/v1/edges", {"Cookie": "kubepulse_session=s3cret-token"}
                    )[0] == 401  # the cookie is an HMAC of the token, not the token
        status, headers, body = _get(s.url + "/api/v1/edges",
                                     {"Authorization": "Bearer s3cret-token"})
        assert status == 200 and "edges" in json.loads(body)
        assert "Access-Control-Allow-Origin" not in headers
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        for path in ("/healthz", "/readyz"):
            assert _get(s.url + path)[0] in (200, 503), path
        assert _get(s.url + "/login", data=b"token=nope")[0] == 401
        status, headers, _ = _get(s.url + "/login", data=b"token=s3cret-token")
        assert status == 303
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "s3cret-token" not in cookie
        session = cookie.split(";")[0]
        assert _get(s.url + "/api/v1/health", {"Cookie": session})[0] == 200


def test_a_browser_logs_in_with_the_token() -> None:
    a = DashAgent()
    with served(a, token="s3cret-token") as s, chromium() as browser:
        s.tick()
        with open_page(browser, s.url + "/") as w:
            page = w.page
            assert page.url.endswith("/login")
            page.fill("input[name=token]", "s3cret-token")
            with page.expect_navigation():
                page.click("button[type=submit]")
            assert page.url == s.url + "/"
            w.wait("the dashboard after login",
                   "() => !!document.body && document.body.dataset.stream === 'live'")
            assert page.locator("#node-name").text_content() == "node-test"
            w.assert_clean()


def test_run_refuses_a_non_loopback_listener_without_a_token(tmp_path: Path) -> None:
    for argv in (["--listen", "10.255.255.1:9810"], ["--listen", ":9810"]):
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        p = subprocess.run([sys.executable, "-m", "kubepulse.cli", "run", *argv,
                            "--state-dir", str(tmp_path)], capture_output=True, text=True,
                           timeout=60, env=env, check=False)
        assert p.returncode != 0, p
        assert "token" in p.stderr and "--insecure" in p.stderr, p.stderr


def test_insecure_warns(capsys: Any) -> None:
    from kubepulse.agent.run_cmd import _check_exposure

    _check_exposure("127.0.0.1:9810", "", insecure=False)  # loopback: fine without a token
    _check_exposure("0.0.0.0:9810", "tok", insecure=False)  # a token: fine
    _check_exposure("0.0.0.0:9810", "", insecure=True)
    assert "warning: --insecure" in capsys.readouterr().err
