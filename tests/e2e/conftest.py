"""End-to-end fixtures: the whole stack (tests/e2e/stack.py) once per module, and a browser."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import TEST_ROOT_PARENT, _overlay_mounts
from tests.e2e.stack import Stack, berth_stack, chromium


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    from runtime.host import Host
    from runtime.images.bootstrap import bootstrap_busybox

    root = TEST_ROOT_PARENT / f"e2e-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    bootstrap_busybox(Host(root).images)
    try:
        with berth_stack(root) as running:
            yield running
    finally:
        try:
            Host(root).purge()
        finally:
            for mount in [m for m in _overlay_mounts() if m.startswith(str(root))]:
                subprocess.run(["umount", "-l", mount], check=False)
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running
