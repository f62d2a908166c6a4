"""REST API v1: thin views over the service layer. Lists are filtered by query parameters and
paginated; writes answer at once with the resource and the id of the operation that tracks it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from panel.access import policy
from panel.api import serializers as s
from panel.api.permissions import Scoped, actor_of, project_for_create
from panel.fleet.dispatch import call_host, host_for_rpc
from panel.fleet.models import DOWN, UP, Host
from panel.workloads import services
from panel.workloads.models import Container, Image, Network, Operation, Volume
from panel.workloads.spec import ValidationFailed

_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise ValidationFailed({name: [f"{value!r} is not allowed: use one of "
                                       f"{', '.join(allowed)}"]})
    return value


def _label_filter(request: Request, queryset: QuerySet, field: str = "labels") -> QuerySet:
    """`?label=KEY` (present) or `?label=KEY=VALUE`, repeatable (all must match)."""
    for text in request.query_params.getlist("label"):
        key, sep, value = text.partition("=")
        if not _LABEL_KEY.match(key) or "__" in key:
            raise ValidationFailed({"label": [f"{text!r} is not allowed: use KEY or KEY=VALUE"]})
        queryset = queryset.filter(**{f"{field}__{key}": value}) if sep else \
            queryset.filter(**{f"{field}__has_key": key})
    return queryset


def _with_operation(data: dict[str, Any], operation: Operation) -> dict[str, Any]:
    return {**data, "operation": str(operation.pk)}


class HostViewSet(Scoped, viewsets.ReadOnlyModelViewSet):
    """Hosts and their agents (every signed-in user). `?status=up|down&label=K=V&name=…`"""

    serializer_class = s.HostSerializer
    lookup_value_regex = r"[^/]+"
    resource = "host"

    def base_queryset(self) -> QuerySet:
        return Host.objects.all()

    def get_queryset(self) -> QuerySet:
        queryset = self.scoped(self.base_queryset())
        wanted = _choice(self.request, "status", (UP, DOWN))
        if wanted:
            alive = Host.objects.alive().values("pk")
            queryset = queryset.filter(pk__in=alive) if wanted == UP else \
                queryset.exclude(pk__in=alive)
        if self.request.query_params.get("name"):
            queryset = queryset.filter(name__icontains=self.request.query_params["name"])
        return _label_filter(self.request, queryset)


class ImageViewSet(Scoped, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Images known on any host; POST pulls one (admins and operators of a team).
    `?host=NAME&reference=…`"""

    serializer_class = s.ImageSerializer
    resource = "image"
    name_field = ""
    verbs = {"create": "pull"}

    def base_queryset(self) -> QuerySet:
        return Image.objects.prefetch_related("hosts")

    def get_queryset(self) -> QuerySet:
        queryset = self.scoped(self.base_queryset())
        params = self.request.query_params
        if params.get("host"):
            queryset = queryset.filter(hosts__name=params["host"])
        if params.get("reference"):
            queryset = queryset.filter(reference__icontains=params["reference"])
        return queryset

    @extend_schema(request=s.ImagePullRequest, responses={202: s.ImageSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        policy.authorize(request.user, "image.pull", None, self.actor(), self.token())
        data = request.data if isinstance(request.data, dict) else {}
        image, operations = services.pull_image(actor_of(request), data.get("reference"),
                                                 data.get("host"), data.get("credentials"))
        body = _with_operation(s.ImageSerializer(image).data, operations[0])
        body["operations"] = [str(o.pk) for o in operations]
        return Response(body, status=status.HTTP_202_ACCEPTED)


class ContainerViewSet(Scoped, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                       viewsets.ReadOnlyModelViewSet):
    """Containers: desired spec and observed state.

    Filters: `?status=` (observed), `desired_state=`, `host=`, `image=`, `name=`, `label=K[=V]`.
    Reached by id or by name."""

    serializer_class = s.ContainerSerializer
    lookup_value_regex = r"[^/]+"
    resource = "container"

    def base_queryset(self) -> QuerySet:
        return Container.objects.select_related("host", "requested_host", "project")

    def get_queryset(self) -> QuerySet:
        queryset = self.scoped(self.base_queryset())
        params = self.request.query_params
        if params.get("status"):
            queryset = queryset.filter(status=params["status"])
        desired = _choice(self.request, "desired_state", ("running", "stopped"))
        if desired:
            queryset = queryset.filter(desired_state=desired)
        if params.get("host"):
            queryset = queryset.filter(host__name=params["host"])
        if params.get("image"):
            queryset = queryset.filter(image=params["image"])
        if params.get("name"):
            queryset = queryset.filter(name__icontains=params["name"])
        if params.get("project"):
            queryset = queryset.filter(project__name=params["project"])
        return _label_filter(self.request, queryset)

    def _answer(self, container: Container, operation: Operation,
                code: int = status.HTTP_202_ACCEPTED) -> Response:
        container = self.get_queryset().get(pk=container.pk)
        return Response(_with_operation(s.ContainerSerializer(container).data, operation),
                        status=code)

    @extend_schema(request=s.ContainerCreateRequest, responses={201: s.ContainerSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = dict(request.data) if isinstance(request.data, dict) else request.data
        project = project_for_create(request, data.pop("project", None)
                                     if isinstance(data, dict) else None, "container.create")
        container, operation = services.create_container(actor_of(request), data, project)
        return self._answer(container, operation, status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("force", bool)], responses={202: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        operation = services.remove_container(actor_of(request), self.get_object(), force=force)
        return Response({"operation": str(operation.pk)}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: s.ContainerSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        container = self.get_object()
        return self._answer(container, services.start_container(actor_of(request), container))

    @extend_schema(request=None, parameters=[OpenApiParameter("timeout", int)],
                   responses={202: s.ContainerSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        container = self.get_object()
        timeout = _int_param(request, "timeout", 0, 3600)
        return self._answer(container, services.stop_container(actor_of(request), container,
                                                               timeout))

    @extend_schema(request=None, parameters=[OpenApiParameter("timeout", int)],
                   responses={202: s.ContainerSerializer})
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk: str | None = None) -> Response:
        container = self.get_object()
        timeout = _int_param(request, "timeout", 0, 3600)
        return self._answer(container, services.restart_container(actor_of(request), container,
                                                                  timeout))

    @extend_schema(request=None, parameters=[OpenApiParameter("signal", str)],
                   responses={202: s.ContainerSerializer})
    @action(detail=True, methods=["post"])
    def kill(self, request: Request, pk: str | None = None) -> Response:
        container = self.get_object()
        signal = request.query_params.get("signal") or (
            request.data.get("signal") if isinstance(request.data, dict) else None) or "KILL"
        return self._answer(container, services.kill_container(actor_of(request), container,
                                                               signal))

    @extend_schema(parameters=[OpenApiParameter("tail", str), OpenApiParameter("since", str),
                               OpenApiParameter("until", str),
                               OpenApiParameter("timestamps", bool)],
                   responses={200: None})
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, pk: str | None = None) -> Response:
        """The container's log, asked from its host's agent (RPC with a deadline)."""
        container = self.get_object()
        tail_text = request.query_params.get("tail", "all")
        tail = None if tail_text == "all" else _int_param(request, "tail", 0, 1_000_000)
        params = request.query_params
        timestamps = params.get("timestamps", "0").lower() in ("1", "true", "yes")
        for name in ("since", "until"):
            if params.get(name):
                _check_time(name, params[name])
        lines = call_host(host_for_rpc(container), "logs", str(container.uid), tail,
                          params.get("since") or None, params.get("until") or None, timestamps)
        return Response({"container": container.pk, "lines": lines})

    @extend_schema(responses={200: None})
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str | None = None) -> Response:
        """One stats sample of the container, asked from its host's agent."""
        container = self.get_object()
        return Response(call_host(host_for_rpc(container), "stats", str(container.uid)))

    @extend_schema(responses={200: None})
    @action(detail=True, methods=["get"])
    def secrets(self, request: Request, pk: str | None = None) -> Response:
        """The secret values in clear (team admins only; every read is audited)."""
        container = self.get_object()
        return Response({"container": container.pk,
                         "secrets": services.read_container_secrets(actor_of(request),
                                                                    container)})


def _check_time(name: str, value: str) -> None:
    from runtime.containers.logs import parse_time
    from runtime.errors import InvalidArgument

    try:
        parse_time(value, name)
    except InvalidArgument as exc:
        raise ValidationFailed({name: [str(exc).replace(f"--{name} ", "")]}) from None


def _int_param(request: Request, name: str, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None and isinstance(request.data, dict):
        raw = request.data.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationFailed({name: [f"{raw!r} is not allowed: a whole number from {low} "
                                       f"to {high}"]}) from None
    return value


class HostedFilters:
    """`?host=NAME&name=…&label=K[=V]` for resources that exist on a set of hosts (volumes,
    networks)."""

    def get_queryset(self) -> QuerySet:
        queryset = self.scoped(self.base_queryset())  # type: ignore[attr-defined]
        params = self.request.query_params  # type: ignore[attr-defined]
        if params.get("host"):
            queryset = queryset.filter(hosts__name=params["host"])
        if params.get("name"):
            queryset = queryset.filter(name__icontains=params["name"])
        return _label_filter(self.request, queryset)  # type: ignore[attr-defined]


class VolumeViewSet(HostedFilters, Scoped, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                    viewsets.ReadOnlyModelViewSet):
    """Named volumes. `?host=NAME&name=…&label=K[=V]`; reached by id or name."""

    serializer_class = s.VolumeSerializer
    lookup_value_regex = r"[^/]+"
    resource = "volume"

    def base_queryset(self) -> QuerySet:
        return Volume.objects.prefetch_related("hosts").select_related("project")

    @extend_schema(request=s.VolumeCreateRequest, responses={201: s.VolumeSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        project = project_for_create(request, data.get("project"), "volume.create")
        volume, operation = services.create_volume(actor_of(request), data.get("name"),
                                                   data.get("labels"), data.get("host"), project)
        return Response(_with_operation(s.VolumeSerializer(volume).data, operation),
                        status=status.HTTP_201_CREATED)

    @extend_schema(responses={202: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        operation = services.remove_volume(actor_of(request), self.get_object())
        return Response({"operation": str(operation.pk)}, status=status.HTTP_202_ACCEPTED)


class NetworkViewSet(HostedFilters, Scoped, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                     viewsets.ReadOnlyModelViewSet):
    """Bridge networks. `?host=NAME&name=…&label=K[=V]`; reached by id or name."""

    serializer_class = s.NetworkSerializer
    lookup_value_regex = r"[^/]+"
    resource = "network"

    def base_queryset(self) -> QuerySet:
        return Network.objects.prefetch_related("hosts").select_related("project")

    @extend_schema(request=s.NetworkCreateRequest, responses={201: s.NetworkSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        project = project_for_create(request, data.get("project"), "network.create")
        network, operation = services.create_network(
            actor_of(request), data.get("name"), data.get("subnet"), data.get("gateway"),
            data.get("labels"), project, internal=data.get("internal", False))
        return Response(_with_operation(s.NetworkSerializer(network).data, operation),
                        status=status.HTTP_201_CREATED)

    @extend_schema(responses={202: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        operation = services.remove_network(actor_of(request), self.get_object())
        return Response({"operation": str(operation.pk)}, status=status.HTTP_202_ACCEPTED)


class OperationViewSet(Scoped, viewsets.ReadOnlyModelViewSet):
    """Operations and their progress. `?status=&kind=&target_type=&target_id=&since_minutes=`"""

    serializer_class = s.OperationSerializer
    resource = "operation"

    def base_queryset(self) -> QuerySet:
        return Operation.objects.select_related("project")

    def get_queryset(self) -> QuerySet:
        queryset = self.scoped(self.base_queryset())
        params = self.request.query_params
        wanted = _choice(self.request, "status", tuple(dict(Operation.STATUSES)))
        if wanted:
            queryset = queryset.filter(status=wanted)
        for name in ("kind", "target_type", "target_id", "host_name"):
            if params.get(name):
                queryset = queryset.filter(**{name: params[name]})
        minutes = _int_param(self.request, "since_minutes", 1, 60 * 24 * 365)
        if minutes:
            queryset = queryset.filter(created_at__gte=timezone.now() - timedelta(minutes=minutes))
        return queryset

    def get_object(self) -> Operation:
        import uuid

        try:
            key = uuid.UUID(self.kwargs["pk"])
        except ValueError:
            raise ValidationFailed({"id": ["an operation id is a UUID"]}) from None
        operation = self.get_queryset().filter(pk=key).first()
        if operation is None:
            hidden = self.base_queryset().filter(pk=key).first()
            if hidden is not None:
                policy.deny_missing(self.actor(), "operation.view", hidden)
            raise Http404(f"no operation {key}")
        return operation


