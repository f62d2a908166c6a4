"""Per-session test locations, importable from any test module or helper (`import
berth_testenv`): a module of its own because several `conftest` modules exist and
`from conftest import …` would pick whichever was imported first."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

# One parent per pytest session, so sessions running side by side never see each other's roots.
TEST_ROOT_PARENT = Path("/var/tmp/berth-tests") / f"s{os.getpid()}-{uuid.uuid4().hex[:6]}"

# Containers of this session get their own cgroup parent (the runtime reads it from the
# environment, agents started by tests inherit it), so other sessions' containers stay invisible.
CGROUP_PARENT = f"berth-test-{TEST_ROOT_PARENT.name}"
os.environ["BERTH_CGROUP_PARENT"] = CGROUP_PARENT
