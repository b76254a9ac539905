"""Data hooks: what runs in the pods of a workload to export, import or probe its data.

A hook is either a command, run in each pod through the API (exec; no shell needed in the image)::

    export: [/demoapp, export, --data, /data]

or an HTTP call to each pod through the API server's pod proxy::

    export: {port: 8080, path: /records/export}
    import: {port: 8080, path: /records/import}           # POST by default, the pod's export as the body

Either way nothing but the API server is contacted, so hooks work on any cluster where the account may
``create pods/exec`` or ``get/create pods/proxy``. A command's standard output, or a call's response body, is
what the hook answered; a non-zero exit or an HTTP status of 400 or more fails it, naming the pod and what it
said. An HTTP path cannot leave the pod's proxy URL (see :func:`path_problem`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import Discriminator, Field, Tag, ValidationError, field_validator

from resilience_tests.cluster.kube import ExecError, Kube
from resilience_tests.errors import ResilienceError
from resilience_tests.namespaces import is_namespace_name, is_object_name
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
        problem = path_problem(value)
        if problem:
            raise ValueError(problem)
        return value


MAX_PATH = 2048
_BAD_ESCAPE = re.compile("%(?![0-9A-Fa-f]{2})")
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/%")


def path_problem(path: str) -> str:
    """Why ``path`` cannot be an HTTP hook's path, or "" when it can.

    The path is appended to the pod's proxy URL (``/api/v1/namespaces/NS/pods/POD:PORT/proxy``), and HTTP
    clients resolve ``..`` before sending, so a path must stay below that URL: rooted (``/``), normalised (no
    empty, ``.`` or ``..`` segment, also not percent-encoded, and no encoded ``/``), printable ASCII without a
    backslash or a fragment (``#``). A query (``?since=0``) is allowed: the pod proxy passes it to the pod.
    """
    route, _, query = path.partition("?")
    bad = sorted({c for c in route if c not in _ALLOWED} | {c for c in query if c not in _ALLOWED and c != "?"})
    if len(path) > MAX_PATH:
        return f"a path has at most {MAX_PATH} characters"
    if not route.startswith("/"):
        return "a path starts with /"
    if _BAD_ESCAPE.search(path) and not bad:
        return "a '%' not followed by two hex digits; write %25 for a percent sign"
    if bad:
        shown = "".join(bad)
        return (f"{shown!r} is not allowed in a path (no backslash, fragment (#), space or control character; "
                "percent-encode anything else as %XX)")
    for segment in [*route.split("/")[1:-1], route.rsplit("/", 1)[1] or "x"]:
        decoded = unquote(segment)
        if decoded in ("", ".", ".."):
            return f"{route!r} is not normalised (an empty, '.' or '..' segment); write the path it means"
        if "/" in decoded or "\\" in decoded:
            return f"{segment!r}: an encoded / or \\ is not allowed in a path segment"
    return ""


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
    """The hook :func:`to_json` wrote: a list is a command, a mapping an HTTP call.

    Raises:
        HookError: it is neither, or an HTTP call that is not valid (a path leaving the pod proxy...).
    """
    if isinstance(data, dict):
        try:
            return HttpHook.model_validate(data)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise HookError(f"a recorded HTTP hook is not valid: {problem}"[:400]) from None
    if data is None:
        return ()
    if not isinstance(data, (list, tuple)) or len(data) > 1000:
        raise HookError(f"a recorded hook is a {type(data).__name__}, not a command (a list) or an HTTP call")
    return tuple(str(a) for a in data)


def call(kube: Kube, pod: str, namespace: str, hook: Hook, *, stdin: str | None = None, timeout: float = 120,
         ) -> str:
    """Run ``hook`` in one pod, fed ``stdin`` (a command's standard input, a call's body); what it answered.

    Raises:
        HookError: it exited non-zero, answered an HTTP error, or could not be run (the pod and why named).
    """
    where = f"{namespace}/{pod}"
    if not (is_namespace_name(namespace) and is_object_name(pod)):  # both go into the request's URL
        raise HookError(f"{where!r}: not a namespace and pod name; hooks run in pods the API server listed")
    try:
        if isinstance(hook, HttpHook):
            if path_problem(hook.path):  # built without validation: never sent
                raise HookError(f"{hook.path!r} cannot be an HTTP hook's path: {path_problem(hook.path)}")
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
