"""What a backup of one namespace can hold, and what a restore may not do quietly. Pure functions.

A backup of namespace N holds N's namespaced objects and N's one Namespace object: nothing cluster-scoped,
nothing of another namespace. An archive is checked against this when it is read (with a static list of the
cluster-scoped kinds every cluster has) and again by a restore (with the server's discovery, which knows the
custom ones too).
"""

from __future__ import annotations

import re
from typing import Any

from resilience_tests.namespaces import is_namespace_name, is_object_name

# Well-known cluster-scoped kinds (group/Kind); a restore also asks the server's discovery.
CLUSTER_SCOPED = frozenset({
    "core/Node", "core/PersistentVolume", "core/ComponentStatus",
    "rbac.authorization.k8s.io/ClusterRole", "rbac.authorization.k8s.io/ClusterRoleBinding",
    "admissionregistration.k8s.io/MutatingWebhookConfiguration",
    "admissionregistration.k8s.io/ValidatingWebhookConfiguration",
    "admissionregistration.k8s.io/ValidatingAdmissionPolicy",
    "admissionregistration.k8s.io/ValidatingAdmissionPolicyBinding",
    "admissionregistration.k8s.io/MutatingAdmissionPolicy",
    "admissionregistration.k8s.io/MutatingAdmissionPolicyBinding",
    "apiextensions.k8s.io/CustomResourceDefinition", "apiregistration.k8s.io/APIService",
    "storage.k8s.io/StorageClass", "storage.k8s.io/CSIDriver", "storage.k8s.io/CSINode",
    "storage.k8s.io/VolumeAttachment", "storage.k8s.io/VolumeAttributesClass",
    "scheduling.k8s.io/PriorityClass", "node.k8s.io/RuntimeClass", "networking.k8s.io/IngressClass",
    "networking.k8s.io/IPAddress", "networking.k8s.io/ServiceCIDR",
    "certificates.k8s.io/CertificateSigningRequest", "certificates.k8s.io/ClusterTrustBundle",
    "flowcontrol.apiserver.k8s.io/FlowSchema", "flowcontrol.apiserver.k8s.io/PriorityLevelConfiguration",
    "resource.k8s.io/DeviceClass", "authentication.k8s.io/TokenReview",
    "authorization.k8s.io/SubjectAccessReview", "authorization.k8s.io/SelfSubjectAccessReview",
    "authorization.k8s.io/SelfSubjectRulesReview", "internal.apiserver.k8s.io/StorageVersion",
})
NAMESPACE = "core/Namespace"
POD_SECURITY = ("pod-security.kubernetes.io/enforce", "pod-security.kubernetes.io/audit",
                "pod-security.kubernetes.io/warn")
LEVELS = {"privileged": 0, "baseline": 1, "restricted": 2}
_API_VERSION = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?v[0-9]+[a-z0-9]{0,20}")
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")


def kind_key(obj: dict[str, Any]) -> str:
    """``apps/Deployment``, ``core/ConfigMap``."""
    api_version = str(obj.get("apiVersion") or "v1")
    group = api_version.rpartition("/")[0] or "core"
    return f"{group}/{obj.get('kind')}"


def ref(obj: dict[str, Any]) -> str:
    """``apps/Deployment web``: how messages and diffs name an object."""
    return f"{kind_key(obj)} {(obj.get('metadata') or {}).get('name')}"


def member_name(obj: dict[str, Any]) -> str:
    """Where an archive keeps an object: ``objects/<group>/<Kind>/<name>.json``."""
    return f"objects/{kind_key(obj)}/{obj['metadata']['name']}.json"


def shape(obj: Any) -> str:
    """Why ``obj`` is not an object an archive can hold ("" if it is): a mapping with a string apiVersion and
    kind, and a metadata mapping whose name is a valid object name."""
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    meta = obj.get("metadata")
    if not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str) or \
            not isinstance(meta, dict):
        return "not a Kubernetes object (apiVersion, kind and metadata are needed)"
    name = meta.get("name")
    if not isinstance(name, str) or not is_object_name(name):
        return f"name {str(name)[:80]!r} is not a valid object name"
    if not _API_VERSION.fullmatch(obj["apiVersion"]) or not _KIND.fullmatch(obj["kind"]):
        return f"apiVersion {obj['apiVersion'][:80]!r} / kind {obj['kind'][:80]!r} is not a kind"
    return ""


def problems(objects: list[Any], namespace: str, *, cluster_scoped: frozenset[str] = CLUSTER_SCOPED) -> list[str]:
    """Each object of ``objects`` a backup of ``namespace`` cannot hold, as ``"what: why"``.

    Refused: a malformed object or name; a cluster-scoped kind (``cluster_scoped``: group/Kind keys); an object
    whose ``metadata.namespace`` is another namespace; a second Namespace object, or one not named
    ``namespace``.
    """
    found: list[str] = []
    if not is_namespace_name(namespace):
        return [f"the manifest's namespace {namespace[:80]!r}: not a namespace name"]
    namespaces = 0
    for obj in objects:
        why = shape(obj)
        if why:
            found.append(f"{ref(obj) if isinstance(obj, dict) else 'a member'}: {why}")
            continue
        key, meta = kind_key(obj), obj["metadata"]
        if key == NAMESPACE:
            namespaces += 1
            if meta["name"] != namespace:
                found.append(f"{ref(obj)}: another namespace than the backup's ({namespace})")
            elif namespaces > 1:
                found.append(f"{ref(obj)}: a second Namespace object")
            continue
        if key in cluster_scoped:
            found.append(f"{ref(obj)}: cluster-scoped, not part of a namespace")
        elif meta.get("namespace") not in (None, "", namespace):
            found.append(f"{ref(obj)}: in namespace {str(meta['namespace'])[:80]!r}, not {namespace}")
    return found


def weakened(backed_up: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """The Pod Security labels a restore would weaken: ``"<label>: <live> -> <backup>"`` where the backup's level
    is weaker than the live namespace's (restricted > baseline > privileged), or absent, or not a level."""
    out: list[str] = []
    for label in POD_SECURITY:
        now = live.get(label)
        if now is None:
            continue
        then = backed_up.get(label)
        if LEVELS.get(str(then), -1) < LEVELS.get(str(now), 0):
            out.append(f"{label}: {now} -> {then if then is not None else '(none)'}")
    return out
