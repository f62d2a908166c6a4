"""Volumes used by real containers (runc + conmon): sharing, outliving containers, refusals while
in use, and a forced restore that a running container sees at once."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from runtime.containers.options import RunOptions
from runtime.host import Host

pytestmark = pytest.mark.root


@pytest.fixture
def containers(host: Host) -> Iterator[list[str]]:
    """Names of containers a test started; all are force-removed afterwards."""
    started: list[str] = []
    yield started
    for name in started:
        host.containers.remove(name, force=True)


def run_sleeper(host: Host, started: list[str], name: str, volume_spec: str) -> None:
    host.containers.run(RunOptions(image="busybox:latest", command=["sleep", "600"], name=name,
                                   volumes=[volume_spec]))
    started.append(name)


def sh(host: Host, container: str, script: str) -> str:
    result = host.containers.exec(container, ["sh", "-c", script], capture=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def test_two_containers_sharing_a_volume_see_each_others_writes(
    host: Host, containers: list[str],
) -> None:
    volume = host.volumes.create("shared")
    run_sleeper(host, containers, "writer-a", "shared:/data")
    run_sleeper(host, containers, "writer-b", "shared:/srv/state")

    sh(host, "writer-a", "echo from-a > /data/a.txt")
    assert sh(host, "writer-b", "cat /srv/state/a.txt") == "from-a\n"
    sh(host, "writer-b", "mkdir /srv/state/dir && echo from-b > /srv/state/dir/b.txt")
    assert sh(host, "writer-a", "cat /data/dir/b.txt") == "from-b\n"
    assert (volume.mountpoint / "dir" / "b.txt").read_text() == "from-b\n"
    assert host.containers.users_of_volume("shared") == ["writer-a", "writer-b"]


def test_volume_outlives_its_containers(host: Host, containers: list[str]) -> None:
    run_sleeper(host, containers, "short-lived", "keep:/data")  # `-v` creates the volume
    sh(host, "short-lived", "echo persisted > /data/file")
    host.containers.remove("short-lived", force=True)
    containers.remove("short-lived")

    assert (host.volumes.get("keep").mountpoint / "file").read_text() == "persisted\n"
    run_sleeper(host, containers, "successor", "keep:/data")
    assert sh(host, "successor", "cat /data/file") == "persisted\n"


def test_volume_rm_refused_while_a_container_uses_it(host: Host, containers: list[str],
                                                     cli) -> None:
    cli("volume", "create", "busy")
    run_sleeper(host, containers, "holder", "busy:/data")

    refused = cli("volume", "rm", "busy", check=False)
    assert refused.returncode == 1
    assert "in use by container(s) holder" in refused.stderr
    assert cli("volume", "ls", "-q").stdout.split() == ["busy"]
    dangling = cli("volume", "ls", "-q", "--filter", "dangling=true").stdout.split()
    assert dangling == []

    host.containers.remove("holder", force=True)
    containers.remove("holder")
    assert cli("volume", "rm", "busy").stdout.split() == ["busy"]
    assert cli("volume", "ls", "-q").stdout.split() == []


def test_forced_restore_reaches_a_running_container(host: Host, containers: list[str], cli,
                                                    berth_root) -> None:
    run_sleeper(host, containers, "app", "appdata:/data")
    sh(host, "app", "echo version-1 > /data/config && mkdir /data/cache")
    backup = berth_root / "appdata.tar.zst"
    cli("volume", "backup", "appdata", str(backup))
    sh(host, "app", "echo version-2 > /data/config && rmdir /data/cache && touch /data/extra")

    refused = cli("volume", "restore", "appdata", str(backup), check=False)
    assert refused.returncode == 125
    assert "in use by container(s) app" in refused.stderr
    assert sh(host, "app", "cat /data/config") == "version-2\n"

    restored = cli("--json", "volume", "restore", "appdata", str(backup), "--force")
    assert json.loads(restored.stdout)["Name"] == "appdata"
    assert sh(host, "app", "cat /data/config") == "version-1\n"
    assert sh(host, "app", "ls /data") == "cache\nconfig\n"
