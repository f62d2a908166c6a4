"""The deploy engine: rolls one revision out, run by the control worker (tasks.stack_deploy) as
a chain of short tasks whose state lives in the database.

Durability. A revision's progress is in its row, not in a process: a lease (`lease_owner`
until `lease_expires_at`, renewed by every write of progress: the heartbeat), a wall-clock
`deadline_at`, and `progress` (the steps so far, the wait timers of replicas, the batch being
rolled, the delay until the next batch). The engine is re-entrant from that state and from
the replicas' rows: each run of `Deployment.run` starts from the top and every step looks at
what exists before it acts, so a run interrupted anywhere (kill -9, Ctrl-C, a crash, a lost
message) is continued by the next one without doing anything twice. A control worker that
dies leaves its lease to expire (BERTH_DEPLOY_LEASE seconds); the beat task
`stack_resume_deploys` (and each control worker as it starts) sends the revisions nobody holds
to the queue again, and the first task to take the lease over continues. A revision is thus
never `running` without a live owner for longer than a lease.

Slices, not one long task. A task runs the engine for at most SLICE seconds (mostly waiting
for replicas, polling their rows every POLL seconds), saves its state and sends the next task
with a CONTINUE_AFTER countdown, passing its lease on under a fresh token (a duplicate message
finds the token gone and does nothing). We chose this over a dedicated deploy queue: a deploy
queue still needs one worker slot per running deploy for minutes (so N concurrent deploys
need N slots, or wait), and a process that dies there still loses the deploy's in-memory
state; slices keep every control worker slot free for reports between two slices, need no
extra process to operate, and make recovery the normal path (every slice is a resumption).

`Deployment.run` numbers its steps:
1. the revision was claimed (run_slice: a conditional update gives the lease to one task);
2. create the stack's networks and volumes that the panel does not have yet (hosts create them
   when the first replica arrives);
3. walk the services in dependency order: a service starts once each of its dependencies is
   started (`service_started`: every replica runs) or healthy (`service_healthy`: every replica
   passed its health check). A service whose replicas were made from the same replica hash is
   only scaled (missing slots created, duplicate and extra ones removed); a changed one is
   rolled (4). The missing replicas of every service whose dependencies are met are created in
   one transaction, so their hosts get them at once;
4. rolling update per `deploy.update_config`: in batches of `parallelism`, with `start-first`
   a new replica starts, must run and pass its health check (it then joins its port group on
   the host and takes connections), and stays so for `monitor`; only then does the old one
   leave the group and stop. `stop-first` removes the old one first (and waits until its host
   did). Between batches, `delay`. The batch is saved before its first change; a run that
   finds one saved finishes it (a slot that has a replica of the new hash gets no other one; a
   stale replica whose successor is ready is dropped), and a slot that has both an old and a
   new replica (a superseded revision left it so) is finished first.
   A replica that shares published ports and has no health check of its own gets a TCP connect
   check on its first published TCP port (`readiness_check`), so "ready" means it accepts them.
   A new replica that fails is removed, and `failure_action` decides: `rollback` ends the
   revision as rolled back and deploys the last good revision again (the reason is recorded on
   both, in one transaction), `pause` ends it as paused, `continue` goes on;
5. wait until every replica of every service is ready, remove the services the file no longer
   has, and record the outcome (a succeeded revision becomes the stack's current one).
Progress is written to the revision's Operation after each step (and pushed to browsers).

Cancellation: remove_stack (and a deploy that supersedes a revision whose owner is dead) ends
the revision as cancelled and drops its lease; the engine's next write (each one checks the
lease, and creating replicas locks the stack first) finds it no longer its own and stops.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction

from panel.audit.services import Actor
from panel.stacks import services
from panel.stacks.compose import ServiceSpec, StackSpec
from panel.stacks.models import Replica, Revision, Stack
from panel.stacks.resolve import replica_hash, split_environment
from panel.workloads import services as workloads
from panel.workloads.models import ACTIVE_STATUSES, Container, Network, Operation, Volume
from runtime.network.ports import parse_port_spec
from runtime.protocol import default_of, is_default

log = logging.getLogger(__name__)

T = TypeVar("T")
POLL = 0.1  # small queries on indexed rows: polling this often costs little
SLICE = 2.0  # seconds one task works before it saves its state and sends the next one
CONTINUE_AFTER = 0.2  # countdown of the next slice
LOCK_RETRIES = 20
READY_TIMEOUT = 90.0  # a replica without health check must run within this
DEPLOY_TIMEOUT = 1800.0
_RANK = {"ready": 0, "running": 1, "pending": 2, "failed": 3}


def _retry(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a service function again when SQLite is busy with another writer (the control
    worker's reports); other databases never raise this here."""
    for attempt in range(LOCK_RETRIES):
        try:
            return function(*args, **kwargs)
        except OperationalError:
            if attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _heartbeat_every() -> float:
    return settings.BERTH_DEPLOY_LEASE / 4


class DeployFailed(Exception):
    """A replica did not come up; `action` is the service's failure_action."""

    def __init__(self, message: str, action: str = "pause"):
        super().__init__(message)
        self.action = action


class Suspend(Exception):
    """The slice's time is up: the state is saved, the next task continues."""


class LostLease(Exception):
    """The revision is no longer this slice's: cancelled (the stack is being removed),
    superseded, or taken over by another worker after this one stalled past its lease."""


class Deployment:
    """One slice of the run of one revision (see the module docstring), from its saved state."""

    def __init__(self, revision: Revision, owner: str = "", slice_seconds: float = SLICE):
        self.revision = revision
        self.owner = owner
        self.stack: Stack = revision.stack
        self.spec = StackSpec.from_dict(revision.spec)
        self.actor = Actor(name=revision.actor_name or "system", channel="system")
        self.secrets = services.engine_secrets(self.stack)
        saved = revision.progress or {}
        self.steps: list[dict[str, Any]] = list(saved.get("steps") or [])
        self.flushed = len(self.steps)  # steps[:flushed] are in the Operation and were pushed
        self.total = max(1, len(self.spec.networks) + len(self.spec.volumes)
                         + sum(max(s.replicas, 1) for s in self.spec.services.values()))
        self.done = int(saved.get("done") or 0)
        # container pk -> {"since": wall-clock time first waited on, "ready_at": first ready}
        self.timers: dict[str, dict[str, float]] = dict(saved.get("timers") or {})
        # service -> {"slots": [...], "removing": [container names]}: the batch being rolled
        self.batches: dict[str, dict[str, Any]] = dict(saved.get("batches") or {})
        self.delays: dict[str, float] = dict(saved.get("delays") or {})  # next batch not before
        self.extra = {k: v for k, v in saved.items()
                      if k not in ("steps", "done", "timers", "batches", "delays")}
        self.phase = revision.phase or "claimed"
        self.hashes = {name: replica_hash(self.spec, name, revision.secret_digests,
                                          revision.image_digests.get(
                                              s.container["image"], ""))
                       for name, s in self.spec.services.items()}
        self.deadline = revision.deadline_at.timestamp() if revision.deadline_at \
            else time.time() + DEPLOY_TIMEOUT
        self.slice_ends = time.monotonic() + slice_seconds
        self.beat_at = time.monotonic()

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> str:
        """The final status; Suspend when the slice's time is up, LostLease when the revision
        is no longer ours."""
        for image, problem in sorted((self.revision.result.get("image_problems") or {}).items()):
            self._step(f"image {image} not pulled", "failed", problem, advance=0, flush=False)
        try:
            self.phase = "networks and volumes"
            self._ensure_networks()
            self._ensure_volumes()
            self._deploy_services()
            self.phase = "removing services the file no longer has"
            self._remove_gone_services()
        except Suspend:
            self._save()
            raise
        except LostLease:
            raise
        except DeployFailed as exc:
            return self._failed(str(exc), exc.action)
        except Exception as exc:  # recorded on the revision; the worker stays up
            if not self._still_ours():  # the stack was removed under us
                raise LostLease(str(exc)) from exc
            log.exception("deploy of %s failed", self.revision)
            return self._failed(f"{type(exc).__name__}: {exc}", "pause")
        return self._finish(Revision.SUCCEEDED, "every replica is running"
                            + (" and healthy" if self._any_healthcheck() else ""))

    def _failed(self, reason: str, action: str) -> str:
        previous = self.stack.current_revision
        if action == "rollback" and previous is not None \
                and previous.pk != self.revision.pk:
            def finish_and_roll_back() -> None:
                # one transaction: an interruption leaves either both or neither
                with transaction.atomic():
                    self._record(Revision.ROLLED_BACK,
                                 f"{reason}; rolled back to revision {previous.number}")
                    services.rollback_stack(self.actor, self.stack, previous.number,
                                            reason=f"automatic rollback of revision "
                                                   f"{self.revision.number}: {reason}")

            self._flush(save=False)
            _retry(finish_and_roll_back)
            return Revision.ROLLED_BACK
        status = Revision.PAUSED if action == "pause" else Revision.FAILED
        return self._finish(status, reason)

    def _finish(self, status: str, reason: str) -> str:
        self._flush(save=False)  # steps not pushed yet (a failure right after networks)
        _retry(self._record, status, reason)
        return status

    def _record(self, status: str, reason: str) -> None:
        if services.finish_revision(self.actor, self.revision, status, reason,
                                    {"steps": self.steps}, owner=self.owner) is None:
            raise LostLease("finished by someone else")

    def _still_ours(self) -> bool:
        return Revision.objects.filter(pk=self.revision.pk, status=Revision.RUNNING,
                                       lease_owner=self.owner).exists()

    def _progress(self) -> dict[str, Any]:
        return {**self.extra, "steps": self.steps, "done": self.done, "timers": self.timers,
                "batches": self.batches, "delays": self.delays}

    def _save(self) -> None:
        """The heartbeat: renew the lease and save the state (LostLease when not ours)."""
        self.beat_at = time.monotonic()
        if not _retry(services.save_revision_progress, self.revision.pk, self.owner,
                      self.phase, self._progress()):
            raise LostLease("the revision is no longer this worker's")

    def _step(self, name: str, status: str = "done", detail: str = "",
              advance: int = 1, flush: bool = True, also: str = "") -> None:
        """Record a step; with `flush`, write the progress to the Operation and push it (a
        batch of steps records the earlier ones with flush=False, then flushes once). A step
        already recorded (by an earlier slice; or named `also`) is not recorded again."""
        if any((s["name"], s["status"], s["detail"]) == (name, status, detail)
               or (also and s["name"] == also) for s in self.steps):
            return
        self.steps.append({"name": name, "status": status, "detail": detail,
                           "at": time.time()})
        self.done += advance
        if flush:
            self._flush()

    def _flush(self, save: bool = True) -> None:
        """Write the progress so far to the revision (the heartbeat) and its Operation, and
        push the steps recorded since the last flush to browsers."""
        fresh, self.flushed = self.steps[self.flushed:], len(self.steps)
        if save:
            self._save()
        if not fresh:
            return
        name, status = fresh[-1]["name"], fresh[-1]["status"]
        if self.revision.operation_id:
            from panel.workloads.reports import record_operation_progress

            _retry(record_operation_progress,
                self.actor, str(self.revision.operation_id), Operation.RUNNING,
                min(99.0, 100.0 * self.done / self.total), f"{name}: {status}",
                {"revision": self.revision.number, "steps": self.steps})
        try:
            from panel.live.emit import emit

            with transaction.atomic():
                for step in fresh:
                    emit({"type": "stack", "id": self.stack.pk, "name": self.stack.name,
                          "revision": self.revision.number, "step": step["name"],
                          "status": step["status"], "detail": step["detail"]},
                         self.stack.project_id)
        except ImportError:  # panel/live is optional
            pass

    def _any_healthcheck(self) -> bool:
        return any(s.container["healthcheck"] for s in self.spec.services.values())

    # -- networks and volumes ----------------------------------------------------------------
    def _ensure_networks(self) -> None:
        for key, network in sorted(self.spec.networks.items()):
            existing = Network.objects.filter(name=network.name).first()
            if network.external:
                if existing is None:
                    raise DeployFailed(f"external network {network.name!r} (networks.{key}) "
                                       "does not exist: create it first")
            elif existing is None:
                _retry(workloads.create_network, self.actor, network.name,
                       network.subnet or None, network.gateway or None,
                       {**network.labels, "berth.stack": self.stack.name}, self.stack.project,
                       internal=network.internal)
            elif existing.internal != network.internal:
                # Hosts keep a network as it was created; going on would silently leave an
                # internal network open (or the reverse).
                raise DeployFailed(
                    f"network {network.name!r} (networks.{key}) exists with internal: "
                    f"{str(existing.internal).lower()}, the compose file asks for internal: "
                    f"{str(network.internal).lower()}: remove the stack and deploy it again, "
                    "or give the network another name")
            self._step(f"network {network.name}", flush=False)  # with the first replicas

    def _ensure_volumes(self) -> None:
        for key, volume in sorted(self.spec.volumes.items()):
            exists = Volume.objects.filter(name=volume.name).exists()
            if volume.external:
                if not exists:
                    raise DeployFailed(f"external volume {volume.name!r} (volumes.{key}) does "
                                       "not exist: create it first")
            elif not exists:
                _retry(workloads.create_volume, self.actor, volume.name,
                       {**volume.labels, "berth.stack": self.stack.name},
                       project=self.stack.project)
            self._step(f"volume {volume.name}", flush=False)

    # -- services ----------------------------------------------------------------------------
    def _replicas(self, service: str) -> list[Replica]:
        return list(Replica.objects.filter(stack=self.stack, service=service)
                    .select_related("container").order_by("slot", "created_at"))

    def _deploy_services(self) -> None:
        pending = list(self.spec.order)
        launched: list[str] = []
        while pending:
            ready = [name for name in pending
                     if self._dependencies_met(self.spec.services[name])]
            if not ready:
                self.phase = f"waiting for the dependencies of {', '.join(pending)}"
                self._check_launched(launched)
                self._tick()
                continue
            for name in ready:
                pending.remove(name)
                self._roll(name)
            self._scale(ready)  # the missing replicas of every ready service, all at once
            launched += ready
        for name in launched:
            service = self.spec.services[name]
            self.phase = f"waiting for {name}"
            self._wait([r for r in self._replicas(name) if r.spec_hash == self.hashes[name]],
                       service, monitor=False)

    def _dependencies_met(self, service: ServiceSpec) -> bool:
        for dependency, condition in service.depends_on.items():
            replicas = self._replicas(dependency)
            wanted = self.spec.services[dependency].replicas
            current = [r for r in replicas if r.spec_hash == self.hashes[dependency]]
            if len(current) < wanted:
                return False
            for replica in current:
                state = _state(replica.container)
                if state == "failed":
                    raise DeployFailed(f"{dependency} replica {replica.slot} failed "
                                       f"({_why(replica.container)}), so {service.name} "
                                       "cannot start",
                                       self.spec.services[dependency].update_config[
                                           "failure_action"])
                if condition == "service_healthy" and state != "ready":
                    return False
                if state not in ("ready", "running"):
                    return False
        return True

    def _check_launched(self, launched: Iterable[str]) -> None:
        for name in launched:
            for replica in self._replicas(name):
                if replica.spec_hash == self.hashes[name] \
                        and _state(replica.container) == "failed":
                    raise DeployFailed(f"{name} replica {replica.slot} failed: "
                                       f"{_why(replica.container)}",
                                       self.spec.services[name].update_config["failure_action"])

    def _tick(self) -> None:
        """Between two polls: fail past the deadline, end the slice when its time is up,
        renew the lease when due, then sleep POLL."""
        if time.time() > self.deadline:
            raise DeployFailed(f"the deploy did not finish within {DEPLOY_TIMEOUT:g}s")
        if time.monotonic() >= self.slice_ends:
            raise Suspend()
        if time.monotonic() - self.beat_at >= _heartbeat_every():
            self._save()
        time.sleep(POLL)

    def _drop(self, replica: Replica) -> None:
        """Remove a replica, while the revision is still ours (LostLease otherwise)."""

        @transaction.atomic
        def drop() -> None:
            if not services.lock_for_engine(self.revision.pk, self.owner):
                raise LostLease("the revision is no longer this worker's")
            if Container.objects.filter(pk=replica.container_id).exists():
                services.drop_replica(self.actor, replica)

        _retry(drop)

    def _dedupe(self, name: str) -> None:
        """Per slot, one replica of the current hash: the best one stays (ready, running,
        pending, failed; the older of two alike), the others go; slots beyond the declared
        count go too."""
        service = self.spec.services[name]
        by_slot: dict[int, list[Replica]] = {}
        for replica in self._replicas(name):
            if replica.spec_hash == self.hashes[name]:
                by_slot.setdefault(replica.slot, []).append(replica)
        for slot, replicas in sorted(by_slot.items()):
            keep = None if slot > service.replicas else min(
                replicas, key=lambda r: (_RANK[_state(r.container)], r.created_at, r.pk))
            for replica in replicas:
                if replica is not keep:
                    self._drop(replica)
                    self._step(f"{name} replica {replica.slot} removed", advance=0,
                               detail=replica.container.name, flush=False)

    def _scale(self, names: list[str]) -> None:
        """Per service of `names`: remove extra replicas (duplicate or beyond the count), then
        create the missing slots of all of them together (_create_many)."""
        missing: list[tuple[str, int]] = []
        for name in names:
            service = self.spec.services[name]
            self._dedupe(name)
            present = {r.slot for r in self._replicas(name) if r.spec_hash == self.hashes[name]}
            for slot in range(1, service.replicas + 1):
                if slot in present:
                    self._step(f"{name} replica {slot} unchanged", flush=False,
                               also=f"{name} replica {slot} created")
                else:
                    missing.append((name, slot))
        if missing:
            self._create_many(missing)
        else:
            self._flush()

    def _create_many(self, slots: list[tuple[str, int]]) -> list[Replica]:
        """Create the replicas of `slots` ((service, slot) pairs) in one transaction: their
        hosts get them all at once when it commits, with no round trip per replica; nothing
        is created once the revision is no longer ours. Then the steps are recorded, and the
        progress written once."""

        @transaction.atomic
        def create_all() -> list[Replica]:
            if not services.lock_for_engine(self.revision.pk, self.owner):
                raise LostLease("the revision is no longer this worker's")
            return [self._create(name, slot) for name, slot in slots]

        replicas = _retry(create_all)
        for replica in replicas:
            self._step(f"{replica.service} replica {replica.slot} created",
                       detail=replica.container.name, flush=False)
        self._flush()
        return replicas

    def _create(self, name: str, slot: int) -> Replica:
        service = self.spec.services[name]
        container = service.container
        # the columns go through the container validator; the other spec fields were checked
        # by the compose front end and are stored as they are (at their defaults: left out)
        data = {key: container.get(key, default_of(key)) for key in workloads.SPEC_COLUMNS
                if key not in ("name", "env", "healthcheck")}
        data["env"], data["secrets"] = split_environment(container["env"], self.secrets)
        digest = self.revision.image_digests.get(container["image"])
        if digest:
            data["image"], data["pull"] = f"{container['image']}@{digest}", True
        check = container["healthcheck"]
        if check is not None:
            data["healthcheck"] = {**check, **{
                key: f"{check[key]}ns" for key in ("interval", "timeout", "start_period",
                                                   "start_interval") if key in check}}
        elif container["ports"]:
            data["healthcheck"] = readiness_check(container["ports"])
        data["name"] = self._name(name, slot)
        options = {key: value for key, value in container.items()
                   if key not in workloads.SPEC_COLUMNS and not is_default(key, value)}
        secret_files = {entry["target"]: self.secrets.get(entry["secret"], "")
                        for entry in container.get("files") or [] if entry.get("secret")}
        aliases = [name, *sorted({a for names in service.aliases.values() for a in names})]
        options["network_aliases"] = aliases
        if container["ports"]:
            options["port_group"] = f"{self.stack.name}_{name}"
        return services.add_replica(self.actor, self.stack, name, slot, self.hashes[name],
                                    self.revision.number, data, options, secret_files)

    def _name(self, service: str, slot: int) -> str:
        # compose container_name: one replica, named as the file says (a roll that finds the
        # name taken waits for the old container's removal, as Docker recreates it)
        chosen = self.spec.services[service].container.get("name")
        if chosen:
            return str(chosen)
        base = f"{self.stack.name}-{service}-{slot}"
        for candidate in (base, f"{base}-r{self.revision.number}"):
            if not Container.objects.filter(name=candidate).exists() \
                    and not _removing([candidate]).exists():
                return candidate
        return f"{base}-r{self.revision.number}-{uuid.uuid4().hex[:4]}"

    def _roll(self, name: str) -> None:
        """Replace the replicas made from another spec, batch by batch (module docstring 4),
        from whatever state an earlier slice left: a saved batch is finished first, then a
        slot holding both an old and a new replica, then the next `parallelism` slots."""
        service = self.spec.services[name]
        config = dict(service.update_config)
        if service.container.get("name"):  # one fixed name: the old container must go first
            config["order"] = "stop-first"
        wanted = self.hashes[name]
        self._dedupe(name)
        while True:
            stale: dict[int, list[Replica]] = {}
            current: dict[int, Replica] = {}
            for replica in self._replicas(name):
                if replica.spec_hash == wanted:
                    current.setdefault(replica.slot, replica)
                elif replica.slot > service.replicas:
                    self._drop(replica)
                else:
                    stale.setdefault(replica.slot, []).append(replica)
            batch = self.batches.get(name)
            if batch is None:
                todo = sorted(stale)
                if not todo:
                    return
                started = [slot for slot in todo if slot in current]
                if not started and time.time() < self.delays.get(name, 0.0):
                    self.phase = f"{name}: delay before the next batch"
                    self._tick()
                    continue
                batch = {"slots": started or todo[:config["parallelism"] or len(todo)],
                         "removing": []}
                if config["order"] != "start-first":
                    batch["removing"] = [r.container.name for slot in batch["slots"]
                                         for r in stale.get(slot, [])]
                self.batches[name] = batch
                self._save()  # the batch is durable before its first change
            slots = batch["slots"]
            self.phase = f"{name}: rolling replicas {', '.join(map(str, slots))}"
            if config["order"] == "start-first":
                self._start_first(name, service, slots, stale, current)
            else:
                self._stop_first(name, service, slots, stale, current, batch["removing"])
            del self.batches[name]
            more = any(slot not in slots for slot in stale)
            self.delays[name] = time.time() + config["delay"] / 1e9 \
                if config["delay"] and more else 0.0
            self._save()

    def _start_first(self, name: str, service: ServiceSpec, slots: list[int],
                     stale: dict[int, list[Replica]], current: dict[int, Replica]) -> None:
        missing = [slot for slot in slots if slot not in current]
        new = [current[slot] for slot in slots if slot in current]
        if missing:
            new += self._create_many([(name, slot) for slot in missing])
        self._wait_or_undo(new, service)
        for slot in slots:
            for old in stale.get(slot, []):
                self._drop(old)
                self._step(f"{name} replica {old.slot} replaced", advance=0,
                           detail=old.container.name)

    def _stop_first(self, name: str, service: ServiceSpec, slots: list[int],
                    stale: dict[int, list[Replica]], current: dict[int, Replica],
                    removing: list[str]) -> None:
        for slot in slots:
            for old in stale.get(slot, []):
                self._drop(old)
                self._step(f"{name} replica {old.slot} stopped", advance=0,
                           detail=old.container.name)
        self._wait_removed(removing)
        missing = [slot for slot in slots if slot not in current]
        new = [current[slot] for slot in slots if slot in current]
        if missing:
            new += self._create_many([(name, slot) for slot in missing])
        self._wait_or_undo(new, service)

    def _wait_removed(self, names: list[str]) -> None:
        """Until the hosts removed the containers `names`: with stop-first the old replica is
        gone (its port, its volume, its name) before its successor starts."""
        if not names:
            return
        timer = self.timers.setdefault("removed " + ",".join(sorted(names)),
                                       {"since": time.time()})
        while _removing(names).exists():
            if time.time() - timer["since"] > READY_TIMEOUT:
                raise DeployFailed(f"{', '.join(names)} not removed within {READY_TIMEOUT:g}s "
                                   "(is the host down?)")
            self._tick()

    def _wait_or_undo(self, new: list[Replica], service: ServiceSpec) -> None:
        try:
            self._wait(new, service, monitor=True)
        except DeployFailed as exc:
            if service.update_config["failure_action"] == "continue":
                self._step(f"{service.name} update", "failed", str(exc), advance=0)
                return
            for replica in new:
                self._drop(replica)
            raise

    def _wait(self, replicas: list[Replica], service: ServiceSpec, monitor: bool) -> None:
        """Until every replica is ready (running, and healthy when it has a health check),
        then, with `monitor`, does not fail (exit, turn unhealthy) for update_config.monitor;
        DeployFailed otherwise. A report that arrives late with an older health ("starting")
        does not count as a failure. The timers are wall-clock times in the saved state, so a
        later slice goes on counting where this one stopped."""
        if not replicas:
            return
        action = service.update_config["failure_action"]
        check = service.container["healthcheck"]
        limit = READY_TIMEOUT
        if check:
            limit += (check["start_period"] + (check["interval"] or 30e9)
                      * ((check["retries"] or 3) + 1)) / 1e9
        window = service.update_config["monitor"] / 1e9 if monitor else 0.0
        while True:
            now = time.time()
            timers = []
            for replica in replicas:
                timer = self.timers.setdefault(str(replica.container_id), {"since": now})
                timers.append(timer)
                replica.container.refresh_from_db()
                state = _state(replica.container)
                if state == "failed":
                    raise DeployFailed(f"{service.name} replica {replica.slot} "
                                       f"({replica.container.name}) failed: "
                                       f"{_why(replica.container)}", action)
                if state == "ready":
                    timer.setdefault("ready_at", now)
                elif "ready_at" not in timer and now - timer["since"] > limit:
                    raise DeployFailed(f"{service.name} replica {replica.slot} was not "
                                       f"ready within {limit:g}s "
                                       f"({_why(replica.container)})", action)
            if all("ready_at" in t and now - t["ready_at"] >= window for t in timers):
                return
            self._tick()

    def _remove_gone_services(self) -> None:
        for replica in Replica.objects.filter(stack=self.stack).exclude(
                service__in=list(self.spec.services)).select_related("container"):
            self._drop(replica)
            self._step(f"{replica.service} replica {replica.slot} removed (service gone)",
                       advance=0)


def readiness_check(ports: list[str]) -> dict[str, Any] | None:
    """The health check of a replica that shares published ports and has none of its own: a
    TCP connect to its first published TCP port (runtime/containers/health.py), so the host
    sends it connections, and a rolling update replaces an old replica, only once it accepts
    them. None when it publishes UDP only."""
    for text in ports:
        spec = parse_port_spec(text)
        if spec.protocol == "tcp":
            return {"test": ["TCP", str(spec.container_port)], "interval": "2s",
                    "timeout": "1s", "retries": 3}
    return None


def _removing(names: list[str]) -> Any:
    """The removals of containers `names` that their hosts have not finished."""
    return Operation.objects.filter(kind="container.remove", target_name__in=names).exclude(
        status__in=Operation.FINISHED)


def _state(container: Container) -> str:
    """"ready", "running" (not healthy yet), "pending" or "failed"."""
    if container.health == "unhealthy" and container.status in ACTIVE_STATUSES:
        return "failed"
    if container.status in ACTIVE_STATUSES:
        if container.healthcheck and container.health != "healthy":
            return "running"
        return "ready"
    if container.status in ("exited", "dead") and container.restart == "no":
        return "failed"
    if container.error and container.status not in ("", "created"):
        return "failed"
    failed_apply = Operation.objects.filter(
        target_type="container", target_id=str(container.pk), kind="container.create",
        status=Operation.FAILED).values_list("message", flat=True).first()
    if failed_apply is not None:
        container.error = container.error or failed_apply
        return "failed"
    return "pending"


def _why(container: Container) -> str:
    if container.health == "unhealthy":
        return "it failed its health check"
    if container.error:
        return container.error[:300]
    if container.status in ("exited", "dead"):
        return f"it exited with code {container.exit_code}"
    return f"status {container.status or 'not reported yet'}"


def run_slice(revision_id: int, previous: str = "",
              slice_seconds: float = SLICE) -> tuple[str | None, str]:
    """One slice of the deploy of revision `revision_id`: take its lease (claim it when
    pending, take it from slice `previous`, or take it over when its owner is dead), run the
    engine for at most `slice_seconds`. Returns (the final status, "") when it finished,
    (None, owner) when the next slice should continue under lease owner `owner`, and
    (None, "") when it was not ours to run (finished, cancelled, held by a live owner)."""
    owner = services.new_owner()
    status = Revision.objects.filter(pk=revision_id).values_list("status", flat=True).first()
    taken_over = False
    if status == Revision.PENDING:
        if not services.claim_revision(revision_id, owner, DEPLOY_TIMEOUT):
            return None, ""
    elif status != Revision.RUNNING:
        return None, ""
    elif not (previous and services.pass_lease(revision_id, previous, owner)):
        if services.take_over_revision(Actor.system("deploy-engine"), revision_id,
                                       owner) is None:
            return None, ""  # its owner is alive (or this was a stale message of a slice)
        taken_over = True
    revision = Revision.objects.select_related("stack", "stack__current_revision").get(
        pk=revision_id)
    if taken_over:
        log.warning("stack revision %s: taken over at %r (the worker deploying it stopped)",
                    revision, revision.phase)
    if revision.result.get("pull") and not revision.progress.get("pinned"):
        from panel.stacks.images import pin_digests

        problems = pin_digests(revision)
        if problems:  # kept on the revision: finish_revision leaves their updates pending
            Revision.objects.filter(pk=revision.pk).update(
                result={**revision.result, "image_problems": problems})
        services.save_revision_progress(revision.pk, owner, revision.phase,
                                        {**revision.progress, "pinned": True})
        revision.refresh_from_db()
    try:
        deployment = Deployment(revision, owner, slice_seconds)
        if taken_over:
            deployment._step("deploy resumed", "done",
                             f"the worker deploying it stopped at: {revision.phase}", advance=0,
                             flush=False)
        return deployment.run(), ""
    except Suspend:
        return None, owner
    except LostLease as exc:
        log.info("stack revision %s: stopped, no longer this worker's (%s)", revision, exc)
        return None, ""
    except (OperationalError, InterfaceError):
        raise  # the database is away: the lease expires and a later slice goes on
    except Exception as exc:
        # a fault that would repeat at every take-over (an undecryptable secret, a bug): the
        # revision fails saying so, rather than staying running for good
        log.exception("stack revision %s: the engine failed", revision)
        services.finish_revision(Actor.system("deploy-engine"), revision, Revision.FAILED,
                                 f"internal error in the deploy engine: {exc}",
                                 {**revision.result}, owner=owner)
        return Revision.FAILED, ""


def run_revision(revision_id: int) -> str | None:
    """Deploy revision `revision_id` to its end in this process, slice after slice; its final
    status (None: not ours to run)."""
    status, owner = run_slice(revision_id)
    while owner:
        status, owner = run_slice(revision_id, owner)
    return status
