"""The inventory: which pods, services and nodes exist, and how to recognise them.

``kubepulse lab up`` writes one; a user can write one by hand for a machine without Kubernetes.
The agent reads it (``kubepulse run --inventory FILE``) to name every flow by pod, workload and
service. The shape is documented in docs/inventory.md; ``load()`` validates a file and raises a
:class:`ConfigError` naming the file, the key and what is wrong.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kubepulse.errors import ConfigError

SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


class Node(_Model):
    name: str = Field(min_length=1)
    netns: str | None = None  # path of the node's network namespace, e.g. /run/netns/kpl-node1
    netns_inode: int | None = None
    pod_cidr: str | None = None

    @field_validator("pod_cidr")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_network(value, strict=True))
        except ValueError:
            raise ValueError(f"{value!r} is not a network address") from None


class Pod(_Model):
    name: str = Field(min_length=1)
    namespace: str = Field(min_length=1)
    workload: str = ""
    node: str = ""
    ip: str
    netns: str | None = None  # path, e.g. /run/netns/kpl-shop-api-0
    netns_inode: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return _check_ip(value)


class ServicePort(_Model):
    name: str = ""
    port: int = Field(ge=1, le=65535)
    protocol: str = "TCP"

    @field_validator("protocol")
    @classmethod
    def _proto(cls, value: str) -> str:
        if value.upper() not in ("TCP", "UDP"):
            raise ValueError(f"{value!r} is not TCP or UDP")
        return value.upper()


class Service(_Model):
    name: str = Field(min_length=1)
    namespace: str = Field(min_length=1)
    endpoints: list[str] = Field(default_factory=list)  # pod IPs; the lab's services are headless
    ports: list[ServicePort] = Field(default_factory=list)

    @field_validator("endpoints")
    @classmethod
    def _ips(cls, value: list[str]) -> list[str]:
        return [_check_ip(v) for v in value]


class Host(_Model):
    link: str = ""  # the host's veth into the lab
    ip: str = ""


class Inventory(_Model):
    version: int = SCHEMA_VERSION
    cluster: str = "kubepulse-lab"
    cidr: str | None = None
    generated_at: str | None = None
    host: Host | None = None
    nodes: list[Node] = Field(default_factory=list)
    pods: list[Pod] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)

    def pod_by_ip(self) -> dict[str, Pod]:
        return {p.ip: p for p in self.pods}

    def service(self, namespace: str, name: str) -> Service | None:
        return next(
            (s for s in self.services if s.namespace == namespace and s.name == name), None
        )

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True) + "\n"


def _semantic_errors(inv: Inventory) -> list[str]:
    """Cross-record checks the field validators cannot make; each item is 'key: problem'."""
    errors: list[str] = []
    seen_ip: dict[str, int] = {}
    seen_name: dict[tuple[str, str], int] = {}
    node_names = {n.name for n in inv.nodes}
    if len(node_names) != len(inv.nodes):
        errors.append("nodes: two nodes share a name; give each node its own name")
    for i, pod in enumerate(inv.pods):
        if pod.ip in seen_ip:
            other = inv.pods[seen_ip[pod.ip]]
            errors.append(
                f"pods[{i}].ip: duplicate pod IP {pod.ip} (also pods[{seen_ip[pod.ip]}] "
                f"{other.namespace}/{other.name}); give each pod its own IP"
            )
        seen_ip.setdefault(pod.ip, i)
        key = (pod.namespace, pod.name)
        if key in seen_name:
            errors.append(
                f"pods[{i}].name: duplicate pod {pod.namespace}/{pod.name} "
                f"(also pods[{seen_name[key]}]); pod names must be unique per namespace"
            )
        seen_name.setdefault(key, i)
        if pod.node and node_names and pod.node not in node_names:
            errors.append(
                f"pods[{i}].node: {pod.node!r} is not one of the nodes "
                f"({', '.join(sorted(node_names))}); add it to 'nodes' or fix the name"
            )
    seen_svc: set[tuple[str, str]] = set()
    for i, svc in enumerate(inv.services):
        if (svc.namespace, svc.name) in seen_svc:
            errors.append(f"services[{i}].name: duplicate service {svc.namespace}/{svc.name}")
        seen_svc.add((svc.namespace, svc.name))
    return errors


def parse(data: Any, source: str = "<inventory>") -> Inventory:
    """Validate already-decoded JSON; errors name ``source``, the key and the problem."""
    try:
        inv = Inventory.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "".join(
            f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
            for i, p in enumerate(first["loc"])
        ) or "(top level)"
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ConfigError(
            f"inventory {source}: {loc}: {first['msg']}{more}; fix that key "
            "(the format is in docs/inventory.md)."
        ) from None
    if inv.version != SCHEMA_VERSION:
        raise ConfigError(
            f"inventory {source}: version: {inv.version} is not supported; "
            f"this kubepulse reads version {SCHEMA_VERSION}."
        )
    problems = _semantic_errors(inv)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ConfigError(f"inventory {source}: {problems[0]}{more}.")
    return inv


def load(path: str | Path) -> Inventory:
    """Read and validate an inventory file (JSON)."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"inventory {p} does not exist; run `kubepulse lab up` to create one "
            "or write one by hand (docs/inventory.md)."
        ) from None
    except OSError as exc:
        raise ConfigError(f"inventory {p} cannot be read ({exc.strerror}); check its permissions.")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"inventory {p}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg}); "
            "fix the syntax."
        ) from None
    return parse(data, str(p))
