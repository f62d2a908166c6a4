"""`berth-runtime volume …`: create, ls, inspect, rm, prune, backup, restore (docker's verbs)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.cli.output import human_size, print_json, print_table
from runtime.errors import BerthError, InvalidArgument

if TYPE_CHECKING:
    from runtime.host import Host
    from runtime.volumes import Volume


def register(verbs: argparse._SubParsersAction) -> None:
    """Add the `volume` verb and its sub-verbs to the top-level parser."""
    volume = verbs.add_parser("volume", help="manage named volumes")
    sub = volume.add_subparsers(dest="volume_verb", metavar="COMMAND", required=True)

    create = sub.add_parser("create", help="create a volume")
    create.add_argument("name", nargs="?", metavar="NAME", help="default: a random 64-hex name")
    create.add_argument("--label", action="append", default=[], metavar="K=V",
                        help="set a label (repeatable)")
    create.set_defaults(func=_create)

    ls = sub.add_parser("ls", aliases=["list"], help="list volumes")
    ls.add_argument("-q", "--quiet", action="store_true", help="print names only")
    ls.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER",
                    help="label=K, label=K=V, name=SUBSTRING or dangling=true|false (repeatable)")
    ls.set_defaults(func=_ls)

    inspect = sub.add_parser("inspect", help="print volumes as JSON")
    inspect.add_argument("names", nargs="+", metavar="NAME")
    inspect.set_defaults(func=_inspect)

    rm = sub.add_parser("rm", aliases=["remove"], help="remove volumes (refused while in use)")
    rm.add_argument("-f", "--force", action="store_true",
                    help="no error for volumes that do not exist (in-use volumes stay refused)")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.set_defaults(func=_rm)

    prune = sub.add_parser("prune", help="remove volumes no container uses")
    prune.add_argument("-a", "--all", action="store_true",
                       help="named volumes too (default: anonymous volumes only)")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    prune.set_defaults(func=_prune)

    backup = sub.add_parser("backup", help="write a volume's content to a tar archive "
                            "(zstd when FILE ends in .zst, gzip for .gz)")
    backup.add_argument("name", metavar="NAME")
    backup.add_argument("file", metavar="FILE", type=Path)
    backup.set_defaults(func=_backup)

    restore = sub.add_parser("restore", help="replace a volume's content by a tar archive")
    restore.add_argument("name", metavar="NAME")
    restore.add_argument("file", metavar="FILE", type=Path)
    restore.add_argument("--force", action="store_true",
                         help="restore even while containers use the volume")
    restore.set_defaults(func=_restore)


def _host(args: argparse.Namespace) -> Host:
    from runtime.host import Host

    return Host(args.root)


def _users_of(host: Host) -> Callable[[str], list[str]]:
    """Names of the containers that use a volume (the containers area owns that knowledge)."""
    return host.containers.users_of_volume


def parse_label(text: str) -> tuple[str, str]:
    """`K=V` -> (K, V); a bare `K` is an empty value, as docker takes it."""
    key, _, value = text.partition("=")
    if not key:
        raise InvalidArgument(f"invalid --label {text!r}: expected KEY=VALUE with a non-empty KEY")
    return key, value


def _create(args: argparse.Namespace) -> int:
    labels = dict(parse_label(text) for text in args.label)
    volume = _host(args).volumes.create(args.name, labels=labels)
    if args.json:
        print_json(volume.to_json())
    else:
        print(volume.name)
    return 0


def _matcher(filters: list[str], users: Callable[[], Callable[[str], list[str]]]
             ) -> Callable[[Volume], bool]:
    """Build one predicate from docker-style `--filter` values (all must match)."""
    checks: list[Callable[[Volume], bool]] = []
    for text in filters:
        kind, sep, value = text.partition("=")
        if not sep:
            raise InvalidArgument(f"invalid --filter {text!r}: expected KEY=VALUE")
        if kind == "label":
            checks.append(_label_check(value))
        elif kind == "name":
            checks.append(_name_check(value))
        elif kind == "dangling":
            if value not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid --filter {text!r}: dangling takes true or false")
            dangling = value in ("true", "1")
            checks.append(_dangling_check(dangling, users()))
        else:
            raise InvalidArgument(
                f"invalid --filter {text!r}: supported filters are label, name and dangling"
            )
    return lambda volume: all(check(volume) for check in checks)


def _label_check(spec: str) -> Callable[[Volume], bool]:
    key, has_value, wanted = spec.partition("=")
    return lambda volume: key in volume.labels and (not has_value or volume.labels[key] == wanted)


def _name_check(part: str) -> Callable[[Volume], bool]:
    return lambda volume: part in volume.name


def _dangling_check(dangling: bool, users_of: Callable[[str], list[str]]
                    ) -> Callable[[Volume], bool]:
    return lambda volume: (not users_of(volume.name)) == dangling


def _ls(args: argparse.Namespace) -> int:
    host = _host(args)
    matches = _matcher(args.filter, lambda: _users_of(host))
    volumes = [v for v in host.volumes.list() if matches(v)]
    if args.json:
        print_json([v.to_json() for v in volumes])
    elif args.quiet:
        for volume in volumes:
            print(volume.name)
    else:
        print_table(["DRIVER", "VOLUME NAME"], [["local", v.name] for v in volumes])
    return 0


def _each(names: list[str], action: Callable[[str], None]) -> int:
    """Run `action` on every name; report failures on stderr and exit 1 if any, like docker."""
    failed = False
    for name in names:
        try:
            action(name)
        except BerthError as exc:
            print(f"berth-runtime: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _inspect(args: argparse.Namespace) -> int:
    store = _host(args).volumes
    found: list[dict] = []
    status = _each(args.names, lambda name: found.append(store.get(name).to_json()))
    print_json(found)
    return status


def _rm(args: argparse.Namespace) -> int:
    host = _host(args)
    users = _users_of(host)

    def remove(name: str) -> None:
        host.volumes.remove(name, users=users, force=args.force)
        print(name)

    return _each(args.names, remove)


def _prune(args: argparse.Namespace) -> int:
    if not args.force:
        if not sys.stdin.isatty():
            raise InvalidArgument("volume prune removes data: pass -f to confirm")
        what = "all volumes" if args.all else "all anonymous volumes"
        answer = input(f"This removes {what} not used by any container. Continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    host = _host(args)
    removed = host.volumes.prune(_users_of(host), all_volumes=args.all)
    if args.json:
        print_json({"VolumesDeleted": removed})
    else:
        if removed:
            print("Deleted Volumes:")
        for name in removed:
            print(name)
    return 0


def _backup(args: argparse.Namespace) -> int:
    size = _host(args).volumes.backup(args.name, args.file)
    if args.json:
        print_json({"Name": args.name, "File": str(args.file), "Size": size})
    else:
        print(f"{args.name} -> {args.file} ({human_size(size)})")
    return 0


def _restore(args: argparse.Namespace) -> int:
    host = _host(args)
    volume = host.volumes.restore(args.name, args.file, users=_users_of(host), force=args.force)
    if args.json:
        print_json(volume.to_json())
    else:
        print(volume.name)
    return 0
