"""Where the load goes when an experiment names no URL: what reaches the Services that select the target.

Pure choice over Service and Ingress objects, so that it is tested without a cluster:
- an Ingress routing to such a Service, once a controller has given it an address: ``http(s)://<rule host>``
  (``https`` when the host is in its ``tls``), or ``http://<address>`` for a rule without a host, followed
  by the rule's path prefix; the entry users go through comes first;
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
from resilience_tests.labels import has_labels

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
    selector = svc.spec.selector or {}  # a Service with no selector selects no pod
    return bool(selector) and has_labels(labels, selector)


def _address(status: Any) -> str:
    """The first ip or hostname of a load-balancer status, bracketed if IPv6; "" if none yet."""
    for ing in (status.load_balancer.ingress or []) if status and status.load_balancer else []:
        address = ing.ip or ing.hostname
        if address:
            return f"[{address}]" if ":" in address else str(address)
    return ""


def ingress_url(ingresses: list[Any], service_names: set[str]) -> str:
    """The URL of the first Ingress (by name) with an address that routes to one of ``service_names``; or ""."""
    for ing in sorted(ingresses, key=lambda i: i.metadata.name):
        address = _address(ing.status)
        if not address:
            continue  # no controller serves it
        tls_hosts = {h for t in ing.spec.tls or [] for h in t.hosts or []}
        default = ing.spec.default_backend
        if default and default.service and default.service.name in service_names:
            return f"http://{address}"
        for rule in ing.spec.rules or []:
            for path in rule.http.paths if rule.http else []:
                if not (path.backend.service and path.backend.service.name in service_names):
                    continue
                # A plain prefix (not a controller's regex) becomes the base the load's own path goes under.
                prefix = (path.path or "").rstrip("/") if path.path_type in ("Prefix", "Exact") else ""
                if rule.host and "*" not in rule.host:
                    return f"{'https' if rule.host in tls_hosts else 'http'}://{rule.host}{prefix}"
                return f"http://{address}{prefix}"
    return ""


def service_url(services: list[Any], labels: dict[str, str], namespace: str, api_url: str,
                ingresses: list[Any] | None = None) -> str:
    """The base URL through which the target's pods are reachable from here.

    Args:
        services: V1Service objects of the target's namespace.
        labels: the target's pod labels (its selector's matchLabels).
        namespace: for the error message.
        api_url: the API server URL of the cluster (loopback means NodePorts answer on 127.0.0.1).
        ingresses: V1Ingress objects of the namespace (none if they may not be listed).
    """
    mine = sorted((s for s in services if _selects(s, labels) and _port(s) is not None),
                  key=lambda s: s.metadata.name)
    via_ingress = ingress_url(ingresses or [], {s.metadata.name for s in mine})
    if via_ingress:
        return via_ingress
    for svc in mine:
        address = _address(svc.status) if svc.spec.type == "LoadBalancer" else ""
        if address:
            return f"http://{address}:{_port(svc).port}"
    node_ports = [s for s in mine if s.spec.type in ("NodePort", "LoadBalancer") and _port(s).node_port]
    if node_ports and is_local_host(api_url):
        return f"http://127.0.0.1:{_port(node_ports[0]).node_port}"
    wanted = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if node_ports:
        svc = node_ports[0]
        raise TargetError(f"service {namespace}/{svc.metadata.name} is a NodePort ({_port(svc).node_port}) "
                          f"of a cluster that is not on this machine ({api_url})",
                          hint=f"{URL_HINT}, e.g. http://<node address>:{_port(svc).node_port} or the ingress URL")
    raise TargetError(f"no Ingress, LoadBalancer or NodePort Service in {namespace} reaches the target ({wanted})",
                      hint=URL_HINT)
