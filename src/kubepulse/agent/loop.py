"""The node agent: kernel records -> identities -> detectors -> alerts -> sinks.

One thread reads the ring buffer continuously (every poll interval); every tick it snapshots
the kernel's live sockets, builds per-edge samples, lets the detectors judge them and hands the
alert state changes to the sinks. The detectors never read a clock: ``now`` comes from here.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np

from kubepulse.agent.aggregate import DropDiffer, EdgeAggregator, dns_samples
from kubepulse.alerts import AlertManager, Sinks
from kubepulse.alerts.store import SqliteStore
from kubepulse.detect import DetectionEngine
from kubepulse.detect.config import KubepulseConfig
from kubepulse.enrich.resolver import Resolver
from kubepulse.errors import KubepulseError
from kubepulse.model import Alert, DnsSample, DropSample, EdgeSample
from kubepulse.probes import drops as drops_mod
from kubepulse.probes.dns import DnsConfig, DnsProbe
from kubepulse.probes.dnsname import qname_text
from kubepulse.probes.drops import DropProbe
from kubepulse.probes.tcp_conn import EVENT_DTYPE, TcpConnConfig, TcpConnProbe

log = logging.getLogger("kubepulse.agent")

# Loss is a warning, but at most one line per interval: a flood must not flood the log too.
LOST_WARNING_INTERVAL_S = 10.0


@dataclass
class AgentStats:
    """Self-observation: so that "no alert" is never confused with "blind"."""

    started_at: float = 0.0
    attach_seconds: float = 0.0
    ticks: int = 0
    records_received: int = 0
    dns_records: int = 0
    records_out_of_scope: int = 0
    records_untracked: int = 0
    lost_kernel: int = 0
    lost_user: int = 0
    detection_lag_seconds: float = 0.0  # newest record's age when it was judged
    alerts_emitted: int = 0
    attach_status: dict[str, bool] = field(default_factory=dict)
    kernel_counters: dict[str, int] = field(default_factory=dict)
    engine: dict[str, int] = field(default_factory=dict)


class Agent:
    def __init__(self, config: KubepulseConfig, resolver: Resolver, sinks: Sinks,
                 store: SqliteStore | None,
                 on_tick: Callable[[Agent, Sequence[Alert]], None] | None = None) -> None:
        self.config = config
        self.resolver = resolver
        self.sinks = sinks
        self.store = store
        self.on_tick = on_tick
        self.engine = DetectionEngine(config)
        now = time.time()
        restored = store.load_open() if store is not None else []
        self.alerts = AlertManager(config.alerts, restored=restored, now=now)
        if restored:
            log.warning("restored %d firing alert(s) from %s", len(restored),
                        store.path if store else "")
        self.stats = AgentStats(started_at=now)
        self._stop = False
        self._pending: list[np.ndarray] = []
        self._dns_pending: list[np.ndarray] = []
        self.probe: TcpConnProbe | None = None
        self.dns: DnsProbe | None = None
        self.drops: DropProbe | None = None
        self.drop_differ: DropDiffer | None = None
        self.last_samples: list[EdgeSample] = []
        self.last_dns: list[DnsSample] = []
        self.last_drops: list[DropSample] = []
        self.last_records = np.empty(0, dtype=EVENT_DTYPE)  # newest records of the last tick
        self.aggregator: EdgeAggregator | None = None
        self._final = False  # the last tick, after the probes were detached and drained
        self._lost_warned = 0  # lost_kernel at the last warning
        self._lost_warned_at = -LOST_WARNING_INTERVAL_S

    def run(self, duration: float | None = None, ready: Callable[[Agent], None] | None = None
            ) -> int:
        a = self.config.agent
        pcfg = TcpConnConfig(ring_bytes=a.ring_buffer_kib * 1024, max_sockets=a.max_sockets)
        handlers = {s: signal.signal(s, self._on_signal)
                    for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            with TcpConnProbe(pcfg) as probe, contextlib.ExitStack() as extra:
                self.probe = probe
                t0 = time.monotonic()
                probe.start()
                self.stats.attach_status = dict(probe.attach_status)
                # The agent drains the DNS ring on the TCP ring's cycle and never waits on the
                # DNS ring itself, so a forced wake-up there is an irq_work for nobody: ~7 µs
                # per answer once 64 KiB are queued (bench/dns_flood.py). Never force one.
                self.dns = self._optional(extra, lambda: DnsProbe(DnsConfig(
                    timeout_s=a.dns_deadline_seconds, wakeup_bytes=0xFFFF_FFFF)), "dns")
                self.drops = self._optional(extra, DropProbe, "drops")
                self.stats.attach_seconds = time.monotonic() - t0
                scope = self.resolver.scope()
                self.aggregator = EdgeAggregator(self.resolver, probe.enums, scope)
                if self.drops is not None:
                    self.drop_differ = DropDiffer(self.resolver, scope, self.drops.reason_name,
                                                  drops_mod.classify)
                if ready is not None:
                    ready(self)
                self._loop(probe, duration)
                probe.stop()  # detach; then judge what the kernel had already queued
                for p in (self.dns, self.drops):
                    if p is not None:
                        p.stop()
                self._drain(probe)
                self._final = True
                self._tick(probe, time.time())
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            self._shutdown()
        return 0

    def _optional(self, stack: contextlib.ExitStack, make: Callable[[], Any], name: str) -> Any:
        """A probe the agent can run without: its failure is a warning and an attach status."""
        try:
            p = stack.enter_context(make())
            p.start()
        except (KubepulseError, OSError) as exc:  # no privilege, no cgroup v2, old kernel
            log.warning("%s probe not attached: %s", name, exc)
            self.stats.attach_status[name] = False
            return None
        self.stats.attach_status.update(p.attach_status)
        return p

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        self._stop = True

    def _loop(self, probe: TcpConnProbe, duration: float | None) -> None:
        tick = self.config.agent.tick_seconds
        end = time.monotonic() + duration if duration else None
        next_tick = time.monotonic() + tick
        self._since_ns = time.monotonic_ns()
        while not self._stop:
            now_m = time.monotonic()
            if end is not None and now_m >= end:
                break
            probe.wait(max(0.0, min(probe.config.poll_interval_s, next_tick - now_m)))
            self._drain(probe)
            if time.monotonic() >= next_tick:
                self._tick(probe, time.time())
                next_tick += tick
                if next_tick < time.monotonic():  # we fell behind: do not burst-catch-up
                    next_tick = time.monotonic() + tick

    def _drain(self, probe: TcpConnProbe) -> None:
        if self.dns is not None:
            while (batch := self.dns.read()).size:
                self._dns_pending.append(batch)
        while True:
            batch = probe.read()
            if not batch.size:
                return
            self.stats.records_received += len(batch)
            self._pending.append(batch)

    def _tick(self, probe: TcpConnProbe, now: float) -> None:
        assert self.aggregator is not None
        records = (np.concatenate(self._pending) if self._pending
                   else np.empty(0, dtype=EVENT_DTYPE))
        self._pending = []
        keys, socks = probe.socket_snapshot()
        since = self._since_ns
        self._since_ns = time.monotonic_ns()
        samples = self.aggregator.build(records, keys, socks, since)
        agg = self.aggregator.last
        self.stats.records_out_of_scope += agg.out_of_scope
        self.stats.records_untracked += agg.untracked
        if len(records):
            newest = float(probe.wall_time(int(records["ts_ns"].max())))
            self.stats.detection_lag_seconds = max(0.0, now - newest)
        dns: list[DnsSample] = []
        if self.dns is not None and self._dns_pending:
            batch = np.concatenate(self._dns_pending)
            self._dns_pending = []
            self.stats.dns_records += len(batch)
            dns = dns_samples(batch, self.resolver, self.aggregator.scope,
                              self.dns.timeout_kind, qname_text)
        drops: list[DropSample] = []
        if self.drops is not None and self.drop_differ is not None:
            drops = self.drop_differ.samples(self.drops.snapshot())
        # What this tick judged, for the exporters (metrics, dashboard) called from on_tick.
        self.last_samples, self.last_dns, self.last_drops = samples, dns, drops
        self.last_records = records[-256:].copy()  # bounded: the dashboard's raw events
        findings = self.engine.step(now, edges=samples, dns=dns, drops=drops)
        changes = self.alerts.process(findings, now)
        if changes:
            self.stats.alerts_emitted += len(changes)
            self.sinks.emit(changes)
        self.stats.ticks += 1
        counters = probe.counters()
        self.stats.lost_kernel = counters.get("ringbuf_full", 0)
        if self._final:  # only now is every submitted record either read or never to be
            self.stats.lost_user = max(0, counters.get("records", 0) - self.stats.records_received)
        if self.dns is not None:  # malformed, unmatched, ...: kubepulse_kernel_events_total
            counters.update({f"dns_{k}": v for k, v in self.dns.counters().items()})
        # Published whole: /metrics (another thread) never sees a tick's TCP counters without
        # its DNS ones.
        self.stats.kernel_counters = counters
        self._warn_lost()
        self.stats.engine = self.engine.stats()
        if self.on_tick is not None:
            self.on_tick(self, changes)

    def _warn_lost(self) -> None:
        lost = self.stats.lost_kernel  # lost_user is only final at shutdown (unread yet)
        now = time.monotonic()
        if lost > self._lost_warned and now - self._lost_warned_at >= LOST_WARNING_INTERVAL_S:
            log.warning("%d connection records lost in the kernel (ring buffer full) since the "
                        "last warning, %d in all; raise agent.ring_buffer_kib (now %d)",
                        lost - self._lost_warned, lost, self.config.agent.ring_buffer_kib)
            self._lost_warned, self._lost_warned_at = lost, now

    def _shutdown(self) -> None:
        try:
            if self.store is not None:
                self.store.save_open(self.alerts.open_alerts())
        finally:
            self.sinks.flush()
            self.sinks.close()
