"""Stacks deployed for real: the REST API, the control worker running the deploy engine, one
agent running runc containers with bridges and nftables, all on the session's Redis."""

from __future__ import annotations

import socket

import pytest

from panel.stacks.models import Replica, Revision, Stack
from panel.workloads.models import Container
from tests.panel.stacks.stack_harness import Client, deploy_through_api, wait_for, wait_revision

pytestmark = [pytest.mark.root, pytest.mark.django_db(transaction=True)]




def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _running(stack: Stack, service: str) -> list[Container]:
    return [r.container for r in Replica.objects.filter(stack=stack, service=service)
            .select_related("container") if r.container.status == "running"]


THREE_SERVICES = """
services:
  db:
    image: busybox
    command: ["sh", "-c", "sleep 1; echo ready > /data/state; exec sleep 600"]
    volumes: ["data:/data"]
    healthcheck: {test: "test -f /data/state", interval: 1s, retries: 5}
  app:
    image: busybox
    # exits (and fails the deploy) unless db was healthy, its file in the shared volume
    command: ["sh", "-c", "grep -q ready /data/state || exit 3; exec sleep 600"]
    volumes: ["data:/data"]
    depends_on: {db: {condition: service_healthy}}
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "8080"]
    depends_on: [app]
volumes:
  data: {}
"""


def test_three_services_share_a_volume_start_in_health_order_and_scale(host, api):
    stack = deploy_through_api(api, host, "trio", THREE_SERVICES)
    assert {s: len(_running(stack, s)) for s in ("db", "app", "web")} == \
        {"db": 1, "app": 1, "web": 1}
    db = _running(stack, "db")[0]
    assert db.health == "healthy" and db.volumes == ["trio_data:/data"]
    assert _running(stack, "app")[0].volumes == ["trio_data:/data"]

    up = api.post(f"/api/v1/stacks/{stack.pk}/services/app/scale", {"replicas": 3},
                  format="json")
    assert up.status_code == 202, up.content
    assert wait_revision(stack.pk, 2, plane=host).status == Revision.SUCCEEDED
    assert len(_running(stack, "app")) == 3
    assert db.pk == _running(stack, "db")[0].pk  # untouched: its spec did not change
    down = api.post(f"/api/v1/stacks/{stack.pk}/services/app/scale", {"replicas": 1},
                    format="json")
    assert down.status_code == 202
    assert wait_revision(stack.pk, 3, plane=host).status == Revision.SUCCEEDED
    assert Replica.objects.filter(stack=stack, service="app").count() == 1

    history = api.get(f"/api/v1/stacks/{stack.pk}/revisions/").json()
    assert [r["number"] for r in history] == [3, 2, 1]
    diff = api.get(f"/api/v1/stacks/{stack.pk}/revisions/1/diff?to=2").json()
    assert diff["services"]["changed"] == ["app"]
    assert {"path": "services.app.replicas", "from": 1, "to": 3} in diff["changes"]

    assert api.delete(f"/api/v1/stacks/{stack.pk}/").status_code == 202
    assert not Container.objects.filter(name__startswith="trio-").exists()


def _web(port: int, version: str, healthy: bool = True) -> str:
    serve = (f"mkdir -p /www && echo {version} > /www/index.html && exec httpd -f -p 8080 -h /www"
             if healthy else "exec sleep 600")
    return f"""
services:
  web:
    image: busybox
    command: ["sh", "-c", "{serve}"]
    ports: ["{port}:8080"]
    healthcheck: {{test: "wget -q -O /dev/null http://127.0.0.1:8080/", interval: 1s,
                   retries: 2}}
    deploy:
      replicas: 2
      update_config: {{order: start-first, failure_action: rollback, monitor: 1s}}
"""


def test_rolling_update_serves_every_request_and_a_failing_one_rolls_back(host, api):
    port = _free_port()
    stack = deploy_through_api(api, host, "roll", _web(port, "v1"))
    client = Client(f"http://127.0.0.1:{port}/").start()
    try:
        wait_for(lambda: "v1" in client.answers, 20, "the first answer")
        patched = api.patch(f"/api/v1/stacks/{stack.pk}/",
                            {"compose": _web(port, "v2"), "deploy": True}, format="json")
        assert patched.status_code == 200, patched.content
        rolled = wait_revision(stack.pk, 2, plane=host)
        assert rolled.status == Revision.SUCCEEDED, (rolled.reason, rolled.result,
                                                     host.worker.log()[-20000:])
        seen_before = len(client.answers)
        wait_for(lambda: len(client.answers) > seen_before + 20, 20, "more answers")
        assert client.answers[-1] == "v2"

        broken = api.patch(f"/api/v1/stacks/{stack.pk}/",
                           {"compose": _web(port, "v3", healthy=False), "deploy": True},
                           format="json")
        assert broken.status_code == 200, broken.content
        failed = wait_revision(stack.pk, 3, plane=host)
        assert failed.status == Revision.ROLLED_BACK
        assert "health check" in failed.reason and "rolled back to revision 2" in failed.reason
        restored = wait_revision(stack.pk, 4, plane=host)
        assert restored.status == Revision.SUCCEEDED and restored.rollback_of == 2
        assert "automatic rollback of revision 3" in restored.reason
        seen_before = len(client.answers)
        wait_for(lambda: len(client.answers) > seen_before + 20, 20, "more answers")
    finally:
        client.stop()
    assert client.failures == []
    assert set(client.answers) == {"v1", "v2"}
    assert client.answers[-1] == "v2"
    stack.refresh_from_db()
    assert stack.current_revision.number == 4
    assert "v2" in stack.compose and len(_running(stack, "web")) == 2
    assert api.delete(f"/api/v1/stacks/{stack.pk}/").status_code == 202


def _slow_web(port: int, version: str) -> str:
    # no health check: the replicas get a TCP check on 8080 and take connections once httpd,
    # a second after the start, accepts them
    serve = (f"mkdir -p /www && echo {version} > /www/index.html && sleep 1 "
             "&& exec httpd -f -p 8080 -h /www")
    return f"""
services:
  web:
    image: busybox
    command: ["sh", "-c", "{serve}"]
    ports: ["{port}:8080"]
    deploy:
      replicas: 2
      update_config: {{order: start-first}}
"""


def test_replicas_without_a_health_check_take_connections_only_once_they_accept_them(host, api):
    port = _free_port()
    stack = deploy_through_api(api, host, "slow", _slow_web(port, "v1"))
    replicas = _running(stack, "web")
    assert [c.healthcheck["test"] for c in replicas] == [["TCP", "8080"]] * 2
    assert {c.health for c in replicas} == {"healthy"}
    client = Client(f"http://127.0.0.1:{port}/").start()
    try:
        wait_for(lambda: "v1" in client.answers, 20, "the first answer")
        patched = api.patch(f"/api/v1/stacks/{stack.pk}/",
                            {"compose": _slow_web(port, "v2"), "deploy": True}, format="json")
        assert patched.status_code == 200, patched.content
        assert wait_revision(stack.pk, 2, plane=host).status == Revision.SUCCEEDED
        seen_before = len(client.answers)
        wait_for(lambda: len(client.answers) > seen_before + 20, 20, "more answers")
    finally:
        client.stop()
    assert client.failures == []
    assert set(client.answers) == {"v1", "v2"} and client.answers[-1] == "v2"
    assert api.delete(f"/api/v1/stacks/{stack.pk}/").status_code == 202
