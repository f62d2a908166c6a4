"""Berth's containers in Docker's shapes (`docker ps`, `docker inspect`) and Docker's create
body as a Berth create request."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from panel.workloads.models import Container
from panel.workloads.spec import ValidationFailed

ZERO_TIME = "0001-01-01T00:00:00Z"
# Berth's runtime statuses as Docker's State.Status
STATUS = {"running": "running", "restarting": "restarting", "paused": "paused",
          "exited": "exited", "stopped": "exited", "created": "created", "removing": "removing",
          "removed": "dead", "dead": "dead"}


PROJECT_LABEL = "berth.project"  # names the project on create; every container shows its own


def labels_of(container: Container) -> dict[str, str]:
    """The container's labels, with its project as the berth.project label."""
    project = {PROJECT_LABEL: container.project.name} if container.project else {}
    return {**container.labels, **project}


def docker_id(container: Container) -> str:
    """A stable 64-hex id (Docker's ids are, and clients shorten them to 12)."""
    return hashlib.sha256(container.uid.bytes).hexdigest()


def state_of(container: Container) -> str:
    return STATUS.get(container.status or "", "created")


def _time(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else ZERO_TIME


def _published(container: Container) -> list[dict[str, Any]]:
    """Published ports as `docker ps` lists them."""
    ports = []
    for entry in container.ports:
        host_part, _, container_part = str(entry).rpartition(":")
        private, _, proto = container_part.partition("/")
        if not private.isdigit():  # a range: listed by `docker port`, not here
            continue
        ip, _, public = host_part.rpartition(":") if host_part.count(":") else ("", "", host_part)
        item: dict[str, Any] = {"PrivatePort": int(private), "Type": proto or "tcp"}
        if public.isdigit():
            item.update(PublicPort=int(public), IP=ip or "0.0.0.0")
        ports.append(item)
    return ports


def _networks(container: Container) -> dict[str, dict[str, Any]]:
    addresses = container.addresses if isinstance(container.addresses, dict) else {}
    names = container.networks or list(addresses) or ["bridge"]
    networks = {}
    for name in names:
        address = str(addresses.get(name) or "")
        ip, _, prefix = address.partition("/")
        networks[name] = {"NetworkID": hashlib.sha256(name.encode()).hexdigest(),
                          "IPAddress": ip, "IPPrefixLen": int(prefix) if prefix.isdigit() else 0,
                          "Aliases": [container.name], "Gateway": "", "MacAddress": ""}
    return networks


def summary(container: Container) -> dict[str, Any]:
    """One row of GET /containers/json."""
    state = state_of(container)
    return {"Id": docker_id(container), "Names": [f"/{container.name}"],
            "Image": container.image, "ImageID": "", "Command": " ".join(container.command),
            "Created": int(container.created_at.timestamp()), "State": state,
            "Status": _status_text(container, state), "Ports": _published(container),
            "Labels": labels_of(container), "SizeRw": 0, "SizeRootFs": 0,
            "HostConfig": {"NetworkMode": "default"},
            "NetworkSettings": {"Networks": _networks(container)}, "Mounts": []}


def _status_text(container: Container, state: str) -> str:
    if state == "running":
        return "Up" + (f" ({container.health})" if container.health else "")
    if state == "exited":
        return f"Exited ({container.exit_code})"
    return state.capitalize()


def inspect(container: Container, env: list[str]) -> dict[str, Any]:
    """GET /containers/{id}/json; `env` is what the caller may see of the environment."""
    state = state_of(container)
    networks = _networks(container)
    first = next(iter(networks.values()))
    command = list(container.command)
    options = container.options or {}
    return {
        "Id": docker_id(container), "Created": _time(container.created_at),
        "Path": command[0] if command else "", "Args": command[1:],
        "State": {"Status": state, "Running": state == "running", "Paused": state == "paused",
                  "Restarting": state == "restarting", "OOMKilled": container.oom_killed,
                  "Dead": state == "dead", "Pid": container.pid if state == "running" else 0,
                  "ExitCode": container.exit_code, "Error": "",
                  "StartedAt": _time(container.started_at),
                  "FinishedAt": _time(container.finished_at),
                  **({"Health": {"Status": container.health, "FailingStreak": 0, "Log": []}}
                     if container.healthcheck else {})},
        "Image": container.image, "Name": f"/{container.name}",
        "RestartCount": container.restart_count, "Driver": "overlay2", "Platform": "linux",
        "HostConfig": {"NetworkMode": (container.networks or ["bridge"])[0],
                       "RestartPolicy": {"Name": container.restart, "MaximumRetryCount": 0},
                       "Memory": container.memory, "NanoCpus": int(container.cpus * 1e9),
                       "Init": container.init, "Binds": list(container.volumes),
                       "PortBindings": {}},
        "Config": {"Hostname": options.get("hostname") or container.name[:63],
                   "User": options.get("user") or "", "Image": container.image,
                   "Cmd": command, "Entrypoint": container.entrypoint, "Env": env,
                   "Labels": labels_of(container), "WorkingDir": options.get("workdir") or "",
                   "Tty": False, "OpenStdin": False, "AttachStdout": False},
        "NetworkSettings": {"IPAddress": first["IPAddress"],
                            "IPPrefixLen": first["IPPrefixLen"], "Gateway": "",
                            "Ports": {}, "Networks": networks},
        "Mounts": [], "Node": {"Name": container.host.name if container.host else ""},
    }


KINDS: dict[type, str] = {dict: "an object", list: "an array", str: "a string",
                          int: "a number"}


def field(obj: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    """obj[key] when it is of `kind` (None when absent or null); else the field is refused."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ValidationFailed({f"{where}{key}": [f"must be {KINDS[kind]}"]})
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise ValidationFailed({f"{where}{key}": ["must be an array of strings"]})
    return value


def _requested_ports(host: dict[str, Any]) -> list[str]:
    ports = []
    bindings_of = field(host, "PortBindings", dict, "HostConfig.") or {}
    for private, bindings in bindings_of.items():
        if not isinstance(bindings, list) or not all(isinstance(b, dict) for b in bindings):
            raise ValidationFailed({"HostConfig.PortBindings": [
                f"{private}: must be an array of {{HostIp, HostPort}}"]})
        for binding in bindings or [{}]:
            parts = (str(binding.get("HostIp") or ""), str(binding.get("HostPort") or ""),
                     str(private))
            ports.append(":".join(p for p in parts if p))
    return ports


def create_request(body: Any, name: str) -> dict[str, Any]:
    """Docker's POST /containers/create body as Berth's create request; a field of the wrong
    type, or one Berth cannot honour, is refused by name rather than dropped."""
    if not isinstance(body, dict):
        raise ValidationFailed({"body": ["must be a JSON object"]})
    host = field(body, "HostConfig", dict) or {}
    if body.get("Tty") or body.get("OpenStdin"):
        raise ValidationFailed({"Tty": ["interactive containers (-it) are not supported yet: "
                                        "run detached (-d)"]})
    labels = dict(field(body, "Labels", dict) or {})
    labels.pop(PROJECT_LABEL, None)  # a directive (the caller reads it from the body), Berth's
    request: dict[str, Any] = {"image": field(body, "Image", str) or "", "labels": labels,
                               "init": bool(host.get("Init"))}
    if name:
        request["name"] = name
    entry = body.get("Entrypoint")
    if isinstance(entry, str):
        body = {**body, "Entrypoint": [entry]}
    for docker_key, berth_key in (("Cmd", "command"), ("Entrypoint", "entrypoint")):
        if field(body, docker_key, list):
            request[berth_key] = list(body[docker_key])
    if field(body, "Env", list):
        request["env"] = dict(item.split("=", 1) if "=" in item else (item, "")
                              for item in body["Env"])
    for docker_key, berth_key in (("User", "user"), ("WorkingDir", "workdir"),
                                  ("Hostname", "hostname")):
        if field(body, docker_key, str):
            request[berth_key] = body[docker_key]
    if field(host, "Memory", int, "HostConfig."):
        request["memory"] = host["Memory"]
    if field(host, "NanoCpus", int, "HostConfig."):
        request["cpus"] = host["NanoCpus"] / 1e9
    restart = field(host, "RestartPolicy", dict, "HostConfig.") or {}
    if restart.get("Name"):
        request["restart"] = str(restart["Name"])
    if field(host, "Binds", list, "HostConfig."):
        request["volumes"] = list(host["Binds"])
    ports = _requested_ports(host)
    if ports:
        request["ports"] = ports
    mode = field(host, "NetworkMode", str, "HostConfig.")
    networking = field(body, "NetworkingConfig", dict) or {}
    endpoints = field(networking, "EndpointsConfig", dict, "NetworkingConfig.") or {}
    networks = [mode] if mode and mode not in ("default", "bridge") else []
    networks += [n for n in endpoints if n not in networks and n not in ("default", "bridge")]
    if networks:
        request["networks"] = networks
    aliases = sorted({str(a) for e in endpoints.values() if isinstance(e, dict)
                      for a in e.get("Aliases") or []})
    if aliases:
        request["network_aliases"] = aliases
    return request
