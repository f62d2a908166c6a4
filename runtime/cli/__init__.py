"""`berth-runtime`: docker-style commands acting on this host directly, no server needed.

Each area registers its own verbs (images.py, containers.py, volumes.py); this module holds the
shared options (--root, --json) and turns runtime errors into a message and an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from runtime.errors import BerthError

DEFAULT_ROOT = os.environ.get("BERTH_ROOT", "/var/lib/berth")


def add_common_options(parser: argparse.ArgumentParser, top_level: bool) -> None:
    """--root and --json are accepted before or after the verb, as people type them."""
    default_root = DEFAULT_ROOT if top_level else argparse.SUPPRESS
    default_json = False if top_level else argparse.SUPPRESS
    parser.add_argument("--root", default=default_root, help="state directory (default %(default)s)"
                        if top_level else argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", default=default_json,
                        help="print JSON instead of a table" if top_level else argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    from runtime.cli import containers, images, networks, registry, system, volumes

    parser = argparse.ArgumentParser(
        prog="berth-runtime",
        description="Run containers from OCI images on this host (runc/crun + conmon + overlayfs).",
    )
    add_common_options(parser, top_level=True)
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for area in (images, registry, containers, volumes, networks, system):
        area.register(verbs)
    for name, sub in verbs.choices.items():
        add_common_options(sub, top_level=False)
        for nested in _nested_parsers(sub):
            add_common_options(nested, top_level=False)
        del name
    return parser


def _nested_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if any(child is seen for seen in found):
                    continue  # an alias: the same parser under a second name
                found.append(child)
                found.extend(_nested_parsers(child))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except BerthError as exc:
        print(f"berth-runtime: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `berth-runtime ps | head`: the reader left; say nothing more (as docker does).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
