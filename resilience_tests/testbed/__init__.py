"""The local cluster: build, launch, node and zone failure hooks."""

DEFAULT_CLUSTER_NAME = "resilience"
