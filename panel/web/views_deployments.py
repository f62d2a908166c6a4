"""Deployments for managers (any role that may view the project): a plain-language timeline of
stack revisions, filterable by project, stack, person and period; each application's health,
version and last change; and the period as CSV or as a printable one-page report (a print
stylesheet: no PDF library, the browser's "Save as PDF" makes the file)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from panel.access import policy
from panel.audit.export import drain
from panel.stacks.models import Revision, Stack
from panel.stacks.timeline import changes, first_reason, health, previous_revisions, sentence
from panel.web.common import actor, signed_in

PAGE = 100
REPORT_LIMIT = 500
CSV_COLUMNS = ("started", "finished", "project", "stack", "revision", "person", "kind",
               "changes", "outcome", "reason", "sentence")


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _chosen(request: HttpRequest) -> dict[str, str]:
    return {k: request.GET.get(k, "").strip() for k in ("project", "stack", "person", "since",
                                                        "until")}


def _stacks(request: HttpRequest, chosen: dict[str, str]) -> Any:
    stacks = policy.visible(request.user, Stack.objects.all())
    if chosen["project"]:
        stacks = stacks.filter(project__name=chosen["project"])
    if chosen["stack"]:
        stacks = stacks.filter(name=chosen["stack"])
    return stacks


def _revisions(request: HttpRequest, chosen: dict[str, str]) -> tuple[Any, list[str]]:
    """The chosen revisions, newest first, and the filter errors (a bad date is named)."""
    errors = []
    revisions = Revision.objects.filter(stack__in=_stacks(request, chosen)).select_related(
        "stack__project").order_by("-created_at", "-pk")
    if chosen["person"]:
        revisions = revisions.filter(actor_name=chosen["person"])
    for name, lookup, shift in (("since", "created_at__gte", 0), ("until", "created_at__lt", 1)):
        if not chosen[name]:
            continue
        day = _day(chosen[name])
        if day is None:
            errors.append(f"{name}: {chosen[name]!r} is not a date: use YYYY-MM-DD")
            continue
        moment = timezone.make_aware(datetime.combine(day + timedelta(days=shift),
                                                      datetime.min.time()))
        revisions = revisions.filter(**{lookup: moment})
    return revisions, errors


def _rows(revisions: list[Revision]) -> list[dict[str, Any]]:
    before = previous_revisions(revisions)
    rows = []
    for revision in revisions:
        previous = before.get((revision.stack_id, revision.number - 1))
        rows.append({"revision": revision, "stack": revision.stack,
                     "sentence": sentence(revision, previous),
                     "changes": changes(previous.spec, revision.spec) if previous else [],
                     "reason": first_reason(revision)})
    return rows


def _context(request: HttpRequest, limit: int) -> dict[str, Any]:
    chosen = _chosen(request)
    revisions, errors = _revisions(request, chosen)
    before = request.GET.get("before", "")
    if before.isdigit():
        revisions = revisions.filter(pk__lt=int(before))
    page = list(revisions[:limit + 1])
    older = page[limit - 1].pk if len(page) > limit else None
    stacks = list(_stacks(request, chosen).select_related("project", "current_revision")
                  .order_by("name")[:200])
    summary = health(stacks)
    people = sorted(set(Revision.objects.filter(stack__in=policy.visible(
        request.user, Stack.objects.all())).values_list("actor_name", flat=True)[:1000]))
    return {"rows": _rows(page[:limit]), "older": older, "errors": errors, "chosen": chosen,
            "apps": [{"stack": s, "health": summary[s.pk]} for s in stacks],
            "projects": policy.projects_for(request.user, "project.view").order_by("name"),
            "people": [p for p in people if p],
            "query": {k: v for k, v in chosen.items() if v}}


@signed_in
def deployments(request: HttpRequest) -> HttpResponse:
    policy.authorize(request.user, "stack.view", None, actor(request))
    context = _context(request, PAGE)
    return render(request, "deployments/list.html", context,
                  status=400 if context["errors"] else 200)


@signed_in
def deployments_report(request: HttpRequest) -> HttpResponse:
    """The period on one printable page: counts, each application's health, the timeline."""
    policy.authorize(request.user, "stack.view", None, actor(request))
    context = _context(request, REPORT_LIMIT)
    statuses = [row["revision"].status for row in context["rows"]]
    context["counts"] = {"deploys": len(statuses),
                         "succeeded": statuses.count(Revision.SUCCEEDED),
                         "rolled back": statuses.count(Revision.ROLLED_BACK),
                         "failed": statuses.count(Revision.FAILED) + statuses.count(
                             Revision.PAUSED)}
    context["generated"] = timezone.now()
    return render(request, "deployments/report.html", context,
                  status=400 if context["errors"] else 200)


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield drain(buffer)  # the header, even when no row follows
    for row in rows:
        revision = row["revision"]
        writer.writerow([
            revision.created_at.isoformat(),
            revision.finished_at.isoformat() if revision.finished_at else "",
            revision.stack.project.name if revision.stack.project else "", revision.stack.name,
            revision.number, revision.actor_name,
            "rollback" if revision.rollback_of else "deploy", "; ".join(row["changes"]),
            revision.status, row["reason"], row["sentence"]])
        yield drain(buffer)


@signed_in
def deployments_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    policy.authorize(request.user, "stack.view", None, actor(request))
    revisions, errors = _revisions(request, _chosen(request))
    if errors:
        return HttpResponse("; ".join(errors), status=400, content_type="text/plain")

    def rows() -> Iterator[dict[str, Any]]:
        batch: list[Revision] = []
        for revision in revisions.iterator(chunk_size=500):
            batch.append(revision)
            if len(batch) == 500:
                yield from _rows(batch)
                batch = []
        yield from _rows(batch)

    response = StreamingHttpResponse(_csv(rows()), content_type="text/csv")
    stamp = f"berth-deployments-{datetime.now():%Y%m%d-%H%M%S}"
    response["Content-Disposition"] = f'attachment; filename="{stamp}.csv"'
    return response
