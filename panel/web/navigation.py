"""The main navigation shows each person only the pages their roles open (a template context
processor): one query for the roles, cached on the user for the request."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from panel.access import policy


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav": {}}
    member = policy.is_platform_admin(user) or bool(policy.team_roles(user))
    return {"nav": {
        "workloads": member,  # containers, stacks, volumes, networks, operations
        "deployments": policy.can(user, "stack.view"),
        "teams": policy.can(user, "team.view"),
        "audit": policy.can(user, "auditevent.view"),
    }}
