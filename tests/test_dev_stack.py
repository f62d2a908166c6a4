"""The development stack for people who have Docker stays valid, and describes the same system
as `make run` (web, control worker with beat, an agent, Redis, PostgreSQL)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.dev.yml"


def test_docker_compose_accepts_the_dev_stack():
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_dev_stack_has_every_part_of_the_system():
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert set(services) == {"web", "control", "agent", "redis", "postgres"}
    assert "-B" in services["control"]["command"].split()  # reconcile runs on beat
    assert services["agent"]["privileged"] is True
    assert services["agent"]["command"].split()[0] == "berth-agent"
    procfile = (REPO / "Procfile").read_text()
    for part in ("web:", "control:", "agent:"):
        assert part in procfile
