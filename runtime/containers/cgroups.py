"""Where containers' cgroups live (cgroupfs driver, cgroup v1 and v2 alike)."""

from __future__ import annotations

import os
from pathlib import Path

from runtime.containers.record import Container
from runtime.errors import InvalidArgument

DEFAULT_CGROUP_PARENT = "berth"


def cgroup_parent() -> str:
    """The cgroup directory all containers go under: `BERTH_CGROUP_PARENT`, default `berth`
    (like docker's --cgroup-parent; the test suite uses its own so sessions stay apart)."""
    parent = os.environ.get("BERTH_CGROUP_PARENT", DEFAULT_CGROUP_PARENT)
    if not parent or not all(c.isalnum() or c in "_.-" for c in parent):
        raise InvalidArgument(
            f"BERTH_CGROUP_PARENT={parent!r}: use letters, digits, '_', '.' and '-'")
    return parent


def cgroups_path(container: Container) -> str:
    """`/<parent>/berth-<id>` in every hierarchy."""
    return f"/{cgroup_parent()}/berth-{container.id}"


def remove_empty_cgroup_parents() -> None:
    """rmdir the shared parent cgroup directories once no container uses them."""
    base = Path("/sys/fs/cgroup")
    parent = cgroup_parent()
    candidates = [base / parent] + [p / parent for p in base.glob("*")]
    for candidate in candidates:
        try:
            candidate.rmdir()
        except OSError:
            pass
