"""Checking the audit chain from the browser: "verify now" starts an Operation (kind
"audit.verify") that a control worker runs with progress; the audit page shows the latest one
(when, how many events, intact or the first bad event)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from panel.audit.chain import verify
from panel.audit.models import ChainHead
from panel.audit.services import Actor, record_event
from panel.workloads.models import Operation

log = logging.getLogger(__name__)
KIND = "audit.verify"
TASK = "berth.control.audit_verify"


@transaction.atomic
def start_verification(actor: Actor) -> Operation:
    """A pending verification, sent to a control worker on commit. One at a time: while one
    is unfinished, that one is answered."""
    from panel.celery import app
    from panel.workloads.services import start_operation

    running = Operation.objects.filter(kind=KIND).exclude(
        status__in=Operation.FINISHED).first()
    if running is not None:
        return running
    head, _ = ChainHead.objects.get_or_create(pk=1)
    operation = start_operation(actor, KIND, head, message="verifying the audit chain")
    record_event(actor, "auditevent.verify", head, target_name="audit chain",
                 operation=str(operation.pk))
    operation_id = str(operation.pk)
    transaction.on_commit(lambda: app.send_task(TASK, args=[operation_id], queue="control"))
    return operation


def run_verification(operation_id: str) -> dict[str, Any]:
    """Verify the chain for operation `operation_id`, reporting progress on it."""
    from panel.workloads.reports import record_operation_progress

    actor = Actor.system("audit-verify")

    def progress(checked: int, total: int) -> None:
        with transaction.atomic():
            record_operation_progress(actor, operation_id, Operation.RUNNING,
                                      min(99.0, 100.0 * checked / total),
                                      f"{checked} of {total} events checked")

    with transaction.atomic():
        record_operation_progress(actor, operation_id, Operation.RUNNING, 0,
                                  "verifying the audit chain")
    result = verify(progress=progress)
    outcome = {"checked": result.checked, "ok": result.ok,
               "problem": result.problem.message if result.problem else ""}
    message = f"chain intact: {result.checked} events verified" if result.ok else \
        f"chain broken after {result.checked} good events: {outcome['problem']}"
    with transaction.atomic():
        record_operation_progress(actor, operation_id,
                                  Operation.SUCCEEDED if result.ok else Operation.FAILED, 100,
                                  message, outcome)
    if not result.ok:
        log.error("audit: %s", message)
    return outcome


def last_verification() -> Operation | None:
    """The newest verification operation (finished or not)."""
    return Operation.objects.filter(kind=KIND).order_by("-created_at").first()
