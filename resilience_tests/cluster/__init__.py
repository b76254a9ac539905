"""Everything that talks to a Kubernetes API server. The only importer of the kubernetes client."""
