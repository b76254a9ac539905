"""Namespace policy rules (RT9xx): a ResourceQuota, a LimitRange and a default-deny NetworkPolicy."""

from __future__ import annotations

from collections.abc import Iterator

from resilience_tests.audit.checks.fields import as_dict, as_list
from resilience_tests.audit.model import Inventory, Obj


def resource_quota(namespace: str, inventory: Inventory) -> Iterator[str]:
    """RT901 resource-quota (see :data:`resilience_tests.audit.rules.RULES`)."""
    if not inventory.in_namespace(namespace, "ResourceQuota"):
        yield (f"namespace {namespace} has no ResourceQuota: one runaway workload can take the cluster's "
               "capacity from every other; add a ResourceQuota")


def limit_range(namespace: str, inventory: Inventory) -> Iterator[str]:
    """RT902 limit-range (see :data:`resilience_tests.audit.rules.RULES`)."""
    if not inventory.in_namespace(namespace, "LimitRange"):
        yield (f"namespace {namespace} has no LimitRange: containers that forget requests and limits get none; "
               "add a LimitRange with default requests and limits")


def _is_default_deny(policy: Obj) -> bool:
    """An empty podSelector, Ingress among the policyTypes (the default) and no ingress rule."""
    spec = as_dict(policy.data.get("spec"))
    selector = as_dict(spec.get("podSelector"))
    if as_dict(selector.get("matchLabels")) or as_list(selector.get("matchExpressions")):
        return False
    types = spec.get("policyTypes")
    return "Ingress" in (as_list(types) if types is not None else ["Ingress"]) and not as_list(spec.get("ingress"))


def default_deny(namespace: str, inventory: Inventory) -> Iterator[str]:
    """RT903 default-deny (see :data:`resilience_tests.audit.rules.RULES`)."""
    if not any(_is_default_deny(p) for p in inventory.in_namespace(namespace, "NetworkPolicy")):
        yield (f"namespace {namespace} has no default-deny NetworkPolicy: every pod accepts traffic from anywhere; "
               "add one with podSelector {} and policyTypes [Ingress], then allow what each app needs")
