"""The role table and the route table of the generated permission matrix
(tests/panel/test_permission_matrix.py), written from README "Roles" and issue 6 independently
of panel/access/policy.py, so a mistake in the policy shows up as a differing cell.

- `ROLE_TABLE`: action -> the personas allowed to do it.
- `ROUTES`: every named URL pattern (REST API and browser pages) -> the object its pk points at
  (`obj`), the object the action is on when that is not `obj` (`target`), further URL `kwargs`,
  a `query` string, `bulk` for actions naming their objects in the body; and per HTTP method
  the action it needs: "action", ("action", body), or a dict {"action", "body", "obj",
  "target", "kwargs", "query"} overriding the route's keys; a list of them tries each.
- `WS_ROUTES`: every WebSocket route of panel/live/routing.py -> its object and action.

Personas: "platform" is a platform administrator; admin, operator, viewer and auditor hold that
role in team a-team (project alpha), whose objects the routes are tried on; "other" is an admin
of team b-team; "anonymous" is not signed in; "ro_token" is a read-only API token of a-team's
admin. Pages and WebSockets are session-only: a token there counts as not signed in (pages
send it to the sign-in page, sockets close with 4401).

Body values written "{name}" are filled in from the test world's objects (ids of this run)."""

from __future__ import annotations

from typing import Any, NamedTuple

PERSONAS = ("platform", "admin", "operator", "viewer", "auditor", "other", "anonymous",
            "ro_token")
EVERY = frozenset({"platform", "admin", "operator", "viewer", "auditor"})
CHANGE = frozenset({"platform", "admin", "operator"})
ADMIN = frozenset({"platform", "admin"})
AUDIT = frozenset({"platform", "admin", "auditor"})
PLATFORM = frozenset({"platform"})
SIGNED_IN = EVERY | {"other"}
PUBLIC = SIGNED_IN | {"anonymous"}

# Who may do what (README "Roles"); "other" is an admin of another team.
ROLE_TABLE: dict[str, frozenset[str]] = {
    **{f"container.{verb}": CHANGE for verb in (
        "create", "start", "stop", "restart", "kill", "remove", "logs", "stats")},
    "container.view": EVERY, "container.secrets": ADMIN,
    "container.update": CHANGE,  # its networks, before it first runs (the Docker API)
    "volume.view": EVERY, "volume.create": CHANGE, "volume.remove": CHANGE,
    # A backup copies the data out, a restore replaces it: both change the workload.
    "volume.backup": CHANGE, "volume.restore": CHANGE,
    # Scheduled backups copy the data out on a timer: like a backup, they change the workload.
    "backupschedule.view": EVERY,
    **{f"backupschedule.{verb}": CHANGE for verb in ("create", "remove", "run", "drill")},
    "network.view": EVERY, "network.create": CHANGE, "network.remove": CHANGE,
    "operation.view": EVERY,
    "project.view": EVERY, "project.create": ADMIN, "project.change": ADMIN,
    "project.remove": ADMIN,
    "team.view": EVERY, "team.change": ADMIN, "team.members": ADMIN,
    "team.create": PLATFORM, "team.remove": PLATFORM,
    "auditevent.view": AUDIT, "auditevent.export": AUDIT, "auditevent.verify": PLATFORM,
    "host.view": SIGNED_IN, "image.view": SIGNED_IN, "image.pull": CHANGE | {"other"},
    "user.view": PLATFORM, "user.create": PLATFORM, "user.change": PLATFORM,
    "user.remove": PLATFORM,
    "own.view": SIGNED_IN, "own.change": SIGNED_IN,  # your account and your own tokens
    "public": PUBLIC,
    # Stacks (issue 7): every team role sees them with their revisions; changing and logs
    # need admin or operator. The template catalogue is for every signed-in user; saving a
    # stack as a template (and removing a team's template) needs admin or operator.
    "stack.view": EVERY,
    **{f"stack.{verb}": CHANGE for verb in (
        "create", "deploy", "update", "rollback", "remove", "scale", "logs")},
    "stacktemplate.view": SIGNED_IN, "stacktemplate.create": CHANGE,
    "stacktemplate.remove": CHANGE,
}

# Object kinds each persona can see (else: 404 on object routes); "own" objects are per persona.
VISIBLE: dict[str, frozenset[str]] = {
    "container": EVERY, "volume": EVERY, "network": EVERY, "operation": EVERY,
    "backup": EVERY,  # the operation of a finished volume backup
    "schedule": EVERY,  # a backup schedule of alpha's volume
    "project": EVERY, "team": EVERY, "member": EVERY, "event": AUDIT,
    "membership": EVERY, "invite": EVERY,  # a-team's viewer's membership, an open invite
    "team_token": EVERY,  # a viewer-scoped API token of a-team
    "host": SIGNED_IN, "image": SIGNED_IN, "own_token": SIGNED_IN,
    "user": SIGNED_IN,  # users are not team objects: non-admins get 403, not 404
    "stack": EVERY, "team_template": EVERY,  # a template saved from a stack of alpha
}

CONTAINER_FORM = {"image": "busybox", "name": "web2", "project": "{project}", "restart": "no"}
STACK_COMPOSE = "services:\n  web:\n    image: busybox\n    command: [httpd, -f]\n"
SITE_VALUES = {"PORT": "8099", "REPLICAS": "1"}  # parameters of the built-in static-site

API_ROUTES: dict[str, dict[str, Any]] = {
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
    # the schedule is created on a volume of alpha (hidden from "other": 404)
    "backupschedule-list": {"GET": "backupschedule.view", "POST": {
        "action": "backupschedule.create", "target": "volume", "body": {
            "volume": "data", "target": {"kind": "directory", "path": "/srv/backups"}}}},
    "backupschedule-detail": {"obj": "schedule", "GET": "backupschedule.view",
                              "DELETE": "backupschedule.remove"},
    "backupschedule-run": {"obj": "schedule", "POST": "backupschedule.run"},
    "backupschedule-drill": {"obj": "schedule", "POST": "backupschedule.drill"},
    "network-list": {"GET": "network.view", "POST": (
        "network.create", {"name": "n2", "project": "alpha"})},
    "network-detail": {"obj": "network", "GET": "network.view", "DELETE": "network.remove"},
    "operation-list": {"GET": "operation.view"},
    "operation-detail": {"obj": "operation", "GET": "operation.view"},
    "team-list": {"GET": "team.view", "POST": ("team.create", {"name": "gamma"})},
    "team-detail": {"obj": "team", "GET": "team.view",
                    "PATCH": ("team.change", {"description": "x"}),
                    "DELETE": "team.remove"},
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
    "stack-list": {"GET": "stack.view", "POST": (
        "stack.create", {"name": "shop2", "project": "alpha", "compose": STACK_COMPOSE})},
    "stack-detail": {"obj": "stack", "GET": "stack.view",
                     "PATCH": ("stack.update", {"compose": STACK_COMPOSE + "    init: true\n"}),
                     "DELETE": "stack.remove"},
    "stack-compose": {"obj": "stack", "GET": "stack.view"},
    "stack-deploy": {"obj": "stack", "POST": ("stack.deploy", {"message": "again"})},
    "stack-revisions": {"obj": "stack", "GET": "stack.view"},
    "stack-revision": {"obj": "stack", "kwargs": {"number": 1}, "GET": "stack.view"},
    "stack-diff": {"obj": "stack", "kwargs": {"number": 1}, "query": "to=1",
                   "GET": "stack.view"},
    "stack-rollback": {"obj": "stack", "POST": ("stack.rollback", {"revision": 1})},
    "stack-scale": {"obj": "stack", "kwargs": {"service": "web"},
                    "POST": ("stack.scale", {"replicas": 2})},
    "stack-logs": {"obj": "stack", "GET": "stack.logs"},
    "stack-template": {"obj": "stack", "POST": ("stacktemplate.create", {"name": "copy"})},
    "stacktemplate-list": {"GET": "stacktemplate.view"},
    "stacktemplate-detail": {"target": "team_template", "kwargs": {"pk": "team-{team_template}"},
                             "GET": ["stacktemplate.view", {
                                 "action": "stacktemplate.view", "target": None,
                                 "kwargs": {"pk": "static-site"}}],
                             "DELETE": "stacktemplate.remove"},
    "stacktemplate-deploy": {"kwargs": {"pk": "static-site"}, "POST": (
        "stack.create", {"name": "site", "project": "alpha", "parameters": SITE_VALUES})},
}

PAGE_ROUTES: dict[str, dict[str, Any]] = {
    "healthz": {"GET": "public"},
    "login": {"GET": "public"},
    "logout": {"POST": "public"},  # leads to the sign-in page without a "next"
    "overview": {"GET": "own.view"},
    "web-hosts": {"GET": "host.view"},
    "web-host": {"obj": "host", "GET": "host.view"},
    "web-containers": {"GET": "container.view"},
    "web-container-create": {"GET": "container.create",
                             "POST": ("container.create", CONTAINER_FORM)},
    "web-containers-bulk": {"target": "container", "bulk": True, "POST": [
        (f"container.{verb}", {"action": verb, "ids": "{container}"})
        for verb in ("start", "stop", "restart", "remove")]},
    "web-container": {"obj": "container", "GET": "container.view"},
    "web-container-state": {"obj": "container", "GET": "container.view"},
    "web-container-log": {"obj": "container", "GET": "container.logs"},
    **{f"web-container-{verb}": {"obj": "container", "POST": f"container.{verb}"}
       for verb in ("start", "stop", "restart", "kill", "remove")},
    "web-images": {"GET": "image.view", "POST": ("image.pull", {"reference": "alpine:3"})},
    "web-image-upload": {"POST": "image.pull"},
    "web-volumes": {"GET": "volume.view",
                    "POST": ("volume.create", {"name": "v2", "project": "{project}"})},
    "web-volume-backup": {"obj": "volume", "POST": "volume.backup"},
    "web-volume-restore": {"obj": "volume", "POST": "volume.restore"},
    "web-volume-remove": {"obj": "volume", "POST": "volume.remove"},
    "web-volume-backups": {"obj": "volume", "GET": "backupschedule.view", "POST": (
        "backupschedule.create", {"host": "h1", "interval_hours": "24", "keep_daily": "7",
                                  "keep_weekly": "4", "kind": "directory",
                                  "path": "/srv/more-backups"})},
    **{f"web-backup-schedule-{verb}": {"obj": "schedule", "POST": f"backupschedule.{verb}"}
       for verb in ("run", "drill", "remove")},
    "web-networks": {"GET": "network.view",
                     "POST": ("network.create", {"name": "n2", "project": "{project}"})},
    "web-network-remove": {"obj": "network", "POST": "network.remove"},
    "web-operations": {"GET": "operation.view"},
    "web-operation": {"obj": "operation", "GET": "operation.view"},
    "web-operation-state": {"obj": "operation", "GET": "operation.view"},
    "web-backup-download": {"obj": "backup", "GET": "volume.backup"},
    "web-stacks": {"GET": "stack.view"},
    "web-stack-new": {"GET": "stack.create", "POST": (
        "stack.create", {"name": "shop2", "project": "{project}", "compose": STACK_COMPOSE})},
    "web-stack": {"obj": "stack", "GET": "stack.view", "POST": (
        "stack.update", {"compose": STACK_COMPOSE + "    init: true\n"})},
    "web-stack-diff": {"obj": "stack", "query": "from=1&to=1", "GET": "stack.view"},
    "web-stack-action": {"obj": "stack", "POST": [
        {"action": f"stack.{verb}", "kwargs": {"action": verb}, "body": body}
        for verb, body in (("deploy", {"message": "again"}), ("update", {}),
                           ("rollback", {"revision": "1"}), ("remove", {}))]},
    "web-stack-catalogue": {"GET": "stacktemplate.view"},
    "web-stack-template": {"kwargs": {"key": "static-site"}, "GET": [
        "stacktemplate.view",
        {"action": "stacktemplate.view", "target": "team_template",
         "kwargs": {"key": "team-{team_template}"}}],
        "POST": ("stack.create", {"name": "site", "project": "{project}", **SITE_VALUES})},
    # Managers' deployments (issue 13): every role that may view the project's stacks.
    "web-deployments": {"GET": "stack.view"},
    "web-deployments-export": {"GET": "stack.view"},
    "web-deployments-report": {"GET": "stack.view"},
    "web-audit": {"GET": "auditevent.view"},
    "web-audit-export": {"GET": "auditevent.export"},
    "web-audit-event": {"obj": "event", "GET": "auditevent.view"},
    "web-audit-verify": {"POST": "auditevent.verify"},
    "web-teams": {"GET": "team.view", "POST": ("team.create", {"name": "gamma"})},
    "web-team": {"obj": "team", "GET": "team.view"},
    "web-team-members": {"obj": "team", "POST": (
        "team.members", {"username": "newbie", "role": "viewer"})},
    "web-team-member": {"obj": "membership", "POST": ("team.members", {"role": "auditor"})},
    "web-team-settings": {"obj": "team", "POST": ("team.change", {"description": "x"})},
    "web-team-invite": {"obj": "team", "POST": ("team.members", {"role": "viewer"})},
    "web-team-invite-revoke": {"obj": "invite", "POST": "team.members"},
    "web-team-projects": {"obj": "team", "POST": ("project.create", {"name": "beta"})},
    "web-team-tokens": {"obj": "team", "POST": ("team.members", {"name": "ci", "role": "viewer"})},
    "web-team-token-revoke": {"obj": "team_token", "POST": "team.members"},
    # An invite link: any signed-in person may open and accept it.
    "web-team-join": {"kwargs": {"secret": "{invite_secret}"}, "GET": "own.view",
                      "POST": "own.change"},
    "web-account": {"GET": "own.view"},
    **{f"web-account-{name}": {"POST": "own.change"}
       for name in ("password", "totp", "totp-confirm", "totp-remove", "recovery")},
    "web-account-tokens": {"GET": "own.view", "POST": ("own.change", {"name": "ci"})},
    "web-account-token-revoke": {"obj": "own_token", "POST": "own.change"},
    "web-account-sessions": {"GET": "own.view", "POST": "own.change"},
}

# The Docker Engine API (panel/dockerapi): token-only like the REST API; containers are named by
# their name ("web") or id in the path; a create names its project by the berth.project label.
_WEB = {"target": "container", "kwargs": {"ref": "web"}}
DOCKER_ROUTES: dict[str, dict[str, Any]] = {
    "docker-ping": {"GET": "public"},
    "docker-version": {"GET": "own.view"},
    "docker-info": {"GET": "own.view"},
    "docker-containers": {"GET": "container.view"},
    "docker-container-create": {"target": "project", "POST": (
        "container.create", {"Image": "busybox", "Labels": {"berth.project": "alpha"}})},
    "docker-container": {**_WEB, "GET": "container.view"},
    "docker-container-logs": {**_WEB, "GET": "container.logs"},
    "docker-container-wait": {**_WEB, "query": "condition=not-running", "POST": "container.view"},
    **{f"docker-container-{verb}": {**_WEB, "POST": f"container.{verb}"}
       for verb in ("start", "stop", "restart", "kill")},
    "docker-container-remove": {**_WEB, "query": "force=1", "DELETE": "container.remove"},
    "docker-volumes": {"GET": "volume.view"},
    "docker-volume-create": {"target": "project", "POST": (
        "volume.create", {"Name": "v2", "Labels": {"berth.project": "alpha"}})},
    "docker-volume": {"target": "volume", "kwargs": {"name": "data"}, "GET": "volume.view",
                      "DELETE": "volume.remove"},
    "docker-networks": {"GET": "network.view"},
    "docker-network-create": {"target": "project", "POST": (
        "network.create", {"Name": "n2", "Labels": {"berth.project": "alpha"}})},
    "docker-network": {"target": "network", "kwargs": {"ref": "backend"},
                       "GET": "network.view", "DELETE": "network.remove"},
    # the container must not have run; the world's web has not (its host never answered)
    **{f"docker-network-{verb}": {"target": "network", "kwargs": {"ref": "backend"}, "POST": (
        "container.update", {"Container": "web"})} for verb in ("connect", "disconnect")},
    "docker-images": {"GET": "image.view"},
    "docker-image": {"kwargs": {"name": "busybox:latest"}, "GET": "image.view"},
}

ROUTES: dict[str, dict[str, Any]] = {**API_ROUTES, **PAGE_ROUTES, **DOCKER_ROUTES}

# WebSocket route (as written in panel/live/routing.py) -> object and action; the consumer
# accepts, or closes with 4401 (not signed in), 4403 (role may not), 4404 (not visible).
WS_ROUTES: dict[str, dict[str, Any]] = {
    "ws/events/": {"action": "own.view"},  # each user gets the events of what they may see
    "ws/containers/<int:container_id>/logs/": {"obj": "container", "action": "container.logs"},
    "ws/containers/<int:container_id>/stats/": {"obj": "container",
                                                "action": "container.stats"},
    "ws/stacks/<int:stack_id>/logs/": {"obj": "stack", "action": "stack.logs"},
}


ROUTE_KEYS = ("obj", "target", "kwargs", "query", "bulk")


class Cell(NamedTuple):
    """One request of the matrix (sent once per persona)."""

    method: str
    action: str
    body: dict[str, Any] | None
    obj: str | None  # what the URL's pk points at
    target: str | None  # what the action is on (visibility decides 404)
    kwargs: dict[str, Any]  # further URL kwargs
    query: str
    bulk: bool  # names its objects in the body: refusals come back as messages


def specs(route: dict[str, Any]) -> list[Cell]:
    """Every request the matrix sends on `route`."""
    cells = []
    for method, spec in route.items():
        if method in ROUTE_KEYS:
            continue
        for one in spec if isinstance(spec, list) else [spec]:
            if isinstance(one, str):
                one = {"action": one}
            elif isinstance(one, tuple):
                one = {"action": one[0], "body": one[1]}
            merged = {key: route.get(key) for key in ROUTE_KEYS} | one
            obj = merged["obj"]
            cells.append(Cell(method, merged["action"], merged.get("body"), obj,
                              merged["target"] if "target" in one or merged["target"]
                              else obj, dict(merged["kwargs"] or {}), merged["query"] or "",
                              bool(merged["bulk"])))
    return cells


def fill(body: dict[str, Any] | None, objects: dict[str, Any]) -> Any:
    """`body` with "{name}" values replaced by the world's object ids."""
    if body is None:
        return None
    return {key: value.format(**objects) if isinstance(value, str) and "{" in value else value
            for key, value in body.items()}
