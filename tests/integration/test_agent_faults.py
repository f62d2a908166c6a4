"""The agent under faults: SIGKILL during concurrent starts, exits while it is down, a Redis
restart, and two agents in two network namespaces acting as two hosts on this machine."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter

import pytest
from agent_fixtures import *  # noqa: F403 (fixtures)
from agent_harness import until

from runtime.host import Host
from runtime.protocol import UID_LABEL

pytestmark = pytest.mark.root


def spec(uid: str | None = None, **fields: object) -> dict:
    uid = uid or uuid.uuid4().hex
    base = {"uid": uid, "name": f"c-{uid[:8]}", "generation": 1, "desired": "running",
            "image": "busybox", "command": ["sleep", "1000"], "networks": ["none"],
            "labels": {}, "pull": False}
    return base | fields


def by_uid(root) -> Counter:
    """How many containers each uid has on the host at `root`."""
    return Counter(c.labels.get(UID_LABEL) for c in Host(root).containers.list(all=True))


def test_kill9_during_20_concurrent_starts_converges_without_duplicates(agents, control):
    agent = agents(concurrency=4)
    wanted = [spec() for _ in range(20)]
    for each in wanted:
        control.send(agent.name, "apply_container", spec=each)
    until(lambda: sum(by_uid(agent.state_dir).values()) >= 6, interval=0.005)
    agent.kill9()
    killed_with = sum(by_uid(agent.state_dir).values())
    restarted = agents(name=agent.name, root=agent.state_dir, concurrency=4)
    # What the panel's reconciler does after an agent restart: apply every container again.
    # The restarted agent also gets back every message the killed one had taken (kombu's
    # unacked hash), so each uid now arrives two or three times, concurrently: still one
    # container each. (A message Redis had popped but the killed process had not read yet is
    # lost: BRPOP is at-most-once; the re-apply is what covers it.)
    again = [control.send(agent.name, "apply_container", spec=each) for each in wanted]
    actions = Counter(result.get(timeout=60)["action"] for result in again)
    uids = {s["uid"] for s in wanted}

    def converged() -> bool:
        containers = Host(restarted.state_dir).containers.list(all=True)
        return (len(containers) == 20 and {c.labels[UID_LABEL] for c in containers} == uids
                and all(c.running for c in containers))

    until(converged, timeout=60)
    print(f"{killed_with} container(s) existed when the agent was killed; re-apply: {actions}")
    assert by_uid(restarted.state_dir) == Counter({uid: 1 for uid in uids})
    for each in wanted:
        control.wait_for("container_event", host=agent.name, uid=each["uid"], event="started")


def test_an_exit_while_the_agent_is_down_is_reported_after_its_restart(agents, control):
    agent = agents()
    survivor, victim, always = spec(), spec(), spec(restart="always")
    control.call(agent.name, "apply_container", spec=survivor)
    victim_state = control.call(agent.name, "apply_container", spec=victim)["state"]
    always_state = control.call(agent.name, "apply_container", spec=always)["state"]
    for each in (survivor, victim, always):
        control.wait_for("container_event", host=agent.name, uid=each["uid"], event="started")
    agent.kill9()
    # conmon records these exits; no agent sees them
    os.kill(victim_state["pid"], signal.SIGKILL)
    os.kill(always_state["pid"], signal.SIGKILL)
    down_since = time.monotonic()
    restarted = agents(name=agent.name, root=agent.state_dir)
    exited = control.wait_for("container_event", host=agent.name, uid=victim["uid"],
                              event="exited", after=down_since)
    assert exited.kwargs["state"]["exit_code"] == 137
    # The restart policy applies to an exit nobody watched, as docker's does after a restart.
    control.wait_for("container_event", host=agent.name, uid=always["uid"], event="exited",
                     after=down_since)
    control.wait_for("container_event", host=agent.name, uid=always["uid"], after=down_since,
                     where=lambda k: k["event"] in ("started", "restarted")
                     and k["state"]["status"] == "running")
    snapshot = control.wait_for("snapshot", host=agent.name, after=down_since).kwargs
    states = {c["uid"]: c for c in snapshot["containers"]}
    assert states[victim["uid"]]["status"] == "exited"
    assert states[survivor["uid"]]["status"] == "running"
    assert states[survivor["uid"]]["pid"] == Host(restarted.state_dir).containers.list(
        labels={UID_LABEL: survivor["uid"]})[0].state["Pid"]  # re-adopted, not restarted
    assert control.events(agent.name, survivor["uid"]).count("started") == 1


def test_heartbeats_and_tasks_resume_after_a_redis_restart(agents, control, redis_server):
    agent = agents()
    control.wait_for("heartbeat", host=agent.name)
    redis_server.restart(down_for=1.0)
    back = time.monotonic()
    control.wait_for("heartbeat", host=agent.name, after=back, timeout=30)
    wanted = spec()
    result = control.call(agent.name, "apply_container", spec=wanted, timeout=60)
    assert result["ok"] and result["state"]["status"] == "running"
    control.wait_for("container_event", host=agent.name, uid=wanted["uid"], event="started")


def test_two_agents_in_two_namespaces_run_their_own_containers(agents, control,
                                                               host_namespaces, redis_server):
    url = redis_server.url(host_namespaces.gateway)
    first = agents(netns=host_namespaces.add(), url=url, labels="rack=1")
    second = agents(netns=host_namespaces.add(), url=url, labels="rack=2")
    for agent, rack in ((first, "1"), (second, "2")):
        beat = control.wait_for("heartbeat", host=agent.name).kwargs["inventory"]
        assert beat["labels"] == {"rack": rack}
    # The same name on both hosts, on each host's default bridge network: nothing clashes.
    specs = {agent.name: spec(name="web", networks=[]) for agent in (first, second)}
    results = {name: control.send(name, "apply_container", spec=s) for name, s in specs.items()}
    states = {name: r.get(timeout=60) for name, r in results.items()}
    for agent in (first, second):
        state = states[agent.name]
        assert state["ok"] and state["state"]["status"] == "running", state
        assert state["state"]["addresses"]["berth"]
        [container] = Host(agent.state_dir).containers.list()
        assert container.labels[UID_LABEL] == specs[agent.name]["uid"]
        control.wait_for("container_event", host=agent.name, uid=specs[agent.name]["uid"],
                         event="started")
    other = specs[second.name]["uid"]
    assert control.received("container_event", host=first.name, uid=other) == []
