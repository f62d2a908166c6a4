"""The one authorisation choke point: who may do what, as data, and the functions that apply it.

Roles are held per team (Membership); a platform administrator (an active superuser) may do
everything. Every resource type declares its actions and, per action, the team roles allowed::

    register("stack", {"view": ANY_ROLE, "deploy": CHANGE, "logs": CHANGE}, path="project")

`path` is the ORM path from the model to its Project ("" for Project itself); `scope="team"`
makes it a path to a Team instead (teams, memberships), `scope="global"` means no owner (hosts,
images, users: `SIGNED_IN` = any signed-in user, `PLATFORM` = platform administrators only, a set
of roles = anyone holding one of them in some team). A new resource type plugs in by calling
`register` at import time (e.g. in its models module); nothing else changes.

Functions for views, the REST API and WebSocket consumers:

- `can(user, action, obj=None, token=None) -> bool` — may `user` do `action` ("container.stop")
  on `obj`? Without `obj`: in at least one project/team (e.g. "container.create" for a button).
  A read-only `token` allows only the resource's safe actions.
- `visible(user, queryset, action=None) -> QuerySet` — the rows of `queryset` on which `user`
  may do `action` (default "<kind>.view"); everything else is treated as non-existent (404).
- `projects_for(user, action)`, `teams_for(user, action)` — scopes where `action` is allowed
  (choices for a "project" field, the project switcher).
- `authorize(user, action, obj, actor, token=None)` — raise Http404 when `user` cannot even see
  `obj`, PermissionDenied (403) when they see it but may not do `action`; both are audited with
  outcome "denied". `deny_missing(...)` audits a lookup of an object outside the user's scope.
- `role_of(user, obj)` — the user's role on `obj` ("platform" for platform administrators).

Objects outside a user's teams answer 404, never 403, so their existence does not leak."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import Http404

from panel.access.models import ADMIN, AUDITOR, OPERATOR, ROLES, Project, Team

PLATFORM_ROLE = "platform"
ANY_ROLE = frozenset(ROLES)  # every member of the owning team
CHANGE = frozenset({ADMIN, OPERATOR})
ADMIN_ONLY = frozenset({ADMIN})
AUDIT = frozenset({ADMIN, AUDITOR})
SIGNED_IN = frozenset({"*"})  # global resources: any signed-in user
PLATFORM: frozenset[str] = frozenset()  # platform administrators only
SAFE_ACTIONS = frozenset({"view", "logs", "stats", "export", "history"})


@dataclass(frozen=True)
class Resource:
    """A resource type: its actions with the roles allowed, and where its owner is."""

    kind: str
    actions: Mapping[str, frozenset[str]]
    scope: str = "project"  # "project" | "team" | "global"
    path: str = "project"  # ORM path to the owning Project/Team ("" = the object itself)
    safe: frozenset[str] = SAFE_ACTIONS
    # Extra rows a user may see beyond the scoped ones (e.g. their own operations).
    extra: Callable[[Any, models.QuerySet], models.Q] | None = field(default=None, compare=False)


_RESOURCES: dict[str, Resource] = {}


def register(kind: str, actions: Mapping[str, frozenset[str]], *, scope: str = "project",
             path: str = "project", safe: Iterable[str] = SAFE_ACTIONS,
             extra: Callable[[Any, models.QuerySet], models.Q] | None = None) -> Resource:
    """Declare resource type `kind` (see the module docstring). Re-registering replaces it."""
    if scope not in ("project", "team", "global"):
        raise ValueError(f"scope {scope!r}: use project, team or global")
    unknown = {r for roles in actions.values() for r in roles} - set(ROLES) - {"*"}
    if unknown:
        raise ValueError(f"{kind}: unknown roles {sorted(unknown)}; roles are {ROLES}")
    resource = Resource(kind, dict(actions), scope, path, frozenset(safe), extra)
    _RESOURCES[kind] = resource
    return resource


def resources() -> dict[str, Resource]:
    """Every registered resource type (the role table, e.g. for the README and tests)."""
    return dict(_RESOURCES)


def split(action: str) -> tuple[Resource, str]:
    kind, _, verb = action.partition(".")
    resource = _RESOURCES.get(kind)
    if resource is None or verb not in resource.actions:
        known = sorted(f"{k}.{v}" for k, r in _RESOURCES.items() for v in r.actions)
        raise KeyError(f"unknown action {action!r}; known actions: {', '.join(known)}")
    return resource, verb


def roles_for(action: str) -> frozenset[str]:
    resource, verb = split(action)
    return resource.actions[verb]


def is_platform_admin(user: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False)
                and user.is_active and user.is_superuser)


def team_roles(user: Any) -> dict[int, str]:
    """{team id: role} of `user`, cached on the user object for the request."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return {}
    cached = getattr(user, "_berth_team_roles", None)
    if cached is None:
        from panel.access.models import Membership

        cached = dict(Membership.objects.filter(user=user).values_list("team_id", "role"))
        user._berth_team_roles = cached
    return cached


def forget(user: Any) -> None:
    """Drop the cached roles of `user` (after a membership change)."""
    if user is not None and hasattr(user, "_berth_team_roles"):
        del user._berth_team_roles


def _token_allows(token: Any, resource: Resource, verb: str) -> bool:
    return token is None or not getattr(token, "read_only", False) or verb in resource.safe


def _team_id_of(resource: Resource, obj: Any) -> int | None:
    """The id of the team owning `obj`, following `resource.path`."""
    parts = [p for p in resource.path.split("__") if p]
    if resource.scope == "team":
        if not parts:
            return obj.pk
        owner = obj
        for part in parts[:-1]:
            owner = getattr(owner, part, None)
            if owner is None:
                return None
        return getattr(owner, f"{parts[-1]}_id", None)
    owner = obj
    for part in parts:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return owner.team_id if isinstance(owner, Project) else None


def role_of(user: Any, obj: Any, kind: str | None = None) -> str | None:
    """The role `user` holds on `obj` ("platform" for platform administrators), or None."""
    if is_platform_admin(user):
        return PLATFORM_ROLE
    if obj is None:
        return None
    resource = _RESOURCES[kind or obj._meta.model_name]
    if resource.scope == "global":
        return None
    team_id = _team_id_of(resource, obj)
    return team_roles(user).get(team_id) if team_id is not None else None


def can(user: Any, action: str, obj: Any = None, token: Any = None) -> bool:
    """May `user` do `action` on `obj` (or somewhere, without `obj`)? See the module docstring."""
    resource, verb = split(action)
    if not _token_allows(token, resource, verb):
        return False
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if is_platform_admin(user):
        return True
    allowed = resource.actions[verb]
    if "*" in allowed:
        return True
    if resource.scope == "global" or obj is None:
        return any(role in allowed for role in team_roles(user).values())
    team_id = _team_id_of(resource, obj)
    if team_id is not None and team_roles(user).get(team_id) in allowed:
        return True
    if resource.extra is not None and getattr(obj, "pk", None) is not None:
        queryset = type(obj)._default_manager.filter(pk=obj.pk)
        return queryset.filter(resource.extra(user, queryset)).exists()
    return False


def teams_for(user: Any, action: str) -> models.QuerySet:
    """Teams in which `user` may do `action` (all teams for platform administrators)."""
    resource, verb = split(action)
    if is_platform_admin(user):
        return Team.objects.all()
    allowed = resource.actions[verb]
    ids = [team for team, role in team_roles(user).items() if role in allowed or "*" in allowed]
    return Team.objects.filter(pk__in=ids)


def projects_for(user: Any, action: str) -> models.QuerySet:
    """Projects in which `user` may do `action` (all projects for platform administrators)."""
    if is_platform_admin(user):
        return Project.objects.all()
    return Project.objects.filter(team__in=teams_for(user, action))


def visible(user: Any, queryset: models.QuerySet, action: str | None = None,
            token: Any = None) -> models.QuerySet:
    """Rows of `queryset` on which `user` may do `action` (default "<kind>.view")."""
    kind = queryset.model._meta.model_name
    resource, verb = split(action or f"{kind}.view")
    if not _token_allows(token, resource, verb) or user is None \
            or not getattr(user, "is_authenticated", False) or not user.is_active:
        return queryset.none()
    if is_platform_admin(user):
        return queryset
    allowed = resource.actions[verb]
    if "*" in allowed:
        return queryset
    if resource.scope == "global":
        return queryset if any(r in allowed for r in team_roles(user).values()) \
            else queryset.none()
    teams = [team for team, role in team_roles(user).items() if role in allowed]
    if resource.scope == "project":
        lookup = f"{resource.path}__team_id__in" if resource.path else "team_id__in"
    else:
        lookup = f"{resource.path}_id__in" if resource.path else "pk__in"
    condition = models.Q(**{lookup: teams})
    if resource.extra is not None:
        condition |= resource.extra(user, queryset)
    return queryset.filter(condition)


def _record_denied(actor: Any, action: str, obj: Any, **details: Any) -> None:
    from panel.audit.services import record_event

    if actor is None:
        return
    with transaction.atomic():
        record_event(actor, action, obj, outcome="denied", **details)


def deny_missing(actor: Any, action: str, obj: Any) -> None:
    """Audit an attempt on `obj`, which exists but is outside the user's scope (the caller
    answers 404, as for an object that does not exist)."""
    _record_denied(actor, action, obj, reason="outside the user's teams")


def refuse_read_only(actor: Any, action: str, obj: Any) -> None:
    """Refuse (audited) what a read-only token asked outside the safe methods."""
    _record_denied(actor, action, obj, reason="read-only token")
    raise PermissionDenied("this token is read-only")


def authorize(user: Any, action: str, obj: Any, actor: Any = None, token: Any = None) -> None:
    """Raise Http404 (cannot see `obj`) or PermissionDenied (sees it, may not do `action`);
    each refusal is audited (outcome "denied") when `actor` is given."""
    if can(user, action, obj, token):
        return
    resource, verb = split(action)
    view_action = f"{resource.kind}.view"
    if obj is not None and "view" in resource.actions and resource.scope != "global" \
            and not can(user, view_action, obj, token):
        deny_missing(actor, action, obj)
        raise Http404(f"no {resource.kind} matches the given query")
    reason = "read-only token" if not _token_allows(token, resource, verb) else \
        f"role {role_of(user, obj, resource.kind) or 'none'} may not {verb}"
    _record_denied(actor, action, obj, reason=reason)
    raise PermissionDenied(f"you may not {verb} this {resource.kind}: {reason}")


def authorize_create(user: Any, action: str, project: Any, actor: Any = None,
                     token: Any = None) -> None:
    """Like `authorize` for creating a resource in `project` (checked on the project)."""
    resource, verb = split(action)
    if not _token_allows(token, resource, verb):
        refuse_read_only(actor, action, project)
    if project is None:
        if is_platform_admin(user):
            return
        _record_denied(actor, action, None, reason="no project")
        raise PermissionDenied("only platform administrators create objects outside a project")
    if is_platform_admin(user) or team_roles(user).get(project.team_id) in roles_for(action):
        return
    if project.team_id not in team_roles(user):
        deny_missing(actor, action, project)
        raise Http404("no project matches the given query")
    _record_denied(actor, action, project,
                   reason=f"role {team_roles(user).get(project.team_id)} may not {verb}")
    raise PermissionDenied(f"you may not {verb} a {resource.kind} in project {project.name}")


# --- the role table -----------------------------------------------------------------------------

def _own_operations(user: Any, queryset: models.QuerySet) -> models.Q:
    return models.Q(project__isnull=True, actor_name=user.get_username())


WORKLOAD_ACTIONS = {
    "view": ANY_ROLE, "history": ANY_ROLE, "create": CHANGE, "update": CHANGE, "deploy": CHANGE,
    "start": CHANGE, "stop": CHANGE, "restart": CHANGE, "kill": CHANGE, "rollback": CHANGE,
    "remove": CHANGE, "logs": CHANGE, "stats": CHANGE, "secrets": ADMIN_ONLY,
}

register("team", {"view": ANY_ROLE, "change": ADMIN_ONLY, "members": ADMIN_ONLY,
                  "remove": PLATFORM, "create": PLATFORM}, scope="team", path="")
register("project", {"view": ANY_ROLE, "create": ADMIN_ONLY, "change": ADMIN_ONLY,
                     "remove": ADMIN_ONLY}, path="")
register("container", WORKLOAD_ACTIONS)
register("volume", {"view": ANY_ROLE, "history": ANY_ROLE, "create": CHANGE, "remove": CHANGE})
register("network", {"view": ANY_ROLE, "history": ANY_ROLE, "create": CHANGE, "remove": CHANGE})
register("operation", {"view": ANY_ROLE}, extra=_own_operations)
register("auditevent", {"view": AUDIT, "export": AUDIT, "verify": PLATFORM}, scope="team",
         path="team")
register("host", {"view": SIGNED_IN, "change": PLATFORM}, scope="global")
register("image", {"view": SIGNED_IN, "pull": CHANGE}, scope="global")
register("user", {"view": PLATFORM, "create": PLATFORM, "change": PLATFORM, "remove": PLATFORM},
         scope="global")
# Tokens: every signed-in user manages their own (the API filters by owner).
register("apitoken", {"view": SIGNED_IN, "create": SIGNED_IN, "revoke": SIGNED_IN},
         scope="global", safe=("view",))
