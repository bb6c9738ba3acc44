"""The one YAML reader of the bot: PyYAML's SafeLoader, bounded, refusing repeated keys.

Plain `yaml.safe_load` trusts its input in two ways a runbook author (or whoever can
write the file) must not be able to exploit:

* aliases: a few hundred bytes of nested `&a`/`*a` expand to billions of nodes (the
  "billion laughs"); safe_load builds them as shared objects, but everything that walks
  the result afterwards (validation, rendering) walks every copy, for hours. So aliases
  are counted against a small budget, and the size the document would have with every
  alias expanded is bounded, as are its nesting depth and its length in bytes.
* repeated keys: safe_load keeps the last of two equal keys without a word, so a second
  `approvers:` or a second `prod:` silently replaces the first. A repeated key is
  refused with both lines (a `<<` merge may still be overridden: that is its purpose).

Every refusal is a RunbookError naming the file and line and saying what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1024 * 1024  # a runbook is a few dozen KiB; the shipped one is ~25 KiB
MAX_ALIASES = 100  # `*name` uses in one document (the shipped runbooks use none)
MAX_DEPTH = 64  # nesting of mappings and sequences, aliases expanded
MAX_NODES = 200_000  # nodes of the document with every alias expanded
MERGE_TAG = "tag:yaml.org,2002:merge"


class RunbookError(ValueError):
    """A runbook that cannot be used; the message says where and what to fix."""


def _line(node_or_mark: Any) -> int:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return int(mark.line) + 1 if mark is not None else 0


class BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader with an alias budget, a depth bound and duplicate-key refusal."""

    def __init__(self, stream: str, source: str = "<yaml>") -> None:
        super().__init__(stream)
        self.source = source
        self.aliases_seen = 0
        self.depth = 0

    def _refuse(self, line: int, problem: str) -> RunbookError:
        return RunbookError(f"{self.source}: line {line}: {problem}")

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases_seen += 1
            if self.aliases_seen > MAX_ALIASES:
                raise self._refuse(
                    _line(self.peek_event().start_mark),
                    f"more than {MAX_ALIASES} aliases (*name); write the values out or use "
                    "runbook vars and {placeholders} instead of YAML aliases",
                )
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self._refuse(
                    _line(self.peek_event().start_mark),
                    f"nested more than {MAX_DEPTH} levels deep; flatten the structure",
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class says so
                continue
            if first is None:
                seen[key] = _line(key_node)
            else:
                raise self._refuse(
                    _line(key_node),
                    f"key {key!r} is repeated (first at line {first}, again at line "
                    f"{_line(key_node)}); YAML would keep only the last: merge them into one",
                )
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: Node, source: str) -> None:
    """Refuses a document whose aliases expand beyond MAX_NODES nodes or MAX_DEPTH levels,
    or that refers to itself; each shared node is measured once."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth)
    open_nodes: set[int] = set()

    def measure(node: Node) -> tuple[int, int]:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in open_nodes:
            raise RunbookError(
                f"{source}: line {_line(node)}: an alias refers to the node that contains "
                "it (a recursive structure); write the value out"
            )
        if isinstance(node, ScalarNode):
            return (1, 0)
        open_nodes.add(id(node))
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        count, depth = 1, 0
        for child in children:
            c, d = measure(child)
            count += c
            depth = max(depth, d)
            if count > MAX_NODES:
                raise RunbookError(
                    f"{source}: line {_line(node)}: with its aliases expanded this document "
                    f"has more than {MAX_NODES} values (an alias bomb?); write it without "
                    "nested aliases"
                )
        result = (count, depth + 1)
        if result[1] > MAX_DEPTH:
            raise RunbookError(
                f"{source}: line {_line(node)}: with its aliases expanded this document is "
                f"nested more than {MAX_DEPTH} levels deep; flatten the structure"
            )
        open_nodes.discard(id(node))
        sizes[id(node)] = result
        return result

    measure(root)


def load_yaml(text: str | bytes, source: str = "<yaml>") -> Any:
    """One YAML document, parsed safely within the bounds above (None for an empty one)."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_BYTES:
        raise RunbookError(
            f"{source}: more than {MAX_BYTES} bytes, far beyond any runbook; "
            "is this the right file?"
        )
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    loader = BoundedSafeLoader(text, source)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise RunbookError(
                f"{source}: nested too deeply to read; flatten the structure"
            ) from None
        if root is None:
            return None
        _expanded_size(root, source)
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RunbookError(f"{source}:{where} not valid YAML: {problem}") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path) -> Any:
    """`load_yaml` of a file read as UTF-8; an unreadable file is a RunbookError too."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_BYTES + 1)  # never more than the bound into memory
    except OSError as exc:
        raise RunbookError(f"{p}: cannot read runbook: {exc.strerror or exc}") from None
    try:
        return load_yaml(data, str(p))
    except UnicodeDecodeError as exc:
        raise RunbookError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
