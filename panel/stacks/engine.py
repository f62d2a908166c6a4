"""The deploy engine: rolls one revision out, run by the control worker (tasks.stack_deploy).

`Deployment.run` numbers its steps:
1. claim the revision (a conditional update: a redelivered task does nothing twice);
2. create the stack's networks and volumes that the panel does not have yet (hosts create them
   when the first replica arrives);
3. walk the services in dependency order: a service starts once each of its dependencies is
   started (`service_started`: every replica runs) or healthy (`service_healthy`: every replica
   passed its health check). A service whose replicas were made from the same replica hash is
   only scaled (missing slots created, extra ones removed); a changed one is rolled (4).
   The missing replicas of every service whose dependencies are met are created in one
   transaction, so their hosts get them at once; the engine polls the replicas' rows every
   POLL seconds (reports from the hosts land there);
4. rolling update per `deploy.update_config`: in batches of `parallelism`, with `start-first`
   a new replica starts, must run and pass its health check (it then joins its port group on
   the host and takes connections), and stays so for `monitor`; only then does the old one
   leave the group and stop. `stop-first` removes the old one first (and waits until its host
   did). Between batches, `delay`.
   A replica that shares published ports and has no health check of its own gets a TCP connect
   check on its first published TCP port (`readiness_check`), so "ready" means it accepts them.
   A new replica that fails is removed, and `failure_action` decides: `rollback` ends the
   revision as rolled back and deploys the last good revision again (the reason is recorded on
   both), `pause` ends it as paused, `continue` goes on;
5. wait until every replica of every service is ready, remove the services the file no longer
   has, and record the outcome (a succeeded revision becomes the stack's current one).
Progress is written to the revision's Operation after each step (and pushed to browsers).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import OperationalError, transaction

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
POLL = 0.05  # small queries on indexed rows: polling this often costs little
LOCK_RETRIES = 20
READY_TIMEOUT = 90.0  # a replica without health check must run within this
DEPLOY_TIMEOUT = 1800.0


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


class DeployFailed(Exception):
    """A replica did not come up; `action` is the service's failure_action."""

    def __init__(self, message: str, action: str = "pause"):
        super().__init__(message)
        self.action = action


@dataclass
class Waiting:
    replica: Replica
    since: float
    ready_at: float | None = None


class Deployment:
    """One run of one revision (see the module docstring)."""

    def __init__(self, revision: Revision):
        self.revision = revision
        self.stack: Stack = revision.stack
        self.spec = StackSpec.from_dict(revision.spec)
        self.actor = Actor(name=revision.actor_name or "system", channel="system")
        self.secrets = services.stack_secrets(self.stack)
        self.steps: list[dict[str, Any]] = []
        self.flushed = 0  # steps[:flushed] are in the Operation and were pushed
        self.total = max(1, len(self.spec.networks) + len(self.spec.volumes)
                         + sum(max(s.replicas, 1) for s in self.spec.services.values()))
        self.done = 0
        self.hashes = {name: replica_hash(self.spec, name, revision.secret_digests,
                                          revision.image_digests.get(
                                              s.container["image"], ""))
                       for name, s in self.spec.services.items()}
        self.deadline = time.monotonic() + DEPLOY_TIMEOUT

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> str:
        for image, problem in sorted((self.revision.result.get("image_problems") or {}).items()):
            self._step(f"image {image} not pulled", "failed", problem, advance=0, flush=False)
        try:
            self._ensure_networks()
            self._ensure_volumes()
            self._deploy_services()
            self._remove_gone_services()
        except DeployFailed as exc:
            return self._failed(str(exc), exc.action)
        except Exception as exc:  # recorded on the revision; the worker stays up
            log.exception("deploy of %s failed", self.revision)
            return self._failed(f"{type(exc).__name__}: {exc}", "pause")
        self._finish(Revision.SUCCEEDED, "every replica is running"
                     + (" and healthy" if self._any_healthcheck() else ""))
        return Revision.SUCCEEDED

    def _failed(self, reason: str, action: str) -> str:
        previous = self.stack.current_revision
        if action == "rollback" and previous is not None \
                and previous.pk != self.revision.pk:
            self._finish(Revision.ROLLED_BACK,
                         f"{reason}; rolled back to revision {previous.number}")
            _retry(services.rollback_stack, self.actor, self.stack, previous.number,
                                    reason=f"automatic rollback of revision "
                                           f"{self.revision.number}: {reason}")
            return Revision.ROLLED_BACK
        status = Revision.PAUSED if action == "pause" else Revision.FAILED
        self._finish(status, reason)
        return status

    def _finish(self, status: str, reason: str) -> None:
        self._flush()  # steps not pushed yet (a failure right after networks and volumes)
        _retry(services.finish_revision, self.actor, self.revision, status, reason,
                                 {"steps": self.steps})

    def _step(self, name: str, status: str = "done", detail: str = "",
              advance: int = 1, flush: bool = True) -> None:
        """Record a step; with `flush`, write the progress to the Operation and push it (a
        batch of steps records the earlier ones with flush=False, then flushes once)."""
        self.steps.append({"name": name, "status": status, "detail": detail,
                           "at": time.time()})
        self.done += advance
        if flush:
            self._flush()

    def _flush(self) -> None:
        """Write the progress so far to the revision's Operation and push the steps recorded
        since the last flush to browsers."""
        fresh, self.flushed = self.steps[self.flushed:], len(self.steps)
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
                self._check_launched(launched)
                self._tick()
                continue
            for name in ready:
                pending.remove(name)
                stale = [r for r in self._replicas(name) if r.spec_hash != self.hashes[name]]
                if stale:
                    self._roll(name, stale)
            self._scale(ready)  # the missing replicas of every ready service, all at once
            launched += ready
        for name in launched:
            service = self.spec.services[name]
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
        if time.monotonic() > self.deadline:
            raise DeployFailed(f"the deploy did not finish within {DEPLOY_TIMEOUT:g}s")
        time.sleep(POLL)

    def _scale(self, names: list[str]) -> None:
        """Per service of `names`: remove extra replicas (duplicate or beyond the count), then
        create the missing slots of all of them together (_create_many)."""
        missing: list[tuple[str, int]] = []
        for name in names:
            service = self.spec.services[name]
            by_slot: dict[int, Replica] = {}
            for replica in self._replicas(name):
                if replica.spec_hash != self.hashes[name]:
                    continue
                if replica.slot in by_slot or replica.slot > service.replicas:
                    _retry(services.drop_replica, self.actor, replica)
                    self._step(f"{name} replica {replica.slot} removed", advance=0,
                               flush=False)
                else:
                    by_slot[replica.slot] = replica
            for slot in range(1, service.replicas + 1):
                if slot in by_slot:
                    self._step(f"{name} replica {slot} unchanged", flush=False)
                else:
                    missing.append((name, slot))
        if missing:
            self._create_many(missing)
        else:
            self._flush()

    def _create_many(self, slots: list[tuple[str, int]]) -> list[Replica]:
        """Create the replicas of `slots` ((service, slot) pairs) in one transaction: their
        hosts get them all at once when it commits, with no round trip per replica. Then the
        steps are recorded, and the progress written once."""

        @transaction.atomic
        def create_all() -> list[Replica]:
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
        aliases = [name, *sorted({a for names in service.aliases.values() for a in names})]
        options["network_aliases"] = aliases
        if container["ports"]:
            options["port_group"] = f"{self.stack.name}_{name}"
        return services.add_replica(self.actor, self.stack, name, slot, self.hashes[name],
                                    self.revision.number, data, options)

    def _name(self, service: str, slot: int) -> str:
        base = f"{self.stack.name}-{service}-{slot}"
        for candidate in (base, f"{base}-r{self.revision.number}"):
            if not Container.objects.filter(name=candidate).exists() \
                    and not _removing([candidate]).exists():
                return candidate
        return f"{base}-r{self.revision.number}-{uuid.uuid4().hex[:4]}"

    def _roll(self, name: str, stale: list[Replica]) -> None:
        """Replace the replicas made from another spec, batch by batch (module docstring 4)."""
        service = self.spec.services[name]
        config = service.update_config
        in_range = [r for r in stale if r.slot <= service.replicas]
        for replica in stale:
            if replica.slot > service.replicas:
                _retry(services.drop_replica, self.actor, replica)
        size = config["parallelism"] or max(len(in_range), 1)
        for start in range(0, len(in_range), size):
            batch = in_range[start:start + size]
            if config["order"] == "start-first":
                new = self._create_many([(name, old.slot) for old in batch])
                self._wait_or_undo(new, service)
                for old in batch:
                    _retry(services.drop_replica, self.actor, old)
                    self._step(f"{name} replica {old.slot} replaced", advance=0,
                               detail=old.container.name)
            else:
                for old in batch:
                    _retry(services.drop_replica, self.actor, old)
                    self._step(f"{name} replica {old.slot} stopped", advance=0,
                               detail=old.container.name)
                self._wait_removed([old.container.name for old in batch])
                new = self._create_many([(name, old.slot) for old in batch])
                self._wait_or_undo(new, service)
            if config["delay"] and start + size < len(in_range):
                time.sleep(config["delay"] / 1e9)

    def _wait_removed(self, names: list[str]) -> None:
        """Until the hosts removed the containers `names`: with stop-first the old replica is
        gone (its port, its volume, its name) before its successor starts."""
        deadline = time.monotonic() + READY_TIMEOUT
        while _removing(names).exists():
            if time.monotonic() > deadline:
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
                _retry(services.drop_replica, self.actor, replica)
            raise

    def _wait(self, replicas: list[Replica], service: ServiceSpec, monitor: bool) -> None:
        """Until every replica is ready (running, and healthy when it has a health check),
        then, with `monitor`, does not fail (exit, turn unhealthy) for update_config.monitor;
        DeployFailed otherwise. A report that arrives late with an older health ("starting")
        does not count as a failure."""
        if not replicas:
            return
        action = service.update_config["failure_action"]
        check = service.container["healthcheck"]
        limit = READY_TIMEOUT
        if check:
            limit += (check["start_period"] + (check["interval"] or 30e9)
                      * ((check["retries"] or 3) + 1)) / 1e9
        window = service.update_config["monitor"] / 1e9 if monitor else 0.0
        started = time.monotonic()
        waiting = [Waiting(r, started) for r in replicas]
        while True:
            now = time.monotonic()
            for item in waiting:
                item.replica.container.refresh_from_db()
                state = _state(item.replica.container)
                if state == "failed":
                    raise DeployFailed(f"{service.name} replica {item.replica.slot} "
                                       f"({item.replica.container.name}) failed: "
                                       f"{_why(item.replica.container)}", action)
                if state == "ready":
                    item.ready_at = item.ready_at or now
                elif item.ready_at is None and now - item.since > limit:
                    raise DeployFailed(f"{service.name} replica {item.replica.slot} was not "
                                       f"ready within {limit:g}s "
                                       f"({_why(item.replica.container)})", action)
            if all(i.ready_at is not None and now - i.ready_at >= window for i in waiting):
                return
            self._tick()

    def _remove_gone_services(self) -> None:
        for replica in Replica.objects.filter(stack=self.stack).exclude(
                service__in=list(self.spec.services)).select_related("container"):
            _retry(services.drop_replica, self.actor, replica)
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


def run_revision(revision_id: int) -> str | None:
    """Claim and deploy revision `revision_id`; its final status (None: not ours to run)."""
    if not services.claim_revision(revision_id):
        return None
    revision = Revision.objects.select_related("stack", "stack__current_revision").get(
        pk=revision_id)
    if revision.result.get("pull"):
        from panel.stacks.images import pin_digests

        problems = pin_digests(revision)
        if problems:  # kept on the revision: finish_revision leaves their updates pending
            Revision.objects.filter(pk=revision.pk).update(
                result={**revision.result, "image_problems": problems})
            revision.refresh_from_db()
    return Deployment(revision).run()
