"""Dashboard pages: overview, hosts, containers (list, bulk actions, one container, create).
Images, volumes, networks and operations are in views_resources.py.

Views read through panel.access.policy (`visible`, `authorize`) and change state only through
the service functions of panel/workloads; they never write models."""

from __future__ import annotations

import json
from collections import Counter, OrderedDict
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from panel.access import policy
from panel.fleet.models import DOWN, UP, Host
from panel.live.emit import container_event
from panel.web.common import (
    actor,
    audit_refused_project,
    error_text,
    get_visible,
    human_bytes,
    signed_in,
)
from panel.web.forms import ContainerForm
from panel.workloads import services
from panel.workloads.models import Container, Operation
from panel.workloads.spec import ValidationFailed

STACK_LABELS = ("com.docker.compose.project", "berth.stack")  # the grouping hook (issue 7)
PROBLEM_STATUSES = ("restarting", "exited", "dead", "missing")
SORTS = {"name": "name", "status": "status", "host": "host__name", "image": "image",
         "created": "-created_at"}
BULK_ACTIONS = ("start", "stop", "restart", "remove")
PER_PAGE = (50, 100, 250, 500, 2000)


def stack_of(labels: dict[str, str] | None) -> str:
    for key in STACK_LABELS:
        if labels and labels.get(key):
            return labels[key]
    return ""


def _hosts_with_status() -> list[Any]:
    """Hosts with what the pages show (attributes added to each row for the templates)."""
    hosts: list[Any] = list(Host.objects.annotate(
        running=Count("containers", filter=Q(containers__status="running"))).order_by("name"))
    for host in hosts:
        host.live_status = host.current_status()
        inventory = host.inventory or {}
        host.load = (inventory.get("load") or [None])[0]
        host.memory_text = human_bytes(host.memory)
        host.free_text = human_bytes(inventory.get("memory_available"))
    return hosts


@signed_in
def overview(request: HttpRequest) -> HttpResponse:
    containers = policy.visible(request.user, Container.objects.all())
    by_state = Counter(dict(containers.values_list("status").annotate(n=Count("id"))
                            .values_list("status", "n")))
    problems = list(containers.filter(Q(health="unhealthy") | Q(status__in=PROBLEM_STATUSES)
                                      | Q(status="", desired_state="running"))
                    .exclude(status="exited", exit_code=0, desired_state="stopped")
                    .select_related("host").order_by("-updated_at")[:20])
    hosts = _hosts_with_status()
    operations = policy.visible(request.user, Operation.objects.all()).order_by(
        "-created_at")[:15]
    return render(request, "overview.html", {
        "hosts_up": sum(h.live_status == UP for h in hosts),
        "hosts_down": sum(h.live_status == DOWN for h in hosts), "hosts": hosts[:12],
        "by_state": sorted(by_state.items(), key=lambda kv: (-kv[1], kv[0])),
        "total": sum(by_state.values()), "problems": problems, "operations": operations,
    })


@signed_in
def hosts(request: HttpRequest) -> HttpResponse:
    policy.authorize(request.user, "host.view", None, actor(request))
    return render(request, "web/hosts.html", {"hosts": _hosts_with_status()})


@signed_in
def host_detail(request: HttpRequest, pk: str) -> HttpResponse:
    host = get_visible(request, Host.objects.all(), "host.view", name=pk)
    host.live_status = host.current_status()
    containers = policy.visible(request.user, Container.objects.filter(host=host))
    return render(request, "web/host.html", {
        "host": host, "containers": containers.order_by("name")[:500],
        "inventory": json.dumps(host.inventory, indent=2, sort_keys=True),
        "memory_text": human_bytes(host.memory)})


def _filtered_containers(request: HttpRequest) -> tuple[Any, dict[str, str]]:
    params = request.GET
    queryset = policy.visible(request.user, Container.objects.all())
    chosen = {k: params.get(k, "").strip() for k in
              ("q", "state", "host", "image", "label", "stack", "sort")}
    if chosen["q"]:
        queryset = queryset.filter(Q(name__icontains=chosen["q"])
                                   | Q(image__icontains=chosen["q"]))
    if chosen["state"]:
        queryset = queryset.filter(status="" if chosen["state"] == "pending"
                                   else chosen["state"])
    if chosen["host"]:
        queryset = queryset.filter(host__name=chosen["host"])
    if chosen["image"]:
        queryset = queryset.filter(image=chosen["image"])
    if chosen["label"]:
        key, sep, value = chosen["label"].partition("=")
        if key and "__" not in key:
            queryset = queryset.filter(**{f"labels__{key}": value}) if sep else \
                queryset.filter(labels__has_key=key)
    if chosen["stack"]:
        stack = Q()
        for key in STACK_LABELS:
            stack |= Q(**{f"labels__{key}": chosen["stack"]})
        queryset = queryset.filter(stack)
    order = SORTS.get(chosen["sort"] or "name", "name")
    return queryset.order_by(order, "pk"), chosen


@signed_in
def containers(request: HttpRequest) -> HttpResponse:
    queryset, chosen = _filtered_containers(request)
    try:
        per_page = int(request.GET.get("per_page") or 100)
    except ValueError:
        per_page = 100
    per_page = per_page if per_page in PER_PAGE else 100
    rows = queryset.values("pk", "name", "image", "status", "health", "desired_state",
                           "exit_code", "restart_count", "labels", "host__name",
                           "project__name", "created_at")
    page = Paginator(rows, per_page).get_page(request.GET.get("page"))
    groups: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    for row in page.object_list:
        row["stack"] = stack_of(row["labels"])
        groups.setdefault(row["stack"], []).append(row)
    if "" in groups:
        groups.move_to_end("")
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "web/containers.html", {
        "groups": groups, "page": page, "chosen": chosen, "per_page": per_page,
        "per_page_choices": PER_PAGE, "query": query.urlencode(),
        "states": ("running", "exited", "restarting", "created", "missing", "pending"),
        "host_names": Host.objects.order_by("name").values_list("name", flat=True),
        "images": policy.visible(request.user, Container.objects.all()).order_by("image")
        .values_list("image", flat=True).distinct()[:200],
        "can_change": policy.can(request.user, "container.start"),
        "can_create": policy.can(request.user, "container.create"),
    })


@signed_in
@require_POST
def containers_bulk(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    if action not in BULK_ACTIONS:
        messages.error(request, f"unknown action {action!r}: use {', '.join(BULK_ACTIONS)}")
        return HttpResponseRedirect(reverse("web-containers"))
    ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
    who = actor(request)
    done, failed, found = [], [], set()
    for container in policy.visible(request.user, Container.objects.select_related("host"))\
            .filter(pk__in=ids):
        found.add(container.pk)
        try:
            policy.authorize(request.user, f"container.{action}", container, who)
            _act(who, container, action, force=True)
            done.append(container.name)
        except (PermissionDenied, services.Conflict, ValidationFailed) as exc:
            failed.append(f"{container.name}: {error_text(exc)}")
    if done:
        messages.success(request, f"{action}: {len(done)} container(s) — "
                                  f"{', '.join(done[:10])}{'…' if len(done) > 10 else ''}; "
                                  "progress is on the operations page")
    for line in failed[:20]:
        messages.error(request, line)
    unknown = set(ids) - found
    for container in Container.objects.filter(pk__in=unknown):  # outside the user's teams
        policy.deny_missing(who, f"container.{action}", container)
    if unknown:
        messages.error(request, f"{len(unknown)} selected container(s) not found")
    if not ids:
        messages.error(request, "select at least one container")
    return HttpResponseRedirect(request.POST.get("back") or reverse("web-containers"))


def _act(who: Any, container: Container, action: str, force: bool = False) -> Operation:
    if action == "start":
        return services.start_container(who, container)
    if action == "stop":
        return services.stop_container(who, container)
    if action == "restart":
        return services.restart_container(who, container)
    if action == "kill":
        return services.kill_container(who, container)
    return services.remove_container(who, container, force=force)


def _ports(container: Container, request: HttpRequest) -> list[dict[str, str]]:
    """Published ports as links (to the address the browser used for the panel)."""
    address = request.get_host().rsplit(":", 1)[0]
    links = []
    for target, bindings in (container.published_ports or {}).items():
        for binding in bindings or []:
            port = str((binding or {}).get("HostPort") or "")
            if port:
                links.append({"target": target, "port": port,
                              "url": f"http://{address}:{port}/"
                              if not target.endswith("/udp") else ""})
    return links


SECRET_HINTS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")


@signed_in
def container_detail(request: HttpRequest, pk: int) -> HttpResponse:
    container = get_visible(request, Container.objects.select_related("host", "project"),
                            "container.view", pk=pk)
    user = request.user
    env = [{"key": k, "value": "••••••" if any(h in k.upper() for h in SECRET_HINTS) else v,
            "masked": any(h in k.upper() for h in SECRET_HINTS)}
           for k, v in sorted((container.env or {}).items())]
    history = []
    if policy.can(user, "container.history", container):
        from panel.audit.describe import describe
        from panel.audit.models import AuditEvent

        for event in AuditEvent.objects.filter(target_type="container",
                                               target_id=str(container.pk))[:30]:
            history.append({"at": event.created_at, "text": describe(event),
                            "outcome": event.outcome})
    operations = policy.visible(user, Operation.objects.filter(
        target_type="container", target_id=str(container.pk)))[:10]
    return render(request, "web/container.html", {
        "c": container, "env": env, "ports": _ports(container, request),
        "history": history, "operations": operations,
        "stack": stack_of(container.labels),
        "labels": sorted((container.labels or {}).items()),
        "memory_text": human_bytes(container.memory) if container.memory else "no limit",
        "can_logs": policy.can(user, "container.logs", container),
        "can_stats": policy.can(user, "container.stats", container),
        "can_change": policy.can(user, "container.stop", container),
        "state_json": json.dumps(container_event(container)),
    })


@signed_in
def container_state(request: HttpRequest, pk: int) -> JsonResponse:
    """The container's live fields (pages refresh them after a reconnect)."""
    container = get_visible(request, Container.objects.select_related("host"),
                            "container.view", pk=pk)
    return JsonResponse(container_event(container))


@signed_in
@require_POST
def container_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in (*BULK_ACTIONS, "kill"):
        raise Http404("no such action")
    container = get_visible(request, Container.objects.select_related("host"),
                            f"container.{action}", pk=pk)
    try:
        operation = _act(actor(request), container, action,
                         force=request.POST.get("force") == "1")
    except (services.Conflict, ValidationFailed) as exc:
        messages.error(request, error_text(exc))
        return HttpResponseRedirect(reverse("web-container", args=[pk]))
    if action == "remove":
        messages.success(request, f"removing {container.name}")
        return HttpResponseRedirect(reverse("web-operation", args=[operation.pk]))
    messages.success(request, f"{action} of {container.name} requested")
    return HttpResponseRedirect(reverse("web-container", args=[pk]))


def _project_choices(request: HttpRequest, action: str) -> list[tuple[str, str]]:
    projects = [(str(p.pk), p.name) for p in policy.projects_for(request.user, action)]
    if policy.is_platform_admin(request.user):
        projects.insert(0, ("", "(none: platform administrators only)"))
    return projects


def _project(request: HttpRequest, value: str, action: str) -> Any:
    """The chosen project, checked again on submit (a forged id is refused, audited)."""
    from panel.access.models import Project

    if not value:
        policy.authorize_create(request.user, action, None, actor(request))
        return None
    project = Project.objects.filter(pk=int(value)).first() if value.isdigit() else None
    if project is None:
        raise Http404("no such project")
    policy.authorize_create(request.user, action, project, actor(request))
    return project


@signed_in
def container_create(request: HttpRequest) -> HttpResponse:
    policy.authorize(request.user, "container.create", None, actor(request))
    projects = _project_choices(request, "container.create")
    audit_refused_project(request, "container.create")
    hosts = list(Host.objects.order_by("name").values_list("name", flat=True))
    form = ContainerForm(request.POST or None, projects=projects, hosts=hosts)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.request_data()
            if form.errors:  # show the spec's errors too, so every bad field is named at once
                from panel.workloads.spec import parse_container_request

                form.show_service_errors(dict(parse_container_request(data)[1]))
            else:
                project = _project(request, form.cleaned_data.get("project") or "",
                                   "container.create")
                try:
                    container, _ = services.create_container(actor(request), data, project)
                except ValidationFailed as exc:
                    form.show_service_errors(exc.errors)
                else:
                    messages.success(request, f"container {container.name} created")
                    return HttpResponseRedirect(reverse("web-container", args=[container.pk]))
        status = 400
    return render(request, "web/container_form.html", {"form": form}, status=status)
