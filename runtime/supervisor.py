"""Restart policies and health checks for every container of one root, from one process.

conmon watches each container; this watches the watchers' output. One Supervisor per host (the
agent runs it in a thread; `berth-runtime` starts `berth-runtime supervise` in the background
when a container needs one), never a Python process per container.

Each `tick()`:
1. re-reads the container records (every RESCAN seconds, and at once for a container this
   process started: the manager's start hook `notice`s it and wakes the loop);
2. refreshes the containers recorded as running: an exit seen for the first time is finalised by
   the manager (exit code, OOMKilled, mounts and network released);
3. for an exited container whose restart policy asks for it, schedules a restart with Docker's
   back-off: 100 ms, doubling after each restart, at most 1 minute, back to 100 ms once the
   container had run for 10 s, and shows it as `restarting` meanwhile (as Docker does);
   restarts that are due are made;
4. starts the health probes that are due on a small thread pool (a slow probe never delays the
   others or the restarts) and applies Docker's health state machine to their results; the
   schedule, with the early probes before the first one, is health.py's;
5. every RULES_CHECK seconds, reinstalls the nftables rules if something flushed them.

`boot()` is the one-off start-up step: containers whose restart policy asks for it after a
daemon restart are started (Docker's semantics; see its docstring).
"""

from __future__ import annotations

import builtins
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runtime import fsutil
from runtime.containers import health as health_rules
from runtime.containers.record import EXITED, RESTARTING, Container, parse_iso
from runtime.errors import BerthError

if TYPE_CHECKING:
    from runtime.host import Host

log = logging.getLogger("berth.supervisor")

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0
RESCAN = 1.0
RULES_CHECK = 5.0  # how often the nftables rules are checked (and reinstalled if flushed)
MAX_SLEEP = 0.1
HEALTH_WORKERS = 4


def wants_restart(container: Container) -> bool:
    """Docker's restart decision for a container that has just exited."""
    policy = container.restart_policy
    name = policy.get("Name") or "no"
    if name == "no" or container.manually_stopped:
        return False
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        if int(container.state.get("ExitCode", 0)) == 0:
            return False
        limit = int(policy.get("MaximumRetryCount") or 0)
        return limit == 0 or container.restart_count < limit
    return False


def boot_restarts(container: Container) -> bool:
    """Docker's decision at daemon start for a container that is not running."""
    name = container.restart_policy.get("Name") or "no"
    if container.status == "created":
        return False  # never started: a policy only restarts what ran before
    if name == "always":
        return True
    if container.manually_stopped:
        return False
    return name == "unless-stopped" or (name == "on-failure" and wants_restart(container))


def next_delay(previous: float | None, ran_for: float) -> float:
    """The back-off before the next restart, given the previous delay and how long the
    container ran before it exited."""
    if previous is None or ran_for >= BACKOFF_RESET_AFTER:
        return BACKOFF_START
    return min(previous * 2, BACKOFF_MAX)


def needs_supervision(container: Container) -> bool:
    """Whether the container has anything for a supervisor to do, now or later."""
    if container.healthcheck is not None and container.running:
        return True
    name = container.restart_policy.get("Name") or "no"
    return name != "no" and not container.manually_stopped


@dataclass
class _Pending:
    due: float
    delay: float


class Supervisor:
    def __init__(self, host: Host, clock: Callable[[], float] = time.monotonic):
        self.host = host
        self.manager = host.containers
        self.clock = clock
        self.delays: dict[str, float] = {}  # last back-off per container
        self.pending: dict[str, _Pending] = {}  # restarts scheduled
        self.next_probe: dict[str, float] = {}
        self.early_probe: dict[str, tuple[float, float]] = {}  # id -> (due, gap) while starting
        self.probing: dict[str, tuple[Future, bool]] = {}  # id -> (probe, early)
        self._noticed: queue.SimpleQueue[Container] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._handled_exit: dict[str, float] = {}  # FinishedAt of the last exit acted on
        self.pool = ThreadPoolExecutor(HEALTH_WORKERS, thread_name_prefix="berth-health")
        self._containers: dict[str, Container] = {}
        self._scanned_at = float("-inf")
        self._rules_checked_at = float("-inf")
        self._stop = threading.Event()

    # -- start-up ------------------------------------------------------------------------------
    def boot(self) -> builtins.list[str]:
        """What Docker does for restart policies when its daemon starts (the agent calls this
        once at start-up, before `run`): every stopped container whose policy says so is
        started again, even one that exited while nothing watched (a reboot):
        - `always`: even if it was stopped by hand before the restart;
        - `unless-stopped`: unless it was stopped by hand;
        - `on-failure[:N]`: if it failed (exit code not 0), was not stopped by hand and has
          retries left.
        Containers conmon kept running are left alone (nothing is started twice). Returns the
        names of the containers started; a start that fails is logged and left to `run`."""
        started = []
        for container in self.manager.list(all=True):
            if container.running or not boot_restarts(container):
                continue
            try:
                self.manager.start(container.id)
            except BerthError as exc:
                log.warning("boot: starting %s failed: %s", container.name, exc)
                continue
            started.append(container.name)
        return started

    # -- the loop ------------------------------------------------------------------------------
    def run(self, idle_exit: float | None = None) -> None:
        """Tick until `stop()`; with `idle_exit`, also return after that many seconds with no
        container needing supervision (the background CLI supervisor)."""
        idle_since: float | None = None
        self.manager.start_hooks.append(self.notice)
        while not self._stop.is_set():
            sleep = self.tick()
            if idle_exit is not None:
                if self.busy():
                    idle_since = None
                elif idle_since is None:
                    idle_since = self.clock()
                elif self.clock() - idle_since >= idle_exit:
                    break
            self._wake.wait(sleep)
            self._wake.clear()
        self.manager.start_hooks.remove(self.notice)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def notice(self, container: Container) -> None:
        """A container was just started (the manager's start hook; any thread): supervise
        it from the next tick, which starts now."""
        self._noticed.put(container)
        self._wake.set()

    def busy(self) -> bool:
        return bool(self.pending or self.probing) or any(
            needs_supervision(c) for c in self._containers.values())

    def tick(self) -> float:
        """One pass; returns how long to sleep before the next one."""
        now = self.clock()
        if now - self._scanned_at >= RESCAN:
            self._rescan()
            self._scanned_at = now
        while not self._noticed.empty():
            started = self._noticed.get()
            self._containers[started.id] = started
            self.next_probe.pop(started.id, None)
        for container_id, known in list(self._containers.items()):
            container = self._refresh(known) if known.running else known
            if container is None:
                continue
            if container.status in (EXITED, RESTARTING) and container_id not in self.pending:
                self._consider_restart(container)
        self._restart_due()
        self._probe_due()
        if now - self._rules_checked_at >= RULES_CHECK:
            self._rules_checked_at = now
            self._check_rules()
        return self._sleep_hint()

    def _check_rules(self) -> None:
        """Reinstall the packet-filter rules if something flushed them (published ports and
        NAT would silently stop working otherwise)."""
        if not (self.host.root / "networks").is_dir():
            return
        try:
            if self.host.networks.manager.ensure_rules():
                log.warning("the nftables rules were missing or flushed; reinstalled them")
        except BerthError as exc:
            log.warning("checking the nftables rules failed: %s", exc)

    # -- restarts -----------------------------------------------------------------------------
    def _consider_restart(self, container: Container) -> None:
        if not wants_restart(container) or container.state.get("Dead"):
            return
        finished = parse_iso(container.state.get("FinishedAt", ""))
        started = parse_iso(container.state.get("StartedAt", ""))
        if finished and finished <= self._handled_exit.get(container.id, 0.0):
            return  # this exit was already acted on (a restart that failed to start)
        ran_for = max(0.0, finished - started) if finished and started else 0.0
        delay = next_delay(self.delays.get(container.id), ran_for)
        self.delays[container.id] = delay
        self.pending[container.id] = _Pending(due=self.clock() + delay, delay=delay)
        self._handled_exit[container.id] = finished
        self._mark_restarting(container.id)
        log.info("restart of %s scheduled in %.1fs (policy %s)", container.name, delay,
                 container.restart_policy.get("Name"))

    def _mark_restarting(self, container_id: str) -> None:
        """Status `restarting` while the back-off runs (unless stopped or removed meanwhile)."""
        store = self.manager.store
        with store.lock(container_id):
            current = store.load(container_id)
            if current is None or current.status != EXITED or current.manually_stopped:
                return
            current.state.update(Status=RESTARTING, Restarting=True)
            store.save(current)
        self._containers[container_id] = current

    def _restart_due(self) -> None:
        now = self.clock()
        for container_id, pending in list(self.pending.items()):
            if pending.due > now:
                continue
            del self.pending[container_id]
            current = self.manager.store.load(container_id)
            if current is None or current.running or not wants_restart(current):
                continue  # removed, started by someone else, or stopped by hand meanwhile
            try:
                started = self.manager.start(container_id, restarting=True)
            except BerthError as exc:
                log.warning("restart of %s failed: %s", current.name, exc)
                refreshed = self.manager.store.load(container_id)
                if refreshed is not None:
                    self._containers[container_id] = refreshed
                    # Treat a failed start as another quick exit: back off further.
                    self.pending[container_id] = _Pending(
                        due=now + next_delay(self.delays.get(container_id), 0.0),
                        delay=self.delays.get(container_id, BACKOFF_START))
                    self.delays[container_id] = self.pending[container_id].delay
                continue
            self._containers[container_id] = started
            self.next_probe.pop(container_id, None)

    # -- health checks ------------------------------------------------------------------------
    def _probe_due(self) -> None:
        now = self.clock()
        for container_id, (future, early) in list(self.probing.items()):
            if not future.done():
                continue
            del self.probing[container_id]
            exc = future.exception()
            if exc is not None and not isinstance(exc, BerthError):
                log.warning("health probe of %s crashed: %s", container_id[:12], exc)
            elif exc is None and early and future.result()["ExitCode"] == 0:
                self.early_probe.pop(container_id, None)  # healthy: no more early probes
        for container_id, container in self._containers.items():
            check = container.healthcheck
            if check is None or not container.running or container_id in self.probing:
                continue
            rules = health_rules.settings(check)
            status = container.state.get("Health", {}).get("Status", "starting")
            running_for = max(0.0, time.time()
                              - parse_iso(container.state.get("StartedAt", "")))
            due = self.next_probe.get(container_id)
            if due is None:
                # the first scheduled probe comes one interval after the start, as in Docker;
                # the early probes before it while the container is starting
                first = health_rules.next_interval(rules, "starting", 0.0)
                due = self.next_probe[container_id] = now + max(0.0, first - running_for)
                if status == "starting":
                    gap = health_rules.EARLY_FIRST
                    self.early_probe[container_id] = (now + max(0.0, gap - running_for), gap)
            if due <= now:
                self.early_probe.pop(container_id, None)
                self.next_probe[container_id] = now + health_rules.next_interval(
                    rules, status, running_for)
                self._submit_probe(container_id, early=False)
                continue
            early_due, gap = self.early_probe.get(container_id, (due, 0.0))
            if early_due >= due:
                self.early_probe.pop(container_id, None)
            elif early_due <= now:
                self.early_probe[container_id] = (now + gap * 2, gap * 2)
                self._submit_probe(container_id, early=True)

    def _submit_probe(self, container_id: str, early: bool) -> None:
        self.probing[container_id] = (
            self.pool.submit(self.manager.run_healthcheck, container_id, early), early)

    # -- bookkeeping --------------------------------------------------------------------------
    def _rescan(self) -> None:
        seen = {}
        for container in self.manager.store.all():
            seen[container.id] = container
        for gone in set(self._containers) - set(seen):
            for table in (self.delays, self.pending, self.next_probe, self.early_probe,
                          self._handled_exit):
                table.pop(gone, None)
        self._containers = seen

    def _refresh(self, container: Container) -> Container | None:
        try:
            current = self.manager.refresh(container)
        except BerthError:
            self._containers.pop(container.id, None)
            return None
        if current is not container:
            self._containers[container.id] = current
        return current

    def _sleep_hint(self) -> float:
        now = self.clock()
        upcoming = [p.due for p in self.pending.values()] + list(self.next_probe.values()) \
            + [due for due, _ in self.early_probe.values()]
        if not upcoming:
            return MAX_SLEEP
        return max(0.005, min(MAX_SLEEP, min(upcoming) - now))


# -- the background supervisor of `berth-runtime` ------------------------------------------------
def pidfile(root: Path) -> Path:
    return Path(root) / "supervisor.pid"


def lockfile(root: Path) -> Path:
    return Path(root) / "supervisor.lock"


def ensure_background(root: Path) -> None:
    """Start `berth-runtime supervise` for `root` unless one already runs. It exits by itself
    once no container needs it."""
    fd = fsutil.try_lock(lockfile(root))
    if fd is None:
        return  # a supervisor holds the lock
    os.close(fd)
    subprocess.Popen(
        [sys.executable, "-m", "runtime", "--root", str(root), "supervise", "--idle-exit", "30"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(Path(root) / "supervisor.log", "ab"), start_new_session=True,
    )


def serve(root: Path, idle_exit: float | None, boot: bool = False) -> int:
    """Body of `berth-runtime supervise`: hold the root's supervisor lock and run (after
    `Supervisor.boot()` with `boot`, for a host without an agent: e.g. a systemd unit running
    `berth-runtime supervise --boot` at start-up)."""
    from runtime.host import Host

    fd = fsutil.try_lock(lockfile(root))
    if fd is None:
        return 0
    fsutil.write_json_atomic(pidfile(root), os.getpid())
    supervisor = Supervisor(Host(root))
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
    try:
        if boot:
            supervisor.host.reconcile()
            supervisor.boot()
        supervisor.run(idle_exit=idle_exit)
    finally:
        pidfile(root).unlink(missing_ok=True)
        os.close(fd)
    return 0


def stop_background(root: Path, timeout: float = 5.0) -> None:
    """Stop the root's background supervisor, if any (purge, tests)."""
    pid = fsutil.read_json(pidfile(root))
    if not isinstance(pid, int):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pidfile(root).unlink(missing_ok=True)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
