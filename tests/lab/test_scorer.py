"""The scorer on hand-made label and alert files, with exact expected figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubepulse.enrich import inventory
from kubepulse.errors import ConfigError
from kubepulse.lab import labels, scorer
from kubepulse.lab.labels import Selector, rfc3339

pytestmark = pytest.mark.lab

T0 = 1_700_000_000.0
INVENTORY = {
    "nodes": [{"name": "node1"}, {"name": "node2"}],
    "pods": [
        {"name": "api-0", "namespace": "shop", "workload": "api", "node": "node1",
         "ip": "10.244.1.12"},
        {"name": "api-1", "namespace": "shop", "workload": "api", "node": "node2",
         "ip": "10.244.2.12"},
        {"name": "db-0", "namespace": "shop", "workload": "db", "node": "node1",
         "ip": "10.244.1.10"},
        {"name": "cache-1", "namespace": "shop", "workload": "cache", "node": "node2",
         "ip": "10.244.2.11"},
        {"name": "frontend-0", "namespace": "shop", "workload": "frontend", "node": "node1",
         "ip": "10.244.1.13"},
        {"name": "kube-dns-0", "namespace": "kube-system", "workload": "kube-dns",
         "node": "node2", "ip": "10.244.2.10"},
    ],
}


def gt(fid: str, fault: str, src: Selector, dst: Selector, start: float, end: float) -> str:
    return labels.make(fid, fault, src, dst, T0 + start, T0 + end).model_dump_json()


def alert(fp: str, typ: str, at: float, state: str = "firing", starts: float | None = None,
          **lb: str) -> str:
    a: dict[str, Any] = {
        "fingerprint": fp, "type": typ, "severity": "warning", "state": state,
        "starts_at": rfc3339(T0 + (starts if starts is not None else at)),
        "ends_at": None, "emitted_at": rfc3339(T0 + at), "labels": lb,
        "summary": "", "cause": "", "evidence": {},
    }
    return json.dumps(a)


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    shop = {"namespace": "shop"}
    truth = [
        gt("f1", "refused", Selector(), Selector(**shop, workload="api", pod="api-0",
                                                   service="api"), 100, 130),
        gt("f2", "refused", Selector(), Selector(**shop, workload="cache", pod="cache-1"),
           200, 230),
        gt("f3", "partition", Selector(node="node1"), Selector(node="node2"), 300, 330),
        gt("f4", "dns_nxdomain", Selector(**shop, workload="api"),
           Selector(namespace="kube-system", workload="kube-dns", service="kube-dns"), 400, 430),
        gt("f5", "blackhole", Selector(), Selector(**shop, workload="db", pod="db-0"), 900, 930),
    ]
    alerts = [
        # f1: detected 4 s in; a resend and the resolve of the same episode do not count again
        alert("r1", "connection_refused", 104, src_pod="frontend-0", dst_namespace="shop",
              dst_workload="api", dst_pod="api-0"),
        alert("r1", "connection_refused", 110, starts=104, dst_pod="api-0"),
        alert("r1", "connection_refused", 140, "resolved", starts=104, dst_pod="api-0"),
        # f1 again, inside the 30 s grace after its end: a second true positive
        alert("r5", "connection_refused", 150, dst_namespace="shop", dst_pod="api-0"),
        # f2: no pod named, the workload agrees: detected 12 s in
        alert("r2", "connection_refused", 212, dst_namespace="shop", dst_workload="cache"),
        # during f2 but about api-1: contradicts the selector -> false positive
        alert("r3", "connection_refused", 215, dst_pod="api-1", dst_workload="api"),
        # partition symptom, from node2 to node1 (sides swapped; nodes from the inventory)
        alert("t1", "connection_timeout", 305, src_pod="api-1", dst_pod="db-0"),
        alert("p1", "network_partition", 320, src_node="node1", dst_node="node2"),
        # f4: 31 s in, after its end but inside the grace
        alert("d1", "dns_errors", 431, src_namespace="shop", src_workload="api",
              dst_service="kube-dns"),
        # past the grace (430 + 30): false positive, outside the healthy window
        alert("d2", "dns_errors", 470, dst_service="kube-dns"),
        # inside the healthy window [500, 800]: two false alarms
        alert("l1", "packet_loss", 600, src_pod="api-0", dst_pod="db-0"),
        alert("r4", "connection_refused", 700, dst_pod="api-0"),
    ]
    lp, ap = tmp_path / "labels.jsonl", tmp_path / "alerts.jsonl"
    lp.write_text("\n".join(truth) + "\n")
    ap.write_text("\n".join(alerts) + "\n")
    return lp, ap


def run(files: tuple[Path, Path], with_inventory: bool = True) -> dict[str, Any]:
    truth = labels.load(files[0])
    alerts, problems = scorer.load_alerts(files[1])
    assert problems == []
    inv = inventory.parse(INVENTORY) if with_inventory else None
    return scorer.score(truth, alerts, [(T0 + 500, T0 + 800)], inv)


def test_per_type_figures(files: tuple[Path, Path]) -> None:
    r = run(files)["per_type"]
    assert r["connection_refused"] == {
        "faults": 2, "detected": 2, "recall": 1.0, "alerts": 5, "true_positives": 3,
        "false_positives": 2, "tolerated": 0, "precision": 0.6,
        "ttd_p50_s": 8.0, "ttd_p95_s": 11.6,
    }
    assert r["network_partition"] == {
        "faults": 1, "detected": 1, "recall": 1.0, "alerts": 1, "true_positives": 1,
        "false_positives": 0, "tolerated": 0, "precision": 1.0,
        "ttd_p50_s": 20.0, "ttd_p95_s": 20.0,
    }
    assert r["connection_timeout"] == {
        "faults": 1, "detected": 0, "recall": 0.0, "alerts": 1, "true_positives": 0,
        "false_positives": 0, "tolerated": 1, "precision": None,
        "ttd_p50_s": None, "ttd_p95_s": None,
    }
    assert r["dns_errors"]["precision"] == 0.5 and r["dns_errors"]["ttd_p50_s"] == 31.0
    assert r["packet_loss"] == {
        "faults": 0, "detected": 0, "recall": None, "alerts": 1, "true_positives": 0,
        "false_positives": 1, "tolerated": 0, "precision": 0.0,
        "ttd_p50_s": None, "ttd_p95_s": None,
    }


def test_overall_and_false_alarms(files: tuple[Path, Path]) -> None:
    r = run(files)
    assert r["overall"] == {"faults": 5, "detected": 4, "recall": 0.8, "alerts": 10,
                            "true_positives": 5, "false_positives": 4, "precision": 0.555556}
    assert r["false_alarms"] == {"healthy_seconds": 300.0, "count": 2, "per_hour": 24.0}
    assert sorted(a["fingerprint"] for a in r["unmatched_alerts"]) == ["d2", "l1", "r3", "r4"]
    by_id = {f["id"]: f for f in r["faults"]}
    assert (by_id["f1"]["ttd_s"], by_id["f1"]["alerts"]) == (4.0, ["r1", "r5"])
    assert by_id["f5"] == {**by_id["f5"], "detected": False, "ttd_s": None, "alerts": []}


def test_without_inventory_pods_cannot_be_placed_on_nodes(files: tuple[Path, Path]) -> None:
    r = run(files, with_inventory=False)
    # t1 names only pods; without the inventory nothing ties it to the partitioned nodes.
    assert r["per_type"]["connection_timeout"]["false_positives"] == 1
    assert r["per_type"]["network_partition"]["true_positives"] == 1  # names nodes itself


def test_an_alert_slightly_early_counts_with_zero_delay() -> None:
    truth = [labels.make("x", "reset", Selector(), Selector(workload="db"), T0, T0 + 10)]
    a = scorer.parse_alert(json.loads(alert("e", "connection_reset", -0.5, dst_workload="db")))
    r = scorer.score(truth, [a])
    assert r["faults"][0]["ttd_s"] == 0.0
    b = scorer.parse_alert(json.loads(alert("e", "connection_reset", -1.5, dst_workload="db")))
    assert scorer.score(truth, [b])["overall"]["detected"] == 0


def test_an_alert_with_no_agreeing_label_matches_nothing() -> None:
    truth = [labels.make("x", "reset", Selector(), Selector(workload="db"), T0, T0 + 10)]
    a = scorer.parse_alert(json.loads(alert("e", "connection_reset", 5, node="node1")))
    assert scorer.score(truth, [a])["overall"]["false_positives"] == 1


def test_a_dns_alert_names_its_resolver_by_address() -> None:
    truth = [labels.make("x", "dns_servfail", Selector(), Selector(namespace="kube-system",
                         workload="kube-dns"), T0, T0 + 10)]
    a = scorer.parse_alert(json.loads(alert("e", "dns_errors", 3, src_pod="frontend-0",
                                            dns_server="10.244.2.10")))
    r = scorer.score(truth, [a], inventory=inventory.parse(INVENTORY))
    assert r["faults"][0]["ttd_s"] == 3.0
    other = scorer.parse_alert(json.loads(alert("e", "dns_errors", 3, dns_server="10.9.9.9")))
    assert scorer.score(truth, [other], inventory=inventory.parse(INVENTORY))[
        "overall"]["detected"] == 0


def test_percentile_is_linear_between_ranks() -> None:
    assert scorer.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert scorer.percentile([1.0, 2.0, 3.0, 4.0], 95) == 3.85
    assert scorer.percentile([], 50) is None


def test_bad_alert_lines_are_reported_not_fatal(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text(alert("ok", "packet_loss", 1) + "\nnot json\n[1]\n{\"type\": \"x\"}\n")
    alerts, problems = scorer.load_alerts(p)
    assert [a.fingerprint for a in alerts] == ["ok"]
    assert len(problems) == 3 and problems[0].startswith(f"{p} line 2:")
    assert scorer.load_alerts(tmp_path / "missing.jsonl")[0] == []


def test_bad_label_lines_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    p.write_text('{"id": "x"}\n')
    with pytest.raises(ConfigError, match=r"l.jsonl line 1: type"):
        labels.load(p)


def test_label_lines_carry_both_time_forms() -> None:
    g = labels.make("x", "dns_timeout", Selector(), Selector(workload="kube-dns"), T0, T0 + 5)
    assert (g.start, g.end) == ("2023-11-14T22:13:20.000Z", "2023-11-14T22:13:25.000Z")
    assert labels.parse_time(g.start) == T0
    assert (g.expected_alert, g.allowed_symptoms) == (
        "dns_timeout", ["dns_latency", "dns_errors", "packet_drop"])
    assert {e for e, _ in labels.FAULT_ALERTS.values()} <= set(labels.ALERT_TYPES)


def test_scenarios_score_command(files: tuple[Path, Path], tmp_path: Path) -> None:
    import argparse

    from kubepulse.lab import cli

    parser = argparse.ArgumentParser(prog="kubepulse")
    cli.register(parser.add_subparsers(dest="command"))
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps(INVENTORY))
    report = tmp_path / "report.json"
    args = parser.parse_args([
        "scenarios", "score", "--labels", str(files[0]), "--alerts", str(files[1]),
        "--inventory", str(inv), "--healthy", f"{T0 + 500},{rfc3339(T0 + 800)}",
        "--report", str(report),
    ])
    assert args.func(args) == 0
    r = json.loads(report.read_text())
    assert r["overall"]["precision"] == 0.555556 and r["false_alarms"]["per_hour"] == 24.0
    with pytest.raises(ConfigError, match="is not START,END"):
        scorer.load_healthy(["yesterday"])


def test_every_command_has_help_with_examples() -> None:
    import argparse

    from kubepulse.lab import cli

    parser = argparse.ArgumentParser(prog="kubepulse")
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    for path in (["lab"], ["lab", "up"], ["lab", "down"], ["lab", "status"], ["lab", "fault"],
                 ["scenarios"], ["scenarios", "run"], ["scenarios", "score"], ["demo"]):
        p = sub.choices[path[0]]
        for name in path[1:]:
            action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
            p = action.choices[name]
        assert "examples:" in (p.epilog or ""), path
