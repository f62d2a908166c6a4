"""Typed reading of `Node`s: each getter returns the value or None, after adding an issue that
names the path and position and says what is allowed. Strings that came from `${VAR}`
interpolation are converted to numbers and booleans where those are expected, as Compose does."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from panel.stacks.compose.errors import Issues, Mark
from panel.stacks.compose.loader import Node
from runtime.containers import options as opts
from runtime.errors import InvalidArgument

_INTEGER = re.compile(r"[-+]?[0-9]+")


@dataclass
class Context:
    """What every check needs: where problems go, and what the caller allows."""

    issues: Issues = field(default_factory=Issues)
    allow_bind_mounts: bool = False
    environment: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)  # the stack's directory (files.py)
    secret_names: frozenset[str] = frozenset()  # environment names whose values are secrets

    def error(self, path: str, mark: Mark, message: str) -> None:
        self.issues.add(path, mark, message)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def mapping(ctx: Context, node: Node, path: str, example: str,
            null_is_empty: bool = False) -> dict[str, Node] | None:
    """The entries of a mapping node; `example` shows the expected shape in the message."""
    if node.value is None and null_is_empty:
        return {}
    if not node.is_map:
        ctx.error(path, node.mark, f"must be a mapping (e.g. {example}), not "
                                   f"{describe(node.plain())}")
        return None
    return node.value


def check_keys(ctx: Context, node: Node, path: str, allowed: Iterable[str],
               refused: Mapping[str, str] | None = None, extensions: bool = True) -> None:
    """Refuse every key that is neither allowed nor an x- extension: with the specific advice
    in `refused`, or with the list of allowed keys."""
    if not node.is_map:
        return
    allowed = list(allowed)
    for key, child in node.value.items():
        if key in allowed or (extensions and key.startswith("x-")):
            continue
        if child.interpolated and child.value == "":  # `platform: ${X:-}`: nothing is asked
            continue
        advice = (refused or {}).get(key)
        if advice is None:
            advice = f"unknown key {key!r}: allowed here are {', '.join(allowed)}" + \
                (" and x- extension fields" if extensions else "")
        ctx.error(join(path, key), node.key_mark(key), advice)


def string(ctx: Context, node: Node, path: str, numbers: bool = False,
           empty: bool = True) -> str | None:
    """A string; `numbers` also takes an integer or decimal and returns its text."""
    value = node.value
    if isinstance(value, str):
        if not empty and not value.strip():
            ctx.error(path, node.mark, "must not be empty")
            return None
        return value
    if numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    ctx.error(path, node.mark, f"must be a string, not {describe(value)}" +
              (" (quote it)" if isinstance(value, bool | int | float) else ""))
    return None


def integer(ctx: Context, node: Node, path: str, minimum: int | None = None) -> int | None:
    value = node.value
    if isinstance(value, str) and node.interpolated and _INTEGER.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.error(path, node.mark, f"must be a whole number, not {describe(node.value)}")
        return None
    if minimum is not None and value < minimum:
        ctx.error(path, node.mark, f"must be at least {minimum}, not {value}")
        return None
    return value


def size(ctx: Context, node: Node, path: str, example: str = "256m") -> int | str | None:
    """A size as compose writes it (bytes, or "64m"); its value is checked by the container
    validator, which names what is allowed."""
    if isinstance(node.value, bool) or not isinstance(node.value, int | str):
        ctx.error(path, node.mark, f"must be a size such as {example}, not "
                                   f"{describe(node.value)}")
        return None
    return node.value


def boolean(ctx: Context, node: Node, path: str) -> bool | None:
    value = node.value
    if isinstance(value, str) and node.interpolated and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        ctx.error(path, node.mark, f"must be true or false, not {describe(value)}")
        return None
    return value


def string_list(ctx: Context, node: Node, path: str, example: str) -> list[str] | None:
    if not node.is_seq:
        ctx.error(path, node.mark, f"must be a list of strings (e.g. {example}), not "
                                   f"{describe(node.plain())}")
        return None
    result = []
    for index, item in enumerate(node.value):
        text = string(ctx, item, join(path, index))
        if text is None:
            return None
        result.append(text)
    return result


def duration(ctx: Context, node: Node, path: str) -> int | None:
    """A Go-style duration ("1m30s", "10s", "500ms") or a number of seconds; nanoseconds."""
    value = node.value
    if isinstance(value, bool) or not isinstance(value, str | int | float) or (
            isinstance(value, float) and not math.isfinite(value)):
        ctx.error(path, node.mark, f"must be a duration such as 30s, 1m30s or 500ms, not "
                                   f"{describe(value)}")
        return None
    try:
        nanoseconds = opts.parse_duration(value, path.rsplit(".", 1)[-1])
    except InvalidArgument as exc:
        ctx.error(path, node.mark, str(exc))
        return None
    if nanoseconds < 0:
        ctx.error(path, node.mark, f"must not be negative, not {value!r}")
        return None
    return nanoseconds


def text_value(value: Any) -> str | None:
    """An environment or label value as text: numbers as written, booleans as true/false."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Entry:
    """One entry of a key/value section (environment, labels): value None = given bare."""

    key: str
    value: str | None
    mark: Mark
    path: str


def key_values(ctx: Context, node: Node, path: str, example_key: str) -> list[Entry] | None:
    """`environment`/`labels` as a mapping {K: V} or a list ["K=V", "K"]."""
    entries: list[Entry] = []
    if node.is_map:
        for key, child in node.value.items():
            child_path = join(path, key)
            if not child.is_scalar:
                ctx.error(child_path, child.mark, f"must be a string, not "
                                                  f"{describe(child.plain())}")
                continue
            entries.append(Entry(key, text_value(child.value), node.key_mark(key), child_path))
        return entries
    if node.is_seq:
        for index, item in enumerate(node.value):
            text = string(ctx, item, join(path, index))
            if text is None:
                continue
            key, sep, value = text.partition("=")
            if not key:
                ctx.error(join(path, index), item.mark, f"{text!r} has no name: use "
                                                        f"{example_key}=VALUE")
                continue
            entries.append(Entry(key, value if sep else None, item.mark, join(path, index)))
        return entries
    ctx.error(path, node.mark, f"must be a mapping ({example_key}: value) or a list "
                               f"(- {example_key}=value), not {describe(node.plain())}")
    return None
