"""Security rules (RT8xx): privileges, root, capabilities, host namespaces, tokens and pinned images."""

from __future__ import annotations

from collections.abc import Iterator

from resilience_tests.audit.checks.fields import as_dict, as_list, dicts, name_of
from resilience_tests.audit.checks.workload import Workload


def privileged(w: Workload) -> Iterator[str]:
    """RT801 privileged (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.all_containers:
        if as_dict(c.get("securityContext")).get("privileged") is True:
            yield (f"container {name_of(c)} is privileged: it has every capability and the node's devices, a "
                   "compromise owns the node; remove privileged: true and add only the capabilities it needs")


def allow_privilege_escalation(w: Workload) -> Iterator[str]:
    """RT802 allow-privilege-escalation (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.all_containers:
        if as_dict(c.get("securityContext")).get("allowPrivilegeEscalation") is not False:
            yield (f"container {name_of(c)} does not set allowPrivilegeEscalation: false: a setuid binary can gain "
                   "root; set securityContext.allowPrivilegeEscalation: false")


def run_as_non_root(w: Workload) -> Iterator[str]:
    """RT803 run-as-non-root (see :data:`resilience_tests.audit.rules.RULES`)."""
    pod_level = as_dict(w.pod.get("securityContext")).get("runAsNonRoot")
    for c in w.all_containers:
        own = as_dict(c.get("securityContext")).get("runAsNonRoot")
        if (pod_level if own is None else own) is not True:
            yield (f"container {name_of(c)} may run as root (runAsNonRoot is not true in its or the pod's "
                   "securityContext): set runAsNonRoot: true with a non-zero runAsUser")


def read_only_root_fs(w: Workload) -> Iterator[str]:
    """RT804 read-only-root-fs (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.all_containers:
        if as_dict(c.get("securityContext")).get("readOnlyRootFilesystem") is not True:
            yield (f"container {name_of(c)} has a writable root filesystem: an intruder can change its binaries; "
                   "set readOnlyRootFilesystem: true and mount an emptyDir where it writes")


def capabilities(w: Workload) -> Iterator[str]:
    """RT805 capabilities (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.all_containers:
        dropped = as_list(as_dict(as_dict(c.get("securityContext")).get("capabilities")).get("drop"))
        if "ALL" not in {str(d).upper() for d in dropped}:
            yield (f"container {name_of(c)} does not drop ALL capabilities: it keeps the runtime's defaults "
                   "(NET_RAW...); set capabilities.drop: [ALL] and add back only what it needs")


def host_namespaces(w: Workload) -> Iterator[str]:
    """RT806 host-namespaces (see :data:`resilience_tests.audit.rules.RULES`)."""
    for field, shared in (("hostNetwork", "network"), ("hostPID", "processes"), ("hostIPC", "IPC")):
        if w.pod.get(field) is True:
            yield (f"{w.pod_path}.{field}: true shares the node's {shared} with the pod: a compromise reaches "
                   f"the node; remove {field}")
    for volume in dicts(w.pod.get("volumes")):
        if "hostPath" in volume:
            path = as_dict(volume.get("hostPath")).get("path", "?")
            yield (f"volume {volume.get('name', '?')} is a hostPath ({path}): the pod reads or writes the node's "
                   "files and is tied to that node's data; use an emptyDir, a ConfigMap or a PersistentVolume")


def automount_token(w: Workload) -> Iterator[str]:
    """RT807 automount-token (see :data:`resilience_tests.audit.rules.RULES`)."""
    if w.pod.get("automountServiceAccountToken") is not False:
        yield (f"{w.pod_path}.automountServiceAccountToken is not false: every pod carries an API token an "
               "intruder can use; set it to false (true only if the app calls the API)")


def _image_problem(image: str) -> str:
    """Why an image reference is not pinned ("" when it is: a version tag or a digest)."""
    if "@" in image:
        return ""
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag (so latest)"
    return "uses the tag latest" if last.split(":", 1)[1] == "latest" else ""


def image_pinned(w: Workload) -> Iterator[str]:
    """RT808 image-pinned (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.all_containers:
        image = str(c.get("image") or "")
        problem = _image_problem(image) if image else ""
        if problem:
            yield (f"container {name_of(c)} image {image} {problem}: pods of one rollout may run different code "
                   "and a rollback restores nothing; pin a version tag or a digest (@sha256:...)")
