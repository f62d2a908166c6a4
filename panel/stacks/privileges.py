"""A stack's services checked against the container policy of the person deploying it
(panel/workloads/privileges.py), with each refusal at the line of the compose key it came from."""

from __future__ import annotations

from typing import Any

from panel.stacks.compose import StackSpec
from panel.stacks.compose.loader import Node, load
from panel.stacks.resolve import ComposeInvalid
from panel.workloads.privileges import check_privileges
from runtime.protocol import field_info


def _compose_key(field: str) -> str:
    try:
        return field_info(field).compose or field
    except KeyError:
        return field


def _position(root: Node | None, service: str, key: str) -> tuple[int, int]:
    """Line and column of `services.<service>.<key>` (of the service, or 1:1, when the key
    came from elsewhere, e.g. an extends: or an anchor)."""
    if root is None or not root.is_map or "services" not in root.value:
        return 1, 1
    services = root.value["services"]
    if not services.is_map or service not in services.value:
        return services.mark
    node = services.value[service]
    if node.is_map and key in node.value:
        return node.key_mark(key)
    return services.key_mark(service)


def check_stack_privileges(actor: Any, project: Any | None, spec: StackSpec,
                           compose: str) -> None:
    """Raise ComposeInvalid listing every field of every service that the person behind
    `actor` may not use in `project` (nothing for the panel's own actors)."""
    problems = {name: check_privileges(actor, project, service.container)
                for name, service in sorted(spec.services.items())}
    if not any(problems.values()):
        return
    try:
        root: Node | None = load(compose)
    except Exception:  # the text was parsed already; positions are a courtesy
        root = None
    issues = []
    for service, fields in problems.items():
        for field, messages in fields.items():
            key = _compose_key(field)
            line, column = _position(root, service, key)
            issues += [{"path": f"services.{service}.{key}", "line": line, "column": column,
                        "message": message} for message in messages]
    raise ComposeInvalid(issues)


def may_bind_host_paths(actor_is_admin: bool, project: Any | None) -> bool:
    """Whether the compose front end should accept absolute bind mounts for parsing: for a
    platform administrator, or a team with allowed host paths (the check above then refuses
    paths outside them)."""
    return actor_is_admin or bool(project is not None and project.team.host_paths)
