"""The backup archive: a gzipped tar with a manifest, the namespace's objects, hook data, and checksums.

::

    manifest.json                       format, source cluster, namespace, kinds and counts, checksums of the rest
    manifest.mac                        HMAC-SHA256 of manifest.json under a key derived from the key file
    objects/<group>/<Kind>/<name>.json  one cleaned object each (``core`` for the core group)
    secrets/<name>.json.enc             a Secret, encrypted (only when a key was given)
    data/<hook>/<pod>                   what a backup hook exported

Nothing is trusted before it is checked: :func:`read` refuses an archive whose format version is newer than
this tool's, whose manifest is missing or unreadable, whose members do not match the manifest's checksums (a
truncated or altered archive), whose MAC does not match under the key given, or that holds what a backup of
one namespace cannot (:mod:`~resilience_tests.backup.scope`), before anything is applied. Every size is bounded
while reading (:mod:`~resilience_tests.backup.bounded`).

With a key file, the archive is authenticated as a whole: the manifest lists every member's SHA-256 and
``manifest.mac`` is its HMAC-SHA256 under a key derived with scrypt from the key file and the manifest's salt
(with its own salt prefix, so it is not the Secrets' key). Secret values are encrypted with Fernet
(AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived from the key file with scrypt and the
manifest's salt. Format 1 archives (no MAC) are still read, as unauthenticated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import re
import secrets as random
import stat
import tarfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resilience_tests import __version__
from resilience_tests.backup import bounded, scope
from resilience_tests.backup.bounded import ArchiveError as ArchiveError
from resilience_tests.backup.scope import kind_key as kind_key
from resilience_tests.backup.scope import member_name
from resilience_tests.backup.scope import ref as ref
from resilience_tests.errors import UsageError
from resilience_tests.namespaces import is_object_name

FORMAT = 2
MANIFEST = "manifest.json"
MAC = "manifest.mac"
MAX_KEY = 4096  # bytes of a key file
MAX_OBJECTS = 128 * 1024 * 1024  # bytes of all objects and Secrets together (they are parsed)
MAX_VALUES = 4_000_000  # JSON values of all objects and Secrets together
_MAC_SALT = b"resilience-tests manifest mac\0"
_DATA = re.compile(r"data/[a-z][a-z0-9-]{0,62}/([^/]+)")
_SECRET = re.compile(r"secrets/([^/]+)\.json\.enc")
UNAUTHENTICATED = ("unauthenticated: it was made without a key (or read without one), so anyone who could write "
                   "the file could have changed what it holds; its contents were checked against what a backup "
                   "of one namespace can hold")


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
    # its MAC was checked with the key (read), or this process made it (backup): nobody else could change it
    authenticated: bool = False

    def kinds(self) -> dict[str, int]:
        """``{"apps/Deployment": 1, "core/ConfigMap": 3, ...}``."""
        return dict(sorted(Counter(kind_key(o) for o in [*self.objects, *self.secrets]).items()))


def _scrypt(key: bytes, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(key)


def _fernet(key: bytes, salt: bytes) -> Any:
    from cryptography.fernet import Fernet

    return Fernet(base64.urlsafe_b64encode(_scrypt(key, salt)))


def _mac(key: bytes, salt: bytes, manifest: bytes) -> str:
    return hmac.new(_scrypt(key, _MAC_SALT + salt), manifest, hashlib.sha256).hexdigest()


def read_key(path: str | None) -> bytes | None:
    """The contents of a key file (any secret text, 16 bytes to 4 KiB, in a regular file), or None."""
    if path is None:
        return None
    hint = "give a readable file holding the key; make one with: head -c 32 /dev/urandom | base64 > backup.key"
    if not path:
        raise UsageError("--key-file '': no file named", hint=hint)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UsageError(f"key file {path}: {exc.strerror}", hint=hint) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"key file {path} is not a regular file", hint=hint)
        if info.st_size > MAX_KEY:
            raise UsageError(f"key file {path} holds {info.st_size} bytes; a key file holds at most {MAX_KEY}",
                             hint=hint)
        key = os.read(fd, MAX_KEY + 1).strip()
    finally:
        os.close(fd)
    if len(key) < 16:
        raise UsageError(f"key file {path} holds {len(key)} bytes; a key needs at least 16", hint=hint)
    return key


def check_output(path: Path) -> None:
    """Refuse to write an archive over what is not a regular file (a device, a FIFO, a folder, a link to one)."""
    hint = "give -o a new file, or a regular file to replace, in an existing folder"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            raise UsageError(f"cannot write the archive to {path}: a symbolic link to nothing", hint=hint) from None
        if not path.parent.is_dir():
            raise UsageError(f"cannot write the archive to {path}: no folder {path.parent}", hint=hint) from None
        return
    except OSError as exc:
        raise UsageError(f"cannot write the archive to {path}: {exc.strerror}", hint=hint) from None
    if not stat.S_ISREG(info.st_mode):
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else \
            "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a regular file"
        raise UsageError(f"cannot write the archive to {path}: it is {what}", hint=hint)


def write(archive: Archive, path: Path, key: bytes | None) -> int:
    """Write ``archive`` to ``path`` (mode 0600, through a temporary file made with O_EXCL in the same folder,
    so a crash leaves no half archive and nothing but a regular file is replaced); return its size in bytes."""
    check_output(path)
    members: list[tuple[str, bytes]] = []
    for obj in archive.objects:
        members.append((member_name(obj), _json(obj, indent=1)))
    if archive.secrets and key is None:
        raise UsageError("Secrets to archive but no key", hint="pass --key-file")
    salt = random.token_bytes(16) if key is not None else b""
    if archive.secrets:
        assert key is not None
        box = _fernet(key, salt)
        for secret in archive.secrets:
            members.append((f"secrets/{secret['metadata']['name']}.json.enc", box.encrypt(_json(secret))))
    for name, blob in sorted(archive.data.items()):
        members.append((f"data/{name}", blob))
    created = archive.created or time.time()
    manifest = _json({
        "format": FORMAT, "tool_version": __version__, "created": created,
        "namespace": archive.namespace, "source": archive.source, "kinds": archive.kinds(),
        "objects": len(archive.objects) + len(archive.secrets),
        "secrets": archive.secrets_mode, "omitted_secrets": sorted(archive.omitted_secrets),
        "salt": base64.b64encode(salt).decode() if salt else "", "unreadable": sorted(archive.unreadable),
        "checksums": {name: hashlib.sha256(blob).hexdigest() for name, blob in members},
    }, indent=1, sort_keys=False)
    head = [(MANIFEST, manifest)] + ([(MAC, _mac(key, salt, manifest).encode())] if key is not None else [])
    tmp = path.with_name(f".{path.name}.{random.token_hex(6)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            os.fchmod(raw.fileno(), 0o600)
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for name, blob in [*head, *members]:
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = len(blob), int(created), 0o600
                    tar.addfile(info, io.BytesIO(blob))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path.stat().st_size


def _json(obj: Any, indent: int | None = None, sort_keys: bool = True) -> bytes:
    import json

    return json.dumps(obj, sort_keys=sort_keys, indent=indent).encode()


def _limit(name: str) -> int:
    """The most bytes a member may hold; an unknown member is refused before it is read."""
    if name == MANIFEST:
        return bounded.MAX_MANIFEST
    if name == MAC:
        return 256
    if name.startswith("objects/"):
        return bounded.MAX_JSON
    secret = _SECRET.fullmatch(name)
    if secret and is_object_name(secret[1]):
        return 2 * bounded.MAX_JSON  # Fernet's token is base64 of the encrypted JSON
    if _DATA.fullmatch(name) and is_object_name(name.rsplit("/", 1)[1]):
        return bounded.MAX_MEMBER
    raise ArchiveError(f"member {name[:200]!r} is not one a backup archive holds: refused")


def read(path: Path, key: bytes | None, *, skip_encrypted: bool = False) -> Archive:
    """Read and check an archive; decrypt its Secrets with ``key``. Raises :class:`ArchiveError` (nothing is
    applied) for a corrupted, truncated, altered, newer or hostile archive, or Secrets without a key (unless
    ``skip_encrypted``: then they are left aside, named in ``omitted_secrets``)."""
    blobs: dict[str, bytes] = {}
    try:
        for name, blob in bounded.members(path, _limit):
            if name in blobs:
                raise ArchiveError(f"{path} holds member {name} twice: refused")
            blobs[name] = blob
    except ArchiveError as exc:
        raise ArchiveError(exc.message if str(path) in exc.message else f"{path}: {exc.message}") from None
    try:
        raw = blobs.pop(MANIFEST)
    except KeyError:
        raise ArchiveError(f"{path}: no {MANIFEST}: not a backup archive") from None
    manifest = bounded.load_json(raw, f"{path}: {MANIFEST}", most=bounded.MAX_MANIFEST)
    version = manifest.get("format") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ArchiveError(f"{path}: {MANIFEST} is not a manifest (a mapping with a format version)")
    if version > FORMAT:
        raise ArchiveError(f"{path} has format {version}; this resilience-tests {__version__} reads format "
                           f"{FORMAT} and older: upgrade resilience-tests to restore it")
    archive = _header(path, manifest)
    archive.authenticated = _authenticate(path, key, raw, blobs.pop(MAC, None), archive.salt)
    _check_members(path, manifest.get("checksums"), blobs)
    problems: list[str] = []
    budget = bounded.Budget(MAX_VALUES)
    if sum(len(b) for n, b in blobs.items() if not n.startswith("data/")) > MAX_OBJECTS:
        raise ArchiveError(f"{path}: its objects hold more than {MAX_OBJECTS >> 20} MiB of JSON: refused")
    encrypted = {name: blob for name, blob in blobs.items() if name.startswith("secrets/")}
    for name, blob in sorted(blobs.items()):
        if name.startswith("objects/"):
            obj = bounded.load_json(blob, f"{path}: {name}", budget=budget)
            why = scope.shape(obj)
            if why:
                problems.append(f"{name}: {why}")
            elif member_name(obj) != name:
                problems.append(f"{name}: holds {ref(obj)} (a member's path must name its kind and name)")
            else:
                archive.objects.append(obj)
        elif name.startswith("data/"):
            archive.data[name[len("data/"):]] = blob
    if encrypted and key is None and skip_encrypted:  # names checked by _limit
        archive.omitted_secrets += [name[len("secrets/"):-len(".json.enc")] for name in sorted(encrypted)]
    elif encrypted:
        if key is None:
            raise ArchiveError(f"{path} holds {len(encrypted)} encrypted Secret(s) and no key was given: pass "
                               "--key-file with the key the backup was made with (or --without-secrets)")
        problems += _decrypt(path, key, archive, encrypted, budget)
    problems += scope.problems([*archive.objects, *archive.secrets], archive.namespace)
    if problems:
        raise ArchiveError(f"{path} holds what a backup of namespace {archive.namespace[:80]!r} cannot, refused "
                           f"before anything is applied: {'; '.join(problems[:10])}"
                           f"{f' (and {len(problems) - 10} more)' if len(problems) > 10 else ''}")
    return archive


def _header(path: Path, manifest: dict[str, Any]) -> Archive:
    """The manifest's fields, each of the type it must have."""
    def text(key: str) -> str:
        value = manifest.get(key)
        value = "" if value is None else value
        if not isinstance(value, str):
            raise ArchiveError(f"{path}: {MANIFEST}'s {key} is not a string")
        return value

    def texts(key: str) -> list[str]:
        value = manifest.get(key)
        value = [] if value is None else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ArchiveError(f"{path}: {MANIFEST}'s {key} is not a list of strings")
        return list(value)

    source, created = manifest.get("source"), manifest.get("created")
    source, created = {} if source is None else source, 0 if created is None else created
    if not isinstance(source, dict) or not all(isinstance(v, str) for v in source.values()):
        raise ArchiveError(f"{path}: {MANIFEST}'s source is not a mapping of strings")
    if not isinstance(created, int | float) or isinstance(created, bool):
        raise ArchiveError(f"{path}: {MANIFEST}'s created is not a time")
    mode = text("secrets") or "none"
    if mode not in ("none", "encrypted", "omitted"):
        raise ArchiveError(f"{path}: {MANIFEST}'s secrets is {mode[:40]!r}, not none, encrypted or omitted")
    omitted = texts("omitted_secrets")
    bad = [name for name in omitted if not is_object_name(name)]
    if bad:
        raise ArchiveError(f"{path}: {MANIFEST} names a left-out Secret {bad[0][:80]!r}: not an object name")
    return Archive(namespace=text("namespace"), source=dict(source), secrets_mode=mode, omitted_secrets=omitted,
                   unreadable=texts("unreadable"), created=float(created), salt=text("salt"))


def _authenticate(path: Path, key: bytes | None, manifest: bytes, mac: bytes | None, salt: str) -> bool:
    """Whether the manifest's MAC was checked; refused when it does not match under ``key``."""
    if mac is None or key is None:
        return False
    try:
        raw_salt = base64.b64decode(salt, validate=True)
    except ValueError:
        raise ArchiveError(f"{path}: {MANIFEST}'s salt is not base64") from None
    if not hmac.compare_digest(mac.strip(), _mac(key, raw_salt, manifest).encode()):
        raise ArchiveError(f"{path}: {MANIFEST} does not match its MAC: the archive was altered after it was "
                           "written, or the key is not the one it was made with; nothing was applied")
    return True


def _check_members(path: Path, sums: Any, blobs: dict[str, bytes]) -> None:
    if sums is None:
        sums = {}
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise ArchiveError(f"{path}: {MANIFEST}'s checksums are not a mapping of member to SHA-256")
    missing = sorted(set(sums) - set(blobs))
    if missing:
        raise ArchiveError(f"{path} is incomplete (truncated?): {len(missing)} member(s) missing, e.g. "
                           f"{missing[0][:200]}")
    extra = sorted(set(blobs) - set(sums))
    if extra:
        raise ArchiveError(f"{path} holds {len(extra)} member(s) its manifest does not list, e.g. {extra[0]}")
    bad = sorted(name for name, blob in blobs.items() if hashlib.sha256(blob).hexdigest() != sums[name])
    if bad:
        raise ArchiveError(f"{path} is corrupted: {len(bad)} member(s) do not match their checksum, e.g. {bad[0]}")


def _decrypt(path: Path, key: bytes, archive: Archive, encrypted: dict[str, bytes],
             budget: bounded.Budget) -> list[str]:
    """Decrypt each Secret into ``archive.secrets``; what is not a v1 Secret of its member's name."""
    from cryptography.fernet import InvalidToken

    try:
        box = _fernet(key, base64.b64decode(archive.salt, validate=True))
    except ValueError:
        raise ArchiveError(f"{path}: {MANIFEST}'s salt is not base64") from None
    problems: list[str] = []
    for name, blob in sorted(encrypted.items()):
        try:
            plain = box.decrypt(blob)
        except InvalidToken:
            raise ArchiveError(f"{path}: the key does not decrypt its Secrets: it is not the key the backup "
                               "was made with") from None
        secret = bounded.load_json(plain, f"{path}: {name}", budget=budget)
        why = scope.shape(secret)
        if why:
            problems.append(f"{name}: {why}")
        elif (secret["apiVersion"], secret["kind"]) != ("v1", "Secret") or \
                f"secrets/{secret['metadata']['name']}.json.enc" != name:
            problems.append(f"{name}: holds {ref(secret)}, not the v1 Secret its name says")
        else:
            archive.secrets.append(secret)
    return problems
