"""How the REST API applies the access policy (panel/access/policy.py), in one place.

- `SignedIn` (the default permission): an active signed-in user; a read-only token may only use
  GET, HEAD and OPTIONS (a refused write is audited).
- `PlatformAdmin`: platform administrators only (users).
- `Scoped`: a viewset mixin for a resource kind. Lists hold what the user may view; an object
  outside the user's teams answers 404 (audited when it exists); an action the user's role does
  not allow answers 403 (audited). Each viewset names its kind and maps DRF actions to policy
  verbs (`verbs`)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from panel.access import policy
from panel.access.models import ApiToken
from panel.audit.services import Actor

READ_ONLY_TOKEN = "this API token is read-only: it allows GET, HEAD and OPTIONS only"


def token_of(request: Request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


def actor_of(request: Request) -> Actor:
    return Actor.from_request(request, "api")


class SignedIn(BasePermission):
    message = "sign in, or send an API token (Authorization: Bearer …)"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        token = token_of(request)
        if token is not None and token.read_only and request.method not in SAFE_METHODS:
            self.message = READ_ONLY_TOKEN
            kind = getattr(view, "resource", "api")
            policy._record_denied(actor_of(request), f"{kind}.{getattr(view, 'action', '')}",
                                  None, reason="read-only token", method=request.method,
                                  path=request.path)
            return False
        return True


class PlatformAdmin(SignedIn):
    message = "only platform administrators may do this"

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if policy.is_platform_admin(request.user):
            return True
        kind = getattr(view, "resource", "api")
        policy._record_denied(actor_of(request), f"{kind}.{getattr(view, 'action', '')}", None,
                              reason="not a platform administrator", path=request.path)
        return False


def find(queryset: QuerySet, value: str, name_field: str = "name") -> Any:
    """The row of `queryset` with id `value` (digits) or that name, or None."""
    if value.isdigit():
        return queryset.filter(pk=int(value)).first()
    if not name_field:
        return None
    return queryset.filter(**{name_field: value}).first()


class Scoped:
    """Viewset mixin; set `resource` (policy kind) and implement `base_queryset()`."""

    resource = ""
    name_field = "name"
    verbs: dict[str, str] = {}
    default_verbs = {"list": "view", "retrieve": "view", "create": "create",
                     "destroy": "remove", "update": "change", "partial_update": "change"}
    # set by DRF's view classes this is mixed into (typed there)
    request: Any
    kwargs: dict[str, Any]
    action: Any

    def base_queryset(self) -> QuerySet:
        raise NotImplementedError

    def verb(self) -> str:
        name = self.action or "list"
        return self.verbs.get(name) or self.default_verbs.get(name) or name

    def policy_action(self) -> str:
        return f"{self.resource}.{self.verb()}"

    def token(self) -> ApiToken | None:
        return token_of(self.request)

    def actor(self) -> Actor:
        return actor_of(self.request)

    def scoped(self, queryset: QuerySet) -> QuerySet:
        return policy.visible(self.request.user, queryset, f"{self.resource}.view",
                              self.token())

    def get_queryset(self) -> QuerySet:
        return self.scoped(self.base_queryset())

    def get_object(self) -> Any:  # the row of the viewset's model
        value = str(self.kwargs.get("pk", ""))
        obj = find(self.get_queryset(), value, self.name_field)
        if obj is None:
            hidden = find(self.base_queryset(), value, self.name_field)
            if hidden is not None:
                policy.deny_missing(self.actor(), self.policy_action(), hidden)
            raise Http404(f"no {self.resource} {value!r}")
        policy.authorize(self.request.user, self.policy_action(), obj, self.actor(),
                         self.token())
        return obj


def project_for_create(request: Request, value: Any, action: str) -> Any:
    """The project a new object goes into, from the request's `project` (id or name).

    Without one: the user's only project where `action` is allowed, or none for platform
    administrators (then only they see it). A project outside the user's teams is reported as
    unknown (400, audited), one where their role may not `action` answers 403 (audited)."""
    from panel.access.models import Project
    from panel.workloads.spec import ValidationFailed

    user, actor, token = request.user, actor_of(request), token_of(request)
    allowed = policy.projects_for(user, action)
    if value in (None, ""):
        if policy.is_platform_admin(user):
            return None
        choices = list(allowed[:2])
        if len(choices) == 1:
            policy.authorize_create(user, action, choices[0], actor, token)
            return choices[0]
        names = ", ".join(allowed.values_list("name", flat=True)[:20])
        if not choices:
            policy.authorize_create(user, action, None, actor, token)
        raise ValidationFailed({"project": [f"required: one of your projects ({names})"]})
    project = find(Project.objects.select_related("team"), str(value))
    if project is None or not policy.can(user, "project.view", project):
        if project is not None:
            policy.deny_missing(actor, action, project)
        names = ", ".join(allowed.values_list("name", flat=True)[:20]) or "none"
        raise ValidationFailed({"project": [f"unknown project {value!r}: your projects are "
                                            f"{names}"]})
    policy.authorize_create(user, action, project, actor, token)
    return project
