"""Control-queue tasks of stacks: thin calls into the engine and services (names from
runtime/protocol.py's control prefix)."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.signals import worker_ready
from django.db import transaction

from panel.audit.services import Actor
from panel.celery import app
from runtime.protocol import control_task

log = logging.getLogger(__name__)
CLEANUP_WAIT = 60.0


@app.task(name=control_task("stack_deploy"), ignore_result=True)
def stack_deploy(revision_id: int, owner: str = "", **_extra: Any) -> None:
    """One slice of the deploy of a revision (engine.run_slice); when it is not done, the
    next slice is sent with the lease owner token it passes on. A second delivery of a message
    finds the revision claimed, or the token gone, and does nothing."""
    from panel.stacks.engine import CONTINUE_AFTER, run_slice

    status, next_owner = run_slice(revision_id, owner)
    if next_owner:
        app.send_task(control_task("stack_deploy"), args=[revision_id],
                      kwargs={"owner": next_owner}, queue="control", countdown=CONTINUE_AFTER)
    elif status:
        log.info("stack revision %s: %s", revision_id, status)


@app.task(name=control_task("stack_resume_deploys"), ignore_result=True)
def stack_resume_deploys(**_extra: Any) -> None:
    """Periodic (beat), and once as a control worker starts: send the revisions nobody works
    on (their worker died, or their message was lost) to be continued; the first task to take
    one over continues it from its saved state."""
    from panel.stacks.services import revisions_to_resume

    for revision_id in revisions_to_resume():
        log.warning("stack revision %s has no live owner: resuming it", revision_id)
        app.send_task(control_task("stack_deploy"), args=[revision_id], queue="control")


@worker_ready.connect
def _resume_deploys_at_start(sender: Any = None, **_kwargs: Any) -> None:
    """A control worker that starts (after a crash or a Ctrl-C of the whole system) resumes
    the deploys left without owner at once rather than at the next beat. Only a message: the
    work is the task's."""
    app.send_task(control_task("stack_resume_deploys"), queue="control")


@app.task(name=control_task("stack_cleanup"), ignore_result=True)
def stack_cleanup(operation_id: str, networks: list[str], volumes: list[str],
                  **_extra: Any) -> None:
    """After remove_stack: once the hosts have removed the stack's containers, remove its
    networks (and volumes when asked) from the panel and the hosts."""
    from panel.workloads import services
    from panel.workloads.models import Network, Operation, Volume
    from panel.workloads.reports import record_operation_progress

    operation = Operation.objects.filter(pk=operation_id).first()
    actor = Actor(name=operation.actor_name if operation else "system", channel="system")
    if operation is not None:
        removals = Operation.objects.filter(kind="container.remove",
                                            created_at__gte=operation.created_at,
                                            target_name__startswith=operation.target_name + "-")
        deadline = time.monotonic() + CLEANUP_WAIT
        while removals.exclude(status__in=Operation.FINISHED).exists() \
                and time.monotonic() < deadline:
            time.sleep(0.2)
    problems = []
    for model, names, remove in ((Network, networks, services.remove_network),
                                 (Volume, volumes, services.remove_volume)):
        for row in model.objects.filter(name__in=names):
            try:
                remove(actor, row)
            except services.Conflict as exc:
                problems.append(str(exc))
    with transaction.atomic():
        record_operation_progress(actor, operation_id,
                                  Operation.FAILED if problems else Operation.SUCCEEDED, 100,
                                  "; ".join(problems) or "removed")


@app.task(name=control_task("stack_check_images"), ignore_result=True)
def stack_check_images(**_extra: Any) -> None:
    """Periodic (beat): look for newer image digests of every deployed stack; a registry that
    cannot be asked is logged with the reason, per stack and image."""
    from panel.stacks.images import Lookup, check_stack
    from panel.stacks.models import Stack

    actor = Actor.system("image-check")
    lookups: dict[str, Lookup] = {}  # each image asked once per run, however many stacks use it
    for stack in Stack.objects.filter(current_revision__isnull=False).order_by("pk"):
        try:
            found = check_stack(actor, stack, lookups)
        except Exception:  # one stack's failure must not stop the check of the others
            log.exception("image check of stack %s failed", stack.name)
            continue
        if found is None:
            continue
        if found.updates:
            log.info("stack %s: newer images %s", stack.name, ", ".join(sorted(found.updates)))
        for image, problem in sorted(found.problems.items()):
            log.warning("stack %s: cannot check image %s: %s", stack.name, image, problem)
