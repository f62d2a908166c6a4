"""conmon, the per-container monitor: launching it and reading the files it leaves behind.

conmon forks away from us, runs `RUNTIME create`, reports the container's pid (or the runtime's
error) on a sync pipe, then stays as the container's parent: it copies stdout/stderr into a
k8s-file log, notices OOM kills (an `oom` file in its persist dir) and writes the exit code to
`EXIT_DIR/ID`. Because it is not our child, containers outlive `berth-runtime` and the agent.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
from pathlib import Path

from runtime.containers.ociruntime import OCIRuntime
from runtime.containers.record import Container
from runtime.errors import RuntimeFailure

SYNC_TIMEOUT = 60.0
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL


def conmon_path() -> str:
    found = shutil.which("conmon") or next(
        (p for p in ("/usr/bin/conmon", "/usr/libexec/podman/conmon") if os.path.exists(p)), None)
    if found is None:
        raise RuntimeFailure("conmon is not installed; run `make setup` (apt-get install conmon)")
    return found


def conmon_argv(container: Container, runtime: OCIRuntime, exit_dir: Path, socket_dir: Path,
                exit_command: list[str] | None = None,
                log_size_max: int | None = None) -> list[str]:
    """conmon's command line for one container (cuuid = the short id keeps the attach socket
    path short; the runtime sees the full id)."""
    argv = [
        conmon_path(), "--api-version", "1",
        "-c", container.id, "-u", container.short_id, "-n", container.name,
        "-r", runtime.path, f"--runtime-arg=--root={runtime.state_root}",
        "-b", str(container.bundle), "-p", str(container.pidfile),
        "--conmon-pidfile", str(container.conmon_pidfile),
        "--exit-dir", str(exit_dir), "-l", log_target(container),
        "--socket-dir-path", str(socket_dir), "--persist-dir", str(container.userdata),
        "--log-level", "error",
    ]
    if log_size_max:
        argv += ["--log-size-max", str(log_size_max)]
    if exit_command:
        argv += ["--exit-command", exit_command[0]]
        for arg in exit_command[1:]:
            argv += ["--exit-command-arg", arg]
    return argv


def log_target(container: Container) -> str:
    """conmon's -l: the k8s-file log (json-file and local), or nothing for driver none."""
    log_type = (container.host_config.get("LogConfig") or {}).get("Type")
    return "none:" if log_type == "none" else f"k8s-file:{container.log_path}"


def launch(container: Container, runtime: OCIRuntime, exit_dir: Path, socket_dir: Path,
           exit_command: list[str] | None = None, log_size_max: int | None = None) -> int:
    """Start conmon for `container` and wait until the runtime has created it (not started).

    Returns the container's init pid; raises RuntimeFailure with the runtime's own message when
    the creation fails (conmon then exits by itself)."""
    read_end, write_end = os.pipe()
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "_OCI_SYNCPIPE": str(write_end)}
    errors_path = container.userdata / "conmon.err"
    try:
        with open(errors_path, "ab") as errors:
            process = subprocess.Popen(
                conmon_argv(container, runtime, exit_dir, socket_dir, exit_command,
                            log_size_max),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                pass_fds=(write_end,), env=env, start_new_session=True,
                cwd=str(container.userdata),
            )
        os.close(write_end)
        write_end = -1
        process.wait()  # the first conmon process forks the monitor and exits at once
        message = _read_sync(read_end)
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
    if message is None:
        detail = errors_path.read_text(errors="replace").strip().splitlines()[-1:]
        raise RuntimeFailure(
            "conmon exited without reporting the container's creation"
            + (f": {detail[0]}" if detail else "")
        )
    pid = int(message.get("data", -1))
    if pid <= 0:
        raise RuntimeFailure(
            f"{runtime.name} could not create the container: "
            f"{_clean(message.get('message') or 'no error message')}"
        )
    return pid


def _read_sync(fd: int) -> dict | None:
    """The first JSON line conmon writes on the sync pipe, or None on EOF/timeout."""
    buffer = b""
    while b"\n" not in buffer:
        ready, _, _ = select.select([fd], [], [], SYNC_TIMEOUT)
        if not ready:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buffer += chunk
    line = buffer.split(b"\n", 1)[0].strip()
    if not line:
        return None
    try:
        return json.loads(line)
    except ValueError:
        return {"data": -1, "message": line.decode(errors="replace")}


def _clean(message: str) -> str:
    """runc's create errors arrive as its log line; keep the human part."""
    text = message.strip()
    if 'msg="' in text:
        text = text.split('msg="', 1)[1].rsplit('"', 1)[0]
    return text.replace("\\n", " ").replace('\\"', '"').strip()


def read_int(path: Path) -> int | None:
    """An integer file (pid file, exit file), or None if missing or not yet written."""
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return int(text)
    except ValueError:
        return None


def exit_code(container: Container, exit_dir: Path) -> int | None:
    """The exit code conmon recorded, or None while the container has not exited."""
    return read_int(exit_dir / container.id)


def oom_killed(container: Container) -> bool:
    """Whether conmon saw the memory cgroup OOM-kill in this container."""
    return container.oom_file.exists()


def process_alive(pid: int | None) -> bool:
    """Whether `pid` exists and is not a zombie."""
    if not pid or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return fields[0] not in ("Z", "X")


def short_socket_dir(root: Path) -> Path:
    """A socket directory whose attach socket path (DIR/<12 hex>/attach) fits sun_path; a
    hashed directory under /run when the root itself is too deep."""
    candidate = root / "sock"
    if len(str(candidate)) + len("/0123456789ab/attach") <= UNIX_PATH_MAX:
        return candidate
    import hashlib

    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return Path("/run/berth") / digest
