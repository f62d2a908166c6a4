"""Dashboard pages of stacks: the list, the compose editor (errors shown at their lines), the
stack page (services, replicas per host, health, endpoints, revisions with diffs, the merged
log) and the template catalogue. Every page asks the access policy (panel/access/policy.py)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from panel.access import policy
from panel.access.models import Project
from panel.stacks import services
from panel.stacks.catalogue import builtin, check_values, from_model
from panel.stacks.models import Stack, StackTemplate
from panel.stacks.presenters import diff_revisions, revision_data, services_data, stack_data
from panel.stacks.timeline import changes
from panel.web.common import actor, audit_refused_project, error_text, get_visible, signed_in
from panel.workloads.services import Conflict
from panel.workloads.spec import ValidationFailed


def _stacks(request: HttpRequest) -> Any:
    return Stack.objects.visible_to(request.user).select_related("project", "current_revision")


def _project_choice(request: HttpRequest, value: str) -> Project | None:
    allowed = policy.projects_for(request.user, "stack.create")
    if not value:
        if policy.is_platform_admin(request.user):
            return None
        project = allowed.first()
        if project is None:
            raise PermissionDenied("you may not create stacks in any project")
        return project
    project = allowed.filter(pk=value).first() if value.isdigit() else None
    if project is None:
        audit_refused_project(request, "stack.create")
        raise ValidationFailed({"project": ["choose one of your projects"]})
    return project


def _compose_errors(exc: ValidationFailed) -> tuple[list[dict[str, Any]], str]:
    """(issues with lines for the editor, other errors as text)."""
    errors: dict[str, Any] = dict(exc.errors)  # "compose" holds issue dicts, the rest text
    issues = errors.pop("compose", [])
    lines = [i for i in issues if isinstance(i, dict)]
    other = [str(i) for i in issues if not isinstance(i, dict)]
    text = "; ".join([*other, *(f"{k}: {' '.join(map(str, v))}" for k, v in errors.items())])
    return lines, text


def _refused_status(context: dict[str, Any], conflict: bool = False) -> int:
    """What a page answers: 200, or, re-rendering a refused form (errors shown inline), 400 for
    bad input and 409 for a clash with the stack's state — as the API and the container,
    volume and network forms do."""
    if conflict:
        return 409
    return 400 if context["issues"] or context["error"] else 200


@signed_in
def stack_list(request: HttpRequest) -> HttpResponse:
    rows = [stack_data(stack) for stack in _stacks(request)]
    return render(request, "stacks/list.html", {
        "stacks": rows, "can_create": policy.can(request.user, "stack.create")})


@signed_in
def stack_new(request: HttpRequest) -> HttpResponse:
    policy.authorize(request.user, "stack.create", None, actor(request))  # 403 audited
    context: dict[str, Any] = {
        "projects": policy.projects_for(request.user, "stack.create"),
        "compose": request.POST.get("compose", ""), "name": request.POST.get("name", ""),
        "environment": request.POST.get("environment", ""), "issues": [], "error": "",
        "files_json": request.POST.get("files_json", "")}
    if request.method == "POST":
        try:
            project = _project_choice(request, request.POST.get("project", ""))
            policy.authorize_create(request.user, "stack.create", project, actor(request))
            environment = _parse_env(request.POST.get("environment", ""))
            stack = services.create_stack(
                actor(request), request.POST.get("name", ""), context["compose"], project,
                environment, allow_bind_mounts=policy.is_platform_admin(request.user),
                files=_posted_files(request))
            _warn(request, stack)
            services.deploy_stack(actor(request), stack, "created in the editor",
                                  allow_bind_mounts=policy.is_platform_admin(request.user))
            messages.success(request, f"Stack {stack.name} created; deploying revision 1.")
            return HttpResponseRedirect(reverse("web-stack", args=[stack.pk]))
        except ValidationFailed as exc:
            context["issues"], context["error"] = _compose_errors(exc)
    context["lines"] = _numbered(context["compose"], context["issues"])
    return render(request, "stacks/editor.html", context, status=_refused_status(context))


def _posted_files(request: HttpRequest) -> Any:
    """The folder the editor read (stack_files.js): None (keep the stack's files) when no
    folder was picked."""
    text = request.POST.get("files_json", "")
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ValidationFailed({"files": ["the chosen folder could not be read; pick it again"]}
                               ) from None


def _warn(request: HttpRequest, stack: Stack) -> None:
    """What Compose would warn about too (an unset variable), at its line."""
    for warning in getattr(stack, "compose_warnings", []):
        messages.warning(request, f"line {warning['line']}: {warning['message']}")


def _parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines of the editor's environment box."""
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValidationFailed({"environment": [f"line {number}: write KEY=VALUE"]})
        values[key.strip()] = value
    return values


def _numbered(text: str, issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The compose text as numbered lines, each with the errors found on it."""
    by_line: dict[int, list[dict[str, Any]]] = {}
    for issue in issues:
        by_line.setdefault(int(issue.get("line") or 0), []).append(issue)
    return [{"number": n, "text": line, "issues": by_line.get(n, [])}
            for n, line in enumerate(text.splitlines() or [""], 1)]


@signed_in
def stack_detail(request: HttpRequest, pk: int) -> HttpResponse:
    stack = get_visible(request, Stack.objects.select_related("project", "current_revision"),
                        "stack.view", pk=pk)
    context: dict[str, Any] = {
        "stack": stack, "data": stack_data(stack), "services": services_data(stack),
        "revisions": [revision_data(r) for r in stack.revisions.order_by("-number")[:50]],
        "can_deploy": policy.can(request.user, "stack.deploy", stack),
        "can_update": policy.can(request.user, "stack.update", stack),
        "can_rollback": policy.can(request.user, "stack.rollback", stack),
        "can_logs": policy.can(request.user, "stack.logs", stack),
        "can_remove": policy.can(request.user, "stack.remove", stack),
        "compose": stack.compose, "issues": [], "error": "",
        "files_json": request.POST.get("files_json", "")}
    conflict = False
    if request.method == "POST":
        policy.authorize(request.user, "stack.update", stack, actor(request))
        context["compose"] = request.POST.get("compose", "")
        try:
            with transaction.atomic():  # a deploy that cannot start keeps the old text too
                updated = services.update_stack(
                    actor(request), stack, context["compose"],
                    allow_bind_mounts=policy.is_platform_admin(request.user),
                    files=_posted_files(request))
                _warn(request, updated)
                if policy.can(request.user, "stack.deploy", stack):
                    services.deploy_stack(
                        actor(request), stack,
                        request.POST.get("message", "") or "edited in the editor",
                        allow_bind_mounts=policy.is_platform_admin(request.user))
            messages.success(request, "Compose file saved; deploying a new revision.")
            return HttpResponseRedirect(reverse("web-stack", args=[stack.pk]))
        except ValidationFailed as exc:
            context["issues"], context["error"] = _compose_errors(exc)
        except Conflict as exc:
            context["error"], conflict = str(exc), True
            stack.refresh_from_db()
    context["lines"] = _numbered(context["compose"], context["issues"])
    return render(request, "stacks/detail.html", context,
                  status=_refused_status(context, conflict))


@signed_in
@require_POST
def stack_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    verbs = {"deploy": "deploy", "update": "deploy", "rollback": "rollback", "remove": "remove"}
    if action not in verbs:
        raise Http404("no such action")
    stack = get_visible(request, Stack.objects.all(), f"stack.{verbs[action]}", pk=pk)
    try:
        if action in ("deploy", "update"):
            revision = services.deploy_stack(actor(request), stack,
                                             request.POST.get("message", ""),
                                             pull=action == "update")
            messages.success(request, f"Deploying revision {revision.number}.")
        elif action == "rollback":
            revision = services.rollback_stack(actor(request), stack,
                                               request.POST.get("revision", ""))
            messages.success(request, f"Rolling back (revision {revision.number}).")
        else:
            services.remove_stack(actor(request), stack)
            messages.success(request, f"Stack {stack.name} removed.")
            return HttpResponseRedirect(reverse("web-stacks"))
    except (ValidationFailed, Conflict) as exc:
        messages.error(request, error_text(exc))
    return HttpResponseRedirect(reverse("web-stack", args=[stack.pk]))


@signed_in
def stack_diff(request: HttpRequest, pk: int) -> HttpResponse:
    stack = get_visible(request, Stack.objects.all(), "stack.history", pk=pk)
    numbers = [request.GET.get("from", ""), request.GET.get("to", "")]
    found = [stack.revisions.filter(number=int(n)).first() if n.isdigit() else None
             for n in numbers]
    revisions = [r for r in found if r is not None]
    if len(revisions) != 2:
        raise Http404("choose two revisions of this stack")
    return render(request, "stacks/diff.html", {
        "stack": stack, "diff": diff_revisions(revisions[0], revisions[1]),
        "in_words": changes(revisions[0].spec, revisions[1].spec)})


def _templates(request: HttpRequest) -> list[Any]:
    own = StackTemplate.objects.visible_to(request.user)
    return [*builtin().values(), *(from_model(row) for row in own)]


@signed_in
def catalogue(request: HttpRequest) -> HttpResponse:
    return render(request, "stacks/catalogue.html", {"templates": _templates(request)})


@signed_in
def template_form(request: HttpRequest, key: str) -> HttpResponse:
    template = next((t for t in _templates(request) if t.key == key), None)
    if template is None:
        hidden = StackTemplate.objects.filter(pk=int(key[5:])).first() \
            if key.startswith("team-") and key[5:].isdigit() else None
        if hidden is not None:  # another team's: audited (denied), answered as missing
            policy.deny_missing(actor(request), "stacktemplate.view", hidden)
        raise Http404("no such template")
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        policy.authorize(request.user, "stack.create", None, actor(request))  # 403 audited
        values: dict[str, Any] = {p["name"]: request.POST.get(p["name"], "")
                                  for p in template.parameters}
        if any(p.get("type") == "boolean" for p in template.parameters):
            for parameter in template.parameters:
                if parameter.get("type") == "boolean":
                    values[parameter["name"]] = parameter["name"] in request.POST
        try:
            check_values(template.parameters, values)
            project = _project_choice(request, request.POST.get("project", ""))
            policy.authorize_create(request.user, "stack.deploy", project, actor(request))
            revision = services.deploy_template(actor(request), template,
                                                request.POST.get("name", ""), project, values)
            messages.success(request, f"Stack {revision.stack.name} created from "
                                      f"{template.title}; deploying.")
            return HttpResponseRedirect(reverse("web-stack", args=[revision.stack_id]))
        except ValidationFailed as exc:
            errors = {k: [str(m) for m in v] for k, v in exc.errors.items()}
    fields = [{**p, "value": request.POST.get(p["name"], p.get("default", "")),
               "errors": errors.get(p["name"], [])} for p in template.parameters]
    return render(request, "stacks/template.html", {
        "template": template, "fields": fields, "errors": errors,
        "projects": policy.projects_for(request.user, "stack.create"),
        "name": request.POST.get("name", "")}, status=400 if errors else 200)
