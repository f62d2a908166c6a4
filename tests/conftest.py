"""Fixtures shared by the whole suite, and the session-wide leak check.

Every test that touches the host gets its own runtime root; when the session ends, anything the
suite started and did not remove (conmon processes, overlay mounts, cgroups, netns, state dirs)
fails the run, naming what leaked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from berth_testenv import CGROUP_PARENT, TEST_ROOT_PARENT

REPO = Path(__file__).resolve().parent.parent
BERTH_RUNTIME = [sys.executable, "-m", "runtime"]


def _conmon_pids() -> set[int]:
    # Exited conmons linger as zombies until PID 1 reaps them (lazily on these machines);
    # they are not leaks.
    # Only this session's: conmon's command line names the bundle under our roots.
    out = subprocess.run(["ps", "-C", "conmon", "-o", "pid=,stat=,args="], capture_output=True,
                         text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines()
            if line.split() and not line.split()[1].startswith("Z")
            and str(TEST_ROOT_PARENT) in line}


def _supervisor_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", f"runtime --root {TEST_ROOT_PARENT}/.* supervise"],
                         capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _overlay_mounts() -> set[str]:
    """Overlay mounts under this session's roots (benchmarks may run beside the suite)."""
    with open("/proc/mounts") as f:
        return {line.split()[1] for line in f if line.split()[2] == "overlay"
                and line.split()[1].startswith(str(TEST_ROOT_PARENT))}


def _berth_cgroups() -> set[str]:
    found = set()
    for base in Path("/sys/fs/cgroup").glob("*"):
        parent = base / CGROUP_PARENT
        if parent.is_dir():
            found |= {str(parent)} | {str(p) for p in parent.glob("berth*")}
    return found


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _berth_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}
    return {n for n in names if n.startswith(("bt-", "vb"))}


def _berth_nft_tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables", "inet"], capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines()
            if line.startswith("table") and line.split()[-1].startswith("berth")}


def _aardvark_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", f"aardvark-dns --config {TEST_ROOT_PARENT}"],
                         capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def snapshot() -> dict[str, set]:
    return {
        "conmon processes": _conmon_pids(),
        "supervisor processes": _supervisor_pids(),
        "overlay mounts": _overlay_mounts(),
        "cgroups": _berth_cgroups(),
        "network namespaces": _netns(),
        "network links": _berth_links(),
        "nft tables": _berth_nft_tables(),
        "aardvark-dns processes": _aardvark_pids(),
    }


@pytest.fixture(scope="session", autouse=True)
def leak_check() -> Iterator[None]:
    before = snapshot()
    yield
    after = snapshot()
    leaked = {kind: sorted(map(str, after[kind] - before[kind])) for kind in after}
    leaked = {kind: items for kind, items in leaked.items() if items}
    if TEST_ROOT_PARENT.exists():
        leftover = [p.name for p in TEST_ROOT_PARENT.iterdir()]
        if leftover:
            leaked["state dirs"] = leftover
    if leaked:
        pytest.fail(f"the suite leaked: {leaked}", pytrace=False)


@pytest.fixture
def berth_root() -> Iterator[Path]:
    """A fresh, empty runtime root, purged and removed after the test."""
    root = TEST_ROOT_PARENT / uuid.uuid4().hex[:12]
    root.mkdir(parents=True)
    yield root
    from runtime.host import Host

    try:
        Host(root).purge()
    finally:
        still_mounted = [m for m in _overlay_mounts() if m.startswith(str(root))]
        for mount in still_mounted:
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(root, ignore_errors=True)
        try:
            TEST_ROOT_PARENT.rmdir()
            TEST_ROOT_PARENT.parent.rmdir()
        except OSError:
            pass
        assert not still_mounted, f"test left overlay mounts: {still_mounted}"


@pytest.fixture
def host(berth_root: Path):
    """A Host on a fresh root with the bootstrapped busybox:latest image."""
    from runtime.host import Host
    from runtime.images.bootstrap import bootstrap_busybox

    h = Host(berth_root)
    bootstrap_busybox(h.images)
    return h


@pytest.fixture
def cli(berth_root: Path):
    """Run `berth-runtime --root ROOT ARGS…` as a separate process, as a user would."""

    def run(*args: str, check: bool = True, timeout: float = 60, input: str | None = None):
        env = dict(os.environ, PYTHONPATH=str(REPO))
        result = subprocess.run(
            [*BERTH_RUNTIME, "--root", str(berth_root), *args],
            capture_output=True, text=True, timeout=timeout, env=env, input=input,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"berth-runtime {' '.join(args)} exited {result.returncode}: {result.stderr}"
            )
        return result

    return run
