"""Building API clients from a kubeconfig, with errors that say what to fix.

A kubeconfig's ``client-key-data`` (and certificate) reach the TLS layer only as file paths: the Python client
writes them to temporary files, by default in ``/tmp``, removed at a normal exit only. Here they go into a
private folder of this process instead (``<cache>/client-keys/<pid>-<start>``, 0700 in a 0700 folder), removed
at exit; a process that was killed leaves it behind, and ``resilience cleanup`` removes the folders of processes
that are gone (:func:`remove_dead_key_folders`). An in-memory key would need the TLS context of every
connection pool replaced (the client loads the key from its path for each new connection, also after an exec
plugin refreshes it); one folder keeps the client as it is and works for every form of kubeconfig.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import RESTResponse
from kubernetes.config.config_exception import ConfigException

from resilience_tests.errors import ResilienceError
from resilience_tests.procs import process_gone, process_started


class ClusterAccessError(ResilienceError):
    """The kubeconfig is missing or broken, or the API server cannot be reached."""


def api_message(body: str | None, reason: str | None) -> str:
    """The message of an API server's Status answer (its reason when the body holds none)."""
    try:
        return str(json.loads(body or "{}").get("message") or reason)
    except (ValueError, AttributeError):
        return str(reason)


class Forbidden(ApiException, ResilienceError):  # type: ignore[misc]
    """The cluster refused a request (HTTP 403): one line naming who may not do what, and where to grant it.

    Still an ``ApiException`` with ``status`` 403, so code that tolerates a refusal (a Service list it may
    not read) keeps working.
    """

    def __init__(self, reason: str, body: str | None, headers: Any = None) -> None:
        ApiException.__init__(self, status=403, reason=reason)
        self.body, self.headers = body, headers
        self.message = f"the cluster refused: {api_message(body, reason)}"
        self.hint = "grant it to the account you run as (deploy/rbac.yaml lists what experiments need)"

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}"


@dataclass(frozen=True)
class ClusterRef:
    """Where a cluster is: kubeconfig path and context (None: the current one)."""

    kubeconfig: str
    context: str | None = None


REQUEST_TIMEOUT = urllib3.Timeout(connect=10, read=60)
"""The deadline of every API request that sets none of its own."""


def api_client(ref: ClusterRef, *, request_timeout: urllib3.Timeout = REQUEST_TIMEOUT) -> client.ApiClient:
    """Return an ApiClient for ``ref``; raise ClusterAccessError with a hint if it cannot be built.

    Every request made through it that sets no ``_request_timeout`` of its own gets ``request_timeout``, and a
    request whose answer does not come in time is not sent again (a read is retried by the caller, if at all).
    """
    path = _files(ref.kubeconfig)
    try:
        keys = key_folder()
    except OSError as exc:
        raise ClusterAccessError(f"cannot make the private folder for the kubeconfig's client key: {exc}",
                                 hint="make ~/.cache/resilience-tests (or $RESILIENCE_CACHE) writable") from None
    try:
        configuration = client.Configuration()
        config.load_kube_config(config_file=path, context=ref.context, client_configuration=configuration,
                                temp_file_path=str(keys))
        api = client.ApiClient(configuration=configuration)
    except ConfigException as exc:
        raise ClusterAccessError(f"kubeconfig {path} cannot be used: {exc}",
                                 hint="check the file and --context") from None
    except Exception as exc:  # yaml errors and the like from a broken file
        raise ClusterAccessError(f"kubeconfig {path} cannot be read: {type(exc).__name__}: {exc}",
                                 hint="check the file is a valid kubeconfig") from None
    # Every request gets a deadline: a hung API server must not block an inject or a revert forever. The client
    # sends no timeout unless a call passes ``_request_timeout`` (watches pass their own), so it is added here.
    rest = api.rest_client
    send = rest.request
    default = (request_timeout.connect_timeout, request_timeout.read_timeout)

    def request(method: str, url: str, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        try:
            response = send(method, url, *args, _request_timeout=_request_timeout or default, **kwargs)
        except ApiException as exc:  # client versions that raise in the REST layer
            if exc.status == 403 and not isinstance(exc, Forbidden):
                raise Forbidden(exc.reason, exc.body, exc.headers) from None
            raise
        if isinstance(response, RESTResponse) and response.status == 403:  # versions that raise later
            data = response.read()
            raise Forbidden(response.reason, data.decode(errors="replace") if isinstance(data, bytes) else data,
                            response.headers)
        return response

    rest.request = request
    rest.pool_manager.connection_pool_kw["retries"] = urllib3.Retry(total=3, read=0, redirect=3,
                                                                     raise_on_status=False)
    return api


def current_context(kubeconfig: str) -> str:
    """The current context of a kubeconfig ('' if none); ClusterAccessError if it cannot be read."""
    path = _files(kubeconfig)
    try:
        _, active = config.list_kube_config_contexts(config_file=path)
    except Exception as exc:
        raise ClusterAccessError(f"kubeconfig {path} cannot be used: {str(exc).splitlines()[0]}",
                                 hint="check the file is a valid kubeconfig") from None
    return str(active["name"]) if active else ""


def _files(kubeconfig: str) -> str:
    """One kubeconfig, or several joined by ``:`` (merged as kubectl does); each must exist."""
    paths = [str(Path(p).expanduser()) for p in kubeconfig.split(os.pathsep) if p]
    missing = [p for p in paths if not Path(p).exists()]
    if missing or not paths:
        raise ClusterAccessError(f"kubeconfig {', '.join(missing) or repr(kubeconfig)} does not exist",
                                 hint="pass --kubeconfig PATH to a kubeconfig")
    for path in paths:
        if not Path(path).is_file():
            raise ClusterAccessError(f"kubeconfig {path} is not a regular file", hint="pass a kubeconfig file")
        if Path(path).stat().st_size > MAX_KUBECONFIG:
            raise ClusterAccessError(f"kubeconfig {path} is larger than {MAX_KUBECONFIG >> 20} MiB",
                                     hint="pass a kubeconfig file")
    return os.pathsep.join(paths)


MAX_KUBECONFIG = 16 << 20
"""A kubeconfig larger than this is refused before it is read (one with many embedded CAs is some 100 KB)."""


KEY_FOLDERS = "client-keys"
_lock = threading.Lock()
_mine: list[Path] = []


def _key_root() -> Path:
    from resilience_tests.cache import cache_root

    root = cache_root() / KEY_FOLDERS
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.chmod(0o700)
    return root


def key_folder() -> Path:
    """This process's private folder for the client's key and certificate files (made once, removed at exit)."""
    with _lock:
        pid = os.getpid()
        if _mine and _mine[0].is_dir() and _mine[0].name.startswith(f"{pid}-"):  # not a forked parent's
            return _mine[0]
        path = _key_root() / f"{pid}-{process_started(pid) or 0:.2f}"
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)
        if not _mine:
            atexit.register(_remove_mine)
        _mine[:] = [path]
        return path


def _remove_mine() -> None:
    for path in _mine:
        if path.name.startswith(f"{os.getpid()}-"):  # a forked child leaves its parent's folder alone
            shutil.rmtree(path, ignore_errors=True)


def dead_key_folders() -> list[tuple[Path, str]]:
    """Key folders of processes on this machine that are gone, and why each is judged gone."""
    root = _key_root()
    dead = []
    for path in sorted(root.iterdir()):
        pid, _, started = path.name.partition("-")
        try:
            why = process_gone(int(pid), float(started))
        except ValueError:
            continue  # not one of ours
        if why:
            dead.append((path, why))
    return dead


def remove_dead_key_folders(*, dry_run: bool = False) -> list[tuple[Path, str]]:
    """Remove the key folders of killed processes (what :func:`dead_key_folders` finds); what was removed."""
    found = dead_key_folders()
    if not dry_run:
        for path, _ in found:
            with contextlib.suppress(OSError):
                shutil.rmtree(path)
    return found
