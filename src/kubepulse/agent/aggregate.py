"""From kernel records to per-edge samples, once per tick, vectorised.

An edge is seen from its client: an outbound record is the client's own view. An inbound
record counts only when the client is not one of this agent's pods (a client on another node
or outside the cluster), so a connection between two local pods is counted once.

Records are grouped with numpy (one ``np.unique`` over a packed key, then ``bincount``); Python
runs once per *edge*, not per record. Identities come from the :class:`Resolver`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kubepulse.enrich.resolver import Resolver, Scope
from kubepulse.model import OUTCOMES, DnsSample, DropSample, EdgeKey, EdgeSample, LatencyStat
from kubepulse.probes.tcp_conn import Enums, addr_str

KEY_DTYPE = np.dtype([("inbound", "u1"), ("family", "u1"), ("netns", "<u4"), ("comm", "S16"),
                      ("src", "V16"), ("dst", "V16"), ("dport", "<u2")])
TCP_ESTABLISHED = 1


@dataclass
class TickStats:
    records: int = 0
    out_of_scope: int = 0
    untracked: int = 0
    edges: int = 0
    live_sockets: int = 0


@dataclass
class EdgeAggregator:
    resolver: Resolver
    enums: Enums
    scope: Scope
    _prev_retrans: dict[int, int] = field(default_factory=dict)
    _local_client: dict[bytes, bool] = field(default_factory=dict)
    last: TickStats = field(default_factory=TickStats)

    def __post_init__(self) -> None:
        e = self.enums
        self._out = next(k for k, v in e.direction.items() if v == "outbound")
        self._in = next(k for k, v in e.direction.items() if v == "inbound")
        self._syn = e.kind_code("syn_retransmit")
        self._est_flag = e.flag.get("established", 8)
        self._tracked_flag = e.flag.get("tracked", 1)
        self._outcome_codes = [e.outcome_code(name) for name in OUTCOMES]
        self._closed_code = e.outcome_code("established_closed")

    # -- keys ------------------------------------------------------------------------------------
    def _client_is_local(self, raw: bytes, family: int) -> bool:
        hit = self._local_client.get(raw)
        if hit is None:
            addr = addr_str(np.frombuffer(raw, dtype=np.uint8), family)
            pod = self.resolver.pod_at(addr)  # was: the inventory's dict rebuilt per miss
            hit = bool(pod and pod.netns_inode and self.scope.covers(pod.netns_inode)
                       and self.scope.netns is not None)
            if len(self._local_client) > 65536:
                self._local_client.clear()
            self._local_client[raw] = hit
        return hit

    def _keys(self, direction: np.ndarray, family: np.ndarray, netns: np.ndarray,
              comm: np.ndarray, saddr: np.ndarray, daddr: np.ndarray, sport: np.ndarray,
              dport: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keys, keep): the client-view key of every row, and which rows count."""
        out = direction == self._out
        inn = direction == self._in
        if inn.any():
            idx = np.flatnonzero(inn)
            local = np.array([self._client_is_local(bytes(daddr[i]), int(family[i]))
                              for i in idx], dtype=bool)
            inn[idx[local]] = False
        keep = out | inn
        k = np.zeros(len(direction), dtype=KEY_DTYPE)
        k["inbound"] = inn
        k["family"] = family
        k["netns"] = netns
        k["comm"] = np.where(out, comm, b"") if len(comm) else comm
        src = np.where(out[:, None], saddr, daddr)
        dst = np.where(out[:, None], daddr, saddr)
        k["src"] = np.ascontiguousarray(src).view("V16").reshape(-1)
        k["dst"] = np.ascontiguousarray(dst).view("V16").reshape(-1)
        k["dport"] = np.where(out, dport, sport)
        return k, keep

    def _edge(self, key: np.void) -> EdgeKey:
        fam = int(key["family"])
        src = addr_str(np.frombuffer(bytes(key["src"]), dtype=np.uint8), fam)
        dst = addr_str(np.frombuffer(bytes(key["dst"]), dtype=np.uint8), fam)
        port = int(key["dport"])
        comm = bytes(key["comm"]).split(b"\0", 1)[0].decode("utf-8", "replace")
        netns = int(key["netns"])
        if key["inbound"]:
            return EdgeKey(self.resolver.remote(src), self.resolver.local(netns, dst, comm), port)
        return EdgeKey(self.resolver.local(netns, src, comm), self.resolver.remote(dst, port),
                       port)

    # -- the tick --------------------------------------------------------------------------------
    def build(self, records: np.ndarray, sock_keys: np.ndarray, socks: np.ndarray,
              since_ns: int) -> list[EdgeSample]:
        stats = TickStats(records=len(records), live_sockets=len(socks))
        if self.scope.netns is not None:
            allowed = np.fromiter(self.scope.netns, dtype=np.uint32)
            r_in = np.isin(records["netns_ino"], allowed)
            s_in = np.isin(socks["netns_ino"], allowed)
            stats.out_of_scope = int((~r_in).sum())
            records, socks, sock_keys = records[r_in], socks[s_in], sock_keys[s_in]
        stats.untracked = int((records["direction"] == 0).sum())

        rk, r_keep = self._keys(records["direction"], records["family"], records["netns_ino"],
                                records["comm"], records["saddr"], records["daddr"],
                                records["sport"], records["dport"])
        sk, s_keep = self._keys(socks["direction"], socks["family"], socks["netns_ino"],
                                socks["comm"], socks["saddr"], socks["daddr"], socks["sport"],
                                socks["dport"])
        retrans_delta = self._retrans_deltas(sock_keys, socks, since_ns)
        records, rk = records[r_keep], rk[r_keep]
        socks, sk, retrans_delta = socks[s_keep], sk[s_keep], retrans_delta[s_keep]
        if not len(rk) and not len(sk):
            self.last = stats
            return []
        uniq, inv = np.unique(np.concatenate([rk, sk]), return_inverse=True)
        inv = inv.reshape(-1)
        ri, si = inv[: len(rk)], inv[len(rk):]
        g = len(uniq)
        stats.edges = g

        def count(mask: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return np.bincount(idx[mask], minlength=g)

        def total(values: np.ndarray, idx: np.ndarray, mask: np.ndarray | None = None
                  ) -> np.ndarray:
            if mask is not None:
                values, idx = values[mask], idx[mask]
            return np.bincount(idx, weights=values.astype(np.float64), minlength=g)

        is_syn = records["kind"] == self._syn
        closes = ~is_syn
        outcome_counts = {name: count(closes & (records["outcome"] == code), ri)
                          for name, code in zip(OUTCOMES, self._outcome_codes)}
        syn = count(is_syn, ri)
        started = closes & (records["start_ns"] > since_ns)
        established = (records["flags"] & self._est_flag) != 0
        est_at = records["start_ns"] + records["connect_latency_ns"]
        shook = closes & established & (est_at > since_ns)
        attempts = count(started, ri) + count(socks["start_ns"] > since_ns, si)
        handshakes = count(shook, ri) + count(socks["established_ns"] > since_ns, si)
        segs = total(records["segs_out"], ri, closes)
        # Loss is judged on data segments: unanswered SYNs are the timeout detector's signal
        # (counting them here would call every blackhole "packet loss" once it lifts).
        data_retr = np.maximum(records["retransmits"].astype(np.int64)
                               - records["syn_retransmits"].astype(np.int64), 0)
        retr = total(data_retr, ri, closes) + total(retrans_delta, si)
        sent = total(records["bytes_sent"], ri, closes)
        lat_mask = closes & (records["connect_latency_ns"] > 0)
        lat_sum = total(records["connect_latency_ns"], ri, lat_mask) / 1e9
        lat_n = count(lat_mask, ri)
        lat_max = np.zeros(g)
        np.maximum.at(lat_max, ri[lat_mask], records["connect_latency_ns"][lat_mask] / 1e9)
        rtt_mask = closes & (records["srtt_closed_us"] > 0)
        rtt_sum = total(records["srtt_closed_us"], ri, rtt_mask) / 1e6
        rtt_n = count(rtt_mask, ri)
        rtt_max = np.zeros(g)
        np.maximum.at(rtt_max, ri[rtt_mask], records["srtt_closed_us"][rtt_mask] / 1e6)
        open_now = count((socks["state"] == TCP_ESTABLISHED), si)
        no_reply = count(closes & (records["direction"] == self._out)
                         & (records["outcome"] == self._closed_code)
                         & (records["bytes_sent"] > 0) & (records["bytes_received"] == 0), ri)

        samples = []
        for i in range(g):
            outcomes = {name: int(c[i]) for name, c in outcome_counts.items() if c[i]}
            samples.append(EdgeSample(
                edge=self._edge(uniq[i]), outcomes=outcomes, syn_retransmits=int(syn[i]),
                attempts=int(attempts[i]), handshakes=int(handshakes[i]),
                segs_sent=int(segs[i]), segs_retrans=int(retr[i]), bytes_sent=int(sent[i]),
                connect_latency=LatencyStat(float(lat_sum[i]), int(lat_n[i]),
                                            float(lat_max[i])),
                srtt=LatencyStat(float(rtt_sum[i]), int(rtt_n[i]), float(rtt_max[i])),
                open_connections=int(open_now[i]), no_reply=int(no_reply[i])))
        self.last = stats
        return samples

    def _retrans_deltas(self, keys: np.ndarray, socks: np.ndarray, since_ns: int) -> np.ndarray:
        """Retransmits on still-open sockets since the last tick (their records come later)."""
        prev = self._prev_retrans
        cur: dict[int, int] = {}
        out = np.zeros(len(keys), dtype=np.int64)
        syn_sent = 2
        for i, (k, r, syn, state, start) in enumerate(zip(
                keys.tolist(), socks["retransmits"].tolist(),
                socks["syn_retransmits"].tolist(), socks["state"].tolist(),
                socks["start_ns"].tolist())):
            base = prev.get(k)
            if base is None:  # new this tick (its SYN retransmits are not data), or first sight
                base = syn if start > since_ns else r
            if state == syn_sent:
                base = r  # only SYNs so far
            out[i] = max(0, r - base)
            cur[k] = r
        self._prev_retrans = cur
        return out


RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
               5: "REFUSED"}
MAX_ERROR_NAMES = 5


def dns_samples(batch: np.ndarray, resolver: Resolver, scope: Scope, timeout_kind: int,
                decode_name: object) -> list[DnsSample]:
    """Per client (pod, or process on a plain host) for one tick of DNS records."""
    if not len(batch):
        return []
    if scope.netns is not None:
        batch = batch[np.isin(batch["netns_ino"],
                              np.fromiter(scope.netns, dtype=np.uint32))]
    if not len(batch):
        return []
    key = np.zeros(len(batch), dtype=[("netns", "<u4"), ("family", "u1"), ("addr", "V16"),
                                      ("comm", "S16")])
    key["netns"], key["family"], key["comm"] = (batch["netns_ino"], batch["family"],
                                                batch["comm"])
    key["addr"] = np.ascontiguousarray(batch["client_addr"]).view("V16").reshape(-1)
    uniq, inv = np.unique(key, return_inverse=True)
    inv = inv.reshape(-1)
    out = []
    for g, k in enumerate(uniq):
        rows = batch[inv == g]
        fam = int(k["family"])
        client = resolver.local(int(k["netns"]),
                                addr_str(np.frombuffer(bytes(k["addr"]), np.uint8), fam),
                                bytes(k["comm"]).split(b"\0", 1)[0].decode("utf-8", "replace"))
        timeouts = rows["kind"] == timeout_kind
        answers = rows[~timeouts]
        rcodes: dict[str, int] = {}
        for code, n in zip(*np.unique(answers["rcode"], return_counts=True)):
            name = RCODE_NAMES.get(int(code), f"RCODE{int(code)}")
            rcodes[name] = int(n)
        lat = answers["latency_ns"] / 1e9
        errs: dict[tuple[str, str], int] = {}
        for r in rows[(rows["kind"] == timeout_kind) | (rows["rcode"] != 0)][:64]:
            name = decode_name(bytes(r["qname"]), int(r["name_len"]))  # type: ignore[operator]
            rc = "TIMEOUT" if r["kind"] == timeout_kind else RCODE_NAMES.get(
                int(r["rcode"]), str(int(r["rcode"])))
            errs[(str(name), rc)] = errs.get((str(name), rc), 0) + 1
        worst = sorted(errs.items(), key=lambda kv: -kv[1])[:MAX_ERROR_NAMES]
        server = addr_str(rows["server_addr"][0], int(rows["family"][0]))
        out.append(DnsSample(
            client=client, queries=len(rows), rcodes=rcodes,
            latency=LatencyStat(float(lat.sum()), len(lat), float(lat.max()) if len(lat) else 0.0),
            timeouts=int(timeouts.sum()), server=server,
            error_names=tuple((n, rc, c) for (n, rc), c in worst)))
    return out


# Drop reasons that are a socket's own bookkeeping, not the network losing packets: data
# discarded when a socket is closed, packets for sockets already gone (the refused and reset
# detectors read those from the connection records). Counted, never judged.
BENIGN_DROP_REASONS = frozenset({"QUEUE_PURGE", "SOCKET_CLOSE", "TCP_CLOSE", "NOT_SPECIFIED",
                                 "NO_SOCKET", "SOCKET_FILTER", "TCP_OLD_DATA",
                                 "TCP_OLD_SEQUENCE", "TCP_INVALID_SEQUENCE", "TCP_RESET",
                                 "TCP_FLAGS", "TCP_OLD_ACK", "TCP_TOO_OLD_ACK"})
EPHEMERAL_MIN = 32768


@dataclass
class DropDiffer:
    """Turns the drop probe's cumulative in-kernel counters into per-tick DropSamples."""

    resolver: Resolver
    scope: Scope
    reason_name: object  # callable code -> name
    classify: object  # callable name -> class
    clock_ns: Callable[[], int] = time.monotonic_ns  # the kernel's bpf_ktime_get_ns clock
    _prev: dict[bytes, int] = field(default_factory=dict)
    _seen_ns: int = 0  # clock_ns() at the previous snapshot
    benign_total: int = 0

    # Keys are looked at only when they changed since the previous snapshot (their last_ns is
    # newer), so a tick costs the drops of the last tick, not the whole map, and a quiet node
    # costs nothing. The map is read without a lock, so a key updated on another CPU while it
    # was read may carry a last_ns a little older than the previous snapshot; the margin
    # catches it, and a key that slipped through anyway only has its delta reported later
    # (the counts are cumulative).
    MARGIN_NS = 2_000_000_000
    MAX_KEYS = 200_000  # the remembered counts, bounded like the kernel map behind them

    def samples(self, snap: np.ndarray) -> list[DropSample]:
        if self.scope.netns is not None and len(snap):
            snap = snap[np.isin(snap["netns_ino"], np.fromiter(self.scope.netns, np.uint32))]
        key_fields = [n for n in (snap.dtype.names or ()) if n not in
                      ("packets", "bytes", "first_ns", "last_ns")]
        if len(self._prev) > self.MAX_KEYS:  # rare: forget the keys the kernel map evicted
            live = {b"".join(np.asarray(r[f]).tobytes() for f in key_fields) for r in snap}
            self._prev = {k: n for k, n in self._prev.items() if k in live}
        now = self.clock_ns()
        if len(snap):
            snap = snap[snap["last_ns"].astype(np.int64) > self._seen_ns - self.MARGIN_NS]
        self._seen_ns = now
        grouped: dict[tuple[EdgeKey, str], int] = {}
        for r in snap:
            k = b"".join(np.asarray(r[f]).tobytes() for f in key_fields)
            packets = int(r["packets"])
            before = self._prev.get(k, 0)
            self._prev[k] = packets
            delta = packets - before if packets >= before else packets  # evicted and re-added
            if delta <= 0:
                continue
            reason = self.reason_name(int(r["reason"]))  # type: ignore[operator]
            if str(reason) in BENIGN_DROP_REASONS:
                self.benign_total += delta
                continue
            fam = int(r["family"]) or 4
            src, dst = addr_str(r["saddr"], fam), addr_str(r["daddr"], fam)
            sport, port = int(r["sport"]), int(r["dport"])
            # A reply (server port -> a client's ephemeral port) belongs to the client's edge:
            # naming the edge by the ephemeral port would make one edge per connection.
            if self.resolver.serves(src, sport) or (sport < EPHEMERAL_MIN <= port):
                src, dst, port = dst, src, sport
            src_id = (self.resolver.remote(src) if self.resolver.is_pod_ip(src)
                      else self.resolver.local(int(r["netns_ino"]), src, ""))
            edge = EdgeKey(src_id, self.resolver.remote(dst, port), port)
            grouped[(edge, str(reason))] = grouped.get((edge, str(reason)), 0) + delta
        return [DropSample(edge, reason, self.classify(reason), n)  # type: ignore[operator]
                for (edge, reason), n in grouped.items()]
