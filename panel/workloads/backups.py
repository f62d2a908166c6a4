"""Scheduled volume backups: the schedules people keep (BackupSchedule), the beat pass that sends
the due ones to their host's agent, and runs and restore drills on request. The agent does the
work (runtime/volumes/scheduled.py: archive, upload, retention, drill); each run is an
Operation whose result names the backup and its digests, and is audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from panel.audit.services import Actor, record_event
from panel.fleet.dispatch import send_on_commit
from panel.fleet.models import Host
from panel.workloads.models import BackupSchedule, Operation, Volume
from panel.workloads.secrets import decrypt_secrets, encrypt_secrets
from panel.workloads.services import start_operation
from panel.workloads.spec import ValidationFailed

TARGET_KEYS = {"directory": ("kind", "path"),
               "s3": ("kind", "bucket", "prefix", "endpoint_url", "access_key", "secret_key",
                      "region")}
MAX_INTERVAL_HOURS = 24 * 31


def _count(data: dict[str, Any], key: str, default: int, low: int, high: int,
           errors: dict[str, list[str]]) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[key] = [f"must be a whole number from {low} to {high}"]
        return default
    return value


def _target(value: Any, errors: dict[str, list[str]]) -> tuple[dict[str, Any], str]:
    """The target without its secret key, and the secret key."""
    if not isinstance(value, dict) or value.get("kind") not in TARGET_KEYS:
        errors["target"] = ['must be {"kind": "directory", "path": "/abs/dir"} or {"kind": '
                            '"s3", "bucket", "prefix", "endpoint_url", "access_key", '
                            '"secret_key", "region"}']
        return {}, ""
    allowed = TARGET_KEYS[value["kind"]]
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        errors["target"] = [f"unknown key {unknown[0]!r}: a {value['kind']} target takes "
                            f"{', '.join(allowed)}"]
    if any(not isinstance(v, str) for v in value.values()):
        errors["target"] = ["every value of the target must be a string"]
        return {}, ""
    if value["kind"] == "directory" and not str(value.get("path", "")).startswith("/"):
        errors["target"] = ["path must be an absolute directory on the host"]
    if value["kind"] == "s3" and not value.get("bucket"):
        errors["target"] = ["bucket is required"]
    if value.get("endpoint_url") and not str(value["endpoint_url"]).startswith(
            ("http://", "https://")):
        errors["target"] = ["endpoint_url must be an http:// or https:// URL"]
    target = {k: v for k, v in value.items() if k != "secret_key"}
    return target, str(value.get("secret_key") or "")


@transaction.atomic
def create_schedule(actor: Actor, volume: Volume, data: dict[str, Any],
                    created_by: str = "") -> BackupSchedule:
    """A schedule for `volume` from `data` {host, interval_hours, keep_daily, keep_weekly,
    target}; ValidationFailed naming each bad field (nothing written)."""
    errors: dict[str, list[str]] = {}
    host = Host.objects.filter(name=data.get("host")).first() if data.get("host") else \
        volume.hosts.first()
    if host is None or not volume.hosts.filter(pk=host.pk).exists():
        on = ", ".join(volume.hosts.values_list("name", flat=True)) or "no host yet"
        errors["host"] = [f"volume {volume.name} is on {on}: name one of its hosts"]
    interval = _count(data, "interval_hours", 24, 1, MAX_INTERVAL_HOURS, errors)
    daily = _count(data, "keep_daily", 7, 0, 3650, errors)
    weekly = _count(data, "keep_weekly", 4, 0, 520, errors)
    if not errors and daily == 0 and weekly == 0:
        errors["keep_daily"] = ["keep_daily and keep_weekly are both 0: keep at least one"]
    target, secret_key = _target(data.get("target"), errors)
    unknown = sorted(set(data) - {"volume", "host", "interval_hours", "keep_daily",
                                  "keep_weekly", "target"})
    for key in unknown:
        errors[key] = ["unknown field: allowed volume, host, interval_hours, keep_daily, "
                       "keep_weekly, target"]
    if errors:
        raise ValidationFailed(errors)
    assert host is not None
    schedule = BackupSchedule.objects.create(
        volume=volume, host=host, interval_hours=interval, keep_daily=daily, keep_weekly=weekly,
        target=target, secret_key_encrypted=encrypt_secrets(
            {"secret_key": secret_key} if secret_key else {}),
        next_run_at=timezone.now(), created_by=created_by)
    record_event(actor, "backupschedule.create", schedule, after=_summary(schedule))
    return schedule


@transaction.atomic
def remove_schedule(actor: Actor, schedule: BackupSchedule) -> None:
    record_event(actor, "backupschedule.remove", schedule, before=_summary(schedule))
    schedule.delete()


def _locked(schedule: BackupSchedule) -> BackupSchedule:
    return BackupSchedule.objects.select_for_update(of=("self",)).select_related(
        "volume", "host").get(pk=schedule.pk)


def _summary(schedule: BackupSchedule) -> dict[str, Any]:
    return {"volume": schedule.volume.name, "host": schedule.host.name,
            "interval_hours": schedule.interval_hours, "keep_daily": schedule.keep_daily,
            "keep_weekly": schedule.keep_weekly, "target": schedule.target}


def _agent_target(schedule: BackupSchedule) -> dict[str, Any]:
    secret = decrypt_secrets(schedule.secret_key_encrypted).get("secret_key")
    return {**schedule.target, **({"secret_key": secret} if secret else {})}


@transaction.atomic
def run_backup(actor: Actor, schedule: BackupSchedule) -> Operation:
    """Back up now (the beat pass, or "run now"); the next run is an interval from now."""
    schedule = _locked(schedule)
    operation = start_operation(actor, "volume.backup", schedule.volume, schedule.host.name)
    schedule.last_backup = operation
    schedule.next_run_at = timezone.now() + timedelta(hours=schedule.interval_hours)
    schedule.save(update_fields=["last_backup", "next_run_at"])
    record_event(actor, "volume.backup", schedule.volume, operation=str(operation.pk),
                 schedule=schedule.pk, destination=schedule.target)
    send_on_commit(schedule.host.name, "backup_volume", schedule.volume.name,
                   _agent_target(schedule), schedule.keep_daily, schedule.keep_weekly,
                   str(operation.pk))
    return operation


@transaction.atomic
def run_drill(actor: Actor, schedule: BackupSchedule) -> Operation:
    """Restore the newest backup into a scratch volume on its host and prove it byte-exact."""
    schedule = _locked(schedule)
    operation = start_operation(actor, "volume.drill", schedule.volume, schedule.host.name)
    schedule.last_drill = operation
    schedule.save(update_fields=["last_drill"])
    record_event(actor, "volume.drill", schedule.volume, operation=str(operation.pk),
                 schedule=schedule.pk)
    send_on_commit(schedule.host.name, "drill_volume_backup", schedule.volume.name,
                   _agent_target(schedule), str(operation.pk))
    return operation


def run_due(actor: Actor) -> int:
    """Send every schedule whose time has come (beat); how many were sent."""
    due = BackupSchedule.objects.filter(next_run_at__lte=timezone.now()).values_list(
        "pk", flat=True)
    sent = 0
    for pk in list(due):
        schedule = BackupSchedule.objects.filter(pk=pk, next_run_at__lte=timezone.now()).first()
        if schedule is not None:  # another beat may have sent it meanwhile
            run_backup(actor, schedule)
            sent += 1
    return sent


def _operation(operation: Operation | None) -> dict[str, Any] | None:
    if operation is None:
        return None
    return {"id": str(operation.pk), "status": operation.status, "message": operation.message,
            "result": operation.result, "created_at": operation.created_at}


def schedule_data(schedule: BackupSchedule) -> dict[str, Any]:
    """The API view: the target without its secret key (only whether one is set)."""
    return {"id": schedule.pk, "volume": schedule.volume.name, "host": schedule.host.name,
            "interval_hours": schedule.interval_hours, "keep_daily": schedule.keep_daily,
            "keep_weekly": schedule.keep_weekly,
            "target": {**schedule.target,
                       "secret_key_set": bool(schedule.secret_key_encrypted)},
            "next_run_at": schedule.next_run_at,
            "last_backup": _operation(schedule.last_backup),
            "last_drill": _operation(schedule.last_drill),
            "created_by": schedule.created_by, "created_at": schedule.created_at}
