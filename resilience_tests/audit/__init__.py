"""The resilience audit: rules a workload must follow, checked on manifests or a live namespace in seconds."""
