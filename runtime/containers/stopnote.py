"""Why a stop ended in SIGKILL, said so that the user can fix it.

The kernel never delivers to PID 1 of a PID namespace a signal that it has no handler for (its
default action would be ignored), so a shell or a program started as the container's command,
without init, that installs no SIGTERM handler sits out the whole stop timeout and is killed.
`/proc/PID/status` tells which signals a process catches (SigCgt) or ignores (SigIgn); read just
before the SIGKILL, it says which of the three cases it was.
"""

from __future__ import annotations

import signal as signals
from pathlib import Path


def _mask(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def stop_note(pid: int, signal: int, timeout: float, init: bool) -> str:
    """The note recorded on a container killed after `timeout` s because `signal` did not stop
    it: the process `pid` (its PID 1 on the host's side) is asked what it does with `signal`."""
    name, bit = _name(signal), 1 << (signal - 1)
    killed = f"stopped with SIGKILL after {timeout:g}s: it did not exit on {name}"
    if init:
        return (f"{killed}; init passed {name} on, and the application ignored it or took longer: "
                f"handle {name} in the application, or raise stop_timeout")
    caught, ignored = _mask(pid, "SigCgt"), _mask(pid, "SigIgn")
    if ignored is not None and ignored & bit:
        return (f"{killed}: the process is PID 1 and ignores {name}; set init: true, or handle "
                f"{name} instead of ignoring it")
    if caught is not None and caught & bit:
        return (f"{killed}: the process handles {name} but did not exit in time; make its "
                f"handler exit sooner, or raise stop_timeout")
    return (f"{killed}: the process is PID 1 and has no {name} handler, so the kernel dropped "
            f"the signal; set init: true or handle {name}")
