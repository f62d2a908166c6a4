"""The permission matrix, generated: every URL pattern of the project × every persona × the
methods the pattern serves must allow or deny exactly as the role table (README, "Roles") says.

`ROUTES` maps each URL name to the object it is tried on and, per method, the action it needs;
`ROLE_TABLE` lists who may do each action, written from the README independently of
panel/access/policy.py. A URL pattern without an entry in ROUTES fails the test (add one when
you add a page or endpoint; WebSocket consumers get entries the same way when they appear).

Outcomes: allowed = anything but 401/403/404/405 and no server error; denied = 403 when the
persona can see the object (or for a list/create route), 404 when it cannot (other teams'
objects, and kinds the role may not view); anonymous = 401 on the API."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from panel.access import services as access
from panel.audit.models import AuditEvent
from panel.audit.services import Actor
from panel.workloads import services as workloads

pytestmark = pytest.mark.django_db

PERSONAS = ("platform", "admin", "operator", "viewer", "auditor", "other", "anonymous",
            "ro_token")
EVERY = {"platform", "admin", "operator", "viewer", "auditor"}
CHANGE = {"platform", "admin", "operator"}
ADMIN = {"platform", "admin"}
AUDIT = {"platform", "admin", "auditor"}
PLATFORM = {"platform"}
SIGNED_IN = EVERY | {"other"}
PUBLIC = SIGNED_IN | {"anonymous"}

# Who may do what (README "Roles"); "other" is an admin of another team.
ROLE_TABLE: dict[str, set[str]] = {
    **{f"container.{verb}": CHANGE for verb in (
        "create", "start", "stop", "restart", "kill", "remove", "logs", "stats")},
    "container.view": EVERY, "container.secrets": ADMIN,
    "volume.view": EVERY, "volume.create": CHANGE, "volume.remove": CHANGE,
    "network.view": EVERY, "network.create": CHANGE, "network.remove": CHANGE,
    "operation.view": EVERY,
    "project.view": EVERY, "project.create": ADMIN, "project.change": ADMIN,
    "project.remove": ADMIN,
    "team.view": EVERY, "team.change": ADMIN, "team.members": ADMIN,
    "team.create": PLATFORM, "team.remove": PLATFORM,
    "auditevent.view": AUDIT, "auditevent.export": AUDIT,
    "host.view": SIGNED_IN, "image.view": SIGNED_IN, "image.pull": CHANGE | {"other"},
    "user.view": PLATFORM, "user.create": PLATFORM, "user.change": PLATFORM,
    "user.remove": PLATFORM,
    "own.view": SIGNED_IN, "own.change": SIGNED_IN,  # your account and your own tokens
    "public": PUBLIC,
}

# URL name -> {"obj": what the kwargs point at, METHOD: action[, body]}
ROUTES: dict[str, dict[str, Any]] = {
    "overview": {"GET": "public"},
    "healthz": {"GET": "public"},
    "login": {"GET": "public"},
    "logout": {"POST": "public"},
    "api-root": {"GET": "own.view"},
    "schema": {"GET": "own.view"},
    "api-docs": {"GET": "own.view"},
    "me": {"GET": "own.view"},
    "me-totp": {"POST": "own.change", "DELETE": "own.change"},
    "me-totp-confirm": {"POST": ("own.change", {"code": "000000"})},
    "host-list": {"GET": "host.view"},
    "host-detail": {"obj": "host", "GET": "host.view"},
    "image-list": {"GET": "image.view", "POST": ("image.pull", {"reference": "alpine:3"})},
    "image-detail": {"obj": "image", "GET": "image.view"},
    "container-list": {"GET": "container.view", "POST": (
        "container.create", {"image": "busybox", "project": "alpha"})},
    "container-detail": {"obj": "container", "GET": "container.view",
                         "DELETE": "container.remove"},
    **{f"container-{verb}": {"obj": "container", "POST": f"container.{verb}"}
       for verb in ("start", "stop", "restart", "kill")},
    **{f"container-{verb}": {"obj": "container", "GET": f"container.{verb}"}
       for verb in ("logs", "stats", "secrets")},
    "volume-list": {"GET": "volume.view", "POST": (
        "volume.create", {"name": "v2", "project": "alpha"})},
    "volume-detail": {"obj": "volume", "GET": "volume.view", "DELETE": "volume.remove"},
    "network-list": {"GET": "network.view", "POST": (
        "network.create", {"name": "n2", "project": "alpha"})},
    "network-detail": {"obj": "network", "GET": "network.view", "DELETE": "network.remove"},
    "operation-list": {"GET": "operation.view"},
    "operation-detail": {"obj": "operation", "GET": "operation.view"},
    "team-list": {"GET": "team.view", "POST": ("team.create", {"name": "gamma"})},
    "team-detail": {"obj": "team", "GET": "team.view",
                    "PATCH": ("team.change", {"description": "x"}), "DELETE": "team.remove"},
    "team-members": {"obj": "team", "GET": "team.view",
                     "POST": ("team.members", {"username": "newbie", "role": "viewer"})},
    "team-member": {"obj": "member", "PATCH": ("team.members", {"role": "auditor"}),
                    "DELETE": "team.members"},
    "project-list": {"GET": "project.view", "POST": (
        "project.create", {"team": "a-team", "name": "beta"})},
    "project-detail": {"obj": "project", "GET": "project.view",
                       "PATCH": ("project.change", {"description": "x"}),
                       "DELETE": "project.remove"},
    "user-list": {"GET": "user.view", "POST": (
        "user.create", {"username": "carl", "password": "a long enough passphrase"})},
    "user-detail": {"obj": "user", "GET": "user.view",
                    "PATCH": ("user.change", {"email": "v@example.org"}),
                    "DELETE": "user.remove"},
    "apitoken-list": {"GET": "own.view", "POST": ("own.change", {"name": "ci"})},
    "apitoken-detail": {"obj": "own_token", "GET": "own.view", "DELETE": "own.change"},
    "auditevent-list": {"GET": "auditevent.view"},
    "auditevent-detail": {"obj": "event", "GET": "auditevent.view"},
}
# Object kinds each persona can see (else: 404 on object routes); "own" objects are per persona.
VISIBLE = {"container": EVERY, "volume": EVERY, "network": EVERY, "operation": EVERY,
           "project": EVERY, "team": EVERY, "member": EVERY, "event": AUDIT,
           "host": SIGNED_IN, "image": SIGNED_IN, "own_token": SIGNED_IN,
           "user": SIGNED_IN}  # users are not team objects: non-admins get 403, not 404


def url_patterns() -> dict[str, str]:
    """Every named URL pattern of the project (format-suffix variants folded in)."""
    found: dict[str, str] = {}

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                if "(?P<format>" in route:
                    continue
                assert pattern.name, f"URL pattern {route!r} has no name: name it"
                found[pattern.name] = route

    walk(get_resolver().url_patterns, "")
    return found


def test_every_url_pattern_has_an_entry_in_the_matrix():
    patterns = url_patterns()
    missing = sorted(set(patterns) - set(ROUTES))
    assert not missing, f"URL patterns without an entry in ROUTES: " \
                        f"{[(n, patterns[n]) for n in missing]}"
    stale = sorted(set(ROUTES) - set(patterns))
    assert not stale, f"ROUTES entries for URL names that no longer exist: {stale}"
    unknown = {spec if isinstance(spec, str) else spec[0]
               for route in ROUTES.values() for key, spec in route.items() if key != "obj"}
    assert unknown <= set(ROLE_TABLE), unknown - set(ROLE_TABLE)


@pytest.fixture
def world(django_user_model, make_host) -> dict[str, Any]:
    """Team a-team (project alpha) with admin/operator/viewer/auditor, team b-team (project
    bravo) whose admin is "other", a platform admin, and one of each object in alpha."""
    system = Actor.system("tests")
    users = {name: django_user_model.objects.create_user(name, password="pw-" + name * 3)
             for name in ("admin", "operator", "viewer", "auditor", "other", "newbie")}
    users["platform"] = django_user_model.objects.create_superuser("platform", password="pw")
    team_a = access.create_team(system, "a-team")
    team_b = access.create_team(system, "b-team")
    alpha = access.create_project(system, team_a, "alpha")
    access.create_project(system, team_b, "bravo")
    for role in ("admin", "operator", "viewer", "auditor"):
        access.set_member(system, team_a, role, role)
    access.set_member(system, team_b, "other", "admin")
    make_host("h1")
    container, operation = workloads.create_container(
        system, {"name": "web", "image": "busybox", "secrets": {"API_KEY": "s3cr3t-value"}},
        alpha)
    from datetime import timedelta

    from django.utils import timezone

    from panel.fleet.services import check_hosts

    check_hosts(system, timezone.now() + timedelta(minutes=5))  # logs/stats answer 503 at once
    volume, _ = workloads.create_volume(system, "data", project=alpha)
    network, _ = workloads.create_network(system, "backend", project=alpha)
    from panel.workloads.models import Image

    tokens = {}
    for name, user in users.items():
        tokens[name] = access.create_token(system, user, "matrix")
    ro_token, ro_secret = access.create_token(system, users["admin"], "ro", read_only=True)
    event = AuditEvent.objects.filter(project_id=alpha.pk).order_by("seq").first()
    return {"users": users, "tokens": tokens, "ro": (ro_token, ro_secret),
            "objects": {"container": container.pk, "volume": volume.pk, "network": network.pk,
                        "operation": str(operation.pk), "project": alpha.pk, "team": team_a.pk,
                        "host": "h1", "image": Image.objects.first().pk,
                        "user": users["newbie"].pk, "event": event.seq}}


def _client(world: dict[str, Any], persona: str, web: bool) -> APIClient | None:
    client = APIClient()
    if persona == "anonymous":
        return client
    if persona == "ro_token":
        if web:
            return None  # tokens are for the API only
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['ro'][1]}")
        return client
    if web:
        client.force_login(world["users"][persona])
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['tokens'][persona][1]}")
    return client


def _kwargs(world: dict[str, Any], obj: str | None, persona: str) -> dict[str, Any]:
    if obj is None:
        return {}
    if obj == "member":
        return {"pk": world["objects"]["team"], "username": "viewer"}
    if obj == "own_token":
        owner = "admin" if persona in ("ro_token", "anonymous") else persona
        return {"pk": world["tokens"][owner][0].pk}
    return {"pk": world["objects"][obj]}


def _expected(action: str, obj: str | None, method: str, persona: str, web: bool) -> str:
    """"allow", "403", "404", "401" or "hidden-create" (a 400 naming the project field)."""
    allowed = ROLE_TABLE[action]
    if persona == "anonymous":
        if "anonymous" in allowed:
            return "allow"
        return "login" if web else "401"
    effective = "admin" if persona == "ro_token" else persona
    if persona == "ro_token" and (method not in ("GET", "HEAD", "OPTIONS")
                                  or action == "container.secrets"):
        return "403"  # read-only tokens: safe methods only, and never secret values
    if obj is not None and effective not in VISIBLE[obj]:
        return "404"
    if effective in allowed:
        return "allow"
    if obj is None and effective == "other" and "admin" in allowed:
        # Lists and creates act in the persona's own team, where "other" is admin: lists
        # answer their own objects; creating in team a's project answers "unknown project".
        return "hidden-create" if method == "POST" else "allow"
    return "403"


def _outcome(response: Any) -> str:
    code = response.status_code
    body = getattr(response, "content", b"")[:300]
    assert code not in (500, 502), f"server error {code}: {body!r}"
    if code in (401, 403, 404, 405):
        return str(code)
    if code == 302 and "/accounts/login/" in response.get("Location", ""):
        return "login"
    if code == 400 and (b'"project"' in response.content or b'"team"' in response.content):
        return "hidden-create"
    return "allow"


def test_permission_matrix(world):
    patterns = url_patterns()
    mismatches = []
    tried = 0
    for name, route in sorted(ROUTES.items()):
        web = not patterns[name].startswith("api/v1") and name not in ("schema", "api-docs")
        obj = route.get("obj")
        for method, spec in route.items():
            if method == "obj":
                continue
            action, body = (spec, None) if isinstance(spec, str) else spec
            for persona in PERSONAS:
                client = _client(world, persona, web)
                if client is None:
                    continue
                url = reverse(name, kwargs=_kwargs(world, obj, persona))
                expected = _expected(action, obj, method, persona, web)
                with transaction.atomic():
                    response = getattr(client, method.lower())(url, body, format="json")
                    transaction.set_rollback(True)
                got = _outcome(response)
                if expected == "401" and got == "403":
                    got = "401"  # session-only endpoints answer 403 to anonymous
                if action == "public" and got == "login":
                    got = "allow"  # signing out leads to the sign-in page
                tried += 1
                if got != expected:
                    mismatches.append(f"{persona:9} {method:6} {url:45} {action:20} "
                                      f"expected {expected}, got {got} ({response.status_code})")
    assert not mismatches, f"{len(mismatches)} of {tried} cells differ:\n" + \
        "\n".join(mismatches)
    assert tried > 300
