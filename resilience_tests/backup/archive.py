"""The backup archive: a gzipped tar with a manifest, the namespace's objects, hook data, and checksums.

::

    manifest.json                       format, source cluster, namespace, kinds and counts, checksums of the rest
    objects/<group>/<Kind>/<name>.json  one cleaned object each (``core`` for the core group)
    secrets/<name>.json.enc             a Secret, encrypted (only when a key was given)
    data/<hook>/<pod>                   what a backup hook exported

Nothing is trusted before it is checked: :func:`read` refuses an archive whose format version is newer than
this tool's, whose manifest is missing or unreadable, or whose members do not match the manifest's checksums
(a truncated or altered archive), before anything is applied.

Secret values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived
from the key file's contents with scrypt and a salt kept in the manifest.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resilience_tests import __version__
from resilience_tests.errors import ResilienceError, UsageError

FORMAT = 1
MANIFEST = "manifest.json"
MAX_MEMBER = 64 * 1024 * 1024


class ArchiveError(ResilienceError):
    """An archive that cannot be used: nothing was applied."""


@dataclass
class Archive:
    """What a backup holds, in memory."""

    namespace: str
    source: dict[str, str] = field(default_factory=dict)  # context, server, version
    objects: list[dict[str, Any]] = field(default_factory=list)  # cleaned, Secrets without values
    secrets: list[dict[str, Any]] = field(default_factory=list)  # whole Secrets (decrypted on read with a key)
    secrets_mode: str = "none"  # none (no Secret), encrypted, omitted (names only, values left out)
    omitted_secrets: list[str] = field(default_factory=list)
    data: dict[str, bytes] = field(default_factory=dict)  # "hook/pod" -> bytes a hook exported
    unreadable: list[str] = field(default_factory=list)  # kinds the account could not read (skipped)
    created: float = 0.0
    salt: str = ""

    def kinds(self) -> dict[str, int]:
        """``{"apps/Deployment": 1, "core/ConfigMap": 3, ...}``."""
        return dict(sorted(Counter(kind_key(o) for o in [*self.objects, *self.secrets]).items()))


def kind_key(obj: dict[str, Any]) -> str:
    """``apps/Deployment``, ``core/ConfigMap``."""
    api_version = str(obj.get("apiVersion") or "v1")
    group = api_version.rpartition("/")[0] or "core"
    return f"{group}/{obj.get('kind')}"


def _member(obj: dict[str, Any]) -> str:
    return f"objects/{kind_key(obj)}/{obj['metadata']['name']}.json"


def _fernet(key: bytes, salt: bytes) -> Any:
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    derived = Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(key)
    return Fernet(base64.urlsafe_b64encode(derived))


def read_key(path: str | None) -> bytes | None:
    """The contents of a key file (any secret text, at least 16 bytes), or None."""
    if not path:
        return None
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"key file {path}: {exc.strerror}", hint="give a readable file holding the key") from None
    if len(key) < 16:
        raise UsageError(f"key file {path} holds {len(key)} bytes; a key needs at least 16",
                         hint="make one with: head -c 32 /dev/urandom | base64 > backup.key")
    return key


def write(archive: Archive, path: Path, key: bytes | None) -> int:
    """Write ``archive`` to ``path`` (through a temporary file, so a crash leaves no half archive); return its
    size in bytes."""
    import os
    import secrets as random

    members: list[tuple[str, bytes]] = []
    for obj in archive.objects:
        members.append((_member(obj), json.dumps(obj, sort_keys=True, indent=1).encode()))
    salt = b""
    if archive.secrets:
        if key is None:
            raise UsageError("Secrets to archive but no key", hint="pass --key-file")
        salt = random.token_bytes(16)
        box = _fernet(key, salt)
        for secret in archive.secrets:
            members.append((f"secrets/{secret['metadata']['name']}.json.enc",
                            box.encrypt(json.dumps(secret, sort_keys=True).encode())))
    for name, blob in sorted(archive.data.items()):
        members.append((f"data/{name}", blob))
    created = archive.created or time.time()
    manifest = {
        "format": FORMAT, "tool_version": __version__, "created": created,
        "namespace": archive.namespace, "source": archive.source, "kinds": archive.kinds(),
        "objects": len(archive.objects) + len(archive.secrets),
        "secrets": archive.secrets_mode, "omitted_secrets": sorted(archive.omitted_secrets),
        "salt": base64.b64encode(salt).decode() if salt else "", "unreadable": sorted(archive.unreadable),
        "checksums": {name: hashlib.sha256(blob).hexdigest() for name, blob in members},
    }
    tmp = path.with_name(path.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, blob in [(MANIFEST, json.dumps(manifest, indent=1).encode()), *members]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(blob), int(created), 0o600
            tar.addfile(info, io.BytesIO(blob))
    os.replace(tmp, path)
    return path.stat().st_size


def read(path: Path, key: bytes | None, *, skip_encrypted: bool = False) -> Archive:
    """Read and check an archive; decrypt its Secrets with ``key``. Raises :class:`ArchiveError` (nothing is
    applied) for a corrupted, truncated or newer archive, or Secrets without a key (unless ``skip_encrypted``:
    then they are left aside, named in ``omitted_secrets``)."""
    blobs = _members(path)
    try:
        manifest = json.loads(blobs.pop(MANIFEST))
    except KeyError:
        raise ArchiveError(f"{path}: no {MANIFEST}: not a backup archive") from None
    except ValueError as exc:
        raise ArchiveError(f"{path}: {MANIFEST} is not JSON ({exc})") from None
    version = manifest.get("format") if isinstance(manifest, dict) else None
    if not isinstance(version, int):
        raise ArchiveError(f"{path}: {MANIFEST} has no format version")
    if version > FORMAT:
        raise ArchiveError(f"{path} has format {version}; this resilience-tests {__version__} reads format "
                           f"{FORMAT} and older: upgrade resilience-tests to restore it")
    sums: dict[str, str] = manifest.get("checksums") or {}
    missing = sorted(set(sums) - set(blobs))
    if missing:
        raise ArchiveError(f"{path} is incomplete (truncated?): {len(missing)} member(s) missing, e.g. {missing[0]}")
    extra = sorted(set(blobs) - set(sums))
    if extra:
        raise ArchiveError(f"{path} holds {len(extra)} member(s) its manifest does not list, e.g. {extra[0]}")
    bad = sorted(name for name, blob in blobs.items() if hashlib.sha256(blob).hexdigest() != sums[name])
    if bad:
        raise ArchiveError(f"{path} is corrupted: {len(bad)} member(s) do not match their checksum, e.g. {bad[0]}")
    archive = Archive(namespace=str(manifest.get("namespace") or ""), source=dict(manifest.get("source") or {}),
                      secrets_mode=str(manifest.get("secrets") or "none"),
                      omitted_secrets=list(manifest.get("omitted_secrets") or []),
                      unreadable=list(manifest.get("unreadable") or []), created=float(manifest.get("created") or 0),
                      salt=str(manifest.get("salt") or ""))
    encrypted = {name: blob for name, blob in blobs.items() if name.startswith("secrets/")}
    for name, blob in sorted(blobs.items()):
        if name.startswith("objects/"):
            archive.objects.append(json.loads(blob))
        elif name.startswith("data/"):
            archive.data[name[len("data/"):]] = blob
    if encrypted and key is None and skip_encrypted:
        archive.omitted_secrets += [name[len("secrets/"):-len(".json.enc")] for name in sorted(encrypted)]
    elif encrypted:
        if key is None:
            raise ArchiveError(f"{path} holds {len(encrypted)} encrypted Secret(s) and no key was given: pass "
                               "--key-file with the key the backup was made with (or --without-secrets)")
        from cryptography.fernet import InvalidToken

        box = _fernet(key, base64.b64decode(archive.salt))
        try:
            archive.secrets = [json.loads(box.decrypt(blob)) for _, blob in sorted(encrypted.items())]
        except InvalidToken:
            raise ArchiveError(f"{path}: the key does not decrypt its Secrets: it is not the key the backup "
                               "was made with") from None
    return archive


def _members(path: Path) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                if not info.isfile():
                    raise ArchiveError(f"{path}: member {info.name} is not a regular file")
                if info.size > MAX_MEMBER:
                    raise ArchiveError(f"{path}: member {info.name} is larger than {MAX_MEMBER >> 20} MB")
                handle = tar.extractfile(info)
                if handle is None:
                    raise ArchiveError(f"{path}: member {info.name} cannot be read")
                blobs[info.name] = handle.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such archive", hint="give the file `resilience backup` wrote") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ArchiveError(f"{path} is not a readable backup archive (truncated or corrupted?): {exc}") from None
    return blobs


def ref(obj: dict[str, Any]) -> str:
    """``apps/Deployment web``: how messages and diffs name an object."""
    return f"{kind_key(obj)} {obj['metadata']['name']}"
