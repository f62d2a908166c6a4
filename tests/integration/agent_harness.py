"""Real parts for the agent tests: a Redis server, the control side, agents as subprocesses, and
network namespaces that play separate hosts.

- `RedisServer`: redis-server on a free port (append-only file on, so a restart keeps queues and
  kombu's bindings as a production Redis with persistence would), bound to loopback and,
  optionally, to the address of a test bridge that agents in namespaces reach.
- `ControlSide`: what the panel's control worker would be: a plain Celery app that sends
  `berth.agent.*` tasks to `host.<name>`, and a kombu consumer thread that collects every
  `berth.control.*` message from the `control` queue (it reconnects after a Redis restart).
- `AgentProcess`: `python -m runtime.agent` (what `berth-agent` runs) in a subprocess, optionally
  inside a network namespace (`nsenter --net`: only the network namespace changes, so cgroups,
  mounts and /run/netns are the host's).
- `HostNamespaces`: a bridge in the test's namespace and, per simulated host, a namespace joined
  to it by a veth pair; everything is named `vb…`/`berth-agt-…` and removed on `close()`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from kombu import Connection, Queue

REPO = Path(__file__).resolve().parents[2]
CONTROL_QUEUE = "control"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
          message: str = "condition not met in time") -> Any:
    """Poll `predicate` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} (waited {timeout:g}s)")
        time.sleep(interval)


# -- Redis ------------------------------------------------------------------------------------
class RedisServer:
    """A private redis-server; `restart()` stops it and starts it again on the same port."""

    def __init__(self, workdir: Path, bind: tuple[str, ...] = ("127.0.0.1",)):
        self.workdir = workdir
        self.bind = bind
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, address: str = "127.0.0.1") -> str:
        return f"redis://{address}:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", *self.bind,
             "--dir", str(self.workdir), "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--protected-mode", "no", "--daemonize", "no"],
            stdout=open(self.workdir / "redis.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        until(lambda: self._ping(client), timeout=10, message="redis-server did not start")
        client.close()

    @staticmethod
    def _ping(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


# -- the control side -------------------------------------------------------------------------
@dataclass
class ControlMessage:
    task: str
    kwargs: dict[str, Any]
    received: float = field(default_factory=time.monotonic)
    received_at: float = field(default_factory=time.time)  # wall clock, to compare with states


class ControlSide:
    """Sends agent tasks and collects control messages (a stand-in for the panel)."""

    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self.app = Celery("berth-test-control", broker=redis_url, backend=redis_url,
                          set_as_current=False)
        self.app.conf.update(task_serializer="json", result_serializer="json",
                             accept_content=["json"], broker_connection_retry=True,
                             broker_connection_retry_on_startup=True)
        self.messages: list[ControlMessage] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._consume, name="control-consumer",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.app.close()

    def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                with Connection(self.redis_url, transport_options={
                        "socket_connect_timeout": 1}) as connection:
                    queue = Queue(CONTROL_QUEUE)
                    with connection.Consumer(queue, callbacks=[self._on_message],
                                             accept=["json"]):
                        while not self._stop.is_set():
                            try:
                                connection.drain_events(timeout=0.2)
                            except TimeoutError:
                                continue
            except Exception:  # Redis went away: reconnect
                time.sleep(0.2)

    def _on_message(self, body: Any, message: Any) -> None:
        _args, kwargs, _embed = body
        with self._lock:
            self.messages.append(ControlMessage(message.headers.get("task", ""), kwargs))
        message.ack()

    # -- sending ---------------------------------------------------------------------------
    def send(self, host: str, task: str, **kwargs: Any) -> Any:
        """Send `berth.agent.<task>` to `host.<host>`; the AsyncResult."""
        return self.app.send_task(f"berth.agent.{task}", kwargs=kwargs, queue=f"host.{host}")

    def call(self, host: str, task: str, timeout: float = 30.0, **kwargs: Any) -> Any:
        """Send and wait for the result (the RPC tasks, or to wait for an action)."""
        return self.send(host, task, **kwargs).get(timeout=timeout)

    # -- reading ---------------------------------------------------------------------------
    def received(self, task: str | None = None, **match: Any) -> list[ControlMessage]:
        """The messages of `berth.control.<task>` whose kwargs include `match`."""
        with self._lock:
            found = list(self.messages)
        return [m for m in found
                if (task is None or m.task == f"berth.control.{task}")
                and all(m.kwargs.get(k) == v for k, v in match.items())]

    def wait_for(self, task: str, timeout: float = 20.0, after: float = 0.0,
                 where: Callable[[dict[str, Any]], bool] | None = None,
                 **match: Any) -> ControlMessage:
        """The first matching message received after `after` (a time.monotonic())."""
        def find() -> ControlMessage | None:
            return next((m for m in self.received(task, **match) if m.received >= after
                         and (where is None or where(m.kwargs))), None)

        return until(find, timeout, message=f"no berth.control.{task} {match}")

    def events(self, host: str, uid: str) -> list[str]:
        return [m.kwargs["event"] for m in self.received("container_event", host=host, uid=uid)]


# -- agents -----------------------------------------------------------------------------------
class AgentProcess:
    """One `berth-agent` in a subprocess (optionally inside network namespace `netns`)."""

    def __init__(self, name: str, state_dir: Path, redis_url: str, netns: str | None = None,
                 labels: str = "", concurrency: int = 4):
        self.name = name
        self.state_dir = state_dir
        self.redis_url = redis_url
        self.netns = netns
        self.labels = labels
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = state_dir.parent / f"agent-{name}-{state_dir.name}.log"

    def command(self) -> list[str]:
        argv = [sys.executable, "-m", "runtime.agent", "--host-name", self.name,
                "--state-dir", str(self.state_dir), "--redis-url", self.redis_url,
                "--concurrency", str(self.concurrency), "--heartbeat-interval", "0.5",
                "--snapshot-interval", "30"]
        if self.labels:
            argv += ["--labels", self.labels]
        if self.netns:
            argv = ["nsenter", f"--net=/run/netns/{self.netns}", *argv]
        return argv

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(self.command(), env=env, stdin=subprocess.DEVNULL,
                                        stdout=open(self.log_path, "ab"),
                                        stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL, as a crash would: no clean-up runs."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (SIGKILL after `timeout`); the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        code = self.process.returncode
        self.process = None
        return code

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def purge(self) -> None:
        """Remove every container, volume and network of the agent's root (in its namespace,
        where its bridges are)."""
        code = "import sys; from runtime.host import Host; Host(sys.argv[1]).purge()"
        argv = [sys.executable, "-c", code, str(self.state_dir)]
        if self.netns:
            argv = ["nsenter", f"--net=/run/netns/{self.netns}", *argv]
        subprocess.run(argv, env=dict(os.environ, PYTHONPATH=str(REPO)), check=True,
                       timeout=120, capture_output=True)


# -- network namespaces -----------------------------------------------------------------------
def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")


def _free_subnet() -> ipaddress.IPv4Network:
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True).stdout
    used = []
    for line in routes.splitlines():
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(line.split()[0], strict=False))
    for _ in range(100):
        candidate = ipaddress.ip_network(f"10.254.{random.randrange(256)}.0/24")
        if not any(candidate.overlaps(u) for u in used if u.prefixlen > 0):
            return candidate
    raise RuntimeError("no free 10.254.x.0/24 subnet for the test bridge")


class HostNamespaces:
    """A bridge in this namespace plus one network namespace per simulated host."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.bridge = f"vbagt{tag}"
        self.subnet = _free_subnet()
        hosts = self.subnet.hosts()
        self.gateway = str(next(hosts))
        self._addresses = hosts
        self.namespaces: list[str] = []
        self._links: list[str] = []
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add(self) -> str:
        """A new namespace reaching the bridge's address; its name."""
        index = len(self.namespaces)
        name = f"berth-agt-{self.tag}-{index}"
        outside = f"vba{self.tag}{index}"
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", name)
        self._links.append(outside)
        _ip("link", "set", outside, "master", self.bridge, "up")
        address = next(self._addresses)
        _ip("addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0", netns=name)
        _ip("link", "set", "eth0", "up", netns=name)
        _ip("link", "set", "lo", "up", netns=name)
        return name

    def close(self) -> None:
        for name in self.namespaces:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        for link in [*self._links, self.bridge]:
            subprocess.run(["ip", "link", "delete", link], capture_output=True)
        self.namespaces.clear()
        self._links.clear()


# -- state dirs --------------------------------------------------------------------------------
@contextlib.contextmanager
def agent_roots(parent: Path) -> Iterator[Callable[[], Path]]:
    """A factory of fresh runtime roots (busybox bootstrapped unless told) under `parent`;
    every root is removed afterwards (its agents must have been stopped and purged first)."""
    from runtime.host import Host
    from runtime.images.bootstrap import bootstrap_busybox

    made: list[Path] = []

    def make(bootstrap: bool = True) -> Path:
        root = parent / uuid.uuid4().hex[:12]
        root.mkdir(parents=True)
        made.append(root)
        if bootstrap:
            bootstrap_busybox(Host(root).images)
        return root

    try:
        yield make
    finally:
        for root in made:
            mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                      if line.split()[1].startswith(str(root))]
            for mount in mounts:
                subprocess.run(["umount", "-l", mount], check=False)
            shutil.rmtree(root, ignore_errors=True)
        for log in parent.glob("agent-*.log"):
            log.unlink()
        with contextlib.suppress(OSError):
            parent.rmdir()
            parent.parent.rmdir()
