"""The Docker Engine API endpoints Berth serves (see urls.py for the list): the system ones and
the containers' lifecycle, through the same services and policy as the REST API."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_http_methods

from panel.access import policy
from panel.access.models import Project
from panel.dockerapi.http import (
    API_VERSION,
    MIN_API_VERSION,
    DockerError,
    actor,
    docker_view,
    with_headers,
)
from panel.dockerapi.shapes import (
    PROJECT_LABEL,
    create_request,
    docker_id,
    inspect,
    labels_of,
    state_of,
    summary,
)
from panel.fleet.dispatch import AgentUnavailable, call_host, host_for_rpc
from panel.fleet.models import Host
from panel.workloads import services
from panel.workloads.models import Container, Image
from panel.workloads.spec import ValidationFailed

WAIT_POLL = 0.5
FOLLOW_POLL = 0.5  # how often `docker logs -f` asks the host for new lines
FILTERS = {"label", "name", "id", "status"}
STREAMS = {"stdout": 1, "stderr": 2}


@require_http_methods(["GET", "HEAD"])
def ping(request: HttpRequest, version: str | None = None) -> HttpResponse:
    """Unauthenticated, as dockerd's: clients negotiate the API version with it."""
    return with_headers(HttpResponse("OK", content_type="text/plain"))


@docker_view
@require_http_methods(["GET"])
def version_view(request: HttpRequest) -> HttpResponse:
    from importlib.metadata import version

    berth = version("berth")
    return JsonResponse({"Platform": {"Name": "Berth"}, "Version": berth,
                         "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                         "Os": "linux", "Arch": "amd64", "KernelVersion": "",
                         "GitCommit": "", "GoVersion": "", "BuildTime": "",
                         "Components": [{"Name": "Berth", "Version": berth, "Details": {}}]})


def _visible(request: HttpRequest, action: str = "container.view") -> Any:
    return policy.visible(request.user, Container.objects.select_related("host", "project"), action,
                          request.auth)  # type: ignore[attr-defined]


@docker_view
@require_http_methods(["GET"])
def info(request: HttpRequest) -> HttpResponse:
    containers = _visible(request).exclude(status="removed")
    states = [state_of(c) for c in containers]
    hosts = list(Host.objects.alive())
    return JsonResponse({
        "ID": "berth", "Name": "berth", "ServerVersion": "berth",
        "Containers": len(states), "ContainersRunning": states.count("running"),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
        "Images": Image.objects.count(), "Driver": "overlay2", "OSType": "linux",
        "OperatingSystem": f"Berth fleet of {len(hosts)} host(s) up",
        "Architecture": "x86_64", "NCPU": sum(h.cpus for h in hosts),
        "MemTotal": sum(h.memory for h in hosts), "Labels": [], "Swarm": {},
        "Runtimes": {"runc": {"path": "runc"}}, "DefaultRuntime": "runc",
        "SecurityOptions": ["name=seccomp,profile=default", "name=no-new-privileges"]})


def _filters(request: HttpRequest) -> dict[str, list[str]]:
    raw = request.GET.get("filters") or "{}"
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise DockerError(400, f"filters: {raw!r} is not JSON") from None
    if not isinstance(parsed, dict):
        raise DockerError(400, "filters: must be a JSON object")
    unknown = sorted(set(parsed) - FILTERS)
    if unknown:
        raise DockerError(400, f"filters: {unknown[0]!r} is not supported: use "
                               f"{', '.join(sorted(FILTERS))}")
    # {"label": ["a=b"]} or the older {"label": {"a=b": true}}
    return {key: list(value) if isinstance(value, (list, dict)) else [str(value)]
            for key, value in parsed.items()}


def _matches(container: Container, filters: dict[str, list[str]]) -> bool:
    for key, wanted in filters.items():
        if key == "label":
            for item in wanted:
                name, has_value, value = item.partition("=")
                labels = labels_of(container)
                if name not in labels or (has_value and str(labels[name]) != value):
                    return False
        elif key == "name":
            if not any(w.lstrip("/") in container.name for w in wanted):
                return False
        elif key == "id":
            if not any(docker_id(container).startswith(w) for w in wanted):
                return False
        elif key == "status" and state_of(container) not in wanted:
            return False
    return True


@docker_view
@require_http_methods(["GET"])
def containers_list(request: HttpRequest) -> HttpResponse:
    every = request.GET.get("all", "").lower() in ("1", "true")
    filters = _filters(request)
    rows = [c for c in _visible(request).exclude(status="removed").order_by("-created_at")
            if (every or state_of(c) == "running") and _matches(c, filters)]
    limit = request.GET.get("limit", "")
    if limit.lstrip("-").isdigit() and int(limit) > 0:
        rows = rows[:int(limit)]
    return JsonResponse([summary(c) for c in rows], safe=False)


def find_container(request: HttpRequest, ref: str, action: str) -> Container:
    """The container named `ref` or whose id starts with it, that the caller may see (else
    404, as Docker's "No such container"), checked for `action` (403)."""
    ref = ref.lstrip("/")
    visible = _visible(request).exclude(status="removed")
    found = visible.filter(name=ref).first()
    if found is None and ref:
        matches = [c for c in visible if docker_id(c).startswith(ref)]
        if len(matches) > 1:
            raise DockerError(400, f"multiple containers match the id prefix {ref!r}")
        found = matches[0] if matches else None
    if found is None:
        hidden = Container.objects.filter(name=ref).first()
        if hidden is not None:
            policy.deny_missing(actor(request), action, hidden)
        raise DockerError(404, f"No such container: {ref}")
    policy.authorize(request.user, action, found, actor(request),
                     request.auth)  # type: ignore[attr-defined]
    return found


def choose_project(request: HttpRequest, action: str, labels: dict[str, Any]) -> Project | None:
    """The project a new object goes in: its berth.project label, else the caller's only
    project where they may do `action` (e.g. "container.create")."""
    allowed = policy.projects_for(request.user, action)
    wanted = str(labels.get(PROJECT_LABEL) or "")
    if wanted:  # one outside the caller's teams is refused (404, audited) by the caller
        lookup: dict[str, Any] = {"pk": int(wanted)} if wanted.isdigit() else {"name": wanted}
        project = Project.objects.filter(**lookup).first()
        if project is None:
            raise DockerError(404, f"No such project: {wanted} (label {PROJECT_LABEL})")
        return project
    choices = list(allowed[:2])
    if len(choices) == 1:
        return choices[0]
    if not choices and policy.is_platform_admin(request.user):
        return None
    if not choices:
        policy.authorize_create(request.user, action, None, actor(request),
                                request.auth)  # type: ignore[attr-defined]
    raise DockerError(400, f"you may create in several projects: name one with "
                           f"--label {PROJECT_LABEL}=NAME")


@docker_view
@require_http_methods(["POST"])
def containers_create(request: HttpRequest) -> HttpResponse:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise DockerError(400, "the request body is not JSON") from None
    berth_request = create_request(body, request.GET.get("name", ""))
    berth_request["start"] = False  # docker create; `docker run` starts it next
    project = choose_project(request, "container.create",
                             (body.get("Labels") if isinstance(body, dict) else None) or {})
    policy.authorize_create(request.user, "container.create", project, actor(request),
                            request.auth)  # type: ignore[attr-defined]
    try:
        container, _ = services.create_container(actor(request), berth_request, project)
    except ValidationFailed as exc:
        if any("is not known on any host" in e for e in exc.errors.get("image", [])):
            raise DockerError(404, f"No such image: {berth_request['image']}") from None
        if any("already exists" in e for e in exc.errors.get("name", [])):
            raise DockerError(409, f"Conflict. The container name \"/{berth_request['name']}\" "
                                   "is already in use") from None
        raise
    return JsonResponse({"Id": docker_id(container), "Warnings": []}, status=201)


@docker_view
@require_http_methods(["GET"])
def container_inspect(request: HttpRequest, ref: str) -> HttpResponse:
    container = find_container(request, ref, "container.view")
    env = [f"{k}={v}" for k, v in container.env.items()]
    env += [f"{name}=******" for name in container.secret_names if not name.startswith("/")]
    return JsonResponse(inspect(container, env))


def _seconds(request: HttpRequest) -> int | None:
    raw = request.GET.get("t") or request.GET.get("timeout")
    if raw is None:
        return None
    if not raw.isdigit():
        raise DockerError(400, f"t: {raw!r} is not a whole number of seconds")
    return int(raw)


@docker_view
@require_http_methods(["POST"])
def container_action(request: HttpRequest, ref: str, action: str) -> HttpResponse:
    container = find_container(request, ref, f"container.{action}")
    who = actor(request)
    if action == "start":
        if state_of(container) == "running" and container.desired_state == "running":
            return HttpResponse(status=304)
        services.start_container(who, container)
    elif action == "stop":
        if state_of(container) != "running" and container.desired_state == "stopped":
            return HttpResponse(status=304)
        services.stop_container(who, container, _seconds(request))
        _wait_for(container, lambda c: state_of(c) != "running" or c.desired_state != "stopped",
                  _deadline(request))
    elif action == "restart":
        services.restart_container(who, container, _seconds(request))
    else:
        services.kill_container(who, container, request.GET.get("signal") or "KILL")
    return HttpResponse(status=204)


def _deadline(request: HttpRequest) -> float:
    """How long `docker stop` waits before answering: its timeout and a margin."""
    return time.monotonic() + (_seconds(request) or 10) + 20


def _wait_for(container: Container, done: Any, deadline: float) -> Container:
    """Poll until `done(container)` or the deadline; AgentUnavailable once its host is down
    (nothing will change until it is back)."""
    while True:
        container.refresh_from_db()
        if done(container) or time.monotonic() > deadline:
            return container
        host_for_rpc(container)
        time.sleep(WAIT_POLL)


@docker_view
@require_http_methods(["POST"])
def container_wait(request: HttpRequest, ref: str) -> HttpResponse:
    """Until the container is not running; its exit code (`docker wait`, `docker run` without
    -d). At most BERTH_DOCKER_WAIT seconds, then 408 (the client may ask again)."""
    container = find_container(request, ref, "container.view")
    if request.auth.read_only:  # type: ignore[attr-defined]  # a POST: not for read-only tokens
        policy.refuse_read_only(actor(request), "container.view", container)
    deadline = time.monotonic() + settings.BERTH_DOCKER_WAIT

    def stopped(c: Container) -> bool:
        return state_of(c) in ("exited", "dead", "created") and (
            c.started_at is not None or c.desired_state == "stopped")

    container = _wait_for(container, stopped, deadline)
    if not stopped(container):
        raise DockerError(408, f"container {container.name} is still running")
    return JsonResponse({"StatusCode": container.exit_code, "Error": None})


@docker_view
@require_http_methods(["DELETE"])
def container_remove(request: HttpRequest, ref: str) -> HttpResponse:
    container = find_container(request, ref, "container.remove")
    force = request.GET.get("force", "").lower() in ("1", "true")
    if container.desired_state == "running" and state_of(container) == "running" and not force:
        raise DockerError(409, f"You cannot remove a running container {docker_id(container)}."
                               " Stop the container before attempting removal or force remove")
    with transaction.atomic():
        services.remove_container(actor(request), container, force=force)
    return HttpResponse(status=204)


def _frame(stream: str, data: bytes) -> bytes:
    """Docker's multiplexed stream: an 8-byte header (stream, 0, 0, 0, big-endian length)."""
    return struct.pack(">BxxxL", STREAMS.get(stream, 1), len(data)) + data


def _entries(container: Container, request: HttpRequest, since: str | None,
             tail: int | None) -> list[dict[str, Any]]:
    return call_host(host_for_rpc(container), "logs", str(container.uid), tail, since,
                     request.GET.get("until") or None, True)


def _render(entries: list[dict[str, Any]], wanted: set[str], stamps: bool) -> bytes:
    return b"".join(
        _frame(e["stream"], ((f"{e['timestamp']} " if stamps else "") + e["text"]
                             + ("\n" if e.get("complete", True) else "")).encode())
        for e in entries if e["stream"] in wanted)


def _follow(container: Container, request: HttpRequest, entries: list[dict[str, Any]],
            wanted: set[str], stamps: bool) -> Iterator[bytes]:
    """`docker logs -f`: what there is, then new lines as the host has them, until the
    container stops (or its host goes away)."""
    yield _render(entries, wanted, stamps)
    last = entries[-1]["timestamp"] if entries else None
    shown = {(e["timestamp"], e["stream"], e["text"]) for e in entries
             if e["timestamp"] == last}
    while True:
        time.sleep(FOLLOW_POLL)
        container.refresh_from_db()
        try:
            fresh = _entries(container, request, last, None)
        except AgentUnavailable:
            return
        fresh = [e for e in fresh if (e["timestamp"], e["stream"], e["text"]) not in shown]
        if fresh:
            yield _render(fresh, wanted, stamps)
            if fresh[-1]["timestamp"] != last:
                last = fresh[-1]["timestamp"]
                shown = set()
            shown |= {(e["timestamp"], e["stream"], e["text"]) for e in fresh
                      if e["timestamp"] == last}
        elif state_of(container) != "running":
            return


@docker_view
@require_http_methods(["GET"])
def container_logs(request: HttpRequest, ref: str) -> HttpResponse | StreamingHttpResponse:
    container = find_container(request, ref, "container.logs")
    tail = request.GET.get("tail", "all")
    wanted = {s for s in STREAMS if request.GET.get(s, "").lower() in ("1", "true")} \
        or set(STREAMS)
    stamps = request.GET.get("timestamps", "").lower() in ("1", "true")
    entries = _entries(container, request, request.GET.get("since") or None,
                       int(tail) if tail.isdigit() else None)
    if request.GET.get("follow", "").lower() in ("1", "true"):
        return StreamingHttpResponse(_follow(container, request, entries, wanted, stamps),
                                     content_type="application/vnd.docker.raw-stream")
    return HttpResponse(_render(entries, wanted, stamps),
                        content_type="application/vnd.docker.raw-stream")
