"""What a user asks for when creating a container, and the strict parsers behind the `run` flags.

`RunOptions` is the Python API's input (the CLI fills it from docker-style flags). Every parser
raises `InvalidArgument` naming the flag and what is allowed, so a bad value fails before anything
is created.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import InvalidArgument

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MIN_MEMORY = 6 * 1024 * 1024  # docker's minimum, below it the container cannot even start
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
DEFAULT_STOP_TIMEOUT = 10

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


@dataclass
class MountRequest:
    """One `-v` entry: a named volume (`source` is a name) or a bind mount (an absolute path)."""

    source: str
    destination: str
    read_only: bool = False
    no_copy: bool = False  # `nocopy`: do not seed an empty volume with the image's content

    @property
    def is_bind(self) -> bool:
        return self.source.startswith("/")


@dataclass
class HealthOptions:
    """The `--health-*` flags; durations in nanoseconds as docker stores them (0 = default)."""

    test: list[str] = field(default_factory=list)  # ["CMD-SHELL", "…"] / ["CMD", …] / ["NONE"]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def to_docker(self) -> dict:
        return {"Test": self.test, "Interval": self.interval, "Timeout": self.timeout,
                "StartPeriod": self.start_period, "StartInterval": self.start_interval,
                "Retries": self.retries}


@dataclass
class RunOptions:
    """Everything `create`/`run` accept. Only `image` is required."""

    image: str
    command: list[str] = field(default_factory=list)
    name: str | None = None
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    memory: int | str | None = None
    cpus: float | str | None = None
    pids_limit: int | None = None
    restart: str = "no"
    init: bool = False
    user: str | None = None
    workdir: str | None = None
    entrypoint: str | None = None
    read_only: bool = False
    stop_timeout: int | None = None
    stop_signal: str | None = None
    labels: list[str] | dict[str, str] = field(default_factory=list)
    health: HealthOptions | None = None
    hostname: str | None = None
    auto_remove: bool = False
    networks: list[str] = field(default_factory=list)  # default: the `berth` network
    ip: str | None = None
    network_aliases: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)  # -p [IP:][HOST:]CTR[/tcp|/udp]
    publish_all: bool = False
    # kernel-facing fields (the container spec's names; parsed by `host_options`)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    security_opt: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    sysctls: dict[str, str] | list[str] = field(default_factory=dict)
    ulimits: dict[str, Any] | list[str] = field(default_factory=dict)
    tmpfs: list[str] = field(default_factory=list)
    shm_size: int | str = 0
    extra_hosts: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opt: list[str] = field(default_factory=list)
    pid: str = ""
    ipc: str = ""
    network_mode: str = ""
    expose: list[str] = field(default_factory=list)
    logging: dict[str, Any] = field(default_factory=dict)
    platform: str = ""
    memory_reservation: int | str = 0
    cpus_reservation: float | str = 0
    group_add: list[str] = field(default_factory=list)


def validate_name(name: str) -> str:
    """A container name as docker allows it: [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 chars."""
    name = name.removeprefix("/")
    if not NAME_PATTERN.match(name) or len(name) > 128:
        raise InvalidArgument(
            f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name


def parse_memory(value: int | str | None) -> int:
    """`--memory`: bytes, or a number with b/k/m/g/t; 0 or None means unlimited."""
    if value is None or value == "" or value == 0:
        return 0
    if isinstance(value, int):
        amount = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", value.lower())
        if not match:
            raise InvalidArgument(
                f"invalid --memory {value!r}: use a number with an optional unit b, k, m, g "
                "(e.g. 256m)"
            )
        amount = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if amount == 0:
        return 0
    if amount < MIN_MEMORY:
        raise InvalidArgument(f"--memory {value!r} is below the minimum of 6m")
    return amount


def parse_cpus(value: float | str | None) -> int:
    """`--cpus`: a positive decimal up to the host's CPU count; returns nano-CPUs (0 = no limit)."""
    if value is None or value == "" or value == 0:
        return 0
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid --cpus {value!r}: use a decimal such as 0.5") from None
    available = os.cpu_count() or 1
    if cpus <= 0 or cpus > available:
        raise InvalidArgument(f"--cpus {value!r} is out of range: allowed 0.01 to {available}")
    return int(cpus * 1e9)


def parse_pids_limit(value: int | None) -> int | None:
    """`--pids-limit`: a positive number, or -1/0 for unlimited; None keeps the default."""
    if value is None:
        return None
    if not isinstance(value, int):
        raise InvalidArgument(f"invalid --pids-limit {value!r}: use an integer")
    return value if value > 0 else -1


def parse_restart(value: str | None) -> dict:
    """`--restart no|on-failure[:N]|always|unless-stopped` as docker's RestartPolicy dict."""
    text = (value or "no").strip()
    name, _, count = text.partition(":")
    if name not in RESTART_POLICIES:
        raise InvalidArgument(
            f"invalid --restart {text!r}: allowed no, on-failure[:N], always, unless-stopped"
        )
    retries = 0
    if count:
        if name != "on-failure" or not count.isdigit():
            raise InvalidArgument(
                f"invalid --restart {text!r}: a retry count is only allowed as on-failure:N"
            )
        retries = int(count)
    return {"Name": name, "MaximumRetryCount": retries}


def parse_duration(value: str | int | float | None, flag: str) -> int:
    """A Go-style duration (`30s`, `1m30s`, `500ms`) or seconds as a number; nanoseconds."""
    if value is None or value == "":
        return 0
    if isinstance(value, int | float):
        return int(value * 1_000_000_000)
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return int(float(text) * 1_000_000_000)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidArgument(f"invalid {flag} {value!r}: use a duration such as 30s, 1m30s, 500ms")
    return int(sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


def parse_signal(value: str | int) -> int:
    """A signal by number or name (`KILL`, `SIGKILL`, `9`)."""
    text = str(value).strip().upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text if text.startswith("SIG") else f"SIG{text}"
        found = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if found is not None:
            return int(found)
    raise InvalidArgument(f"invalid signal {value!r}: use a name such as TERM or KILL, or a number")


def parse_env_entry(entry: str, flag: str = "-e") -> str | None:
    """`K=V` as is; a bare `K` takes the value from this process's environment (skipped if
    unset), as docker does."""
    key, sep, _ = entry.partition("=")
    if not key or any(c.isspace() for c in key):
        raise InvalidArgument(f"invalid {flag} {entry!r}: use NAME=VALUE")
    if sep:
        return entry
    return f"{key}={os.environ[key]}" if key in os.environ else None


def read_env_file(path: str) -> list[str]:
    """`--env-file`: one NAME=VALUE per line; blank lines and lines starting with # ignored."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read --env-file {path!r}: {exc.strerror}") from None
    entries = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        entry = parse_env_entry(line.lstrip(), flag=f"--env-file {path} entry")
        if entry is not None:
            entries.append(entry)
    return entries


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Image Env first, then overrides replacing entries of the same name (order kept)."""
    merged: dict[str, str] = {}
    for entry in [*base, *overrides]:
        key, _, value = entry.partition("=")
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def parse_volume(spec: str) -> MountRequest:
    """`-v NAME:/path[:ro|rw][,nocopy]` (named volume) or `-v /host/path:/path[:ro|rw]` (bind
    mount).

    A lone `/path` asks for an anonymous volume (source left empty)."""
    parts = spec.split(":")
    mode = "rw"
    if len(parts) == 3:
        source, destination, mode = parts
    elif len(parts) == 2:
        source, destination = parts
    elif len(parts) == 1:
        source, destination = "", parts[0]
    else:
        raise InvalidArgument(f"invalid -v {spec!r}: use NAME:/path[:ro] or /host/path:/path[:ro]")
    flags = mode.split(",")
    if any(f not in ("ro", "rw", "nocopy") for f in flags) or len(set(flags) & {"ro", "rw"}) > 1:
        raise InvalidArgument(f"invalid -v {spec!r}: the mode must be ro or rw, optionally with "
                              f"nocopy (e.g. ro,nocopy), not {mode!r}")
    if "nocopy" in flags and (not source or source.startswith("/")):
        raise InvalidArgument(f"invalid -v {spec!r}: nocopy applies to named volumes only")
    if not destination.startswith("/") or ".." in destination.split("/"):
        raise InvalidArgument(
            f"invalid -v {spec!r}: the container path must be absolute and without '..'"
        )
    if destination == "/":
        raise InvalidArgument(f"invalid -v {spec!r}: cannot mount over the container's root")
    if source and not source.startswith("/") and not NAME_PATTERN.match(source):
        raise InvalidArgument(
            f"invalid -v {spec!r}: a volume name may contain [a-zA-Z0-9][a-zA-Z0-9_.-], "
            "a bind mount source must be an absolute path"
        )
    return MountRequest(source=source, destination=os.path.normpath(destination),
                        read_only="ro" in flags, no_copy="nocopy" in flags)


def parse_labels(labels: list[str] | dict[str, str]) -> dict[str, str]:
    """`--label K=V` entries (a bare K gets an empty value, as in docker)."""
    if isinstance(labels, dict):
        return dict(labels)
    parsed: dict[str, str] = {}
    for entry in labels:
        key, _, value = entry.partition("=")
        if not key:
            raise InvalidArgument(f"invalid --label {entry!r}: use KEY=VALUE")
        parsed[key] = value
    return parsed


def parse_command(value: str | list[str] | None) -> list[str]:
    """`--entrypoint` is one executable (docker does not split it); lists pass through."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value] if value else []
