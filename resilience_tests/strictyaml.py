"""Reading YAML that cannot be abused: no aliases, no duplicate keys, a size limit.

Experiments are small hand-written files. An alias (``*name``) lets a 700-byte file expand into gigabytes
(the "billion laughs"), and a duplicate key silently drops one of two values; both are refused with the
line and column. Anchors without aliases are harmless and allowed.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

MAX_BYTES = 1_000_000


class YamlProblem(Exception):
    """The text is not acceptable YAML; ``str()`` is one line with the position."""


class _StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise ConstructorError(None, None, "aliases (*name) are not allowed; write the value out",
                                   event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: the base class says so
            if duplicate:
                raise ConstructorError(None, None, f"duplicate key {key!r} (each key once per mapping)",
                                       key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """Parse ``text`` (one document). Raises YamlProblem naming the line, column and problem."""
    if len(text.encode()) > MAX_BYTES:
        raise YamlProblem(f"{len(text.encode()):,} bytes; experiments are at most {MAX_BYTES:,} bytes")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"at line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlProblem(f"malformed YAML {where}{problem}"[:300]) from None
