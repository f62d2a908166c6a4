"""Containers through the Python API (`host.containers`), with real runc, conmon and overlayfs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runtime.containers.options import HealthOptions, RunOptions
from runtime.errors import Conflict, ContainerNotRunning, InvalidArgument, NotFound, RuntimeFailure

pytestmark = pytest.mark.root


def run(host, *command: str, **options):
    return host.containers.run(RunOptions(image="busybox", command=list(command), **options))


def output(host, container) -> str:
    return "".join(line.split(" ", 3)[3] + "\n"
                   for line in container.log_path.read_text().splitlines())


def exec_out(host, container, script: str) -> str:
    result = host.containers.exec(container.id, ["sh", "-c", script], capture=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def process_state(host, container, pid: str) -> str:
    """The state letter (R, S, Z…) of process `pid` in the container, "" once it is gone."""
    return exec_out(host, container, f"cat /proc/{pid}/stat 2>/dev/null | cut -d' ' -f3 "
                                     "|| true").strip()


def until(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_run_records_output_and_exit_code(host):
    container = run(host, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert host.containers.wait(container.id) == 3
    lines = container.log_path.read_text().splitlines()
    assert [line.split(" ", 3)[1:] for line in lines] == [["stdout", "F", "out"],
                                                            ["stderr", "F", "err"]]
    state = host.containers.get(container.name).state
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 3, False)


def test_state_survives_a_new_manager_and_it_can_stop_the_container(host, berth_root):
    from runtime.host import Host

    container = run(host, "sleep", "30", stop_timeout=1)
    fresh = Host(berth_root).containers
    seen = fresh.get(container.short_id)
    assert seen.running and seen.state["Pid"] == container.state["Pid"]
    assert [c.name for c in fresh.list()] == [container.name]
    stopped = fresh.stop(container.name)
    assert stopped.state["Status"] == "exited"
    assert host.containers.get(container.id).state["ExitCode"] == 137


def test_exit_is_noticed_and_cleaned_up_after_the_fact(host):
    container = run(host, "true")
    until(lambda: (host.containers.store.exit_dir / container.id).exists())
    seen = host.containers.get(container.id)
    assert seen.state["Status"] == "exited" and seen.state["ExitCode"] == 0
    assert not os.path.ismount(seen.rootfs)
    assert host.containers.runtime_for(seen).state(seen.id) is None


def test_stop_sends_sigkill_after_the_timeout_when_sigterm_is_ignored(host):
    container = run(host, "sh", "-c", "trap '' TERM; echo trap-ready; "
                    "while true; do sleep 0.1; done")
    until(lambda: "trap-ready" in output(host, container))
    started = time.monotonic()
    stopped = host.containers.stop(container.id, timeout=1)
    assert time.monotonic() - started >= 1.0
    assert stopped.state["ExitCode"] == 137 and not stopped.state["OOMKilled"]


def test_a_pid_1_without_a_sigterm_handler_is_killed_and_the_note_says_why(host):
    container = run(host, "sleep", "600")  # sleep installs no handler; as PID 1 TERM is dropped
    # the stop must find sleep itself as PID 1 (not runc's init, a Go program, before its exec)
    until(lambda: exec_out(host, container, "cat /proc/1/comm").strip() == "sleep")
    stopped = host.containers.stop(container.id, timeout=1)
    assert stopped.state["ExitCode"] == 137
    note = stopped.state["StopNote"]
    assert "SIGKILL after 1s" in note and "PID 1 and has no SIGTERM handler" in note
    assert "set init: true" in note
    assert not host.containers.start(container.id).state.get("StopNote")  # a new start
    host.containers.stop(container.id, timeout=0)


def test_a_pid_1_ignoring_sigterm_gets_its_own_note(host):
    container = run(host, "sh", "-c", "trap '' TERM; echo trap-ready; "
                    "while true; do sleep 0.1; done")
    until(lambda: "trap-ready" in output(host, container))
    note = host.containers.stop(container.id, timeout=1).state["StopNote"]
    assert "ignores SIGTERM" in note and "set init: true" in note


def test_with_init_sigterm_reaches_the_process_and_no_note_is_left(host):
    container = run(host, "sleep", "600", init=True)
    # init forwards signals once it runs sleep as its child; a TERM before that would be dropped
    until(lambda: exec_out(host, container, "pidof sleep || true").strip())
    stopped = host.containers.stop(container.id, timeout=20)
    assert stopped.state["ExitCode"] != 137 and not stopped.state.get("StopNote")


def test_stop_uses_the_stop_signal_and_a_handler_exits_cleanly(host):
    container = run(host, "sh", "-c", "trap 'exit 42' USR1; echo trap-ready; "
                    "while true; do sleep 0.1; done", stop_signal="USR1")
    until(lambda: "trap-ready" in output(host, container))  # see test_kill_sends_the_given_signal
    assert host.containers.stop(container.id, timeout=10).state["ExitCode"] == 42


def test_kill_sends_the_given_signal(host):
    # PID 1 of a namespace drops a signal it has no handler for: the kill waits until the shell
    # says its trap is installed (on a busy machine the shell may not have run yet).
    container = run(host, "sh", "-c", "trap 'echo got-usr2; exit 5' USR2; echo trap-ready; "
                    "while true; do sleep 0.1; done")
    until(lambda: "trap-ready" in output(host, container))
    host.containers.kill(container.name, "SIGUSR2")
    assert host.containers.wait(container.id, timeout=10) == 5
    assert "got-usr2" in output(host, container)
    with pytest.raises(ContainerNotRunning):
        host.containers.kill(container.name, "KILL")


def test_restart_runs_the_container_again(host):
    container = run(host, "sh", "-c", "echo started; sleep 30", stop_timeout=0)
    first_pid = container.state["Pid"]
    restarted = host.containers.restart(container.id, timeout=0)
    assert restarted.running and restarted.state["Pid"] != first_pid
    until(lambda: output(host, container).count("started") == 2)


def test_rm_refuses_a_running_container_unless_forced(host):
    container = run(host, "sleep", "30")
    with pytest.raises(Conflict, match="rm -f"):
        host.containers.remove(container.id)
    host.containers.remove(container.name, force=True)
    assert not container.directory.exists()
    assert not os.path.ismount(container.rootfs)
    with pytest.raises(NotFound):
        host.containers.get(container.id)


def test_exec_passes_the_exit_code_through(host):
    container = run(host, "sleep", "30")
    result = host.containers.exec(container.id, ["sh", "-c", "echo $0 in $(pwd); exit 9"],
                                  capture=True, workdir="/tmp")
    assert result.returncode == 9
    assert result.stdout.decode().strip() == "sh in /tmp"
    host.containers.remove(container.id, force=True)


def test_limits_are_applied_in_the_cgroup_and_stats_are_plausible(host):
    container = run(host, "sh", "-c", "sleep 30 & sleep 30 & wait", memory="64m", cpus="0.5",
                    pids_limit=50)
    assert exec_out(host, container, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes").strip() \
        == str(64 * 1024 * 1024)
    assert exec_out(host, container, "cat /sys/fs/cgroup/pids/pids.max").strip() == "50"
    assert exec_out(host, container, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us").strip() \
        == "50000"
    stats = host.containers.stats(container.id, interval=0.1)
    assert stats.memory_limit == 64 * 1024 * 1024
    assert 0 < stats.memory_usage < stats.memory_limit
    assert stats.pids == 3
    assert 0.0 <= stats.cpu_percent <= 100.0 * (os.cpu_count() or 1)


def test_secure_defaults_are_visible_from_inside(host):
    container = run(host, "sleep", "30")
    status = exec_out(host, container, "cat /proc/self/status")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert int(fields["CapEff"], 16) == 0xA80425FB  # docker's default set
    assert fields["NoNewPrivs"].strip() == "1"
    # masked paths read as empty (/proc/kcore is masked too, but this kernel has none)
    for masked in ("/proc/kcore", "/proc/keys", "/proc/timer_list"):
        if os.path.exists(masked):
            assert exec_out(host, container, f"wc -c < {masked}").strip() == "0", masked
    denied = host.containers.exec(
        container.id, ["sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid"], capture=True)
    assert denied.returncode != 0
    assert exec_out(host, container, "ulimit -n").strip() == "1024"
    assert exec_out(host, container, "cat /sys/fs/cgroup/pids/pids.max").strip() == "2048"
    assert exec_out(host, container, "ip -o link | wc -l").strip() == "2"  # lo + eth0 (berth)
    assert exec_out(host, container, "cat /etc/hostname").strip() == container.short_id


def test_init_runs_tini_as_pid_1_and_reaps_zombies(host):
    container = run(host, "sleep", "30", init=True)
    assert exec_out(host, container, "cat /proc/1/cmdline | tr '\\0' ' '").startswith(
        "/dev/init -s -- sleep 30")
    # an orphan is re-parented to PID 1 and must be reaped when it exits: a zombie keeps its
    # /proc entry, so the entry going away is the reaping (however slow the machine)
    orphan = exec_out(host, container, "sleep 0.2 >/dev/null 2>&1 & echo $!").strip()
    until(lambda: process_state(host, container, orphan) == "", timeout=30)
    assert host.containers.stop(container.id, timeout=5).state["ExitCode"] == 143


def test_without_init_an_orphan_stays_a_zombie(host):
    container = run(host, "sleep", "30")
    orphan = exec_out(host, container, "sleep 0.2 >/dev/null 2>&1 & echo $!").strip()
    # the orphan exits after 0.2 s (later on a busy machine) and sleep, its new parent, never
    # reaps it: it stays a zombie
    until(lambda: process_state(host, container, orphan) == "Z", timeout=30)
    assert process_state(host, container, orphan) == "Z"


def test_oom_kill_is_reported_as_oomkilled_with_exit_137(host):
    container = run(host, "tail", "/dev/zero", memory="16m")
    assert host.containers.wait(container.id, timeout=30) == 137
    state = host.containers.get(container.id).state
    assert state["OOMKilled"] is True and state["ExitCode"] == 137


def test_image_config_is_honoured(host):
    from runtime.images.builder import image_from_layers

    base = host.images.get("busybox")
    layer = host.images.read_blob(base.layers[0].digest)
    image_from_layers(host.images, [layer], {
        "Env": ["PATH=/bin", "GREETING=hello"], "WorkingDir": "/srv/app",
        "Entrypoint": ["sh", "-c"], "Cmd": ['echo "$GREETING from $(pwd) as $(id -u):$(id -g)"'],
        "User": "daemon", "StopSignal": "SIGUSR1", "Volumes": {"/data": {}},
        "Labels": {"from": "image"},
    }, tags=["configured:latest"])
    container = host.containers.run(RunOptions(image="configured"))
    assert host.containers.wait(container.id) == 0
    assert output(host, container) == "hello from /srv/app as 1:1\n"
    record = host.containers.get(container.id)
    assert record.config["StopSignal"] == "SIGUSR1" and record.labels == {"from": "image"}
    anonymous = [m for m in record.mounts if m["Destination"] == "/data"]
    assert anonymous and anonymous[0]["Type"] == "volume"
    overridden = host.containers.run(RunOptions(
        image="configured", command=["echo $GREETING"], env=["GREETING=bye"], user="0"))
    assert host.containers.wait(overridden.id) == 0
    assert output(host, overridden) == "bye\n"
    entry = host.containers.run(RunOptions(image="configured", entrypoint="pwd"))
    host.containers.wait(entry.id)
    assert output(host, entry) == "/srv/app\n"
    for c in (container, overridden, entry):
        host.containers.remove(c.id, volumes=True)


def test_read_only_rootfs_refuses_writes_but_keeps_volumes_writable(host):
    container = run(host, "sh", "-c", "touch /x 2>/dev/null && exit 1; touch /data/ok",
                    read_only=True, volumes=["rodata:/data"])
    assert host.containers.wait(container.id) == 0


def test_a_named_volume_is_shared_and_its_users_are_known(host):
    writer = run(host, "sh", "-c", "echo shared > /data/file", volumes=["shared:/data"])
    assert host.containers.wait(writer.id) == 0
    reader = run(host, "cat", "/data/file", volumes=["shared:/data:ro"], name="reader")
    assert host.containers.wait(reader.id) == 0
    assert output(host, reader) == "shared\n"
    assert host.containers.users_of_volume("shared") == sorted([writer.name, "reader"])


def test_bind_mounts_need_an_existing_host_path(host, tmp_path):
    (tmp_path / "in.txt").write_text("from host\n")
    container = run(host, "cat", "/mnt/in.txt", volumes=[f"{tmp_path}:/mnt:ro"])
    assert host.containers.wait(container.id) == 0
    assert output(host, container) == "from host\n"


def test_a_failed_run_rolls_back_everything(host, tmp_path, monkeypatch):
    import secrets

    from runtime.containers import manager

    containers_dir = host.root / "containers"
    ids: list[str] = []
    token_hex = secrets.token_hex

    def recorded_token(size: int) -> str:
        ids.append(token_hex(size))
        return ids[-1]

    monkeypatch.setattr(manager.secrets, "token_hex", recorded_token)

    def leftovers():
        return [p for p in containers_dir.iterdir() if not p.name.startswith(".")] \
            if containers_dir.exists() else []

    with pytest.raises(NotFound):
        host.containers.run(RunOptions(image="nosuchimage", command=["true"]))
    with pytest.raises(InvalidArgument, match="--memory"):
        run(host, "true", memory="lots")
    with pytest.raises(InvalidArgument, match="does not exist"):
        run(host, "true", volumes=["fresh:/a", f"{tmp_path}/missing:/b"])
    with pytest.raises(RuntimeFailure, match="nosuchcommand") as failure:
        run(host, "nosuchcommand", volumes=["fresh2:/a"], name="named-once")
    assert failure.value.exit_code == 127
    assert leftovers() == []
    assert host.containers.store.name_owner("named-once") is None  # the name is free again
    assert not (containers_dir / ".names" / "named-once").exists()
    assert not host.volumes.exists("fresh") and not host.volumes.exists("fresh2")
    mounts = Path("/proc/mounts").read_text()
    assert str(host.root) not in mounts
    # no cgroup of the containers tried here (other roots may run containers meanwhile)
    assert ids and not [i for i in ids if list(Path("/sys/fs/cgroup").glob(f"*/*/berth-{i}"))]


def test_names_are_unique_and_ids_resolve_by_prefix(host):
    container = host.containers.create(RunOptions(image="busybox", command=["true"], name="web"))
    assert container.status == "created" and len(container.id) == 64
    with pytest.raises(Conflict, match="already in use"):
        host.containers.create(RunOptions(image="busybox", command=["true"], name="web"))
    assert host.containers.get(container.id[:8]).name == "web"
    generated = host.containers.create(RunOptions(image="busybox", command=["true"]))
    assert "_" in generated.name
    assert host.containers.start("web").running or host.containers.wait("web") == 0


def test_image_removal_is_refused_while_a_container_uses_it(host):
    container = host.containers.create(RunOptions(image="busybox", command=["true"], name="user"))
    assert host.containers.users_of_image(container.image_id) == ["user"]
    with pytest.raises(Conflict, match="user"):
        host.images.remove("busybox:latest", users=host.containers.users_of_image)


def test_health_check_goes_from_starting_to_unhealthy_and_healthy(host):
    container = run(host, "sleep", "30", health=HealthOptions(
        test=["CMD-SHELL", "test -f /tmp/ok"], retries=2, timeout=5_000_000_000))
    assert host.containers.get(container.id).state["Health"]["Status"] == "starting"
    host.containers.run_healthcheck(container.id)
    host.containers.run_healthcheck(container.id)
    health = host.containers.get(container.id).state["Health"]
    assert (health["Status"], health["FailingStreak"]) == ("unhealthy", 2)
    exec_out(host, container, "touch /tmp/ok")
    assert host.containers.run_healthcheck(container.id)["ExitCode"] == 0
    health = host.containers.get(container.id).state["Health"]
    assert (health["Status"], health["FailingStreak"], len(health["Log"])) == ("healthy", 0, 3)


def test_list_filters_by_label_and_state(host):
    labelled = run(host, "sleep", "30", labels=["tier=web"])
    host.containers.create(RunOptions(image="busybox", command=["true"], labels=["tier=db"]))
    assert [c.id for c in host.containers.list(labels={"tier": "web"})] == [labelled.id]
    assert len(host.containers.list(all=True)) == 2
    assert len(host.containers.list(all=True, labels={"tier": None})) == 2
