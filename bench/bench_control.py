"""Control-plane benchmarks.

1. `control_end_to_end`: `POST /api/v1/containers/` (start: true) to the ASGI app served by
   uvicorn, until the API reports the container "running" (the agent's report reached the
   panel), vs `podman run -d` of the same busybox root filesystem, interleaved in the same run.
   Real parts (tests/e2e/stack.py): redis-server, the control worker (`celery -A panel worker
   -Q control -B`), one `berth-agent` (runc + conmon) with its own bootstrapped state dir, and
   uvicorn. Besides "panel knows" (the API answers running), the record splits out "process
   runs": the runtime record's State.StartedAt on the agent's state dir, written right after
   `runc start` returned (the moment `podman run -d` returns, for podman).
   Goal: panel-knows median <= 0.8x podman.
2. `control_scale`: 2,000 containers over 20 simulated hosts, in-process on a throwaway SQLite
   database (migrated) with a throwaway Redis as broker. Hosts are light stand-ins speaking the
   protocol: heartbeats and snapshots go through the real control-task functions; containers
   are made by `services.create_container` (their apply messages queue in Redis, unconsumed).
   Measured: the container list API (Django test client in-process, the real view stack with
   token auth) p50/p95 and SQL queries per request for page sizes 50 and 500; one reconcile
   pass (all in sync, and all due for an apply); heartbeats/s through the task function
   in-process and through a real control worker via Redis.
   Goal: list p50 <= 100 ms with a number of queries that does not grow with the page.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "20"))
CONTAINERS = int(os.environ.get("BERTH_BENCH_CONTAINERS", "2000"))
HOSTS = 20
LIST_REQUESTS = 55  # the first 5 of each page size are warm-up
HEARTBEATS = int(os.environ.get("BERTH_BENCH_HEARTBEATS", "2000"))
POLL_SECONDS = 0.005


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _stats(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {"runs": len(ordered), "median_ms": _ms(statistics.median(ordered)),
            "p95_ms": _ms(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]),
            "min_ms": _ms(ordered[0]), "max_ms": _ms(ordered[-1])}


# -- 1. end to end ------------------------------------------------------------------------------
class _Api:
    """A keep-alive HTTP/1.1 client of the panel's REST API with a bearer token."""

    def __init__(self, url: str, token: str) -> None:
        self.address = url.removeprefix("http://")
        self.token = token
        self.connection = http.client.HTTPConnection(self.address, timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, payload, headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = http.client.HTTPConnection(self.address, timeout=30)
                if attempt == 2:
                    raise
        return response.status, json.loads(data) if data else None

    def close(self) -> None:
        self.connection.close()


def _runtime_started_at(root: Path, uid: str) -> float:
    """Unix time in the runtime record's State.StartedAt of the container labelled `uid`."""
    from runtime.containers.record import parse_iso
    from runtime.protocol import UID_LABEL

    for record in (root / "containers").glob("*/container.json"):
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if (data.get("Config", {}).get("Labels") or {}).get(UID_LABEL) == uid:
            return parse_iso(data["State"]["StartedAt"])
    raise RuntimeError(f"no runtime record for uid {uid}")


def _berth_start(api: _Api, root: Path, name: str) -> tuple[float, float, float]:
    """(seconds until the API says running, seconds until the process ran, POST latency)."""
    body = {"name": name, "image": "busybox:latest", "command": ["sleep", "3600"],
            "start": True}
    wall = time.time()
    start = time.perf_counter()
    code, created = api.call("POST", "/api/v1/containers/", body)
    posted = time.perf_counter() - start
    if code != 201:
        raise RuntimeError(f"POST /api/v1/containers/ answered {code}: {created}")
    deadline = start + 60
    while True:
        code, data = api.call("GET", f"/api/v1/containers/{name}/")
        if code == 200 and data["status"] == "running":
            known = time.perf_counter() - start
            break
        if code == 200 and data.get("error"):
            raise RuntimeError(f"container {name} failed: {data['error']}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"container {name} not running after 60 s: {data}")
        time.sleep(POLL_SECONDS)
    runs = _runtime_started_at(root, created["uid"]) - wall
    return known, runs, posted


def _berth_remove(api: _Api, names: list[str]) -> None:
    for name in names:
        api.call("DELETE", f"/api/v1/containers/{name}/?force=true")
    deadline = time.monotonic() + 60
    for name in names:  # wait, so removals do not overlap the next measurements
        while api.call("GET", f"/api/v1/containers/{name}/")[0] != 404:
            if time.monotonic() > deadline:
                raise TimeoutError(f"container {name} not removed after 60 s")
            time.sleep(0.05)


def _token(stack: Any) -> str:
    out = stack.manage("shell", "-c", """
from django.contrib.auth import get_user_model
from panel.access import services
from panel.audit.services import Actor
user = get_user_model().objects.get(username="admin")
print(services.create_token(Actor.system("bench"), user, "bench-control")[1])""")
    return out.strip().splitlines()[-1]


def _end_to_end() -> dict[str, Any]:
    from bench.peers import Podman
    from runtime.host import Host
    from runtime.images.bootstrap import bootstrap_busybox
    from tests.e2e.stack import berth_stack

    root = Path("/var/tmp/berth-bench") / f"control-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    podman = None
    try:
        bootstrap_busybox(Host(root).images)
        podman = Podman()
        with berth_stack(root) as stack:
            api = _Api(stack.url, _token(stack))
            try:
                deadline = time.monotonic() + 30  # the agent's first snapshot lists busybox
                while not any(i["reference"] == "busybox:latest"
                              for i in api.call("GET", "/api/v1/images/")[1]["results"]):
                    if time.monotonic() > deadline:
                        raise TimeoutError("busybox:latest not reported by the agent")
                    time.sleep(0.2)
                # warm up both paths (imports, first mounts, first network set-up)
                _berth_start(api, root, "warm-0")
                _berth_start(api, root, "warm-1")
                _berth_remove(api, ["warm-0", "warm-1"])
                podman.run()
                podman.remove_all()
                known, runs, posted, pod = [], [], [], []
                batch: list[str] = []
                for i in range(RUNS):
                    order = ("berth", "podman") if i % 2 == 0 else ("podman", "berth")
                    for tool in order:
                        if tool == "podman":
                            start = time.perf_counter()
                            podman.run()
                            pod.append(time.perf_counter() - start)
                        else:
                            name = f"e2e-{i:03d}"
                            k, r, p = _berth_start(api, root, name)
                            known.append(k)
                            runs.append(r)
                            posted.append(p)
                            batch.append(name)
                    if len(batch) == 5:
                        _berth_remove(api, batch)
                        batch = []
                        podman.remove_all()
                _berth_remove(api, batch)
            finally:
                api.close()
    finally:
        if podman is not None:
            podman.close()
        Host(root).purge()
        shutil.rmtree(root, ignore_errors=True)
    k, r, p = _stats(known), _stats(runs), _stats(pod)
    return {
        "transport": "HTTP/1.1 keep-alive to uvicorn (panel.asgi) on loopback, bearer token",
        "poll_interval_ms": POLL_SECONDS * 1000,
        "berth_api_reports_running": k,
        "berth_process_runs": r,
        "berth_post_response": _stats(posted),
        "podman_run_d": p,
        "ratio_vs_podman": round(k["median_ms"] / p["median_ms"], 3),
        "ratio_process_runs_vs_podman": round(r["median_ms"] / p["median_ms"], 3),
        "goal": "ratio_vs_podman <= 0.8",
        "goal_met": k["median_ms"] / p["median_ms"] <= 0.8,
    }


# -- 2. scale -----------------------------------------------------------------------------------
def _django(state_dir: str, redis_url: str) -> None:
    os.environ.update({"DJANGO_SETTINGS_MODULE": "panel.settings", "BERTH_STATE_DIR": state_dir,
                       "REDIS_URL": redis_url, "BERTH_ALLOWED_HOSTS": "testserver"})
    os.environ.pop("DATABASE_URL", None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _inventory(seq: int = 0) -> dict[str, Any]:
    return {"cpus": 64, "memory": 256 << 30, "disk": {"total": 1 << 40, "free": 1 << 39},
            "kernel": "6.1", "versions": {"berth": "bench"}, "labels": {"zone": "bench"},
            "containers_running": CONTAINERS // HOSTS, "sent_at": time.time(), "seq": seq}


def _beat() -> None:
    """One heartbeat from every simulated host, through the control task function."""
    from panel.fleet.tasks import heartbeat

    for h in range(HOSTS):
        heartbeat(host=f"sim{h:02d}", inventory=_inventory())


def _fill() -> dict[str, Any]:
    from panel.audit.services import Actor
    from panel.fleet.tasks import heartbeat
    from panel.workloads import services
    from panel.workloads.models import Container
    from panel.workloads.tasks import snapshot
    from tests.panel.fixtures import container_state

    image = {"id": "sha256:" + "b" * 64, "names": ["busybox:latest"], "size": 1 << 20}
    for h in range(HOSTS):
        heartbeat(host=f"sim{h:02d}", inventory=_inventory())
        snapshot(host=f"sim{h:02d}", containers=[], images=[image], volumes=[], networks=[])
    actor = Actor.system("bench")
    start = time.perf_counter()
    for i in range(CONTAINERS):
        if i % 100 == 0:  # the simulated hosts stay up (alive) while the fleet is built
            _beat()
        services.create_container(actor, {
            "name": f"svc-{i:04d}", "image": "busybox:latest", "host": f"sim{i % HOSTS:02d}",
            "command": ["sleep", "3600"], "restart": "always", "ports": [f"{8000 + i}:80"],
            "labels": {"com.docker.compose.project": f"stack{i % 40}", "tier": "web"}})
    created = time.perf_counter() - start
    # One pass with every container due for an apply (none observed yet; no re-apply delay).
    from django.test import override_settings

    from panel.workloads.reconcile import reconcile

    _beat()
    with override_settings(BERTH_REAPPLY_AFTER=0):
        start = time.perf_counter()
        counts = reconcile(actor)
        due_pass = time.perf_counter() - start
    _beat()
    # The hosts report their containers running: one full snapshot each.
    start = time.perf_counter()
    for h in range(HOSTS):
        name = f"sim{h:02d}"
        states = [container_state(c, "running", generation=c.generation)
                  for c in Container.objects.filter(host__name=name)]
        snapshot(host=name, containers=states, images=[image], volumes=[], networks=[])
    snapshots = time.perf_counter() - start
    return {"containers": Container.objects.count(),
            "running": Container.objects.filter(status="running").count(),
            "create_containers_per_s": round(CONTAINERS / created, 1),
            "snapshots_all_hosts_s": round(snapshots, 3),
            "reconcile_pass_all_due_ms": _ms(due_pass), "reconcile_pass_all_due": counts}


def _list_api() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from panel.access import services as access
    from panel.audit.services import Actor

    user = get_user_model().objects.create_superuser("bench", password="bench-passphrase-1")
    _, secret = access.create_token(Actor.system("bench"), user, "bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    out: dict[str, Any] = {}
    for size in (50, 500):
        times, queries = [], []
        for n in range(LIST_REQUESTS):
            page = 1 + n % max(1, CONTAINERS // size)
            with CaptureQueriesContext(connection) as captured:
                start = time.perf_counter()
                response = client.get(f"/api/v1/containers/?page_size={size}&page={page}")
                elapsed = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"list answered {response.status_code}: "
                                   f"{response.content[:500]!r}")
            body = response.json()
            if len(body["results"]) != min(size, CONTAINERS):
                raise RuntimeError(f"page of {size} held {len(body['results'])}")
            if n >= 5:
                times.append(elapsed)
                queries.append(len(captured))
        out[f"page_size_{size}"] = {
            **{k: v for k, v in _stats(times).items() if k != "max_ms"},
            "p50_ms": _ms(statistics.median(times)),
            "sql_queries_per_request": sorted(set(queries)),
            "bytes": len(response.content)}
    out["constant_queries"] = (out["page_size_50"]["sql_queries_per_request"]
                               == out["page_size_500"]["sql_queries_per_request"])
    return out


def _reconcile_steady() -> dict[str, Any]:
    from panel.audit.services import Actor
    from panel.workloads.reconcile import reconcile

    _beat()
    samples, counts = [], {}
    for _ in range(5):
        start = time.perf_counter()
        counts = reconcile(Actor.system("bench"))
        samples.append(time.perf_counter() - start)
    return {"reconcile_pass_in_sync_median_ms": _ms(statistics.median(samples)),
            "reconcile_pass_in_sync": counts}


def _heartbeats_in_process() -> float:
    from panel.fleet.tasks import heartbeat

    start = time.perf_counter()
    for i in range(HEARTBEATS):
        heartbeat(host=f"sim{i % HOSTS:02d}", inventory=_inventory(i))
    return HEARTBEATS / (time.perf_counter() - start)


def _heartbeats_via_worker(redis_url: str, state_dir: Path) -> dict[str, Any]:
    from django.db import connection

    from panel.celery import app
    from runtime.protocol import CONTROL_QUEUE, control_task
    from tests.panel.fixtures import control_worker

    db_url = f"sqlite:///{connection.settings_dict['NAME']}"
    connection.close()
    with control_worker(redis_url, db_url, state_dir / "worker") as worker:
        def done() -> int:
            return sum(1 for line in worker.log().splitlines()
                       if "berth.control.heartbeat[" in line and "succeeded" in line)

        before = done()
        start = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for i in range(HEARTBEATS):
                app.send_task(control_task("heartbeat"), queue=CONTROL_QUEUE, producer=producer,
                              kwargs={"host": f"sim{i % HOSTS:02d}", "inventory": _inventory(i)})
        sent = time.perf_counter() - start
        deadline = time.monotonic() + 300
        while done() - before < HEARTBEATS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker processed {done() - before}/{HEARTBEATS}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
    return {"heartbeats": HEARTBEATS, "worker_concurrency": 2, "send_s": round(sent, 3),
            "heartbeats_per_s": round(HEARTBEATS / elapsed, 1)}


def _scale() -> dict[str, Any]:
    from tests.panel.fixtures import redis_server

    with tempfile.TemporaryDirectory(prefix="berth-bench-control-") as state_dir, \
            redis_server() as redis:
        _django(state_dir, redis.url)
        fill = _fill()
        _beat()
        listing = _list_api()
        steady = _reconcile_steady()
        in_process = _heartbeats_in_process()
        try:
            via_worker: dict[str, Any] = _heartbeats_via_worker(redis.url, Path(state_dir))
        except Exception as exc:  # report the in-process numbers all the same
            via_worker = {"error": str(exc)[-1500:]}
    return {
        "database": "sqlite (file, throwaway)", "hosts": HOSTS,
        "list_transport": "Django test client in-process (real URLconf, middleware, DRF "
                          "token auth, serializers)",
        **fill, "list_api": listing, **steady,
        "heartbeats_in_process_per_s": round(in_process, 1),
        "heartbeats_via_control_worker": via_worker,
        "peer": "none: no other panel is installable here; absolute numbers vs goals",
        "goal": "list p50 <= 100 ms (both page sizes), same SQL query count for both",
        "goal_met": listing["page_size_500"]["p50_ms"] <= 100
        and listing["page_size_50"]["p50_ms"] <= 100 and listing["constant_queries"],
    }


def run() -> dict[str, Any]:
    """One record (as bench/__main__.py emits: one dict per module) holding both parts."""
    sys.path.insert(0, str(REPO))
    parts: dict[str, Any] = {}
    for key, part in (("end_to_end", _end_to_end), ("scale", _scale)):
        try:
            parts[key] = part()
        except Exception as exc:  # one part failing must not hide the other's numbers
            import traceback

            traceback.print_exc()
            parts[key] = {"error": str(exc)[-1500:]}
    return {"benchmark": "control", **parts}


if __name__ == "__main__":
    from bench.common import emit

    emit(run())
