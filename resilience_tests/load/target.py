"""Where the load goes when an experiment names no URL: the Service that selects the target.

Pure choice over Service objects, so that it is tested without a cluster:
- a LoadBalancer Service with an address in its status: ``http://<address>:<port>``;
- a NodePort (or LoadBalancer without an address yet) on a cluster whose API server is on this
  machine (the local cluster, kind): ``http://127.0.0.1:<nodePort>``;
- anything else: a one-line error asking for ``load.url``. A remote cluster's NodePort is never
  guessed at: which node address is reachable from here is not something the API can tell.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from resilience_tests.errors import ResilienceError

URL_HINT = "set load.url (or target.url) to the address the load should hit"


class TargetError(ResilienceError):
    """No load target can be derived from the cluster."""


def is_local_host(api_url: str) -> bool:
    """True if the API server URL points at this machine (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(api_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port(svc: Any) -> Any:
    ports = svc.spec.ports or []
    return next((p for p in ports if p.name == "http"), ports[0] if ports else None)


def _selects(svc: Any, labels: dict[str, str]) -> bool:
    selector = svc.spec.selector or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def service_url(services: list[Any], labels: dict[str, str], namespace: str, api_url: str) -> str:
    """The base URL of the first Service selecting pods with ``labels`` that is reachable from here.

    Args:
        services: V1Service objects of the target's namespace.
        labels: the target's pod labels (its selector's matchLabels).
        namespace: for the error message.
        api_url: the API server URL of the cluster (loopback means NodePorts answer on 127.0.0.1).
    """
    mine = sorted((s for s in services if _selects(s, labels) and _port(s) is not None),
                  key=lambda s: s.metadata.name)
    for svc in mine:
        if svc.spec.type != "LoadBalancer":
            continue
        for ing in (svc.status.load_balancer.ingress or []) if svc.status and svc.status.load_balancer else []:
            address = ing.ip or ing.hostname
            if address:
                host = f"[{address}]" if ":" in address else address
                return f"http://{host}:{_port(svc).port}"
    node_ports = [s for s in mine if s.spec.type in ("NodePort", "LoadBalancer") and _port(s).node_port]
    if node_ports and is_local_host(api_url):
        return f"http://127.0.0.1:{_port(node_ports[0]).node_port}"
    wanted = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if node_ports:
        svc = node_ports[0]
        raise TargetError(f"service {namespace}/{svc.metadata.name} is a NodePort ({_port(svc).node_port}) "
                          f"of a cluster that is not on this machine ({api_url})",
                          hint=f"{URL_HINT}, e.g. http://<node address>:{_port(svc).node_port} or the ingress URL")
    raise TargetError(f"no NodePort or LoadBalancer Service in {namespace} selects the target ({wanted})",
                      hint=URL_HINT)
