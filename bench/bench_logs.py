"""Logs: a container writes LINES numbered lines as fast as it can (busybox `seq 1 LINES`);
after it exits, the log is read back and must hold exactly `1\\n2\\n…LINES\\n`: every line, in
order (count, first out-of-place line and a sha256 of the whole text against the expected one).

Berth's log is conmon's k8s-file, read back two ways: in-process through
`runtime.containers.logs.read_entries` (what the agent and `berth-runtime logs` use, partial `P`
records joined) and through the `berth-runtime logs` command itself. The peer is podman with the
same command and `--log-driver k8s-file`, read back with `podman logs`. Both run with
`--network none`: networking is not what is measured here.

Rates: lines/s captured from the container's start to its exit (as each engine records them),
lines/s from the run call until `wait` returns, and lines/s read back. Medians of
`BENCH_LOG_RUNS` runs (default 3); `BENCH_LOG_LINES` sets LINES (default 1,000,000)."""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ratio
from bench.peers import Podman
from runtime.containers.logs import format_entry, read_entries
from runtime.containers.options import RunOptions
from runtime.containers.record import parse_iso
from runtime.host import Host
from runtime.images.bootstrap import bootstrap_busybox

LINES = int(os.environ.get("BENCH_LOG_LINES", "1000000"))
RUNS = int(os.environ.get("BENCH_LOG_RUNS", "3"))
COMMAND = ("seq", "1", str(LINES))
BERTH_RUNTIME = [sys.executable, "-m", "runtime"]


def expected_output(lines: int) -> bytes:
    """What `seq 1 LINES` prints."""
    return "".join(f"{i}\n" for i in range(1, lines + 1)).encode()


def verify(output: bytes, expected: bytes) -> dict[str, Any]:
    """Count, order and checksum of `output` against the expected text."""
    result: dict[str, Any] = {
        "lines": output.count(b"\n"),
        "sha256_match": hashlib.sha256(output).digest() == hashlib.sha256(expected).digest(),
    }
    result["complete_and_in_order"] = output == expected
    if output != expected:
        got, want = output.split(b"\n"), expected.split(b"\n")
        index = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                     min(len(got), len(want)))
        result["first_difference"] = {
            "line": index + 1,
            "got": got[index].decode(errors="replace")[:80] if index < len(got) else None,
            "expected": want[index].decode(errors="replace") if index < len(want) else None,
        }
    return result


def log_file_stats(path: Path) -> dict[str, int]:
    """Size and records of a k8s-file log; `partial_records` counts the `P` records conmon
    wrote where a line was split (at its read-buffer boundary) that readers must rejoin."""
    records = partial = 0
    with open(path, "rb") as f:
        for record in f:
            records += 1
            if record.split(b" ", 3)[2:3] == [b"P"]:
                partial += 1
    return {"bytes": path.stat().st_size, "records": records, "partial_records": partial}


def _timed_run(fn: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = fn()
    return time.perf_counter() - began, result


# -- Berth -----------------------------------------------------------------------------------
def berth_once(host: Host, expected: bytes) -> dict[str, Any]:
    """One container: capture, then read back in-process and through the CLI."""
    manager = host.containers
    began = time.perf_counter()
    container = manager.run(RunOptions(image="busybox:latest", command=list(COMMAND),
                                       networks=["none"]))
    exit_code = manager.wait(container.id)
    wall = time.perf_counter() - began
    container = manager.get(container.id)
    ran = parse_iso(container.state["FinishedAt"]) - parse_iso(container.state["StartedAt"])

    read_seconds, (entries, _) = _timed_run(lambda: read_entries(container.log_path))
    library = verify("".join(format_entry(e, False) for e in entries).encode(), expected)
    cli_seconds, cli = _timed_run(lambda: subprocess.run(
        [*BERTH_RUNTIME, "--root", str(host.root), "logs", container.id],
        capture_output=True, check=True))
    record = {
        "exit_code": exit_code, "run_s": ran, "wall_s": wall,
        "read_library_s": read_seconds, "read_cli_s": cli_seconds,
        "library": library, "cli": verify(cli.stdout, expected),
        "log_file": log_file_stats(container.log_path),
    }
    manager.remove(container.id, force=True)
    return record


# -- podman ----------------------------------------------------------------------------------
def podman_once(podman: Podman, expected: bytes) -> dict[str, Any]:
    """One container: capture, then `podman logs`."""
    began = time.perf_counter()
    container_id = podman.run("--network", "none", "--log-driver", "k8s-file", command=COMMAND)
    exit_code = int(subprocess.run(["podman", "wait", container_id], check=True,
                                   capture_output=True, text=True).stdout.strip())
    wall = time.perf_counter() - began
    started, finished, log_path = subprocess.run(
        ["podman", "inspect", "--format",
         "{{.State.StartedAt.UnixNano}} {{.State.FinishedAt.UnixNano}} "
         "{{.HostConfig.LogConfig.Path}}", container_id],
        check=True, capture_output=True, text=True).stdout.split()
    read_seconds, logs = _timed_run(lambda: subprocess.run(
        ["podman", "logs", container_id], capture_output=True, check=True))
    record = {
        "exit_code": exit_code, "run_s": (int(finished) - int(started)) / 1e9, "wall_s": wall,
        "read_cli_s": read_seconds, "cli": verify(logs.stdout, expected),
        "log_file": log_file_stats(Path(log_path)),
    }
    podman.remove_all()
    return record


# -- report ----------------------------------------------------------------------------------
def _rate(seconds: list[float]) -> float:
    """Lines per second at the median duration."""
    median = statistics.median(seconds)
    return round(LINES / median) if median > 0 else float("nan")


def _checks(runs: list[dict[str, Any]], reader: str) -> dict[str, Any]:
    return {
        "all_complete_and_in_order": all(r[reader]["complete_and_in_order"] for r in runs),
        "all_sha256_match": all(r[reader]["sha256_match"] for r in runs),
        "lines": [r[reader]["lines"] for r in runs],
        **({"first_difference": [r[reader].get("first_difference") for r in runs]}
           if not all(r[reader]["complete_and_in_order"] for r in runs) else {}),
    }


def _summary(runs: list[dict[str, Any]], readers: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runs": len(runs),
        "exit_codes": [r["exit_code"] for r in runs],
        "captured_lines_per_s": _rate([r["run_s"] for r in runs]),
        "run_to_wait_lines_per_s": _rate([r["wall_s"] for r in runs]),
        "median_run_s": round(statistics.median(r["run_s"] for r in runs), 3),
        "log_file": runs[-1]["log_file"],
    }
    for reader in readers:
        out[f"read_{reader}_lines_per_s"] = _rate([r[f"read_{reader}_s"] for r in runs])
        out[f"read_{reader}"] = _checks(runs, reader)
    return out


def run() -> dict:
    """Berth and podman alternately, RUNS times each."""
    root = Path(tempfile.mkdtemp(prefix="berth-bench-", dir="/var/tmp"))
    host = Host(root)
    podman: Podman | None = None
    try:
        podman = Podman()
        bootstrap_busybox(host.images)
        expected = expected_output(LINES)
        berth_runs, podman_runs = [], []
        for _ in range(RUNS):
            berth_runs.append(berth_once(host, expected))
            podman_runs.append(podman_once(podman, expected))
        berth = _summary(berth_runs, ["library", "cli"])
        peer = _summary(podman_runs, ["cli"])
        lossless = all(
            berth[f"read_{reader}"]["all_complete_and_in_order"]
            and berth[f"read_{reader}"]["all_sha256_match"] for reader in ("library", "cli"))
        return {
            "benchmark": "logs",
            "lines": LINES,
            "command": " ".join(COMMAND),
            "berth": berth,
            "podman": peer,
            "ratio_captured_lines_per_s_vs_podman": ratio(berth["captured_lines_per_s"],
                                                          peer["captured_lines_per_s"]),
            "ratio_read_cli_lines_per_s_vs_podman": ratio(berth["read_cli_lines_per_s"],
                                                          peer["read_cli_lines_per_s"]),
            "berth_lossless": lossless,
            "podman_lossless": peer["read_cli"]["all_complete_and_in_order"],
            "goal": "berth_lossless (count, order and sha256 of all LINES lines)",
            "goal_met": lossless,
        }
    finally:
        try:
            host.purge()
        finally:
            if podman is not None:
                podman.close()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    from bench.common import emit

    emit(run())
