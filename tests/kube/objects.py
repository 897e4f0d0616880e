"""API objects shaped as a real API server returns them (fields from `kubectl get -o json` of
a kubeadm 1.30 cluster with containerd; trimmed of managedFields). Only the values vary."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

TS = "2026-11-25T20:49:21Z"


def cid(seed: str) -> str:
    """A 64-hex container id, stable per seed."""
    return hashlib.sha256(seed.encode()).hexdigest()


def uid(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def owner(kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid(f"{kind}/{name}"),
            "controller": True, "blockOwnerDeletion": True}


def pod(namespace: str, name: str, ip: str, node: str, *, labels: dict[str, str] | None = None,
        owners: list[dict[str, Any]] | None = None, containers: tuple[str, ...] = ("app",),
        host_network: bool = False, phase: str = "Running", created: str = TS,
        uid_seed: str = "", port: int = 8080) -> dict[str, Any]:
    the_uid = uid(uid_seed or f"pod/{namespace}/{name}/{ip}")
    labels = dict(labels or {"app": name.rsplit("-", 1)[0]})
    statuses = [{
        "name": c,
        "state": {"running": {"startedAt": created}},
        "lastState": {},
        "ready": True,
        "restartCount": 0,
        "image": "docker.io/library/nginx:1.27",
        "imageID": "docker.io/library/nginx@sha256:" + cid("img" + c),
        "containerID": "containerd://" + cid(f"{the_uid}/{c}"),
        "started": True,
    } for c in containers]
    obj: dict[str, Any] = {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": name, "namespace": namespace, "uid": the_uid, "resourceVersion": "1",
            "creationTimestamp": created, "labels": labels,
            "annotations": {"kubectl.kubernetes.io/restartedAt": created},
            "ownerReferences": owners or [],
        },
        "spec": {
            "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}],
                "defaultMode": 420}}],
            "containers": [{
                "name": c, "image": "docker.io/library/nginx:1.27",
                "ports": [{"containerPort": port, "protocol": "TCP"}],
                "resources": {},
                "volumeMounts": [{"name": "kube-api-access-x7k2p", "readOnly": True,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
            } for c in containers],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
            "serviceAccount": "default", "nodeName": node, "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None,
                            "lastTransitionTime": created}],
            "hostIP": "192.168.50.11", "hostIPs": [{"ip": "192.168.50.11"}],
            "podIP": ip, "podIPs": [{"ip": ip}] if ip else [],
            "startTime": created, "containerStatuses": statuses, "qosClass": "BestEffort",
        },
    }
    if not ip:
        del obj["status"]["podIP"]
    if host_network:
        obj["spec"]["hostNetwork"] = True
    return obj


def replicaset(namespace: str, name: str, deployment: str | None) -> dict[str, Any]:
    return {
        "kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {
            "name": name, "namespace": namespace, "uid": uid(f"ReplicaSet/{name}"),
            "resourceVersion": "1", "generation": 1, "creationTimestamp": TS,
            "labels": {"app": deployment or name, "pod-template-hash": name.rsplit("-", 1)[-1]},
            "annotations": {"deployment.kubernetes.io/desired-replicas": "2",
                            "deployment.kubernetes.io/max-replicas": "3",
                            "deployment.kubernetes.io/revision": "1"},
            "ownerReferences": [owner("Deployment", deployment)] if deployment else [],
        },
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": deployment or name}},
                 "template": {"metadata": {"labels": {"app": deployment or name}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}},
        "status": {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                   "availableReplicas": 2, "observedGeneration": 1},
    }


def service(namespace: str, name: str, ports: list[tuple[str, int, int]],
            cluster_ip: str | None = None) -> dict[str, Any]:
    """``ports``: (name, port, targetPort). ``cluster_ip`` None: headless."""
    ip = cluster_ip or "None"
    return {
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uid(f"Service/{name}"),
                     "resourceVersion": "1", "creationTimestamp": TS, "labels": {"app": name}},
        "spec": {
            "ports": [{"name": n, "protocol": "TCP", "port": p, "targetPort": t}
                      for n, p, t in ports],
            "selector": {"app": name}, "clusterIP": ip, "clusterIPs": [ip],
            "type": "ClusterIP", "sessionAffinity": "None", "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    }


def endpointslice(namespace: str, service_name: str, ports: list[tuple[str, int]],
                  backends: list[tuple[str, str, str]], suffix: str = "x8k2p") -> dict[str, Any]:
    """``backends``: (ip, pod name, node)."""
    name = f"{service_name}-{suffix}"
    return {
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": name, "generateName": f"{service_name}-", "namespace": namespace,
            "uid": uid(f"EndpointSlice/{namespace}/{name}"), "resourceVersion": "1",
            "generation": 1, "creationTimestamp": TS,
            "labels": {"endpointslice.kubernetes.io/managed-by":
                       "endpointslice-controller.k8s.io",
                       "kubernetes.io/service-name": service_name},
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": TS},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": service_name,
                                 "uid": uid(f"Service/{service_name}"), "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [ip],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod_name,
                          "uid": uid(f"pod/{namespace}/{pod_name}/{ip}")},
            "nodeName": node,
        } for ip, pod_name, node in backends],
        "ports": [{"name": n, "protocol": "TCP", "port": p} for n, p in ports],
    }


def node(name: str, internal_ip: str, pod_cidr: str) -> dict[str, Any]:
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {
            "name": name, "uid": uid(f"Node/{name}"), "resourceVersion": "1",
            "creationTimestamp": TS,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": internal_ip},
                          {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": TS, "lastTransitionTime": TS}],
            "nodeInfo": {"kernelVersion": "6.1.0-27-amd64", "kubeletVersion": "v1.30.6",
                         "containerRuntimeVersion": "containerd://1.7.22",
                         "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "operatingSystem": "linux", "architecture": "amd64"},
        },
    }
