"""Which URL the load goes to when the experiment names none."""

from __future__ import annotations

import pytest
from kubernetes import client

from resilience_tests.load.target import TargetError, is_local_host, service_url

WEB = {"app": "web"}
LOCAL = "https://127.0.0.1:6443"
REMOTE = "https://staging.example.internal:6443"


def svc(name: str, kind: str, *, selector: dict[str, str] | None = None, node_port: int | None = 30080,
        lb: list[client.V1LoadBalancerIngress] | None = None, port_name: str = "http") -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(type=kind, selector=WEB if selector is None else selector, ports=[
            client.V1ServicePort(name="metrics", port=9090, node_port=31090 if node_port else None),
            client.V1ServicePort(name=port_name, port=80, node_port=node_port)]),
        status=client.V1ServiceStatus(load_balancer=client.V1LoadBalancerStatus(ingress=lb)))


@pytest.mark.parametrize(("url", "local"), [
    ("https://127.0.0.1:6443", True), ("https://127.0.0.9:1", True), ("https://localhost:6443", True),
    ("https://[::1]:6443", True), ("https://10.0.0.1:6443", False), (REMOTE, False)])
def test_loopback_api_servers_are_local(url: str, local: bool) -> None:
    assert is_local_host(url) is local


def test_a_node_port_on_the_local_cluster_is_reached_on_loopback_on_its_http_port() -> None:
    assert service_url([svc("web", "NodePort")], WEB, "demo", LOCAL) == "http://127.0.0.1:30080"


def test_a_load_balancer_address_wins_over_node_ports() -> None:
    services = [svc("a-np", "NodePort", node_port=30001),
                svc("web-lb", "LoadBalancer", lb=[client.V1LoadBalancerIngress(hostname="web.staging.internal")])]
    assert service_url(services, WEB, "demo", REMOTE) == "http://web.staging.internal:80"
    v6 = [svc("lb", "LoadBalancer", lb=[client.V1LoadBalancerIngress(ip="fd00::5")])]
    assert service_url(v6, WEB, "demo", REMOTE) == "http://[fd00::5]:80"


def test_services_selecting_other_pods_or_nothing_are_ignored() -> None:
    services = [svc("other", "NodePort", selector={"app": "db"}), svc("headless", "NodePort", selector={}),
                svc("internal", "ClusterIP", node_port=None)]
    with pytest.raises(TargetError, match=r"no Ingress, LoadBalancer or NodePort Service in demo reaches the "
                                          r"target \(app=web\); set load.url"):
        service_url(services, WEB, "demo", LOCAL)


def test_a_remote_node_port_is_not_guessed_and_the_error_says_what_to_set() -> None:
    with pytest.raises(TargetError) as err:
        service_url([svc("web", "NodePort")], WEB, "demo", REMOTE)
    assert str(err.value) == (
        "service demo/web is a NodePort (30080) of a cluster that is not on this machine "
        f"({REMOTE}); set load.url (or target.url) to the address the load should hit, "
        "e.g. http://<node address>:30080 or the ingress URL")


def test_a_load_balancer_without_an_address_yet_falls_back_to_its_node_port_locally() -> None:
    assert service_url([svc("web", "LoadBalancer")], WEB, "demo", LOCAL) == "http://127.0.0.1:30080"


def ingress(name: str, *, service: str = "web", host: str | None = "web.staging.internal", address: str = "10.9.8.7",
            tls: bool = False, default: bool = False, path: str = "/", path_type: str = "Prefix") -> client.V1Ingress:
    backend = client.V1IngressBackend(service=client.V1IngressServiceBackend(
        name=service, port=client.V1ServiceBackendPort(number=80)))
    other = client.V1IngressBackend(service=client.V1IngressServiceBackend(
        name="docs", port=client.V1ServiceBackendPort(number=80)))
    rules = [] if default else [client.V1IngressRule(host=host, http=client.V1HTTPIngressRuleValue(paths=[
        client.V1HTTPIngressPath(path="/docs", path_type="Prefix", backend=other),
        client.V1HTTPIngressPath(path=path, path_type=path_type, backend=backend)]))]
    return client.V1Ingress(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1IngressSpec(rules=rules, default_backend=backend if default else None,
                                  tls=[client.V1IngressTLS(hosts=[host])] if tls else None),
        status=client.V1IngressStatus(load_balancer=client.V1IngressLoadBalancerStatus(
            ingress=[client.V1IngressLoadBalancerIngress(ip=address)] if address else None)))


def test_an_ingress_to_the_targets_service_is_the_entry_users_take() -> None:
    services = [svc("web", "NodePort")]
    assert service_url(services, WEB, "demo", LOCAL, [ingress("web")]) == "http://web.staging.internal"
    assert service_url(services, WEB, "demo", REMOTE, [ingress("web", tls=True)]) == "https://web.staging.internal"
    assert service_url(services, WEB, "demo", REMOTE, [ingress("web", host=None)]) == "http://10.9.8.7"
    assert service_url(services, WEB, "demo", REMOTE, [ingress("web", default=True)]) == "http://10.9.8.7"


def test_ingresses_without_an_address_or_to_other_services_are_passed_over() -> None:
    services = [svc("web", "NodePort")]
    others = [ingress("a-unserved", address=""), ingress("b-other", service="db"),
              ingress("c-wildcard", host="*.staging.internal")]
    assert service_url(services, WEB, "demo", LOCAL, others[:2]) == "http://127.0.0.1:30080"
    assert service_url(services, WEB, "demo", LOCAL, others) == "http://10.9.8.7"  # a wildcard host: the address
    with pytest.raises(TargetError):
        service_url(services, WEB, "demo", REMOTE, others[:2])


def test_the_ingress_path_of_the_targets_service_is_the_base_of_the_load() -> None:
    services = [svc("web", "NodePort")]
    assert service_url(services, WEB, "demo", REMOTE, [ingress("web", path="/shop/")]) == \
        "http://web.staging.internal/shop"
    assert service_url(services, WEB, "demo", REMOTE, [ingress("web", host=None, path="/shop", path_type="Exact")]) \
        == "http://10.9.8.7/shop"
    regex = ingress("web", path="/shop(/|$)(.*)", path_type="ImplementationSpecific")
    assert service_url(services, WEB, "demo", REMOTE, [regex]) == "http://web.staging.internal"
