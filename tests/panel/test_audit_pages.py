"""The audit log page with Django's test client: a denied attempt found by search and
exported, an event's before/after diff, who sees which events (404 outside), keyset pages
with a constant number of queries, a bad filter named, and "verify now" as an operation."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from panel.access import services as access
from panel.audit.models import AuditEvent
from panel.audit.services import Actor, record_event
from panel.audit.verification import run_verification
from panel.workloads import services as workloads
from panel.workloads.models import Operation
from tests.panel.fixtures import main_of, page_client, two_teams

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")


@pytest.fixture
def world(django_user_model: Any, make_host: Any, broker: Any) -> dict[str, Any]:
    teams = two_teams(django_user_model, platform=True)
    users = teams.users
    users["auditor"] = django_user_model.objects.create_user("auditor", password="pw-aaaaaa")
    access.set_member(SYSTEM, teams.team_a, "auditor", "auditor")
    make_host("h1")
    container, _ = workloads.create_container(SYSTEM, {"name": "web", "image": "busybox"},
                                              teams.alpha)
    return {"users": users, "team": teams.team_a, "alpha": teams.alpha, "container": container}




def test_the_auditor_finds_the_viewers_denied_stop_by_search_and_exports_it(world):
    viewer = page_client(world["users"]["viewer"])
    stop = viewer.post(reverse("web-container-stop", args=[world["container"].pk]))
    assert stop.status_code == 403
    auditor = page_client(world["users"]["auditor"])
    page = auditor.get(reverse("web-audit"), {"q": "container.stop", "outcome": "denied"})
    assert page.status_code == 200
    rows = main_of(page).split('<tbody>', 1)[1]
    assert "viewer" in rows and "container.stop" in rows and "s-denied" in rows
    assert "Viewer was refused: container.stop on web" in rows
    assert "team.create" not in rows  # the filter applied

    export = auditor.get(reverse("web-audit-export"),
                         {"q": "container.stop", "outcome": "denied", "format": "csv"})
    assert export.status_code == 200 and export["Content-Type"] == "text/csv"
    records = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [(r["actor"], r["action"], r["outcome"]) for r in records] == [
        ("viewer", "container.stop", "denied")]
    lines = auditor.get(reverse("web-audit-export"), {"actor": "viewer", "format": "jsonl"})
    events = [json.loads(line) for line in b"".join(lines.streaming_content).splitlines()]
    assert events and all(e["actor"] == "viewer" for e in events)


def test_an_event_page_shows_the_before_and_after_diff(world):
    access.update_team(SYSTEM, world["team"], description="the shop team")
    event = AuditEvent.objects.filter(action="team.change").latest("seq")
    page = page_client(world["users"]["auditor"]).get(reverse("web-audit-event", args=[event.seq]))
    assert page.status_code == 200
    diff = main_of(page).split('id="event-diff"', 1)[1].split("</table>", 1)[0]
    assert "<code>description</code>" in diff and "the shop team" in diff
    assert "require_2fa" not in diff  # only what changed


def test_who_sees_the_audit_log(world):
    event = AuditEvent.objects.filter(team_id=world["team"].pk).latest("seq")
    url = reverse("web-audit-event", args=[event.seq])
    assert page_client(world["users"]["viewer"]).get(reverse("web-audit")).status_code == 403
    assert page_client(world["users"]["viewer"]).get(url).status_code == 404
    other = page_client(world["users"]["other"])  # admin of b-team: sees b-team's events only
    assert other.get(url).status_code == 404
    listing = main_of(other.get(reverse("web-audit")))
    assert "a-team" not in listing.split("<tbody>", 1)[1]
    denied = AuditEvent.objects.filter(actor_name="other", outcome="denied")
    assert denied.filter(action="auditevent.view").exists()
    assert page_client(world["users"]["platform"]).get(url).status_code == 200
    assert Client().get(reverse("web-audit")).status_code == 302


def test_pages_of_fifty_with_a_constant_number_of_queries(world):
    auditor = page_client(world["users"]["auditor"])

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert auditor.get(reverse("web-audit")).status_code == 200
        return len(captured)

    few = queries()
    for n in range(300):
        record_event(SYSTEM, "container.start", world["container"], n=n)
    assert queries() == few
    first = main_of(auditor.get(reverse("web-audit"), {"action": "container.start"}))
    assert first.count('<tr>') == 51 and "Older events" in first  # the header row too
    older = int(first.split("before=")[1].split('"')[0])
    second = main_of(auditor.get(reverse("web-audit"), {"action": "container.start",
                                                      "before": older}))
    seqs = [int(n) for n in re.findall(r'href="/audit/(\d+)/"', second)]
    assert seqs and max(seqs) < older


def test_a_bad_filter_is_named_with_a_400(world):
    auditor = page_client(world["users"]["auditor"])
    page = auditor.get(reverse("web-audit"), {"since": "yesterday"})
    assert page.status_code == 400 and "since: " in page.content.decode()
    export = auditor.get(reverse("web-audit-export"), {"outcome": "maybe", "format": "csv"})
    assert export.status_code == 400 and b"outcome" in export.content
    assert auditor.get(reverse("web-audit-export"), {"format": "xml"}).status_code == 400


def test_verify_now_runs_as_an_operation_and_the_page_shows_the_result(world):
    platform = page_client(world["users"]["platform"])
    assert page_client(world["users"]["auditor"]).post(reverse("web-audit-verify")).status_code \
        == 403
    response = platform.post(reverse("web-audit-verify"))
    operation = Operation.objects.get(kind="audit.verify")
    assert response.status_code == 302 and str(operation.pk) in response["Location"]
    result = run_verification(str(operation.pk))  # what the control worker runs
    operation.refresh_from_db()
    assert result["ok"] and operation.status == "succeeded" and operation.progress == 1.0
    assert result["checked"] == AuditEvent.objects.count() - 1  # its own start event is after
    status = main_of(platform.get(reverse("web-audit"))).split('id="chain-status"', 1)[1]
    assert "intact" in status and "Verify now" in status
    auditor_view = main_of(page_client(world["users"]["auditor"]).get(reverse("web-audit")))
    assert "Verify now" not in auditor_view
