"""Building API clients from a kubeconfig, with errors that say what to fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from resilience_tests.errors import ResilienceError


class ClusterAccessError(ResilienceError):
    """The kubeconfig is missing or broken, or the API server cannot be reached."""


@dataclass(frozen=True)
class ClusterRef:
    """Where a cluster is: kubeconfig path and context (None: the current one)."""

    kubeconfig: str
    context: str | None = None


def api_client(ref: ClusterRef) -> client.ApiClient:
    """Return an ApiClient for ``ref``; raise ClusterAccessError with a hint if it cannot be built."""
    path = Path(ref.kubeconfig).expanduser()
    if not path.is_file():
        raise ClusterAccessError(f"kubeconfig {path} does not exist", hint="pass --kubeconfig PATH to a kubeconfig")
    try:
        return config.new_client_from_config(config_file=str(path), context=ref.context)
    except ConfigException as exc:
        raise ClusterAccessError(f"kubeconfig {path} cannot be used: {exc}",
                                 hint="check the file and --context") from None
    except Exception as exc:  # yaml errors and the like from a broken file
        raise ClusterAccessError(f"kubeconfig {path} cannot be read: {type(exc).__name__}: {exc}",
                                 hint="check the file is a valid kubeconfig") from None


def current_context(kubeconfig: str) -> str:
    """The current context of a kubeconfig ('' if none); ClusterAccessError if it cannot be read."""
    path = Path(kubeconfig).expanduser()
    if not path.is_file():
        raise ClusterAccessError(f"kubeconfig {path} does not exist", hint="pass --kubeconfig PATH to a kubeconfig")
    try:
        _, active = config.list_kube_config_contexts(config_file=str(path))
    except Exception as exc:
        raise ClusterAccessError(f"kubeconfig {path} cannot be used: {str(exc).splitlines()[0]}",
                                 hint="check the file is a valid kubeconfig") from None
    return str(active["name"]) if active else ""
