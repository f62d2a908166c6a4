"""Validation of a container request (the API's JSON, the UI's form) into model fields.

Each check reuses the runtime's own parsers (runtime/containers/options.py, runtime/network/
ports.py, runtime/images/reference.py) so the panel accepts exactly what a host accepts. Every
problem is collected under its field name, so one answer names every bad field.

The fields are those of `runtime.protocol.ContainerSpec` that the API may set (`API_FIELDS`),
plus the panel's own `secrets`, `host` and `start`. Fields with a check of their own here are
checked by it; every other field is checked by the spec type (its type, the protocol's format
rules), so a field added to the spec is accepted here with no change to this module."""

from __future__ import annotations

import re
import signal
from typing import Any

from panel.fleet.placement import parse_constraint
from runtime.containers import options as opts
from runtime.containers.health import check_test
from runtime.errors import InvalidArgument
from runtime.images.reference import parse_reference
from runtime.network.ports import parse_port_spec
from runtime.protocol import ContainerSpec, SpecInvalid, check_formats, spec_fields

API_FIELDS = tuple(info.name for info in spec_fields() if info.api)
PANEL_FIELDS = ("secrets", "host", "start")
FIELDS = (*API_FIELDS, *PANEL_FIELDS)
BUILTIN_NETWORKS = ("berth", "none")  # the runtime's default bridge, and no network at all
RESERVED_LABEL_PREFIX = "berth."
MAX_CPUS = 1024
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_FLAG = re.compile(r"(?:--[a-z-]+|-[pv]) ")
# fields parse_container_request checks itself; _optional_fields checks _CHECKED_HERE; the spec
# type checks every other one
_CHECKED_ABOVE = ("name", "image", "pull", "command", "entrypoint", "env", "ports", "volumes",
                  "networks", "memory", "cpus", "restart", "healthcheck", "labels", "init",
                  "constraints")
_CHECKED_HERE = ("user", "workdir", "hostname", "read_only", "stop_signal", "stop_timeout",
                 "pids_limit", "shm_size", "memory_reservation")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
HEALTH_FIELDS = ("test", "interval", "timeout", "retries", "start_period", "start_interval")


class ValidationFailed(Exception):
    """Bad input: `errors` maps each bad field to what was wrong and what is allowed."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class Errors(dict):
    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)

    def check(self) -> None:
        if self:
            raise ValidationFailed(dict(self))


def _message(exc: InvalidArgument) -> str:
    """The runtime's message without its CLI flag (the field name is the key already)."""
    return _FLAG.sub("", str(exc), count=1)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _string_map(field: str, value: Any, errors: Errors, keys: re.Pattern | None = None) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(field, 'must be an object of names to strings, e.g. {"KEY": "value"}')
        return {}
    result = {}
    for key, item in value.items():
        if keys is not None and not keys.match(key):
            errors.add(field, f"{key!r} is not a valid name: use letters, digits and _ "
                              "(not starting with a digit)")
        elif isinstance(item, bool) or not isinstance(item, str | int | float):
            errors.add(field, f"the value of {key!r} must be a string")
        else:
            result[key] = str(item)
    return result


def _bool(field: str, value: Any, default: bool, errors: Errors) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.add(field, "must be true or false")
        return default
    return value


def parse_image(value: Any, errors: Errors) -> str:
    """An image reference, normalised as the image store keeps it (busybox -> busybox:latest)."""
    if not isinstance(value, str) or not value.strip():
        errors.add("image", "is required: an image reference such as busybox:latest")
        return ""
    try:
        return str(parse_reference(value))
    except InvalidArgument as exc:
        errors.add("image", _message(exc))
        return ""


def parse_healthcheck(value: Any, errors: Errors) -> dict | None:
    """{test, interval, timeout, retries, start_period, start_interval} with durations as
    nanoseconds."""
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.add("healthcheck", "must be an object with test, interval, timeout, retries, "
                                  "start_period, start_interval")
        return None
    unknown = sorted(set(value) - set(HEALTH_FIELDS))
    if unknown:
        errors.add("healthcheck", f"unknown keys {', '.join(unknown)}: allowed "
                                  f"{', '.join(HEALTH_FIELDS)}")
    test = value.get("test")
    if isinstance(test, str) and test:
        test = ["CMD-SHELL", test]
    elif not (_strings(test) and test and (test[0] in ("CMD", "CMD-SHELL", "NONE", "TCP"))):
        errors.add("healthcheck", 'test must be a command string, or a list starting with '
                                  '"CMD", "CMD-SHELL" or "NONE", or ["TCP", "<port>"]')
        test = []
    else:
        try:
            check_test(test)
        except InvalidArgument as exc:
            errors.add("healthcheck", str(exc))
    result: dict[str, Any] = {"test": test}
    for key in ("interval", "timeout", "start_period", "start_interval"):
        try:
            result[key] = opts.parse_duration(value.get(key), f"healthcheck.{key}")
        except InvalidArgument as exc:
            errors.add("healthcheck", str(exc))
        else:
            if result[key] < 0:
                errors.add("healthcheck", f"{key} must not be negative")
    if not result.get("start_interval"):
        # the runtime's default; left out so specs made before the field keep their hashes
        result.pop("start_interval", None)
    retries = value.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        errors.add("healthcheck", "retries must be a whole number >= 0")
        retries = 0
    result["retries"] = retries
    return result


def parse_container_request(data: Any) -> tuple[dict[str, Any], Errors]:
    """Check every field of a create request that needs no database; returns the normalised
    fields (model field names, plus `host_name`, `start` and `secrets`) and the errors."""
    errors = Errors()
    if not isinstance(data, dict):
        errors.add("non_field_errors", "the request body must be a JSON object")
        return {}, errors
    for key in sorted(set(data) - set(FIELDS)):
        errors.add(key, f"unknown field: allowed {', '.join(FIELDS)}")
    out: dict[str, Any] = {}

    name = data.get("name")
    if name is not None:
        try:
            out["name"] = opts.validate_name(name) if isinstance(name, str) else \
                opts.validate_name("")
        except InvalidArgument as exc:
            errors.add("name", _message(exc) + " (at most 128 characters)")
    out["image"] = parse_image(data.get("image"), errors)
    out["pull"] = _bool("pull", data.get("pull"), False, errors)

    command = data.get("command")
    if command is None:
        out["command"] = []
    elif _strings(command):
        out["command"] = command
    else:
        errors.add("command", 'must be a list of strings, e.g. ["sleep", "60"]')
    entrypoint = data.get("entrypoint")
    if entrypoint is None or _strings(entrypoint):
        out["entrypoint"] = entrypoint
    elif isinstance(entrypoint, str):
        out["entrypoint"] = opts.parse_command(entrypoint)
    else:
        errors.add("entrypoint", "must be a string (one executable) or a list of strings")

    out["env"] = _string_map("env", data.get("env"), errors, _ENV_NAME)
    out["secrets"] = _string_map("secrets", data.get("secrets"), errors, _ENV_NAME)
    for key in sorted(set(out["env"]) & set(out["secrets"])):
        errors.add("secrets", f"{key!r} is also in env: a name is either env or a secret")

    ports = data.get("ports") or []
    if not _strings(ports):
        errors.add("ports", 'must be a list of "[IP:][HOST:]CTR[/udp]" strings')
        ports = []
    for index, spec in enumerate(ports):
        try:
            parse_port_spec(spec)
        except InvalidArgument as exc:
            errors.add("ports", f"ports[{index}]: {_message(exc)}; allowed "
                                "[IP:][HOST:]CTR[/tcp|/udp], e.g. 8080:80")
    out["ports"] = ports

    volumes = data.get("volumes") or []
    if not _strings(volumes):
        errors.add("volumes", 'must be a list of "NAME:/path[:ro]" strings')
        volumes = []
    for index, spec in enumerate(volumes):
        try:
            opts.parse_volume(spec)
        except InvalidArgument as exc:
            errors.add("volumes", f"volumes[{index}]: {_message(exc)}")
    # Who may bind-mount which host paths is the privilege check's (panel/workloads/privileges)
    out["volumes"] = volumes

    networks = data.get("networks") or []
    if not _strings(networks):
        errors.add("networks", "must be a list of network names")
        networks = []
    out["networks"] = list(dict.fromkeys(networks))

    try:
        out["memory"] = opts.parse_memory(data.get("memory"))
    except InvalidArgument as exc:
        errors.add("memory", _message(exc) + " (allowed: 0 for no limit, or at least 6m)")
    cpus: Any = data.get("cpus")
    if cpus in (None, "", 0):
        out["cpus"] = 0.0
    else:
        try:
            out["cpus"] = float(cpus)
            if isinstance(cpus, bool) or not 0 < out["cpus"] <= MAX_CPUS:
                raise ValueError
        except (TypeError, ValueError):
            errors.add("cpus", f"{cpus!r} is not allowed: a decimal from 0.01 to {MAX_CPUS}, "
                               "e.g. 0.5")
    restart = data.get("restart")
    try:
        policy = opts.parse_restart(restart if isinstance(restart, str) or restart is None
                                    else str(restart))
        count = policy["MaximumRetryCount"]
        out["restart"] = policy["Name"] + (f":{count}" if count else "")
    except InvalidArgument as exc:
        errors.add("restart", _message(exc))
    out["healthcheck"] = parse_healthcheck(data.get("healthcheck"), errors)

    labels = data.get("labels")
    if isinstance(labels, list) and _strings(labels):
        try:
            labels = opts.parse_labels(labels)
        except InvalidArgument as exc:
            errors.add("labels", _message(exc))
            labels = {}
    out["labels"] = _string_map("labels", labels, errors)
    for key in out["labels"]:
        if key.startswith(RESERVED_LABEL_PREFIX):
            errors.add("labels", f"{key!r}: labels starting with {RESERVED_LABEL_PREFIX!r} "
                                 "are reserved for Berth")
    out["init"] = _bool("init", data.get("init"), False, errors)

    host = data.get("host")
    if host is not None and (not isinstance(host, str) or not host):
        errors.add("host", "must be the name of a host")
    out["host_name"] = host or None
    constraints = data.get("constraints") or []
    if not _strings(constraints):
        errors.add("constraints", 'must be a list of "label==value" / "label!=value" strings')
        constraints = []
    for text in constraints:
        try:
            parse_constraint(text)
        except ValueError as exc:
            errors.add("constraints", str(exc))
    out["constraints"] = constraints
    out["start"] = _bool("start", data.get("start"), True, errors)
    return _optional_fields(data, out, errors), errors


def _size(field: str, value: Any, errors: Errors) -> int:
    """Bytes, or a number with b/k/m/g/t (e.g. "64m"); 0/None for the default."""
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.fullmatch(value.lower()) if isinstance(value, str) else None
    if match is None:
        errors.add(field, f"{value!r} is not a size: use bytes, or a number with b, k, m, g "
                          "(e.g. 64m)")
        return 0
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def _optional_fields(data: dict[str, Any], out: dict[str, Any], errors: Errors,
                     ) -> dict[str, Any]:
    """The spec fields beyond the model's columns: each one present (not null) is checked, by
    its own check below or by the spec type, and added to `out`; absent ones are left out
    (their default applies), so a caller that sets some of them itself keeps its values."""
    given = {key for key in API_FIELDS if data.get(key) is not None}
    checked = dict(out)
    out = {}
    user = data.get("user")
    if isinstance(user, int) and not isinstance(user, bool):
        user = str(user)
    if user is not None and (not isinstance(user, str) or not user
                             or any(c.isspace() for c in user)):
        errors.add("user", 'must be USER, UID or UID:GID (e.g. "1000:1000"), without spaces')
    out["user"] = user
    workdir = data.get("workdir")
    if workdir is not None and (not isinstance(workdir, str) or not workdir.startswith("/")
                                or ".." in workdir.split("/")):
        errors.add("workdir", f"{workdir!r} must be an absolute path without '..'")
    out["workdir"] = workdir
    hostname = data.get("hostname")
    if hostname is not None and (not isinstance(hostname, str)
                                 or not _HOSTNAME.match(hostname)):
        errors.add("hostname", f"{hostname!r} is not a valid host name: letters, digits, '-', "
                               "'_' and '.', at most 63 characters a label")
    out["hostname"] = hostname
    out["read_only"] = _bool("read_only", data.get("read_only"), False, errors)
    stop_signal = data.get("stop_signal")
    if stop_signal is not None:
        try:
            if isinstance(stop_signal, bool) or not isinstance(stop_signal, str | int):
                raise InvalidArgument(f"invalid signal {stop_signal!r}")
            stop_signal = signal.Signals(opts.parse_signal(stop_signal)).name
        except (InvalidArgument, ValueError):
            errors.add("stop_signal", f"{stop_signal!r} is not a signal: use a name such as "
                                      "SIGTERM or QUIT, or a number")
    out["stop_signal"] = stop_signal
    for field in ("stop_timeout", "pids_limit"):
        value = data.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or (field == "stop_timeout" and value < 0)):
            allowed = "seconds, a whole number >= 0" if field == "stop_timeout" else \
                "a whole number (0 or -1: no limit)"
            errors.add(field, f"{value!r} is not allowed: {allowed}")
            value = None
        out[field] = opts.parse_pids_limit(value) if field == "pids_limit" else value
    for field in ("shm_size", "memory_reservation"):
        out[field] = _size(field, data.get(field), errors)
    handled = {*_CHECKED_ABOVE, *_CHECKED_HERE, *PANEL_FIELDS}
    rest = {key: data[key] for key in given if key not in handled}
    try:
        spec = ContainerSpec.from_dict({**rest, "image": "checked-above"})
    except SpecInvalid as exc:
        for field, messages in exc.errors.items():
            for message in messages:
                errors.add(field, message)
        spec = ContainerSpec.from_dict({key: value for key, value in rest.items()
                                        if key not in exc.errors})
    for field, messages in check_formats(spec).items():
        for message in messages:
            errors.add(field, message)
    for key in rest:
        out[key] = getattr(spec, key)
    for key in ("cap_add", "cap_drop"):  # as the protocol writes them: NET_ADMIN, ALL
        if key in out:
            out[key] = [cap.upper().removeprefix("CAP_") for cap in out[key]]
    checked.update({key: value for key, value in out.items() if key in given})
    return checked
