"""`berth-runtime` verbs for containers: run, create, start, ps, inspect, logs, stop, kill,
restart, rm, wait, stats, exec — with docker's flags and output."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from runtime.cli.output import human_size, print_json, print_table
from runtime.errors import BerthError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from runtime.containers.logs import RawEntry
    from runtime.containers.manager import ContainerManager
    from runtime.containers.options import RunOptions
    from runtime.containers.record import Container
    from runtime.host import Host


def register(verbs: argparse._SubParsersAction) -> None:
    """Add this area's verbs to the top-level parser."""
    run = verbs.add_parser("run", help="create and start a container (attached unless -d)")
    _add_create_flags(run)
    run.add_argument("-d", "--detach", action="store_true",
                     help="run in the background and print the container id")
    run.add_argument("--rm", action="store_true",
                     help="remove the container (and its anonymous volumes) when it exits")
    run.set_defaults(func=_run)

    create = verbs.add_parser("create", help="create a container without starting it")
    _add_create_flags(create)
    create.set_defaults(func=_create, rm=False)

    start = verbs.add_parser("start", help="start stopped containers")
    start.add_argument("containers", nargs="+", metavar="CONTAINER")
    start.set_defaults(func=_each(lambda m, ref, a: m.start(ref)))

    ps = verbs.add_parser("ps", help="list containers")
    ps.add_argument("-a", "--all", action="store_true", help="all containers (default: running)")
    ps.add_argument("-q", "--quiet", action="store_true", help="print ids only")
    ps.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER",
                    help="label=K or label=K=V, name=N, status=S (repeatable)")
    ps.add_argument("--no-trunc", action="store_true", help="full ids and commands")
    ps.set_defaults(func=_ps)

    inspect = verbs.add_parser("inspect", help="print containers (or images) as JSON")
    inspect.add_argument("refs", nargs="+", metavar="CONTAINER")
    inspect.set_defaults(func=_inspect)

    logs = verbs.add_parser("logs", help="print a container's output")
    logs.add_argument("container", metavar="CONTAINER")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    logs.add_argument("-n", "--tail", default="all", metavar="N",
                      help="only the last N lines (default: all)")
    logs.add_argument("-t", "--timestamps", action="store_true", help="prefix each line's time")
    logs.add_argument("--since", metavar="T", help="RFC 3339 time, Unix time or duration (10m)")
    logs.add_argument("--until", metavar="T", help="RFC 3339 time, Unix time or duration (10m)")
    logs.set_defaults(func=_logs)

    stop = verbs.add_parser("stop", help="stop containers (StopSignal, then SIGKILL)")
    stop.add_argument("-t", "--time", type=int, default=None, metavar="S",
                      help="seconds to wait before SIGKILL (default: the container's, else 10)")
    stop.add_argument("containers", nargs="+", metavar="CONTAINER")
    stop.set_defaults(func=_each(lambda m, ref, a: m.stop(ref, a.time)))

    kill = verbs.add_parser("kill", help="send a signal to containers")
    kill.add_argument("-s", "--signal", default="KILL", metavar="SIG",
                      help="signal name or number (default KILL)")
    kill.add_argument("containers", nargs="+", metavar="CONTAINER")
    kill.set_defaults(func=_each(lambda m, ref, a: m.kill(ref, a.signal)))

    restart = verbs.add_parser("restart", help="stop and start containers")
    restart.add_argument("-t", "--time", type=int, default=None, metavar="S",
                         help="seconds to wait before SIGKILL")
    restart.add_argument("containers", nargs="+", metavar="CONTAINER")
    restart.set_defaults(func=_each(lambda m, ref, a: m.restart(ref, a.time)))

    rm = verbs.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill running containers first")
    rm.add_argument("-v", "--volumes", action="store_true", help="remove anonymous volumes too")
    rm.add_argument("containers", nargs="+", metavar="CONTAINER")
    rm.set_defaults(func=_each(lambda m, ref, a: m.remove(ref, a.force, a.volumes)))

    wait = verbs.add_parser("wait", help="wait for containers to stop; print their exit codes")
    wait.add_argument("containers", nargs="+", metavar="CONTAINER")
    wait.set_defaults(func=_wait)

    stats = verbs.add_parser("stats", help="CPU, memory, pids, network and block I/O")
    stats.add_argument("containers", nargs="*", metavar="CONTAINER",
                       help="default: all running containers")
    stats.add_argument("--no-stream", action="store_true", help="print one sample and exit")
    stats.set_defaults(func=_stats)

    exec_ = verbs.add_parser("exec", help="run a command in a running container")
    exec_.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    exec_.add_argument("-w", "--workdir", metavar="DIR")
    exec_.add_argument("-u", "--user", metavar="USER[:GROUP]")
    exec_.add_argument("container", metavar="CONTAINER")
    exec_.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    exec_.set_defaults(func=_exec)


def _add_create_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--name", help="container name (default: a generated adjective_noun)")
    add("-e", "--env", action="append", default=[], metavar="K=V", help="set an env variable")
    add("--env-file", action="append", default=[], metavar="FILE", help="read env variables")
    add("-v", "--volume", action="append", default=[], metavar="SRC:/PATH[:ro]",
        help="named volume (created if missing) or absolute host path")
    add("-m", "--memory", metavar="SIZE", help="memory limit, e.g. 256m")
    add("--cpus", metavar="N", help="CPU limit, e.g. 0.5")
    add("--pids-limit", type=int, metavar="N", help="process limit (-1: unlimited)")
    add("--restart", default="no", metavar="POLICY",
        help="no, on-failure[:N], always or unless-stopped")
    add("--init", action="store_true", help="run tini as PID 1 (signals, zombie reaping)")
    add("-u", "--user", metavar="USER[:GROUP]", help="user name or uid, optional group")
    add("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    add("--entrypoint", metavar="CMD", help="override the image's entrypoint")
    add("--read-only", action="store_true", help="mount the root filesystem read-only")
    add("--stop-timeout", type=int, metavar="S", help="seconds before SIGKILL on stop")
    add("--stop-signal", metavar="SIG", help="signal for stop (default: the image's, else TERM)")
    add("-l", "--label", action="append", default=[], metavar="K=V", help="set a label")
    add("--hostname", metavar="NAME", help="container host name (default: the short id)")
    add("--network", "--net", action="append", default=[], metavar="NET",
        help="network to join (repeatable; default: berth), or host, none, container:NAME")
    add("--ip", metavar="IP", help="IPv4 address on the (single) network")
    add("--network-alias", action="append", default=[], metavar="ALIAS",
        help="extra DNS name on the container's networks (repeatable)")
    add("-p", "--publish", action="append", default=[], metavar="[IP:][HOST:]CTR[/PROTO]",
        help="publish a container port (HOST omitted: a free port; repeatable)")
    add("-P", "--publish-all", action="store_true", help="publish every exposed port")
    add("--health-cmd", metavar="CMD", help="command to check health (run by /bin/sh -c)")
    add("--health-interval", metavar="DURATION", help="time between checks (default 30s)")
    add("--health-timeout", metavar="DURATION", help="maximum time of one check (default 30s)")
    add("--health-retries", type=int, metavar="N", help="failures before unhealthy (default 3)")
    add("--health-start-period", metavar="DURATION", help="grace period after start")
    add("--health-start-interval", metavar="DURATION",
        help="time between checks during the start period (default 5s)")
    add("--no-healthcheck", action="store_true", help="disable the image's health check")
    add("--cap-add", action="append", default=[], metavar="CAP",
        help="add a Linux capability (NET_ADMIN…, or ALL; repeatable)")
    add("--cap-drop", action="append", default=[], metavar="CAP",
        help="drop a Linux capability (CHOWN…, or ALL; repeatable)")
    add("--privileged", action="store_true",
        help="every capability and host device, no seccomp filter, no masked paths")
    add("--security-opt", action="append", default=[], metavar="OPT",
        help="no-new-privileges[:true|false], seccomp=unconfined|FILE, systempaths=unconfined")
    add("--device", action="append", default=[], metavar="/dev/HOST[:/dev/CTR[:rwm]]",
        help="add a host device (repeatable)")
    add("--sysctl", action="append", default=[], metavar="KEY=VALUE",
        help="a namespaced kernel parameter: net.*, kernel.shm*/msg*/sem, fs.mqueue.*")
    add("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
        help="a resource limit such as nofile=1024:2048 (-1: unlimited)")
    add("--tmpfs", action="append", default=[], metavar="/PATH[:OPTS]",
        help="mount a tmpfs (opts: size=64m,mode=1777,uid=,gid=,exec…)")
    add("--shm-size", metavar="SIZE", help="size of /dev/shm (default 64m)")
    add("--add-host", action="append", default=[], metavar="NAME:IP",
        help="add an /etc/hosts line (IP may be host-gateway)")
    add("--dns", action="append", default=[], metavar="IP", help="a DNS resolver")
    add("--dns-search", action="append", default=[], metavar="DOMAIN",
        help="a DNS search domain")
    add("--dns-option", action="append", default=[], metavar="OPT",
        help="a resolv.conf option such as ndots:2")
    add("--pid", default="", metavar="MODE", help="host: share the host's PID namespace")
    add("--ipc", default="", metavar="MODE",
        help="private, shareable, host or container:NAME")
    add("--expose", action="append", default=[], metavar="PORT[/PROTO]",
        help="record an exposed port (publishes nothing)")
    add("--log-driver", default="", metavar="DRIVER", help="json-file (default), local or none")
    add("--log-opt", action="append", default=[], metavar="KEY=VALUE",
        help="max-size=10m, max-file=3")
    add("--platform", default="", metavar="OS/ARCH",
        help="check that the container runs on this platform (no emulation)")
    add("--memory-reservation", metavar="SIZE", help="memory soft limit, e.g. 128m")
    add("--group-add", action="append", default=[], metavar="GROUP",
        help="an extra group for the process (name or gid)")
    add("image", metavar="IMAGE")
    add("command", nargs=argparse.REMAINDER, metavar="COMMAND")


def _host(args: argparse.Namespace) -> Host:
    from runtime.host import Host

    return Host(args.root)


def run_options(args: argparse.Namespace) -> RunOptions:
    """RunOptions from the parsed `run`/`create` flags."""
    from runtime.containers.options import HealthOptions, RunOptions, parse_duration

    health = None
    if args.no_healthcheck:
        if args.health_cmd:
            raise InvalidArgument("--no-healthcheck conflicts with --health-cmd")
        health = HealthOptions(test=["NONE"])
    elif args.health_cmd or any(v is not None for v in (
            args.health_interval, args.health_timeout, args.health_retries,
            args.health_start_period, args.health_start_interval)):
        health = HealthOptions(
            test=["CMD-SHELL", args.health_cmd] if args.health_cmd else [],
            interval=parse_duration(args.health_interval, "--health-interval"),
            timeout=parse_duration(args.health_timeout, "--health-timeout"),
            start_period=parse_duration(args.health_start_period, "--health-start-period"),
            start_interval=parse_duration(args.health_start_interval,
                                          "--health-start-interval"),
            retries=args.health_retries or 0,
        )
    from runtime.containers.kernel_options import parse_log_opts

    modes = [n for n in args.network if n in ("host", "none") or n.startswith("container:")]
    if len(modes) > 1:
        raise InvalidArgument(f"--network {modes[0]} cannot be combined with --network "
                              f"{modes[1]}: pick one")
    logging = {}
    if args.log_driver or args.log_opt:
        logging = {"driver": args.log_driver, "options": parse_log_opts(args.log_opt)}
    return RunOptions(
        image=args.image, command=list(args.command), name=args.name, env=args.env,
        env_files=args.env_file, volumes=args.volume, memory=args.memory, cpus=args.cpus,
        pids_limit=args.pids_limit, restart=args.restart, init=args.init, user=args.user,
        workdir=args.workdir, entrypoint=args.entrypoint, read_only=args.read_only,
        stop_timeout=args.stop_timeout, stop_signal=args.stop_signal, labels=args.label,
        health=health, hostname=args.hostname, auto_remove=bool(getattr(args, "rm", False)),
        networks=[n for n in args.network if n not in modes], ip=args.ip,
        network_aliases=args.network_alias, publish=args.publish, publish_all=args.publish_all,
        network_mode=modes[0] if modes else "",
        cap_add=args.cap_add, cap_drop=args.cap_drop, privileged=args.privileged,
        security_opt=args.security_opt, devices=args.device, sysctls=args.sysctl,
        ulimits=args.ulimit, tmpfs=args.tmpfs, shm_size=args.shm_size or 0,
        extra_hosts=args.add_host, dns=args.dns, dns_search=args.dns_search,
        dns_opt=args.dns_option, pid=args.pid, ipc=args.ipc, expose=args.expose,
        logging=logging, platform=args.platform,
        memory_reservation=args.memory_reservation or 0, group_add=args.group_add,
    )


def _create(args: argparse.Namespace) -> int:
    container = _host(args).containers.create(run_options(args))
    print(container.id)
    return 0


def _run(args: argparse.Namespace) -> int:
    manager = _host(args).containers
    options = run_options(args)
    if args.detach:
        container = manager.run(options)
        _supervise_if_needed(manager, container)
        print(container.id)
        return 0
    options.auto_remove = False  # the attached client removes it itself, after the exit code
    container = manager.run(options)
    _supervise_if_needed(manager, container)
    return attach(manager, container, remove=args.rm)


def _supervise_if_needed(manager: ContainerManager, container: Any) -> None:
    """Restart policies and health checks need the root's background supervisor."""
    from runtime.containers.record import Container
    from runtime.supervisor import ensure_background, needs_supervision

    if isinstance(container, Container) and needs_supervision(container):
        ensure_background(manager.root)


def attach(manager: ContainerManager, container: Container, remove: bool = False) -> int:
    """Print the container's output as it comes, forward SIGINT/SIGTERM to it, and return its
    exit code once it exits (docker run without -d)."""
    from runtime.containers.logs import follow_raw

    def forward(signum: int, _frame: Any) -> None:
        try:
            manager.kill(container.id, signum)
        except BerthError:
            pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        output = _LogOutput(timestamps=False)
        for batch in follow_raw(container.log_path, 0, lambda: manager.has_exited(container)):
            output.write(batch)
            output.flush()
        code = manager.wait(container.id)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if remove:
            manager.remove(container.id, force=True, volumes=True)
    return code


def _each(action: Callable[[ContainerManager, str, argparse.Namespace], Any],
          ) -> Callable[[argparse.Namespace], int]:
    """Apply `action` to every CONTAINER argument; print each ref done (as docker does) and
    each error, and exit 1 if any failed."""

    def handler(args: argparse.Namespace) -> int:
        manager = _host(args).containers
        failed = 0
        for ref in args.containers:
            try:
                _supervise_if_needed(manager, action(manager, ref, args))
                print(ref)
            except BerthError as exc:
                print(f"berth-runtime: {exc}", file=sys.stderr)
                failed += 1
        return 1 if failed else 0

    return handler


def _parse_filters(filters: list[str]) -> tuple[dict[str, str | None], dict[str, str]]:
    labels: dict[str, str | None] = {}
    others: dict[str, str] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or key not in ("label", "name", "status", "id"):
            raise InvalidArgument(
                f"invalid --filter {item!r}: allowed label=K, label=K=V, name=N, status=S, id=I"
            )
        if key == "label":
            label, has_value, label_value = value.partition("=")
            labels[label] = label_value if has_value else None
        else:
            others[key] = value
    return labels, others


def _ps(args: argparse.Namespace) -> int:
    labels, others = _parse_filters(args.filter)
    containers = _host(args).containers.list(all=args.all or "status" in others, labels=labels)
    if "name" in others:
        containers = [c for c in containers if others["name"] in c.name]
    if "status" in others:
        containers = [c for c in containers if c.status == others["status"]]
    if "id" in others:
        containers = [c for c in containers if c.id.startswith(others["id"])]
    if args.quiet:
        for container in containers:
            print(container.id if args.no_trunc else container.short_id)
        return 0
    if args.json:
        print_json([ps_row(c) for c in containers])
        return 0
    rows = []
    for c in containers:
        command = " ".join((c.config.get("Entrypoint") or []) + (c.config.get("Cmd") or []))
        if not args.no_trunc and len(command) > 20:
            command = command[:19] + "…"
        rows.append([c.id if args.no_trunc else c.short_id, c.image_ref, f'"{command}"',
                     f"{human_duration(_age(c.created))} ago", status_text(c), ports_text(c),
                     c.name])
    print_table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows)
    return 0


def ps_row(container: Container) -> dict[str, Any]:
    """One container as `ps --json` prints it."""
    return {"Id": container.id, "Names": [container.name], "Image": container.image_ref,
            "ImageID": container.image_id,
            "Command": " ".join((container.config.get("Entrypoint") or [])
                                + (container.config.get("Cmd") or [])),
            "Created": container.created, "State": container.status,
            "Status": status_text(container), "Ports": ports_text(container),
            "Labels": container.labels}


def ports_text(container: Container) -> str:
    """docker ps's PORTS: `0.0.0.0:8080->80/tcp` for each published port while the container
    runs, and the bare `80/tcp` for an exposed port that is not published."""
    published = container.network_settings.get("Ports") or {} if container.running else {}
    items = []
    keys = set(published) | set(container.config.get("ExposedPorts") or {})
    for key in sorted(keys, key=_port_order):
        bindings = published.get(key) or []
        if not bindings:
            items.append(key)
        items += [f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{key}" for b in bindings]
    return ", ".join(items)


def _port_order(key: str) -> tuple[str, int]:
    port, _, protocol = key.partition("/")
    return (protocol, int(port) if port.isdigit() else 0)


def _age(timestamp: str) -> float:
    from runtime.containers.record import age

    return age(timestamp)


def human_duration(seconds: float) -> str:
    """docker's coarse durations: "3 seconds", "About a minute", "2 hours"…"""
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{int(seconds)} second{'s' if int(seconds) != 1 else ''}"
    minutes = seconds / 60
    if minutes < 2:
        return "About a minute"
    if minutes < 60:
        return f"{int(minutes)} minutes"
    hours = minutes / 60
    if hours < 2:
        return "About an hour"
    if hours < 48:
        return f"{int(hours)} hours"
    return f"{int(hours / 24)} days"


def status_text(container: Container) -> str:
    """`Up 3 seconds (healthy)`, `Exited (137) 2 minutes ago`, `Created`."""
    state = container.state
    if container.running:
        text = f"Up {human_duration(_age(state['StartedAt']))}"
        health = (state.get("Health") or {}).get("Status")
        return f"{text} ({health})" if health else text
    if container.status in ("exited", "restarting"):
        return (f"{container.status.capitalize()} ({state['ExitCode']}) "
                f"{human_duration(_age(state['FinishedAt']))} ago")
    return container.status.capitalize()


def _inspect(args: argparse.Namespace) -> int:
    from runtime.containers.inspect import inspect_container

    host = _host(args)
    found: list[dict[str, Any]] = []
    failed = False
    for ref in args.refs:
        try:
            found.append(inspect_container(host.containers.get(ref)))
        except NotFound:
            try:
                found.append(host.images.get(ref).to_json())
            except NotFound:
                print(f"berth-runtime: no such container or image: {ref!r}", file=sys.stderr)
                failed = True
    print_json(found)
    return 1 if failed else 0


def _logs(args: argparse.Namespace) -> int:
    from runtime.containers.logs import LogReader, follow_raw, parse_time

    manager = _host(args).containers
    container = manager.get(args.container)
    if (container.host_config.get("LogConfig") or {}).get("Type") == "none":
        raise InvalidArgument(f"container {container.name} uses logging driver none: no log "
                              "is kept, so there is nothing to read")
    tail = None
    if args.tail != "all":
        if not str(args.tail).isdigit():
            raise InvalidArgument(f"invalid --tail {args.tail!r}: use a number or 'all'")
        tail = int(args.tail)
    since = parse_time(args.since, "--since")
    until = parse_time(args.until, "--until")
    reader = LogReader(container.log_path, since=since, until=until, tail=tail)
    output = _LogOutput(args.timestamps)
    output.write(reader)
    output.flush()
    if args.follow and container.running:
        for batch in follow_raw(container.log_path, reader.offset,
                                lambda: manager.has_exited(container), until=until):
            output.write(batch)
            output.flush()
    return 0


class _LogOutput:
    """Writes log entries to stdout/stderr as docker does, in large writes: consecutive
    entries of one stream are joined, and the pending bytes go out when the stream changes,
    when they pass `LIMIT`, and at `flush()` (so the order across the two streams holds)."""

    LIMIT = 1 << 16

    def __init__(self, timestamps: bool):
        self.timestamps = timestamps
        self.parts: list[bytes] = []
        self.size = 0
        self.stream = b""

    def write(self, entries: Iterable[RawEntry]) -> None:
        from runtime.containers.logs import format_raw

        timestamps, parts = self.timestamps, self.parts
        for entry in entries:
            if entry[1] != self.stream:
                self.flush()
                self.stream = entry[1]
            if entry[3] and not timestamps:
                parts.append(entry[2])
                parts.append(b"\n")
                self.size += len(entry[2]) + 1
            else:
                data = format_raw(entry, timestamps)
                parts.append(data)
                self.size += len(data)
            if self.size >= self.LIMIT:
                self.flush()

    def flush(self) -> None:
        if self.parts:
            target = sys.stderr if self.stream == b"stderr" else sys.stdout
            target.flush()  # anything printed as text before
            data = b"".join(self.parts)
            binary = getattr(target, "buffer", None)
            if binary is not None:
                binary.write(data)
                binary.flush()
            else:  # a text-only stream (output captured in-process)
                target.write(data.decode("utf-8", errors="replace"))
                target.flush()
            self.parts.clear()
            self.size = 0


def _wait(args: argparse.Namespace) -> int:
    manager = _host(args).containers
    failed = 0
    for ref in args.containers:
        try:
            print(manager.wait(ref), flush=True)
        except BerthError as exc:
            print(f"berth-runtime: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _stats(args: argparse.Namespace) -> int:
    manager = _host(args).containers
    while True:
        if args.containers:
            containers = [manager.get(ref) for ref in args.containers]
        else:
            containers = manager.list()
        samples = [manager.stats(c.id) for c in containers if c.running]
        if args.json:
            print_json([s.to_json() for s in samples])
        else:
            if not args.no_stream:
                sys.stdout.write("\033[2J\033[H")
            print_table(
                ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                 "BLOCK I/O", "PIDS"],
                [[s.id[:12], s.name, f"{s.cpu_percent:.2f}%",
                  f"{_binary_size(s.memory_usage)} / {_binary_size(s.memory_limit)}",
                  f"{s.memory_percent:.2f}%",
                  f"{human_size(s.net_rx)} / {human_size(s.net_tx)}",
                  f"{human_size(s.block_read)} / {human_size(s.block_write)}", s.pids]
                 for s in samples],
            )
        sys.stdout.flush()
        if args.no_stream:
            return 0
        time.sleep(0.5)


def _binary_size(num_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if num_bytes < 1024 or unit == "TiB":
            return f"{num_bytes:.4g}{unit}" if unit != "B" else f"{int(num_bytes)}B"
        num_bytes /= 1024
    return f"{num_bytes}B"


def _exec(args: argparse.Namespace) -> int:
    if not args.command:
        raise InvalidArgument("exec needs a command: berth-runtime exec CONTAINER COMMAND…")
    manager = _host(args).containers
    sys.stdout.flush()
    result = manager.exec(args.container, list(args.command), env=args.env,
                          workdir=args.workdir, user=args.user)
    return result.returncode
