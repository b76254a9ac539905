"""Reading YAML that cannot be abused: no aliases, no duplicate keys, bounded size, depth and numbers.

Experiments are small hand-written files; the audit reads manifests (Helm's rendered output) of up to 20 MB.
Both come through here. An alias (``*name``) lets a 631-byte file expand into gigabytes (the "billion
laughs") and a duplicate key silently drops one of two values: both are refused with the line and column.
Anchors without aliases are harmless and allowed, merge keys (``<<``) and tags other than the standard scalar
ones are refused. Nesting deeper than :data:`MAX_DEPTH` and integers longer than Python's digit limit are
refused too, each in one line.

Values are built straight from the parser's events (libyaml's when PyYAML has it), never through a node
tree: a 19 MB manifest costs the Python objects it holds, not the several hundred bytes per scalar that a
composed node with its marks would add.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from resilience_tests.errors import ResilienceError

MAX_BYTES = 1_000_000
MAX_DEPTH = 100
MAX_INT_CHARS = 4300  # Python's own default limit on int() digits
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SCALARS = {f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "binary", "timestamp", "str")}


class YamlProblem(ResilienceError):
    """The text is not acceptable YAML; ``str()`` is one line with the position.

    Attributes:
        line: the line (from 1) it was found on; 0 when it is about the whole text.
        problem: what is wrong, without the position.
    """

    def __init__(self, message: str, *, line: int = 0, problem: str = "") -> None:
        self.line = line
        self.problem = problem or message
        super().__init__(message)


class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's pure-Python parser, when it was built without libyaml."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


_Parser: Any = getattr(yaml.cyaml, "CParser", _PyParser) if yaml.__with_libyaml__ else _PyParser  # libyaml: ~10x faster


class _Builder:
    """Python values from parser events, one document at a time."""

    def __init__(self, text: str) -> None:
        self.parser: Any = _Parser(text)  # events typed loosely: libyaml's and PyYAML's differ
        self.resolver: Any = Resolver()
        self.constructor = SafeConstructor()

    def documents(self) -> Iterator[tuple[int, Any]]:
        """Each document as (the line its first node is on, its value)."""
        while True:
            event = self.parser.get_event()
            if isinstance(event, yaml.StreamEndEvent):
                return
            if isinstance(event, yaml.DocumentStartEvent):
                line = self.parser.peek_event().start_mark.line + 1
                value = self._document()
                yield line, value

    def _document(self) -> Any:
        # stack of open collections: [container, pending key or _NO_KEY, start mark]
        stack: list[list[Any]] = []
        result: Any = None
        while True:
            event = self.parser.get_event()
            if isinstance(event, yaml.DocumentEndEvent):
                return result
            if isinstance(event, yaml.AliasEvent):
                raise _problem(event.start_mark, "aliases (*name) are not allowed; write the value out")
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                value = stack.pop()[0]
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                mapping = isinstance(event, yaml.MappingStartEvent)
                tag = event.tag
                if tag not in (None, "!", _MAP if mapping else _SEQ):
                    raise _problem(event.start_mark, f"the tag {tag!r} is not allowed; remove it")
                if len(stack) >= MAX_DEPTH:
                    raise _problem(event.start_mark, f"nested more than {MAX_DEPTH} levels deep; flatten it")
                stack.append([{} if mapping else [], _NO_KEY, event.start_mark])
                continue
            elif isinstance(event, yaml.ScalarEvent):
                value = self._scalar(event)
            else:
                raise _problem(event.start_mark, f"unexpected {type(event).__name__}")
            if not stack:
                result = value
                continue
            top = stack[-1]
            if isinstance(top[0], list):
                top[0].append(value)
            elif top[1] is _NO_KEY:
                top[1] = _key(value, event.start_mark, top[0])
            else:
                top[0][top[1]] = value
                top[1] = _NO_KEY

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(ScalarNode, event.value, event.implicit)
        if tag == "tag:yaml.org,2002:merge":
            raise _problem(event.start_mark, "merge keys (<<) are not allowed; write the keys out")
        if tag not in _SCALARS:
            raise _problem(event.start_mark, f"the tag {tag!r} is not allowed; remove it")
        if tag.endswith(":int") and len(event.value) > MAX_INT_CHARS:
            raise _problem(event.start_mark, f"a number of {len(event.value):,} characters; numbers have at most "
                                             f"{MAX_INT_CHARS:,}")
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return SafeConstructor.yaml_constructors[tag](self.constructor, node)
        except ValueError as exc:  # a malformed timestamp or number the resolver let through
            raise _problem(event.start_mark, f"{event.value[:40]!r} cannot be read ({str(exc)[:80]})") from None

    def close(self) -> None:
        """Free the parser (libyaml's holds the whole text)."""
        self.parser.dispose()


_NO_KEY = object()


def _key(value: Any, mark: Any, mapping: dict[Any, Any]) -> Any:
    if isinstance(value, (dict, list)):
        raise _problem(mark, "a key must be a plain value, not a mapping or a list")
    if value in mapping:
        raise _problem(mark, f"duplicate key {value!r} (each key once per mapping)")
    return value


def _problem(mark: Any, problem: str) -> YamlProblem:
    where = f" at line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ": "
    return YamlProblem(f"malformed YAML{where}{problem}"[:300], line=mark.line + 1 if mark is not None else 0,
                       problem=problem[:250])


def _parse_error(exc: yaml.YAMLError) -> YamlProblem:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.reader.ReaderError):
        problem = f"{exc.reason} (character {exc.position:,})"
    if "maximum nesting depth" in str(problem):  # libyaml's own limit (PyYAML 6.0.4), met while scanning ahead
        problem = f"nested more than {MAX_DEPTH} levels deep; flatten it"
    return _problem(mark, " ".join(str(problem).split()))


def load_all(text: str) -> Generator[tuple[int, Any], None, None]:
    """Each document of ``text`` as (its first line, its value).

    Raises:
        YamlProblem: at the first thing not acceptable, naming its line and column; the documents before it
            have been yielded.
    """
    try:
        builder = _Builder(text)
    except yaml.YAMLError as exc:  # the pure-Python reader checks the characters first
        raise _parse_error(exc) from None
    try:
        yield from builder.documents()
    except yaml.YAMLError as exc:
        raise _parse_error(exc) from None
    finally:
        builder.close()


def load(text: str, *, max_bytes: int = MAX_BYTES) -> Any:
    """Parse ``text`` (one document; none is None). Raises YamlProblem naming the line, column and problem."""
    size = len(text.encode(errors="replace"))
    if size > max_bytes:
        raise YamlProblem(f"{size:,} bytes; experiments are at most {max_bytes:,} bytes")
    documents = load_all(text)
    try:
        first = next(documents, (0, None))[1]
        extra = next(documents, None)
    finally:
        documents.close()
    if extra is not None:
        raise YamlProblem(f"malformed YAML at line {extra[0]}: a second document; one file holds one experiment",
                          line=extra[0], problem="a second document; one file holds one experiment")
    return first


def read_text(source: Path | IO[bytes] | IO[str], *, max_bytes: int, what: str = "file") -> str:
    """The text of a file or a stream (binary, or text already decoded), read no further than ``max_bytes`` + 1
    bytes (characters of a text stream).

    Raises:
        YamlProblem: it is larger than ``max_bytes``, binary (holds a NUL byte) or not UTF-8.
        OSError: it cannot be read.
    """
    if isinstance(source, Path):
        with source.open("rb") as stream:
            data = stream.read(max_bytes + 1)
    else:
        read = source.read(max_bytes + 1)
        data = read.encode(errors="surrogateescape") if isinstance(read, str) else read
    if len(data) > max_bytes:
        raise YamlProblem(f"more than {max_bytes:,} bytes; {what}s are at most {max_bytes:,} bytes")
    if b"\0" in data:
        raise YamlProblem(f"binary data (a NUL byte at offset {data.index(0):,}), not YAML text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start:,}); "
                          "save it as UTF-8") from None


class _NoAliases(yaml.SafeDumper):
    """A dumper that writes a value shared between two places out twice instead of as ``&id001``/``*id001``."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(data: Any, **options: Any) -> str:
    """YAML that this module reads back: never an alias (PyYAML writes one for any object used twice)."""
    return str(yaml.dump(data, Dumper=_NoAliases, **options))


def dump_all(documents: list[Any], **options: Any) -> str:
    """Several documents, as :func:`dump`."""
    return str(yaml.dump_all(documents, Dumper=_NoAliases, **options))
