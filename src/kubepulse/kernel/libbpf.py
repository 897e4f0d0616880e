"""A thin ctypes layer over the system libbpf (``libbpf.so.1``).

It covers what kubepulse needs and nothing more: open an object, size its maps, set read-only
config, load, attach each program by its section name, detach, read maps (one key, or in
batches where the kernel supports it) and read BTF (struct layouts and enums of the object we
built). Every failure becomes a :class:`~kubepulse.errors.KernelError` (or
:class:`~kubepulse.errors.PrivilegeError`) whose message names the program, the attach point,
what the errno means, and what to do, with the tail of libbpf's own log (the verifier's
verdict) when there is one.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import errno as errno_mod
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from kubepulse.errors import KernelError, PrivilegeError

log = logging.getLogger("kubepulse.libbpf")

# BTF kinds (include/uapi/linux/btf.h)
BTF_KIND_INT = 1
BTF_KIND_PTR = 2
BTF_KIND_ARRAY = 3
BTF_KIND_STRUCT = 4
BTF_KIND_UNION = 5
BTF_KIND_ENUM = 6
BTF_KIND_TYPEDEF = 8
BTF_KIND_VOLATILE = 9
BTF_KIND_CONST = 10
BTF_KIND_RESTRICT = 11
BTF_KIND_DATASEC = 15
BTF_KIND_TYPE_TAG = 18
BTF_KIND_ENUM64 = 19


class _BtfType(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32),
                ("size_or_type", ctypes.c_uint32)]


class _BtfMember(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32),
                ("offset", ctypes.c_uint32)]


class _BtfEnum(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("val", ctypes.c_int32)]


class _BtfVarSecinfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("offset", ctypes.c_uint32),
                ("size", ctypes.c_uint32)]


_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_P = ctypes.c_void_p


def _sig(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> None:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


class _Lib:
    """The loaded libraries and their prototypes; one per process."""

    _instance: _Lib | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        name = os.environ.get("KUBEPULSE_LIBBPF", "libbpf.so.1")
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            raise KernelError(
                f"cannot load the system libbpf ({name}): {exc}. Install it: "
                "`apt-get install libbpf1` (Debian/Ubuntu) or `dnf install libbpf` (Fedora)."
            ) from exc
        self.lib = lib
        libc_name = ctypes.util.find_library("c") or "libc.so.6"
        self.libc = ctypes.CDLL(libc_name, use_errno=True)
        _sig(self.libc, "vsnprintf", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
             ctypes.c_char_p, _P)
        c_char_p, c_int, c_uint32, c_size_t = (ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32,
                                               ctypes.c_size_t)
        _sig(lib, "libbpf_major_version", c_uint32)
        _sig(lib, "libbpf_minor_version", c_uint32)
        _sig(lib, "libbpf_set_print", _P, _PRINT_FN)
        _sig(lib, "libbpf_num_possible_cpus", c_int)
        _sig(lib, "bpf_object__open_file", _P, c_char_p, _P)
        _sig(lib, "bpf_object__load", c_int, _P)
        _sig(lib, "bpf_object__close", None, _P)
        _sig(lib, "bpf_object__btf", _P, _P)
        _sig(lib, "bpf_object__next_map", _P, _P, _P)
        _sig(lib, "bpf_object__next_program", _P, _P, _P)
        _sig(lib, "bpf_map__name", c_char_p, _P)
        _sig(lib, "bpf_map__fd", c_int, _P)
        _sig(lib, "bpf_map__set_max_entries", c_int, _P, c_uint32)
        _sig(lib, "bpf_map__max_entries", c_uint32, _P)
        _sig(lib, "bpf_map__key_size", c_uint32, _P)
        _sig(lib, "bpf_map__value_size", c_uint32, _P)
        _sig(lib, "bpf_map__initial_value", _P, _P, ctypes.POINTER(c_size_t))
        _sig(lib, "bpf_program__name", c_char_p, _P)
        _sig(lib, "bpf_program__section_name", c_char_p, _P)
        _sig(lib, "bpf_program__attach", _P, _P)
        _sig(lib, "bpf_link__destroy", c_int, _P)
        _sig(lib, "bpf_map_lookup_elem", c_int, c_int, _P, _P)
        _sig(lib, "bpf_map_get_next_key", c_int, c_int, _P, _P)
        _sig(lib, "bpf_map_lookup_batch", c_int, c_int, _P, _P, _P, _P,
             ctypes.POINTER(c_uint32), _P)
        _sig(lib, "bpf_map_create", c_int, c_int, c_char_p, c_uint32, c_uint32, c_uint32, _P)
        _sig(lib, "btf__parse_elf", _P, c_char_p, _P)
        _sig(lib, "btf__free", None, _P)
        _sig(lib, "btf__find_by_name_kind", ctypes.c_int32, _P, c_char_p, c_uint32)
        _sig(lib, "btf__type_by_id", ctypes.POINTER(_BtfType), _P, c_uint32)
        _sig(lib, "btf__name_by_offset", c_char_p, _P, c_uint32)
        _sig(lib, "btf__resolve_size", ctypes.c_int64, _P, c_uint32)
        # Added for the dns and drops probes.
        _sig(lib, "btf__load_vmlinux_btf", _P)
        _sig(lib, "bpf_map_delete_elem", c_int, c_int, _P)
        _sig(lib, "bpf_program__attach_cgroup", _P, _P, c_int)
        # libbpf's log goes to Python logging; the tail is kept for error messages.
        self.log_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._print_cb = _PRINT_FN(self._on_print)
        lib.libbpf_set_print(self._print_cb)

    def _on_print(self, level: int, fmt: bytes | None, ap: int | None) -> int:
        buf = ctypes.create_string_buffer(2048)
        self.libc.vsnprintf(buf, len(buf), fmt, ap)
        text = buf.value.decode("utf-8", "replace").rstrip("\n")
        for line in text.splitlines():
            self.log_tail.append(line)
            # libbpf levels: 0 warn, 1 info, 2 debug. Its warnings are only interesting
            # when something fails, and then they are in the error message.
            log.debug("%s", line)
        return 0

    @classmethod
    def get(cls) -> _Lib:
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Lib()
            return cls._instance


def libbpf() -> _Lib:
    return _Lib.get()


def libbpf_version() -> tuple[int, int]:
    lib = libbpf().lib
    return int(lib.libbpf_major_version()), int(lib.libbpf_minor_version())


def possible_cpus() -> int:
    n = int(libbpf().lib.libbpf_num_possible_cpus())
    if n <= 0:
        raise KernelError(f"libbpf cannot count the possible CPUs: {_errstr(-n)}")
    return n


def _errstr(err: int) -> str:
    name = errno_mod.errorcode.get(err, f"errno {err}")
    return f"{os.strerror(err)} ({name})"


def _hint(err: int) -> str:
    if err in (errno_mod.EPERM, errno_mod.EACCES):
        return ("run as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN "
                "(CAP_SYS_ADMIN on kernels before 5.8)")
    if err == errno_mod.ENOENT:
        return "this kernel lacks that hook; run `kubepulse doctor` to see what is missing"
    if err == errno_mod.EINVAL:
        return "the kernel rejected the program; run `kubepulse doctor` and `-vv` for libbpf's log"
    if err == errno_mod.ENOMEM:
        return "lower the ring-buffer or map sizes in the config"
    if err == errno_mod.E2BIG:
        return "a map is larger than this kernel allows; lower its size in the config"
    return "run `kubepulse doctor`, and `-vv` for libbpf's own log"


def _fail(what: str, err: int, *, with_log: bool = True) -> KernelError | PrivilegeError:
    tail = ""
    if with_log:
        lines = [ln for ln in libbpf().log_tail if ln.strip()]
        if lines:
            tail = "\nlibbpf said:\n  " + "\n  ".join(lines[-12:])
    msg = f"{what}: {_errstr(err)}. Fix: {_hint(err)}.{tail}"
    if err in (errno_mod.EPERM, errno_mod.EACCES):
        return PrivilegeError(msg)
    return KernelError(msg)


def _errno() -> int:
    return ctypes.get_errno() or errno_mod.EINVAL


@dataclass(frozen=True)
class Field:
    name: str
    offset: int  # bytes
    size: int  # bytes


class Btf:
    """Read-only view of one BTF blob: struct layouts, enums, datasec variables."""

    def __init__(self, handle: int, *, owned: bool) -> None:
        self._h = handle
        self._owned = owned

    @classmethod
    def from_elf(cls, path: str | Path) -> Btf:
        """The BTF of a built ``.bpf.o``; needs no privilege (used by the layout test)."""
        lib = libbpf().lib
        ctypes.set_errno(0)
        h = lib.btf__parse_elf(str(path).encode(), None)
        if not h:
            raise _fail(f"cannot read BTF from {path}", _errno(), with_log=False)
        return cls(h, owned=True)

    @classmethod
    def from_vmlinux(cls) -> Btf:
        """The running kernel's own BTF (/sys/kernel/btf/vmlinux): its enums, e.g.
        ``enum skb_drop_reason``. Needs no privilege, only a kernel built with BTF."""
        lib = libbpf()
        lib.log_tail.clear()
        ctypes.set_errno(0)
        h = lib.lib.btf__load_vmlinux_btf()
        if not h:
            raise _fail("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux); this kernel "
                        "needs CONFIG_DEBUG_INFO_BTF=y", _errno())
        return cls(h, owned=True)

    def close(self) -> None:
        if self._owned and self._h:
            libbpf().lib.btf__free(self._h)
        self._h = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _find(self, name: str, kind: int) -> int:
        tid = int(libbpf().lib.btf__find_by_name_kind(self._h, name.encode(), kind))
        if tid < 0:
            raise KernelError(f"BTF has no {name!r} (kind {kind}); was the object built "
                              "from the same headers? Rebuild with `make -C bpf`.")
        return tid

    def _type(self, tid: int) -> tuple[_BtfType, int]:
        ptr = libbpf().lib.btf__type_by_id(self._h, tid)
        if not ptr:
            raise KernelError(f"BTF type id {tid} not found")
        return ptr.contents, ctypes.addressof(ptr.contents)

    def _name(self, off: int) -> str:
        raw = libbpf().lib.btf__name_by_offset(self._h, off)
        return raw.decode() if raw else ""

    def _size(self, tid: int) -> int:
        n = int(libbpf().lib.btf__resolve_size(self._h, tid))
        if n < 0:
            raise KernelError(f"BTF cannot size type id {tid}: {_errstr(-n)}")
        return n

    def struct_fields(self, name: str) -> tuple[int, list[Field]]:
        """(sizeof, fields) of ``struct name``, in declaration order."""
        tid = self._find(name, BTF_KIND_STRUCT)
        t, addr = self._type(tid)
        vlen = t.info & 0xFFFF
        kflag = t.info >> 31
        members = (_BtfMember * vlen).from_address(addr + ctypes.sizeof(_BtfType))
        out = []
        for m in members:
            bit_off = m.offset & 0xFFFFFF if kflag else m.offset
            out.append(Field(self._name(m.name_off), bit_off // 8, self._size(m.type)))
        return t.size_or_type, out

    def enum(self, name: str) -> dict[str, int]:
        """Members of ``enum name`` as {NAME: value}."""
        tid = self._find(name, BTF_KIND_ENUM)
        t, addr = self._type(tid)
        vlen = t.info & 0xFFFF
        entries = (_BtfEnum * vlen).from_address(addr + ctypes.sizeof(_BtfType))
        return {self._name(e.name_off): int(e.val) for e in entries}

    def datasec_var_offset(self, section: str, var: str) -> tuple[int, int]:
        """(offset, size) of global ``var`` inside data section ``section`` (e.g. .rodata)."""
        tid = self._find(section, BTF_KIND_DATASEC)
        t, addr = self._type(tid)
        vlen = t.info & 0xFFFF
        infos = (_BtfVarSecinfo * vlen).from_address(addr + ctypes.sizeof(_BtfType))
        for info in infos:
            vt, _ = self._type(info.type)
            if self._name(vt.name_off) == var:
                return int(info.offset), int(info.size)
        raise KernelError(f"BTF section {section} has no variable {var!r}")


@dataclass
class Program:
    name: str
    section: str
    handle: int

    @property
    def attach_point(self) -> str:
        """``sock:inet_sock_set_state`` for ``tracepoint/sock/inet_sock_set_state``."""
        kind, _, rest = self.section.partition("/")
        if kind in ("tracepoint", "tp"):
            return rest.replace("/", ":", 1)
        return self.section


class Map:
    def __init__(self, handle: int, name: str) -> None:
        self.handle = handle
        self.name = name

    @property
    def fd(self) -> int:
        return int(libbpf().lib.bpf_map__fd(self.handle))

    @property
    def key_size(self) -> int:
        return int(libbpf().lib.bpf_map__key_size(self.handle))

    @property
    def value_size(self) -> int:
        return int(libbpf().lib.bpf_map__value_size(self.handle))

    @property
    def max_entries(self) -> int:
        return int(libbpf().lib.bpf_map__max_entries(self.handle))

    def set_max_entries(self, n: int) -> None:
        rc = int(libbpf().lib.bpf_map__set_max_entries(self.handle, n))
        if rc < 0:
            raise _fail(f"cannot size map {self.name} to {n} entries", -rc)

    def lookup(self, key: bytes, value_size: int | None = None) -> bytes | None:
        """One value (for per-CPU maps pass value_size = roundup(size, 8) * possible CPUs)."""
        size = value_size if value_size is not None else self.value_size
        kbuf = ctypes.create_string_buffer(key, len(key))
        vbuf = ctypes.create_string_buffer(size)
        rc = int(libbpf().lib.bpf_map_lookup_elem(self.fd, kbuf, vbuf))
        if rc < 0:
            if -rc == errno_mod.ENOENT:
                return None
            raise _fail(f"lookup in map {self.name} failed", -rc, with_log=False)
        return vbuf.raw

    def delete(self, key: bytes) -> bool:
        """Delete one key; False if it was not there (someone else took it first)."""
        kbuf = ctypes.create_string_buffer(key, len(key))
        rc = int(libbpf().lib.bpf_map_delete_elem(self.fd, kbuf))
        if rc < 0:
            if -rc == errno_mod.ENOENT:
                return False
            raise _fail(f"delete in map {self.name} failed", -rc, with_log=False)
        return True

    def lookup_batch(self, chunk: int = 4096) -> tuple[bytes, bytes, int]:
        """All (keys, values, count) as packed bytes, through BPF_MAP_LOOKUP_BATCH.

        Falls back to key-by-key iteration where the kernel lacks batch ops for this map type.
        The map may change while it is read (it is live); each entry is read atomically.
        """
        lib = libbpf().lib
        ks, vs = self.key_size, self.value_size
        keys_out, vals_out = bytearray(), bytearray()
        kbuf = ctypes.create_string_buffer(ks * chunk)
        vbuf = ctypes.create_string_buffer(vs * chunk)
        in_batch = ctypes.create_string_buffer(max(ks, 8))
        out_batch = ctypes.create_string_buffer(max(ks, 8))
        first = True
        total = 0
        while True:
            count = ctypes.c_uint32(chunk)
            rc = int(lib.bpf_map_lookup_batch(self.fd, None if first else in_batch, out_batch,
                                              kbuf, vbuf, ctypes.byref(count), None))
            n = int(count.value)
            if rc < 0 and -rc not in (errno_mod.ENOENT,):
                if first and -rc in (errno_mod.EINVAL, errno_mod.ENOTSUP, 524):  # ENOTSUPP
                    return self._lookup_iter()
                raise _fail(f"batch lookup in map {self.name} failed", -rc, with_log=False)
            keys_out += kbuf.raw[: n * ks]
            vals_out += vbuf.raw[: n * vs]
            total += n
            if rc < 0:  # ENOENT: that was the last chunk
                break
            ctypes.memmove(in_batch, out_batch, len(out_batch))
            first = False
        return bytes(keys_out), bytes(vals_out), total

    def _lookup_iter(self) -> tuple[bytes, bytes, int]:
        lib = libbpf().lib
        ks, vs = self.key_size, self.value_size
        cur = ctypes.create_string_buffer(ks)
        nxt = ctypes.create_string_buffer(ks)
        val = ctypes.create_string_buffer(vs)
        keys_out, vals_out = bytearray(), bytearray()
        n = 0
        prev: Any = None
        while int(lib.bpf_map_get_next_key(self.fd, prev, nxt)) == 0:
            if int(lib.bpf_map_lookup_elem(self.fd, nxt, val)) == 0:
                keys_out += nxt.raw
                vals_out += val.raw
                n += 1
            ctypes.memmove(cur, nxt, ks)
            prev = cur
        return bytes(keys_out), bytes(vals_out), n


class BpfObject:
    """One opened BPF object file: maps, programs, and the links we attached.

    Use as a context manager; ``close()`` destroys every link, so nothing of ours stays in
    the kernel (links are not pinned, so even SIGKILL releases them with our file table).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        lib = libbpf()
        if not self.path.is_file():
            raise KernelError(f"BPF object {self.path} is missing. The package was built "
                              "without its BPF objects; reinstall with `pip install .` "
                              "(it runs clang), or run `make -C bpf`.")
        lib.log_tail.clear()
        ctypes.set_errno(0)
        self._obj = lib.lib.bpf_object__open_file(str(self.path).encode(), None)
        if not self._obj:
            raise _fail(f"cannot open BPF object {self.path}", _errno())
        self.links: dict[str, int] = {}
        self.attach_errors: dict[str, str] = {}
        self.loaded = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def maps(self) -> Iterator[Map]:
        lib = libbpf().lib
        m = lib.bpf_object__next_map(self._obj, None)
        while m:
            yield Map(m, lib.bpf_map__name(m).decode())
            m = lib.bpf_object__next_map(self._obj, m)

    def map(self, name: str) -> Map:
        for m in self.maps():
            if m.name == name:
                return m
        raise KernelError(f"BPF object {self.path.name} has no map {name!r}")

    def programs(self) -> Iterator[Program]:
        lib = libbpf().lib
        p = lib.bpf_object__next_program(self._obj, None)
        while p:
            yield Program(lib.bpf_program__name(p).decode(),
                          lib.bpf_program__section_name(p).decode(), p)
            p = lib.bpf_object__next_program(self._obj, p)

    def btf(self) -> Btf:
        h = libbpf().lib.bpf_object__btf(self._obj)
        if not h:
            raise KernelError(f"BPF object {self.path.name} carries no BTF; build it with -g")
        return Btf(h, owned=False)

    def set_rodata(self, var: str, data: bytes) -> None:
        """Write a ``const volatile`` global before load (read-only to the program after)."""
        if self.loaded:
            raise KernelError(f"cannot set {var}: {self.path.name} is already loaded")
        rodata = next((m for m in self.maps() if m.name.endswith(".rodata")), None)
        if rodata is None:
            raise KernelError(f"BPF object {self.path.name} has no .rodata section")
        offset, size = self.btf().datasec_var_offset(".rodata", var)
        if len(data) != size:
            raise KernelError(f"config {var} is {size} bytes in {self.path.name}, "
                              f"got {len(data)}: the Python mirror drifted from events.h")
        psize = ctypes.c_size_t(0)
        ptr = libbpf().lib.bpf_map__initial_value(rodata.handle, ctypes.byref(psize))
        if not ptr or offset + size > psize.value:
            raise KernelError(f"cannot reach .rodata of {self.path.name}")
        ctypes.memmove(ptr + offset, data, size)

    def load(self) -> None:
        lib = libbpf()
        lib.log_tail.clear()
        rc = int(lib.lib.bpf_object__load(self._obj))
        if rc < 0:
            raise _fail(f"the kernel refused to load {self.path.name}", -rc)
        self.loaded = True

    def attach(self, program: Program) -> None:
        lib = libbpf()
        lib.log_tail.clear()
        ctypes.set_errno(0)
        link = lib.lib.bpf_program__attach(program.handle)
        if not link:
            raise _fail(f"attaching {program.name} to {program.attach_point} failed", _errno())
        self.links[program.name] = link

    def attach_cgroup(self, program: Program, cgroup_dir: str | Path) -> None:
        """Attach a cgroup program (cgroup_skb, ...) to a cgroup v2 directory through a BPF
        link: it runs next to any other program there (links are multi-attach) and goes
        away with the link."""
        lib = libbpf()
        lib.log_tail.clear()
        try:
            fd = os.open(str(cgroup_dir), os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise KernelError(f"attaching {program.name}: cannot open the cgroup {cgroup_dir}:"
                              f" {exc.strerror}. Fix: mount cgroup v2 (see `kubepulse "
                              "doctor`).") from exc
        try:
            ctypes.set_errno(0)
            link = lib.lib.bpf_program__attach_cgroup(program.handle, fd)
            if not link:
                raise _fail(f"attaching {program.name} ({program.section}) to the cgroup "
                            f"{cgroup_dir} failed", _errno())
        finally:
            os.close(fd)  # the link holds its own reference to the cgroup
        self.links[program.name] = link

    def attach_all(self, *, required: set[str] | None = None) -> None:
        """Attach every program. A failure of a required one raises; others are recorded in
        ``attach_errors`` (exported as attach status, so "no alert" is never "blind")."""
        for p in self.programs():
            try:
                self.attach(p)
            except KernelError as exc:
                if required is None or p.name in required:
                    self.detach_all()
                    raise
                self.attach_errors[p.name] = str(exc)
                log.warning("%s", exc)

    def detach_all(self) -> None:
        lib = libbpf().lib
        for name, link in list(self.links.items()):
            rc = int(lib.bpf_link__destroy(link))
            if rc < 0:
                log.warning("detaching %s: %s", name, _errstr(-rc))
            del self.links[name]

    def close(self) -> None:
        self.detach_all()
        if self._obj:
            libbpf().lib.bpf_object__close(self._obj)
            self._obj = None


def cgroup2_mount(mounts: str = "/proc/mounts") -> Path:
    """Where cgroup v2 is mounted: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified
    on a hybrid one. Read from the mount table, never assumed."""
    try:
        with open(mounts) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "cgroup2":
                    return Path(parts[1].replace("\\040", " "))
    except OSError as exc:
        raise KernelError(f"cannot read {mounts}: {exc.strerror}") from exc
    raise KernelError("cgroup v2 is not mounted, so the cgroup programs (DNS, SYNs at a full "
                      "accept queue) have nowhere to attach. "
                      "Fix: `mount -t cgroup2 none /sys/fs/cgroup/unified` (or boot with "
                      "systemd.unified_cgroup_hierarchy=1).")


def probe_bpf_syscall() -> str | None:
    """None if this process may create a BPF map; else why not, as one sentence."""
    lib = libbpf().lib
    fd = int(lib.bpf_map_create(2, b"kp_probe", 4, 8, 1, None))  # BPF_MAP_TYPE_ARRAY
    if fd < 0:
        return _errstr(-fd)
    os.close(fd)
    return None
