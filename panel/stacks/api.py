"""REST API of stacks (`/api/v1/stacks/…`, `/api/v1/stack-templates/…`): thin views over the
service layer, authorised through the access policy (panel/api/permissions.py `Scoped`)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from panel.access import policy
from panel.api.permissions import Scoped, find, project_for_create
from panel.stacks import services
from panel.stacks.catalogue import builtin, from_model
from panel.stacks.compose import StackSpec, export_compose
from panel.stacks.logs import merged_logs
from panel.stacks.models import Revision, Stack, StackTemplate
from panel.stacks.presenters import diff_revisions, revision_data, stack_data
from panel.workloads.spec import ValidationFailed

STACK_FIELDS = ("name", "project", "compose", "environment", "secrets", "files", "deploy",
                "message")


def _body(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    data = request.data if isinstance(request.data, dict) else None
    if data is None:
        raise ValidationFailed({"non_field_errors": ["the request body must be a JSON object"]})
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationFailed({key: [f"unknown field: allowed {', '.join(allowed)}"]
                                for key in unknown})
    return dict(data)


def _flag(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise ValidationFailed({name: ["must be true or false"]})
    return value


def _revision_answer(revision: Revision, code: int = status.HTTP_202_ACCEPTED) -> Response:
    return Response(revision_data(revision), status=code)


class StackViewSet(Scoped, viewsets.ViewSet):
    """Stacks: compose-defined applications, deployed as revisions. Reached by id or name."""

    resource = "stack"
    lookup_value_regex = r"[^/]+"
    verbs = {"partial_update": "update", "deploy": "deploy", "revisions": "history",
             "revision": "history", "diff": "history", "rollback": "rollback",
             "compose": "view", "scale": "deploy", "logs": "logs", "template": "create"}

    def base_queryset(self) -> QuerySet:
        return Stack.objects.select_related("project", "current_revision")

    def _admin(self) -> bool:
        return policy.is_platform_admin(self.request.user)

    def list(self, request: Request) -> Response:
        queryset = self.get_queryset()
        if request.query_params.get("project"):
            queryset = queryset.filter(project__name=request.query_params["project"])
        return Response([stack_data(stack) for stack in queryset])

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(stack_data(self.get_object(), detail=True))

    def create(self, request: Request) -> Response:
        data = _body(request, STACK_FIELDS)
        project = project_for_create(request, data.get("project"), "stack.create")
        stack = services.create_stack(self.actor(), data.get("name"), data.get("compose"),
                                      project, data.get("environment"), data.get("secrets"),
                                      allow_bind_mounts=self._admin(), files=data.get("files"))
        body = stack_data(stack, detail=True)
        if _flag(data, "deploy", True):
            revision = services.deploy_stack(self.actor(), stack, str(data.get("message") or ""),
                                             allow_bind_mounts=self._admin())
            body["deployment"] = revision_data(revision)
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        stack = self.get_object()
        data = _body(request, ("compose", "environment", "secrets", "files", "deploy", "message"))
        deploy = _flag(data, "deploy", False)
        if deploy and not policy.can(request.user, "stack.deploy", stack, self.token()):
            policy.authorize(request.user, "stack.deploy", stack, self.actor(), self.token())
        with transaction.atomic():  # the change and its deploy, or neither (a 409 keeps none)
            stack = services.update_stack(self.actor(), stack, data.get("compose"),
                                          data.get("environment"), data.get("secrets"),
                                          allow_bind_mounts=self._admin(),
                                          files=data.get("files"))
            body = stack_data(stack, detail=True)
            if deploy:
                revision = services.deploy_stack(self.actor(), stack,
                                                 str(data.get("message") or ""),
                                                 allow_bind_mounts=self._admin())
                body["deployment"] = revision_data(revision)
        return Response(body)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        stack = self.get_object()
        volumes = request.query_params.get("volumes") in ("1", "true")
        operation = services.remove_stack(self.actor(), stack, volumes=volumes)
        return Response({"operation": str(operation.pk)}, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def deploy(self, request: Request, pk: str | None = None) -> Response:
        stack = self.get_object()
        data = _body(request, ("message", "pull"))
        revision = services.deploy_stack(self.actor(), stack, str(data.get("message") or ""),
                                         pull=_flag(data, "pull", False),
                                         allow_bind_mounts=self._admin())
        return _revision_answer(revision)

    @action(detail=True, methods=["get"])
    def revisions(self, request: Request, pk: str | None = None) -> Response:
        stack = self.get_object()
        return Response([revision_data(r) for r in stack.revisions.order_by("-number")])

    def _revision(self, stack: Stack, number: Any, field: str) -> Revision:
        revision = stack.revisions.filter(number=int(number)).first() \
            if str(number).isdigit() else None
        if revision is None:
            raise ValidationFailed({field: [f"stack {stack.name} has no revision {number}"]})
        return revision

    @action(detail=True, methods=["get"], url_path=r"revisions/(?P<number>\d+)")
    def revision(self, request: Request, pk: str | None = None,
                 number: str | None = None) -> Response:
        stack = self.get_object()
        revision = stack.revisions.filter(number=int(number or 0)).first()
        if revision is None:
            raise Http404(f"stack {stack.name} has no revision {number}")
        return Response(revision_data(revision, full=True))

    @action(detail=True, methods=["get"], url_path=r"revisions/(?P<number>\d+)/diff")
    def diff(self, request: Request, pk: str | None = None,
             number: str | None = None) -> Response:
        """What changed from revision `number` to `?to=` (default: the one after it)."""
        stack = self.get_object()
        old = stack.revisions.filter(number=int(number or 0)).first()
        if old is None:
            raise Http404(f"stack {stack.name} has no revision {number}")
        to = request.query_params.get("to", str(old.number + 1))
        return Response(diff_revisions(old, self._revision(stack, to, "to")))

    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str | None = None) -> Response:
        stack = self.get_object()
        data = _body(request, ("revision", "message"))
        revision = services.rollback_stack(self.actor(), stack, data.get("revision"),
                                           str(data.get("message") or ""))
        return _revision_answer(revision)

    @action(detail=True, methods=["get"])
    def compose(self, request: Request, pk: str | None = None) -> Response:
        """The deployed revision as a compose file that deploys to the same result (the
        stored text when nothing is deployed yet)."""
        stack = self.get_object()
        if stack.current_revision is None:
            text = stack.compose
        else:
            text = export_compose(StackSpec.from_dict(stack.current_revision.spec))
        return Response({"compose": text})

    @action(detail=True, methods=["post"], url_path=r"services/(?P<service>[^/]+)/scale")
    def scale(self, request: Request, pk: str | None = None,
              service: str | None = None) -> Response:
        stack = self.get_object()
        data = _body(request, ("replicas",))
        revision = services.scale_service(self.actor(), stack, str(service),
                                          data.get("replicas"))
        return _revision_answer(revision)

    @action(detail=True, methods=["get"])
    def logs(self, request: Request, pk: str | None = None) -> Response:
        """Every replica's log merged by time: `?tail=N&since=T&service=S`."""
        stack = self.get_object()
        tail = request.query_params.get("tail", "100")
        if not tail.isdigit():
            raise ValidationFailed({"tail": ["a whole number of lines"]})
        return Response(merged_logs(stack, int(tail), request.query_params.get("since"),
                                    request.query_params.get("service")))

    @action(detail=True, methods=["post"])
    def template(self, request: Request, pk: str | None = None) -> Response:
        """Save this stack as a template of its project."""
        stack = self.get_object()
        policy.authorize_create(request.user, "stacktemplate.create", stack.project,
                                self.actor(), self.token())
        data = _body(request, ("name", "title", "description"))
        template = services.save_as_template(self.actor(), stack, data.get("name"),
                                             str(data.get("title") or ""),
                                             str(data.get("description") or ""))
        return Response(template_data(from_model(template)), status=status.HTTP_201_CREATED)


def template_data(template: Any) -> dict[str, Any]:
    return {"key": template.key, "title": template.title, "description": template.description,
            "parameters": template.parameters, "compose": template.compose}


class StackTemplateViewSet(Scoped, viewsets.ViewSet):
    """The template catalogue: built-in templates and the team's own; POST …/{key}/deploy."""

    resource = "stacktemplate"
    lookup_value_regex = r"[^/]+"
    verbs = {"deploy": "view"}

    def base_queryset(self) -> QuerySet:
        return StackTemplate.objects.select_related("project")

    def _team_row(self, key: str) -> Any:
        """The team template `team-<id>` if the user may see it; one outside their teams is
        audited (denied) and answers as missing."""
        if not (key.startswith("team-") and key[5:].isdigit()):
            return None
        row = find(self.get_queryset(), key[5:], "")
        hidden = find(self.base_queryset(), key[5:], "") if row is None else None
        if hidden is not None:
            policy.deny_missing(self.actor(), self.policy_action(), hidden)
        return row

    def _find(self, key: str) -> Any:
        if key in builtin():
            return builtin()[key]
        row = self._team_row(key)
        if row is not None:
            return from_model(row)
        raise Http404(f"no template {key!r}")

    def list(self, request: Request) -> Response:
        own = [from_model(row) for row in self.get_queryset()]
        return Response([template_data(t) for t in [*builtin().values(), *own]])

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(template_data(self._find(str(pk))))

    @action(detail=True, methods=["post"])
    def deploy(self, request: Request, pk: str | None = None) -> Response:
        template = self._find(str(pk))
        data = _body(request, ("name", "project", "parameters"))
        project = project_for_create(request, data.get("project"), "stack.create")
        policy.authorize_create(request.user, "stack.deploy", project, self.actor(),
                                self.token())
        revision = services.deploy_template(self.actor(), template, data.get("name"), project,
                                            data.get("parameters") or {})
        body = stack_data(revision.stack, detail=True)
        body["deployment"] = revision_data(revision)
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        key = str(pk)
        row = self._team_row(key)
        if row is None:
            raise Http404(f"no team template {key!r}")
        policy.authorize(request.user, "stacktemplate.remove", row, self.actor(), self.token())
        services.remove_template(self.actor(), row)
        return Response(status=status.HTTP_204_NO_CONTENT)
