"""Restart policies and scheduled health checks with real containers and a real Supervisor."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from runtime.containers.options import HealthOptions, RunOptions
from runtime.supervisor import Supervisor

pytestmark = pytest.mark.root


def until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def supervisor(host) -> Iterator[Supervisor]:
    sup = Supervisor(host)
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    yield sup
    sup.stop()
    thread.join(10)


def run(host, *command: str, **options):
    return host.containers.run(RunOptions(image="busybox", command=list(command), **options))


def test_on_failure_restarts_up_to_the_limit_then_stays_exited(host, supervisor):
    container = run(host, "sh", "-c", "exit 3", restart="on-failure:2")
    final = until(lambda: (c := host.containers.get(container.id)).restart_count == 2
                  and not c.running and c)
    time.sleep(1.0)  # a third restart would come after 0.4 s of back-off
    final = host.containers.get(container.id)
    assert (final.restart_count, final.status, final.state["ExitCode"]) == (2, "exited", 3)


def test_on_failure_does_not_restart_a_clean_exit(host, supervisor):
    container = run(host, "true", restart="on-failure")
    until(lambda: host.containers.get(container.id).status == "exited")
    time.sleep(0.5)
    assert host.containers.get(container.id).restart_count == 0


def test_always_restarts_with_growing_backoff(host, supervisor):
    container = run(host, "true", restart="always")
    until(lambda: host.containers.get(container.id).restart_count >= 3)
    host.containers.stop(container.id, timeout=1)
    count = host.containers.get(container.id).restart_count
    time.sleep(1.0)
    stopped = host.containers.get(container.id)
    assert not stopped.running and stopped.restart_count == count  # stop wins over always
    # the delays the supervisor chose double: 0.1, 0.2, 0.4 …
    assert supervisor.delays[container.id] >= 0.4


def test_a_container_waiting_for_its_restart_shows_restarting_until_stopped(host, supervisor):
    from runtime.cli.containers import status_text
    from runtime.errors import Conflict

    container = run(host, "sh", "-c", "exit 3", restart="always")
    # after a few quick exits the back-off is long enough to catch it waiting
    waiting = until(lambda: (c := host.containers.get(container.id)).restart_count >= 4
                    and c.status == "restarting" and c)
    assert waiting.state["Restarting"] is True and not waiting.running
    assert status_text(waiting).startswith("Restarting (3) ")
    assert container.id in [c.id for c in host.containers.list()]  # ps shows it, as docker's
    with pytest.raises(Conflict, match="restarting container"):
        host.containers.remove(container.id)
    stopped = host.containers.stop(container.id)
    count = stopped.restart_count
    assert (stopped.status, stopped.state["Restarting"]) == ("exited", False)
    time.sleep(2.0)  # longer than the back-off it was in
    assert host.containers.get(container.id).restart_count == count


def test_unless_stopped_restarts_a_killed_container(host, supervisor):
    container = run(host, "sleep", "30", restart="unless-stopped")
    host.containers.kill(container.id, "KILL")
    restarted = until(lambda: (c := host.containers.get(container.id)).running
                      and c.restart_count == 1 and c)
    assert restarted.state["Pid"] != container.state["Pid"]


def test_no_policy_leaves_the_container_exited(host, supervisor):
    container = run(host, "sh", "-c", "exit 1")
    until(lambda: host.containers.get(container.id).status == "exited")
    time.sleep(0.5)
    assert host.containers.get(container.id).restart_count == 0


def test_scheduled_health_checks_reach_healthy_and_unhealthy(host, supervisor):
    container = run(host, "sleep", "30", health=HealthOptions(
        test=["CMD-SHELL", "test -f /tmp/ok"], interval=200_000_000, retries=2,
        timeout=2_000_000_000))
    unhealthy = until(lambda: host.containers.get(container.id).state["Health"]["Status"]
                      == "unhealthy")
    assert unhealthy
    host.containers.exec(container.id, ["touch", "/tmp/ok"])
    until(lambda: host.containers.get(container.id).state["Health"]["Status"] == "healthy")


def test_start_period_failures_do_not_count(host, supervisor):
    # within the start period the probes come every start interval (Docker 25), here 0.1 s
    # instead of the 60 s interval
    container = run(host, "sleep", "30", health=HealthOptions(
        test=["CMD", "false"], interval=60_000_000_000, retries=1,
        start_period=30_000_000_000, start_interval=100_000_000))
    until(lambda: len(host.containers.get(container.id).state["Health"]["Log"]) >= 3)
    assert host.containers.get(container.id).state["Health"]["Status"] == "starting"


def test_early_probes_make_a_ready_container_healthy_before_the_first_interval(host, supervisor):
    container = run(host, "sh", "-c", "sleep 0.3; touch /tmp/ok; exec sleep 30",
                    health=HealthOptions(test=["CMD", "test", "-f", "/tmp/ok"],
                                         interval=600_000_000_000, retries=1))
    healthy = until(lambda: (c := host.containers.get(container.id)).state["Health"]["Status"]
                    == "healthy" and c)
    # the early probes that failed before /tmp/ok existed left no trace and no failing streak
    assert [entry["ExitCode"] for entry in healthy.state["Health"]["Log"]] == [0]
    assert healthy.state["Health"]["FailingStreak"] == 0


def test_a_tcp_check_turns_healthy_once_the_port_accepts_connections(host, supervisor):
    container = run(host, "sh", "-c", "sleep 0.5; exec httpd -f -p 8080", health=HealthOptions(
        test=["TCP", "8080"], interval=200_000_000, retries=100))
    healthy = until(lambda: (c := host.containers.get(container.id)).state["Health"]["Status"]
                    == "healthy" and c)
    assert healthy.state["Health"]["Log"][-1]["Output"].endswith(":8080 accepts connections")
    host.containers.kill(container.id)


def test_a_tcp_check_needs_a_port(host):
    from runtime.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=r'\["TCP", "<port 1-65535>"\]'):
        run(host, "sleep", "1", health=HealthOptions(test=["TCP", "http"]))
    assert host.containers.list(all=True) == []


def test_failing_early_probes_never_make_a_container_unhealthy(host, supervisor):
    container = run(host, "sleep", "30", health=HealthOptions(
        test=["CMD", "false"], interval=600_000_000_000, retries=1))
    probes = []
    original = host.containers.run_healthcheck

    def counting(ref: str, early: bool = False):
        probes.append(early)
        return original(ref, early)

    host.containers.run_healthcheck = counting
    until(lambda: len(probes) >= 4)  # 0.05, 0.1, 0.2, 0.4 s after the start
    health = host.containers.get(container.id).state["Health"]
    assert all(probes) and health["Status"] == "starting" and health["Log"] == []


def test_cli_starts_a_background_supervisor_for_restart_policies(cli, berth_root):
    from runtime.host import Host
    from runtime.images.bootstrap import bootstrap_busybox
    from runtime.supervisor import pidfile

    bootstrap_busybox(Host(berth_root).images)
    cid = cli("run", "-d", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2").stdout.strip()
    until(lambda: pidfile(berth_root).exists())
    until(lambda: Host(berth_root).containers.get(cid).restart_count >= 2)
    cli("rm", "-f", cid)


def test_boot_starts_always_even_after_a_manual_stop_and_unless_stopped_only_if_not(host):
    always = run(host, "sleep", "30", restart="always", name="always")
    stopped_by_hand = run(host, "sleep", "30", restart="unless-stopped", name="by-hand")
    crashed = run(host, "sleep", "30", restart="unless-stopped", name="crashed")
    failed = run(host, "sh", "-c", "exit 2", restart="on-failure:3", name="failed")
    plain = run(host, "sleep", "30", name="plain")
    never_started = host.containers.create(RunOptions(image="busybox", command=["true"],
                                                      restart="always", name="created"))
    host.containers.stop(always.id, timeout=0)
    host.containers.stop(stopped_by_hand.id, timeout=0)
    host.containers.kill(crashed.id, "KILL")  # as a reboot would end it: not by hand
    host.containers.kill(plain.id, "KILL")
    host.containers.wait(failed.id, timeout=30)
    # what the restarted daemon (the agent) does before it starts supervising
    started = Supervisor(host).boot()
    assert sorted(started) == ["always", "crashed", "failed"]
    states = {c.name: c.status for c in host.containers.list(all=True)}
    assert states["always"] == states["crashed"] == "running"
    assert states["by-hand"] == states["plain"] == "exited" and states["created"] == "created"
    assert not host.containers.get(always.id).manually_stopped  # a boot start is a fresh start
    for container in (always, stopped_by_hand, crashed, failed, plain, never_started):
        host.containers.remove(container.id, force=True)
