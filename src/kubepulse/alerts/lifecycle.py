"""The alert lifecycle: findings in, state changes out.

- **Dedupe:** findings with one fingerprint are one alert; while it fires, repeats only refresh
  its evidence and its last-seen time.
- **Resolve:** no finding for ``resolve_after_seconds`` resolves it (``ends_at`` = last seen).
- **Flap damping:** an alert that changed state ``max_transitions`` times within the flap window
  is marked ``flapping`` and needs a quiet period ``resolve_multiplier`` times longer.
- **Inhibition:** a firing source alert suppresses the target alerts it explains. A new target
  of a rule with ``hold_seconds`` waits that long for its source; one already firing when its
  source appears is resolved with ``inhibited_by`` set.
- **Restart:** alerts restored from the store are open again with their fingerprint and
  ``starts_at``; they are not re-emitted, and resolve once when their quiet period ends.

Pure like the detectors: the clock is the ``now`` of each call.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from kubepulse.detect.config import AlertsConfig
from kubepulse.model import Alert, Finding, Severity

from .fingerprint import fingerprint
from .inhibit import Subject, hold_for, inhibitor

_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
_MAX_HISTORY = 10_000  # fingerprints whose recent transitions are remembered for flap damping


@dataclass(slots=True)
class _Open:
    alert: Alert  # as last emitted (firing)
    latest: Finding | None  # the newest finding since then
    last_seen: float


@dataclass(slots=True)
class _Pending:
    finding: Finding
    first_seen: float
    last_seen: float


@dataclass(slots=True)
class LifecycleStats:
    fired_total: int = 0
    resolved_total: int = 0
    deduped_total: int = 0
    inhibited_total: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def _merge(a: Finding, b: Finding) -> Finding:
    """Two findings of one fingerprint in one tick: keep the worse severity, newest evidence."""
    sev: Severity = a.severity if _RANK[a.severity] > _RANK[b.severity] else b.severity
    return replace(b, severity=sev)


class AlertManager:
    def __init__(self, config: AlertsConfig, restored: Iterable[Alert] = (),
                 now: float = 0.0) -> None:
        self.config = config
        self.stats = LifecycleStats()
        self._open: dict[str, _Open] = {}
        self._pending: dict[str, _Pending] = {}
        self._transitions: OrderedDict[str, deque[float]] = OrderedDict()
        for alert in restored:
            if alert.state == "firing":
                # A restart is not evidence that the problem ended: the quiet period starts now.
                self._open[alert.fingerprint] = _Open(alert, None, max(now, alert.emitted_at))

    # -- queries -------------------------------------------------------------------------------
    def open_alerts(self) -> list[Alert]:
        """Every firing alert, with its newest evidence (what the store saves at shutdown)."""
        return [self._current(o) for o in self._open.values()]

    # -- the tick --------------------------------------------------------------------------------
    def process(self, findings: Sequence[Finding], now: float) -> list[Alert]:
        """One tick: returns the state changes (firing, resolved) to send to the sinks."""
        fresh: dict[str, Finding] = {}
        for f in findings:
            fp = fingerprint(f.type, f.identity)
            fresh[fp] = _merge(fresh[fp], f) if fp in fresh else f
        changes: list[Alert] = []
        for fp, f in fresh.items():
            if fp in self._open:
                o = self._open[fp]
                o.latest, o.last_seen = f, now
                self.stats.deduped_total += 1
            elif fp in self._pending:
                p = self._pending[fp]
                p.finding, p.last_seen = _merge(p.finding, f), now
            else:
                self._pending[fp] = _Pending(f, now, now)
        changes += self._inhibit_open(now)
        changes += self._promote(now)
        changes += self._resolve_quiet(now)
        return changes

    # -- steps -----------------------------------------------------------------------------------
    def _sources(self, extra: Iterable[tuple[str, Finding]] = ()) -> list[Subject]:
        subs = [Subject(fp, o.alert.type, o.alert.identity, o.alert.labels)
                for fp, o in self._open.items()]
        subs += [Subject(fp, f.type, f.identity, f.labels) for fp, f in extra]
        return subs

    def _promote(self, now: float) -> list[Alert]:
        rules = self.config.inhibit
        ready: list[tuple[str, _Pending]] = []
        for fp, p in list(self._pending.items()):
            if now - p.last_seen >= self.config.resolve_after_seconds:
                del self._pending[fp]  # went quiet while held back
            elif now - p.first_seen >= hold_for(p.finding.type, rules):
                # Held long enough for its source to show up; it need not be seen again on
                # this very tick (an unheld finding fires on its first sighting too). Waiting
                # for a fresh one made an intermittent signal, like loss near its threshold,
                # fire seconds late.
                ready.append((fp, p))
        # Sources first, so a source and its targets arriving in one tick inhibit correctly.
        sources = self._sources((fp, p.finding) for fp, p in ready)
        out: list[Alert] = []
        for fp, p in ready:
            del self._pending[fp]
            f = p.finding
            by = inhibitor(Subject(fp, f.type, f.identity, f.labels), sources, rules)
            if by is not None:
                self.stats.inhibited_total += 1
                continue
            alert = Alert(
                fingerprint=fp, type=f.type, severity=f.severity, state="firing",
                starts_at=p.first_seen, ends_at=None, emitted_at=now, labels=dict(f.labels),
                summary=f.summary, cause=f.cause, evidence=dict(f.evidence),
                flapping=self._note(fp, now), identity=dict(f.identity),
            )
            self._open[fp] = _Open(alert, None, now)
            self.stats.fired_total += 1
            self.stats.by_type[f.type] = self.stats.by_type.get(f.type, 0) + 1
            out.append(alert)
        # Pending targets whose source is firing now will never fire: drop them early.
        for fp, p in list(self._pending.items()):
            f = p.finding
            if inhibitor(Subject(fp, f.type, f.identity, f.labels), self._sources(), rules):
                del self._pending[fp]
                self.stats.inhibited_total += 1
        return out

    def _inhibit_open(self, now: float) -> list[Alert]:
        rules = self.config.inhibit
        sources = self._sources((fp, p.finding) for fp, p in self._pending.items()
                                if hold_for(p.finding.type, rules) == 0.0)
        out: list[Alert] = []
        for fp, o in list(self._open.items()):
            a = o.alert
            by = inhibitor(Subject(fp, a.type, a.identity, a.labels), sources, rules)
            if by is not None:
                self.stats.inhibited_total += 1
                out.append(self._close(fp, now, inhibited_by=by.fingerprint))
        return out

    def _resolve_quiet(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for fp, o in list(self._open.items()):
            quiet = self.config.resolve_after_seconds
            if o.alert.flapping:
                quiet *= self.config.flap.resolve_multiplier
            if now - o.last_seen >= quiet:
                out.append(self._close(fp, now))
        return out

    # -- helpers ---------------------------------------------------------------------------------
    def _current(self, o: _Open) -> Alert:
        f = o.latest
        if f is None:
            return o.alert
        sev: Severity = f.severity if _RANK[f.severity] > _RANK[o.alert.severity] else (
            o.alert.severity)
        return replace(o.alert, severity=sev, summary=f.summary, cause=f.cause,
                       evidence=dict(f.evidence))

    def _close(self, fp: str, now: float, inhibited_by: str = "") -> Alert:
        o = self._open.pop(fp)
        self.stats.resolved_total += 1
        flapping = self._note(fp, now)
        return replace(self._current(o), state="resolved", ends_at=o.last_seen, emitted_at=now,
                       inhibited_by=inhibited_by, flapping=flapping or o.alert.flapping)

    def _note(self, fp: str, now: float) -> bool:
        """Record a state change; True when the fingerprint is now flapping."""
        flap = self.config.flap
        times = self._transitions.get(fp)
        if times is None:
            times = self._transitions[fp] = deque()
            while len(self._transitions) > _MAX_HISTORY:
                self._transitions.popitem(last=False)
        else:
            self._transitions.move_to_end(fp)
        times.append(now)
        while times and times[0] <= now - flap.window_seconds:
            times.popleft()
        return len(times) >= flap.max_transitions
