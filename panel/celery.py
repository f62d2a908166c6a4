"""The panel's Celery app (`celery -A panel worker -Q control -B`): the control worker.

It consumes the `control` queue (reports from agents, see runtime/protocol.py) and, with `-B`,
runs the beat schedule in settings (reconcile and the host-down check every
BERTH_RECONCILE_INTERVAL seconds). Beat rather than a self-rescheduling task: a task that
re-enqueues itself dies with its last message when Redis restarts without persistence, while beat
sends a fresh message every interval; both periodic tasks are idempotent, so a second beat (two
control workers started with -B) costs a duplicate pass, never a wrong action.
"""

from __future__ import annotations

import os

from celery import Celery
from django.db import OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")

app = Celery("panel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# SQLite allows one writer at a time; a report that meets a locked database is retried with
# back-off rather than lost (tasks are acknowledged once they return).
REPORT_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 0.2,
                "retry_backoff_max": 5, "retry_jitter": True, "max_retries": 10}
