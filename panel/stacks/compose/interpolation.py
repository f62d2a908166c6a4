"""Variable interpolation in compose values, from the stack's environment.

`$$` is a literal `$`. An unset `${VAR}` or `$VAR` becomes the empty string with a warning per
variable, as in Compose (write `${VAR:-}` to say "empty when unset" and have no warning).
`${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
`${VAR:?message}` / `${VAR?message}` (refuse with the message), `${VAR:+other}` / `${VAR+other}`
(`other` when set) behave as in Compose; defaults may contain further `${…}`. Keys are never
interpolated, and nor are `x-` extension fields until a service uses them through an alias.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from panel.stacks.compose.errors import Issues
from panel.stacks.compose.loader import Node

_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
_BRACED = re.compile(r"([_A-Za-z][_A-Za-z0-9]*)(?:(:?[-?+])(.*))?", re.DOTALL)
FORMS = "${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+other}"


class InterpolationError(Exception):
    """A value whose variables cannot be substituted; the message says how to fix it."""


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing the `${` whose body starts at `start`, or -1."""
    depth, index = 1, start
    while index < len(text):
        if text.startswith("$$", index):
            index += 2
            continue
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def _braced(body: str, environment: Mapping[str, str], unset: set[str] | None = None) -> str:
    match = _BRACED.fullmatch(body)
    if not match:
        raise InterpolationError(f"invalid interpolation ${{{body}}}: use {FORMS}, "
                                 "or $$ for a literal $")
    name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
    value = environment.get(name)
    is_set = value is not None
    non_empty = is_set and value != ""
    if operator is None:
        if not is_set:
            if unset is not None:
                unset.add(name)
            return ""
        return str(value)
    if operator in (":-", "-"):
        use_default = not non_empty if operator == ":-" else not is_set
        return substitute(argument, environment, unset) if use_default else str(value)
    if operator in (":?", "?"):
        if not non_empty if operator == ":?" else not is_set:
            detail = substitute(argument, environment) if argument else \
                f"set {name} in the stack's environment"
            raise InterpolationError(f"variable {name} is required: {detail}")
        return str(value)
    use_other = non_empty if operator == ":+" else is_set
    return substitute(argument, environment, unset) if use_other else ""


def substitute(text: str, environment: Mapping[str, str], unset: set[str] | None = None) -> str:
    """`text` with its variables substituted; InterpolationError says what is wrong. The names
    of unset variables that became "" are added to `unset`."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$":
            out.append(char)
            index += 1
            continue
        following = text[index + 1:index + 2]
        if following == "$":
            out.append("$")
            index += 2
        elif following == "{":
            end = _closing_brace(text, index + 2)
            if end < 0:
                raise InterpolationError(f"unclosed ${{ in {text!r}: add the closing }}, "
                                         "or write $$ for a literal $")
            out.append(_braced(text[index + 2:end], environment, unset))
            index = end + 1
        else:
            match = _NAME.match(text, index + 1)
            if not match:
                raise InterpolationError(f"a lone $ in {text!r}: write $$ for a literal $, "
                                         f"or use {FORMS}")
            out.append(_braced(match.group(0), environment, unset))
            index = match.end()
    return "".join(out)


def interpolate(node: Node, environment: Mapping[str, str], issues: Issues,
                path: str = "", warnings: list[dict] | None = None) -> Node:
    """A copy of the tree with every string value interpolated (nodes may be shared through
    aliases, so nothing is changed in place). Each failure is added to `issues`; each unset
    variable that became "" to `warnings` ({path, line, column, message})."""
    if isinstance(node.value, dict):
        values = {}
        for key, child in node.value.items():
            child_path = f"{path}.{key}" if path else key
            values[key] = child if key.startswith("x-") else \
                interpolate(child, environment, issues, child_path, warnings)
        return Node(values, node.mark, node.key_marks)
    if isinstance(node.value, list):
        return Node([interpolate(child, environment, issues, f"{path}[{index}]", warnings)
                     for index, child in enumerate(node.value)], node.mark)
    if not isinstance(node.value, str) or "$" not in node.value:
        return node
    unset: set[str] = set()
    try:
        value = substitute(node.value, environment, unset)
    except InterpolationError as exc:
        issues.add(path, node.mark, str(exc))
        return node
    if warnings is not None:
        warnings += [{"path": path, "line": node.mark[0], "column": node.mark[1],
                      "message": f"variable {name} is not set: it was replaced by an empty "
                                 f"string (set it in the stack's environment, or write "
                                 f"${{{name}:-}} to mean empty)"} for name in sorted(unset)]
    uses_variables = "$" in node.value.replace("$$", "")
    return Node(value, node.mark, interpolated=uses_variables or node.interpolated)
