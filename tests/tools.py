"""Where the tests find the project's command-line tools: beside the interpreter that runs them.

The suite runs as ``.venv/bin/python -m pytest tests`` without the virtual environment on PATH, so a
console script (``resilience``, ``ruff``, ``lint-imports``) is looked up in the folder of ``sys.executable``
first; PATH is only the fallback, where another installation's copy may answer.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def console_script(name: str) -> str | None:
    """The path of the console script ``name`` of this interpreter's environment, else of PATH, else None."""
    beside = Path(sys.executable).parent / name  # not resolved: a venv's python is a link to the base's
    if beside.is_file():
        return str(beside)
    return shutil.which(name)
