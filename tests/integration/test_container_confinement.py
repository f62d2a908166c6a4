"""What a process inside a container may do: the default seccomp filter, Docker's network sysctls,
and the exit codes of commands that cannot run (real runc, conmon and overlayfs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runtime.containers import seccomp
from runtime.containers.options import RunOptions

pytestmark = pytest.mark.root

# add_key (a keyring syscall) and personality(ADDR_NO_RANDOMIZE) are both refused by the default
# profile with ENOSYS; no capability check would give that errno.
PROBE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    long r = syscall(SYS_add_key, "user", "berth-probe", "x", 1, 0);
    printf("add_key %s\n", r < 0 ? strerror(errno) : "allowed");
    r = syscall(SYS_personality, 0x0040000UL);
    printf("personality %s\n", r < 0 ? strerror(errno) : "allowed");
    return 0;
}
"""


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    """A static binary that tries syscalls the seccomp profile refuses (its directory)."""
    source = tmp_path / "probe.c"
    source.write_text(PROBE_C)
    subprocess.run(["gcc", "-static", "-O0", "-o", str(tmp_path / "probe"), str(source)],
                   check=True, capture_output=True)
    return tmp_path


def logged(container) -> str:
    return "".join(line.split(" ", 3)[3] + "\n"
                   for line in container.log_path.read_text().splitlines())


def test_the_system_profile_filters_syscalls_inside_containers(host, probe):
    assert seccomp.profile_path() == "/usr/share/containers/seccomp.json"
    container = host.containers.run(RunOptions(
        image="busybox", command=["sh", "-c", "grep Seccomp: /proc/self/status; /probe/probe"],
        volumes=[f"{probe}:/probe:ro"]))
    assert host.containers.wait(container.id, timeout=30) == 0
    assert logged(container).splitlines() == [
        "Seccomp:\t2",
        "add_key Function not implemented",
        "personality Function not implemented",
    ]
    host.containers.remove(container.id)


def test_exec_runs_under_the_same_filter(host):
    container = host.containers.run(RunOptions(image="busybox", command=["sleep", "30"]))
    result = host.containers.exec(container.id, ["grep", "Seccomp:", "/proc/self/status"],
                                  capture=True)
    assert result.stdout.decode().split() == ["Seccomp:", "2"]
    host.containers.remove(container.id, force=True)


def test_exec_of_a_missing_or_unexecutable_command_exits_127_or_126(host):
    container = host.containers.run(RunOptions(image="busybox", command=["sleep", "30"]))
    missing = host.containers.exec(container.id, ["no-such-command"], capture=True)
    assert missing.returncode == 127 and b"executable file not found" in missing.stderr
    assert host.containers.exec(container.id, ["/etc/passwd"], capture=True).returncode == 126
    assert host.containers.exec(container.id, ["sh", "-c", "exit 255"]).returncode == 255
    assert not list(container.userdata.glob("exec-*.log"))
    host.containers.remove(container.id, force=True)


def test_containers_get_dockers_network_sysctls(host):
    script = ("cat /proc/sys/net/ipv4/ip_unprivileged_port_start "
              "/proc/sys/net/ipv4/ping_group_range")
    own = host.containers.run(RunOptions(image="busybox", command=["sh", "-c", script]))
    assert host.containers.wait(own.id, timeout=30) == 0
    assert logged(own).split() == ["0", "0", "2147483647"]
    host.containers.remove(own.id)
