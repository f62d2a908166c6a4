"""Reconcile decisions: re-apply what is out of sync (rate limited), leave exits to restart
policies, move restartable containers off hosts that stay down."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from panel.audit.models import AuditEvent
from panel.audit.services import Actor
from panel.fleet import services as fleet
from panel.workloads import reports, services
from panel.workloads.models import Container, Operation
from panel.workloads.reconcile import reconcile, why_out_of_sync
from tests.panel.fixtures import T0, T1
from tests.panel.fixtures import container_state as _state

pytestmark = pytest.mark.django_db


def _later(seconds: float) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=seconds)


def _applies(broker, host: str) -> list[dict]:
    return [t for t in broker.sent(host) if t["task"] == "berth.agent.apply_container"]


def test_fresh_container_is_not_reapplied_before_the_reapply_delay(make_host, actor, broker):
    make_host("h1")
    services.create_container(actor, {"name": "web", "image": "busybox"})
    assert reconcile(Actor.system())["applied"] == 0


def test_lost_apply_is_sent_again_after_the_delay(make_host, actor, broker,
                                                  django_capture_on_commit_callbacks):
    make_host("h1")
    services.create_container(actor, {"name": "web", "image": "busybox"})
    # the host keeps heartbeating; the apply message was lost (e.g. Redis restarted)
    fleet.record_heartbeat(Actor.agent("h1"), "h1", {"memory": 4 * 1024**3}, now=_later(31))
    with django_capture_on_commit_callbacks(execute=True):
        counts = reconcile(Actor.system(), now=_later(31))
    assert counts["applied"] == 1
    assert _applies(broker, "h1")[0]["args"][1] is None
    assert AuditEvent.objects.filter(action="container.reconcile").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile(Actor.system(), now=_later(32))["applied"] == 0  # claimed once


def test_exit_after_start_is_left_to_the_restart_policy(make_host, actor, broker):
    make_host("h1")
    web, _ = services.create_container(actor, {"name": "web", "image": "busybox"})
    Container.objects.filter(pk=web.pk).update(
        desired_changed_at=timezone.now() - datetime.timedelta(minutes=5))
    reports.record_container_event(Actor.agent("h1"), "h1", str(web.uid), "exited",
                                   _state(web, "exited", started=T0, finished=T1))
    web.refresh_from_db()
    web.started_at = timezone.now()
    assert why_out_of_sync(web) is None


def test_start_requested_after_the_last_start_is_out_of_sync(make_host, actor, broker):
    make_host("h1")
    web, _ = services.create_container(actor, {"name": "web", "image": "busybox"})
    reports.record_container_event(Actor.agent("h1"), "h1", str(web.uid), "exited",
                                   _state(web, "exited", started=T0, finished=T1))
    web.refresh_from_db()
    assert why_out_of_sync(web) == "has not started since it was asked to"


def test_running_container_that_should_be_stopped_is_out_of_sync(make_host, actor, broker):
    make_host("h1")
    web, _ = services.create_container(actor, {"name": "web", "image": "busybox"})
    reports.record_container_event(Actor.agent("h1"), "h1", str(web.uid), "started",
                                   _state(web, "running"))
    Container.objects.filter(pk=web.pk).update(desired_state="stopped")
    web.refresh_from_db()
    assert why_out_of_sync(web) == "runs but should be stopped"


def test_restartable_containers_move_off_a_host_down_too_long(
        make_host, actor, broker, django_capture_on_commit_callbacks):
    make_host("h1")
    make_host("h2")
    moving, _ = services.create_container(actor, {"name": "moving", "image": "busybox",
                                                  "host": "h1", "restart": "always"})
    staying, _ = services.create_container(actor, {"name": "staying", "image": "busybox",
                                                   "host": "h1"})
    fleet.record_heartbeat(Actor.agent("h2"), "h2", {"memory": 4 * 1024**3}, now=_later(20))
    fleet.check_hosts(Actor.system(), now=_later(20))
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile(Actor.system(), now=_later(21))["rescheduled"] == 0  # not yet
    fleet.record_heartbeat(Actor.agent("h2"), "h2", {"memory": 4 * 1024**3}, now=_later(55))
    with django_capture_on_commit_callbacks(execute=True):
        counts = reconcile(Actor.system(), now=_later(55))
    assert counts["rescheduled"] == 1 and counts["applied"] == 1
    moving.refresh_from_db()
    staying.refresh_from_db()
    assert moving.host.name == "h2" and staying.host.name == "h1"
    event = AuditEvent.objects.get(action="container.reschedule")
    assert event.details["before"] == {"host": "h1"} and event.details["after"] == {"host": "h2"}
    assert event.channel == "system"
    (apply,) = _applies(broker, "h2")
    assert apply["args"][0]["uid"] == str(moving.uid)


def test_no_fitting_host_leaves_the_container_and_says_why(make_host, actor, broker):
    make_host("h1")
    web, _ = services.create_container(actor, {"name": "web", "image": "busybox",
                                               "restart": "always"})
    fleet.check_hosts(Actor.system(), now=_later(20))
    assert reconcile(Actor.system(), now=_later(60))["unplaceable"] == 1
    web.refresh_from_db()
    assert web.host.name == "h1" and "cannot be rescheduled" in web.error


def test_an_operation_silent_for_the_redelivery_time_has_its_outcome_asked_for(
        make_host, actor, broker):
    """Its final report may have been lost with a killed control worker (agent/outcomes.py)."""
    make_host("h1")
    _, silent = services.create_container(actor, {"name": "web", "image": "busybox"})
    _, fresh = services.create_container(actor, {"name": "db", "image": "busybox"})
    Operation.objects.filter(pk=silent.pk).update(updated_at=_later(-61))
    counts = reconcile(Actor.system())
    assert counts["outcomes asked"] == 1
    asked = [t for t in broker.sent("h1") if t["task"] == "berth.agent.resend_outcomes"]
    assert [t["args"] for t in asked] == [[[str(silent.pk)]]]
    Operation.objects.filter(pk=silent.pk).update(status=Operation.SUCCEEDED)
    assert reconcile(Actor.system())["outcomes asked"] == 0
    assert fresh.status == Operation.PENDING
