"""The host agent for real: a Redis server, `berth-agent` subprocesses running runc containers, and
this test as the control side (sending `berth.agent.*` tasks, reading `berth.control.*`)."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from agent_fixtures import *  # noqa: F403 (fixtures)
from agent_harness import until

from runtime.containers.record import parse_iso
from runtime.host import Host
from runtime.protocol import GENERATION_LABEL, UID_LABEL

pytestmark = pytest.mark.root


def spec(uid: str | None = None, **fields: object) -> dict:
    """A container spec as the panel sends it (no network: faster, and not what is tested)."""
    uid = uid or uuid.uuid4().hex
    base = {"uid": uid, "name": f"c-{uid[:8]}", "generation": 1, "desired": "running",
            "image": "busybox", "command": ["sleep", "1000"], "networks": ["none"],
            "labels": {}, "pull": False}
    return base | fields


def containers_of(root, uid: str):
    return Host(root).containers.list(all=True, labels={UID_LABEL: uid})


def test_heartbeat_carries_the_inventory_and_a_snapshot_follows_the_start(agents, control):
    agent = agents(labels="zone=a,disk=ssd")
    beat = control.wait_for("heartbeat", host=agent.name).kwargs["inventory"]
    assert beat["cpus"] == os.cpu_count()
    assert beat["memory"] > beat["memory_available"] > 0
    assert beat["disk"]["total"] >= beat["disk"]["free"] > 0
    assert beat["kernel"] == os.uname().release
    assert beat["versions"]["runc"] and beat["versions"]["conmon"] and beat["versions"]["berth"]
    assert beat["labels"] == {"zone": "a", "disk": "ssd"}
    assert len(beat["load"]) == 3 and beat["containers_running"] == 0
    snapshot = control.wait_for("snapshot", host=agent.name).kwargs
    assert snapshot["containers"] == []
    assert [i["names"] for i in snapshot["images"]] == [["busybox:latest"]]
    first = control.received("heartbeat", host=agent.name)[0].received
    control.wait_for("heartbeat", host=agent.name, after=first + 0.01)  # they keep coming


def test_apply_container_creates_starts_and_reports_started(agents, control):
    agent = agents()
    wanted = spec(labels={"app": "web"})
    result = control.call(agent.name, "apply_container", spec=wanted, operation_id="op-apply")
    assert result["ok"] and result["action"] == "created"
    assert result["state"]["status"] == "running"
    started = control.wait_for("container_event", host=agent.name, uid=wanted["uid"],
                               event="started")
    delay = started.received_at - parse_iso(started.kwargs["state"]["started_at"])
    print(f"started event received {delay:.3f}s after the container started")
    assert started.kwargs["state"]["pid"] > 0
    [container] = containers_of(agent.state_dir, wanted["uid"])
    assert container.running and container.labels["app"] == "web"
    assert container.labels[GENERATION_LABEL] == "1"
    progress = control.received("operation_progress", operation_id="op-apply")
    assert progress[0].kwargs["status"] == "running"
    until(lambda: control.received("operation_progress", operation_id="op-apply",
                                   status="succeeded"))
    assert control.events(agent.name, wanted["uid"])[:2] == ["created", "started"]


def test_the_apply_reports_the_start_itself_before_its_success_and_once(agents, control):
    agent = agents()
    wanted = spec()
    control.call(agent.name, "apply_container", spec=wanted, operation_id="op-first")
    until(lambda: control.received("operation_progress", operation_id="op-first",
                                   status="succeeded"))
    # A second apply (unchanged) pokes the reporter's scan: it finds nothing left to say.
    assert control.call(agent.name, "apply_container", spec=wanted,
                        operation_id="op-again")["action"] == "unchanged"
    until(lambda: control.received("operation_progress", operation_id="op-again",
                                   status="succeeded"))
    mine = [m for m in control.received() if m.kwargs.get("uid") == wanted["uid"]
            or m.kwargs.get("operation_id") == "op-first"]
    said = [m.kwargs.get("event") or m.kwargs["status"] for m in mine]
    assert [s for s in said if s != "running"] == ["created", "started", "succeeded"]
    # While the task created and started it, no scan reported it as merely created.
    created = control.wait_for("container_event", uid=wanted["uid"], event="created")
    assert created.kwargs["state"]["status"] == "running"
    assert control.events(agent.name, wanted["uid"]) == ["created", "started"]


def test_a_container_applied_stopped_is_reported_created(agents, control):
    agent = agents()
    wanted = spec(desired="stopped")
    result = control.call(agent.name, "apply_container", spec=wanted)
    assert result["action"] == "created" and result["state"]["status"] == "created"
    created = control.wait_for("container_event", uid=wanted["uid"], event="created")
    assert created.kwargs["state"]["status"] == "created"
    assert control.events(agent.name, wanted["uid"]) == ["created"]


def test_duplicate_apply_delivered_concurrently_makes_one_container(agents, control):
    agent = agents(concurrency=4)
    wanted = spec()
    pending = [control.send(agent.name, "apply_container", spec=wanted) for _ in range(3)]
    actions = sorted(p.get(timeout=30)["action"] for p in pending)
    assert actions == ["created", "unchanged", "unchanged"]
    [container] = containers_of(agent.state_dir, wanted["uid"])
    assert container.running


def test_newer_generation_replaces_the_container_and_older_is_ignored(agents, control):
    agent = agents()
    first = spec(command=["sleep", "1001"], stop_timeout=1)
    old = control.call(agent.name, "apply_container", spec=first)
    patched = first | {"generation": 2, "command": ["sleep", "1002"]}
    new = control.call(agent.name, "apply_container", spec=patched)
    assert new["action"] == "replaced" and new["runtime_id"] != old["runtime_id"]
    [container] = containers_of(agent.state_dir, first["uid"])
    assert container.id == new["runtime_id"] and container.config["Cmd"] == ["sleep", "1002"]
    assert container.running and container.name == first["name"]
    stale = control.call(agent.name, "apply_container", spec=first)
    assert stale["action"] == "ignored" and stale["runtime_id"] == new["runtime_id"]
    removed = control.wait_for("container_event", host=agent.name, uid=first["uid"],
                               event="removed")
    assert removed.kwargs["state"]["runtime_id"] == old["runtime_id"]


def test_stop_start_kill_and_remove_actions(agents, control):
    agent = agents()
    wanted = spec()
    uid = wanted["uid"]
    control.call(agent.name, "apply_container", spec=wanted)
    stopped = control.call(agent.name, "container_action", uid=uid, action="stop",
                           params={"timeout": 1})
    assert stopped["state"]["status"] == "exited"
    control.wait_for("container_event", host=agent.name, uid=uid, event="exited")
    mark = time.monotonic()
    assert control.call(agent.name, "container_action", uid=uid, action="start")["ok"]
    control.wait_for("container_event", host=agent.name, uid=uid, event="started", after=mark)
    mark = time.monotonic()
    killed = control.call(agent.name, "container_action", uid=uid, action="kill",
                          params={"signal": "KILL"})
    assert killed["state"]["exit_code"] == 137
    exited = control.wait_for("container_event", host=agent.name, uid=uid, event="exited",
                              after=mark)
    assert exited.kwargs["state"]["exit_code"] == 137
    assert control.call(agent.name, "container_action", uid=uid, action="kill")["ok"]
    assert control.call(agent.name, "container_action", uid=uid, action="remove")["ok"]
    control.wait_for("container_event", host=agent.name, uid=uid, event="removed")
    assert containers_of(agent.state_dir, uid) == []
    again = control.call(agent.name, "container_action", uid=uid, action="remove")
    assert again["ok"] and again["action"] == "absent"
    missing = control.call(agent.name, "container_action", uid=uid, action="start",
                           operation_id="op-start-missing")
    assert not missing["ok"] and "no container with uid" in missing["error"]
    failed = control.wait_for("operation_progress", operation_id="op-start-missing",
                              status="failed")
    assert failed.kwargs["message"] == missing["error"]


def _runs(root, uid: str, program: str) -> bool:
    """Whether `program` runs in the container: PID 1 has exec'd it, or init has started it
    (runc's init, a Go program that catches every signal, is PID 1 until its exec)."""
    container = containers_of(root, uid)[0]
    return Host(root).containers.exec(container.id, ["pidof", program],
                                      capture=True).returncode == 0


def test_a_stop_that_ends_in_sigkill_is_reported_with_the_reason_and_the_fix(agents, control):
    agent = agents()
    plain, with_init = spec(), spec(init=True)
    for wanted in (plain, with_init):
        control.call(agent.name, "apply_container", spec=wanted)
        until(lambda wanted=wanted: _runs(agent.state_dir, wanted["uid"], "sleep"))
    control.call(agent.name, "container_action", uid=plain["uid"], action="stop",
                 params={"timeout": 1})
    exited = control.wait_for("container_event", host=agent.name, uid=plain["uid"],
                              event="exited")
    note = exited.kwargs["state"]["stop_note"]
    assert exited.kwargs["state"]["exit_code"] == 137
    assert "SIGKILL after 1s" in note and "PID 1 and has no SIGTERM handler" in note
    assert "set init: true or handle SIGTERM" in note
    # with init, SIGTERM reaches sleep (its default action ends it): no kill, no note
    control.call(agent.name, "container_action", uid=with_init["uid"], action="stop",
                 params={"timeout": 30})
    exited = control.wait_for("container_event", host=agent.name, uid=with_init["uid"],
                              event="exited")
    assert exited.kwargs["state"]["exit_code"] == 143 and exited.kwargs["state"]["stop_note"] == ""


def test_container_exit_is_reported_with_its_code(agents, control):
    agent = agents()
    wanted = spec(command=["sh", "-c", "sleep 0.3; exit 3"])
    control.call(agent.name, "apply_container", spec=wanted)
    exited = control.wait_for("container_event", host=agent.name, uid=wanted["uid"],
                              event="exited")
    assert exited.kwargs["state"]["exit_code"] == 3
    assert exited.kwargs["state"]["status"] == "exited"


def test_oom_kill_is_reported(agents, control):
    agent = agents()
    wanted = spec(command=["tail", "/dev/zero"], memory=16 * 1024 * 1024)
    control.call(agent.name, "apply_container", spec=wanted)
    oom = control.wait_for("container_event", host=agent.name, uid=wanted["uid"], event="oom",
                           timeout=30)
    assert oom.kwargs["state"]["oom_killed"] and oom.kwargs["state"]["exit_code"] == 137
    control.wait_for("container_event", host=agent.name, uid=wanted["uid"], event="exited")


def test_restart_policy_and_health_checks_run_in_the_agent(agents, control):
    agent = agents()
    flaky = spec(command=["sh", "-c", "sleep 0.2; exit 2"], restart="on-failure:1")
    healthy = spec(healthcheck={"test": ["CMD", "true"], "interval": 200_000_000,
                                "timeout": 1_000_000_000, "start_period": 0, "retries": 1})
    control.call(agent.name, "apply_container", spec=flaky)
    control.call(agent.name, "apply_container", spec=healthy)
    until(lambda: control.events(agent.name, flaky["uid"]).count("exited") == 2)
    # "restarting" shows only if a scan falls inside the 0.1 s back-off
    assert [e for e in control.events(agent.name, flaky["uid"]) if e != "restarting"] == [
        "created", "started", "exited", "restarted", "exited"]
    health = control.wait_for("container_event", host=agent.name, uid=healthy["uid"],
                              event="health", where=lambda k: k["state"]["health"] == "healthy")
    assert health.kwargs["state"]["status"] == "running"


def test_a_restart_back_off_is_reported_as_restarting(agents, control):
    agent = agents()
    looping = spec(command=["sh", "-c", "exit 4"], restart="always")
    control.call(agent.name, "apply_container", spec=looping)
    # the back-off doubles with each quick exit; soon a scan sees the container waiting
    event = control.wait_for("container_event", host=agent.name, uid=looping["uid"],
                             event="restarting", timeout=30)
    assert event.kwargs["state"]["status"] == "restarting"
    assert event.kwargs["state"]["exit_code"] == 4


def test_logs_and_stats_are_returned_by_rpc(agents, control):
    agent = agents()
    script = "echo one; echo two >&2; sleep 0.2; echo three; sleep 1000"
    wanted = spec(command=["sh", "-c", script])
    control.call(agent.name, "apply_container", spec=wanted)
    entries = until(lambda: len(e := control.call(agent.name, "logs", uid=wanted["uid"])) == 3
                    and e)
    assert sorted((e["stream"], e["text"]) for e in entries) == [  # two pipes: no order
        ("stderr", "two"), ("stdout", "one"), ("stdout", "three")]
    tail = control.call(agent.name, "logs", uid=wanted["uid"], tail=1, timestamps=True)
    assert [e["text"] for e in tail] == ["three"] and tail[0]["timestamp"]
    stats = control.call(agent.name, "stats", uid=wanted["uid"])
    assert stats["pids"] >= 1 and stats["memory_usage"] > 0


def test_a_failed_apply_reports_the_runtime_error(agents, control):
    agent = agents()
    wanted = spec(image="no-such-image:1")
    result = control.call(agent.name, "apply_container", spec=wanted, operation_id="op-bad")
    assert not result["ok"] and "no-such-image" in result["error"]
    failed = control.wait_for("operation_progress", operation_id="op-bad", status="failed")
    assert failed.kwargs["message"] == result["error"]
    assert containers_of(agent.state_dir, wanted["uid"]) == []
    bad = control.call(agent.name, "apply_container", spec={"image": "busybox"})
    assert not bad["ok"] and "spec.uid" in bad["error"]


def test_apply_pulls_a_missing_image_and_pull_reports_progress(agents, control, roots):
    from registry_server import RegistryServer

    from runtime.images import registry

    source = Host(roots())
    server = RegistryServer(source.root / "registry")
    server.start()
    try:
        reference = f"{server.address}/tests/busybox:1"
        source.images.tag("busybox:latest", reference)
        registry.push(source.images, reference, insecure=True)
        agent = agents(root=roots(bootstrap=False))
        wanted = spec(image=reference, pull=True)
        result = control.call(agent.name, "apply_container", spec=wanted, operation_id="op-pull")
        assert result["ok"] and result["state"]["status"] == "running"
        progress = [m.kwargs for m in control.received("operation_progress",
                                                       operation_id="op-pull")]
        assert any(p["status"] == "running" and "pulling" in p["message"] for p in progress)
        assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
        pulled = control.call(agent.name, "pull_image", ref=reference, operation_id="op-p2")
        assert pulled["ok"] and pulled["names"] == [reference]
        done = control.wait_for("operation_progress", operation_id="op-p2", status="succeeded")
        assert done.kwargs["progress"] == 100 and done.kwargs["result"]["image_id"]
    finally:
        server.stop()


def test_volumes_and_networks_are_ensured_idempotently(agents, control, host_namespaces,
                                                     redis_server):
    # In its own network namespace: the bridges it makes cannot meet anyone else's.
    agent = agents(netns=host_namespaces.add(), url=redis_server.url(host_namespaces.gateway))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: control.call(
            agent.name, "ensure_volume", name="data", labels={"team": "a"}), range(2)))
    assert sorted(r["action"] for r in results) == ["created", "unchanged"]
    net = control.call(agent.name, "ensure_network", spec={"name": "backend",
                                                           "subnet": "10.253.7.0/24"})
    assert net["action"] == "created" and net["gateway"] == "10.253.7.1"
    assert control.call(agent.name, "ensure_network", spec={"name": "backend"})["action"] == \
        "unchanged"
    # A container on a network the host lacks: made from the spec's network_specs first.
    wanted = spec(networks=["frontend"], volumes=["data:/data"],
                  network_specs={"frontend": {"name": "frontend", "subnet": "10.253.8.0/24"}})
    state = control.call(agent.name, "apply_container", spec=wanted)["state"]
    assert state["addresses"]["frontend"].startswith("10.253.8.")
    control.call(agent.name, "snapshot")
    snapshot = control.wait_for("snapshot", host=agent.name,
                                where=lambda k: len(k["networks"]) == 2).kwargs
    assert sorted(n["name"] for n in snapshot["networks"]) == ["backend", "frontend"]
    assert {"name": "data", "labels": {"team": "a"}, "anonymous": False} in snapshot["volumes"]
    in_use = control.call(agent.name, "remove_volume", name="data")
    assert not in_use["ok"] and "data" in in_use["error"]
    control.call(agent.name, "container_action", uid=wanted["uid"], action="remove")
    assert control.call(agent.name, "remove_network", name="backend")["action"] == "removed"
    assert control.call(agent.name, "remove_volume", name="data")["action"] == "removed"
    assert control.call(agent.name, "remove_volume", name="data")["action"] == "absent"
