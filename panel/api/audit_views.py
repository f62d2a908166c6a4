"""REST API v1: the audit log (admins and auditors of a team see their team's events, platform
administrators all), with the filters of the audit page and export as CSV or JSON lines.

Filters: `since`, `until` (ISO 8601), `actor`, `action` (exact, or a prefix ending in "."),
`target` (name contains), `target_type`, `target_id` (the history of one object), `project`
(id or name), `team`, `outcome`, `q` (search in actor, action, target and details).
`?format=csv` or `?format=jsonl` streams every matching event instead of a page."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from panel.access import policy
from panel.api.access_serializers import AuditEventSerializer
from panel.api.permissions import Scoped
from panel.audit.export import export_response
from panel.audit.models import AuditEvent
from panel.workloads.spec import ValidationFailed


class CSVRenderer(renderers.BaseRenderer):
    media_type, format, charset = "text/csv", "csv", "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None,
               renderer_context: Any = None) -> bytes:
        return json.dumps(data).encode()  # errors only; exports stream their own body


class JSONLinesRenderer(CSVRenderer):
    media_type, format = "application/jsonl", "jsonl"


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    """A time filter: ISO 8601, or a date (its midnight, in the panel's time zone)."""
    raw = params.get(name)
    if not raw:
        return None
    try:
        moment = parse_datetime(raw)
        day = parse_date(raw) if moment is None and len(raw) == 10 else None
    except ValueError:  # well formed but no such day or hour
        moment, day = None, None
    if day is not None:
        moment = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    elif moment is not None and timezone.is_naive(moment):
        # parse_datetime reads "2026-11-28" as a naive midnight (datetime.fromisoformat):
        # that midnight, or a time without an offset, is in the panel's time zone
        moment = timezone.make_aware(moment)
    if moment is None:
        raise ValidationFailed({name: [f"{raw!r} is not a time: use ISO 8601, e.g. "
                                       "2026-11-28T14:00:00Z, or a date, 2026-11-28"]})
    return moment


def filter_events(params: Mapping[str, str], queryset: QuerySet) -> QuerySet:
    """The audit page's filters (see the module docstring, `params` is the query string)
    applied to `queryset`; the API and the audit page share them."""
    since, until = _time(params, "since"), _time(params, "until")
    if since:
        queryset = queryset.filter(created_at__gte=since)
    if until:
        queryset = queryset.filter(created_at__lt=until)
    if params.get("actor"):
        queryset = queryset.filter(actor_name=params["actor"])
    if params.get("action"):
        action = params["action"]
        queryset = queryset.filter(action__startswith=action) if action.endswith(".") \
            else queryset.filter(action=action)
    if params.get("target"):
        queryset = queryset.filter(target_name__icontains=params["target"])
    for name in ("target_type", "target_id", "channel"):
        if params.get(name):
            queryset = queryset.filter(**{name: params[name]})
    for name in ("project", "team"):
        value = params.get(name)
        if value:
            queryset = queryset.filter(**{f"{name}_id": int(value)}) if value.isdigit() \
                else queryset.filter(**{f"{name}_name": value})
    outcome = params.get("outcome")
    if outcome:
        allowed = [o for o, _ in AuditEvent.OUTCOMES]
        if outcome not in allowed:
            raise ValidationFailed({"outcome": [f"{outcome!r} is not allowed: use one of "
                                                f"{', '.join(allowed)}"]})
        queryset = queryset.filter(outcome=outcome)
    if params.get("q"):
        text = params["q"]
        queryset = queryset.filter(Q(actor_name__icontains=text) | Q(action__icontains=text)
                                   | Q(target_name__icontains=text)
                                   | Q(details_json__icontains=text))
    return queryset


class AuditEventViewSet(Scoped, viewsets.ReadOnlyModelViewSet):
    __doc__ = __doc__
    serializer_class = AuditEventSerializer
    resource = "auditevent"
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CSVRenderer,
                        JSONLinesRenderer]

    def base_queryset(self) -> QuerySet:
        return AuditEvent.objects.all()

    def get_queryset(self) -> QuerySet:
        return filter_events(self.request.query_params, self.scoped(self.base_queryset()))

    def get_object(self) -> AuditEvent:
        value = str(self.kwargs.get("pk", ""))
        event = self.get_queryset().filter(seq=int(value)).first() if value.isdigit() else None
        if event is None:
            hidden = AuditEvent.objects.filter(seq=int(value)).first() if value.isdigit() \
                else None
            if hidden is not None:
                policy.deny_missing(self.actor(), "auditevent.view", hidden)
            raise Http404(f"no audit event #{value}")
        return event

    @extend_schema(parameters=[OpenApiParameter(n, str) for n in (
        "since", "until", "actor", "action", "target", "target_type", "target_id", "project",
        "team", "outcome", "q", "format")])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        policy.authorize(request.user, "auditevent.view", None, self.actor(), self.token())
        kind = request.query_params.get("format")
        if kind in ("csv", "jsonl"):
            policy.authorize(request.user, "auditevent.export", None, self.actor(),
                             self.token())
            return export_response(self.get_queryset(), kind)
        if kind not in (None, "json", "api"):
            raise ValidationFailed({"format": [f"{kind!r} is not allowed: use csv or jsonl"]})
        return super().list(request, *args, **kwargs)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.get_serializer(self.get_object()).data)
