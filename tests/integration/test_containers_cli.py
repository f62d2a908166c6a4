"""`berth-runtime` container verbs as a user types them, each call a separate process."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.root


@pytest.fixture
def busybox(cli):
    cli("image", "bootstrap", "busybox")


def test_run_attached_prints_output_and_exits_with_the_containers_code(cli, busybox):
    result = cli("run", "--rm", "busybox", "sh", "-c", "echo to-out; echo to-err >&2; exit 7",
                 check=False)
    assert result.returncode == 7
    assert result.stdout == "to-out\n" and result.stderr == "to-err\n"
    assert cli("ps", "-a", "-q").stdout == ""  # --rm removed it


def test_detached_run_then_logs_with_tail_and_timestamps(cli, busybox):
    container_id = cli("run", "-d", "--name", "printer", "busybox", "sh", "-c",
                       "for i in 1 2 3 4; do echo line$i; done").stdout.strip()
    assert len(container_id) == 64
    assert cli("wait", "printer").stdout == "0\n"
    assert cli("logs", "printer").stdout == "line1\nline2\nline3\nline4\n"
    tail = cli("logs", "--tail", "2", "--timestamps", container_id[:12]).stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in tail] == ["line3", "line4"]
    assert tail[0][:4].isdigit() and "T" in tail[0].split(" ")[0]
    assert cli("logs", "--since", "1h", "printer").stdout.count("line") == 4


def test_a_new_process_sees_the_running_container_and_stops_it(cli, busybox):
    cli("run", "-d", "--name", "sleeper", "--label", "team=a", "--stop-timeout", "1",
        "busybox", "sleep", "30")
    ps = cli("ps", "--filter", "label=team=a").stdout.splitlines()
    assert ps[0].split()[:2] == ["CONTAINER", "ID"] and "sleeper" in ps[1] and "Up " in ps[1]
    assert cli("ps", "--filter", "label=team=b", "-q").stdout == ""
    inspected = json.loads(cli("inspect", "sleeper").stdout)[0]
    assert inspected["State"]["Running"] is True and inspected["Name"] == "/sleeper"
    assert inspected["Config"]["Labels"] == {"team": "a"}
    assert cli("exec", "sleeper", "sh", "-c", "exit 3", check=False).returncode == 3
    assert cli("stop", "sleeper").stdout == "sleeper\n"
    inspected = json.loads(cli("inspect", "sleeper").stdout)[0]
    assert inspected["State"]["Status"] == "exited" and inspected["State"]["ExitCode"] == 137
    assert "Exited (137)" in cli("ps", "-a").stdout
    cli("rm", "sleeper")


def test_stats_no_stream_prints_one_row_per_container(cli, busybox):
    cli("run", "-d", "--name", "busy", "--memory", "32m", "busybox", "sleep", "30")
    table = cli("stats", "--no-stream").stdout.splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    assert "busy" in table[1] and "/ 32MiB" in table[1]
    cli("rm", "-f", "busy")


def test_bad_flags_fail_with_a_message_and_leave_nothing(cli, busybox):
    result = cli("run", "--memory", "lots", "busybox", "true", check=False)
    assert result.returncode == 125 and "--memory" in result.stderr
    result = cli("run", "-d", "-v", "/nonexistent/path:/x", "busybox", "true", check=False)
    assert result.returncode == 125 and "does not exist" in result.stderr
    assert cli("ps", "-a", "-q").stdout == ""
    result = cli("rm", "nosuch", check=False)
    assert result.returncode == 1 and "no such container" in result.stderr


def test_a_detached_rm_container_is_removed_as_soon_as_it_exits(cli, busybox, berth_root):
    import time

    from runtime.supervisor import pidfile

    container_id = cli("run", "-d", "--rm", "-v", "/scratch", "busybox", "sh", "-c",
                       "sleep 0.2").stdout.strip()
    record = berth_root / "containers" / container_id
    deadline = time.monotonic() + 15
    while record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    # nobody looked at it: conmon's exit command removed it, and its anonymous volume
    assert not record.exists() and not pidfile(berth_root).exists()
    assert cli("volume", "ls", "-q").stdout == ""


def test_logs_timestamps_are_rfc3339_nano_in_utc(cli, busybox):
    cli("run", "--name", "stamp", "busybox", "echo", "hi")
    stamp, text = cli("logs", "-t", "stamp").stdout.rstrip("\n").split(" ", 1)
    assert text == "hi" and stamp.endswith("Z") and len(stamp.split(".")[1]) == 10
