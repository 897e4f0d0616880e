"""Score the agent's alerts against ground truth. Pure: data in, figures out, no clock, no I/O
(except the two loaders at the bottom). The rules are documented in docs/scenarios.md.

In short:
  - an *alert episode* is one (fingerprint, starts_at) pair; it is detected at the earliest
    ``emitted_at`` of its ``firing`` lines (``resolved`` lines only close it);
  - an episode *matches* a fault when its detection time lies in
    [fault start - lead_s, fault end + grace_s] and its labels fit the fault's selectors: no
    known label contradicts a selector key, and at least one agrees;
  - an episode of type T is a true positive if it matches a fault expecting T, tolerated if it
    matches a fault that lists T as an allowed symptom, and a false positive otherwise;
  - a fault is detected when some episode of its expected type matches it; time to detect is
    from the fault's start to that episode's detection time (never below zero);
  - false alarms per hour: false-positive episodes detected inside the healthy-only windows,
    divided by those windows' length in hours.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubepulse.enrich.inventory import Inventory
from kubepulse.errors import ConfigError
from kubepulse.lab.labels import GroundTruth, Selector, parse_time

SELECTOR_KEYS = ("namespace", "workload", "pod", "node", "service")


@dataclass(frozen=True)
class ScoreConfig:
    grace_s: float = 30.0  # an alert may come this long after the fault ended
    lead_s: float = 1.0  # or this long before it started (clock skew between writers)


@dataclass(frozen=True)
class Episode:
    fingerprint: str
    type: str
    starts_at: str
    detected_at: float  # epoch seconds: the first firing line's emitted_at
    labels: dict[str, str] = field(hash=False, compare=False)


@dataclass(frozen=True)
class AlertLine:
    fingerprint: str
    type: str
    state: str
    starts_at: str
    emitted_at: float
    labels: dict[str, str] = field(hash=False, compare=False)


def parse_alert(obj: dict[str, Any]) -> AlertLine:
    """One decoded JSON line of the agent's output; raises ValueError when it cannot be used."""
    try:
        labels = {str(k): str(v) for k, v in (obj.get("labels") or {}).items() if v is not None}
        return AlertLine(
            fingerprint=str(obj["fingerprint"]),
            type=str(obj["type"]),
            state=str(obj["state"]),
            starts_at=str(obj.get("starts_at") or ""),
            emitted_at=parse_time(str(obj["emitted_at"])),
            labels=labels,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not an alert ({type(exc).__name__}: {exc})") from None


def episodes(lines: Iterable[AlertLine]) -> list[Episode]:
    first: dict[tuple[str, str], AlertLine] = {}
    for line in lines:
        if line.state != "firing":
            continue
        key = (line.fingerprint, line.starts_at)
        if key not in first or line.emitted_at < first[key].emitted_at:
            first[key] = line
    return sorted(
        (Episode(a.fingerprint, a.type, a.starts_at, a.emitted_at, a.labels)
         for a in first.values()),
        key=lambda e: (e.detected_at, e.fingerprint),
    )


def _side(labels: dict[str, str], side: str, inv: Inventory | None) -> dict[str, str]:
    """What the alert says about one end (``src`` or ``dst``), completed from the inventory."""
    out = {k: labels[f"{side}_{k}"] for k in SELECTOR_KEYS if labels.get(f"{side}_{k}")}
    if inv is None:
        return out
    pod = None
    if "pod" in out:
        cands = [p for p in inv.pods if p.name == out["pod"]
                 and out.get("namespace", p.namespace) == p.namespace]
        pod = cands[0] if len(cands) == 1 else None
    elif _address(labels, side):
        pod = inv.pod_by_ip().get(_address(labels, side))
        if pod is not None:
            out["pod"] = pod.name
    if pod is not None:
        out.setdefault("namespace", pod.namespace)
        if pod.workload:
            out.setdefault("workload", pod.workload)
        if pod.node:
            out.setdefault("node", pod.node)
    return out


def _address(labels: dict[str, str], side: str) -> str:
    """The side's IP when the alert gives one: ``<side>_ip``, ``<side>_address``, or for the
    destination of a DNS alert the first ``dns_server``."""
    found = labels.get(f"{side}_ip") or labels.get(f"{side}_address")
    if not found and side == "dst":
        found = labels.get("dns_server", "").split(",")[0].strip()
    return found or ""


def _fit(sel: Selector, known: dict[str, str]) -> tuple[bool, int]:
    """(no contradiction, number of agreeing keys)."""
    agree = 0
    for key in SELECTOR_KEYS:
        want = getattr(sel, key)
        have = known.get(key)
        if want is None or not have:
            continue
        if want != have:
            return False, 0
        agree += 1
    return True, agree


def matches(ep: Episode, gt: GroundTruth, inv: Inventory | None, cfg: ScoreConfig) -> bool:
    if not gt.start_epoch - cfg.lead_s <= ep.detected_at <= gt.end_epoch + cfg.grace_s:
        return False
    src, dst = _side(ep.labels, "src", inv), _side(ep.labels, "dst", inv)
    orientations = [(src, dst), (dst, src)] if gt.symmetric else [(src, dst)]
    for a, b in orientations:
        ok_s, n_s = _fit(gt.source, a)
        ok_d, n_d = _fit(gt.destination, b)
        if ok_s and ok_d and n_s + n_d >= 1:
            return True
    return False


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        return None
    v = sorted(values)
    rank = pct / 100.0 * (len(v) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (rank - lo), 6)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def score(
    truth: Sequence[GroundTruth],
    alerts: Sequence[AlertLine],
    healthy: Sequence[tuple[float, float]] = (),
    inventory: Inventory | None = None,
    cfg: ScoreConfig = ScoreConfig(),
) -> dict[str, Any]:
    eps = episodes(alerts)
    verdict: dict[Episode, str] = {}
    for ep in eps:
        hits = [g for g in truth if matches(ep, g, inventory, cfg)]
        if any(g.expected_alert == ep.type for g in hits):
            verdict[ep] = "true_positive"
        elif any(ep.type in g.allowed_symptoms for g in hits):
            verdict[ep] = "tolerated"
        else:
            verdict[ep] = "false_positive"
    faults = []
    ttd_by_type: dict[str, list[float]] = {}
    for g in truth:
        found = [e for e in eps if e.type == g.expected_alert and matches(e, g, inventory, cfg)]
        ttd_s = round(max(0.0, found[0].detected_at - g.start_epoch), 6) if found else None
        if ttd_s is not None:
            ttd_by_type.setdefault(g.expected_alert, []).append(ttd_s)
        faults.append({
            "id": g.id, "type": g.type, "expected_alert": g.expected_alert,
            "source": str(g.source), "destination": str(g.destination),
            "start": g.start, "end": g.end, "detected": bool(found), "ttd_s": ttd_s,
            "alerts": [e.fingerprint for e in found],
        })
    types = sorted({g.expected_alert for g in truth} | {e.type for e in eps})
    per_type: dict[str, dict[str, Any]] = {}
    for t in types:
        n_faults = sum(1 for g in truth if g.expected_alert == t)
        detected = sum(1 for f in faults if f["expected_alert"] == t and f["detected"])
        mine = [e for e in eps if e.type == t]
        tp = sum(1 for e in mine if verdict[e] == "true_positive")
        fp = sum(1 for e in mine if verdict[e] == "false_positive")
        ttd = ttd_by_type.get(t, [])
        per_type[t] = {
            "faults": n_faults, "detected": detected, "recall": _ratio(detected, n_faults),
            "alerts": len(mine), "true_positives": tp, "false_positives": fp,
            "tolerated": len(mine) - tp - fp, "precision": _ratio(tp, tp + fp),
            "ttd_p50_s": percentile(ttd, 50), "ttd_p95_s": percentile(ttd, 95),
        }
    healthy_s = sum(max(0.0, b - a) for a, b in healthy)
    false_alarms = [e for e in eps if verdict[e] == "false_positive"
                    and any(a <= e.detected_at <= b for a, b in healthy)]
    tp_all = sum(1 for v in verdict.values() if v == "true_positive")
    fp_all = sum(1 for v in verdict.values() if v == "false_positive")
    return {
        "config": {"grace_s": cfg.grace_s, "lead_s": cfg.lead_s},
        "per_type": per_type,
        "overall": {
            "faults": len(truth),
            "detected": sum(1 for f in faults if f["detected"]),
            "recall": _ratio(sum(1 for f in faults if f["detected"]), len(truth)),
            "alerts": len(eps), "true_positives": tp_all, "false_positives": fp_all,
            "precision": _ratio(tp_all, tp_all + fp_all),
        },
        "false_alarms": {
            "healthy_seconds": round(healthy_s, 3),
            "count": len(false_alarms),
            "per_hour": round(len(false_alarms) * 3600.0 / healthy_s, 6) if healthy_s else None,
        },
        "faults": faults,
        "unmatched_alerts": [
            {"fingerprint": e.fingerprint, "type": e.type, "detected_at": e.detected_at,
             "labels": e.labels}
            for e in eps if verdict[e] == "false_positive"
        ],
    }


def load_alerts(path: Path) -> tuple[list[AlertLine], list[str]]:
    """The agent's JSON Lines; returns (alerts, problems). A missing file is no alerts."""
    if not path.exists():
        return [], [f"{path} does not exist: the agent wrote no alerts"]
    out: list[AlertLine] = []
    problems: list[str] = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out.append(parse_alert(obj if isinstance(obj, dict) else {}))
        except ValueError as exc:
            problems.append(f"{path} line {n}: {exc}")
    return out, problems


def load_healthy(values: Sequence[str]) -> list[tuple[float, float]]:
    """``START,END`` pairs (RFC 3339 or epoch seconds) from the command line."""
    out = []
    for v in values:
        try:
            a, b = v.split(",")
            out.append((_when(a), _when(b)))
        except ValueError:
            raise ConfigError(f"--healthy {v!r} is not START,END (RFC 3339 or epoch "
                              "seconds); e.g. --healthy 1700000000,1700000300.") from None
    return out


def _when(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return parse_time(text)
