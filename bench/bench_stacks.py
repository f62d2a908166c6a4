"""Stacks: (1) deploy of a 5-service stack with 10 replicas in all, until every replica runs and
every health check passed, through the panel (REST-equivalent service call, control worker,
one real agent) vs `podman-compose up -d` of the same file (then until `podman healthcheck run`
passes for each container that has one: podman runs health checks from systemd timers, which
this machine lacks, so they are run by hand here). Goal: Berth <= 0.5x podman-compose.
(2) a rolling update of 10 replicas behind one published port with start-first, while a client
sends requests back to back: its duration and the failed requests (goal 0).

Runs on a throwaway SQLite database and Redis; everything made is removed afterwards."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BERTH_BENCH_STACK_RUNS", "3"))
SCALE = {"api": 3, "web": 3, "worker": 2}  # + db and cache: 10 replicas

FILE = """
services:
  db:
    image: {image}
    command: ["sh", "-c", "touch /data/ready; exec sleep 3600"]
    volumes: ["data:/data"]
    healthcheck: {{test: "test -f /data/ready", interval: 1s, retries: 3}}
  cache:
    image: {image}
    command: ["sleep", "3600"]
    healthcheck: {{test: "true", interval: 1s, retries: 3}}
  api:
    image: {image}
    command: ["sleep", "3600"]
    volumes: ["data:/data"]
    depends_on: {{db: {{condition: service_healthy}}, cache: {{condition: service_started}}}}
    deploy: {{replicas: 3}}
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "8080"]
    healthcheck: {{test: "wget -q -O /dev/null http://127.0.0.1:8080/ || true", interval: 1s}}
    depends_on: [api]
    deploy: {{replicas: 3}}
  worker:
    image: {image}
    command: ["sleep", "3600"]
    depends_on: [cache]
    deploy: {{replicas: 2}}
volumes:
  data: {{}}
"""

ROLLING = """
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo {version} > /www/index.html
                           && exec httpd -f -p 8080 -h /www"]
    ports: ["{port}:8080"]
    healthcheck: {{test: "wget -q -O /dev/null http://127.0.0.1:8080/", interval: 1s, retries: 2}}
    deploy:
      replicas: 10
      update_config: {{order: start-first, parallelism: 2, monitor: 0s}}
"""


def _django(state_dir: str, redis_url: str) -> None:
    os.environ.update({"DJANGO_SETTINGS_MODULE": "panel.settings", "BERTH_STATE_DIR": state_dir,
                       "REDIS_URL": redis_url})
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(REPO))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _berth_deploy(actor: Any, name: str, compose: str) -> tuple[float, Any]:
    from panel.stacks import services
    from panel.stacks.models import Revision
    from tests.panel.stacks.stack_harness import wait_revision

    started = time.perf_counter()
    stack = services.create_stack(actor, name, compose)
    revision = services.deploy_stack(actor, stack)
    done = wait_revision(stack.pk, revision.number, timeout=300)
    elapsed = time.perf_counter() - started
    if done.status != Revision.SUCCEEDED:
        raise RuntimeError(f"berth deploy {name}: {done.status}: {done.reason}")
    return elapsed, stack


def _berth_remove(actor: Any, stack: Any) -> None:
    from panel.stacks import services
    from panel.workloads.models import Operation

    operation = services.remove_stack(actor, stack, volumes=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and Operation.objects.get(
            pk=operation.pk).status not in Operation.FINISHED:
        time.sleep(0.2)


def _podman_up(directory: Path, project: str, compose: str) -> float:
    path = directory / f"{project}.yml"
    # podman-compose ignores deploy.replicas (and takes one --scale): the same replicas are
    # written as the service-level `scale:` it reads
    path.write_text(re.sub(r"deploy: \{replicas: (\d+)\}", r"scale: \1", compose))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "podman_compose", "-p", project, "-f", str(path),
                    "up", "-d"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    ids = subprocess.run(["podman", "ps", "-q", "--filter", f"label=io.podman.compose.project="
                          f"{project}"], capture_output=True, text=True, check=True
                         ).stdout.split()
    if len(ids) != sum(SCALE.values()) + 2:
        raise RuntimeError(f"podman-compose started {len(ids)} containers, not 10")
    pending = set(ids)
    deadline = time.monotonic() + 120
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"podman containers never healthy: {sorted(pending)}")
        for container in list(pending):
            check = subprocess.run(["podman", "healthcheck", "run", container],
                                   capture_output=True, text=True)
            said = (check.stderr + check.stdout).lower()
            if check.returncode == 0 or "no defined healthcheck" in said \
                    or "no healthcheck" in said:
                pending.discard(container)
        if pending:
            time.sleep(0.1)
    elapsed = time.perf_counter() - started
    return elapsed


def _podman_down(directory: Path, project: str) -> None:
    subprocess.run([sys.executable, "-m", "podman_compose", "-p", project, "-f",
                    str(directory / f"{project}.yml"), "down", "-v", "-t", "0"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _rolling(actor: Any) -> dict[str, Any]:
    from panel.stacks import services
    from panel.stacks.models import Revision
    from tests.panel.fixtures import free_port
    from tests.panel.stacks.stack_harness import Client, wait_revision

    port = free_port()
    _, stack = _berth_deploy(actor, "rolling", ROLLING.format(version="v1", port=port))
    client = Client(f"http://127.0.0.1:{port}/").start()
    try:
        time.sleep(1)
        started = time.perf_counter()
        stack = services.update_stack(actor, stack, ROLLING.format(version="v2", port=port))
        revision = services.deploy_stack(actor, stack)
        done = wait_revision(stack.pk, revision.number, timeout=300)
        elapsed = time.perf_counter() - started
        time.sleep(1)
    finally:
        client.stop()
    _berth_remove(actor, stack)
    return {"rolling_update_s": round(elapsed, 2), "replicas": 10,
            "status": done.status if done.status != Revision.SUCCEEDED else "succeeded",
            **({} if done.status == Revision.SUCCEEDED else {"reason": done.reason}),
            "requests": len(client.answers) + len(client.failures),
            "failed_requests": len(client.failures), "failures": client.failures[:5],
            "served_v2_at_end": bool(client.answers) and client.answers[-1] == "v2"}


def run() -> dict[str, Any]:
    from bench.peers import Podman
    from tests.panel.fixtures import redis_server

    state = tempfile.mkdtemp(prefix="berth-bench-stacks-", dir="/dev/shm")
    compose_dir = Path(tempfile.mkdtemp(prefix="berth-bench-compose-", dir="/var/tmp"))
    podman = Podman()
    try:
        with redis_server() as redis:
            _django(state, redis.url)
            from django.conf import settings

            from panel.audit.services import Actor
            from tests.panel.stacks.stack_harness import control_plane, wait_for

            db_url = f"sqlite:///{settings.DATABASES['default']['NAME']}"
            with control_plane(redis.url, db_url, Path(state) / "worker",
                               host="benchhost") as plane:
                from panel.fleet.models import Host

                wait_for(lambda: Host.objects.filter(name=plane.host).exists(), 30)
                actor = Actor(name="bench", channel="cli")
                berth, peer = [], []
                for index in range(RUNS):
                    seconds, stack = _berth_deploy(actor, f"bench{index}",
                                                   FILE.format(image="busybox"))
                    berth.append(seconds)
                    _berth_remove(actor, stack)
                    project = f"berthbench{os.getpid()}x{index}"
                    try:
                        peer.append(_podman_up(compose_dir, project,
                                               FILE.format(image=podman.image)))
                    finally:
                        _podman_down(compose_dir, project)
                rolling = _rolling(actor)
        ours, theirs = statistics.median(berth), statistics.median(peer)
        return {"benchmark": "stacks", "services": 5, "replicas": 10, "runs": RUNS,
                "deploy_until_healthy_s": round(ours, 2),
                "podman_compose_up_until_healthy_s": round(theirs, 2),
                "ratio": round(ours / theirs, 3), "goal_ratio": 0.5,
                "berth_runs_s": [round(s, 2) for s in berth],
                "podman_compose_runs_s": [round(s, 2) for s in peer],
                **rolling, "goal_failed_requests": 0}
    finally:
        podman.close()
        shutil.rmtree(compose_dir, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
