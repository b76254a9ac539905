"""Storage on the local cluster: a default StorageClass whose volumes are folders on the real nodes.

The provisioner (``provisioner/``, a Go program on sig-storage-lib-external-provisioner, built into the cache
like the demo app) runs as a host process with its own identity, ``system:resilience-provisioner``, allowed
what a provisioner needs and nothing else. For a claim of the StorageClass ``node-local`` (binding waits for
the first pod, so the scheduler picks the node first) it makes ``real/volumes/<node>/<volume>`` in the
cluster's run directory and a ``local`` PersistentVolume pinned to that node. Data survives a pod restarting
on its node; deleting the claim (a StatefulSet's claims when its namespace goes) deletes the volume and its
folder (reclaim policy Delete). Pods on simulated nodes get a folder too, which nothing writes to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from resilience_tests import procs
from resilience_tests.errors import TestbedError
from resilience_tests.testbed.pki import Authority

STORAGE_CLASS = "node-local"
PROVISIONER = "resilience-tests.io/node-local"
PROCESS = "provisioner"
USER = "system:resilience-provisioner"


def manifests() -> list[dict[str, Any]]:
    """The provisioner's ClusterRole and binding, and the default StorageClass."""
    rules = [
        {"apiGroups": [""], "resources": ["persistentvolumes"],
         "verbs": ["get", "list", "watch", "create", "delete", "update", "patch"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch", "update"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
         "verbs": ["create", "update", "patch", "list", "watch"]},
    ]
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "resilience-tests:provisioner"}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "resilience-tests:provisioner"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "resilience-tests:provisioner"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": STORAGE_CLASS,
                      "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"},
    ]


def volumes_dir(real_dir: Path) -> Path:
    """Where the volumes' folders are: ``<volumes>/<node>/<volume>``."""
    return real_dir / "volumes"


def start(real_dir: Path, authority: Authority, server: str, binary: Path, kubectl: Any) -> procs.ProcessRecord:
    """Issue the provisioner's identity, apply its RBAC and the StorageClass (``kubectl`` runs kubectl as the
    cluster's admin), and start it."""
    folder = real_dir / PROCESS
    pair = authority.issue(folder, "client", common_name=USER)
    kubeconfig = authority.kubeconfig(folder / "kubeconfig", server, USER, pair)
    kubectl("apply", "--server-side", "-f", "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests()}))
    root = volumes_dir(real_dir)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = procs.start(PROCESS, [str(binary), f"--kubeconfig={kubeconfig}", f"--root={root}",
                                   f"--name={PROVISIONER}"], run_dir=real_dir, marker=str(root))
    if not procs.survived_start(record):
        raise TestbedError(f"the storage provisioner exited at start:\n{procs.log_tail(record.log)}")
    return record


def provisioner_binary() -> Path:
    """The provisioner's static binary (built on first use, reused while its source is unchanged)."""
    from resilience_tests.testbed.images import REPO, build_go_program

    return build_go_program(REPO / "provisioner", "provisioner")
