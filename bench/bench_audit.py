"""Audit cost: (1) a container start through the REST API and the bare service call, with the
audit write enabled vs disabled through its benchmark seam (`writes_suspended`), interleaved in
the same run; (2) `audit_verify` over 1,000,000 events (made with bulk inserts that compute the
chain), against the floor of reading the same rows without hashing.

Goals: audit overhead <= 5 % of the API start; >= 100,000 events/s verified.
Runs on a throwaway SQLite database and a throwaway Redis (the broker the start is queued to)."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import insert_chained_events

REPO = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("BERTH_BENCH_AUDIT_EVENTS", "1000000"))
STARTS = int(os.environ.get("BERTH_BENCH_AUDIT_STARTS", "300"))


def _django(state_dir: str, redis_url: str) -> None:
    os.environ.update({"DJANGO_SETTINGS_MODULE": "panel.settings", "BERTH_STATE_DIR": state_dir,
                       "REDIS_URL": redis_url, "BERTH_ALLOWED_HOSTS": "testserver"})
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(REPO))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def _starts() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from rest_framework.test import APIClient

    from panel.access import services as access
    from panel.audit.services import Actor, writes_suspended
    from panel.fleet.services import record_heartbeat
    from panel.workloads import services
    from panel.workloads.reports import record_snapshot

    actor = Actor.system("bench")
    user = get_user_model().objects.create_user("bench")
    team = access.create_team(actor, "bench")
    project = access.create_project(actor, team, "bench")
    access.set_member(actor, team, "bench", "operator")
    _, secret = access.create_token(actor, user, "bench")
    record_heartbeat(Actor.agent("h1"), "h1", {"cpus": 2, "memory": 8 * 2**30})
    record_snapshot(Actor.agent("h1"), "h1", [], [{"id": "sha256:" + "a" * 64,
                                                   "names": ["busybox:latest"], "size": 1}],
                    [], [])
    container, _ = services.create_container(actor, {"name": "web", "image": "busybox"},
                                             project)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    api: dict[bool, list[float]] = {True: [], False: []}
    call: dict[bool, list[float]] = {True: [], False: []}
    person = Actor(name="bench", channel="api", user_id=user.pk)

    def api_start() -> None:
        response = client.post("/api/v1/containers/web/start/")
        assert response.status_code == 202, response.content

    def service_start() -> None:
        with transaction.atomic():
            services.start_container(person, container)

    for _ in range(20):  # warm up both paths
        api_start()
        service_start()
    for i in range(STARTS):
        for audited in ((True, False) if i % 2 else (False, True)):
            for samples, fn in ((api, api_start), (call, service_start)):
                start = time.perf_counter()
                if audited:
                    fn()
                else:
                    with writes_suspended():
                        fn()
                samples[audited].append(time.perf_counter() - start)
    result: dict[str, Any] = {}
    for label, samples in (("api_start", api), ("service_start", call)):
        with_audit, without = _median_ms(samples[True]), _median_ms(samples[False])
        result[label] = {"with_audit_median_ms": with_audit, "without_audit_median_ms": without,
                         "overhead_ms": round(with_audit - without, 3),
                         "overhead_pct": round((with_audit / without - 1) * 100, 2)}
    return result


def _fill(count: int) -> float:
    """`count` chained events by bulk insert; returns seconds taken."""
    from django.utils import timezone

    now = timezone.now()
    return insert_chained_events(range(count), lambda i: dict(
        created_at=now, actor_id=1, actor_name="ana", channel="api", request_id=f"req-{i}",
        source_address="10.0.0.7", action="container.start", target_type="container",
        target_id=str(i % 500), target_name=f"web-{i % 500}", team_id=1, team_name="shop",
        project_id=1, project_name="shop-web", outcome="succeeded",
        details={"before": {"desired_state": "stopped"}, "after": {"desired_state": "running"},
                 "operation": f"op-{i}"}))


def _verify(count: int) -> dict[str, Any]:
    from panel.audit.chain import _rows, verify

    fill_seconds = _fill(count)
    reads, checks = [], []
    for _ in range(3):
        start = time.perf_counter()
        rows = sum(1 for _ in _rows(10_000))
        reads.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = verify()
        checks.append(time.perf_counter() - start)
        assert result.ok, result.problem
    total = result.checked
    return {"events": total, "fill_seconds": round(fill_seconds, 1),
            "verify_median_s": round(statistics.median(checks), 2),
            "verify_events_per_s": int(total / statistics.median(checks)),
            "peer_read_only_median_s": round(statistics.median(reads), 2),
            "peer_read_only_events_per_s": int(rows / statistics.median(reads)),
            "ratio_verify_to_read": round(statistics.median(checks) / statistics.median(reads),
                                          2)}


def run() -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.panel.fixtures import redis_server

    with tempfile.TemporaryDirectory(prefix="berth-bench-audit-") as state_dir, \
            redis_server() as redis:
        _django(state_dir, redis.url)
        starts = _starts()
        verification = _verify(EVENTS)
    return {"benchmark": "audit", "database": "sqlite", **starts,
            "audit_verify": verification,
            "goals": {"api_overhead_pct_max": 5, "verify_events_per_s_min": 100_000},
            "goals_met": {"api_overhead": starts["api_start"]["overhead_pct"] <= 5,
                          "verify_rate": verification["verify_events_per_s"] >= 100_000}}


if __name__ == "__main__":
    from bench.common import emit

    emit(run())
