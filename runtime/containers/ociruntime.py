"""The OCI runtime binary: which one this host can use, and the few commands Berth calls.

crun is preferred (faster, smaller) but Debian's crun 1.8 refuses cgroup v1/v2 hybrid hosts, so
the choice is made by actually running a tiny container once with each candidate and keeping the
first that works. The answer is cached per process and in `ROOT/oci-runtime.json`, keyed by the
binaries and the cgroup layout, so the probe runs once per root. `BERTH_OCI_RUNTIME` forces one.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import ContainerNotRunning, NotFound, RuntimeFailure

CANDIDATES = ("crun", "runc")
FIFO_TIMEOUT = 30.0  # how long a start waits for runc's init to take the exec fifo
# A runtime command (state, start, kill, delete) that has not returned after this long is hung
# (a frozen cgroup, a process stuck in the kernel): it is killed and the call fails, so the
# task that made it reports a failure instead of holding its container's locks for good.
CALL_TIMEOUT = 60.0
_probe_cache: dict[str, str] = {}


@dataclass
class OCIRuntime:
    """One OCI runtime binary with Berth's per-root state directory (`runc --root`)."""

    path: str
    state_root: Path

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", str(self.state_root), *args]

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(self.argv(*args), capture_output=True, text=True,
                                    timeout=CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(f"{self.name} {args[0]} did not return within "
                                 f"{CALL_TIMEOUT:g}s") from None
        if check and result.returncode != 0:
            raise RuntimeFailure(
                f"{self.name} {args[0]} failed: {_runtime_message(result.stderr)}"
            )
        return result

    def state(self, container_id: str) -> dict[str, Any] | None:
        """`runtime state ID` as a dict, or None when the runtime does not know the container."""
        result = self._run("state", container_id, check=False)
        if result.returncode != 0:
            return None
        try:
            return json.loads(result.stdout)
        except ValueError:
            return None

    def start(self, container_id: str, init_pid: int | None = None) -> None:
        """Start a created container (its process execs the configured command).

        For runc, with the container's `init_pid`, this is done as `runc start` does it, without
        the extra process (~6 ms of Go start-up per container): runc's init waits to open
        `STATE/ID/exec.fifo` for writing; opening it for reading lets it go on, it writes one
        byte and execs, and removing the fifo marks the container as running. When anything
        about that differs (another runtime or version, the init gone), `runc start` itself
        runs and reports."""
        if self.name == "runc" and init_pid and self._release_exec_fifo(container_id, init_pid):
            return
        self._run("start", container_id)

    def _release_exec_fifo(self, container_id: str, init_pid: int) -> bool:
        """runc's start handshake (see `start`); False when it could not be done here."""
        fifo = self.state_root / container_id / "exec.fifo"
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        received = b""
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                return False
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            deadline = time.monotonic() + FIFO_TIMEOUT
            while True:
                if poller.poll(100):
                    try:
                        chunk = os.read(fd, 64)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        break  # the init wrote its byte and closed: it is exec'ing now
                    received += chunk
                elif not _process_alive(init_pid) or time.monotonic() > deadline:
                    break
        finally:
            os.close(fd)
        if not received:
            return False
        try:
            os.unlink(fifo)
        except FileNotFoundError:
            pass
        return True

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        """Send `signal`; raises ContainerNotRunning when the container has already stopped."""
        args = ["kill", *(["--all"] if all_processes else []), container_id, str(signal)]
        result = self._run(*args, check=False)
        if result.returncode != 0:
            message = _runtime_message(result.stderr)
            if "not running" in message or "does not exist" in message or "stopped" in message:
                raise ContainerNotRunning(f"container {container_id[:12]} is not running")
            raise RuntimeFailure(f"{self.name} kill failed: {message}")

    def delete(self, container_id: str) -> None:
        """Forget the container (its cgroups go with it); a no-op if the runtime never knew it."""
        result = self._run("delete", "--force", container_id, check=False)
        if result.returncode != 0 and self.state(container_id) is not None:
            raise RuntimeFailure(f"{self.name} delete failed: {_runtime_message(result.stderr)}")

    def exec_argv(self, container_id: str, command: list[str], env: list[str] | None = None,
                  cwd: str | None = None, user: str | None = None,
                  log_file: Path | None = None) -> list[str]:
        """The command line of a non-interactive `exec` (process settings come from the
        container's config.json: capabilities, no-new-privileges, rlimits). With `log_file`,
        the runtime also writes its own errors there as JSON lines (see `exec_failure_code`)."""
        args = ["--log", str(log_file), "--log-format", "json"] if log_file else []
        args.append("exec")
        for entry in env or []:
            args += ["--env", entry]
        if cwd:
            args += ["--cwd", cwd]
        if user:
            args += ["--user", user]
        return self.argv(*args, container_id, *command)

    def stats(self, container_id: str) -> dict[str, Any]:
        """One sample of `runtime events --stats ID` (cgroup v1 and v2 alike)."""
        result = self._run("events", "--stats", container_id, check=False)
        if result.returncode != 0:
            message = _runtime_message(result.stderr)
            if "not running" in message or "does not exist" in message:
                raise ContainerNotRunning(f"container {container_id[:12]} is not running")
            raise RuntimeFailure(f"{self.name} events --stats failed: {message}")
        try:
            return json.loads(result.stdout).get("data") or {}
        except ValueError:
            raise RuntimeFailure(f"{self.name} events --stats printed no JSON") from None


def _process_alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def exec_failure_code(log_file: Path) -> int | None:
    """Docker's exit code when the runtime could not start an exec'd command (its error is in
    `log_file`): 127 for a command that does not exist, 126 for one that cannot be executed;
    None when the runtime logged no such error (the command itself ran)."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return None
    if "exec failed" not in text and "starting container process" not in text:
        return None
    if "executable file not found" in text or "no such file or directory" in text:
        return 127
    if "permission denied" in text:
        return 126
    return None


def _runtime_message(stderr: str) -> str:
    """The useful part of runc/crun's stderr (runc logs JSON-ish `level=error msg="…"`)."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "no error message"
    last = lines[-1]
    if 'msg="' in last:
        last = last.split('msg="', 1)[1].rsplit('"', 1)[0]
    return last


def cgroup_layout() -> str:
    """`unified`, `hybrid` or `legacy`, as runtimes distinguish them."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "unified"
    if os.path.isdir("/sys/fs/cgroup/unified") and os.path.ismount("/sys/fs/cgroup/unified"):
        return "hybrid"
    return "legacy"


def _fingerprint(path: str) -> str:
    stat = os.stat(path)
    return f"{path}:{stat.st_size}:{int(stat.st_mtime)}:{cgroup_layout()}"


def select_runtime(root: Path) -> str:
    """The path of the OCI runtime to use for new containers on this root (probed once)."""
    forced = os.environ.get("BERTH_OCI_RUNTIME")
    if forced:
        found = shutil.which(forced)
        if not found:
            raise NotFound(f"BERTH_OCI_RUNTIME={forced!r} is not an executable on PATH")
        return found
    candidates = [p for p in (shutil.which(c) for c in CANDIDATES) if p]
    if not candidates:
        raise NotFound("no OCI runtime found: install runc or crun (`make setup`)")
    key = "|".join(_fingerprint(p) for p in candidates)
    if key in _probe_cache:
        return _probe_cache[key]
    cache_file = root / "oci-runtime.json"
    try:
        cached = json.loads(cache_file.read_text())
        if cached.get("key") == key and os.access(cached["path"], os.X_OK):
            _probe_cache[key] = cached["path"]
            return str(cached["path"])
    except (OSError, ValueError, KeyError):
        pass
    failures: list[str] = []
    for path in candidates:
        error = probe(path, root)
        if error is None:
            _probe_cache[key] = path
            root.mkdir(parents=True, exist_ok=True)
            cache_file.write_text(json.dumps({"key": key, "path": path, "failures": failures}))
            return path
        failures.append(f"{os.path.basename(path)}: {error}")
    raise RuntimeFailure("no usable OCI runtime on this host: " + "; ".join(failures))


def probe(path: str, root: Path) -> str | None:
    """Run `true` (busybox) in a minimal container with a cgroup; None if it worked, else why."""
    busybox = next((b for b in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(b)), None)
    if busybox is None:
        return "busybox-static is needed to probe the runtime (`make setup`)"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".probe-", dir=root) as tmp:
        bundle = Path(tmp)
        (bundle / "rootfs").mkdir()
        probe_id = f"berth-probe-{os.getpid()}-{os.path.basename(tmp)[-6:]}"
        config = {
            "ociVersion": "1.0.2",
            "process": {"args": ["/true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                        "env": ["PATH=/"], "noNewPrivileges": True},
            "root": {"path": "rootfs", "readonly": True},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/true", "type": "bind", "source": busybox,
                        "options": ["bind", "ro"]}],
            "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts")],
                      "cgroupsPath": f"/berth/{probe_id}",
                      "resources": {"pids": {"limit": 16}}},
        }
        (bundle / "config.json").write_text(json.dumps(config))
        state = bundle / "state"
        try:
            result = subprocess.run(
                [path, "--root", str(state), "run", "--bundle", str(bundle), probe_id],
                capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        finally:
            subprocess.run([path, "--root", str(state), "delete", "--force", probe_id],
                           capture_output=True)
        if result.returncode != 0:
            return _runtime_message(result.stderr)
    return None
