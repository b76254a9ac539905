"""Reading an archive with every size bounded: the gzip stream, the tar headers, each member, each JSON document.

The tar is read by a small reader of its own rather than :mod:`tarfile`, so that nothing is held before it is
checked: a header's size is checked before its data is read, an extended (pax) or long-name header may hold at
most :data:`MAX_HEADER` bytes, the members are counted as they come, and the decompressed bytes are counted
whatever they are (a gzip bomb stops at :data:`MAX_TOTAL`). Only regular files are accepted. JSON documents are
parsed only after a scan that bounds their size, nesting depth and number of values; integers of more than 20
digits, ``NaN`` and ``Infinity`` are refused.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from resilience_tests.errors import ResilienceError, UsageError

MAX_TOTAL = 512 * 1024 * 1024  # decompressed bytes of an archive, headers and padding included
MAX_MEMBERS = 100_000
MAX_MEMBER = 64 * 1024 * 1024  # one data member (what a hook exported)
MAX_JSON = 8 * 1024 * 1024  # one object, one Secret
MAX_MANIFEST = 32 * 1024 * 1024  # lists every member's checksum
MAX_HEADER = 64 * 1024  # a pax or long-name header
MAX_DEPTH = 64
MAX_VALUES = 1_000_000  # values (scalars and containers) in one JSON document
CHUNK = 1024 * 1024
BLOCK = 512


class ArchiveError(ResilienceError):
    """An archive that cannot be used: nothing was applied."""


class _Counted:
    """The decompressed stream, refused past ``MAX_TOTAL`` bytes."""

    def __init__(self, raw: BinaryIO, path: Path) -> None:
        self.stream = gzip.GzipFile(fileobj=raw, mode="rb")
        self.path, self.total = path, 0

    def read(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            chunk = self.stream.read(min(CHUNK, size - len(out)))
            if not chunk:
                break
            out += chunk
            self.total += len(chunk)
            if self.total > MAX_TOTAL:
                raise ArchiveError(f"{self.path} holds more than {MAX_TOTAL >> 20} MiB uncompressed: refused "
                                   "(a damaged or hostile archive)")
        return bytes(out)

    def exact(self, size: int, what: str) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise ArchiveError(f"{self.path} is cut short (truncated?) in {what}")
        return data


def _octal(field: bytes, path: Path) -> int:
    text = field.rstrip(b"\0 ").strip()
    if field[:1] and field[0] & 0x80:
        raise ArchiveError(f"{path}: a tar header holds a binary size: refused")
    if not re.fullmatch(rb"[0-7]{0,12}", text):
        raise ArchiveError(f"{path}: a tar header is corrupted (size {text[:16]!r})")
    return int(text or b"0", 8)


def _text(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError(f"{path}: a member name is not UTF-8") from None


def _pax(data: bytes, path: Path) -> dict[str, str]:
    """The records ``"<len> key=value\\n"`` of a pax header."""
    records: dict[str, str] = {}
    at = 0
    while at < len(data) and data[at:at + 1] != b"\0":
        match = re.match(rb"(\d{1,6}) ", data[at:at + 8])
        length = int(match.group(1)) if match else 0
        record = data[at:at + length]
        if not match or length <= len(match.group(0)) or not record.endswith(b"\n") or b"=" not in record:
            raise ArchiveError(f"{path}: an extended (pax) header is corrupted")
        key, _, value = record[len(match.group(0)):-1].partition(b"=")
        records[_text(key, path)] = _text(value, path)
        at += length
    return records


def members(path: Path, limit: Any) -> Iterator[tuple[str, bytes]]:
    """Each regular member of a gzipped tar as (name, content), in order.

    ``limit(name)`` gives the most bytes the member may hold (checked from its header before it is read); the
    count of members and the total are bounded by :data:`MAX_MEMBERS` and :data:`MAX_TOTAL`.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such archive", hint="give the file `resilience backup` wrote") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}", hint="give the file `resilience backup` wrote") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{path} is not a regular file", hint="give the file `resilience backup` wrote")
    try:
        with open(path, "rb") as raw:
            yield from _read(_Counted(raw, path), path, limit)
    except (gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        raise ArchiveError(f"{path} is not a readable backup archive (not gzip, truncated or corrupted?): "
                           f"{exc}") from None


def _read(stream: _Counted, path: Path, limit: Any) -> Iterator[tuple[str, bytes]]:
    count = 0
    extended: dict[str, str] = {}
    while True:
        header = stream.read(BLOCK)
        if not header or header == bytes(BLOCK):
            if not header:
                raise ArchiveError(f"{path} is cut short (truncated?): no end-of-archive marker")
            while stream.read(CHUNK):  # to the end, so that gzip checks its CRC (bounded by MAX_TOTAL)
                pass
            return
        if len(header) != BLOCK:
            raise ArchiveError(f"{path} is cut short (truncated?) in a tar header")
        if _octal(header[148:156], path) != sum(header[:148]) + 256 + sum(header[156:]):
            raise ArchiveError(f"{path}: a tar header fails its checksum (corrupted, or not a tar)")
        kind, size = header[156:157], _octal(header[124:136], path)
        padded = -(-size // BLOCK) * BLOCK
        if kind in (b"x", b"L"):
            if size > MAX_HEADER:
                raise ArchiveError(f"{path}: an extended header of {size} bytes (at most {MAX_HEADER}): refused")
            data = stream.exact(padded, "an extended header")[:size]
            if kind == b"L":
                extended["path"] = _text(data.rstrip(b"\0"), path)
            else:
                extended.update(_pax(data, path))
            continue
        name = _text(header[:100].split(b"\0", 1)[0], path)
        prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
        if prefix:
            name = _text(prefix, path) + "/" + name
        name = extended.pop("path", name)
        if "size" in extended:
            if not re.fullmatch(r"\d{1,12}", extended["size"]):
                raise ArchiveError(f"{path}: an extended header gives a bad size for {name!r}")
            size = int(extended["size"])
            padded = -(-size // BLOCK) * BLOCK
        extended = {}
        if kind not in (b"0", b"\0"):
            raise ArchiveError(f"{path}: member {name!r} is not a regular file (tar type {kind!r}): refused")
        count += 1
        if count > MAX_MEMBERS:
            raise ArchiveError(f"{path} holds more than {MAX_MEMBERS} members: refused")
        most = int(limit(name))
        if size > most:
            raise ArchiveError(f"{path}: member {name!r} holds {size} bytes, more than the {most} such a member "
                               "may hold: refused")
        if stream.total + padded > MAX_TOTAL:
            raise ArchiveError(f"{path} holds more than {MAX_TOTAL >> 20} MiB uncompressed: refused")
        data = stream.exact(padded, f"member {name!r}")
        yield name, data[:size]


class Budget:
    """JSON values several documents may hold together."""

    def __init__(self, values: int) -> None:
        self.values = values


def load_json(blob: bytes, what: str, *, most: int = MAX_JSON, budget: Budget | None = None) -> Any:
    """A JSON document of at most ``most`` bytes, :data:`MAX_DEPTH` levels and :data:`MAX_VALUES` values (and
    within what is left of ``budget``)."""
    if len(blob) > most:
        raise ArchiveError(f"{what}: {len(blob)} bytes of JSON, more than {most}: refused")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{what} is not UTF-8 (byte {exc.start})") from None
    bare = re.sub(r'"[^"\\]*(?:\\.[^"\\]*)*"', "0", text)  # strings out: what is left is structure and numbers
    values = bare.count(",") + bare.count("[") + bare.count("{") + 1
    if values > MAX_VALUES:
        raise ArchiveError(f"{what} holds more than {MAX_VALUES} JSON values: refused")
    if budget is not None:
        budget.values -= values
        if budget.values < 0:
            raise ArchiveError(f"{what}: the archive's objects hold too many JSON values together: refused")
    for _ in range(MAX_DEPTH):
        bare, found = re.subn(r"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}", "0", bare)
        if not found:
            break
    else:
        if re.search(r"[\[{]", bare):
            raise ArchiveError(f"{what} is nested more than {MAX_DEPTH} levels deep: refused")
    try:
        return json.loads(text, parse_int=_integer, parse_constant=_constant)
    except (ValueError, RecursionError) as exc:
        raise ArchiveError(f"{what} is not valid JSON ({str(exc)[:120]})") from None


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")
