"""Real parts for the stack tests and benchmarks: the panel's control worker plus one real agent
(runc containers, bridges, nftables) on this machine, both on the session's Redis, and helpers
that wait for revisions and send HTTP requests the whole time a rolling update runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.agent_harness import AgentProcess, agent_roots
from tests.panel.fixtures import control_worker

FAILED_LOGS = Path("/tmp/berth-test-logs")  # the whole logs of a failed stack test


def session_root_parent() -> Path:
    """TEST_ROOT_PARENT of this pytest session (tests/conftest.py names the session's cgroup
    parent after it), so the session's leak check covers the agent's root; a private one
    outside pytest."""
    cgroup_parent = os.environ.get("BERTH_CGROUP_PARENT", "")
    if cgroup_parent.startswith("berth-test-"):
        return Path("/var/tmp/berth-tests") / cgroup_parent.removeprefix("berth-test-")
    return Path("/var/tmp/berth-bench") / f"p{os.getpid()}-{time.time_ns()}"


@dataclass
class Plane:
    """A control worker and one agent named `host`; the worker can be killed and replaced."""

    host: str
    agent: AgentProcess
    worker: Any
    start_worker: Callable[[], Any] | None = None

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the control worker's process group (its pool children and beat too):
        SIGKILL as `kill -9` does, SIGTERM as honcho does on Ctrl-C; wait until it is gone."""
        try:
            os.killpg(self.worker.process.pid, sig)
        except ProcessLookupError:
            pass
        self.worker.process.wait(60)
        try:
            os.killpg(self.worker.process.pid, signal.SIGKILL)  # children that outlived it
        except ProcessLookupError:
            pass

    def restart_worker(self) -> Any:
        """A new control worker (ready when this returns); the old one must be gone."""
        assert self.start_worker is not None
        self.worker = self.start_worker()
        return self.worker


@contextmanager
def control_plane(redis_url: str, db_url: str, state_dir: Path,
                  host: str = "stackhost") -> Iterator[Plane]:
    with agent_roots(session_root_parent()) as make_root, ExitStack() as workers:
        def start_worker() -> Any:
            return workers.enter_context(control_worker(
                redis_url, db_url, state_dir, extra_env={"BERTH_RECONCILE_INTERVAL": "2"},
                concurrency=3))

        worker = start_worker()
        agent = AgentProcess(host, make_root(), redis_url, concurrency=4)
        agent.start()
        try:
            yield Plane(host, agent, worker, start_worker)
        finally:
            agent.terminate()
            try:
                agent.purge()
            except subprocess.CalledProcessError as exc:
                raise RuntimeError(f"purging the agent's root failed: {exc.stderr}") from None


def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not met within {timeout:g}s")
        time.sleep(0.1)


def wait_revision(stack_id: int, number: int, timeout: float = 120,
                  plane: Plane | None = None) -> Any:
    """The revision once it has finished (any final status)."""
    from panel.stacks.models import Revision

    def finished() -> Any:
        revision = Revision.objects.filter(stack_id=stack_id, number=number).first()
        return revision if revision and revision.status not in Revision.ACTIVE else None

    try:
        return wait_for(finished, timeout, f"revision {number} finishing")
    except AssertionError:
        if plane is not None:
            write_logs(plane)
        raise


def write_logs(plane: Plane, lines: int = 80, stacks: bool = False) -> None:
    """The last `lines` of the control worker's and the agent's logs, without the periodic
    chatter, to stderr (pytest shows it with a failure); with `stacks`, the agent first writes
    where each of its threads is. Both logs are also kept whole in FAILED_LOGS."""
    quiet = ("heartbeat", "reconcile", "check_hosts", "unchanged", "resume_deploys")
    if plane.agent.running and stacks:
        assert plane.agent.process is not None
        plane.agent.process.send_signal(signal.SIGUSR2)  # runtime/agent/main.py
        time.sleep(1)
    _write_control_unacked(plane.agent.redis_url)
    kept_in = FAILED_LOGS / f"{time.strftime('%H%M%S')}-{os.getpid()}"
    kept_in.mkdir(parents=True, exist_ok=True)
    for name, log in (("control-worker", plane.worker.log()), ("agent", plane.agent.log())):
        (kept_in / f"{name}.log").write_text(log)
        kept = [line for line in log.splitlines() if not any(q in line for q in quiet)]
        sys.stderr.write(f"--- {name} log (whole in {kept_in})\n" + "\n".join(kept[-lines:])
                         + "\n")


def _write_control_unacked(redis_url: str) -> None:
    """What the broker holds for the control workers: queued, unacknowledged, and whether a
    restore mutex is held (under the keys panel/settings.py names)."""
    import redis
    from django.conf import settings

    keys = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    client = redis.Redis.from_url(redis_url)
    now = time.time()
    index = client.zrange(keys["unacked_index_key"], 0, -1, withscores=True)
    sys.stderr.write(
        f"--- broker: control queue {client.llen('control')} messages; unacknowledged "
        f"{[(tag.decode(), round(now - score, 1)) for tag, score in index]} (tag, age s); "
        f"restore mutex ttl {client.ttl(keys['unacked_mutex_key'])}\n")


def deploy_through_api(api: Any, plane: Plane, name: str, compose: str) -> Any:
    """POST the stack (which deploys revision 1) and wait until that revision succeeded."""
    from panel.stacks.models import Revision, Stack

    created = api.post("/api/v1/stacks/", {"name": name, "compose": compose}, format="json")
    assert created.status_code == 201, created.content
    stack = Stack.objects.get(name=name)
    revision = wait_revision(stack.pk, 1, plane=plane)
    assert revision.status == Revision.SUCCEEDED, revision.reason
    return stack

@dataclass
class Client:
    """Sends GET requests to `url` back to back in a thread; counts answers and failures."""

    url: str
    answers: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Client:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        """One request at a time; each ends as exactly one answer (a 200 with a non-empty
        body) or one failure (anything else, stamped with the seconds since start)."""
        began = time.monotonic()
        while not self._stop.is_set():
            sent = time.monotonic() - began
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    body = response.read().decode().strip()
                    if response.status != 200 or not body:
                        raise ValueError(f"status {response.status}, body {body!r}")
                    self.answers.append(body)
            except Exception as exc:  # every failure counts, whatever its kind
                self.failures.append(f"at {sent:.2f}s (+{time.monotonic() - began - sent:.2f}s)"
                                     f" {type(exc).__name__}: {exc}")
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
