"""The managers' deployments page with Django's test client: a rolled-back deploy told in
plain language (the services the deploy engine calls record the revisions), each
application's health and version, the filters, the CSV export and the printable report,
what changed explained in words, and who sees which stacks."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from panel.audit.services import Actor
from panel.stacks import services as stacks
from panel.stacks.models import Revision
from panel.stacks.timeline import changes
from tests.panel.fixtures import main_of, page_client, two_teams

pytestmark = pytest.mark.django_db
COMPOSE = "services:\n  web:\n    image: busybox:{tag}\n    command: [httpd, -f]\n"
FAILURE = "replica web-2 failed its health check (exit 1)"


@pytest.fixture
def world(django_user_model: Any) -> dict[str, Any]:
    teams = two_teams(django_user_model, platform=True)
    operator = Actor.from_user(teams.users["operator"], "web")
    engine = Actor(name="operator", channel="system")  # the engine acts as the deployer
    stack = stacks.create_stack(operator, "shop", COMPOSE.format(tag="1.36"), teams.alpha)
    first = stacks.deploy_stack(operator, stack, "first")
    stacks.finish_revision(engine, first, Revision.SUCCEEDED, "every replica is running", {})
    stack.refresh_from_db()
    stacks.update_stack(operator, stack, compose=COMPOSE.format(tag="1.37"))
    second = stacks.deploy_stack(operator, stack, "new version")
    # what the engine does when a new replica fails its health check (engine._failed)
    stacks.finish_revision(engine, second, Revision.ROLLED_BACK,
                           f"{FAILURE}; rolled back to revision 1", {})
    third = stacks.rollback_stack(engine, stack, 1,
                                  reason=f"automatic rollback of revision 2: {FAILURE}")
    stacks.finish_revision(engine, third, Revision.SUCCEEDED, "every replica is running", {})
    return {"users": teams.users, "stack": stack, "alpha": teams.alpha}




def test_the_viewer_reads_a_rolled_back_deploy_in_plain_language(world):
    page = page_client(world["users"]["viewer"]).get(reverse("web-deployments"))
    assert page.status_code == 200
    timeline = main_of(page).split('id="timeline"', 1)[1]
    assert ("Operator deployed shop revision 2 (web 1.36 → 1.37) at" in timeline
            and "it was rolled back automatically at" in timeline
            and f"because {FAILURE}" in timeline), timeline
    assert "Berth rolled shop back automatically to revision 1" in timeline
    assert "(web 1.37 → 1.36)" in timeline
    apps = main_of(page).split('id="apps-table"', 1)[1].split("</table>", 1)[0]
    assert "shop" in apps and "web 1.36" in apps and "not deployed" not in apps
    assert "down" in apps  # no replica runs: nothing was started for real here


def test_filters_by_person_and_period_and_bad_dates_are_named(world):
    viewer = page_client(world["users"]["viewer"])
    today = timezone.localdate().isoformat()
    mine = main_of(viewer.get(reverse("web-deployments"), {"person": "operator",
                                                         "since": today, "until": today}))
    assert mine.count('data-revision="') == 3
    nobody = main_of(viewer.get(reverse("web-deployments"), {"person": "someone-else"}))
    assert 'data-revision="' not in nobody
    bad = viewer.get(reverse("web-deployments"), {"since": "last week"})
    assert bad.status_code == 400 and "since: " in bad.content.decode()
    assert viewer.get(reverse("web-deployments-export"), {"until": "2026-02-31"}).status_code \
        == 400


def test_the_period_exports_as_csv_and_as_a_printable_report(world):
    viewer = page_client(world["users"]["viewer"])
    export = viewer.get(reverse("web-deployments-export"), {"stack": "shop"})
    assert export.status_code == 200 and export["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [(r["revision"], r["kind"], r["outcome"]) for r in rows] == [
        ("3", "rollback", "succeeded"), ("2", "deploy", "rolled_back"),
        ("1", "deploy", "succeeded")]
    assert rows[1]["changes"] == "web 1.36 → 1.37" and rows[1]["reason"] == FAILURE
    report = viewer.get(reverse("web-deployments-report"), {"project": "alpha"})
    body = main_of(report)
    assert report.status_code == 200 and "Deployment report" in body
    counts = body.split('id="report-counts"', 1)[1].split("</ul>", 1)[0]
    assert "<strong>3</strong> deploys" in counts and "<strong>1</strong> rolled back" in counts


def test_other_teams_see_none_of_it(world):
    other = main_of(page_client(world["users"]["other"]).get(reverse("web-deployments")))
    assert "shop" not in other
    export = page_client(world["users"]["other"]).get(reverse("web-deployments-export"))
    assert len(b"".join(export.streaming_content).splitlines()) == 1  # the header only


def test_changes_are_said_in_words_without_secret_values():
    old = {"services": {"web": {"replicas": 2, "container": {
        "image": "shop/web:1.4", "env": {"LOG": "info", "TOKEN": "abc"}}},
        "cache": {"replicas": 1, "container": {"image": "redis:7"}}}}
    new = {"services": {"web": {"replicas": 3, "container": {
        "image": "shop/web:1.5", "env": {"LOG": "debug", "TOKEN": "xyz"}}},
        "worker": {"replicas": 1, "container": {"image": "shop/worker:1.5"}}}}
    assert changes(old, new) == ["cache removed", "web 1.4 → 1.5", "web scaled 2 → 3",
                                 "web environment: LOG, TOKEN changed", "worker 1.5 added"]


def test_the_stack_diff_says_what_changed_in_words_above_the_raw_diff(world):
    page = page_client(world["users"]["viewer"]).get(
        reverse("web-stack-diff", args=[world["stack"].pk]), {"from": 1, "to": 2})
    words = main_of(page).split('id="diff-in-words"', 1)[1].split("</ul>", 1)[0]
    assert "<li>web 1.36 → 1.37</li>" in words
