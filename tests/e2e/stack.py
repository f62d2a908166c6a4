"""The whole of Berth on loopback for end-to-end tests and benchmarks: a throwaway Redis, a
migrated SQLite panel database with an admin, the control worker, one real agent (runc, conmon)
with its log shipper, and the ASGI app served by uvicorn on a free port; plus headless Chromium.

Everything runs as subprocesses started here and is stopped here (containers are purged)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from tests.panel.fixtures import control_worker, free_port, redis_server, stop_process_group

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ADMIN, PASSWORD = "admin", "e2e-admin-passphrase"
HOST_NAME = "e2e-host"


@dataclass
class Stack:
    url: str
    redis_url: str
    state_dir: Path
    runtime_root: Path
    env: dict[str, str]
    logs: dict[str, Path]
    web_pid: int = 0

    def manage(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env,
                              input=stdin, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed: {done.stderr[-2000:]}")
        return done.stdout

    def runtime(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "runtime", "--root",
                               str(self.runtime_root), *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, check=True).stdout

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")[-4000:]


def api(stack: Stack, token: str, method: str, path: str, body: Any = None) -> Any:
    """One REST API call to `stack` as the holder of `token`: the decoded JSON answer."""
    import json

    request = urllib.request.Request(
        f"{stack.url}/api/v1/{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} within {timeout}s")


@contextmanager
def _process(name: str, argv: list[str], env: dict[str, str], logs: dict[str, Path],
             directory: Path) -> Iterator[subprocess.Popen]:
    logs[name] = directory / f"{name}.log"
    with open(logs[name], "w") as out:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield process
    finally:
        stop_process_group(process)


@contextmanager
def berth_stack(runtime_root: Path, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    state_dir = Path(tempfile.mkdtemp(prefix="berth-e2e-", dir="/dev/shm"))
    logs: dict[str, Path] = {}
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, state_dir, True)
        redis = stack.enter_context(redis_server())
        db_url = f"sqlite:///{state_dir / 'berth.sqlite3'}"
        env = dict(os.environ, REDIS_URL=redis.url, DATABASE_URL=db_url,
                   BERTH_STATE_DIR=str(state_dir), DJANGO_SETTINGS_MODULE="panel.settings",
                   PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", BERTH_HOST_DOWN_AFTER="15",
                   BERTH_RUNTIME_ROOT=str(runtime_root),
                   # one key for the web server, the control worker and manage.py: stack and
                   # container secrets encrypted by one are read by the others
                   BERTH_SECRETS_KEY=Fernet.generate_key().decode(), **(extra_env or {}))
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env,
                       check=True, capture_output=True)
        subprocess.run([sys.executable, "manage.py", "shell", "-c",
                        "from django.contrib.auth import get_user_model as g; "
                        f"g().objects.create_superuser('{ADMIN}', password='{PASSWORD}')"],
                       cwd=REPO, env=env, check=True, capture_output=True)
        stack.enter_context(control_worker(redis.url, db_url, state_dir, {
            k: v for k, v in env.items() if k.startswith("BERTH_") and k != "BERTH_STATE_DIR"}))
        agent = stack.enter_context(_process("agent", [
            sys.executable, "-m", "runtime.agent", "--host-name", HOST_NAME, "--state-dir",
            str(runtime_root), "--redis-url", redis.url, "--heartbeat-interval", "1",
            "--snapshot-interval", "5"], env, logs, state_dir))
        # The agent runs its own shipper once it is hooked in; this one then exits at once
        # (one shipper per state dir, by a lock).
        stack.enter_context(_process("logship", [
            sys.executable, "-m", "runtime.agent.logship", "--host-name", HOST_NAME,
            "--state-dir", str(runtime_root), "--redis-url", redis.url], env, logs, state_dir))
        port = free_port()
        web = stack.enter_context(_process("web", [
            sys.executable, "-m", "uvicorn", "panel.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--ws-max-size", "16777216"],
            env, logs, state_dir))
        url = f"http://127.0.0.1:{port}"

        def web_up() -> bool:
            try:
                return urllib.request.urlopen(f"{url}/healthz", timeout=1).status == 200
            except OSError:
                return False

        _wait(web_up, 30, "the web server answering")
        result = Stack(url, redis.url, state_dir, runtime_root, env, logs, web.pid)

        def host_up() -> bool:
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited: {result.log('agent')}")
            out = result.manage("shell", "-c", "from panel.fleet.models import Host; "
                                "print(Host.objects.alive().count())")
            return out.strip() == "1"

        _wait(host_up, 60, "the agent's first heartbeat")
        yield result


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, url: str) -> None:
    page.goto(f"{url}/accounts/login/")
    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/")
