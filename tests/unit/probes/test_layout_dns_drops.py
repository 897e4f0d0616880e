"""The dns and drops mirrors match the BTF of their built objects, field by field; their enums
come from that BTF; drop reason names come from the running kernel's BTF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kubepulse.kernel.libbpf import Btf, cgroup2_mount
from kubepulse.kernel.objects import object_path
from kubepulse.probes import dns, drops


def _btf(stem: str) -> Btf:
    path = object_path(stem)
    if not path.is_file():
        pytest.fail(f"{path} is not built; run `make -C bpf` or `pip install .`")
    return Btf.from_elf(path)


@pytest.mark.parametrize("stem,mirrors", [("dns", dns.MIRRORS), ("drops", drops.MIRRORS)])
def test_mirrors_match_btf(stem: str, mirrors: dict[str, np.dtype]) -> None:
    with _btf(stem) as btf:
        assert dns.check_mirrors(btf, mirrors) == []


def test_drift_is_caught() -> None:
    names = list(dns.EVENT_DTYPE.names or ())
    i, j = names.index("netns_ino"), names.index("tgid")
    names[i], names[j] = names[j], names[i]
    drifted = np.dtype([(n, dns.EVENT_DTYPE.fields[n][0]) for n in names])  # type: ignore[index]
    with _btf("dns") as btf:
        problems = dns.check_mirrors(btf, {"kp_dns_event": drifted})
    assert problems and "kp_dns_event" in problems[0]


def test_dns_enums_from_btf() -> None:
    with _btf("dns") as btf:
        enums = dns.DnsEnums.from_btf(btf)
    assert set(enums.kind.values()) == {"answer", "timeout"}
    assert enums.counter[0] == "ringbuf_full" and "malformed" in enums.counter.values()
    assert enums.flag == {"tcp": 1, "truncated": 2}


def test_drop_counters_from_btf() -> None:
    with _btf("drops") as btf:
        names = dns.enum_names(btf, "kp_drop_counter", "KP_DROP_COUNTER_")
    assert names == {0: "drops", 1: "new_keys", 2: "no_header", 3: "listen_full"}


def test_snapshot_dtype_is_key_then_value() -> None:
    assert drops.SNAPSHOT_DTYPE.names == (drops.KEY_DTYPE.names or ()) + (
        drops.VALUE_DTYPE.names or ())


def test_kernel_reason_names_from_vmlinux() -> None:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("this kernel has no BTF")
    names = drops.kernel_reason_names()
    assert "NETFILTER_DROP" in names.values() and "NOT_SPECIFIED" in names.values()
    assert all(not n.startswith("SKB_DROP_REASON_") for n in names.values())


@pytest.mark.parametrize("name,cls", [
    ("NETFILTER_DROP", "policy"), ("SKB_DROP_REASON_TC_INGRESS", "policy"),
    ("TC_EGRESS", "policy"), ("BPF_CGROUP_EGRESS", "policy"),
    ("TCP_LISTEN_OVERFLOW", "listen_overflow"), ("NO_SOCKET", "other"),
    ("SOCKET_BACKLOG", "other"), ("TC_CHAIN_NOTFOUND", "other"),
])
def test_classify(name: str, cls: str) -> None:
    assert drops.classify(name) == cls


def test_cgroup2_mount_from_mount_table(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"
                      "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nsdelegate 0 0\n")
    assert cgroup2_mount(str(mounts)) == Path("/sys/fs/cgroup/unified")
    mounts.write_text("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n")
    with pytest.raises(Exception, match="cgroup v2 is not mounted"):
        cgroup2_mount(str(mounts))
