"""A runtime command that hangs fails its call instead of blocking the task (and the locks it
holds) for good; its exit status and errors still come through. A stand-in script plays runc."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runtime.containers import ociruntime
from runtime.containers.ociruntime import OCIRuntime
from runtime.errors import ContainerNotRunning, RuntimeFailure


def _runtime(tmp_path: Path, body: str) -> OCIRuntime:
    script = tmp_path / "runc"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return OCIRuntime(str(script), tmp_path / "state")


def test_a_hung_runtime_command_fails_after_the_call_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(ociruntime, "CALL_TIMEOUT", 0.5)
    runtime = _runtime(tmp_path, "exec sleep 30")
    began = time.monotonic()
    with pytest.raises(RuntimeFailure, match=r"runc kill did not return within 0.5s"):
        runtime.kill("abc", 9)
    assert time.monotonic() - began < 10


def test_a_runtime_that_answers_is_read_as_before(tmp_path):
    runtime = _runtime(tmp_path, 'echo "container abc is not running" >&2; exit 1')
    with pytest.raises(ContainerNotRunning):
        runtime.kill("abc", 9)
    assert runtime.state("abc") is None
