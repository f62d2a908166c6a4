"""Reports from agents: heartbeats, container events, snapshots, operation progress.
Duplicated and out-of-order reports never move state backwards."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from panel.audit.models import AuditEvent
from panel.audit.services import Actor
from panel.fleet import services as fleet
from panel.fleet.models import Host
from panel.workloads import reports, services
from panel.workloads.models import Operation
from tests.panel.fixtures import T0, T1
from tests.panel.fixtures import container_state as _state

pytestmark = pytest.mark.django_db

@pytest.fixture
def web(make_host, actor, broker):
    make_host("h1")
    return services.create_container(actor, {"name": "web", "image": "busybox"})[0]


def test_started_then_exited_is_recorded_and_audited(web):
    agent = Actor.agent("h1")
    assert reports.record_container_event(agent, "h1", str(web.uid), "started",
                                          _state(web, "running")) == "updated"
    web.refresh_from_db()
    assert web.status == "running" and web.pid == 42 and web.addresses == {"berth": "10.88.0.5"}
    assert web.started_at.microsecond == 292631
    reports.record_container_event(agent, "h1", str(web.uid), "exited",
                                   _state(web, "exited", finished=T1, exit_code=3))
    web.refresh_from_db()
    assert web.status == "exited" and web.exit_code == 3
    actions = list(AuditEvent.objects.filter(target_type="container", target_id=str(web.pk),
                                             channel="agent")
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["container.started", "container.exited"]


def test_a_stop_that_ended_in_sigkill_says_why_on_the_container_and_in_its_history(web):
    from panel.audit.describe import describe

    agent = Actor.agent("h1")
    reports.record_container_event(agent, "h1", str(web.uid), "started", _state(web, "running"))
    note = ("stopped with SIGKILL after 10s: it did not exit on SIGTERM: the process is PID 1 "
            "and has no SIGTERM handler, so the kernel dropped the signal; set init: true or "
            "handle SIGTERM")
    reports.record_container_event(agent, "h1", str(web.uid), "exited",
                                   {**_state(web, "exited", finished=T1, exit_code=137),
                                    "stop_note": note})
    web.refresh_from_db()
    assert web.stop_note == note
    exited = AuditEvent.objects.get(target_id=str(web.pk), action="container.exited")
    assert note in describe(exited)


def test_late_started_event_does_not_undo_an_exit(web):
    agent = Actor.agent("h1")
    reports.record_container_event(agent, "h1", str(web.uid), "exited",
                                   _state(web, "exited", finished=T1, exit_code=1))
    outcome = reports.record_container_event(agent, "h1", str(web.uid), "started",
                                             _state(web, "running"))
    assert outcome == "stale"
    web.refresh_from_db()
    assert web.status == "exited"


def test_duplicate_event_changes_nothing_and_audits_once(web):
    agent = Actor.agent("h1")
    state = _state(web, "running", health="starting", restart_count=2,
                   finished="2026-11-28T03:20:00.5Z") | {"ports": {"80/tcp": [
                       {"HostIp": "0.0.0.0", "HostPort": "8080"}]}}
    reports.record_container_event(agent, "h1", str(web.uid), "started", state)
    before = AuditEvent.objects.count()
    web.refresh_from_db()
    seen = web.last_seen
    assert reports.record_container_event(agent, "h1", str(web.uid), "started",
                                          state) == "unchanged"
    assert AuditEvent.objects.count() == before
    web.refresh_from_db()
    assert web.last_seen == seen


def test_created_then_started_with_one_state_writes_once(web):
    """What an agent sends for a container it saw first already running."""
    agent = Actor.agent("h1")
    state = _state(web, "running")
    assert reports.record_container_event(agent, "h1", str(web.uid), "created",
                                          state) == "updated"
    assert reports.record_container_event(agent, "h1", str(web.uid), "started",
                                          state) == "unchanged"
    changed = state | {"health": "healthy"}
    assert reports.record_container_event(agent, "h1", str(web.uid), "health",
                                          changed) == "updated"
    web.refresh_from_db()
    assert (web.status, web.health) == ("running", "healthy")


def test_event_of_an_older_start_is_ignored(web):
    agent = Actor.agent("h1")
    reports.record_container_event(agent, "h1", str(web.uid), "restarted",
                                   _state(web, "running", started=T1, restart_count=1))
    assert reports.record_container_event(
        agent, "h1", str(web.uid), "exited",
        _state(web, "exited", started=T0, finished=T0)) == "stale"
    web.refresh_from_db()
    assert web.status == "running" and web.restart_count == 1


def test_older_generation_never_overwrites_newer(web):
    agent = Actor.agent("h1")
    reports.record_container_event(agent, "h1", str(web.uid), "created",
                                   _state(web, "created", started="", generation=2))
    assert reports.record_container_event(agent, "h1", str(web.uid), "started",
                                          _state(web, "running", generation=1)) == "stale"


def test_report_of_unknown_container_makes_the_host_remove_it(web, broker,
                                                              django_capture_on_commit_callbacks):
    import uuid

    stray = str(uuid.uuid4())
    with django_capture_on_commit_callbacks(execute=True):
        outcome = reports.record_container_event(
            Actor.agent("h1"), "h1", stray, "started", {"uid": stray, "status": "running"})
    assert outcome == "stray"
    assert broker.sent("h1")[-1]["args"][:2] == [stray, "remove"]


def test_copy_on_a_host_the_container_moved_from_is_removed(
        web, make_host, broker, django_capture_on_commit_callbacks):
    make_host("h2")
    with django_capture_on_commit_callbacks(execute=True):
        outcome = reports.record_snapshot(Actor.agent("h2"), "h2", [_state(web, "running")])
    assert outcome == {"stray": 1}
    assert broker.sent("h2")[-1]["args"][:2] == [str(web.uid), "remove"]
    web.refresh_from_db()
    assert web.status == ""  # the h1 copy's state is untouched


def test_snapshot_marks_vanished_containers_missing(web):
    agent = Actor.agent("h1")
    reports.record_container_event(agent, "h1", str(web.uid), "started", _state(web, "running"))
    counts = reports.record_snapshot(agent, "h1", [], [], [], [])
    assert counts == {"missing": 1}
    web.refresh_from_db()
    assert web.status == "missing"


def test_snapshot_records_which_host_holds_images_and_volumes(make_host):
    make_host("h1", images=("busybox:latest", "alpine:3"))
    host = Host.objects.get(name="h1")
    assert sorted(host.images.values_list("reference", flat=True)) == \
        ["alpine:3", "busybox:latest"]
    reports.record_snapshot(Actor.agent("h1"), "h1", [],
                            [{"id": "sha256:" + "b" * 64, "names": ["alpine:3"], "size": 5}],
                            [{"name": "data", "labels": {}}], [])
    assert list(host.images.values_list("reference", flat=True)) == ["alpine:3"]
    assert list(host.volumes.values_list("name", flat=True)) == ["data"]


def test_operation_progress_never_goes_back(web):
    operation = Operation.objects.get(kind="container.create")
    agent = Actor.agent("h1")
    reports.record_operation_progress(agent, str(operation.pk), "running", 60, "creating")
    reports.record_operation_progress(agent, str(operation.pk), "running", 10, "late")
    operation.refresh_from_db()
    assert operation.progress == pytest.approx(0.6)
    reports.record_operation_progress(agent, str(operation.pk), "succeeded", 100, "done",
                                      {"action": "created"})
    reports.record_operation_progress(agent, str(operation.pk), "failed", 50, "duplicate")
    operation.refresh_from_db()
    assert (operation.status, operation.progress, operation.message) == ("succeeded", 1.0, "done")
    assert operation.result == {"action": "created"}


def test_heartbeat_registers_audits_and_asks_for_a_snapshot(
        db, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        host = fleet.record_heartbeat(Actor.agent("n1"), "n1",
                                      {"cpus": 4, "memory": 8 * 1024**3, "labels": {"a": "1"}})
    assert (host.cpus, host.labels, host.status) == (4, {"a": "1"}, "up")
    assert AuditEvent.objects.filter(action="host.register", target_name="n1").count() == 1
    assert broker.sent("n1")[0]["task"] == "berth.agent.snapshot"
    before = AuditEvent.objects.count()
    fleet.record_heartbeat(Actor.agent("n1"), "n1", {"cpus": 4, "labels": {"a": "1"}})
    assert AuditEvent.objects.count() == before  # a routine heartbeat is not an audit event


def test_silent_host_goes_down_once_and_comes_back_up(make_host):
    make_host("h1")
    later = timezone.now() + datetime.timedelta(seconds=20)
    assert [h.name for h in fleet.check_hosts(Actor.system(), later)] == ["h1"]
    assert fleet.check_hosts(Actor.system(), later) == []
    host = Host.objects.get(name="h1")
    assert host.status == "down" and host.current_status() == "down"
    fleet.record_heartbeat(Actor.agent("h1"), "h1", {"cpus": 2},
                           now=later + datetime.timedelta(seconds=1))
    host.refresh_from_db()
    assert host.status == "up" and host.down_since is None
    actions = list(AuditEvent.objects.filter(target_type="host").values_list("action", flat=True))
    assert actions.count("host.down") == 1 and actions.count("host.up") == 1


def test_bad_heartbeat_is_refused(db):
    with pytest.raises(fleet.InvalidReport):
        fleet.record_heartbeat(Actor.agent("x"), "bad name", {})
