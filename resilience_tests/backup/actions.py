"""What the backup, disaster and restore steps of an experiment record, as typed values.

The steps (:mod:`resilience_tests.faults.backup_restore`) record them as their actions; the recovery checks
(``rto``, ``restored-objects``, ``data-intact``, ``rpo``) read them as they are. The journal writes each as a
JSON object among its record's ``details`` (docs/reports.md): lists as arrays, the probe as ``count`` and
``sha256``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["BackupTaken", "DisasterStruck", "DisasterUndone", "Probe", "Restored"]


@dataclass(frozen=True)
class Probe:
    """The data probe summed over the target's pods: records counted and a checksum of the pods' sums."""

    count: int
    sha256: str
    pods: int = 0

    def value(self, compare: Literal["sha256", "count"]) -> str:
        """The value ``data-intact`` compares, as text."""
        return self.sha256 if compare == "sha256" else str(self.count)


def _json(value: object) -> dict[str, Any]:
    data = dataclasses.asdict(value)  # type: ignore[call-overload]
    probe = data.pop("probe", None)
    if probe:
        data.update(count=probe["count"], sha256=probe["sha256"])
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


@dataclass(frozen=True)
class BackupTaken:
    """A backup step took its backup.

    Attributes:
        engine: ``builtin`` or ``velero``.
        objects: objects and Secrets held.
        kinds: the kinds held (``apps/Deployment``...).
        exported: pods whose export hook ran.
        unreadable: kinds this account could not read (left out).
        probe: the data probe when the backup was taken (None without a probe).
        velero_backup, velero_items, velero_s: the Velero Backup (``velero/<name>``), its items and seconds.
    """

    engine: str
    objects: int
    kinds: tuple[str, ...] = ()
    exported: int = 0
    unreadable: tuple[str, ...] = ()
    probe: Probe | None = None
    velero_backup: str = ""
    velero_items: int = 0
    velero_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """As the journal writes it."""
        return _json(self)


@dataclass(frozen=True)
class DisasterStruck:
    """A disaster step is about to delete: what, where its safety copy is, and the probe just before."""

    what: str
    safety_copy: str
    probe: Probe | None = None

    def to_json(self) -> dict[str, Any]:
        """As the journal writes it."""
        return _json(self)


@dataclass(frozen=True)
class DisasterUndone:
    """A disaster no restore step repaired was undone from the backup when the run reverted."""

    applied: int
    not_ready: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As the journal writes it."""
        return _json(self)


@dataclass(frozen=True)
class Restored:
    """A restore step ended.

    Attributes:
        engine: ``builtin`` or ``velero``.
        applied: objects applied (items restored, with Velero).
        started: when it started (epoch seconds).
        not_ready: workloads not ready when it gave up waiting.
        recovered: when the workloads were ready and the data probe answered (None: they never were).
        probe: the data probe once it answered (None: no probe, or it never answered).
        probe_error: why the probe did not answer.
        missing, changed: objects held before the disaster and missing, or different, after the restore.
        velero_restore, velero_s: the Velero Restore (``velero/<name>``) and its seconds.
    """

    engine: str
    applied: int
    started: float
    not_ready: tuple[str, ...] = ()
    recovered: float | None = None
    probe: Probe | None = None
    probe_error: str = ""
    missing: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    velero_restore: str = ""
    velero_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """As the journal writes it."""
        return _json(self)
