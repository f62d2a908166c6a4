"""Spec fields set through the container API reach the real container: the REST API, the
control worker, one agent running runc containers (the stacks' control plane)."""

from __future__ import annotations

import dataclasses

import pytest

from panel.workloads.models import Container
from runtime.containers.options import RunOptions
from tests.panel.stacks.stack_harness import wait_for

pytestmark = [pytest.mark.root, pytest.mark.django_db(transaction=True)]
KERNEL_FIELDS_IN_RUNTIME = "cap_add" in {f.name for f in dataclasses.fields(RunOptions)}


def _exit_code(api, name: str, **fields) -> int:
    response = api.post("/api/v1/containers/", {"name": name, "image": "busybox",
                                                "networks": ["none"], **fields}, format="json")
    assert response.status_code == 201, response.content

    def exited() -> Container | None:
        container = Container.objects.get(name=name)
        return container if container.status == "exited" else None

    code = wait_for(exited, 90, f"{name} exiting").exit_code
    assert api.delete(f"/api/v1/containers/{name}/?force=1").status_code in (200, 202)
    return code


def test_user_hostname_read_only_and_workdir_set_through_the_api_apply(host, api):
    check = ('[ "$(hostname)" = my_db ] && [ "$(id -u)" = 1000 ] && [ "$PWD" = /tmp ] '
             '&& ! touch /probe 2>/dev/null')
    assert _exit_code(api, "specfields", command=["sh", "-c", check], user="1000:1000",
                      hostname="my_db", read_only=True, workdir="/tmp",
                      stop_signal="SIGINT") == 0


@pytest.mark.skipif(not KERNEL_FIELDS_IN_RUNTIME,
                    reason="the runtime's RunOptions has no cap_add yet (helper runopts)")
def test_cap_add_set_through_the_api_lets_the_container_add_an_address(host, api):
    command = ["ip", "addr", "add", "10.9.9.9/32", "dev", "lo"]
    assert _exit_code(api, "withcap", command=command, cap_add=["NET_ADMIN"]) == 0
    assert _exit_code(api, "nocap", command=command) != 0


COMPOSE_KERNEL_KEYS = """
services:
  withcap:
    image: busybox
    container_name: netadmin-probe
    command: ["sh", "-c", "ip addr add 10.9.9.9/32 dev lo && grep -q db.local /etc/hosts
      && grep -q ' /scratch tmpfs' /proc/mounts && exec sleep 600"]
    cap_add: [NET_ADMIN]
    extra_hosts: ["db.local:10.0.0.9"]
    tmpfs: /scratch
    expose: [8080]
  nocap:
    image: busybox
    command: ["sh", "-c", "ip addr add 10.9.9.9/32 dev lo || exec sleep 600"]
"""


def test_compose_kernel_keys_reach_the_container(host, api):
    """A compose file's cap_add, extra_hosts, tmpfs and container_name, deployed by the engine
    to a real agent: the service with NET_ADMIN adds an address (and stays up), the one without
    cannot (and only then stays up), so the revision succeeds only if both held."""
    from tests.panel.stacks.stack_harness import deploy_through_api

    stack = deploy_through_api(api, host, "kernelkeys", COMPOSE_KERNEL_KEYS)
    probe = Container.objects.get(name="netadmin-probe")
    assert probe.options["cap_add"] == ["NET_ADMIN"] and probe.options["expose"] == ["8080"]
    assert api.delete(f"/api/v1/stacks/{stack.pk}/").status_code == 202
    wait_for(lambda: not Container.objects.filter(name="netadmin-probe").exists(), 90,
             "the stack's removal")
