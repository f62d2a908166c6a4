"""One service of a compose file -> a `ServiceSpec`.

Every supported key is read here with its position; what the container spec holds is then
passed through `panel.workloads.spec.parse_container_request` (the validator the container API
uses), and its complaints are reported at the compose key they came from."""

from __future__ import annotations

import math
import re
import shlex
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from panel.fleet.placement import parse_constraint
from panel.stacks.compose.errors import Mark
from panel.stacks.compose.files import FileObject, bound_files, parse_env_files, parse_uses
from panel.stacks.compose.host_options import KEYS as HOST_OPTION_KEYS
from panel.stacks.compose.host_options import parse_host_options
from panel.stacks.compose.loader import Node
from panel.stacks.compose.mounts import STACK_DIR, parse_mounts
from panel.stacks.compose.ports import Published, parse_ports
from panel.stacks.compose.spec import (
    CONTAINER_KEYS,
    SERVICE_HEALTHY,
    SERVICE_STARTED,
    UPDATE_DEFAULTS,
    NetworkSpec,
    ServiceSpec,
    VolumeSpec,
)
from panel.stacks.compose.values import (
    Context,
    Entry,
    boolean,
    check_keys,
    describe,
    duration,
    integer,
    join,
    key_values,
    mapping,
    size,
    string,
    string_list,
)
from panel.workloads.spec import parse_container_request
from runtime.containers import options as opts
from runtime.errors import InvalidArgument

SERVICE_KEYS = ("image", "pull_policy", "command", "entrypoint", "environment", "ports",
                "volumes", "networks", "depends_on", "healthcheck", "restart", "init", "user",
                "working_dir", "labels", "stop_signal", "stop_grace_period", "hostname",
                "read_only", "deploy", "container_name", "network_mode", "links",
                "mem_reservation", "profiles", "env_file", "secrets", "configs",
                *HOST_OPTION_KEYS)
# read by the stack (resolve.py) before the service itself: extends merges another service in;
# build: is refused below with advice that depends on whether image: is there too
STACK_LEVEL_KEYS = ("extends", "build")
_NO_PRIVILEGE = ("Berth runs every container with its secure defaults and grants no extra "
                 "privileges, capabilities or devices; remove {key}")
_NO_NAMESPACE = ("Berth connects services through the stack's networks and never shares host or "
                 "container namespaces; remove {key} and use networks:")
_NO_DNS = ("Berth's network DNS resolves service names and aliases; remove {key} (use "
           "networks: with aliases: for extra names)")
_NO_TUNING = "{key} is not supported; Berth sets memory, CPU and pids under deploy.resources.limits"
REFUSED_SERVICE_KEYS: dict[str, str] = {
    "external_links": "use a shared external network (networks: with external: true) instead",
    "volumes_from": "share a named volume between the services instead (volumes: NAME:/path "
                    "in each)",
    "mem_limit": "use deploy.resources.limits.memory",
    "memswap_limit": "swap limits are not supported; use deploy.resources.limits.memory",
    "cpus": "use deploy.resources.limits.cpus",
    "pids_limit": "use deploy.resources.limits.pids",
    "scale": "use deploy.replicas",
    "tty": "Berth runs services detached, without a terminal; remove tty",
    "stdin_open": "Berth runs services detached, without stdin; remove stdin_open",
    "annotations": "use labels:",
    "runtime": "Berth picks the OCI runtime per host; remove runtime",
    "isolation": "Windows isolation is not supported; remove isolation",
    "develop": "compose watch is a development feature; remove develop",
    "attach": "Berth keeps logs of every service; remove attach",
    "post_start": "lifecycle hooks are not supported; run the step in the entrypoint",
    "pre_stop": "lifecycle hooks are not supported; handle stop_signal in the application",
    "gpus": "GPUs are not supported",
    "credential_spec": "credential specs are a Windows feature; not supported",
}
for _key in ("device_cgroup_rules", "userns_mode", "oom_kill_disable", "oom_score_adj",
             "cgroup_parent", "cgroup"):
    REFUSED_SERVICE_KEYS[_key] = _NO_PRIVILEGE.format(key=_key)
for _key in ("uts", "net"):
    REFUSED_SERVICE_KEYS[_key] = _NO_NAMESPACE.format(key=_key)
for _key in ("domainname", "mac_address"):
    REFUSED_SERVICE_KEYS[_key] = _NO_DNS.format(key=_key)
for _key in ("cpu_count", "cpu_percent", "cpu_shares", "cpu_period", "cpu_quota",
             "cpu_rt_runtime", "cpu_rt_period", "cpuset", "blkio_config", "mem_swappiness",
             "storage_opt"):
    REFUSED_SERVICE_KEYS[_key] = _NO_TUNING.format(key=_key)

HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period", "start_interval",
               "disable")
HEALTH_REFUSED: dict[str, str] = {}
DEPLOY_KEYS = ("mode", "replicas", "resources", "placement", "update_config")
DEPLOY_REFUSED = {
    "restart_policy": "use the service's restart: (no, always, on-failure[:N], unless-stopped)",
    "rollback_config": "Berth rolls back to the previous revision; set "
                       "update_config.failure_action: rollback",
    "labels": "use the service's labels:",
    "endpoint_mode": "replicas share the service name and published ports; remove "
                     "endpoint_mode",
}
UPDATE_KEYS = ("parallelism", "delay", "order", "failure_action", "monitor")
UPDATE_REFUSED = {"max_failure_ratio": "a rollout stops at the first replica that fails; "
                                       "remove max_failure_ratio"}
ORDERS = ("start-first", "stop-first")
FAILURE_ACTIONS = ("rollback", "pause", "continue")
# Berth pulls an image a host lacks; "always" and "daily"-style policies also mean that here
# (the stack's update check and "pull and redeploy" fetch a moved tag)
PULL_POLICIES = {"missing": True, "if_not_present": True, "always": True, "never": False}
CONDITIONS = (SERVICE_STARTED, SERVICE_HEALTHY)
# Docker takes underscores in host names and aliases (service names such as my_db resolve), so
# labels are [A-Za-z0-9_-], not starting or ending with '-'; the kernel keeps 64 bytes of one.
_LABEL = r"[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
HOSTNAME_MAX = 64


@dataclass
class Dependency:
    condition: str
    path: str
    mark: Mark


@dataclass
class ParsedService:
    """A service's spec plus what the stack-wide checks need (positions of its references)."""

    spec: ServiceSpec
    dependencies: dict[str, Dependency] = field(default_factory=dict)
    published: list[Published] = field(default_factory=list)
    networks_used: set[str] = field(default_factory=set)
    volumes_used: set[str] = field(default_factory=set)
    has_healthcheck: bool = False
    # network_mode: service:NAME, resolved by the stack once every service is known
    network_service: Dependency | None = None
    network_service_name: str = ""
    links: list[tuple[str, str, Dependency]] = field(default_factory=list)  # service, alias
    profiles: list[str] = field(default_factory=list)
    optional: set[str] = field(default_factory=set)  # depends_on with required: false


@dataclass
class StackRefs:
    """What a service may refer to: declared volumes and networks (by compose key)."""

    volumes: Mapping[str, VolumeSpec]
    networks: Mapping[str, NetworkSpec]
    default_network: str  # the real name of the `default` network
    stack: str = ""
    secrets: Mapping[str, FileObject] = field(default_factory=dict)
    configs: Mapping[str, FileObject] = field(default_factory=dict)
    secret_files: set[str] = field(default_factory=set)  # files that are a secret's file:


class _Request:
    """The input of parse_container_request, and where each of its fields came from."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origin: dict[str, tuple[str, Node]] = {}
        self.entries: dict[str, list[Entry]] = {}

    def set(self, name: str, value: Any, path: str, node: Node) -> None:
        self.data[name] = value
        self.origin[name] = (path, node)


def _command(ctx: Context, node: Node, path: str, allow_null: bool) -> list[str] | None:
    """`command`/`entrypoint`: a list, or a string split as a shell would (quotes kept)."""
    if node.value is None and allow_null:
        return None
    if isinstance(node.value, str):
        try:
            return shlex.split(node.value)
        except ValueError as exc:
            ctx.error(path, node.mark, f"cannot split {node.value!r} into words ({exc}); "
                                       'use a list such as ["sh", "-c", "…"]')
            return None
    return string_list(ctx, node, path, '["sleep", "60"]')


def _environment(ctx: Context, node: Node, path: str, request: _Request,
                 base: Mapping[str, str]) -> None:
    """`environment:` over `base` (what the env files set)."""
    entries = key_values(ctx, node, path, "NAME")
    if entries is None:
        return
    env: dict[str, str] = dict(base)
    seen: set[str] = set()
    for entry in entries:
        if entry.key in seen:  # Compose refuses it too: which value was meant?
            ctx.error(entry.path, entry.mark, f"{entry.key!r} is set twice in environment: "
                                              "keep one")
            continue
        seen.add(entry.key)
        if entry.value is not None:
            env[entry.key] = entry.value
        elif entry.key in ctx.environment:  # a bare NAME takes the stack's value, as in compose
            env[entry.key] = str(ctx.environment[entry.key])
    request.set("env", dict(sorted(env.items())), path, node)
    request.entries["env"] = entries


def _labels(ctx: Context, node: Node, path: str, request: _Request) -> None:
    entries = key_values(ctx, node, path, "KEY")
    if entries is None:
        return
    labels = {entry.key: entry.value or "" for entry in entries}
    request.set("labels", dict(sorted(labels.items())), path, node)
    request.entries["labels"] = entries


def _healthcheck(ctx: Context, node: Node, path: str) -> tuple[dict[str, Any] | None, bool]:
    """The healthcheck input of parse_healthcheck, and whether it probes anything."""
    fields = mapping(ctx, node, path, 'test: ["CMD", "true"]')
    if fields is None:
        return None, False
    check_keys(ctx, node, path, HEALTH_KEYS, HEALTH_REFUSED)
    result: dict[str, Any] = {}
    disabled = False
    if "disable" in fields:
        disabled = bool(boolean(ctx, fields["disable"], join(path, "disable")))
    if disabled:
        if "test" in fields:
            ctx.error(join(path, "disable"), node.key_mark("disable"),
                      "disable: true and test: contradict each other; keep one")
        return {"test": ["NONE"]}, False
    if "test" not in fields:
        ctx.error(path, node.mark, 'test: is required: the probe command, e.g. test: ["CMD", '
                                   '"wget", "-q", "--spider", "http://localhost/"] (Berth does '
                                   "not read the image's HEALTHCHECK), or disable: true")
        return None, False
    test_node = fields["test"]
    test_path = join(path, "test")
    if isinstance(test_node.value, str):
        if not test_node.value.strip():
            ctx.error(test_path, test_node.mark, "must not be empty")
            return None, False
        result["test"] = ["CMD-SHELL", test_node.value]
    else:
        test = string_list(ctx, test_node, test_path, '["CMD", "pg_isready"]')
        if test is None:
            return None, False
        kind, args = (test[0], test[1:]) if test else ("", [])
        if kind not in ("CMD", "CMD-SHELL", "NONE") or (kind == "CMD" and not args) or (
                kind == "CMD-SHELL" and len(args) != 1) or (kind == "NONE" and args):
            ctx.error(test_path, test_node.mark, 'must be a command string, or a list "CMD", '
                      'then the program and its arguments, or "CMD-SHELL" and one shell '
                      'command, or just "NONE"')
            return None, False
        result["test"] = test
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if key in fields and duration(ctx, fields[key], join(path, key)) is not None:
            result[key] = fields[key].value
    if "retries" in fields:
        retries = integer(ctx, fields["retries"], join(path, "retries"), minimum=0)
        if retries is not None:
            result["retries"] = retries
    return result, result["test"] != ["NONE"]


def _constraints(ctx: Context, node: Node, path: str) -> list[str]:
    texts = string_list(ctx, node, path, '["node.labels.zone==eu"]')
    result: list[str] = []
    for index, text in enumerate(texts or []):
        item_path, mark = join(path, index), node.value[index].mark
        try:
            constraint = parse_constraint(text)
        except ValueError as exc:
            ctx.error(item_path, mark, f"{exc} (or node.labels.KEY==VALUE)")
            continue
        label = constraint.label
        if label.startswith("node.labels."):
            label = label.removeprefix("node.labels.")
        elif label.startswith(("node.", "engine.")):
            ctx.error(item_path, mark, f"{text!r}: Berth places by host labels only; use "
                                       "node.labels.KEY==VALUE or KEY==VALUE")
            continue
        result.append(f"{label}{constraint.operator}{constraint.value}")
    return result


def _update_config(ctx: Context, node: Node, path: str) -> dict[str, Any]:
    config = dict(UPDATE_DEFAULTS)
    fields = mapping(ctx, node, path, "{parallelism: 1, order: start-first}")
    if fields is None:
        return config
    check_keys(ctx, node, path, UPDATE_KEYS, UPDATE_REFUSED)
    if "parallelism" in fields:
        parallelism = integer(ctx, fields["parallelism"], join(path, "parallelism"), minimum=0)
        if parallelism is not None:
            config["parallelism"] = parallelism
    for key in ("delay", "monitor"):
        if key in fields:
            value = duration(ctx, fields[key], join(path, key))
            config[key] = config[key] if value is None else value
    for key, allowed in (("order", ORDERS), ("failure_action", FAILURE_ACTIONS)):
        if key in fields:
            item = fields[key]
            if item.value in allowed:
                config[key] = item.value
            else:
                ctx.error(join(path, key), item.mark, f"must be {' or '.join(allowed)}, not "
                                                      f"{describe(item.value)}")
    return config


def _limits(ctx: Context, node: Node, path: str, request: _Request,
            container: dict[str, Any]) -> None:
    fields = mapping(ctx, node, path, "{cpus: 0.5, memory: 256m, pids: 100}")
    if fields is None:
        return
    check_keys(ctx, node, path, ("cpus", "memory", "pids"),
               {"devices": "devices are not supported"})
    if "cpus" in fields:
        item = fields["cpus"]
        if isinstance(item.value, bool) or not isinstance(item.value, int | float | str):
            ctx.error(join(path, "cpus"), item.mark, f"must be a decimal such as 0.5, not "
                                                     f"{describe(item.value)}")
        else:
            request.set("cpus", item.value, join(path, "cpus"), item)
    if "memory" in fields:
        memory = size(ctx, fields["memory"], join(path, "memory"), "256m or 1g")
        if memory is not None:
            request.set("memory", memory, join(path, "memory"), fields["memory"])
    if "pids" in fields:
        pids = integer(ctx, fields["pids"], join(path, "pids"), minimum=-1)
        if pids is not None:
            container["pids_limit"] = opts.parse_pids_limit(pids)


def _reservations(ctx: Context, node: Node, path: str, request: _Request) -> None:
    """deploy.resources.reservations: what placement keeps free for the service (and the
    memory soft limit)."""
    fields = mapping(ctx, node, path, "{cpus: 0.25, memory: 128m}")
    if fields is None:
        return
    check_keys(ctx, node, path, ("cpus", "memory"),
               {"devices": "device reservations (GPUs) are not supported",
                "generic_resources": "generic resources are not supported"})
    if "memory" in fields:
        memory = size(ctx, fields["memory"], join(path, "memory"), "128m")
        if memory is not None:
            request.set("memory_reservation", memory, join(path, "memory"), fields["memory"])
    if "cpus" in fields:
        item = fields["cpus"]
        try:
            cpus = float(item.value)
        except (TypeError, ValueError):
            cpus = -1.0
        if isinstance(item.value, bool) or not 0 <= cpus <= 1024:
            ctx.error(join(path, "cpus"), item.mark, f"must be a decimal such as 0.25, not "
                                                     f"{describe(item.value)}")
        else:
            request.set("cpus_reservation", cpus, join(path, "cpus"), item)


def _deploy(ctx: Context, node: Node, path: str, request: _Request, spec: ServiceSpec) -> None:
    fields = mapping(ctx, node, path, "{replicas: 2}")
    if fields is None:
        return
    check_keys(ctx, node, path, DEPLOY_KEYS, DEPLOY_REFUSED)
    if "mode" in fields and fields["mode"].value != "replicated":
        ctx.error(join(path, "mode"), fields["mode"].mark,
                  "only replicated is supported (deploy.replicas copies, placed on the hosts "
                  "that fit); global mode is not")
    if "replicas" in fields:
        replicas = integer(ctx, fields["replicas"], join(path, "replicas"), minimum=0)
        spec.replicas = 1 if replicas is None else replicas
    if "resources" in fields:
        resources = mapping(ctx, fields["resources"], join(path, "resources"),
                            "{limits: {memory: 256m}}")
        if resources is not None:
            check_keys(ctx, fields["resources"], join(path, "resources"),
                       ("limits", "reservations"))
            if "limits" in resources:
                _limits(ctx, resources["limits"], join(path, "resources.limits"), request,
                        spec.container)
            if "reservations" in resources:
                _reservations(ctx, resources["reservations"],
                              join(path, "resources.reservations"), request)
    if "placement" in fields:
        placement = mapping(ctx, fields["placement"], join(path, "placement"),
                            '{constraints: ["node.labels.zone==eu"]}')
        if placement is not None:
            check_keys(ctx, fields["placement"], join(path, "placement"), ("constraints",), {
                "preferences": "placement preferences are not supported; use constraints",
                "max_replicas_per_node": "not supported; Berth spreads replicas over the "
                                         "hosts that fit"})
            if "constraints" in placement:
                constraint_path = join(path, "placement.constraints")
                request.set("constraints", _constraints(ctx, placement["constraints"],
                                                        constraint_path),
                            constraint_path, placement["constraints"])
    if "update_config" in fields:
        spec.update_config = _update_config(ctx, fields["update_config"],
                                            join(path, "update_config"))


def _networks(ctx: Context, node: Node, path: str, refs: StackRefs, parsed: ParsedService,
              request: _Request) -> None:
    names: list[str] = []
    aliases: dict[str, list[str]] = {}
    if node.is_seq:
        for index, item in enumerate(node.value):
            listed = string(ctx, item, join(path, index), empty=False)
            if listed is None:
                continue
            if listed in names:
                ctx.error(join(path, index), item.mark, f"network {listed!r} is listed twice")
                continue
            names.append(listed)
    elif node.is_map:
        for name, options in node.value.items():
            names.append(name)
            option_path = join(path, name)
            fields = mapping(ctx, options, option_path, "{aliases: [db]}", null_is_empty=True)
            if not fields:
                continue
            check_keys(ctx, options, option_path, ("aliases",), {
                "ipv4_address": "Berth assigns addresses (replicas cannot share one); reach "
                                "the service by name or alias instead",
                "ipv6_address": "IPv6 is not supported; reach the service by name or alias",
                "priority": "remove priority: the first network listed is the default route",
            })
            if "aliases" in fields:
                given = string_list(ctx, fields["aliases"], join(option_path, "aliases"),
                                    '["db"]') or []
                for index, alias in enumerate(given):
                    if not _HOSTNAME.fullmatch(alias):
                        ctx.error(join(option_path, f"aliases[{index}]"),
                                  fields["aliases"].value[index].mark,
                                  f"{alias!r} is not a valid DNS name (letters, digits, '_', "
                                  "'-' and '.')")
                aliases[name] = sorted(set(given))
    else:
        ctx.error(path, node.mark, f"must be a list of network names or a mapping of names to "
                                   f"{{aliases: […]}}, not {describe(node.plain())}")
        return
    real: list[str] = []
    for index, name in enumerate(names):
        mark = node.value[index].mark if node.is_seq else node.key_mark(name)
        item_path = join(path, index) if node.is_seq else join(path, name)
        if name == "default":
            real.append(refs.default_network)
        elif name in refs.networks:
            real.append(refs.networks[name].name)
        else:
            known = ", ".join(sorted(refs.networks)) or "none"
            ctx.error(item_path, mark, f"undefined network {name!r}: declare it under the "
                                       f"top-level networks: (declared: {known})")
            continue
        parsed.networks_used.add(name)
        if aliases.get(name):
            parsed.spec.aliases[real[-1]] = aliases[name]
    request.set("networks", real, path, node)


def _depends_on(ctx: Context, node: Node, path: str, parsed: ParsedService) -> None:
    if node.is_seq:
        for index, item in enumerate(node.value):
            listed = string(ctx, item, join(path, index), empty=False)
            if listed is not None:
                parsed.dependencies[listed] = Dependency(SERVICE_STARTED, join(path, index),
                                                         item.mark)
        return
    if not node.is_map:
        ctx.error(path, node.mark, f"must be a list of services or a mapping of services to "
                                   f"{{condition: …}}, not {describe(node.plain())}")
        return
    for name, options in node.value.items():
        item_path = join(path, name)
        condition = SERVICE_STARTED
        fields = mapping(ctx, options, item_path, "{condition: service_healthy}",
                         null_is_empty=True)
        if fields:
            check_keys(ctx, options, item_path, ("condition", "restart", "required"))
            if "restart" in fields:  # Berth restarts no dependant when a dependency restarts
                boolean(ctx, fields["restart"], join(item_path, "restart"))
            if "required" in fields and boolean(ctx, fields["required"],
                                                join(item_path, "required")) is False:
                parsed.optional.add(name)
            if "condition" in fields:
                item = fields["condition"]
                if item.value in CONDITIONS:
                    condition = item.value
                else:
                    advice = " (one-off jobs are not supported)" \
                        if item.value == "service_completed_successfully" else ""
                    ctx.error(join(item_path, "condition"), item.mark,
                              f"must be service_started or service_healthy, not "
                              f"{describe(item.value)}{advice}")
        parsed.dependencies[name] = Dependency(condition, item_path, node.key_mark(name))


def _scalar_fields(ctx: Context, fields: dict[str, Node], path: str,
                   container: dict[str, Any]) -> None:
    """user, working_dir, hostname, read_only, stop_signal, stop_grace_period."""
    if "user" in fields:
        user = string(ctx, fields["user"], join(path, "user"), numbers=True, empty=False)
        if user is not None and any(c.isspace() for c in user):
            ctx.error(join(path, "user"), fields["user"].mark, "must be USER, UID or UID:GID")
        else:
            container["user"] = user
    if "working_dir" in fields:
        workdir = string(ctx, fields["working_dir"], join(path, "working_dir"), empty=False)
        if workdir is not None and (not workdir.startswith("/") or ".." in workdir.split("/")):
            ctx.error(join(path, "working_dir"), fields["working_dir"].mark,
                      f"{workdir!r} must be an absolute path without '..'")
        else:
            container["workdir"] = workdir
    if "hostname" in fields:
        hostname = string(ctx, fields["hostname"], join(path, "hostname"))
        if hostname is not None and (not _HOSTNAME.fullmatch(hostname)
                                     or len(hostname) > HOSTNAME_MAX):
            ctx.error(join(path, "hostname"), fields["hostname"].mark,
                      f"{hostname!r} is not a valid host name (letters, digits, '_', '-' and "
                      f"'.', at most {HOSTNAME_MAX} characters)")
        else:
            container["hostname"] = hostname
    if "read_only" in fields:
        container["read_only"] = bool(boolean(ctx, fields["read_only"], join(path, "read_only")))
    if "stop_signal" in fields:
        item = fields["stop_signal"]
        text = string(ctx, item, join(path, "stop_signal"), numbers=True, empty=False)
        if text is not None:
            try:
                container["stop_signal"] = signal.Signals(opts.parse_signal(text)).name
            except (InvalidArgument, ValueError) as exc:
                ctx.error(join(path, "stop_signal"), item.mark, str(exc))
    if "stop_grace_period" in fields:
        grace = duration(ctx, fields["stop_grace_period"], join(path, "stop_grace_period"))
        if grace is not None:
            container["stop_timeout"] = math.ceil(grace / 1_000_000_000)


def _network_mode(ctx: Context, fields: dict[str, Node], path: str, parsed: ParsedService,
                  request: _Request) -> None:
    """network_mode: host | none | container:NAME | service:NAME (the stack resolves the last
    to that service's container and starts it first). It replaces networks:."""
    item, mode_path = fields["network_mode"], join(path, "network_mode")
    mode = string(ctx, item, mode_path, empty=False)
    if mode is None:
        return
    request.data["networks"] = []
    if "networks" in fields:
        ctx.error(join(path, "networks"), fields["networks"].mark,
                  "networks: and network_mode: cannot be combined (as in Compose): keep one")
    if mode == "bridge":
        ctx.error(mode_path, item.mark, "network_mode: bridge is what networks: does here: "
                                        "remove network_mode (the service joins the stack's "
                                        "default network)")
    elif mode.startswith("service:"):
        target = mode.removeprefix("service:")
        parsed.network_service_name = target
        parsed.network_service = Dependency(SERVICE_STARTED, mode_path, item.mark)
    else:
        request.set("network_mode", mode, mode_path, item)


def _names_links_and_profiles(ctx: Context, fields: dict[str, Node], path: str,
                              parsed: ParsedService, request: _Request) -> None:
    """container_name, mem_reservation (the v2 key), links and profiles."""
    if "container_name" in fields:
        name = string(ctx, fields["container_name"], join(path, "container_name"), empty=False)
        if name is not None:
            request.set("name", name, join(path, "container_name"), fields["container_name"])
    if "mem_reservation" in fields:
        item = fields["mem_reservation"]
        reservation = size(ctx, item, join(path, "mem_reservation"), "128m")
        if reservation is not None:
            request.set("memory_reservation", reservation, join(path, "mem_reservation"), item)
    if "links" in fields:
        links_path = join(path, "links")
        for index, text in enumerate(string_list(ctx, fields["links"], links_path,
                                                 '["db", "db:database"]') or []):
            target, _, alias = text.partition(":")
            mark = fields["links"].value[index].mark
            if not target or (alias and not _HOSTNAME.fullmatch(alias)):
                ctx.error(join(links_path, index), mark, f"{text!r} must be SERVICE or "
                          "SERVICE:ALIAS, the alias a DNS name (letters, digits, '_', '-', '.')")
                continue
            parsed.links.append((target, alias, Dependency(SERVICE_STARTED,
                                                           join(links_path, index), mark)))
    if "profiles" in fields:
        parsed.profiles = string_list(ctx, fields["profiles"], join(path, "profiles"),
                                      '["debug"]') or []


def _report(ctx: Context, request: _Request, errors: Mapping[str, list[str]], path: str,
            node: Node) -> None:
    """parse_container_request's complaints, at the compose key each field came from."""
    for name, messages in errors.items():
        field_path, field_node = request.origin.get(name, (path, node))
        for message in messages:
            mark = field_node.mark
            entry_path = field_path
            for entry in request.entries.get(name, []):
                if message.startswith(repr(entry.key)):
                    entry_path, mark = entry.path, entry.mark
                    break
            ctx.error(entry_path, mark, message)


def parse_service(ctx: Context, name: str, node: Node, path: str, refs: StackRefs,
                  key_mark: Mark) -> ParsedService | None:
    """The spec of service `name`, or None when its definition is not even a mapping."""
    fields = mapping(ctx, node, path, "{image: nginx:1.27}")
    if fields is None:
        return None
    check_keys(ctx, node, path, (*SERVICE_KEYS, *STACK_LEVEL_KEYS), REFUSED_SERVICE_KEYS)
    container: dict[str, Any] = dict.fromkeys(CONTAINER_KEYS)
    spec = ServiceSpec(name=name, container=container)
    parsed = ParsedService(spec=spec)
    request = _Request()
    if "build" in fields:
        image = fields["image"].value if "image" in fields else None
        ctx.error(join(path, "build"), node.key_mark("build"),
                  f"builds from source are not supported yet; this service also names image: "
                  f"{image}: remove build: to deploy that image as it is" if image else
                  "builds from source are not supported yet: build the image, push it to a "
                  "registry Berth's hosts can pull from, and name it in image:")
    elif "image" not in fields:
        ctx.error(path, key_mark, "image: is required: Berth deploys images, e.g. image: "
                                  "nginx:1.27")
    else:
        image = string(ctx, fields["image"], join(path, "image"), empty=False)
        if image is not None:
            request.set("image", image, join(path, "image"), fields["image"])
    request.data["pull"] = True
    if "pull_policy" in fields:
        item = fields["pull_policy"]
        if isinstance(item.value, str) and item.value in PULL_POLICIES:
            request.data["pull"] = PULL_POLICIES[item.value]
        else:
            ctx.error(join(path, "pull_policy"), item.mark, "builds from source are not "
                      "supported yet: push the image and use pull_policy: missing"
                      if item.value == "build" else f"must be always, missing, "
                      f"if_not_present or never, not {describe(item.value)} (Berth pulls an "
                      "image a host lacks and shows \"update available\" when its tag moves)")
    for key, allow_null in (("command", False), ("entrypoint", True)):
        if key in fields:
            words = _command(ctx, fields[key], join(path, key), allow_null)
            if words is not None:
                request.set(key, words, join(path, key), fields[key])
    from_files = parse_env_files(ctx, fields["env_file"], join(path, "env_file")) \
        if "env_file" in fields else {}
    if "environment" in fields:
        _environment(ctx, fields["environment"], join(path, "environment"), request, from_files)
    elif from_files:
        request.set("env", dict(sorted(from_files.items())), join(path, "env_file"),
                    fields["env_file"])
    if "labels" in fields:
        _labels(ctx, fields["labels"], join(path, "labels"), request)
    if "ports" in fields:
        ports, parsed.published = parse_ports(ctx, fields["ports"], join(path, "ports"))
        request.set("ports", ports, join(path, "ports"), fields["ports"])
    mounts: list[str] = []
    if "volumes" in fields:
        mounts = parse_mounts(ctx, fields["volumes"], join(path, "volumes"), refs.volumes,
                              parsed.volumes_used)
        # parse_container_request refuses bind mounts outright; they were checked above
        request.set("volumes", [m for m in mounts if not m.startswith("/") or ":" not in m],
                    join(path, "volumes"), fields["volumes"])
    if "network_mode" in fields:
        _network_mode(ctx, fields, path, parsed, request)
    elif "networks" in fields:
        _networks(ctx, fields["networks"], join(path, "networks"), refs, parsed, request)
    else:
        parsed.networks_used.add("default")
        request.data["networks"] = [refs.default_network]
    if "depends_on" in fields:
        _depends_on(ctx, fields["depends_on"], join(path, "depends_on"), parsed)
    if "healthcheck" in fields:
        health, parsed.has_healthcheck = _healthcheck(ctx, fields["healthcheck"],
                                                      join(path, "healthcheck"))
        if health is not None:
            request.set("healthcheck", health, join(path, "healthcheck"), fields["healthcheck"])
    if "restart" in fields:
        restart = string(ctx, fields["restart"], join(path, "restart"), empty=False)
        if restart is not None:
            request.set("restart", restart, join(path, "restart"), fields["restart"])
    if "init" in fields:
        init = boolean(ctx, fields["init"], join(path, "init"))
        if init is not None:
            request.set("init", init, join(path, "init"), fields["init"])
    _scalar_fields(ctx, fields, path, container)
    parse_host_options(ctx, fields, path, request)
    _names_links_and_profiles(ctx, fields, path, parsed, request)
    if "deploy" in fields:
        _deploy(ctx, fields["deploy"], join(path, "deploy"), request, spec)

    normalised, errors = parse_container_request(request.data)
    if "image" not in request.data:
        errors.pop("image", None)  # missing or not a string: reported above
    _report(ctx, request, errors, path, node)
    for key in CONTAINER_KEYS:
        if key in normalised:
            container[key] = normalised[key]
    if normalised.get("name"):
        container["name"] = normalised["name"]
        if spec.replicas > 1:
            ctx.error(join(path, "container_name"), fields["container_name"].mark,
                      f"container_name {normalised['name']!r} names one container, and this "
                      f"service runs {spec.replicas} replicas: remove container_name or run "
                      "one replica (as in Docker)")
    container["volumes"] = [m for m in mounts if not _in_stack_dir(m)]
    container["read_only"] = bool(container["read_only"])
    _stack_files(ctx, fields, path, refs, container, [m for m in mounts if _in_stack_dir(m)])
    return parsed


def _in_stack_dir(mount: str) -> bool:
    return mount == STACK_DIR or mount.startswith((f"{STACK_DIR}/", f"{STACK_DIR}:"))


def _stack_files(ctx: Context, fields: dict[str, Node], path: str, refs: StackRefs,
                 container: dict[str, Any], relative: list[str]) -> None:
    """secrets:, configs: (files mounted read-only) and the relative binds (the stack's
    directory on the replica's host, with the uploaded files under the mounted paths)."""
    files: list[dict[str, Any]] = []
    for key, declared in (("secrets", refs.secrets), ("configs", refs.configs)):
        if key in fields:
            files += parse_uses(ctx, fields[key], join(path, key), key[:-1], declared)
    targets = {m.split(":")[1] for m in container["volumes"] if ":" in m} | \
        {m.split(":")[1] for m in relative}
    for entry in files:
        if entry["target"] in targets:
            ctx.error(path, fields["secrets" if "secret" in entry else "configs"].mark,
                      f"{entry['target']} is mounted twice (by volumes: and a secret or "
                      "config): keep one")
        targets.add(entry["target"])
    if files:
        container["files"] = sorted(files, key=lambda e: e["target"])
    if relative:
        mounts = [m.removeprefix(STACK_DIR).removeprefix("/") or "." for m in relative]
        mounts = ["." + m if m.startswith(":") else m for m in mounts]
        sources = [m.split(":")[0] for m in mounts]
        container["stack_dir"] = {"stack": refs.stack, "mounts": mounts,
                                  "files": bound_files(sources, ctx.files, refs.secret_files)}
