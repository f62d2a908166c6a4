"""pytest fixtures shared by the agent test modules (imported by them with `from agent_fixtures
import *`): one Redis, one control side and one test bridge per module; agents and their roots
per test, all stopped, purged and removed afterwards."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agent_harness import AgentProcess, ControlSide, HostNamespaces, RedisServer, agent_roots
from berth_testenv import TEST_ROOT_PARENT

__all__ = ["host_namespaces", "redis_server", "control", "roots", "agents", "new_host_name"]


@pytest.fixture(scope="module")
def host_namespaces() -> Iterator[HostNamespaces]:
    """The test bridge (created first: Redis binds to its address)."""
    namespaces = HostNamespaces()
    yield namespaces
    namespaces.close()


@pytest.fixture(scope="module")
def redis_server(host_namespaces: HostNamespaces) -> Iterator[RedisServer]:
    workdir = TEST_ROOT_PARENT / f"redis-{uuid.uuid4().hex[:8]}"
    server = RedisServer(workdir, bind=("127.0.0.1", host_namespaces.gateway))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        TEST_ROOT_PARENT.rmdir()
        TEST_ROOT_PARENT.parent.rmdir()
    except OSError:
        pass


@pytest.fixture(scope="module")
def control(redis_server: RedisServer) -> Iterator[ControlSide]:
    side = ControlSide(redis_server.url())
    side.start()
    yield side
    side.close()


@pytest.fixture
def roots() -> Iterator[Callable[[], Path]]:
    """Make fresh runtime roots with busybox; removed after the test."""
    with agent_roots(TEST_ROOT_PARENT) as make:
        yield make


def new_host_name() -> str:
    return f"h{uuid.uuid4().hex[:8]}"


@pytest.fixture
def agents(roots: Callable[[], Path],
           redis_server: RedisServer) -> Iterator[Callable[..., AgentProcess]]:
    """Start agents: `agents(name=None, root=None, netns=None, url=None, **options)`. Each one
    is stopped (SIGTERM) and its root purged afterwards; their logs go to stderr (shown
    for a failing test)."""
    started: list[AgentProcess] = []

    def start(name: str | None = None, root: Path | None = None, netns: str | None = None,
              url: str | None = None, **options: object) -> AgentProcess:
        agent = AgentProcess(name or new_host_name(), root or roots(),
                             url or redis_server.url(), netns=netns, **options)  # type: ignore[arg-type]
        agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.terminate()
    seen: set[Path] = set()
    for agent in started:
        if agent.state_dir not in seen:
            seen.add(agent.state_dir)
            agent.purge()
        # captured: pytest shows it only when the test failed
        sys.stderr.write(f"\n--- agent {agent.name} log ---\n{agent.log()[-6000:]}\n")
