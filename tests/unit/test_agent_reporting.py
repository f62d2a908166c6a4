"""The agent's pure parts: the events a state change makes; the spec <-> RunOptions mapping."""

from __future__ import annotations

import pytest

from runtime.agent.main import parse_labels
from runtime.agent.reporter import _stale, transitions
from runtime.agent.specs import run_options, validate_spec
from runtime.errors import InvalidArgument
from runtime.protocol import GENERATION_LABEL, UID_LABEL

ZERO = "0001-01-01T00:00:00Z"


def state(status: str = "running", started: str = "2026-01-01T00:00:01.000000000Z",
          finished: str = ZERO, restarts: int = 0, health: str = "", oom: bool = False,
          code: int = 0) -> dict:
    return {"uid": "u", "status": status, "started_at": started, "finished_at": finished,
            "restart_count": restarts, "health": health, "oom_killed": oom, "exit_code": code}


def test_a_new_running_container_is_created_and_started():
    assert transitions(None, state()) == ["created", "started"]


def test_a_container_seen_only_after_it_exited_reports_its_whole_life():
    exited = state("exited", finished="2026-01-01T00:00:02.000000000Z", code=3)
    assert transitions(None, exited) == ["created", "started", "exited"]
    assert transitions(None, state("created", started=ZERO)) == ["created"]


def test_an_exit_then_a_policy_restart_then_an_oom():
    running = state()
    exited = state("exited", finished="2026-01-01T00:00:02.000000000Z", code=1)
    again = state(started="2026-01-01T00:00:03.000000000Z", restarts=1)
    oom = state("exited", started=again["started_at"], finished="2026-01-01T00:00:04.0Z",
                restarts=1, oom=True, code=137)
    assert transitions(running, exited) == ["exited"]
    assert transitions(exited, again) == ["restarted"]
    assert transitions(again, oom) == ["oom", "exited"]


def test_an_exit_seen_during_the_restart_back_off_is_an_exit():
    """A scan may read the record the supervisor already marked restarting before the exit
    its hook queued is sent: the exit must not get lost in between."""
    running = state()
    backing_off = state("restarting", finished="2026-01-01T00:00:02.000000000Z", code=2)
    exited = backing_off | {"status": "exited"}
    again = state(started="2026-01-01T00:00:03.000000000Z", restarts=1)
    assert transitions(running, backing_off) == ["exited"]
    assert transitions(exited, backing_off) == ["restarting"]  # the exit was told before
    # stopped during the back-off: the panel must learn that no restart comes
    assert transitions(backing_off, exited) == ["exited"]
    # but the exit the hook queued, arriving after the scan told it, is not told twice
    assert _stale(backing_off, exited) and not _stale(running, exited)
    assert transitions(backing_off, again) == ["restarted"]
    assert transitions(None, backing_off) == ["created", "started", "exited"]


def test_a_missed_exit_between_two_scans_is_a_restart():
    assert transitions(state(), state(started="2026-01-01T00:00:09.000000000Z")) == ["restarted"]


def test_a_manual_start_after_a_stop_is_started():
    stopped = state("exited", finished="2026-01-01T00:00:02.000000000Z")
    assert transitions(stopped, state(started="2026-01-01T00:00:05.000000000Z")) == ["started"]


def test_health_changes_are_events_and_nothing_else_is():
    assert transitions(state(health="starting"), state(health="healthy")) == ["health"]
    assert transitions(state(), state() | {"pid": 42}) == []


def test_run_options_stamp_uid_and_generation_labels():
    options = run_options({"uid": "abc", "image": "busybox", "generation": 7, "name": "web",
                           "memory": 64 * 1024 * 1024, "cpus": 0.5, "ports": ["8080:80"],
                           "entrypoint": ["sh", "-c"], "labels": {"app": "web"},
                           "healthcheck": {"test": ["CMD", "true"], "interval": 10**9,
                                           "timeout": 0, "start_period": 0, "retries": 3}})
    assert options.labels == {"app": "web", UID_LABEL: "abc", GENERATION_LABEL: "7"}
    assert options.publish == ["8080:80"] and options.entrypoint == ["sh", "-c"]
    assert options.health is not None and options.health.retries == 3


@pytest.mark.parametrize(("bad", "field"), [
    ({"image": "busybox"}, "spec.uid"),
    ({"uid": "u"}, "spec.image"),
    ({"uid": "u", "image": "busybox", "generation": -1}, "spec.generation"),
    ({"uid": "u", "image": "busybox", "desired": "paused"}, "spec.desired"),
    ({"uid": "u", "image": "busybox", "command": "sleep 1"}, "spec.command"),
])
def test_invalid_specs_name_the_field(bad: dict, field: str):
    with pytest.raises(InvalidArgument, match=field):
        validate_spec(bad)


def test_host_labels_parse_and_reject_entries_without_a_value():
    assert parse_labels("zone=a, disk=ssd") == {"zone": "a", "disk": "ssd"}
    with pytest.raises(ValueError, match="'zone'"):
        parse_labels("zone")
