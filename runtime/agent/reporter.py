"""Reports from the agent to the control queue: heartbeats, container events and snapshots.

Container events come from comparing what the panel was last told (`reported`, one
`container_state()` per container, kept in `<state dir>/agent/reported.json`) with what the
runtime's records say now:

1. every `POLL` seconds (or at once when poked by a task), exits the manager finalised in this
   process (its exit hooks: the supervisor's, the tasks' or this thread's own refresh) are taken
   first, so an exit followed by a quick policy restart is reported as both;
2. every record is refreshed (the manager finalises exits conmon recorded: also those that
   happened while the agent was down) and compared with `reported`; the differences become
   events (`transitions`); a container that vanished is reported `removed`;
3. `reported` is updated only for containers whose events were sent, and written to disk, so an
   agent killed at any point reports on restart what it had not sent yet (at least once), and a
   Redis outage delays events instead of losing them.

A start is not left for the next scan: the manager's start hook reports it from the starting
thread (the apply task, the supervisor) right after `start` returns, after the exits queued
before it, through the same `reported` bookkeeping under the same lock, so the scan that follows
finds it already told and nothing is sent twice or out of order. While an apply task creates
and starts a container (`applying`), a scan leaves its just-created state alone: the start hook
reports "created" and "started" moments later, and the panel has one write fewer to queue
behind; a container the task leaves created (desired stopped, a failed start) is reported by
the scan that follows the task.

Only containers labelled with a panel uid get events; the snapshot lists every container.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime import fsutil
from runtime.agent import inventory
from runtime.agent.celery_app import ControlClient
from runtime.containers.record import Container
from runtime.errors import BerthError
from runtime.protocol import container_state, control_task

if TYPE_CHECKING:
    from runtime.host import Host

log = logging.getLogger("berth.agent.reporter")

POLL = 0.15
SEND_BACKOFF = 1.0
RUNNING_STATES = ("running", "paused")
# Exited; "restarting" is an exit whose policy restart waits out its back-off (the supervisor).
EXITED_STATES = ("exited", "restarting")
CREATED = "created"
ZERO = "0001-"


def _started(state: dict[str, Any]) -> bool:
    return bool(state.get("started_at")) and not str(state["started_at"]).startswith(ZERO)


def _finished(state: dict[str, Any]) -> bool:
    return bool(state.get("finished_at")) and not str(state["finished_at"]).startswith(ZERO)


def exit_events(state: dict[str, Any]) -> list[str]:
    return (["oom"] if state.get("oom_killed") else []) + ["exited"]


def transitions(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The events that lead from the `previous` reported state to the `current` one."""
    if previous is None:
        events = ["created"]
        if _started(current):
            events.append("started")
        if current["status"] in EXITED_STATES and _finished(current):
            events += exit_events(current)
        return events
    events = []
    was_running = previous["status"] in RUNNING_STATES
    running = current["status"] in RUNNING_STATES
    if _started(current) and current["started_at"] != previous["started_at"]:
        restarted = current["restart_count"] > previous["restart_count"] or was_running
        events.append("restarted" if restarted else "started")
    if current["status"] in EXITED_STATES and _finished(current) and (
            was_running or current["finished_at"] != previous["finished_at"]):
        events += exit_events(current)
    if not events and running and current["health"] and current["health"] != previous["health"]:
        events.append("health")
    if not events and current["status"] == "restarting" and previous["status"] == "exited":
        events.append("restarting")  # the exit was told; now its restart is on its way
    if not events and current["status"] == "exited" and previous["status"] == "restarting":
        events.append("exited")  # stopped during the back-off: no restart comes
    return events


def _stale(previous: dict[str, Any] | None, observed: dict[str, Any]) -> bool:
    """Whether an exit observed by a hook is older than what was already reported, or is that
    very exit (a scan told it first, seeing the container already restarting)."""
    if previous is None:
        return False
    return (previous["restart_count"] > observed["restart_count"]
            or str(previous["started_at"]) > str(observed["started_at"])
            or (previous["status"] in EXITED_STATES
                and previous["finished_at"] == observed["finished_at"]))


class Reporter:
    """The reporting threads of one agent."""

    def __init__(self, host: Host, host_name: str, client: ControlClient,
                 labels: dict[str, str], heartbeat_interval: float = 5.0,
                 snapshot_interval: float = 30.0, poll: float = POLL):
        self.host = host
        self.host_name = host_name
        self.client = client
        self.labels = labels
        self.heartbeat_interval = heartbeat_interval
        self.snapshot_interval = snapshot_interval
        self.poll = poll
        self.state_file = Path(host.root) / "agent" / "reported.json"
        self.reported: dict[str, dict[str, Any]] = {}
        self.running_count = 0
        self._exits: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._pending: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._registered = threading.Event()  # a heartbeat went out
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._send_after = 0.0
        self._snapshot_due = 0.0  # a snapshot right after the first scan
        self._dirty = False
        # Held while events are chosen and sent: by the scan thread and by start hooks.
        self._reporting = threading.RLock()
        self._applying: dict[str, int] = {}  # uid -> apply tasks at work on it
        self._applying_lock = threading.Lock()  # not `_reporting`: a slow send must not block

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Load what the previous agent process reported, hook into exits, start the threads."""
        saved = fsutil.read_json(self.state_file, default={})
        self.reported = saved if isinstance(saved, dict) else {}
        self.host.containers.exit_hooks.append(self._on_exit)
        self.host.containers.start_hooks.append(self._on_start)
        for target, name in ((self._events_loop, "berth-events"),
                             (self._heartbeat_loop, "berth-heartbeat")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads after one last scan, and save what was reported."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._on_exit in self.host.containers.exit_hooks:
            self.host.containers.exit_hooks.remove(self._on_exit)
        if self._on_start in self.host.containers.start_hooks:
            self.host.containers.start_hooks.remove(self._on_start)
        with self._reporting:
            self._save()

    def poke(self) -> None:
        """Scan now (a task changed something)."""
        self._wake.set()

    @contextmanager
    def applying(self, uid: str) -> Iterator[None]:
        """While a task creates and starts the container of `uid`: scans do not report it as
        created (see the module docstring); one scan follows at once."""
        with self._applying_lock:
            self._applying[uid] = self._applying.get(uid, 0) + 1
        try:
            yield
        finally:
            with self._applying_lock:
                left = self._applying.pop(uid) - 1
                if left:
                    self._applying[uid] = left
            self._wake.set()

    # -- threads -------------------------------------------------------------------------------
    def _events_loop(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                self.scan()
                # The first snapshot waits for the first heartbeat: the panel registers a host
                # on its heartbeat and drops reports from hosts it does not know yet.
                if (time.monotonic() >= self._snapshot_due and not stopping
                        and self._registered.is_set()):
                    sent = self.send_snapshot()
                    self._snapshot_due = time.monotonic() + (
                        self.snapshot_interval if sent else SEND_BACKOFF)
            except Exception:
                log.exception("container scan failed")
            if stopping:
                return
            self._wake.wait(self.poll)
            self._wake.clear()

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.send_heartbeat()
            except Exception:
                log.exception("heartbeat failed")
                sent = False
            if sent and not self._registered.is_set():
                self._registered.set()
                self._wake.set()
            self._stop.wait(self.heartbeat_interval if sent else min(1.0,
                                                                      self.heartbeat_interval))

    # -- heartbeat and snapshot ----------------------------------------------------------------
    def send_heartbeat(self) -> bool:
        """One `berth.control.heartbeat` with this host's inventory."""
        data = inventory.collect(Path(self.host.root), self.labels, self.running_count)
        return self.client.send(control_task("heartbeat"), expires=max(60.0,
                                10 * self.heartbeat_interval), host=self.host_name,
                                inventory=data)

    def snapshot(self) -> dict[str, Any]:
        """Everything this host holds: containers, images, volumes, networks."""
        containers = []
        for container in self.host.containers.store.all():
            try:
                containers.append(container_state(self.host.containers.refresh(container)))
            except BerthError:
                continue
        images = [{"id": image.id, "names": list(image.tags), "size": image.size}
                  for image in self.host.images.list()]
        volumes = [{"name": v.name, "labels": dict(v.labels), "anonymous": v.anonymous}
                   for v in self.host.volumes.list()]
        networks = [{"name": n.name, "subnet": str(n.subnet), "gateway": str(n.gateway)}
                    for n in self.host.networks.manager.store.all()]
        return {"containers": containers, "images": images, "volumes": volumes,
                "networks": networks}

    def send_snapshot(self) -> bool:
        """One `berth.control.snapshot` (complete: what it does not list is not here)."""
        return self.client.send(control_task("snapshot"), host=self.host_name, **self.snapshot())

    # -- events --------------------------------------------------------------------------------
    def _on_exit(self, container: Container) -> None:
        """Manager exit hook (any thread, under the container's lock): queue the exit."""
        self._exits.put(container_state(container) | {"_id": container.id})
        self._wake.set()

    def _on_start(self, container: Container) -> None:
        """Manager start hook (the starting thread, after the start): report it now."""
        try:
            self.report_start(container)
        except Exception:  # the scan reports it instead; the start itself succeeded
            log.exception("reporting the start of %s failed", container.name)

    def report_start(self, container: Container) -> bool:
        """Send the events of the start of `container` (its record as `start` returned it) at
        once, after the exits queued before it. Nothing is sent when that start, or a later
        state, was already reported (the scan got there first), or while events wait (first
        heartbeat, broker back-off): the next scan then reports it. True if reported now."""
        with self._reporting:
            if not self._send_pending_exits():
                return False
            state = container_state(container)
            previous = self.reported.get(container.id)
            if previous is not None and str(previous["started_at"]) >= str(state["started_at"]):
                return False
            if not self._report(container.id, previous, state):
                return False
        self._wake.set()  # the scan thread saves `reported` (off the starting thread)
        return True

    def _send_pending_exits(self) -> bool:
        """Send the exits the manager's hooks queued, oldest first; False while events cannot
        be sent (before the first heartbeat, during a broker back-off, or a send failed)."""
        while True:
            try:
                self._pending.append(self._exits.get_nowait())
            except queue.Empty:
                break
        if time.monotonic() < self._send_after or not self._registered.is_set():
            return False  # events wait for the first heartbeat, as the snapshot does
        while self._pending:
            observed = dict(self._pending[0])
            container_id = observed.pop("_id")
            previous = self.reported.get(container_id)
            if not _stale(previous, observed) and not self._report(container_id, previous,
                                                                   observed):
                return False
            self._pending.pop(0)
        return True

    def scan(self) -> None:
        """Report what changed since the last report (see the module docstring)."""
        with self._reporting:
            self._scan_locked()

    def _scan_locked(self) -> None:
        if not self._send_pending_exits():
            return
        current: dict[str, dict[str, Any]] = {}
        for container in self.host.containers.store.all():
            try:
                current[container.id] = container_state(self.host.containers.refresh(container))
            except BerthError:
                continue  # removed while we looked
        self.running_count = sum(1 for s in current.values() if s["status"] in RUNNING_STATES)
        for container_id, state in current.items():
            if state["status"] == CREATED and state.get("uid") in self._applying:
                continue  # being started: the start hook reports it
            if not self._report(container_id, self.reported.get(container_id), state):
                break
        for container_id in set(self.reported) - set(current):
            if self.host.containers.store.load(container_id) is not None:
                continue  # created after our listing
            gone = dict(self.reported[container_id], status="removed")
            if gone.get("uid") and not self._send_event(gone["uid"], "removed", gone):
                break
            del self.reported[container_id]
            self._dirty = True
        self._save()

    def _report(self, container_id: str, previous: dict[str, Any] | None,
                state: dict[str, Any]) -> bool:
        """Send the events from `previous` to `state`; False if the broker is unreachable."""
        if previous == state:
            return True
        if state.get("uid"):
            for event in transitions(previous, state):
                if not self._send_event(state["uid"], event, state):
                    return False
        self.reported[container_id] = state
        self._dirty = True
        return True

    def _send_event(self, uid: str, event: str, state: dict[str, Any]) -> bool:
        sent = self.client.send(control_task("container_event"), host=self.host_name, uid=uid,
                                event=event, state=state)
        if not sent:
            self._send_after = time.monotonic() + SEND_BACKOFF
        else:
            log.info("container %s (%s): %s", state.get("name"), uid, event)
        return sent

    def _save(self) -> None:
        if not self._dirty:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(f".reported.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.reported))
        os.replace(tmp, self.state_file)  # no fsync: a lost update means a repeated event
        self._dirty = False
