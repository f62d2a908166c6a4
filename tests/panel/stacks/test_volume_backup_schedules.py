"""Scheduled volume backups end to end: the API, the control worker, a real agent backing up a
real volume to an S3 API (moto's server on loopback) and running the restore drill; and the
schedule's rules (validation, the secret key never shown, roles, the beat pass)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from panel.audit.models import AuditEvent
from panel.workloads.models import BackupSchedule, Operation, Volume
from runtime.volumes import VolumeStore
from tests.panel.fixtures import S3_KEYS, queued_tasks, s3_bucket, s3_server
from tests.panel.stacks.stack_harness import wait_for

KEYS = S3_KEYS


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with s3_server() as url:
        yield url


def _volume_on(name: str, host: Any) -> None:
    """What the host's snapshot would record: it holds the volume."""
    Volume.objects.get(name=name).hosts.add(host)


def _finished(operation_id: str) -> Operation | None:
    operation = Operation.objects.get(pk=operation_id)
    return operation if operation.status in Operation.FINISHED else None


@pytest.mark.root
@pytest.mark.django_db(transaction=True)
def test_a_schedule_backs_up_a_volume_to_s3_and_its_drill_restores_byte_exact(host, api,
                                                                               s3_url):
    created = api.post("/api/v1/volumes/", {"name": "ledger", "host": host.host},
                       format="json")
    assert created.status_code == 201, created.content
    wait_for(lambda: Volume.objects.filter(name="ledger", hosts__name=host.host).exists(), 60,
             "the host creating the volume")
    data = VolumeStore(host.agent.state_dir).get("ledger").mountpoint
    (data / "entries.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    (data / "notes.txt").write_text("balance: 42\n")
    client, bucket = s3_bucket(s3_url)

    made = api.post("/api/v1/backup-schedules/", {
        "volume": "ledger", "interval_hours": 24, "keep_daily": 7, "keep_weekly": 4,
        "target": {"kind": "s3", "bucket": bucket, "prefix": "nightly",
                   "endpoint_url": s3_url, **KEYS}}, format="json")
    assert made.status_code == 201, made.content
    assert KEYS["secret_key"] not in made.content.decode()
    assert made.json()["target"]["secret_key_set"] is True
    schedule = made.json()["id"]

    run = api.post(f"/api/v1/backup-schedules/{schedule}/run/", {}, format="json")
    assert run.status_code == 202, run.content
    backup = wait_for(lambda: _finished(run.json()["operation"]), 120, "the backup")
    assert backup.status == Operation.SUCCEEDED, backup.message
    objects = client.list_objects_v2(Bucket=bucket, Prefix="nightly/ledger/")["Contents"]
    assert [o["Key"] for o in objects] == [f"nightly/ledger/{backup.result['backup']}"]
    head = client.head_object(Bucket=bucket, Key=objects[0]["Key"])
    assert head["Metadata"]["sha256"] == backup.result["sha256"]

    drill = api.post(f"/api/v1/backup-schedules/{schedule}/drill/", {}, format="json")
    assert drill.status_code == 202, drill.content
    proof = wait_for(lambda: _finished(drill.json()["operation"]), 120, "the drill")
    assert proof.status == Operation.SUCCEEDED, proof.message
    assert proof.result["byte_exact"] is True and proof.result["sha256"] == \
        backup.result["sha256"]
    assert not Volume.objects.filter(name="ledger-drill").exists()
    shown = api.get(f"/api/v1/backup-schedules/{schedule}/").json()
    assert shown["last_backup"]["status"] == "succeeded"
    assert shown["last_drill"]["result"]["byte_exact"] is True
    assert KEYS["secret_key"] not in str(list(AuditEvent.objects.values()))
    assert api.delete(f"/api/v1/backup-schedules/{schedule}/").status_code == 204
    assert api.delete("/api/v1/volumes/ledger/").status_code in (200, 202)


@pytest.mark.django_db
@pytest.mark.parametrize("body, field", [
    ({"volume": "nope", "target": {"kind": "directory", "path": "/b"}}, "volume"),
    ({"volume": "data", "target": {"kind": "ftp"}}, "target"),
    ({"volume": "data", "target": {"kind": "directory", "path": "relative"}}, "target"),
    ({"volume": "data", "target": {"kind": "s3"}}, "target"),
    ({"volume": "data", "keep_daily": 0, "keep_weekly": 0,
      "target": {"kind": "directory", "path": "/b"}}, "keep_daily"),
    ({"volume": "data", "interval_hours": 0, "target": {"kind": "directory", "path": "/b"}},
     "interval_hours"),
    ({"volume": "data", "host": "elsewhere", "target": {"kind": "directory", "path": "/b"}},
     "host"),
    ({"volume": "data", "every": 3, "target": {"kind": "directory", "path": "/b"}}, "every"),
])
def test_a_bad_schedule_is_refused_naming_the_field(api, broker, make_host, body, field):
    edge = make_host("edge-1")
    assert api.post("/api/v1/volumes/", {"name": "data", "host": "edge-1"},
                    format="json").status_code == 201
    _volume_on("data", edge)
    answer = api.post("/api/v1/backup-schedules/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()
    assert not BackupSchedule.objects.exists()


@pytest.mark.django_db
def test_the_beat_pass_sends_due_schedules_once_and_plans_the_next(
        api, broker, make_host, django_capture_on_commit_callbacks):
    from panel.audit.services import Actor
    from panel.workloads.backups import run_due

    edge = make_host("edge-1")
    api.post("/api/v1/volumes/", {"name": "data", "host": "edge-1"}, format="json")
    _volume_on("data", edge)
    made = api.post("/api/v1/backup-schedules/", {
        "volume": "data", "interval_hours": 6,
        "target": {"kind": "directory", "path": "/srv/backups"}}, format="json")
    assert made.status_code == 201, made.content
    with django_capture_on_commit_callbacks(execute=True):
        assert run_due(Actor.system("test")) == 1
        assert run_due(Actor.system("test")) == 0  # not due again for 6 hours
    sent = [t for t in queued_tasks(broker, "host.edge-1")
            if t["task"] == "berth.agent.backup_volume"]
    assert len(sent) == 1 and sent[0]["args"][:2] == ["data", {"kind": "directory",
                                                               "path": "/srv/backups"}]
    schedule = BackupSchedule.objects.get()
    hours = (schedule.next_run_at - schedule.last_backup.created_at).total_seconds() / 3600
    assert 5.99 < hours < 6.01
