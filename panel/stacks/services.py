"""Service functions of stacks: the only writers of stacks, revisions, replicas and templates.

Each validates first (nothing is written when the compose file or a field is refused), writes
its change and one audit event in one transaction, and sends work on commit: a deploy becomes a
`berth.control.stack_deploy` task that the control worker runs (engine.py). The engine itself
writes through the functions at the end of this module."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from panel.access.models import Project
from panel.audit.services import Actor, record_event
from panel.celery import app
from panel.stacks.models import Replica, Revision, Stack, StackTemplate
from panel.stacks.privileges import check_stack_privileges, may_bind_host_paths
from panel.stacks.resolve import (
    check_files,
    check_name,
    check_variables,
    resolve,
    secret_digest,
)
from panel.workloads import services as workloads
from panel.workloads.models import Operation
from panel.workloads.secrets import decrypt_secrets, encrypt_secrets
from panel.workloads.services import Conflict
from panel.workloads.spec import ValidationFailed
from runtime.protocol import control_task

MAX_REPLICAS = 100


def _lock(stack: Stack) -> Stack:
    """The stack's row, locked for this transaction. The first statement writes, so SQLite
    takes its write lock now (waiting for it) instead of failing to upgrade a read lock later;
    PostgreSQL locks the row."""
    Stack.objects.filter(pk=stack.pk).update(updated_at=timezone.now())
    return Stack.objects.select_for_update(of=("self",)).select_related("current_revision").get(
        pk=stack.pk)


def _send_deploy(revision: Revision) -> None:
    transaction.on_commit(lambda: app.send_task(control_task("stack_deploy"),
                                                args=[revision.pk], queue="control"))


def stack_summary(stack: Stack) -> dict[str, Any]:
    """The audit view of a stack: compose text, environment, secret *names* only, and the
    stack's files as a digest of each (a secret file's digest is keyed, as secret values')."""
    files = {path: hashlib.sha256(content.encode()).hexdigest()[:16]
             for path, content in stack.files.items()}
    files |= {path: "secret:" + secret_digest(content)[:16]
              for path, content in stack_secret_files(stack).items()}
    return {"compose": stack.compose, "environment": stack.environment,
            "secrets": sorted(stack.secret_names), "scale": stack.scale,
            "files": dict(sorted(files.items())),
            "project": stack.project.name if stack.project else None}


def stack_secrets(stack: Stack) -> dict[str, str]:
    return decrypt_secrets(stack.secrets_encrypted)


def stack_secret_files(stack: Stack) -> dict[str, str]:
    """The stack's files that are a secret's file: (kept encrypted)."""
    return decrypt_secrets(stack.secret_files_encrypted)


def stack_files(stack: Stack) -> dict[str, str]:
    """The stack's whole directory: its plain files and its secret files."""
    return {**stack.files, **stack_secret_files(stack)}


def engine_secrets(stack: Stack) -> dict[str, str]:
    """Every secret value a replica may use, by the name its spec gives: the stack's secrets,
    and its secret files as "file:PATH"."""
    return {**stack_secrets(stack),
            **{f"file:{path}": content for path, content in stack_secret_files(stack).items()}}


def _keep_files(stack: Stack, files: dict[str, str], spec: Any) -> None:
    """Store `files`: those the spec uses as a secret's file: encrypted, the others as they
    are; a secret file no longer used is dropped."""
    secret = {path: files[path] for path in spec.secret_files if path in files}
    stack.files = {path: content for path, content in files.items()
                   if path not in spec.secret_files}
    stack.secret_files_encrypted = encrypt_secrets(secret)
    stack.secret_file_names = sorted(secret)


def _resolve_stack(stack: Stack, allow_bind_mounts: bool) -> Any:
    return resolve(stack.name, stack.compose, stack.environment, stack_secrets(stack),
                   stack.scale, allow_bind_mounts, files=stack_files(stack))


def _create(actor: Actor, name: Any, compose: Any, project: Project | None,
            environment: dict[str, str] | None, secrets: dict[str, str] | None,
            allow_bind_mounts: bool, files: dict[str, str] | None = None) -> Stack:
    name = check_name(name)
    environment = check_variables("environment", environment)
    secrets = check_variables("secrets", secrets)
    files = check_files(files)
    spec = resolve(name, compose, environment, secrets, None,
                   may_bind_host_paths(allow_bind_mounts, project), files=files)
    check_stack_privileges(actor, project, spec, compose)
    if Stack.objects.filter(name=name).exists():
        raise ValidationFailed({"name": [f"a stack named {name!r} already exists: choose another "
                                         "name or update that stack"]})
    try:
        with transaction.atomic():
            stack = Stack(name=name, project=project, compose=compose, environment=environment,
                          secrets_encrypted=encrypt_secrets(secrets),
                          secret_names=sorted(secrets), created_by=actor.name)
            _keep_files(stack, files, spec)
            stack.save(force_insert=True)
            stack.compose_warnings = spec.warnings  # type: ignore[attr-defined]
            return stack
    except IntegrityError:
        raise ValidationFailed({"name": [f"a stack named {name!r} already exists"]}) from None


@transaction.atomic
def create_stack(actor: Actor, name: Any, compose: Any, project: Project | None = None,
                 environment: dict[str, str] | None = None,
                 secrets: dict[str, str] | None = None,
                 allow_bind_mounts: bool = False, files: dict[str, str] | None = None) -> Stack:
    """A new stack from compose text (and the files of its directory: files.py); refused
    (nothing written) when the file or a field is."""
    stack = _create(actor, name, compose, project, environment, secrets, allow_bind_mounts,
                    files)
    record_event(actor, "stack.create", stack, after=stack_summary(stack))
    return stack


@transaction.atomic
def update_stack(actor: Actor, stack: Stack, compose: str | None = None,
                 environment: dict[str, str] | None = None,
                 secrets: dict[str, str] | None = None,
                 allow_bind_mounts: bool = False, files: dict[str, str] | None = None) -> Stack:
    """Change the compose text, the environment, secrets (a secret left out keeps its value
    when `secrets` is None) or the stack's files (`files` replaces them; a secret file left
    out keeps its content); rolled out by the next deploy."""
    stack = _lock(stack)
    before = stack_summary(stack)
    new_environment = stack.environment if environment is None else \
        check_variables("environment", environment)
    new_secrets = stack_secrets(stack) if secrets is None else check_variables("secrets", secrets)
    new_compose = stack.compose if compose is None else compose
    new_files = stack_files(stack) if files is None else \
        {**stack_secret_files(stack), **check_files(files)}
    spec = resolve(stack.name, new_compose, new_environment, new_secrets, stack.scale,
                   may_bind_host_paths(allow_bind_mounts, stack.project), files=new_files)
    check_stack_privileges(actor, stack.project, spec, new_compose)
    stack.compose, stack.environment = new_compose, new_environment
    _keep_files(stack, new_files, spec)
    stack.compose_warnings = spec.warnings  # type: ignore[attr-defined]
    stack.secrets_encrypted, stack.secret_names = encrypt_secrets(new_secrets), \
        sorted(new_secrets)
    stack.save()
    record_event(actor, "stack.update", stack, before=before, after=stack_summary(stack))
    return stack


def _active(stack: Stack) -> Revision | None:
    return stack.revisions.filter(status__in=Revision.ACTIVE).first()


def owner_is_dead(revision: Revision, now: datetime | None = None) -> bool:
    """Whether nobody works on the active `revision`: its lease expired (the control worker
    holding it died), or it has waited for a control worker longer than a lease (its deploy
    message was lost, or no control worker runs)."""
    now = now or timezone.now()
    if revision.status == Revision.RUNNING:
        return revision.lease_expires_at is None or revision.lease_expires_at < now
    return revision.status == Revision.PENDING and revision.created_at < now - _lease()


def _end_active(actor: Actor, revision: Revision, reason: str, action: str) -> None:
    """Record active `revision` as cancelled (inside the caller's transaction, which holds the
    stack's lock): its lease is dropped, so its engine's next write finds it no longer its own
    and stops; its Operation fails with `reason`."""
    from panel.workloads.reports import record_operation_progress

    Revision.objects.filter(pk=revision.pk).update(
        status=Revision.CANCELLED, reason=f"{revision.reason}; {reason}" if revision.reason
        else reason, lease_owner="", lease_expires_at=None, finished_at=timezone.now())
    record_event(actor, action, revision.stack, revision=revision.number, reason=reason,
                 was=revision.status, owner=revision.lease_owner)
    if revision.operation_id:
        record_operation_progress(actor, str(revision.operation_id), Operation.FAILED, 100,
                                  reason, {"revision": revision.number,
                                           "status": Revision.CANCELLED})


def _new_revision(actor: Actor, stack: Stack, spec: Any, message: str, reason: str = "",
                  rollback_of: int | None = None, pull: bool = False,
                  secret_digests: dict[str, str] | None = None) -> Revision:
    number = (stack.revisions.aggregate(top=Max("number"))["top"] or 0) + 1
    active = _active(stack)
    if active is not None:
        if not owner_is_dead(active):
            raise Conflict(f"revision {active.number} of stack {stack.name} is still being "
                           "deployed; wait for it to finish")
        # Its control worker is gone: this revision supersedes it and converges the replicas
        # from whatever state that one left (engine.py).
        _end_active(actor, active, f"superseded by revision {number}: no control worker was "
                                   "working on it", "stack.deploy_superseded")
    if secret_digests is None:
        secret_digests = {key: secret_digest(value)
                          for key, value in engine_secrets(stack).items()}
    operation = workloads.start_operation(actor, "stack.deploy", stack,
                                          message=f"revision {number}")
    # digests pinned before stay pinned (same replica hashes) until a `pull` deploy looks again
    pinned = stack.current_revision.image_digests if stack.current_revision else {}
    revision = Revision.objects.create(
        stack=stack, number=number, spec=spec.to_dict(), compose=stack.compose,
        environment=stack.environment, secret_digests=secret_digests, image_digests=pinned,
        actor_name=actor.name,
        message=str(message or "")[:2000], reason=reason, rollback_of=rollback_of,
        operation=operation, result={"scale": stack.scale, "pull": bool(pull), "steps": []})
    return revision


@transaction.atomic
def deploy_stack(actor: Actor, stack: Stack, message: str = "", pull: bool = False,
                 allow_bind_mounts: bool = False) -> Revision:
    """Roll out what the stack stores as a new revision (the engine does it on commit); with
    `pull`, images are looked up in their registries again and newer ones rolled out."""
    stack = _lock(stack)
    spec = _resolve_stack(stack, may_bind_host_paths(allow_bind_mounts, stack.project))
    check_stack_privileges(actor, stack.project, spec, stack.compose)
    revision = _new_revision(actor, stack, spec, message, pull=pull)
    record_event(actor, "stack.deploy", stack, revision=revision.number, message=message,
                 pull=pull, operation=str(revision.operation_id),
                 services=sorted(spec.services))
    _send_deploy(revision)
    return revision


@transaction.atomic
def rollback_stack(actor: Actor, stack: Stack, number: Any, reason: str = "") -> Revision:
    """Deploy revision `number`'s spec again (as a new revision) and restore its compose text,
    environment and scale."""
    stack = _lock(stack)
    if isinstance(number, bool) or not isinstance(number, int | str) \
            or not str(number).isdigit():
        raise ValidationFailed({"revision": ["the number of a revision of this stack is "
                                             "required"]})
    target = stack.revisions.filter(number=int(number)).first()
    if target is None:
        numbers = ", ".join(str(n) for n in stack.revisions.values_list("number", flat=True)[:20])
        raise ValidationFailed({"revision": [f"stack {stack.name} has no revision {number}: "
                                             f"its revisions are {numbers or 'none'}"]})
    from panel.stacks.compose import StackSpec

    before = stack_summary(stack)
    stack.compose, stack.environment = target.compose, target.environment
    stack.scale = dict((target.result or {}).get("scale") or {})
    stack.save()
    why = reason or f"rollback to revision {target.number}"
    target_spec = StackSpec.from_dict(target.spec)
    check_stack_privileges(actor, stack.project, target_spec, target.compose)
    revision = _new_revision(actor, stack, target_spec, why, reason=why,
                             rollback_of=target.number)
    record_event(actor, "stack.rollback", stack, before=before, after=stack_summary(stack),
                 revision=revision.number, to=target.number, reason=why,
                 operation=str(revision.operation_id))
    _send_deploy(revision)
    return revision


@transaction.atomic
def scale_service(actor: Actor, stack: Stack, service: str, replicas: Any) -> Revision:
    """Run `replicas` of `service` (a new revision; the compose file is unchanged)."""
    stack = _lock(stack)
    if isinstance(replicas, bool) or not isinstance(replicas, int) \
            or not 0 <= replicas <= MAX_REPLICAS:
        raise ValidationFailed({"replicas": [f"a whole number from 0 to {MAX_REPLICAS}"]})
    spec = _resolve_stack(stack, True)
    if service not in spec.services:
        raise ValidationFailed({"service": [f"stack {stack.name} has no service {service!r}: "
                                            f"its services are {', '.join(sorted(spec.services))}"
                                            ]})
    before = dict(stack.scale)
    stack.scale = {**stack.scale, service: replicas}
    stack.save(update_fields=["scale", "updated_at"])
    spec.services[service].replicas = replicas
    revision = _new_revision(actor, stack, spec, f"scale {service} to {replicas}")
    record_event(actor, "stack.scale", stack, before={"scale": before},
                 after={"scale": stack.scale}, service=service, replicas=replicas,
                 revision=revision.number, operation=str(revision.operation_id))
    _send_deploy(revision)
    return revision


@transaction.atomic
def remove_stack(actor: Actor, stack: Stack, volumes: bool = False) -> Operation:
    """Remove the stack, its containers and networks (its named volumes only with `volumes`:
    they hold the data)."""
    stack = _lock(stack)
    active = _active(stack)
    if active is not None:  # its engine notices at its next write and stops
        _end_active(actor, active, "cancelled: the stack is being removed",
                    "stack.deploy_cancelled")
    spec = (stack.current_revision.spec if stack.current_revision else None) or {}
    containers = [r.container for r in stack.replicas.select_related("container__host")]
    for container in containers:
        workloads.remove_container(actor, container, force=True)
    networks = [n["name"] for n in (spec.get("networks") or {}).values() if not n["external"]]
    names = [v["name"] for v in (spec.get("volumes") or {}).values() if not v["external"]] \
        if volumes else []
    operation = workloads.start_operation(actor, "stack.remove", stack)
    record_event(actor, "stack.remove", stack, before=stack_summary(stack),
                 containers=[c.name for c in containers], networks=networks, volumes=names,
                 operation=str(operation.pk))
    operation_id = str(operation.pk)
    transaction.on_commit(lambda: app.send_task(
        control_task("stack_cleanup"), args=[operation_id, networks, names], queue="control"))
    stack.delete()
    return operation


# --- templates ---------------------------------------------------------------------------------

@transaction.atomic
def save_as_template(actor: Actor, stack: Stack, name: Any, title: str = "",
                     description: str = "") -> StackTemplate:
    """Save `stack` as a template of its project: the compose text, with its environment as
    parameters (current values as defaults; secrets become required secret parameters)."""
    name = check_name(name)
    parameters = [{"name": key, "type": "string", "label": key, "default": value,
                   "required": False} for key, value in sorted(stack.environment.items())]
    parameters += [{"name": key, "type": "secret", "label": key, "required": True}
                   for key in sorted(stack.secret_names)]
    if StackTemplate.objects.filter(project=stack.project, name=name).exists():
        raise ValidationFailed({"name": [f"this project already has a template {name!r}"]})
    template = StackTemplate.objects.create(
        name=name, project=stack.project, title=title or name, description=description,
        compose=stack.compose, parameters=parameters, created_by=actor.name)
    record_event(actor, "stacktemplate.create", template, stack=stack.name,
                 after={"parameters": [p["name"] for p in parameters]})
    return template


@transaction.atomic
def deploy_template(actor: Actor, template: Any, name: Any, project: Project | None,
                    values: dict[str, Any] | None) -> Revision:
    """Create a stack from a template (catalogue.Template) with typed `values`, and deploy it
    (one step, one audit event)."""
    from panel.stacks.catalogue import check_values

    environment, secrets = check_values(template.parameters, values or {})
    stack = _create(actor, name, template.compose, project, environment, secrets, False)
    revision = _new_revision(actor, stack, _resolve_stack(stack, False),
                             f"from template {template.title}")
    record_event(actor, "stack.create", stack, after=stack_summary(stack),
                 template=template.key, revision=revision.number,
                 operation=str(revision.operation_id))
    _send_deploy(revision)
    return revision


# --- written by the deploy engine -------------------------------------------------------------

def _lease() -> timedelta:
    return timedelta(seconds=settings.BERTH_DEPLOY_LEASE)


def new_owner() -> str:
    """A lease owner token: which worker process, and a fresh part so that each slice of the
    engine holds the lease under its own token (a duplicate message of a slice finds it gone)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def claim_revision(revision_id: int, owner: str = "", deadline: float = 1800.0) -> bool:
    """The engine takes a pending revision (once, however often its task is delivered), under
    a lease held by `owner` and a wall-clock deadline `deadline` seconds from now."""
    now = timezone.now()
    return Revision.objects.filter(pk=revision_id, status=Revision.PENDING).update(
        status=Revision.RUNNING, lease_owner=owner or new_owner(), heartbeat_at=now,
        lease_expires_at=now + _lease(), deadline_at=now + timedelta(seconds=deadline),
        phase="claimed") == 1


def pass_lease(revision_id: int, previous: str, owner: str) -> bool:
    """The next slice of the engine takes the lease from the slice before it (`previous`)."""
    now = timezone.now()
    return Revision.objects.filter(pk=revision_id, status=Revision.RUNNING,
                                   lease_owner=previous).update(
        lease_owner=owner, heartbeat_at=now, lease_expires_at=now + _lease()) == 1


@transaction.atomic
def take_over_revision(actor: Actor, revision_id: int, owner: str) -> Revision | None:
    """Take a running revision whose lease expired (its control worker died); audited. None
    when it is not running or its owner is alive."""
    now = timezone.now()
    revision = Revision.objects.select_for_update(of=("self",)).select_related("stack").filter(
        pk=revision_id, status=Revision.RUNNING).first()
    if revision is None or not owner_is_dead(revision, now):
        return None
    previous = revision.lease_owner
    revision.lease_owner, revision.heartbeat_at = owner, now
    revision.lease_expires_at = now + _lease()
    # time spent without an owner is not the replicas' fault: their wait timers start again
    revision.progress = {**revision.progress, "timers": {}}
    revision.save(update_fields=["lease_owner", "heartbeat_at", "lease_expires_at",
                                 "progress"])
    record_event(actor, "stack.deploy_resumed", revision.stack, revision=revision.number,
                 phase=revision.phase, previous_owner=previous, owner=owner)
    return revision


def save_revision_progress(revision_id: int, owner: str, phase: str,
                           progress: dict[str, Any]) -> bool:
    """The heartbeat: renew `owner`'s lease and save where the engine is. False when the
    revision is no longer `owner`'s (cancelled, superseded, removed, taken over)."""
    now = timezone.now()
    return Revision.objects.filter(pk=revision_id, status=Revision.RUNNING,
                                   lease_owner=owner).update(
        heartbeat_at=now, lease_expires_at=now + _lease(), phase=phase[:120],
        progress=progress) == 1


def lock_for_engine(revision_id: int, owner: str) -> bool:
    """Inside the engine's transaction: lock the revision's stack (the order remove_stack
    locks in), then whether the revision is still `owner`'s; what the engine writes next in
    that transaction cannot race a removal."""
    stack_id = Revision.objects.filter(pk=revision_id).values_list("stack_id", flat=True).first()
    if stack_id is None or not Stack.objects.filter(pk=stack_id).update(
            updated_at=timezone.now()):
        return False
    return Revision.objects.select_for_update(of=("self",)).filter(
        pk=revision_id, status=Revision.RUNNING, lease_owner=owner).exists()


def revisions_to_resume(now: datetime | None = None) -> list[int]:
    """Active revisions nobody works on (owner_is_dead)."""
    now = now or timezone.now()
    running = Revision.objects.filter(status=Revision.RUNNING).filter(
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True))
    waiting = Revision.objects.filter(status=Revision.PENDING, created_at__lt=now - _lease())
    return sorted({*running.values_list("pk", flat=True), *waiting.values_list("pk", flat=True)})


@transaction.atomic
def finish_revision(actor: Actor, revision: Revision, status: str, reason: str,
                    result: dict[str, Any], owner: str | None = None) -> Revision | None:
    """Record the outcome of a deploy; a succeeded revision becomes the stack's current one.
    With `owner`, only while the revision is still that lease owner's (None otherwise: it was
    cancelled or taken over meanwhile, and nothing is written)."""
    if owner is not None and not lock_for_engine(revision.pk, owner):
        return None
    _lock(revision.stack)
    revision = Revision.objects.select_for_update(of=("self",)).select_related("stack").get(
        pk=revision.pk)
    revision.status = status
    revision.lease_owner, revision.lease_expires_at = "", None
    revision.phase = "finished"
    # a revision made for a reason (a rollback) keeps it, followed by the outcome
    revision.reason = f"{revision.reason}; {reason}" if revision.reason and reason else \
        reason or revision.reason
    revision.result = {**revision.result, **result}
    revision.finished_at = timezone.now()
    revision.save()
    stack = revision.stack
    if status == Revision.SUCCEEDED:
        stack.current_revision = revision
        if revision.result.get("pull"):
            # what this deploy pulled is current; an image its registry could not tell about
            # (image_problems) keeps its pending update for the next check and deploy
            kept = revision.result.get("image_problems") or {}
            stack.image_updates = {i: d for i, d in stack.image_updates.items() if i in kept}
            stack.image_baseline = {i: d for i, d in stack.image_baseline.items() if i in kept}
        stack.save(update_fields=["current_revision", "image_updates", "image_baseline",
                                  "updated_at"])
    record_event(actor, f"stack.deploy_{status}", stack, revision=revision.number,
                 reason=revision.reason, outcome="succeeded" if status == Revision.SUCCEEDED
                 else "failed")
    from panel.workloads.reports import record_operation_progress

    if revision.operation_id:
        record_operation_progress(
            actor, str(revision.operation_id),
            Operation.SUCCEEDED if status == Revision.SUCCEEDED else Operation.FAILED, 100,
            revision.reason or status, {"revision": revision.number, "status": status})
    return revision


@transaction.atomic
def pin_image_digests(revision: Revision, digests: dict[str, str]) -> None:
    """A `pull` deploy's registry digests, written before its replicas are made."""
    revision.image_digests = {**revision.image_digests, **digests}
    Revision.objects.filter(pk=revision.pk).update(image_digests=revision.image_digests)


@transaction.atomic
def add_replica(actor: Actor, stack: Stack, service: str, slot: int, spec_hash: str,
                revision: int, data: dict[str, Any], options: dict[str, Any],
                secret_files: dict[str, str] | None = None) -> Replica:
    """Create one replica container (placement picks its host) and link it to the stack;
    `secret_files` (target -> content) are kept encrypted with its secrets."""
    container, _ = workloads.create_container(actor, data, stack.project, options=options,
                                              secret_files=secret_files)
    return Replica.objects.create(stack=stack, service=service, slot=slot, container=container,
                                  spec_hash=spec_hash, revision=revision)


@transaction.atomic
def drop_replica(actor: Actor, replica: Replica) -> None:
    """Remove a replica's container (it leaves its port group, then stops, on its host)."""
    container = replica.container
    workloads.remove_container(actor, container, force=True)


@transaction.atomic
def record_image_updates(actor: Actor, stack: Stack, updates: dict[str, str],
                         baseline: dict[str, str], problems: dict[str, str],
                         revision_id: int) -> bool:
    """What the image check of revision `revision_id` found (observed state: audited only
    when it changes). Nothing is written if another revision became current meanwhile;
    returns whether it was."""
    stack = _lock(stack)
    if stack.current_revision_id != revision_id:
        return False
    changed = updates != stack.image_updates
    stack.image_updates, stack.images_checked_at = updates, timezone.now()
    stack.image_baseline, stack.image_check_problems = baseline, problems
    stack.save(update_fields=["image_updates", "image_baseline", "image_check_problems",
                              "images_checked_at", "updated_at"])
    if changed and updates:
        record_event(actor, "stack.image_updates", stack, images=sorted(updates))
    return True


@transaction.atomic
def remove_template(actor: Actor, template: StackTemplate) -> None:
    """Delete a team's template (stacks made from it are not affected)."""
    record_event(actor, "stacktemplate.remove", template,
                 before={"title": template.title, "parameters": template.parameters})
    template.delete()
