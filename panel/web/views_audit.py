"""The audit log in the browser (auditors and admins of a team see its events, platform
administrators all): filters and search shared with the REST API, keyset pages of 50 (constant
queries and time however long the log), one event with its before/after diff, exports of the
filtered set, and the chain's verification status with "verify now" for platform admins."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from panel.access import policy
from panel.api.audit_views import filter_events
from panel.audit.describe import describe
from panel.audit.export import KINDS, export_response
from panel.audit.models import AuditEvent, ChainHead
from panel.audit.verification import last_verification, start_verification
from panel.web.common import actor, error_text, signed_in
from panel.workloads.spec import ValidationFailed

PAGE = 50
FILTERS = ("q", "actor", "action", "target", "outcome", "channel", "project", "since", "until")


def _params(request: HttpRequest) -> dict[str, str]:
    """The page's filters as the API's: `until` from a date field includes that day."""
    chosen = {k: request.GET.get(k, "").strip() for k in FILTERS}
    chosen = {k: v for k, v in chosen.items() if v}
    if len(chosen.get("until", "")) == 10:
        try:
            chosen["until"] = (date.fromisoformat(chosen["until"])
                               + timedelta(days=1)).isoformat()
        except ValueError:
            pass  # filter_events names the field
    return chosen


def _events(request: HttpRequest) -> Any:
    return filter_events(_params(request), policy.visible(request.user,
                                                          AuditEvent.objects.all()))


@signed_in
def audit_log(request: HttpRequest) -> HttpResponse:
    policy.authorize(request.user, "auditevent.view", None, actor(request))
    error, rows, older = "", [], None
    before = request.GET.get("before", "")
    try:
        events = _events(request)
        if before.isdigit():
            events = events.filter(seq__lt=int(before))
        rows = list(events.order_by("-seq")[:PAGE + 1])
    except ValidationFailed as exc:
        error = error_text(exc)
    if len(rows) > PAGE:
        rows, older = rows[:PAGE], rows[PAGE - 1].seq
    for event in rows:
        event.sentence = describe(event)
    query = {k: v for k, v in request.GET.items() if k in FILTERS and v}
    return render(request, "audit/list.html", {
        "events": rows, "older": older, "newest": bool(before), "error": error,
        "chosen": {k: request.GET.get(k, "") for k in FILTERS}, "query": query,
        "outcomes": [o for o, _ in AuditEvent.OUTCOMES],
        "channels": [c for c, _ in AuditEvent.CHANNELS],
        "may_export": policy.can(request.user, "auditevent.export"),
        "may_verify": policy.can(request.user, "auditevent.verify"),
        "verification": last_verification() if policy.is_platform_admin(request.user)
        else None,
        "head": ChainHead.objects.filter(pk=1).first()}, status=400 if error else 200)


def _flatten(value: Any, path: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for key in value:
            _flatten(value[key], f"{path}.{key}" if path else str(key), out)
    else:
        out[path] = value
    return out


def before_after(details: dict[str, Any]) -> list[dict[str, Any]]:
    """The fields an event's `before`/`after` differ in, as rows of path, old and new."""
    old = _flatten(details.get("before") or {}, "", {})
    new = _flatten(details.get("after") or {}, "", {})
    missing = object()
    rows = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path, missing), new.get(path, missing)
        if a != b:
            rows.append({"path": path, "old": "" if a is missing else a,
                         "new": "" if b is missing else b,
                         "change": "added" if a is missing else "removed" if b is missing
                         else "changed"})
    return rows


@signed_in
def audit_event(request: HttpRequest, pk: int) -> HttpResponse:
    # no role check first: an event the user may not see does not exist for them (404)
    event = policy.visible(request.user, AuditEvent.objects.all()).filter(seq=pk).first()
    if event is None:
        hidden = AuditEvent.objects.filter(seq=pk).first()
        if hidden is not None:
            policy.deny_missing(actor(request), "auditevent.view", hidden)
        raise Http404(f"no audit event #{pk}")
    details = event.details
    other = {k: v for k, v in details.items() if k not in ("before", "after")}
    return render(request, "audit/event.html", {
        "event": event, "sentence": describe(event), "diff": before_after(details),
        "other": json.dumps(other, indent=2, sort_keys=True, ensure_ascii=False),
        "raw": json.dumps(details, indent=2, sort_keys=True, ensure_ascii=False)})


@signed_in
def audit_export(request: HttpRequest) -> HttpResponseBase:
    policy.authorize(request.user, "auditevent.export", None, actor(request))
    kind = request.GET.get("format", "csv")
    if kind not in KINDS:
        return HttpResponse(f"format {kind!r} is not allowed: use csv or jsonl", status=400,
                            content_type="text/plain")
    try:
        events = _events(request)
        events.exists()  # a bad filter fails here, before the download starts
    except ValidationFailed as exc:
        return HttpResponse(error_text(exc), status=400, content_type="text/plain")
    return export_response(events, kind)


@require_POST
@signed_in
def audit_verify(request: HttpRequest) -> HttpResponse:
    policy.authorize(request.user, "auditevent.verify", None, actor(request))
    operation = start_verification(actor(request))
    messages.success(request, "Verifying the audit chain: this page shows its progress.")
    return HttpResponseRedirect(reverse("web-operation", args=[operation.pk]))
