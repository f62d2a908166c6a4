"""Real parts for panel tests, reusable by the end-to-end tests: a redis-server on a free loopback
port and the control worker (`celery -A panel worker -Q control -B`) as a subprocess.

Both are plain functions with context managers, plus pytest fixtures built on them; the
environment they need is in `panel_environment()`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {timeout}s")


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url)


@contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """A throwaway redis-server on 127.0.0.1 (no persistence), stopped and removed after."""
    port = port or free_port()
    directory = Path(tempfile.mkdtemp(prefix="berth-redis-"))
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(port, process, directory)
    try:
        def answers() -> bool:
            try:
                return bool(server.client().ping())
            except Exception:
                return False

        _wait_for(answers, 10, f"redis-server on port {port} answering")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def database_url() -> str:
    """A URL for the database the current Django connection uses (the test database), so a
    subprocess sees what the test writes (use with `transactional_db`)."""
    from django.db import connection

    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    user = config.get("USER") or ""
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{config['PORT']}" if config.get("PORT") else ""
    return f"postgres://{auth}{config.get('HOST') or 'localhost'}{port}/{config['NAME']}"


@dataclass
class ControlWorker:
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def control_worker(redis_url: str, db_url: str, state_dir: Path,
                   extra_env: dict[str, str] | None = None,
                   concurrency: int = 2) -> Iterator[ControlWorker]:
    """`celery -A panel worker -Q control -B` with the panel's settings pointed at `redis_url`
    and `db_url`; waits until it is ready, and stops it (SIGTERM, then SIGKILL) afterwards."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / f"control-worker-{os.getpid()}-{time.monotonic_ns()}.log"
    from django.conf import settings

    # the worker decrypts what this process encrypted (stack and container secrets); the e2e
    # stack, without Django here, shares one state directory (and so its key file) instead
    key = {"BERTH_SECRETS_KEY": settings.BERTH_SECRETS_KEY} if settings.configured else {}
    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=db_url,
               BERTH_STATE_DIR=str(state_dir), DJANGO_SETTINGS_MODULE="panel.settings",
               PYTHONPATH=str(REPO))
    env.update(key)
    env.update(extra_env or {})  # the caller's settings win (the e2e stack's own key)
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "panel", "worker", "-Q", "control", "-B",
             "-c", str(concurrency), "-l", "info", "--without-gossip", "--without-mingle",
             "-s", str(state_dir / "celerybeat-schedule"), "-n", f"control-{os.getpid()}@%h"],
            cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
    worker = ControlWorker(process, log_path)
    try:
        _wait_for(lambda: "ready." in worker.log() or process.poll() is not None, 60,
                  "the control worker becoming ready")
        if process.poll() is not None:
            raise RuntimeError(f"the control worker exited: {worker.log()[-3000:]}")
        yield worker
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group of `process` (its pool children too), then SIGKILL."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # pool children that outlived their parent
    except (ProcessLookupError, PermissionError):
        pass


def queued_tasks(redis_client: Any, queue: str) -> list[dict[str, Any]]:
    """The Celery messages waiting in `queue` (kombu's Redis list), oldest first, as
    {"task", "args", "kwargs"}; reading does not consume them."""
    tasks = []
    for raw in reversed(redis_client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, _embed = json.loads(body)
        tasks.append({"task": message["headers"]["task"], "args": args, "kwargs": kwargs,
                      "id": message["headers"]["id"]})
    return tasks


def send_report(task: str, **kwargs: Any) -> None:
    """Send a control report the way an agent does (the panel's Celery app, queue control)."""
    from panel.celery import app
    from runtime.protocol import CONTROL_QUEUE, control_task

    app.send_task(control_task(task), kwargs=kwargs, queue=CONTROL_QUEUE)


T0 = "2026-11-28T03:24:14.292631276Z"
T1 = "2026-11-28T03:25:00.000000001Z"
T2 = "2026-11-28T03:26:00.000000001Z"


def container_state(container: Any, status: str, started: str = T0, finished: str = "",
           generation: int = 1, **extra: Any) -> dict:
    """A `runtime.protocol.container_state()` dict for `container` as an agent reports it."""
    return {"uid": str(container.uid), "runtime_id": "abc", "name": container.name,
            "created": "2026-11-28T03:24:13Z", "status": status, "pid": 42 if status ==
            "running" else 0, "exit_code": extra.pop("exit_code", 0), "oom_killed": False,
            "health": extra.pop("health", ""), "started_at": started, "finished_at": finished,
            "restart_count": extra.pop("restart_count", 0), "generation": generation,
            "addresses": {"berth": "10.88.0.5"}, "ports": {}, "error": ""}


@dataclass
class TeamsWorld:
    """Two teams as the view and socket tests need them: a-team (project alpha) with an
    operator and a viewer, b-team (project bravo) whose admin is "other"; with `platform`, a
    platform administrator too."""

    users: dict[str, Any]
    team_a: Any
    alpha: Any


def two_teams(user_model: Any, platform: bool = False) -> TeamsWorld:
    from panel.access import services as access
    from panel.audit.services import Actor

    system = Actor.system("tests")
    users = {name: user_model.objects.create_user(name, password="pw-" + name * 3)
             for name in ("operator", "viewer", "other")}
    if platform:
        users["platform"] = user_model.objects.create_superuser("platform", password="pw")
    team_a = access.create_team(system, "a-team")
    team_b = access.create_team(system, "b-team")
    alpha = access.create_project(system, team_a, "alpha")
    access.create_project(system, team_b, "bravo")
    access.set_member(system, team_a, "operator", "operator")
    access.set_member(system, team_a, "viewer", "viewer")
    access.set_member(system, team_b, "other", "admin")
    return TeamsWorld(users, team_a, alpha)


S3_KEYS = {"access_key": "berth-test", "secret_key": "berth-s3-secret-value"}


@contextmanager
def s3_server() -> Iterator[str]:
    """An S3 API on loopback (moto's server, in memory); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_bucket(url: str) -> tuple[Any, str]:
    """A boto3 client of the server at `url` and a new bucket's name."""
    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id=S3_KEYS["access_key"],
                          aws_secret_access_key=S3_KEYS["secret_key"])
    name = f"berth-{os.urandom(4).hex()}"
    client.create_bucket(Bucket=name)
    return client, name


def page_client(user: Any) -> Any:
    """A Django test client signed in as `user` (dashboard page tests)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def main_of(response: Any) -> str:
    """A page's own content: what follows <main id="main"> (not the header's controls)."""
    return response.content.decode().split('id="main"', 1)[1]
