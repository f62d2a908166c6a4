"""`ContainerSpec`: the one typed description of a container, from which every layer takes its
fields — the panel's API validation and serializer, the compose front end and export, the
stack engine, the agent (spec -> `RunOptions` by field name) and the deploy hash.

Why stdlib dataclasses (not msgspec or pydantic): runtime/ must import on a bare host with no
Django and no third-party packages beyond what the agent already needs; `RunOptions` is a
dataclass too, so the two are matched by `dataclasses.fields()` names with nothing to learn or
install. What a model library would add — typed decoding with errors naming the field — is
the ~100 lines of `_check` below, and those say what is allowed in Berth's own words.

The wire form is a plain JSON object (`to_dict` / `from_dict`). `from_dict` refuses unknown
fields and values of the wrong type with a `SpecInvalid` whose `errors` maps each field to what
was wrong and what is allowed. Deep checks of values (a capability name, a sysctl namespace, a
port) stay in the runtime's own parsers (runtime/containers/options.py and friends), which the
panel reuses, so the panel accepts exactly what a host accepts.

Hashing (`hash_form`): a stack's replicas are rolled when the hash of their spec changes. The
fields that existed before this type (`LEGACY_HASH_FIELDS`) are always hashed, exactly as they
were, so every existing stack keeps its hash; every other field is hashed only when it differs
from its default, so adding a field to this class rolls nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import InvalidArgument

# What stacks hashed before the spec was one type (panel/stacks/compose/spec.py CONTAINER_KEYS at
# c175823): always part of the hash, even at their defaults. Never add a field here.
LEGACY_HASH_FIELDS = ("image", "pull", "command", "entrypoint", "env", "ports", "volumes",
                      "networks", "memory", "cpus", "pids_limit", "restart", "healthcheck",
                      "labels", "init", "constraints", "user", "workdir", "hostname",
                      "read_only", "stop_signal", "stop_timeout")

# Kinds of metadata on each field (read through `spec_fields()`):
#   doc      one line for people (API schema, docs)
#   compose  the service key of a compose file that maps 1:1 to this field, or ""
#   runtime  False: not passed to RunOptions (panel-side, or the agent handles it itself)
#   api      False: not settable through POST /api/v1/containers/ (stack-only)
_CAPABILITY = re.compile(r"^(?:ALL|[A-Z][A-Z0-9_]*)$")
_NS_MODES = {"pid": ("", "host"), "ipc": ("", "private", "shareable", "host")}
LOG_DRIVERS = ("", "json-file", "local", "none")


def _spec_field(default: Any, doc: str, *, compose: str = "", runtime: bool = True,
                api: bool = True) -> Any:
    meta = {"doc": doc, "compose": compose, "runtime": runtime, "api": api}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldInfo:
    """One field of the spec, as the other layers enumerate them."""

    name: str
    type: str  # the annotation, e.g. "list[str]"
    default: Any
    doc: str
    compose: str  # the compose service key mapping 1:1 to it ("" = none, or not 1:1)
    runtime: bool  # passed to the runtime's RunOptions under the same name
    api: bool  # settable through the container API


class SpecInvalid(InvalidArgument):
    """A spec that does not fit the type: `errors` maps each bad field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class ContainerSpec:
    """What a container is made from. Every default means "as before / as Docker does"."""

    # --- identity and image
    name: str = _spec_field("", "container name; empty: Berth picks one", compose="container_name")
    image: str = _spec_field("", "image reference, e.g. busybox:latest (required)",
                             compose="image")
    pull: bool = _spec_field(False, "pull the image first when the host lacks it",
                             runtime=False)  # the agent pulls before it creates
    # --- process
    command: list[str] = _spec_field([], "arguments (replace the image's CMD)", compose="command")
    entrypoint: list[str] | None = _spec_field(None, "executable and arguments; null: the "
                                               "image's", compose="entrypoint")
    env: list[str] = _spec_field([], '"K=V" entries (the panel keeps an object of them)')
    user: str | None = _spec_field(None, "USER, UID or UID:GID; null: the image's",
                                   compose="user")
    workdir: str | None = _spec_field(None, "absolute working directory; null: the image's",
                                      compose="working_dir")
    group_add: list[str] = _spec_field([], "extra groups (names or numbers)", compose="group_add")
    init: bool = _spec_field(False, "run a minimal init as PID 1 that reaps zombies",
                             compose="init")
    # --- network
    hostname: str | None = _spec_field(None, "host name inside the container; null: its id",
                                       compose="hostname")
    ports: list[str] = _spec_field([], '"[IP:][HOST:]CTR[/udp]" published ports')
    networks: list[str] = _spec_field([], "networks to join; empty: the default bridge")
    network_aliases: list[str] = _spec_field([], "extra DNS names on each of its networks")
    port_group: str = _spec_field("", "containers of one group share their host ports "
                                      "(stacks set it)", runtime=False, api=False)
    network_mode: str = _spec_field("", '"" (use networks), "host", "none" or '
                                        '"container:NAME"', compose="network_mode")
    expose: list[str] = _spec_field([], '"80", "53/udp": recorded only, publishes nothing',
                                    compose="expose")
    extra_hosts: list[str] = _spec_field([], '"name:ip" lines for /etc/hosts (ip may be '
                                             'host-gateway)', compose="extra_hosts")
    dns: list[str] = _spec_field([], "resolvers for /etc/resolv.conf", compose="dns")
    dns_search: list[str] = _spec_field([], "DNS search domains", compose="dns_search")
    dns_opt: list[str] = _spec_field([], "resolv.conf options", compose="dns_opt")
    # --- storage
    volumes: list[str] = _spec_field([], '"NAME:/path[:ro]" mounts')
    tmpfs: list[str] = _spec_field([], '"/path[:opts]" tmpfs mounts (size=64m,mode=1777,…)',
                                   compose="tmpfs")
    read_only: bool = _spec_field(False, "mount the root filesystem read-only",
                                  compose="read_only")
    shm_size: int = _spec_field(0, "bytes of /dev/shm; 0: 64 MiB", compose="shm_size")
    files: list[dict[str, Any]] = _spec_field(
        [], '{"target", "content" (base64), "mode"}: files mounted read-only (compose '
            'secrets/configs)', runtime=False, api=False)
    stack_dir: dict[str, Any] = _spec_field(
        {}, '{"stack", "digest", "files"}: the stack\'s directory for relative binds',
        runtime=False, api=False)
    # --- resources and placement
    memory: int = _spec_field(0, "memory limit in bytes; 0: none")
    memory_reservation: int = _spec_field(0, "soft memory limit in bytes, and for placement")
    cpus: float = _spec_field(0.0, "CPU limit; 0: none")
    cpus_reservation: float = _spec_field(0.0, "CPUs reserved for placement")
    pids_limit: int | None = _spec_field(None, "maximum number of processes; null: default")
    ulimits: dict[str, dict[str, int]] = _spec_field(
        {}, '{"nofile": {"soft": n, "hard": n}, …}', compose="ulimits")
    constraints: list[str] = _spec_field([], '"label==value" / "label!=value" placement rules',
                                         runtime=False)
    platform: str = _spec_field("", '"linux/amd64" etc.: checked against the host',
                                compose="platform")
    # --- lifecycle
    restart: str = _spec_field("no", "no | on-failure[:N] | always | unless-stopped",
                               compose="restart")
    healthcheck: dict[str, Any] | None = _spec_field(
        None, '{"test", "interval", "timeout", "start_period", "start_interval" (ns), '
              '"retries"}')
    stop_signal: str | None = _spec_field(None, "signal that stops it; null: SIGTERM",
                                          compose="stop_signal")
    stop_timeout: int | None = _spec_field(None, "seconds before SIGKILL; null: 10")
    labels: dict[str, str] = _spec_field({}, "labels (berth.* are reserved)")
    logging: dict[str, Any] = _spec_field(
        {}, '{"driver": json-file|local|none, "options": {"max-size": "10m", …}}',
        compose="logging")
    # --- privileges
    privileged: bool = _spec_field(False, "all capabilities and devices, no seccomp",
                                   compose="privileged")
    cap_add: list[str] = _spec_field([], "capabilities to add (NET_ADMIN, … or ALL)",
                                     compose="cap_add")
    cap_drop: list[str] = _spec_field([], "capabilities to drop (… or ALL)", compose="cap_drop")
    security_opt: list[str] = _spec_field(
        [], "no-new-privileges[:true|false], seccomp=unconfined, apparmor=…, label=…, "
            "systempaths=unconfined", compose="security_opt")
    devices: list[str] = _spec_field([], '"/dev/host[:/dev/ctr[:rwm]]"', compose="devices")
    sysctls: dict[str, str] = _spec_field({}, "namespaced sysctls (net.*, kernel.shm*, …)",
                                          compose="sysctls")
    pid: str = _spec_field("", '"" (own namespace) or "host"', compose="pid")
    ipc: str = _spec_field("", '"", "private", "shareable", "host" or "container:NAME"',
                           compose="ipc")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContainerSpec:
        """The spec in `data` (missing fields take their defaults); SpecInvalid naming every
        unknown field and every value of the wrong type."""
        if not isinstance(data, Mapping):
            raise SpecInvalid({"spec": [f"must be a JSON object, not {type(data).__name__}"]})
        errors: dict[str, list[str]] = {}
        known = field_names()
        for key in sorted(set(data) - set(known)):
            errors.setdefault(key, []).append(f"unknown field: allowed {', '.join(known)}")
        values = {}
        for info in spec_fields():
            if info.name not in data:
                continue
            value, problem = _check(info, data[info.name])
            if problem:
                errors.setdefault(info.name, []).append(problem)
            else:
                values[info.name] = value
        if errors:
            raise SpecInvalid(errors)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return dataclasses.asdict(self)

    def changed(self) -> dict[str, Any]:
        """Only the fields that differ from their defaults."""
        return {k: v for k, v in self.to_dict().items() if not is_default(k, v)}


_FIELDS: tuple[FieldInfo, ...] = tuple(
    FieldInfo(name=f.name, type=str(f.type),
              default=f.default_factory() if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
              else f.default, doc=f.metadata["doc"], compose=f.metadata["compose"],
              runtime=f.metadata["runtime"], api=f.metadata["api"])
    for f in dataclasses.fields(ContainerSpec))
_BY_NAME = {info.name: info for info in _FIELDS}


def spec_fields() -> Iterator[FieldInfo]:
    """Every field of the spec in declaration order: name, type, default, doc and where it is
    used. The default is a fresh copy each time (safe to mutate)."""
    for info in _FIELDS:
        yield dataclasses.replace(info, default=_copy(info.default))


def field_names() -> tuple[str, ...]:
    return tuple(info.name for info in _FIELDS)


def field_info(name: str) -> FieldInfo:
    """The field `name`; KeyError for a name that is not a spec field."""
    info = _BY_NAME[name]
    return dataclasses.replace(info, default=_copy(info.default))


def default_of(name: str) -> Any:
    return _copy(_BY_NAME[name].default)


def is_default(name: str, value: Any) -> bool:
    """True when `value` means what leaving `name` out means (None counts as unset for a
    field whose default is not None)."""
    info = _BY_NAME.get(name)
    if info is None:
        return False
    return value is None or value == info.default


def hash_form(container: Mapping[str, Any]) -> dict[str, Any]:
    """What of a container spec goes into a deploy hash (module docstring): the legacy fields
    as they are, every other known field only when it differs from its default, and keys that
    are no spec field as they are (an unknown key still changes the hash)."""
    return {key: value for key, value in container.items()
            if key in LEGACY_HASH_FIELDS or key not in _BY_NAME or not is_default(key, value)}


def _copy(value: Any) -> Any:
    return type(value)(value) if isinstance(value, list | dict) else value


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check(info: FieldInfo, value: Any) -> tuple[Any, str]:
    """(the value, "") when it fits the field's type, else (None, what is allowed)."""
    kind = info.type
    if value is None:
        return (None, "") if kind.endswith("| None") else (default_of(info.name), "")
    base = kind.removesuffix(" | None")
    if base == "str":
        return (value, "") if isinstance(value, str) else (None, "must be a string")
    if base == "bool":
        return (value, "") if isinstance(value, bool) else (None, "must be true or false")
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, "must be a whole number"
        return value, ""
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "must be a number"
        return float(value), ""
    if base == "list[str]":
        return (list(value), "") if _strings(value) else (None, "must be a list of strings")
    if base == "dict[str, str]":
        if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                           for k, v in value.items()):
            return dict(value), ""
        return None, 'must be an object of names to strings, e.g. {"KEY": "value"}'
    if base == "dict[str, dict[str, int]]":
        ok = isinstance(value, dict) and all(
            isinstance(v, dict) and set(v) == {"soft", "hard"}
            and all(isinstance(n, int) and not isinstance(n, bool) for n in v.values())
            for v in value.values())
        return (dict(value), "") if ok else (None, 'must be an object like {"nofile": '
                                                   '{"soft": 1024, "hard": 4096}}')
    if base == "dict[str, Any]":
        return (dict(value), "") if isinstance(value, dict) else (None, "must be an object")
    if base == "list[dict[str, Any]]":
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return list(value), ""
        return None, "must be a list of objects"
    raise AssertionError(f"ContainerSpec.{info.name}: no check for type {kind}")


def check_formats(spec: ContainerSpec) -> dict[str, list[str]]:
    """The protocol's own rules for the enumerated fields (the runtime checks the rest when it
    creates the container): problems per field, empty when all fit."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    for name in ("cap_add", "cap_drop"):
        for cap in getattr(spec, name):
            if not _CAPABILITY.match(cap.upper().removeprefix("CAP_")):
                add(name, f"{cap!r} is not a capability name: use e.g. NET_ADMIN, or ALL")
    for name, allowed in _NS_MODES.items():
        value = getattr(spec, name)
        if value not in allowed and not (name == "ipc" and value.startswith("container:")
                                         and len(value) > len("container:")):
            extra = ' or "container:NAME"' if name == "ipc" else ""
            add(name, f"{value!r} is not allowed: use {', '.join(map(repr, allowed))}{extra}")
    mode = spec.network_mode
    if mode not in ("", "host", "none") and not (mode.startswith("container:")
                                                 and len(mode) > len("container:")):
        add("network_mode", f'{mode!r} is not allowed: use "", "host", "none" or '
                            '"container:NAME"')
    if spec.logging:
        unknown = sorted(set(spec.logging) - {"driver", "options"})
        if unknown:
            add("logging", f"unknown keys {', '.join(unknown)}: allowed driver, options")
        if spec.logging.get("driver", "") not in LOG_DRIVERS:
            add("logging", f"driver {spec.logging.get('driver')!r} is not allowed: use "
                           "json-file, local or none")
        options = spec.logging.get("options", {})
        if not isinstance(options, dict) or not all(isinstance(v, str)
                                                    for v in options.values()):
            add("logging", 'options must be an object of strings, e.g. {"max-size": "10m"}')
    for name in ("shm_size", "memory_reservation"):
        if getattr(spec, name) < 0:
            add(name, "must not be negative (0: the default)")
    if spec.cpus_reservation < 0:
        add("cpus_reservation", "must not be negative (0: none)")
    return errors
