"""The docker CLI and docker-py drive Berth through its Docker-Engine-compatible endpoint
(DOCKER_HOST=tcp://…/docker, a Berth API token in the CLI's HttpHeaders): run -d, ps, inspect
formats scripts use, logs, stop, rm; a viewer's `docker run` is refused and audited."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Any

import pytest

from tests.e2e.stack import ADMIN, Stack, api

pytestmark = pytest.mark.root  # the docker CLI: Debian's docker.io (scripts/setup.sh)
PROJECT = "cli"


@pytest.fixture(scope="module")
def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    token = stack.manage("berth_token", ADMIN).strip()
    api(stack, token, "POST", "users/", {"username": "vic", "password": "vic-passphrase-e2e"})
    team = api(stack, token, "POST", "teams/", {"name": "cli-team"})
    api(stack, token, "POST", f"teams/{team['id']}/members/", {"username": "vic",
                                                                "role": "viewer"})
    api(stack, token, "POST", "projects/", {"team": "cli-team", "name": PROJECT})
    viewer_token = stack.manage("berth_token", "vic").strip()
    return {"token": token, "viewer_token": viewer_token,
            "docker_host": f"tcp://{stack.url.removeprefix('http://')}/docker",
            "configs": tmp_path_factory.mktemp("docker-config")}


def _docker(world: dict[str, Any], *args: str, token: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real docker CLI against Berth, as the holder of `token` (default: the admin)."""
    config = world["configs"] / ("viewer" if token else "admin")
    config.mkdir(exist_ok=True)
    (config / "config.json").write_text(json.dumps(
        {"HttpHeaders": {"Authorization": f"Bearer {token or world['token']}"}}))
    env = {**os.environ, "DOCKER_HOST": world["docker_host"], "DOCKER_CONFIG": str(config)}
    done = subprocess.run(["docker", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    if check and done.returncode:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr}")
    return done


def _eventually(read: Any, want: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if want(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def test_the_docker_cli_runs_lists_inspects_logs_stops_and_removes(world: dict[str, Any]):
    assert _docker(world, "version", "--format", "{{.Server.APIVersion}}").stdout.strip() \
        == "1.41"
    made = _docker(world, "run", "-d", "--name", "e2e-cli", "--label",
                   f"berth.project={PROJECT}", "busybox", "sh", "-c",
                   "echo hello from berth; exec sleep 600").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", made), made

    def status() -> str:
        return _docker(world, "inspect", "--format", "{{.State.Status}}",
                       "e2e-cli").stdout.strip()

    assert _eventually(status, lambda s: s == "running") == "running"
    names = _docker(world, "ps", "--format", "{{.Names}} {{.ID}}").stdout.split()
    assert "e2e-cli" in names and made[:12] in names  # `ps` shortens ids to 12
    address = _docker(world, "inspect", "--format", "{{.NetworkSettings.IPAddress}}",
                      made[:12]).stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", address), address
    logs = _eventually(lambda: _docker(world, "logs", "e2e-cli").stdout,
                       lambda text: "hello from berth" in text)
    assert "hello from berth" in logs
    assert _docker(world, "stop", "-t", "1", "e2e-cli").stdout.strip() == "e2e-cli"
    assert status() == "exited"  # `docker stop` answers once it has stopped
    _docker(world, "rm", "e2e-cli")
    assert "e2e-cli" not in _docker(world, "ps", "-a", "--format", "{{.Names}}").stdout
    missing = _docker(world, "container", "inspect", "e2e-cli", check=False)
    assert missing.returncode == 1 and "No such container: e2e-cli" in missing.stderr


def test_volumes_networks_images_and_logs_follow_through_the_cli(world: dict[str, Any]):
    label = f"berth.project={PROJECT}"
    assert _docker(world, "volume", "create", "--label", label, "clidata").stdout.strip() \
        == "clidata"
    _docker(world, "network", "create", "--label", label, "clinet")
    assert "clidata" in _docker(world, "volume", "ls", "--format", "{{.Name}}").stdout
    assert "clinet" in _docker(world, "network", "ls", "--format", "{{.Name}}").stdout
    assert "busybox" in _docker(world, "images", "--format", "{{.Repository}}").stdout
    _docker(world, "run", "-d", "--name", "e2e-vol", "--label", label, "-v", "clidata:/data",
            "--network", "clinet", "busybox", "sh", "-c",
            "echo kept > /data/f; for i in 1 2 3; do echo tick $i; sleep 1; done")
    # -f follows until the container exits: every tick, each once
    followed = _docker(world, "logs", "-f", "e2e-vol").stdout
    assert followed.split() == ["tick", "1", "tick", "2", "tick", "3"], followed
    assert _docker(world, "wait", "e2e-vol").stdout.strip() == "0"
    _docker(world, "run", "-d", "--name", "e2e-reader", "--label", label, "-v",
            "clidata:/data", "busybox", "cat", "/data/f")
    assert _eventually(lambda: _docker(world, "logs", "e2e-reader").stdout,
                       lambda text: "kept" in text).strip() == "kept"  # the volume's data
    busy = _docker(world, "volume", "rm", "clidata", check=False)
    assert busy.returncode != 0 and "used by" in busy.stderr
    _docker(world, "rm", "-f", "e2e-vol", "e2e-reader")
    _docker(world, "volume", "rm", "clidata")
    _docker(world, "network", "rm", "clinet")
    assert "clinet" not in _docker(world, "network", "ls", "--format", "{{.Name}}").stdout


def test_docker_py_runs_a_container_in_berth(world: dict[str, Any]):
    import docker
    client = docker.DockerClient(base_url=world["docker_host"], version="1.41")
    client.api.headers["Authorization"] = f"Bearer {world['token']}"
    assert client.ping() is True
    container = client.containers.run("busybox", ["sh", "-c", "echo from docker-py; sleep 600"],
                                      name="e2e-py", detach=True,
                                      labels={"berth.project": PROJECT})

    def reloaded() -> Any:
        container.reload()
        return container

    assert _eventually(reloaded, lambda c: c.status == "running").status == "running"
    assert container.labels["berth.project"] == PROJECT
    assert [c.name for c in client.containers.list(filters={"label": "berth.project=cli"})] \
        == ["e2e-py"]
    assert b"from docker-py" in _eventually(container.logs, lambda b: b"docker-py" in b)
    container.stop(timeout=1)
    assert reloaded().status == "exited"
    container.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("e2e-py")


def test_a_viewers_docker_run_is_refused_and_audited(stack: Stack, world: dict[str, Any]):
    refused = _docker(world, "run", "-d", "--label", f"berth.project={PROJECT}", "busybox",
                      "true", token=world["viewer_token"], check=False)
    assert refused.returncode != 0
    assert "you may not create a container in project cli" in refused.stderr, refused.stderr
    events = api(stack, world["token"], "GET",
                 "audit/?actor=vic&outcome=denied&action=container.create")
    assert [(e["channel"], e["project_name"]) for e in events["results"]] == [("docker", PROJECT)]


COMPOSE = """
version: "3.8"
services:
  db:
    image: busybox
    command: ["sh", "-c", "echo ready > /data/ready; exec httpd -f -p 5432 -h /data"]
    volumes: ["dbdata:/data"]
  web:
    image: busybox
    command: ["sh", "-c", "until wget -q -O /tmp/r http://db:5432/ready; do sleep 0.5; done;
              cat /tmp/r; exec sleep 600"]
    depends_on: [db]
volumes:
  dbdata: {}
"""


def test_docker_compose_brings_a_two_service_file_up_lists_it_and_takes_it_down(
        stack: Stack, world: dict[str, Any], tmp_path: Any):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    config = world["configs"] / "admin"
    env = {**os.environ, "DOCKER_HOST": world["docker_host"], "DOCKER_CONFIG": str(config),
           "COMPOSE_PROJECT_NAME": PROJECT}

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["docker-compose", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"docker-compose {' '.join(args)}: {done.stderr}\n" \
            f"{stack.log('web')[-3000:]}"
        return done

    _docker(world, "version")  # writes the admin's config.json
    compose("up", "-d")
    listed = compose("ps").stdout
    assert "cli_db_1" in listed and "cli_web_1" in listed, listed
    # web reached db by its service name, on the project's network
    assert _eventually(lambda: _docker(world, "logs", "cli_web_1").stdout,
                       lambda text: "ready" in text).strip() == "ready"
    compose("down", "-v", "-t", "1")
    assert "cli_" not in _docker(world, "ps", "-a", "--format", "{{.Names}}").stdout
    assert "cli_dbdata" not in _docker(world, "volume", "ls", "--format", "{{.Name}}").stdout
    assert "cli_default" not in _docker(world, "network", "ls", "--format", "{{.Name}}").stdout
