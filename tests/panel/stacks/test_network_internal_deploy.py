"""Internal networks reach the host for real: the REST API and the control worker on the
session's Redis, one agent running runc containers on Linux bridges. A network the panel marks
internal must be internal on the host, so its containers have no default route (no way out)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from panel.stacks.models import Replica
from panel.workloads.models import Container, Network
from tests.panel.stacks.stack_harness import deploy_through_api, wait_for

pytestmark = [pytest.mark.root, pytest.mark.django_db(transaction=True)]
REPO = Path(__file__).resolve().parents[3]


AGENT_HOST = "internalhost"  # the name of the plane fixture's agent (conftest.py)


def _on_host(plane: Any, *args: str) -> str:
    """`berth-runtime --root <the agent's root> ARGS…` on the agent's host; its output."""
    result = subprocess.run([sys.executable, "-m", "runtime", "--root",
                             str(plane.agent.state_dir), *args],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, f"berth-runtime {' '.join(args)}: {result.stderr}"
    return result.stdout


def _assert_internal_on_host(plane: Any, network: str, container: str) -> None:
    (inspected,) = json.loads(_on_host(plane, "network", "inspect", network))
    assert inspected["Internal"] is True
    routes = _on_host(plane, "exec", container, "ip", "route")
    assert routes.strip() and "default" not in routes  # attached, and no way out


def test_api_internal_network_is_internal_on_the_host(host, api):
    made = api.post("/api/v1/networks/", {"name": "sealed", "internal": True}, format="json")
    assert made.status_code == 201, made.content
    created = api.post("/api/v1/containers/", {
        "name": "sealed-probe", "image": "busybox", "command": ["sleep", "600"],
        "networks": ["sealed"]}, format="json")
    assert created.status_code == 201, created.content
    wait_for(lambda: Container.objects.get(name="sealed-probe").status == "running", 60,
             "the container running on its host")
    _assert_internal_on_host(host, "sealed", "sealed-probe")

    assert api.delete("/api/v1/containers/sealed-probe/?force=1").status_code == 202
    wait_for(lambda: not Container.objects.filter(name="sealed-probe").exists(), 60,
             "the container removed")
    assert api.delete("/api/v1/networks/sealed/").status_code == 202


INTERNAL_STACK = """
services:
  db:
    image: busybox
    command: ["sleep", "600"]
    networks: [backend]
networks:
  backend: {internal: true}
"""


def test_stack_internal_network_is_deployed_internal(host, api):
    stack = deploy_through_api(api, host, "vault", INTERNAL_STACK)
    assert Network.objects.get(name="vault_backend").internal is True
    replica = Replica.objects.select_related("container").get(stack=stack, service="db")
    assert replica.container.networks == ["vault_backend"]
    _assert_internal_on_host(host, "vault_backend", replica.container.name)
    assert api.delete(f"/api/v1/stacks/{stack.pk}/").status_code == 202
