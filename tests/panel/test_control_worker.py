"""The control worker as a real subprocess on a real Redis: an agent's reports (sent here the
way an agent sends them) reach the database, and beat's reconcile/host check run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from panel.fleet.models import Host
from panel.workloads import services
from panel.workloads.models import Container
from tests.panel.fixtures import REPO, control_worker, database_url, send_report

pytestmark = pytest.mark.django_db(transaction=True)


def _eventually(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


@pytest.fixture
def worker(broker, redis_service, panel_state_dir) -> Any:
    with control_worker(redis_service.url, database_url(), panel_state_dir / "worker",
                        extra_env={"BERTH_HOST_DOWN_AFTER": "2",
                                   "BERTH_RECONCILE_INTERVAL": "0.5"}) as running:
        yield running


def test_reports_from_an_agent_reach_the_database(worker, broker, actor):
    send_report("heartbeat", host="edge-1",
                inventory={"cpus": 2, "memory": 2 * 1024**3, "labels": {"zone": "a"}})
    assert _eventually(lambda: Host.objects.filter(name="edge-1").exists()), worker.log()[-3000:]
    send_report("snapshot", host="edge-1", containers=[],
                images=[{"id": "sha256:" + "c" * 64, "names": ["busybox:latest"], "size": 1}],
                volumes=[], networks=[])
    assert _eventually(lambda: Host.objects.get(name="edge-1").images.exists())
    container, operation = services.create_container(actor, {"name": "web", "image": "busybox"})
    apply = _eventually(lambda: [t for t in broker.sent("edge-1")
                                 if t["task"] == "berth.agent.apply_container"])
    assert apply and apply[0]["args"][0]["uid"] == str(container.uid)
    send_report("container_event", host="edge-1", uid=str(container.uid), event="started",
                state={"uid": str(container.uid), "status": "running", "pid": 7,
                       "started_at": "2026-11-28T03:24:14Z", "generation": 1})
    send_report("operation_progress", operation_id=str(operation.pk), status="succeeded",
                progress=100, message="container web created", result={"action": "created"})
    assert _eventually(lambda: Container.objects.get(pk=container.pk).status == "running")
    operation.refresh_from_db()
    assert _eventually(lambda: type(operation).objects.get(pk=operation.pk).status
                       == "succeeded")


def test_beat_marks_a_silent_host_down(worker):
    send_report("heartbeat", host="edge-2", inventory={"cpus": 1})
    assert _eventually(lambda: Host.objects.filter(name="edge-2").exists())
    assert _eventually(lambda: Host.objects.get(name="edge-2").status == "down", timeout=15), \
        worker.log()[-3000:]


# A control worker that takes one control message and is killed (SIGKILL) before it acknowledges
# it: what a kill -9 mid-report leaves behind, in kombu's own structures.
_TAKE_AND_DIE = """
import os, signal
from kombu import Consumer
from panel.celery import app
with app.connection_for_read() as conn:
    queue = app.amqp.queues["control"]
    taken = []
    with Consumer(conn.default_channel, queues=[queue], callbacks=[lambda b, m: taken.append(m)],
                  accept=["json"]):
        while not taken:
            conn.drain_events(timeout=20)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_report_taken_by_a_control_worker_that_was_killed_is_delivered_again(
        broker, redis_service, panel_state_dir, actor, make_host):
    """Regression (CI): an operation stayed `running` for good when the control worker that had
    taken its agent's report was killed; kombu held the message for the default hour."""
    make_host("edge-3")
    container, operation = services.create_container(actor, {"name": "web", "image": "busybox"})
    send_report("operation_progress", operation_id=str(operation.pk), status="succeeded",
                progress=100, message="container web created", result={"action": "created"})
    env = dict(os.environ, REDIS_URL=redis_service.url, DJANGO_SETTINGS_MODULE="panel.settings",
               PYTHONPATH=str(REPO))
    taker = subprocess.run([sys.executable, "-c", _TAKE_AND_DIE], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    assert taker.returncode == -signal.SIGKILL, taker.stderr
    assert broker.llen("control") == 0  # the message is held, unacknowledged, not queued
    with control_worker(redis_service.url, database_url(), panel_state_dir / "worker",
                        extra_env={"BERTH_CONTROL_REDELIVERY": "5"}) as running:
        assert _eventually(lambda: type(operation).objects.get(pk=operation.pk).status
                           == "succeeded", timeout=60), running.log()[-3000:]
