"""The permission matrix, generated: every URL pattern (REST API and browser pages) and every
WebSocket route × every persona × every method the route serves must allow or deny exactly as
the role table says. The tables are in tests/panel/permission_table.py (written from README
"Roles", issue 6, issue 7 for stacks); a route without an entry there, or a DRF route serving
a method the table does not list, fails `test_every_route_has_an_entry_in_the_matrix`.

Outcomes:
- allowed: anything but 401/403/404/405, a redirect to the sign-in page, or a refusal; never a
  server error (503 "host not up" is allowed: the check passed, the host is down on purpose);
- denied: 403 when the persona can see the object (or for a list/create route), 404 when it
  cannot (other teams' objects, kinds the role may not view); a create in a project the persona
  cannot see is refused naming the project field ("hidden-create": 400 on the API, the page
  re-rendered with the error on pages);
- not signed in: 401 on the API, a 302 to /accounts/login/?next=… on pages, close code 4401 on
  sockets (4403/4404 as 403/404 above). Pages and sockets are session-only: the read-only token
  persona counts as not signed in there.
- bulk actions name their objects in the body: a refusal is an error message ("you may not…"),
  an object the persona cannot see is reported as not found, like one that does not exist.
- every refusal of a signed-in persona (403, 404, hidden-create) writes an audit event with
  outcome "denied" (README "Roles"); an allowed request writes none."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from django.contrib.messages import get_messages
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from panel.access import invites, team_tokens
from panel.access import services as access
from panel.audit.models import AuditEvent
from panel.audit.services import Actor
from panel.workloads import services as workloads
from tests.panel.permission_table import (
    API_ROUTES,
    DOCKER_ROUTES,
    PAGE_ROUTES,
    PERSONAS,
    ROLE_TABLE,
    ROUTES,
    STACK_COMPOSE,
    VISIBLE,
    WS_ROUTES,
    Cell,
    fill,
    specs,
)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def url_patterns() -> dict[str, tuple[str, set[str] | None]]:
    """Every named URL pattern of the project (format-suffix variants folded in): name ->
    (route, the methods its DRF view serves, None for plain Django views)."""
    found: dict[str, tuple[str, set[str] | None]] = {}

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                if "(?P<format>" in route or "<drf_format_suffix:" in route:
                    continue
                assert pattern.name, f"URL pattern {route!r} has no name: name it"
                found[pattern.name] = (route, _methods(pattern.callback))

    walk(get_resolver().url_patterns, "")
    return found


def _methods(callback: Any) -> set[str] | None:
    view_class = getattr(callback, "cls", None)  # DRF views
    if view_class is None:
        return None
    actions = getattr(callback, "actions", None)  # viewsets: {method: action}
    served = set(actions) if actions else {m for m in view_class.http_method_names
                                          if hasattr(view_class, m)}
    return {m.upper() for m in served & set(view_class.http_method_names)} - \
        {"HEAD", "OPTIONS"}


def websocket_routes() -> set[str]:
    """Every route of panel/live/routing.py (nested URLRouters folded in)."""
    from panel.live.routing import websocket_urlpatterns

    found: set[str] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            inner = getattr(pattern.callback, "routes", None) if isinstance(
                pattern.callback, URLRouter) else None
            if inner is not None:
                walk(inner, prefix + str(pattern.pattern))
            else:
                found.add(prefix + str(pattern.pattern))

    walk(websocket_urlpatterns, "")
    return found


def test_every_route_has_an_entry_in_the_matrix():
    patterns = url_patterns()
    missing = sorted(set(patterns) - set(ROUTES))
    assert not missing, "URL patterns without an entry in tests/panel/permission_table.py: " \
                        f"{[(n, patterns[n][0]) for n in missing]}"
    stale = sorted(set(ROUTES) - set(patterns))
    assert not stale, f"ROUTES entries for URL names that no longer exist: {stale}"
    misfiled = sorted(n for n in ROUTES if (n in API_ROUTES) != patterns[n][0].startswith("api/")
                      or (n in DOCKER_ROUTES) != patterns[n][0].startswith("docker/"))
    assert not misfiled, f"API routes belong in API_ROUTES, the Docker API's in DOCKER_ROUTES, " \
                         f"pages in PAGE_ROUTES: {misfiled}"
    for name, (route, served) in patterns.items():
        listed = {cell.method for cell in specs(ROUTES[name])}
        assert served is None or served == listed, \
            f"{name} ({route}) serves {sorted(served or ())}, the table lists {sorted(listed)}"
    sockets = websocket_routes()
    assert sockets == set(WS_ROUTES), \
        f"WebSocket routes without an entry: {sorted(sockets - set(WS_ROUTES))}; " \
        f"entries without a route: {sorted(set(WS_ROUTES) - sockets)}"
    cells = [cell for route in ROUTES.values() for cell in specs(route)]
    actions = {cell.action for cell in cells} | {route["action"] for route in WS_ROUTES.values()}
    assert actions <= set(ROLE_TABLE), actions - set(ROLE_TABLE)
    kinds = {kind for cell in cells for kind in (cell.obj, cell.target)} | \
        {route.get("obj") for route in WS_ROUTES.values()}
    assert kinds - {None} <= set(VISIBLE), kinds - {None} - set(VISIBLE)


def build_world(django_user_model: Any, make_host: Any) -> dict[str, Any]:
    """Team a-team (project alpha) with admin/operator/viewer/auditor, team b-team (project
    bravo) whose admin is "other", a platform admin, and one of each object in alpha."""
    from panel.fleet.services import check_hosts
    from panel.live import transfers
    from panel.stacks import services as stacks
    from panel.workloads import backups
    from panel.workloads.models import Image
    from panel.workloads.reports import record_operation_progress

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
    host = make_host("h1")
    container, operation = workloads.create_container(
        system, {"name": "web", "image": "busybox", "secrets": {"API_KEY": "s3cr3t-value"}},
        alpha)
    volume, _ = workloads.create_volume(system, "data", project=alpha)
    network, _ = workloads.create_network(system, "backend", project=alpha)
    backup = transfers.backup_volume(system, volume, host)
    record_operation_progress(Actor.agent("h1"), str(backup.pk), "succeeded",
                              result={"download": "0" * 32, "filename": "data.tar.zst"})
    volume.hosts.add(host)
    schedule = backups.create_schedule(system, volume, {
        "host": "h1", "target": {"kind": "directory", "path": "/srv/backups"}})
    stack = stacks.create_stack(system, "shop", STACK_COMPOSE, alpha)
    stacks.deploy_stack(system, stack, "first")  # revision 1
    template = stacks.save_as_template(system, stack, "shop-template")
    check_hosts(system, timezone.now() + timedelta(minutes=5))  # logs/stats answer 503 at once

    tokens = {name: access.create_token(system, user, "matrix") for name, user in users.items()}
    ro_token, ro_secret = access.create_token(system, users["admin"], "ro", read_only=True)
    event = AuditEvent.objects.filter(project_id=alpha.pk).order_by("seq").first()
    invite, invite_secret = invites.create_invite(system, team_a, "viewer")
    membership = team_a.memberships.get(user=users["viewer"])
    team_token, _ = team_tokens.create_team_token(system, team_a, "deploys", "viewer")
    return {"users": users, "tokens": tokens, "ro": (ro_token, ro_secret),
            "objects": {"container": container.pk, "volume": volume.pk, "network": network.pk,
                        "operation": str(operation.pk), "backup": str(backup.pk),
                        "schedule": schedule.pk,
                        "project": alpha.pk, "team": team_a.pk, "host": "h1",
                        "image": Image.objects.first().pk, "user": users["newbie"].pk,
                        "event": event.seq, "stack": stack.pk, "team_template": template.pk,
                        "membership": membership.pk, "invite": invite.pk,
                        "team_token": team_token.pk,
                        "invite_secret": invite_secret}}


@pytest.fixture
def world(db: Any, django_user_model: Any, make_host: Any) -> dict[str, Any]:
    return build_world(django_user_model, make_host)


def _client(world: dict[str, Any], persona: str, api: bool) -> APIClient:
    client = APIClient()
    if persona == "anonymous":
        return client
    if persona == "ro_token" or api:
        secret = world["ro"][1] if persona == "ro_token" else world["tokens"][persona][1]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    else:
        client.force_login(world["users"][persona])
    return client


def _url(world: dict[str, Any], name: str, cell: Cell, persona: str) -> str:
    kwargs = fill(cell.kwargs, world["objects"])
    if cell.obj == "member":
        kwargs.update(pk=world["objects"]["team"], username="viewer")
    elif cell.obj == "own_token":
        owner = "admin" if persona in ("ro_token", "anonymous") else persona
        kwargs["pk"] = world["tokens"][owner][0].pk
    elif cell.obj is not None:
        kwargs["pk"] = world["objects"][cell.obj]
    url = reverse(name, kwargs=kwargs)
    return f"{url}?{cell.query}" if cell.query else url


def expected(action: str, target: str | None, method: str, persona: str, api: bool) -> str:
    """"allow", "403", "404", "401" (API), "login" (pages) or "hidden-create"."""
    allowed = ROLE_TABLE[action]
    if persona == "ro_token" and not api:
        persona = "anonymous"  # pages and sockets are session-only
    if persona == "anonymous":
        if "anonymous" in allowed:
            return "allow"
        return "401" if api else "login"
    effective = "admin" if persona == "ro_token" else persona
    if persona == "ro_token" and (method not in SAFE_METHODS or action == "container.secrets"):
        return "403"  # read-only tokens: safe methods only, and never secret values
    if target is not None and effective not in VISIBLE[target]:
        return "404"
    if effective in allowed:
        return "allow"
    if target is None and effective == "other" and "admin" in allowed:
        # Lists and creates act in the persona's own team, where "other" is admin: lists
        # answer their own objects; creating in team a's project answers "unknown project".
        return "hidden-create" if method == "POST" else "allow"
    return "403"


def _error_fields(response: Any) -> set[str]:
    """The field names an answer complains about: a JSON body's keys, or on a page the form's
    errors, an `errors` mapping, or an `error` text of "field: message" parts."""
    if response.get("Content-Type", "").startswith("application/json"):
        body = json.loads(response.content or b"{}")
        errors = body.get("errors", body) if isinstance(body, dict) else {}
        return set(errors) if isinstance(errors, dict) else set()
    if response.context is None:
        return set()
    fields: set[str] = set()
    form = response.context.get("form")
    if form is not None:
        fields |= set(form.errors)
    errors = response.context.get("errors")
    if isinstance(errors, dict):
        fields |= set(errors)
    text = response.context.get("error")
    if isinstance(text, str):
        fields |= {part.split(":", 1)[0].strip() for part in text.split("; ") if ":" in part}
    return fields


def outcome(response: Any, cell: Cell) -> str:
    code = response.status_code
    body = b"" if getattr(response, "streaming", False) else response.content[:300]
    assert code < 500 or code == 503, f"server error {code}: {body!r}"
    if code in (401, 403, 404, 405):
        return str(code)
    location = response.get("Location", "") if code == 302 else ""
    if location.startswith(settings.LOGIN_URL) and "next=" in location:
        return "login"
    # A refused create re-renders the page (pages answer 200 or 400) naming the project.
    if (code == 400 or (code == 200 and response.context is not None)) \
            and _error_fields(response) & {"project", "team"}:
        return "hidden-create"
    if cell.bulk:  # objects named in the body: refusals are messages
        notes = [str(m) for m in get_messages(response.wsgi_request)]
        if any("you may not" in note for note in notes):
            return "403"
        if any(note.endswith("container(s) not found") for note in notes):
            return "404"
    return "allow"


def _run(world: dict[str, Any], routes: dict[str, dict[str, Any]], api: bool) -> None:
    mismatches = []
    tried = 0
    for name, route in sorted(routes.items()):
        for cell in specs(route):
            method, action = cell.method, cell.action
            for persona in PERSONAS:
                client = _client(world, persona, api)
                url = _url(world, name, cell, persona)
                want = expected(action, cell.target, method, persona, api)
                data = fill(cell.body, world["objects"])
                with transaction.atomic():
                    last = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True)[:1]
                    before = last[0] if last else 0
                    call = getattr(client, method.lower())
                    response = call(url, data, format="json") if api else call(url, data or {})
                    got = outcome(response, cell)
                    denials = AuditEvent.objects.filter(seq__gt=before, outcome="denied").count()
                    transaction.set_rollback(True)
                if api and want == "401" and got == "403":
                    got = "401"  # session-only endpoints answer 403 to anonymous
                tried += 1
                if got != want:
                    mismatches.append(f"{persona:9} {method:6} {url:45} {action:20} "
                                      f"expected {want}, got {got} ({response.status_code})")
                elif got not in ("401", "login") and (got != "allow") != (denials > 0):
                    mismatches.append(f"{persona:9} {method:6} {url:45} {action:20} "
                                      f"{got} with {denials} audit event(s) 'denied'")
    assert not mismatches, f"{len(mismatches)} of {tried} cells differ:\n" + \
        "\n".join(mismatches)
    assert tried >= 7 * len(routes)


def test_api_permission_matrix(world):
    _run(world, API_ROUTES, api=True)


def test_page_permission_matrix(world):
    _run(world, PAGE_ROUTES, api=False)


def test_docker_api_permission_matrix(world):
    _run(world, DOCKER_ROUTES, api=True)


def test_page_actions_without_a_get_entry_refuse_get(world):
    """Plain Django views cannot be asked which methods they serve: a page route whose table
    entry has no GET must answer 405 to one (else it serves a method the table misses)."""
    client = _client(world, "platform", api=False)
    served = []
    for name, route in sorted(PAGE_ROUTES.items()):
        cells = specs(route)
        if all(cell.method != "GET" for cell in cells):
            response = client.get(_url(world, name, cells[0], "platform"))
            if response.status_code != 405:
                served.append(f"{name}: GET answered {response.status_code}")
    assert not served, served


# --- WebSockets ---------------------------------------------------------------------------------

@pytest.fixture
def socket_world(transactional_db: Any, django_user_model: Any, make_host: Any,
                 broker: Any) -> dict[str, Any]:
    """The same world, committed: consumers read it from their own database connection."""
    return build_world(django_user_model, make_host)


def _socket_headers(world: dict[str, Any], persona: str) -> list[tuple[bytes, bytes]]:
    from django.test import Client

    headers = [(b"origin", b"http://127.0.0.1")]
    if persona == "ro_token":
        return [*headers, (b"authorization", f"Bearer {world['ro'][1]}".encode())]
    if persona != "anonymous":
        client = Client()
        client.force_login(world["users"][persona])
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


async def _socket_outcome(path: str, headers: list[tuple[bytes, bytes]]) -> str:
    """"allow" (accepted, streaming) or the close code of a refusal."""
    from panel.asgi import application

    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if not connected:
        return f"handshake refused {code}"
    first = await communicator.receive_json_from(timeout=5)
    if "error" not in first:
        await communicator.disconnect()
        return "allow"
    close = await communicator.receive_output(timeout=5)
    await communicator.disconnect()  # the client's half of the closing handshake
    assert close["type"] == "websocket.close" and close["code"] == first["code"], (first, close)
    return str(close["code"])


def test_websocket_permission_matrix(socket_world):
    world = socket_world
    cells = []
    for route, entry in sorted(WS_ROUTES.items()):
        obj = entry.get("obj")
        path = "/" + route.replace("<int:container_id>", str(world["objects"]["container"])) \
            .replace("<int:stack_id>", str(world["objects"]["stack"]))
        assert "<" not in path, f"fill in the parameters of {route}"
        for persona in PERSONAS:
            want = expected(entry["action"], obj, "GET", persona, api=False)
            want = {"login": "4401", "403": "4403", "404": "4404"}.get(want, want)
            cells.append((persona, path, entry["action"], want,
                          _socket_headers(world, persona)))

    async def connect_all() -> list[str]:
        return list(await asyncio.gather(*(_socket_outcome(path, headers)
                                           for _, path, _, _, headers in cells)))

    denied_before = AuditEvent.objects.filter(outcome="denied").count()
    got = async_to_sync(connect_all)()
    mismatches = [f"{persona:9} {path:35} {action:16} expected {want}, got {result}"
                  for (persona, path, action, want, _), result in zip(cells, got, strict=True)
                  if result != want]
    assert not mismatches, f"{len(mismatches)} of {len(cells)} sockets differ:\n" + \
        "\n".join(mismatches)
    refused = sum(result in ("4403", "4404") for result in got)
    denials = AuditEvent.objects.filter(outcome="denied").count() - denied_before
    assert denials == refused, f"{refused} sockets refused, {denials} audited as denied"
