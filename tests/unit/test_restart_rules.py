"""Docker's restart decision and back-off, without containers."""

from __future__ import annotations

from pathlib import Path

from runtime.containers.record import EXITED, Container, new_state
from runtime.supervisor import BACKOFF_MAX, BACKOFF_START, next_delay, wants_restart


def exited(policy: str, exit_code: int, restarts: int = 0, stopped: bool = False,
           max_retries: int = 0) -> Container:
    state = new_state()
    state.update(Status=EXITED, ExitCode=exit_code)
    return Container(
        id="a" * 64, name="c", created="", image_id="", image_ref="", config={},
        host_config={"RestartPolicy": {"Name": policy, "MaximumRetryCount": max_retries}},
        mounts=[], state=state, restart_count=restarts, manually_stopped=stopped,
        directory=Path("/nonexistent"),
    )


def test_no_policy_never_restarts():
    assert not wants_restart(exited("no", 1))


def test_always_restarts_after_success_and_failure_but_not_after_stop():
    assert wants_restart(exited("always", 0))
    assert wants_restart(exited("always", 137))
    assert not wants_restart(exited("always", 0, stopped=True))


def test_unless_stopped_restarts_until_stopped_by_hand():
    assert wants_restart(exited("unless-stopped", 2))
    assert not wants_restart(exited("unless-stopped", 2, stopped=True))


def test_on_failure_restarts_only_failures_up_to_the_limit():
    assert not wants_restart(exited("on-failure", 0))
    assert wants_restart(exited("on-failure", 1))
    assert wants_restart(exited("on-failure", 1, restarts=1, max_retries=2))
    assert not wants_restart(exited("on-failure", 1, restarts=2, max_retries=2))
    assert wants_restart(exited("on-failure", 1, restarts=50, max_retries=0))


def test_backoff_doubles_from_100ms_to_one_minute():
    delays = []
    previous = None
    for _ in range(14):
        previous = next_delay(previous, ran_for=0.5)
        delays.append(previous)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == BACKOFF_MAX
    assert all(b == min(a * 2, BACKOFF_MAX) for a, b in zip(delays, delays[1:], strict=False))


def test_backoff_resets_after_ten_seconds_of_running():
    assert next_delay(12.8, ran_for=10.0) == BACKOFF_START
    assert next_delay(12.8, ran_for=9.9) == 25.6
