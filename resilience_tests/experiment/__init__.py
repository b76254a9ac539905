"""Experiments: the YAML model and the runner."""
