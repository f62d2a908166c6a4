"""Control-queue task of the audit app: retention (beat, daily, when a period is set)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from panel.audit.chain import archive
from panel.celery import app

log = logging.getLogger(__name__)


@app.task(name="berth.control.audit_archive", ignore_result=True)
def audit_archive() -> None:
    days = settings.BERTH_AUDIT_RETENTION_DAYS
    if days > 0:
        count, path = archive(timezone.now() - timedelta(days=days),
                              Path(settings.BERTH_AUDIT_ARCHIVE_DIR))
        if count:
            log.info("audit: archived %d events to %s", count, path)


@app.task(name="berth.control.audit_verify", ignore_result=True)
def audit_verify(operation_id: str) -> None:
    from panel.audit.verification import run_verification

    run_verification(operation_id)
