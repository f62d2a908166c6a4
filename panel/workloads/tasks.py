"""Control-queue tasks of workloads (names from runtime/protocol.py): thin calls into services.

Keyword arguments are accepted beyond the protocol's, so a newer agent does not break an older
panel."""

from __future__ import annotations

import logging
from typing import Any

from panel.audit.services import Actor
from panel.celery import REPORT_RETRY, app
from panel.workloads import reconcile as reconciliation
from panel.workloads import reports
from runtime.protocol import control_task

log = logging.getLogger(__name__)


@app.task(name=control_task("container_event"), ignore_result=True, **REPORT_RETRY)
def container_event(host: str, uid: str, event: str, state: dict[str, Any],
                    **_extra: Any) -> None:
    """A state change of one container on `host`."""
    reports.record_container_event(Actor.agent(host), host, uid, event, state)


@app.task(name=control_task("snapshot"), ignore_result=True, **REPORT_RETRY)
def snapshot(host: str, containers: list[dict[str, Any]], images: list | None = None,
             volumes: list | None = None, networks: list | None = None, **_extra: Any) -> None:
    """Everything `host` holds."""
    reports.record_snapshot(Actor.agent(host), host, containers, images, volumes, networks)


@app.task(name=control_task("operation_progress"), ignore_result=True, **REPORT_RETRY)
def operation_progress(operation_id: str, status: str, progress: float | None = None,
                       message: str = "", result: Any = None, **_extra: Any) -> None:
    """Progress or outcome of an operation an agent works on."""
    reports.record_operation_progress(Actor(name="agent", channel="agent"), operation_id,
                                      status, progress,
                                      message, result)


@app.task(name=control_task("volume_backups"), ignore_result=True)
def volume_backups() -> None:
    """Periodic (beat): send the scheduled volume backups whose time has come."""
    from panel.workloads.backups import run_due

    sent = run_due(Actor.system("backup-scheduler"))
    if sent:
        log.info("volume backups: %d sent to their hosts", sent)


@app.task(name=control_task("reconcile"), ignore_result=True)
def reconcile() -> None:
    """Periodic (beat): desired vs observed, reschedule, re-apply."""
    counts = reconciliation.reconcile(Actor.system("reconciler"))
    log.info("reconcile: %s", reconciliation.summary(counts))
