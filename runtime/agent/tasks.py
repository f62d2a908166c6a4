"""The `berth.agent.*` tasks (`runtime.protocol`): thin, idempotent calls into `runtime/`.

Each task body is a method of `AgentTasks` (plain Python, testable without Celery); `register`
turns them into Celery tasks of the agent's app. Every task accepts and ignores keyword arguments
it does not know, so the panel can add fields to the protocol before every agent is upgraded.

Idempotence:
- a container is found by its uid label, never by a name or runtime id the panel remembers;
- everything done for one uid happens under a per-uid file lock, so two deliveries of the same
  message (a redelivery after a crash, a duplicate) run one after the other, and the second finds
  the work done;
- a spec's `generation` orders the versions of a container: an older one is ignored, a newer one
  replaces the container (stop, remove, create: a patch is a new container).

Tasks that carry an `operation_id` report `operation_progress` when they start, during long work
(image pulls) and when they end; the runtime's error message is the failure message.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime import fsutil
from runtime.agent import specs, stack_files
from runtime.agent.celery_app import ControlClient
from runtime.agent.outcomes import Outcomes
from runtime.containers import logs as container_logs
from runtime.containers.record import ZERO_TIME, Container
from runtime.errors import BerthError, ContainerNotRunning, InvalidArgument, NotFound
from runtime.protocol import (
    FAILED,
    GENERATION_LABEL,
    RUNNING,
    SUCCEEDED,
    UID_LABEL,
    agent_task,
    container_state,
    control_task,
)
from runtime.volumes import scheduled

if TYPE_CHECKING:
    from celery import Celery

    from runtime.agent.reporter import Reporter
    from runtime.host import Host

log = logging.getLogger("berth.agent.tasks")

LOCK_STRIPES = 64
# Seconds between two progress reports of one operation: the quick steps of an apply (create,
# start) are reported only when the operation has been quiet that long, since every report is
# a write on the panel, competing for its CPU and database while the container starts.
PROGRESS_EVERY = 0.5
FINAL_REPORT_RETRY = 30.0  # how long a final operation status is retried while Redis is down
ACTIONS = ("start", "stop", "restart", "kill", "remove")


class Operation:
    """Progress reports of one panel operation (nothing is sent without an operation id)."""

    def __init__(self, client: ControlClient, operation_id: str | None,
                 outcomes: Outcomes | None = None):
        self.client = client
        self.operation_id = operation_id
        self.outcomes = outcomes
        self.progress = 0
        self._last_sent = 0.0

    def report(self, status: str, progress: int, message: str = "",
               result: dict[str, Any] | None = None, final: bool = False) -> None:
        if not self.operation_id:
            return
        self.progress = max(0, min(100, int(progress)))
        report: dict[str, Any] = {"operation_id": self.operation_id, "status": status,
                                  "progress": self.progress, "message": message,
                                  "result": result}
        if final and self.outcomes is not None:
            self.outcomes.keep(self.operation_id, report)
        deadline = time.monotonic() + (FINAL_REPORT_RETRY if final else 0)
        while not self.client.send(control_task("operation_progress"), **report):
            if time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        self._last_sent = time.monotonic()

    def running(self, progress: int, message: str, throttle: bool = False) -> None:
        if throttle and time.monotonic() - self._last_sent < PROGRESS_EVERY:
            return
        self.report(RUNNING, progress, message)

    def succeeded(self, message: str, result: dict[str, Any]) -> None:
        self.report(SUCCEEDED, 100, message, result, final=True)

    def failed(self, message: str, result: dict[str, Any] | None = None) -> None:
        self.report(FAILED, self.progress, message, result, final=True)


class AgentTasks:
    """The bodies of the agent's tasks, bound to one host."""

    def __init__(self, host: Host, client: ControlClient, reporter: Reporter):
        self.host = host
        self.client = client
        self.reporter = reporter
        self.lock_dir = host.root / "agent" / "locks"
        self.outcomes = Outcomes()

    # -- helpers -------------------------------------------------------------------------------
    @contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        """Serialise all work on one `kind` ("uid", "volume", "network") of object `key`, across
        threads and processes. Hashed stripes keep the number of lock files bounded; each kind
        has its own files, so apply_container may hold a uid lock while it ensures a network."""
        stripe = int(hashlib.sha256(key.encode()).hexdigest(), 16) % LOCK_STRIPES
        with fsutil.locked(self.lock_dir / f"{kind}-{stripe:02d}.lock"):
            yield

    def containers_of(self, uid: str) -> list[Container]:
        """This host's containers labelled with `uid`, newest generation first."""
        found = self.host.containers.list(all=True, labels={UID_LABEL: uid})
        return sorted(found, key=lambda c: (_generation(c), c.created), reverse=True)

    def _operate(self, operation_id: str | None, start_message: str,
                 work: Callable[[Operation], tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """Run `work` with progress reports; BerthErrors become a failed operation and an
        `{"ok": False, "error": …}` result (retrying would fail the same way)."""
        operation = Operation(self.client, operation_id, self.outcomes)
        operation.running(0, start_message)
        try:
            message, result = work(operation)
        except BerthError as exc:
            log.warning("%s failed: %s", start_message, exc)
            operation.failed(str(exc))
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("%s crashed", start_message)
            operation.failed(f"internal error on the agent: {exc}")
            raise
        finally:
            self.reporter.poke()
        operation.succeeded(message, result)
        return {"ok": True, **result}

    def resend_outcomes(self, operation_ids: list[str] | None = None,
                        **_ignored: Any) -> dict[str, Any]:
        """Send the final report of each of `operation_ids` again (the panel never got it:
        runtime/agent/outcomes.py). Ids without one here (still running, or from before this
        agent started) are skipped."""
        sent = 0
        for operation_id in operation_ids or []:
            report = self.outcomes.get(str(operation_id))
            if report is not None and self.client.send(control_task("operation_progress"),
                                                       **report):
                sent += 1
        if sent:
            log.info("sent %d operation outcome(s) again", sent)
        return {"ok": True, "sent": sent}

    # -- containers ----------------------------------------------------------------------------
    def apply_container(self, spec: dict[str, Any], operation_id: str | None = None,
                        **_ignored: Any) -> dict[str, Any]:
        """Make the container of `spec` exist in its desired state (see the module docstring)."""
        name = spec.get("name") or spec.get("uid") if isinstance(spec, dict) else "?"

        def work(operation: Operation) -> tuple[str, dict[str, Any]]:
            specs.validate_spec(spec)
            with self.lock("uid", spec["uid"]), self.reporter.applying(spec["uid"]):
                return self._apply_locked(spec, operation)

        return self._operate(operation_id, f"apply container {name}", work)

    def _apply_locked(self, spec: dict[str, Any],
                      operation: Operation) -> tuple[str, dict[str, Any]]:
        manager = self.host.containers
        generation = specs.generation_of(spec)
        existing = self.containers_of(spec["uid"])
        newest = existing[0] if existing else None
        if newest is not None and _generation(newest) > generation:
            return (f"ignored: generation {generation} is older than the container's "
                    f"{_generation(newest)}", _result("ignored", newest))
        keep = newest if newest is not None and _generation(newest) == generation else None
        replaced = [c for c in existing if c is not keep]
        for old in replaced:
            operation.running(10, f"removing generation {_generation(old)}")
            manager.stop(old.id, timeout=spec.get("stop_timeout"))
            manager.remove(old.id, force=True, volumes=True)
        action = "unchanged"
        container = keep
        if container is None:
            self._ensure_image(spec, operation)
            self._ensure_networks_of(spec)
            operation.running(60, "creating the container", throttle=True)
            container = self._create(spec)
            action = "replaced" if replaced else "created"
        if specs.desired_state(spec) == "running" and not container.running:
            operation.running(80, "starting the container", throttle=True)
            container = self._start(container, spec)
            action = "started" if action == "unchanged" else action
        elif specs.desired_state(spec) == "stopped" and container.running:
            operation.running(80, "stopping the container")
            container = manager.stop(container.id, timeout=spec.get("stop_timeout"))
            action = "stopped" if action == "unchanged" else action
        return f"container {container.name} {action}", _result(action, container)

    def _start(self, container: Container, spec: dict[str, Any]) -> Container:
        """Start the container. One that never ran and was left half-made (the agent was
        killed while creating it) or cannot start is made again from the spec, once."""
        manager = self.host.containers
        never_started = str(container.state.get("StartedAt") or ZERO_TIME).startswith("0001-")
        if never_started and not _completely_created(container):
            log.warning("container %s was left half-created; creating it again", container.name)
            container = self._recreate(container, spec)
        try:
            return manager.start(container.id)
        except (BerthError, OSError) as exc:
            if not never_started:
                raise
            log.warning("container %s never started and cannot start (%s); creating it again",
                        container.name, exc)
            return manager.start(self._recreate(container, spec).id)

    def _recreate(self, container: Container, spec: dict[str, Any]) -> Container:
        manager = self.host.containers
        manager.remove(container.id, force=True, volumes=True)
        return self._create(spec)

    def _create(self, spec: dict[str, Any]) -> Container:
        """Create the container of `spec`, its secret, config and stack files written first."""
        return self.host.containers.create(
            specs.run_options(stack_files.prepare(self.host.root, spec)))

    def _ensure_image(self, spec: dict[str, Any], operation: Operation) -> None:
        try:
            self.host.images.get(spec["image"])
            return
        except NotFound:
            if not spec.get("pull", True):
                raise
        self._pull(spec["image"], spec.get("registry_credentials"), operation, 10, 60)

    def container_action(self, uid: str, action: str, params: dict[str, Any] | None = None,
                         operation_id: str | None = None, **_ignored: Any) -> dict[str, Any]:
        """start | stop | restart | kill | remove the container of `uid` (params: `timeout`,
        `signal`, `volumes`). Stopping, killing or removing what is not there succeeds."""
        params = params or {}

        def work(operation: Operation) -> tuple[str, dict[str, Any]]:
            if action not in ACTIONS:
                raise InvalidArgument(f"action must be one of {', '.join(ACTIONS)}, "
                                      f"not {action!r}")
            with self.lock("uid", uid):
                return self._act_locked(uid, action, params)

        return self._operate(operation_id, f"{action} container {uid}", work)

    def _act_locked(self, uid: str, action: str,
                    params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        manager = self.host.containers
        found = self.containers_of(uid)
        if not found:
            if action == "remove":  # files written for a container that was never made
                stack_files.remove_files(self.host.root, uid)
            if action in ("stop", "kill", "remove"):
                return f"no container {uid} on this host", {"uid": uid, "action": "absent"}
            raise NotFound(f"no container with uid {uid} on this host; apply its spec first")
        target = found[0]
        timeout = params.get("timeout")
        if action == "start":
            container = manager.start(target.id)
        elif action == "stop":
            container = manager.stop(target.id, timeout=timeout)
        elif action == "restart":
            container = manager.restart(target.id, timeout=timeout)
        elif action == "kill":
            try:
                container = manager.kill(target.id, params.get("signal") or "KILL")
            except ContainerNotRunning:
                container = manager.get(target.id)
        else:
            for each in found:
                manager.remove(each.id, force=True, volumes=bool(params.get("volumes", True)))
            stack_files.remove_files(self.host.root, uid)
            return f"container {target.name} removed", {"uid": uid, "action": "removed",
                                                         "runtime_id": target.id}
        return f"container {container.name}: {action} done", _result(action, container)

    # -- images, volumes, networks --------------------------------------------------------------
    def pull_image(self, ref: str, credentials: dict[str, Any] | None = None,
                   operation_id: str | None = None, **_ignored: Any) -> dict[str, Any]:
        """Pull `ref` into this host's image store (credentials: username, password,
        insecure)."""
        def work(operation: Operation) -> tuple[str, dict[str, Any]]:
            image = self._pull(ref, credentials, operation, 0, 100)
            return f"pulled {ref}", {"image_id": image.id, "names": list(image.tags)}

        return self._operate(operation_id, f"pull {ref}", work)

    def _pull(self, ref: str, credentials: dict[str, Any] | None, operation: Operation,
              low: int, high: int) -> Any:
        """registry.pull with its progress mapped onto [low, high] of the operation."""
        from runtime.images import registry

        credentials = credentials or {}
        total = 0
        moved: dict[str, int] = {}

        def progress(event: dict[str, Any]) -> None:
            nonlocal total
            status = event.get("status")
            if status == "resolved":
                total = int(event.get("size") or 0)
            elif status in ("progress", "complete", "exists") and event.get("digest"):
                moved[event["digest"]] = int(event.get("current", event.get("size")) or 0)
            if total:
                done = min(1.0, sum(moved.values()) / total)
                operation.running(low + int((high - low) * done),
                                  f"pulling {ref}: {sum(moved.values())} of {total} bytes",
                                  throttle=status != "resolved")

        insecure = credentials.get("insecure")
        if insecure is None:  # as docker: a registry on a loopback address may be plain HTTP
            insecure = _loopback_registry(ref)
        return registry.pull(self.host.images, ref, insecure=bool(insecure),
                             username=credentials.get("username"),
                             password=credentials.get("password"), progress=progress)

    def ensure_volume(self, name: str, labels: dict[str, str] | None = None,
                      operation_id: str | None = None, **_ignored: Any) -> dict[str, Any]:
        """Create the named volume unless it exists."""
        def work(operation: Operation) -> tuple[str, dict[str, Any]]:
            volumes = self.host.volumes
            with self.lock("volume", name):
                if volumes.exists(name):
                    return f"volume {name} exists", {"name": name, "action": "unchanged"}
                volumes.create(name=name, labels=labels or {})
            return f"volume {name} created", {"name": name, "action": "created"}

        return self._operate(operation_id, f"ensure volume {name}", work)

    def backup_volume(self, name: str, target: dict[str, Any], keep_daily: int,
                      keep_weekly: int, operation_id: str | None = None,
                      **_ignored: Any) -> dict[str, Any]:
        """A scheduled backup of volume `name` to `target` (a directory or S3), then the
        retention rule; the result names the backup, its digests and what was deleted."""
        def work(operation: Operation) -> tuple[str, dict[str, Any]]:
            with self.lock("volume", name):
                done = scheduled.back_up(self.host.volumes, name, scheduled.target_from(target),
                                         int(keep_daily), int(keep_weekly), self._scratch())
            deleted = f", {len(done.deleted)} old one(s) deleted" if done.deleted else ""
            return f"volume {name} backed up as {done.name}{deleted}", done.as_dict()

        return self._operate(operation_id, f"back up volume {name}", work)

    def drill_volume_backup(self, name: str, target: dict[str, Any],
                            operation_id: str | None = None, **_ignored: Any) -> dict[str, Any]:
        """Restore the newest backup of `name` at `target` into a scratch volume, prove it
        byte-exact, remove the scratch volume."""
        def work(operation: Operation) -> tuple[str, dict[str, Any]]:
            proof = scheduled.drill(self.host.volumes, name, scheduled.target_from(target),
                                    self._scratch())
            return f"backup {proof['backup']} of {name} restores byte-exact", proof

        return self._operate(operation_id, f"restore drill of volume {name}", work)

    def _scratch(self) -> Path:
        return self.host.root / "agent" / "backups"

    def remove_volume(self, name: str, operation_id: str | None = None,
                      **_ignored: Any) -> dict[str, Any]:
        """Remove the named volume (refused while a container uses it); absent is fine."""
        def work(operation: Operation) -> tuple[str, dict[str, Any]]:
            volumes = self.host.volumes
            with self.lock("volume", name):
                if not volumes.exists(name):
                    return (f"volume {name} is not on this host",
                            {"name": name, "action": "absent"})
                volumes.remove(name, users=self.host.containers.users_of_volume)
            return f"volume {name} removed", {"name": name, "action": "removed"}

        return self._operate(operation_id, f"remove volume {name}", work)

    def ensure_network(self, spec: dict[str, Any], operation_id: str | None = None,
                       **_ignored: Any) -> dict[str, Any]:
        """Create the bridge network of `spec` ({"name", "subnet", "gateway", "internal",
        "labels"}) unless it exists."""
        def work(operation: Operation) -> tuple[str, dict[str, Any]]:
            network, action = self._ensure_network(spec)
            return f"network {network.name} {action}", {
                "name": network.name, "subnet": str(network.subnet),
                "gateway": str(network.gateway), "action": action}

        name = spec.get("name") if isinstance(spec, dict) else None
        return self._operate(operation_id, f"ensure network {name}", work)

    def _ensure_network(self, spec: dict[str, Any]) -> tuple[Any, str]:
        """The network of `spec`, created unless it exists; (network, "created"|"unchanged")."""
        if not isinstance(spec, dict) or not spec.get("name"):
            raise InvalidArgument("spec.name is required: the network's name")
        manager = self.host.networks.manager
        with self.lock("network", spec["name"]):
            network = manager.store.load(spec["name"])
            if network is not None:
                return network, "unchanged"
            # the panel sends "" for "Berth picks" (panel Network.to_spec)
            return manager.create(spec["name"], subnet=spec.get("subnet") or None,
                                  gateway=spec.get("gateway") or None,
                                  internal=bool(spec.get("internal")),
                                  labels=spec.get("labels") or {}), "created"

    def _ensure_networks_of(self, spec: dict[str, Any]) -> None:
        """Create the container's non-default networks this host lacks (from
        `spec["network_specs"]`, or with defaults when the panel sent none)."""
        from runtime.network.store import DEFAULT_NETWORK

        network_specs = spec.get("network_specs") or {}
        for name in spec.get("networks") or []:
            if name in ("none", "host", DEFAULT_NETWORK):
                continue
            self._ensure_network({**(network_specs.get(name) or {}), "name": name})

    def remove_network(self, name: str, operation_id: str | None = None,
                       **_ignored: Any) -> dict[str, Any]:
        """Remove the network (refused while containers are attached); absent is fine."""
        def work(operation: Operation) -> tuple[str, dict[str, Any]]:
            manager = self.host.networks.manager
            with self.lock("network", name):
                if manager.store.load(name) is None:
                    return (f"network {name} is not on this host",
                            {"name": name, "action": "absent"})
                manager.remove(name)
            return f"network {name} removed", {"name": name, "action": "removed"}

        return self._operate(operation_id, f"remove network {name}", work)

    # -- reports and RPC -----------------------------------------------------------------------
    def snapshot(self, **_ignored: Any) -> bool:
        """Send a full snapshot now."""
        return self.reporter.send_snapshot()

    def logs(self, uid: str, tail: int | None = None, since: str | float | None = None,
             until: str | float | None = None, timestamps: bool = False,
             **_ignored: Any) -> list[dict[str, Any]]:
        """The container's log entries: [{"timestamp", "stream", "text", "complete"}], oldest
        first (`timestamps` only matters to the caller's formatting: entries always carry
        theirs)."""
        container = self._container(uid)
        since_at = container_logs.parse_time(None if since is None else str(since), "since")
        until_at = container_logs.parse_time(None if until is None else str(until), "until")
        entries, _ = container_logs.read_entries(container.log_path, since=since_at,
                                                 until=until_at,
                                                 tail=None if tail is None else int(tail))
        return [{"timestamp": e.timestamp, "stream": e.stream, "text": e.text,
                 "complete": e.complete} for e in entries]

    def stats(self, uid: str, **_ignored: Any) -> dict[str, Any]:
        """One stats sample of the running container of `uid` (runtime.containers.stats)."""
        container = self._container(uid)
        return self.host.containers.stats(container.id).to_json()

    def _container(self, uid: str) -> Container:
        found = self.containers_of(uid)
        if not found:
            raise NotFound(f"no container with uid {uid} on this host")
        return found[0]


def _loopback_registry(ref: str) -> bool:
    from runtime.images.reference import parse_reference

    host = parse_reference(ref).registry.rsplit(":", 1)[0]
    return host == "localhost" or host.startswith("127.") or host == "[::1]"


def _completely_created(container: Container) -> bool:
    """Whether `create` got to the end: it makes these directories last."""
    return all((container.directory / sub).is_dir()
               for sub in ("bundle/rootfs", "upper", "work", "userdata"))


def _generation(container: Container) -> int:
    try:
        return int(container.labels.get(GENERATION_LABEL, "0") or 0)
    except ValueError:
        return 0


def _result(action: str, container: Container) -> dict[str, Any]:
    state = container_state(container)
    return {"uid": state["uid"], "action": action, "runtime_id": container.id, "state": state}


TASK_NAMES = ("apply_container", "container_action", "pull_image", "ensure_volume",
              "remove_volume", "ensure_network", "remove_network", "snapshot", "logs", "stats",
              "backup_volume", "drill_volume_backup", "resend_outcomes")


def register(app: Celery, tasks: AgentTasks) -> None:
    """Register every task body as `berth.agent.<name>` on the agent's app."""
    for name in TASK_NAMES:
        app.task(name=agent_task(name), acks_late=True, reject_on_worker_lost=True,
                 typing=False)(getattr(tasks, name))
