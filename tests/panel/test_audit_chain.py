"""The tamper-evident audit log: immutability in the app and the database, `audit_verify`
naming the first altered, removed or inserted event, concurrent appends that never fork the
chain, retention with a kept anchor, export, forwarding and plain-language sentences."""

from __future__ import annotations

import io
import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from panel.audit.chain import archive, verify, verify_archive
from panel.audit.describe import describe
from panel.audit.models import AuditEvent, ImmutableEvent, event_hash
from panel.audit.services import Actor, record_event

TABLE = AuditEvent._meta.db_table


def _events(count: int) -> list[AuditEvent]:
    actor = Actor(name="ana", channel="api")
    with transaction.atomic():
        return [record_event(actor, "container.stop", target_type="container",
                             target_id=str(i), target_name=f"c{i}", n=i)
                for i in range(count)]


def _unguard() -> None:
    """What an intruder with database access does first: switch the triggers off."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        else:
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")


def _verify_fails() -> str:
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")
    return str(failure.value)


@pytest.mark.django_db
def test_app_and_database_refuse_to_change_or_delete_events():
    event = _events(3)[1]
    event.target_name = "forged"
    with pytest.raises(ImmutableEvent):
        event.save()
    with pytest.raises(ImmutableEvent):
        event.delete()
    with pytest.raises(ImmutableEvent):
        AuditEvent.objects.filter(pk=event.pk).update(outcome="failed")
    with pytest.raises(ImmutableEvent):
        AuditEvent.objects.all().delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET outcome = 'failed' WHERE id = %s", [event.pk])
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [event.pk])
    assert verify().ok


@pytest.mark.django_db
def test_intact_chain_verifies():
    _events(50)
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert "intact: 50 events" in out.getvalue()


@pytest.mark.django_db
def test_edited_event_is_named():
    events = _events(10)
    _unguard()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET actor_name = 'mallory' WHERE id = %s",
                       [events[6].pk])
    message = _verify_fails()
    assert f"event #{events[6].seq} (id {events[6].pk}" in message and "altered" in message


@pytest.mark.django_db
def test_deleted_event_is_named():
    events = _events(10)
    _unguard()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[3].pk])
    message = _verify_fails()
    assert f"event #{events[3].seq} was removed" in message


@pytest.mark.django_db
def test_deleted_tail_is_noticed_through_the_chain_head():
    events = _events(5)
    _unguard()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[-1].pk])
    assert f"#{events[-1].seq}" in _verify_fails()


def _forge(after: AuditEvent, seq: int) -> AuditEvent:
    """A well-formed event with a correct hash, as an intruder who knows the scheme makes it."""
    forged = AuditEvent(seq=seq, prev_hash=after.hash, created_at=timezone.now(),
                        actor_name="ana", channel="api", action="container.start",
                        target_type="container", target_name="cover-up", details_json="{}")
    forged.hash = event_hash(forged.hashed_values())
    return forged


@pytest.mark.django_db
def test_inserted_event_in_the_middle_is_named():
    events = _events(6)
    _unguard()
    with connection.cursor() as cursor:  # renumber the later events to make room
        for event in reversed(events[3:]):
            cursor.execute(f"UPDATE {TABLE} SET seq = seq + 1 WHERE id = %s", [event.pk])
    forged = _forge(events[2], events[3].seq)
    forged.save()
    message = _verify_fails()
    assert f"event #{forged.seq} (id {forged.pk}) was inserted" in message


@pytest.mark.django_db
def test_inserted_event_at_the_end_is_noticed():
    events = _events(4)
    _forge(events[-1], events[-1].seq + 1).save()
    message = _verify_fails()
    assert "inserted" in message and f"#{events[-1].seq + 1}" in message


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_never_fork_the_chain():
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(15):
                with transaction.atomic():
                    record_event(Actor(name=f"w{n}", channel="system"), "container.reconcile",
                                 target_type="container", target_id=str(i))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    # Other writers (a control worker left by an earlier module) may append too: the chain
    # must stay one unbroken sequence whoever wrote, and hold all 60 of ours.
    seqs = sorted(AuditEvent.objects.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert AuditEvent.objects.filter(actor_name__in=[f"w{n}" for n in range(4)]).count() == 60
    assert verify().ok


@pytest.mark.django_db
def test_retention_archives_old_events_and_keeps_the_rest_verifiable(tmp_path: Path):
    old = _events(20)
    count, path = archive(timezone.now() + timedelta(seconds=1), tmp_path)
    assert count == 20 and AuditEvent.objects.count() == 0
    newer = _events(5)
    assert newer[0].seq == old[-1].seq + 1 and verify().ok and verify().checked == 5
    assert verify_archive(path).ok and verify_archive(path).checked == 20
    call_command("audit_verify", "--archive", str(path), stdout=io.StringIO())
    lines = path.read_text().splitlines()
    record = json.loads(lines[5])
    record["target_name"] = "forged"
    lines[5] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    assert verify_archive(path).problem.kind == "altered"


@pytest.mark.django_db
def test_export_as_csv_and_json_lines_with_filters(api):
    actor = Actor(name="ana", channel="api")
    with transaction.atomic():
        record_event(actor, "container.stop", target_type="container", target_name="web")
        record_event(actor, "container.start", target_type="container", target_name="pgmain",
                     outcome="failed")
    answer = api.get("/api/v1/audit/?format=jsonl&action=container.&outcome=failed")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/jsonl"
    lines = [json.loads(x) for x in b"".join(answer.streaming_content).decode().splitlines()]
    assert [(x["action"], x["target_name"]) for x in lines] == [("container.start", "pgmain")]
    answer = api.get("/api/v1/audit/?format=csv&target=web")
    rows = b"".join(answer.streaming_content).decode().splitlines()
    assert rows[0].startswith("seq,time,actor") and len(rows) == 2 and ",web," in rows[1]
    # a name no hex digest contains: q also searches the details (ids, hashes)
    page = api.get("/api/v1/audit/?q=pgmain").json()
    assert page["count"] == 1 and page["results"][0]["summary"].startswith("Ana ")
    assert api.get("/api/v1/audit/?outcome=maybe").status_code == 400
    assert api.get("/api/v1/audit/?since=yesterday").status_code == 400


@pytest.mark.django_db
def test_events_are_forwarded_as_json_lines_after_commit(settings, tmp_path,
                                                         django_capture_on_commit_callbacks):
    sink = tmp_path / "siem.jsonl"
    settings.BERTH_AUDIT_FORWARD = f"file:{sink}"
    with django_capture_on_commit_callbacks(execute=True):
        _events(2)
    records = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [r["details"]["n"] for r in records] == [0, 1] and records[1]["prev_hash"] == \
        records[0]["hash"]


@pytest.mark.django_db
def test_deployments_and_restarts_read_as_plain_language():
    with transaction.atomic():
        deploy = record_event(Actor(name="ana", channel="web"), "stack.deploy",
                              target_type="stack", target_name="shop", service="shop-web",
                              before={"image": "registry/shop-web:1.4"},
                              after={"image": "registry/shop-web:1.5"}, healthy=3,
                              replicas=3, seconds=41.2)
        restart = record_event(Actor.agent("h1"), "container.restarted",
                               target_type="container", target_name="worker",
                               before={"status": "running"},
                               after={"status": "running", "exit_code": 137,
                                      "oom_killed": True})
    when = timezone.localtime(deploy.created_at).strftime("%a %H:%M")
    assert describe(deploy) == f"Ana deployed shop-web 1.4 → 1.5 on {when}: 3 of 3 healthy " \
                               "after 41 s"
    assert describe(restart) == "restart policy restarted worker (exit 137, out of memory)"


@pytest.mark.django_db
def test_a_time_without_an_offset_is_read_in_the_panels_time_zone(settings):
    from django.utils import timezone

    from panel.api.audit_views import _time

    settings.TIME_ZONE = "Europe/Paris"
    with timezone.override("Europe/Paris"):
        day = _time({"since": "2026-11-28"}, "since")
        moment = _time({"until": "2026-11-28T14:00:00"}, "until")
    assert day is not None and moment is not None
    assert timezone.is_aware(day) and timezone.is_aware(moment)  # no naive-time warning
    assert (day.isoformat(), moment.isoformat()) == ("2026-11-28T00:00:00+01:00",
                                                     "2026-11-28T14:00:00+01:00")
    offset = _time({"since": "2026-11-28T14:00:00Z"}, "since")
    assert offset is not None and offset.utcoffset().total_seconds() == 0
