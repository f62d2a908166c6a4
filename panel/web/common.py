"""What every dashboard view shares: sign-in check, the acting person, object lookup through
the access policy (404 outside the user's teams), and turning service errors into messages."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.http import urlencode

from panel.access import policy
from panel.audit.services import Actor

M = TypeVar("M", bound=Model)


# What a password-only session of someone whose team requires two-factor but who has no
# authenticator yet may reach: enrolling one (the sign-in page sends them there).
ENROLMENT_PAGES = frozenset({"web-account", "web-account-totp", "web-account-totp-confirm"})


def _must_enrol(request: HttpRequest) -> bool:
    from django_otp import user_has_device

    match = request.resolver_match
    return bool(match and match.url_name in ENROLMENT_PAGES) \
        and not user_has_device(request.user, confirmed=True)


def signed_in(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Pages for signed-in users only (two-factor verified where required, or enrolling the
    authenticator their team requires); others are sent to the sign-in page of panel.access."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = request.user
        ok = user.is_authenticated and user.is_active
        if ok:
            from panel.access.services import two_factor_required

            verified = getattr(user, "is_verified", lambda: False)()
            ok = verified or not two_factor_required(user) or _must_enrol(request)
        if not ok:
            from django_otp import user_has_device

            if user.is_authenticated and user.is_active \
                    and not user_has_device(user, confirmed=True):
                return HttpResponseRedirect(reverse("web-account") + "?enrol=1")
            return HttpResponseRedirect(f"{settings.LOGIN_URL}?"
                                        f"{urlencode({'next': request.get_full_path()})}")
        return view(request, *args, **kwargs)

    return wrapper


def actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, "web")


def get_visible(request: HttpRequest, queryset: QuerySet[M], action: str, **lookup: Any) -> M:
    """The object of `queryset` matching `lookup` on which the user may do `action`: 404 when
    it does not exist or is outside their teams, 403 when they see it but may not act."""
    obj = get_object_or_404(queryset, **lookup)
    policy.authorize(request.user, action, obj, actor(request))
    return obj


def audit_refused_project(request: HttpRequest, action: str) -> None:
    """Forms offer only the projects where the user may `action` and refuse any other posted
    id as an invalid choice; such a post is a denied attempt all the same, audited as the API
    does (reason "outside the user's teams", or the role)."""
    from panel.access.models import Project

    value = request.POST.get("project", "") if request.method == "POST" else ""
    project = Project.objects.filter(pk=int(value)).first() if value.isdigit() else None
    if project is None or policy.projects_for(request.user, action).filter(pk=project.pk).exists():
        return
    with contextlib.suppress(Http404, PermissionDenied):
        policy.authorize_create(request.user, action, project, actor(request))


def error_text(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, dict):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
    return str(exc)


def human_bytes(value: int | float | None) -> str:
    size = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
