"""The control plane the deploying stack tests share: per test module, a control worker and one
real agent (its own runtime root) on the session's Redis and database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.panel.fixtures import database_url
from tests.panel.stacks.stack_harness import Plane, control_plane, wait_for


@pytest.fixture(scope="module")
def plane(request: pytest.FixtureRequest, django_db_setup: Any, django_db_blocker: Any,
          redis_service: Any, panel_state_dir: Any) -> Iterator[Plane]:
    """Module attribute AGENT_HOST names the agent's host (default "stackhost")."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    with django_db_blocker.unblock():
        url = database_url()
    with control_plane(redis_service.url, url, panel_state_dir / f"{module}-worker",
                       host=getattr(request.module, "AGENT_HOST", "stackhost")) as running:
        yield running
    # A heartbeat sent between the last test's flush and the agent's exit registered the host
    # again: gone, it would still look up to placement in the next module for a while.
    from panel.fleet.models import Host

    with django_db_blocker.unblock():
        Host.objects.filter(name=running.host).delete()


@pytest.fixture
def host(plane: Plane, transactional_db: None) -> Iterator[Plane]:
    """The plane, once its agent registered with its images. Afterwards, until the work the
    test started is done (at most QUIET_WAIT s): pytest-django then truncates every table, and
    on PostgreSQL a report still writing several tables at that moment deadlocks with the
    TRUNCATE. (Requesting transactional_db makes this teardown run before that flush.)"""
    from panel.fleet.models import Host

    wait_for(lambda: Host.objects.filter(name=plane.host, images__isnull=False).exists(),
             30, "the agent registering")
    yield plane
    deadline = time.monotonic() + QUIET_WAIT
    while time.monotonic() < deadline and _busy():
        time.sleep(0.1)


QUIET_WAIT = 30.0


def _busy() -> bool:
    from panel.stacks.models import Revision
    from panel.workloads.models import Operation

    return Operation.objects.exclude(status__in=Operation.FINISHED).exists() \
        or Revision.objects.filter(status__in=Revision.ACTIVE).exists()
