"""YAML text -> a tree of `Node`s that remember where each value and each key was written.

PyYAML's composer gives every node its position; this module turns the node graph into plain
values wrapped in `Node`, with the YAML 1.2 core schema that Compose itself uses (`no`, `on`,
`yes` are strings, `22:22` is a string, not a base-60 number, `0o17` is octal). Anchors, aliases
and merge keys (`<<: *defaults`, `<<: [*a, *b]`) are resolved here. Duplicate keys, tags other
than the core ones, recursive aliases and alias "bombs" are refused with their position.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from panel.stacks.compose.errors import ComposeError, Issue, Issues, Mark

MAX_TEXT = 1024 * 1024  # characters of compose text
MAX_NODES = 100_000  # values after alias expansion: a larger document is an alias bomb

_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
MAP, SEQ, MERGE = _TAG + "map", _TAG + "seq", _TAG + "merge"


class _Core12Resolver(BaseResolver):
    """Implicit types of the YAML 1.2 core schema (plus `<<` merge keys)."""


for _tag, _pattern, _first in (
    (BOOL, r"true|True|TRUE|false|False|FALSE", "tTfF"),
    (NULL, r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    (INT, r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (FLOAT, r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)", "-+0123456789."),
    (MERGE, r"<<", "<"),
):
    _Core12Resolver.add_implicit_resolver(_tag, re.compile(rf"^(?:{_pattern})$"), list(_first))


class _Loader(Reader, Scanner, Parser, Composer, _Core12Resolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Core12Resolver.__init__(self)


@dataclass(eq=False)
class Node:
    """A value and where it was written. `value` is a scalar (str, int, float, bool, None), a
    list of Nodes or a dict of key -> Node; `key_marks` holds the position of each key of a
    mapping; `interpolated` is set when a ${VAR} was substituted into this scalar; `source` is
    a scalar's text as written (0440 and 0o440 are both the number 440/288 once read)."""

    value: Any
    mark: Mark
    key_marks: dict[str, Mark] = field(default_factory=dict)
    interpolated: bool = False
    source: str = ""

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_seq(self) -> bool:
        return isinstance(self.value, list)

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.value, dict | list)

    def key_mark(self, key: str) -> Mark:
        return self.key_marks.get(key, self.mark)

    def plain(self) -> Any:
        """The value without positions (for messages and tests)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def _mark(node: yaml.Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _TooLarge(Exception):
    pass


class _Converter:
    """Walks PyYAML's node graph (aliases are shared nodes) into `Node`s, expanding aliases."""

    def __init__(self, issues: Issues) -> None:
        self.issues = issues
        self.count = 0
        self.active: set[int] = set()

    def convert(self, node: yaml.Node, path: str) -> Node:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        if id(node) in self.active:
            self.issues.add(path, _mark(node), "this alias refers to the value that contains it "
                                               "(a recursive anchor); Berth needs a finite tree")
            return Node(None, _mark(node))
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                if node.tag != SEQ:
                    self._bad_tag(node, path)
                return Node([self.convert(item, f"{path}[{index}]")
                             for index, item in enumerate(node.value)], _mark(node))
            assert isinstance(node, ScalarNode)
            return Node(self._scalar(node, path), _mark(node), source=node.value)
        finally:
            self.active.discard(id(node))

    def _bad_tag(self, node: yaml.Node, path: str) -> None:
        self.issues.add(path, _mark(node), f"the YAML tag {node.tag} is not supported: Berth "
                                           "reads plain YAML (use anchors, aliases and `<<:` "
                                           "merge keys with x- fields to reuse values)")

    def _scalar(self, node: ScalarNode, path: str) -> Any:
        text, tag = node.value, node.tag
        try:
            if tag == STR:
                return text
            if tag == NULL:
                return None
            if tag == BOOL:
                return text.lower() == "true"
            if tag == INT:
                if text.startswith("0o"):
                    return int(text[2:], 8)
                return int(text, 16) if text.startswith("0x") else int(text)
            if tag == FLOAT:
                lowered = text.lower()
                if lowered.endswith(".inf"):
                    return -math.inf if lowered.startswith("-") else math.inf
                return math.nan if lowered == ".nan" else float(text)
        except ValueError:
            self.issues.add(path, _mark(node), f"{text!r} is not a valid {tag.rsplit(':', 1)[-1]}")
            return text
        self._bad_tag(node, path)
        return text

    def _key(self, node: yaml.Node, path: str) -> str | None:
        if not isinstance(node, ScalarNode):
            self.issues.add(path, _mark(node), "a mapping key must be a plain name, not a list "
                                               "or mapping")
            return None
        if node.tag not in (STR, NULL, BOOL, INT, FLOAT):
            self._bad_tag(node, path)
        return str(node.value)

    def _mapping(self, node: MappingNode, path: str) -> Node:
        if node.tag != MAP:
            self._bad_tag(node, path)
        own: dict[str, Node] = {}
        own_marks: dict[str, Mark] = {}
        merged: dict[str, Node] = {}
        merged_marks: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                sources = value_node.value if isinstance(value_node, SequenceNode) \
                    else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        self.issues.add(path, _mark(source), "a merge key `<<:` takes a "
                                        "mapping or a list of mappings (e.g. <<: *defaults)")
                        continue
                    converted = self.convert(source, path)
                    for key, child in converted.value.items():
                        # earlier sources win over later ones, explicit keys over all of them
                        if key not in merged:
                            merged[key] = child
                            merged_marks[key] = converted.key_mark(key)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            child_path = f"{path}.{key}" if path else key
            if key in own:
                line = own_marks[key][0]
                self.issues.add(child_path, _mark(key_node),
                                f"duplicate key {key!r}: it is already defined at line {line}")
            own[key] = self.convert(value_node, child_path)
            own_marks[key] = _mark(key_node)
        values = {**merged, **own}
        return Node(values, _mark(node), {**merged_marks, **own_marks})


def load(text: str) -> Node:
    """Parse compose text into a `Node` tree; ComposeError lists what is malformed."""
    issues = Issues()
    if not isinstance(text, str):
        raise ComposeError([Issue(1, 1, "", "the compose file must be text")])
    if len(text) > MAX_TEXT:
        raise ComposeError([Issue(1, 1, "", f"the compose file is larger than {MAX_TEXT} "
                                            "characters")])
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"malformed YAML: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            message += f" ({exc.context}"
            if exc.context_mark and mark and exc.context_mark.line != mark.line:
                message += f" that starts at line {exc.context_mark.line + 1}"
            message += ")"
        if "'\\t'" in message:
            message += "; indent with spaces, not tabs"
        raise ComposeError([Issue(line, column, "", message)]) from None
    except yaml.YAMLError as exc:  # e.g. a character YAML does not allow
        raise ComposeError([Issue(1, 1, "", f"malformed YAML: {exc}")]) from None
    if root is None:
        raise ComposeError([Issue(1, 1, "", "the compose file is empty: it needs a services: "
                                            "mapping")])
    try:
        tree = _Converter(issues).convert(root, "")
    except _TooLarge:
        raise ComposeError([Issue(1, 1, "", f"the file expands to more than {MAX_NODES} values "
                                            "through aliases; refused")]) from None
    issues.raise_if_any()
    return tree
