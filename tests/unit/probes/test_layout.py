"""The Python mirrors of the kernel records match the BTF of the built object, field by field,
and the outcome names match the kernel enum. Needs the built object, not privileges."""

from __future__ import annotations

import pytest

from kubepulse.kernel.libbpf import Btf
from kubepulse.kernel.objects import object_path
from kubepulse.model import KINDS, OUTCOMES
from kubepulse.probes.tcp_conn import EVENT_DTYPE, MIRRORS, Enums, check_layout


@pytest.fixture(scope="module")
def btf() -> Btf:
    path = object_path("tcp_conn")
    if not path.is_file():
        pytest.fail(f"{path} is not built; run `make -C bpf` or `pip install .`")
    return Btf.from_elf(path)


def test_mirrors_match_btf(btf: Btf) -> None:
    assert check_layout(btf) == []


def test_check_layout_catches_drift(btf: Btf) -> None:
    import numpy as np

    import kubepulse.probes.tcp_conn as tc

    names = list(EVENT_DTYPE.names or ())
    # Swap two fields of equal size: same total size, wrong offsets.
    i, j = names.index("tgid"), names.index("netns_ino")
    names[i], names[j] = names[j], names[i]
    drifted = np.dtype([(n, EVENT_DTYPE.fields[n][0]) for n in names])  # type: ignore[index]
    saved = dict(tc.MIRRORS)
    try:
        tc.MIRRORS["kp_conn_event"] = drifted
        problems = check_layout(btf)
    finally:
        tc.MIRRORS.clear()
        tc.MIRRORS.update(saved)
    assert problems and "kp_conn_event" in problems[0]


def test_every_mirror_is_checked(btf: Btf) -> None:
    for name in MIRRORS:
        size, fields = btf.struct_fields(name)
        assert size == MIRRORS[name].itemsize and fields


def test_outcome_and_kind_names_come_from_the_kernel_enum(btf: Btf) -> None:
    enums = Enums.from_btf(btf)
    assert {v for k, v in enums.outcome.items() if k} == set(OUTCOMES)
    assert set(enums.kind.values()) == set(KINDS)
    assert enums.counter[0] == "ringbuf_full"
