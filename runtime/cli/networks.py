"""`berth-runtime network …` (create, ls, inspect, rm, connect, disconnect) and `port CTR`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from runtime.cli.output import print_json, print_table
from runtime.errors import BerthError, InvalidArgument

if TYPE_CHECKING:
    from runtime.host import Host


def register(verbs: argparse._SubParsersAction) -> None:
    """Add the `network` and `port` verbs to the top-level parser."""
    network = verbs.add_parser("network", help="manage bridge networks")
    sub = network.add_subparsers(dest="network_verb", metavar="COMMAND", required=True)

    create = sub.add_parser("create", help="create a bridge network")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--subnet", metavar="CIDR", help="default: a free /24 from the pool")
    create.add_argument("--gateway", metavar="IP", help="default: the subnet's first address")
    create.add_argument("--internal", action="store_true", help="no route out of the network")
    create.add_argument("--label", action="append", default=[], metavar="K=V",
                        help="set a label (repeatable)")
    create.add_argument("-d", "--driver", default="bridge", help="only `bridge`")
    create.set_defaults(func=_create)

    ls = sub.add_parser("ls", aliases=["list"], help="list networks")
    ls.add_argument("-q", "--quiet", action="store_true", help="print names only")
    ls.set_defaults(func=_ls)

    inspect = sub.add_parser("inspect", help="print networks as JSON")
    inspect.add_argument("names", nargs="+", metavar="NETWORK")
    inspect.set_defaults(func=_inspect)

    rm = sub.add_parser("rm", aliases=["remove"], help="remove networks (refused while in use)")
    rm.add_argument("names", nargs="+", metavar="NETWORK")
    rm.set_defaults(func=_rm)

    connect = sub.add_parser("connect", help="connect a container to a network")
    connect.add_argument("network", metavar="NETWORK")
    connect.add_argument("container", metavar="CONTAINER")
    connect.add_argument("--ip", metavar="IP", help="IPv4 address on that network")
    connect.add_argument("--alias", action="append", default=[], metavar="ALIAS",
                         help="extra DNS name on that network (repeatable)")
    connect.set_defaults(func=_connect)

    disconnect = sub.add_parser("disconnect", help="disconnect a container from a network")
    disconnect.add_argument("network", metavar="NETWORK")
    disconnect.add_argument("container", metavar="CONTAINER")
    disconnect.set_defaults(func=_disconnect)

    port = verbs.add_parser("port", help="list a container's published ports")
    port.add_argument("container", metavar="CONTAINER")
    port.add_argument("private", nargs="?", metavar="PORT[/PROTO]", help="only this port")
    port.set_defaults(func=_port)


def _host(args: argparse.Namespace) -> Host:
    from runtime.host import Host

    return Host(args.root)


def _create(args: argparse.Namespace) -> int:
    if args.driver != "bridge":
        raise InvalidArgument(f"--driver {args.driver!r} is not supported: only `bridge`")
    labels = {}
    for entry in args.label:
        key, _, value = entry.partition("=")
        if not key:
            raise InvalidArgument(f"invalid --label {entry!r}: use KEY=VALUE")
        labels[key] = value
    network = _host(args).networks.manager.create(
        args.name, subnet=args.subnet, gateway=args.gateway, internal=args.internal,
        labels=labels)
    print(network.id)
    return 0


def _ls(args: argparse.Namespace) -> int:
    networks = _host(args).networks.manager.list()
    if args.quiet:
        for network in networks:
            print(network.name)
    elif args.json:
        print_json([n.to_json() for n in networks])
    else:
        print_table(["NETWORK ID", "NAME", "DRIVER", "SUBNET", "GATEWAY", "INTERNAL"],
                    [[n.id[:12], n.name, "bridge", n.subnet, n.gateway,
                      "yes" if n.internal else ""] for n in networks])
    return 0


def _inspect(args: argparse.Namespace) -> int:
    manager = _host(args).networks.manager
    print_json([manager.inspect(manager.get(name)) for name in args.names])
    return 0


def _rm(args: argparse.Namespace) -> int:
    provider = _host(args).networks
    status = 0
    for name in args.names:
        try:
            provider.remove_network(name)
            print(name)
        except BerthError as exc:
            print(f"berth-runtime: {exc}", file=sys.stderr)
            status = exc.exit_code
    return status


def _connect(args: argparse.Namespace) -> int:
    host = _host(args)
    containers = host.containers
    container = containers.get(args.container)
    with containers.store.lock(container.id):
        container = containers.store.load(container.id) or container
        host.networks.connect(container, args.network, args.ip, args.alias)
        containers.store.save(container)
    return 0


def _disconnect(args: argparse.Namespace) -> int:
    host = _host(args)
    containers = host.containers
    container = containers.get(args.container)
    with containers.store.lock(container.id):
        container = containers.store.load(container.id) or container
        host.networks.disconnect(container, args.network)
        containers.store.save(container)
    return 0


def _port(args: argparse.Namespace) -> int:
    container = _host(args).containers.get(args.container)
    ports = container.network_settings.get("Ports") or {}
    if args.private:
        key = args.private if "/" in args.private else f"{args.private}/tcp"
        ports = {key: ports[key]} if key in ports else {}
        if not ports:
            raise InvalidArgument(f"no public port for {key} of container {container.name}")
    if args.json:
        print_json(ports)
        return 0
    for key, bindings in sorted(ports.items()):
        for binding in bindings:
            prefix = "" if args.private else f"{key} -> "
            print(f"{prefix}{binding['HostIp']}:{binding['HostPort']}")
    return 0
