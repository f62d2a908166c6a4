"""`berth-runtime` verbs for registries: `login` and `logout`, as docker spells them.

Logins are saved in `<root>/auth.json` (mode 0600) and used by `image pull` and `image push`."""

from __future__ import annotations

import argparse
import getpass
import sys

from runtime.cli.output import print_json
from runtime.errors import InvalidArgument


def register(verbs: argparse._SubParsersAction) -> None:
    """Add this area's verbs to the top-level parser."""
    login = verbs.add_parser("login", help="log in to a registry and save the credentials")
    login.add_argument("registry", metavar="REGISTRY", help="HOST[:PORT], e.g. 127.0.0.1:5000")
    login.add_argument("-u", "--username", help="user name (asked for when omitted)")
    secret = login.add_mutually_exclusive_group()
    secret.add_argument("-p", "--password", help="password (visible to other users; prefer "
                        "--password-stdin)")
    secret.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input")
    login.add_argument("--insecure", action="store_true",
                       help="allow plain HTTP and unverified TLS for this registry")
    login.set_defaults(func=_login)

    logout = verbs.add_parser("logout", help="forget the saved login for a registry")
    logout.add_argument("registry", metavar="REGISTRY")
    logout.set_defaults(func=_logout)


def _login(args: argparse.Namespace) -> int:
    from runtime.images.registry import login

    username = args.username
    if not username:
        if args.password_stdin or not sys.stdin.isatty():
            raise InvalidArgument("login needs -u USERNAME when the password comes from stdin "
                                  "or no terminal is attached")
        username = input("Username: ").strip()
    if args.password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif args.password is not None:
        password = args.password
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        raise InvalidArgument("login needs a password: -p PASSWORD or --password-stdin")
    if not password:
        raise InvalidArgument("login needs a non-empty password")
    saved_as = login(args.root, args.registry, username, password, insecure=args.insecure)
    if args.json:
        print_json({"registry": saved_as, "username": username, "status": "Login Succeeded"})
    else:
        print("Login Succeeded")
    return 0


def _logout(args: argparse.Namespace) -> int:
    from runtime.images.auth import normalise_registry
    from runtime.images.registry import logout

    name = normalise_registry(args.registry)
    removed = logout(args.root, name)
    if args.json:
        print_json({"registry": name, "removed": removed})
    elif removed:
        print(f"Removing login credentials for {name}")
    else:
        print(f"Not logged in to {name}")
    return 0
