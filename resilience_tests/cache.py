"""Where the project keeps what it builds and what its processes leave for later (never inside the repo)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache root: ``$RESILIENCE_CACHE``, else ``~/.cache/resilience-tests``."""
    env = os.environ.get("RESILIENCE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "resilience-tests"
