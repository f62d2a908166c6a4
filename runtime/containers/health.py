"""One health-check probe and Docker's health state machine; scheduling is the supervisor's.

States: `starting` until the first success; `healthy` after a success; `unhealthy` once
`Retries` probes in a row failed. Failures during `StartPeriod` do not count. The last five
results are kept in `State.Health.Log`, as docker does.

Besides Docker's `CMD`/`CMD-SHELL` tests, `["TCP", "<port>"]` is a connect check made from the
host to the container's address (the way a published port reaches it): healthy once the port
accepts a connection. The stack engine gives it to replicas that share a published port and have
no health check of their own, so they take connections only once they can.

Schedule (Docker 25's): a probe every `Interval`, but every `StartInterval` while the container
is still `starting` within its `StartPeriod` (`next_interval`). Berth adds *early* probes: until
the first scheduled probe, while `starting`, it probes sooner (`EARLY_FIRST` after the start,
then at doubling gaps); an early probe that fails is neither counted nor logged, so a container
turns healthy as soon as its check can pass and never turns unhealthy sooner than in Docker.
"""

from __future__ import annotations

import socket
import subprocess
from typing import TYPE_CHECKING, Any

from runtime.containers.record import age, now_iso
from runtime.errors import ContainerNotRunning, InvalidArgument

if TYPE_CHECKING:
    from runtime.containers.manager import ContainerManager
    from runtime.containers.record import Container

DEFAULT_INTERVAL = 30_000_000_000
DEFAULT_TIMEOUT = 30_000_000_000
DEFAULT_RETRIES = 3
DEFAULT_START_INTERVAL = 5_000_000_000
EARLY_FIRST = 0.05  # seconds after the start of the first early probe; the gap then doubles
LOG_ENTRIES = 5
OUTPUT_LIMIT = 4096


def settings(healthcheck: dict[str, Any]) -> dict[str, Any]:
    """The check with docker's defaults filled in (durations in nanoseconds)."""
    return {
        "Test": list(healthcheck.get("Test") or []),
        "Interval": int(healthcheck.get("Interval") or DEFAULT_INTERVAL),
        "Timeout": int(healthcheck.get("Timeout") or DEFAULT_TIMEOUT),
        "StartPeriod": int(healthcheck.get("StartPeriod") or 0),
        "StartInterval": int(healthcheck.get("StartInterval") or DEFAULT_START_INTERVAL),
        "Retries": int(healthcheck.get("Retries") or DEFAULT_RETRIES),
    }


def next_interval(check: dict[str, Any], status: str, running_for: float) -> float:
    """Seconds until the next scheduled probe of a container `running_for` seconds old
    (`check` as `settings` returns it)."""
    if status == "starting" and running_for < check["StartPeriod"] / 1e9:
        return check["StartInterval"] / 1e9
    return check["Interval"] / 1e9


def check_test(test: list[str]) -> None:
    """InvalidArgument unless `test` is a runnable health test (or NONE)."""
    if test and test[0] == "TCP":
        port = test[1] if len(test) == 2 else ""
        if not (port.isdigit() and 0 < int(port) < 65536):
            raise InvalidArgument(f'a TCP health test is ["TCP", "<port 1-65535>"], not {test}')


def probe_command(test: list[str]) -> list[str]:
    """`CMD-SHELL x` runs `/bin/sh -c x`; `CMD a b` runs a b."""
    if not test or test[0] == "NONE":
        raise InvalidArgument("the container has no health check")
    kind, rest = test[0], test[1:]
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(rest)]
    if kind == "CMD":
        return rest
    return list(test)  # a bare command list, as some images store it


def run_healthcheck(manager: ContainerManager, ref: str, early: bool = False) -> dict[str, Any]:
    """Probe once, record the result and the new health status; returns the log entry. An
    `early` probe (module docstring) that fails records nothing."""
    container = manager.get(ref)
    if container.healthcheck is None:
        raise InvalidArgument(f"container {container.name} has no health check")
    if not container.running:
        raise ContainerNotRunning(f"container {container.name} is not running")
    check = settings(container.healthcheck)
    started = now_iso()
    if check["Test"][:1] == ["TCP"]:
        exit_code, output = _connect(container, int(check["Test"][1]), check["Timeout"] / 1e9)
    else:
        try:
            result = manager.exec(container.id, probe_command(check["Test"]), capture=True,
                                  timeout=check["Timeout"] / 1e9)
            exit_code = 0 if result.returncode == 0 else 1
            output = (result.stdout + result.stderr).decode(errors="replace")[:OUTPUT_LIMIT]
        except subprocess.TimeoutExpired:
            exit_code = -1
            output = f"Health check exceeded timeout ({check['Timeout'] / 1e9:g}s)"
    entry = {"Start": started, "End": now_iso(), "ExitCode": exit_code, "Output": output}
    if early and exit_code != 0:
        return entry
    with manager.store.lock(container.id):
        current = manager.store.load(container.id)
        if current is None or not current.running:
            return entry
        health = current.state.setdefault("Health", {"Status": "starting", "FailingStreak": 0,
                                                      "Log": []})
        before = health.get("Status")
        apply_result(health, entry, check, in_start_period=age(current.state["StartedAt"])
                     < check["StartPeriod"] / 1e9)
        manager.store.save(current)
        if health["Status"] != before and health["Status"] in ("healthy", "unhealthy"):
            # a port-group member takes connections only while healthy (ports.py)
            set_serving = getattr(manager.network, "set_serving", None)
            if set_serving is not None:
                set_serving(current, health["Status"] == "healthy")
    return entry


def _connect(container: Container, port: int, timeout: float) -> tuple[int, str]:
    """A TCP connect to the container's first address (127.0.0.1 with the host's network)."""
    networks = (container.network_settings or {}).get("Networks") or {}
    address = next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), "")
    if not address:
        if container.host_config.get("NetworkMode") != "host":
            return 1, "the container has no network address to connect to"
        address = "127.0.0.1"
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return 0, f"{address}:{port} accepts connections"
    except TimeoutError:
        return -1, f"connecting to {address}:{port} timed out ({timeout:g}s)"
    except OSError as exc:
        return 1, f"connecting to {address}:{port}: {exc.strerror or exc}"


def apply_result(health: dict[str, Any], entry: dict[str, Any], check: dict[str, Any],
                 in_start_period: bool) -> None:
    """Docker's transition for one probe result."""
    health["Log"] = [*health.get("Log", []), entry][-LOG_ENTRIES:]
    if entry["ExitCode"] == 0:
        health["Status"] = "healthy"
        health["FailingStreak"] = 0
        return
    if in_start_period and health.get("Status") == "starting":
        return
    health["FailingStreak"] = int(health.get("FailingStreak", 0)) + 1
    if health["FailingStreak"] >= check["Retries"]:
        health["Status"] = "unhealthy"
