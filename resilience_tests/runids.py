"""Run ids and experiment ids: one run id per ``resilience run`` (or pytest session), one experiment id per
experiment it runs.

The run id names the results folder (``reports/<run id>/``) and is shown once when the run starts. Each
experiment of the run gets ``<run id>-<n>`` (n from 1): the id its lease, its change ledger, its journal and
``resilience cleanup --run`` use. ``cleanup --run`` takes either: a run id stands for all its experiments.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

from resilience_tests.errors import UsageError

RUN_ID_MAX = 40
"""Longest run id: ``run-<run id>-<n>`` (the lease) and ``<run id>-<n>-restore`` (Velero) stay object names."""
_RUN_ID = re.compile(rf"[A-Za-z0-9](?:[A-Za-z0-9._-]{{0,{RUN_ID_MAX - 2}}}[A-Za-z0-9])?")
_EXPERIMENT_ID = re.compile(r"(?P<run>.+)-(?P<n>[1-9][0-9]{0,5})")


def new_run_id() -> str:
    """A fresh run id: sortable by time, unique between two runs started the same second (``20261204-191403-a1b2``)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def check_run_id(text: str) -> str:
    """``text`` if it can be a run id (a label value of at most 40 characters); UsageError otherwise."""
    if not _RUN_ID.fullmatch(text):
        raise UsageError(f"run id {text[:60]!r} is not usable: it names a folder, labels and a Lease",
                         hint=f"use at most {RUN_ID_MAX} letters, digits, '.', '_' or '-', starting and ending "
                              "with a letter or digit (or leave it out for a new one)")
    return text


def experiment_id(run_id: str, n: int) -> str:
    """The id of the ``n``-th experiment (from 1) of run ``run_id``."""
    return f"{run_id}-{n}"


def run_of(experiment: str) -> str:
    """The run an experiment id belongs to (an id not of the form ``<run id>-<n>`` is its own run)."""
    found = _EXPERIMENT_ID.fullmatch(experiment)
    return found.group("run") if found else experiment


def belongs(experiment: str, given: str) -> bool:
    """Whether ``given`` (what ``cleanup --run`` was given: a run id or an experiment id) names ``experiment``."""
    return bool(given) and (experiment == given or run_of(experiment) == given)


class ExperimentIds:
    """Mints the experiment ids of one run, in order (safe to call from several threads)."""

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = check_run_id(run_id) if run_id else new_run_id()
        self._count = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        """The next experiment id: ``<run id>-1``, ``<run id>-2``..."""
        with self._lock:
            self._count += 1
            return experiment_id(self.run_id, self._count)
