"""A volume's scheduled backups in the browser (/volumes/<pk>/backups/): schedule with the form
(a host directory or S3), see each schedule's last backup and drill, run now, drill, remove;
viewers read, only admins and operators change; the S3 secret key is never shown back."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from panel.audit.models import AuditEvent
from panel.audit.services import Actor
from panel.workloads import services as workloads
from panel.workloads.models import BackupSchedule, Operation
from tests.panel.fixtures import main_of, page_client, two_teams

pytestmark = pytest.mark.django_db
SECRET = "s3-secret-never-shown"
S3_FORM = {"host": "h1", "interval_hours": "6", "keep_daily": "3", "keep_weekly": "2",
           "kind": "s3", "bucket": "berth-backups", "key_prefix": "shop/",
           "endpoint_url": "http://127.0.0.1:9000", "access_key": "berth",
           "secret_key": SECRET, "region": "us-east-1"}


@pytest.fixture
def world(django_user_model: Any, make_host: Any, broker: Any) -> dict[str, Any]:
    teams = two_teams(django_user_model)
    host = make_host("h1")
    volume, _ = workloads.create_volume(Actor.system("tests"), "pgdata", project=teams.alpha)
    volume.hosts.add(host)
    return {"users": teams.users, "volume": volume, "broker": broker,
            "url": reverse("web-volume-backups", args=[volume.pk])}


def test_an_operator_schedules_s3_backups_and_the_secret_key_is_never_shown(world):
    operator = page_client(world["users"]["operator"])
    answer = operator.post(world["url"], S3_FORM)
    assert answer.status_code == 302 and answer["Location"] == world["url"]
    schedule = BackupSchedule.objects.get(volume=world["volume"])
    assert (schedule.interval_hours, schedule.keep_daily, schedule.keep_weekly) == (6, 3, 2)
    assert schedule.target == {"kind": "s3", "bucket": "berth-backups", "prefix": "shop/",
                               "endpoint_url": "http://127.0.0.1:9000", "access_key": "berth",
                               "region": "us-east-1"}
    assert SECRET not in schedule.secret_key_encrypted  # stored encrypted
    page = main_of(operator.get(world["url"]))
    assert "s3://berth-backups/shop/" in page and "3 daily, 2 weekly" in page
    assert "Back up now" in page and SECRET not in page
    assert AuditEvent.objects.filter(action="backupschedule.create", outcome="succeeded",
                                     actor_name="operator").count() == 1
    # a refused form comes back without the secret it was sent
    again = operator.post(world["url"], {**S3_FORM, "bucket": ""})
    assert again.status_code == 400 and SECRET not in again.content.decode()


def test_bad_fields_are_shown_beside_the_field_and_nothing_is_scheduled(world):
    operator = page_client(world["users"]["operator"])
    cases = [({**S3_FORM, "bucket": ""}, "bucket", "bucket is required"),
             ({**S3_FORM, "kind": "directory", "path": "relative/dir"}, "path",
              "path must be an absolute directory on the host"),
             ({**S3_FORM, "endpoint_url": "ftp://x"}, "endpoint_url",
              "endpoint_url must be an http:// or https:// URL"),
             ({**S3_FORM, "interval_hours": "0"}, "interval_hours", "greater than or equal"),
             ({**S3_FORM, "keep_daily": "0", "keep_weekly": "0"}, "keep_daily",
              "keep at least one"),
             ({**S3_FORM, "host": "elsewhere"}, "host", "not one of the available choices")]
    for data, field, message in cases:
        answer = operator.post(world["url"], data)
        assert answer.status_code == 400, field
        errors = answer.context["form"].errors
        assert field in errors and message in " ".join(errors[field]), (field, errors)
        assert f'id="id_{field}-errors"' in answer.content.decode()
    assert not BackupSchedule.objects.exists()


def test_run_now_drill_and_remove_go_through_the_host_and_the_page_shows_their_outcome(
        world, django_capture_on_commit_callbacks):
    operator = page_client(world["users"]["operator"])
    operator.post(world["url"], {**S3_FORM, "kind": "directory", "path": "/srv/backups"})
    schedule = BackupSchedule.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        ran = operator.post(reverse("web-backup-schedule-run", args=[schedule.pk]))
    backup = Operation.objects.get(kind="volume.backup")
    assert ran.status_code == 302 and ran["Location"] == reverse("web-operation",
                                                                 args=[backup.pk])
    with django_capture_on_commit_callbacks(execute=True):
        drilled = operator.post(reverse("web-backup-schedule-drill", args=[schedule.pk]))
    drill = Operation.objects.get(kind="volume.drill")
    assert drilled["Location"] == reverse("web-operation", args=[drill.pk])
    sent = [task["task"] for task in world["broker"].sent("h1")]
    assert "berth.agent.backup_volume" in sent and "berth.agent.drill_volume_backup" in sent
    page = main_of(operator.get(world["url"]))
    assert f'data-operation-id="{backup.pk}"' in page  # updated live while it runs
    assert f'data-operation-id="{drill.pk}"' in page
    assert "<code>/srv/backups</code>" in page
    removed = operator.post(reverse("web-backup-schedule-remove", args=[schedule.pk]))
    assert removed["Location"] == world["url"] and not BackupSchedule.objects.exists()
    assert "No scheduled backups." in main_of(operator.get(world["url"]))


def test_a_viewer_reads_the_schedules_but_cannot_change_them_and_other_teams_get_404(world):
    page_client(world["users"]["operator"]).post(
        world["url"], {**S3_FORM, "kind": "directory", "path": "/srv/backups"})
    schedule = BackupSchedule.objects.get()
    viewer = page_client(world["users"]["viewer"])
    page = main_of(viewer.get(world["url"]))
    assert "<code>/srv/backups</code>" in page
    assert "Back up now" not in page and "Schedule backups" not in page
    assert viewer.post(world["url"], S3_FORM).status_code == 403
    assert viewer.post(reverse("web-backup-schedule-run", args=[schedule.pk])).status_code \
        == 403
    assert BackupSchedule.objects.count() == 1 and not Operation.objects.filter(
        kind="volume.backup").exists()
    assert AuditEvent.objects.filter(actor_name="viewer", outcome="denied").count() == 2
    other = page_client(world["users"]["other"])
    assert other.get(world["url"]).status_code == 404
    assert other.post(reverse("web-backup-schedule-remove", args=[schedule.pk])).status_code \
        == 404
    listing = main_of(viewer.get(reverse("web-volumes")))
    assert f'href="{world["url"]}"' in listing and "Schedules" in listing
