"""Django for the panel tests: settings from the environment set here (a private state dir, a
throwaway Redis on a free port, short timings), then pytest-django's `db` fixtures.

The rest of the suite does not load Django; this conftest is only imported when tests/panel is
collected. DATABASE_URL is left as given, so scripts/test.sh can run these tests on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.panel.fixtures import free_port, queued_tasks, redis_server

_shm = Path("/dev/shm")
STATE_DIR = Path(tempfile.mkdtemp(prefix="berth-panel-tests-",
                                  dir=_shm if _shm.is_dir() else None))
REDIS_PORT = free_port()
os.environ.update({
    "DJANGO_SETTINGS_MODULE": "panel.settings",
    "BERTH_STATE_DIR": str(STATE_DIR),
    "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "BERTH_HOST_DOWN_AFTER": "15",
    "BERTH_RESCHEDULE_AFTER": "30",
    "BERTH_REAPPLY_AFTER": "30",
    "BERTH_RPC_TIMEOUT": "1",
})


def pytest_configure(config: pytest.Config) -> None:
    import django
    from django.db.backends.signals import connection_created

    django.setup()
    connection_created.connect(_lose_deadlocks_to_the_workers, dispatch_uid="berth-tests-pg")
    _retry_flushes_that_lose_a_deadlock()


def _lose_deadlocks_to_the_workers(sender: Any, connection: Any, **kwargs: Any) -> None:
    """On PostgreSQL, the test process waits longer than a deadlock takes to be found: when
    pytest-django's TRUNCATE between tests meets a control worker's report in a deadlock, the
    report (a retried, observed-state write) is the one aborted, not the test's flush."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET deadlock_timeout = '10s'")


FLUSH_ATTEMPTS = 5


def _retry_flushes_that_lose_a_deadlock() -> None:
    """The TRUNCATE between transactional tests can still lose a deadlock to a report that an
    agent's heartbeat or snapshot writes at that moment (the workers keep running across the
    tests of a module): PostgreSQL rolls the whole flush back, so it is tried again."""
    import time

    from django.db import OperationalError
    from django.db.backends.base.operations import BaseDatabaseOperations

    flush = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self: Any, sql_list: Any) -> None:
        for attempt in range(FLUSH_ATTEMPTS):
            try:
                return flush(self, sql_list)
            except OperationalError as exc:
                if "deadlock detected" not in str(exc) or attempt == FLUSH_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(STATE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def panel_state_dir() -> Path:
    """BERTH_STATE_DIR of this session (removed when the session ends)."""
    return STATE_DIR


@pytest.fixture(scope="session")
def redis_service() -> Iterator[Any]:
    """The Redis the panel's settings point at (broker, results), for the whole session."""
    with redis_server(REDIS_PORT) as server:
        yield server


@pytest.fixture
def broker(redis_service: Any) -> Iterator[Any]:
    """A Redis client on an empty broker database; `broker.sent(host)` lists the tasks queued
    for that host's agent."""
    client = redis_service.client()
    client.flushdb()

    def sent(host_name: str) -> list[dict[str, Any]]:
        return queued_tasks(client, f"host.{host_name}")

    client.sent = sent
    yield client
    client.flushdb()


@pytest.fixture
def actor() -> Any:
    from panel.audit.services import Actor

    return Actor(name="ana", channel="api", request_id="req-test-1")


@pytest.fixture
def system_actor() -> Any:
    from panel.audit.services import Actor

    return Actor.system()


GIB = 1024**3


@pytest.fixture
def make_host(db: Any) -> Any:
    """Register a host through a heartbeat, optionally holding images (through a snapshot)."""
    from panel.audit.services import Actor
    from panel.fleet.services import record_heartbeat
    from panel.workloads.reports import record_snapshot

    def make(name: str, memory: int = 4 * GIB, labels: dict[str, str] | None = None,
             images: tuple[str, ...] = ("busybox:latest",), cpus: int = 2) -> Any:
        host = record_heartbeat(Actor.agent(name), name,
                                {"cpus": cpus, "memory": memory, "labels": labels or {},
                                 "kernel": "6.1", "versions": {"runc": "1.1"}})
        record_snapshot(Actor.agent(name), name, [],
                        [{"id": f"sha256:{'a' * 64}", "names": list(images), "size": 1000}],
                        [], [])
        return host

    return make


@pytest.fixture
def user(db: Any) -> Any:
    from django.contrib.auth import get_user_model

    # A platform administrator: these tests are about workloads, not roles (test_access*.py).
    return get_user_model().objects.create_superuser("ana", password="correct horse battery")


@pytest.fixture
def api(user: Any) -> Any:
    """An API client authenticated with ana's API token (Authorization: Bearer …)."""
    from rest_framework.test import APIClient

    from panel.access.services import create_token
    from panel.audit.services import Actor

    _, secret = create_token(Actor.from_user(user), user, "tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client
