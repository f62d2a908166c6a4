"""The Agent: a host's runtime, reporter, supervisor and Celery worker, in one process.

Start-up order matters for "survives restarts":
1. the agent lock (`<state dir>/agent/agent.lock`) makes sure one agent serves a state dir;
2. the root's supervisor lock is taken (a background `berth-runtime supervise` is stopped first),
   so restart policies and health checks run exactly once, here;
3. the reporter loads what was reported before and hooks into exits; `Host.reconcile()`
   refreshes every container record (exits that happened while no agent ran are finalised now,
   so they are reported) and repairs networking; the reporter sends the differences, then a
   snapshot;
4. `Supervisor.boot()` starts what the restart policies say after a daemon restart, then the
   supervisor thread runs; every container conmon kept running is re-adopted as it is (nothing
   is started twice: the records on disk are the truth);
5. the unacknowledged messages of `host.<name>` left by a killed predecessor are queued again;
6. the Celery worker consumes `host.<name>` until SIGTERM/SIGINT (a warm shutdown: running
   tasks finish), then the supervisor and the reporter stop.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from runtime import fsutil
from runtime import supervisor as supervision
from runtime.agent.celery_app import ControlClient, make_app, restore_unacked
from runtime.agent.reporter import Reporter
from runtime.agent.tasks import AgentTasks, register
from runtime.errors import Conflict
from runtime.host import Host
from runtime.protocol import host_queue

log = logging.getLogger("berth.agent")


class Agent:
    """Everything one `berth-agent` process runs."""

    def __init__(self, host_name: str, state_dir: Path, redis_url: str,
                 labels: dict[str, str] | None = None, concurrency: int = 4,
                 heartbeat_interval: float = 5.0, snapshot_interval: float = 30.0):
        self.host_name = host_name
        self.state_dir = Path(state_dir)
        self.concurrency = concurrency
        self.queue = host_queue(host_name)
        self.host = Host(self.state_dir)
        self.app = make_app(redis_url, host_name)
        self.client = ControlClient(self.app)
        self.reporter = Reporter(self.host, host_name, self.client, dict(labels or {}),
                                 heartbeat_interval=heartbeat_interval,
                                 snapshot_interval=snapshot_interval)
        self.tasks = AgentTasks(self.host, self.client, self.reporter)
        register(self.app, self.tasks)
        self.supervisor: supervision.Supervisor | None = None
        self._supervisor_thread: threading.Thread | None = None
        self._lock_fds: list[int] = []

    # -- locks ---------------------------------------------------------------------------------
    def _try_lock(self, path: Path) -> bool:
        fd = fsutil.try_lock(path)
        if fd is None:
            return False
        self._lock_fds.append(fd)
        return True

    def _take_locks(self) -> None:
        if not self._try_lock(self.state_dir / "agent" / "agent.lock"):
            raise Conflict(f"another berth-agent already serves {self.state_dir}; stop it first "
                           "or give this one its own --state-dir")
        lock = supervision.lockfile(self.state_dir)
        if not self._try_lock(lock):
            supervision.stop_background(self.state_dir)
            import time

            deadline = time.monotonic() + 10
            while not self._try_lock(lock):
                if time.monotonic() > deadline:
                    raise Conflict(f"the supervisor lock {lock} is held by another process; "
                                   "stop `berth-runtime supervise` for this root first")
                time.sleep(0.1)

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Steps 1-4 of the module docstring (everything but the worker)."""
        self._take_locks()
        self.host.containers.default_runtime()  # probe once, before threads race to do it
        self.reporter.start()  # first: its exit hook sees what reconcile() finalises
        self.host.reconcile()
        self.supervisor = supervision.Supervisor(self.host)
        started = self.supervisor.boot()
        if started:
            log.info("restart policies started %d container(s): %s", len(started),
                     ", ".join(started))
        self._supervisor_thread = threading.Thread(target=self.supervisor.run,
                                                   name="berth-supervisor", daemon=True)
        self._supervisor_thread.start()
        log.info("agent %s serving %s", self.host_name, self.state_dir)

    def run_worker(self, loglevel: str = "INFO") -> int:
        """Steps 5-6: consume `host.<name>` until a shutdown signal; the worker's exit code."""
        restore_unacked(self.app, self.queue)
        worker = self.app.Worker(
            hostname=f"berth-agent@{self.host_name}", queues=[self.queue], pool="threads",
            concurrency=self.concurrency, loglevel=loglevel, without_gossip=True,
            without_mingle=True, without_heartbeat=True, optimization="fair", quiet=True,
        )
        worker.start()
        return int(worker.exitcode or 0)

    def stop(self) -> None:
        """Stop the supervisor and the reporter (after the worker), release the locks."""
        if self.supervisor is not None:
            self.supervisor.stop()
        if self._supervisor_thread is not None:
            self._supervisor_thread.join(15)
        self.reporter.stop()
        for fd in self._lock_fds:
            os.close(fd)
        self._lock_fds.clear()
        log.info("agent %s stopped", self.host_name)
