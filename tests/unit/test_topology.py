from __future__ import annotations

import pytest

from resilience_tests.errors import UsageError
from resilience_tests.labels import HEARTBEAT_LABEL, ZONE_LABEL
from resilience_tests.testbed.topology import Topology, node_list


def test_default_shape_has_three_zones_of_two_nodes() -> None:
    topo = Topology()
    assert topo.zone_names == ["zone-a", "zone-b", "zone-c"]
    assert topo.node_names() == ["sim-a1", "sim-a2", "sim-b1", "sim-b2", "sim-c1", "sim-c2"]
    assert topo.node_names("zone-b") == ["sim-b1", "sim-b2"]


def test_node_names_are_zero_padded_and_map_back_to_their_zone() -> None:
    topo = Topology(zones=3, nodes_per_zone=334)
    names = topo.node_names()
    assert len(names) == 1002 and names[0] == "sim-a001" and names[-1] == "sim-c334"
    assert {topo.zone_of(n) for n in names} == set(topo.zone_names)


@pytest.mark.parametrize(("zones", "per_zone", "message"), [
    (0, 2, "--zones must be between 1 and 26"),
    (27, 2, "--zones must be between 1 and 26"),
    (3, 0, "--nodes-per-zone must be at least 1"),
    (26, 1000, "more than 5000 nodes"),
])
def test_bad_shapes_are_refused_with_the_option_named(zones: int, per_zone: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Topology(zones=zones, nodes_per_zone=per_zone)


def test_manifests_carry_zone_region_and_heartbeat_labels() -> None:
    items = node_list(Topology(2, 1))["items"]
    labels = [item["metadata"]["labels"] for item in items]
    assert [lab[ZONE_LABEL] for lab in labels] == ["zone-a", "zone-b"]
    assert all(lab[HEARTBEAT_LABEL] == "on" for lab in labels)
    assert all(lab["topology.kubernetes.io/region"] == "local-1" for lab in labels)
