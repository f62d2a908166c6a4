"""Spec fields set through the container API reach the real container: the REST API, the
control worker, one agent running runc containers (the stacks' control plane)."""

from __future__ import annotations

from pathlib import Path

import pytest

from panel.workloads.models import Container
from tests.panel.stacks.stack_harness import wait_for

pytestmark = [pytest.mark.root, pytest.mark.django_db(transaction=True)]


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


STACK_FILES_COMPOSE = """
services:
  app:
    image: busybox
    env_file: app.env
    secrets:
      - db_password
      - {source: db_password, target: /etc/owned-password, uid: "1000", mode: 0400}
    configs: [{source: motd, target: /etc/motd}]
    volumes: ["./site:/srv/site", "./conf/app.ini:/etc/app.ini:ro"]
    command:
      - sh
      - -c
      - >-
        [ "$$MODE" = prod ] && [ "$$(cat /run/secrets/db_password)" = hunter2-file ]
        && [ "$$(stat -c %a /run/secrets/db_password)" = 444 ]
        && [ "$$(stat -c %u:%a /etc/owned-password)" = 1000:400 ]
        && ! sh -c 'echo x > /run/secrets/db_password' 2>/dev/null
        && [ "$$(cat /etc/motd)" = hello ] && [ "$$(cat /srv/site/index.html)" = hi-page ]
        && grep -q name=berth /etc/app.ini
        && echo written > /srv/site/from-container && ln -sfn /etc /srv/site/evil
        && exec sleep 600
secrets:
  db_password: {file: ./db_password.txt}
configs:
  motd: {file: ./motd.txt}
"""
STACK_FILES = {"app.env": "MODE=prod\n", "db_password.txt": "hunter2-file",
               "motd.txt": "hello", "site/index.html": "hi-page", "conf/app.ini": "name=berth\n"}


def test_env_file_secrets_configs_and_relative_binds_reach_the_container(host, api):
    """The stack's uploaded files, deployed by the engine to a real agent: the container reads
    its env file, secret (mode 0444, another copy 0400 owned by 1000, read-only), config and
    relative binds, and what it writes into a bind is in the stack's directory on the host. It
    also plants a symlink there (site/evil -> /etc): a redeploy whose files would write through
    it is refused by the agent, and nothing is written outside the directory."""
    from panel.stacks.models import Revision, Stack
    from tests.panel.stacks.stack_harness import wait_revision

    created = api.post("/api/v1/stacks/", {"name": "filed", "compose": STACK_FILES_COMPOSE,
                                           "files": STACK_FILES}, format="json")
    assert created.status_code == 201, created.content
    stack = Stack.objects.get(name="filed")
    revision = wait_revision(stack.pk, 1, plane=host)
    assert revision.status == Revision.SUCCEEDED, (revision.reason, revision.result)
    directory = host.agent.state_dir / "stacks" / "filed"
    wait_for(lambda: (directory / "site" / "from-container").exists(), 60,
             "the container writing into its bind mount")
    assert (directory / "site" / "from-container").read_text() == "written\n"
    assert (directory / "site" / "evil").is_symlink()
    container = Container.objects.get(name__startswith="filed-app-")
    assert "hunter2-file" not in str(container.options)
    assert "/run/secrets/db_password" in container.secret_names

    escape = Path("/etc/berth-escape-probe")
    escape.unlink(missing_ok=True)
    patched = api.patch(f"/api/v1/stacks/{stack.pk}/", {
        "files": {**STACK_FILES, "site/evil/berth-escape-probe": "pwned"}, "deploy": True},
        format="json")
    assert patched.status_code == 200, patched.content
    second = wait_revision(stack.pk, 2, plane=host)
    assert second.status != Revision.SUCCEEDED
    assert "a symlink is never followed" in second.reason, second.reason
    assert not escape.exists()
    files_dirs = host.agent.state_dir / "agent" / "files"
    assert api.delete(f"/api/v1/stacks/{stack.pk}/").status_code == 202
    wait_for(lambda: not Container.objects.filter(name__startswith="filed-").exists(), 90,
             "the stack's removal")
    wait_for(lambda: not files_dirs.exists() or not any(files_dirs.iterdir()), 90,
             "the agent forgetting the secret files of removed containers")
