"""Data hooks: what runs in the pods of a workload to export, import or probe its data.

A hook is either a command, run in each pod through the API (exec; no shell needed in the image)::

    export: [/demoapp, export, --data, /data]

or an HTTP call to each pod through the API server's pod proxy::

    export: {port: 8080, path: /records/export}
    import: {port: 8080, path: /records/import}           # POST by default, the pod's export as the body

Either way nothing but the API server is contacted, so hooks work on any cluster where the account may
``create pods/exec`` or ``get/create pods/proxy``. A command's standard output, or a call's response body, is
what the hook answered; a non-zero exit or an HTTP status of 400 or more fails it, naming the pod and what it
said.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from resilience_tests.cluster.kube import ExecError, Kube
from resilience_tests.errors import ResilienceError
from resilience_tests.schema import Model


class HookError(ResilienceError):
    """A hook failed in a pod, or could not be run there."""


class HttpHook(Model):
    """An HTTP call to each pod, through the API server's pod proxy."""

    port: int = Field(ge=1, le=65535)
    path: str = "/"
    method: Literal["GET", "POST", "PUT"] | None = None  # default: POST when the hook is fed data, else GET

    @field_validator("path")
    @classmethod
    def _rooted(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a path starts with /")
        return value


def _kind(value: Any) -> str:
    return "http" if isinstance(value, dict | HttpHook) else "command"


# A mapping is an HTTP call, anything else a command: a mistake is explained for the form it was meant as.
Hook = Annotated[Annotated[tuple[str, ...], Tag("command")] | Annotated[HttpHook, Tag("http")],
                 Discriminator(_kind)]


def shown(hook: Hook) -> str:
    """The hook as a reader would write it: `command args` or `GET :8080/path`."""
    if isinstance(hook, HttpHook):
        return f"`{hook.method or 'GET/POST'} :{hook.port}{hook.path}` (through the API server)"
    return f"`{' '.join(hook)}`"


def to_json(hook: Hook) -> Any:
    """What a record of the hook holds (see :func:`from_json`)."""
    return hook.model_dump(exclude_none=True) if isinstance(hook, HttpHook) else list(hook)


def from_json(data: Any) -> Hook:
    """The hook :func:`to_json` wrote: a list is a command, a mapping an HTTP call."""
    return HttpHook.model_validate(data) if isinstance(data, dict) else tuple(str(a) for a in data or ())


def call(kube: Kube, pod: str, namespace: str, hook: Hook, *, stdin: str | None = None, timeout: float = 120,
         ) -> str:
    """Run ``hook`` in one pod, fed ``stdin`` (a command's standard input, a call's body); what it answered.

    Raises:
        HookError: it exited non-zero, answered an HTTP error, or could not be run (the pod and why named).
    """
    where = f"{namespace}/{pod}"
    try:
        if isinstance(hook, HttpHook):
            method = hook.method or ("POST" if stdin is not None else "GET")
            status, body = kube.proxy(pod, namespace, hook.port, hook.path, method=method, body=stdin,
                                      timeout=timeout)
            if status >= 400 or status == 0:
                raise HookError(f"{method} :{hook.port}{hook.path} of {where} answered HTTP {status}: "
                                f"{body.strip()[-300:]}")
            return body
        code, stdout, stderr = kube.exec(pod, namespace, list(hook), stdin=stdin, timeout=timeout)
    except ExecError as exc:
        raise HookError(str(exc)) from None
    if code != 0:
        raise HookError(f"`{' '.join(hook)}` in {where} exited {code}: "
                        f"{stderr.strip()[-300:] or stdout.strip()[-300:]}")
    return stdout


def run_each(kube: Kube, namespace: str, pods: list[str], hook: Hook, *,
             stdin: dict[str, str] | None = None) -> dict[str, str]:
    """Run ``hook`` in each of ``pods``; pod -> what it answered. With ``stdin``, only the pods it has data for
    (a pod that had none when the backup was taken is skipped), each fed its own."""
    return {pod: call(kube, pod, namespace, hook, stdin=None if stdin is None else stdin[pod])
            for pod in pods if stdin is None or pod in stdin}
