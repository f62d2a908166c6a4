"""`berth-runtime` verbs for images: `image ls|inspect|tag|rm|import|export|pull|push|bootstrap`,
and docker's top-level spellings `images`, `rmi`, `tag`, `load`, `save`, `pull`, `push`."""

from __future__ import annotations

import argparse
import calendar
import sys
import time
from typing import Any

from runtime.cli.output import human_size, print_json, print_table, short_id
from runtime.errors import BerthError, InvalidArgument
from runtime.images.store import Image, ImageStore


def register(verbs: argparse._SubParsersAction) -> None:
    """Add this area's verbs to the top-level parser."""
    image = verbs.add_parser("image", help="manage images")
    sub = image.add_subparsers(dest="image_verb", metavar="COMMAND", required=True)

    for parser in (sub.add_parser("ls", aliases=["list"], help="list images"),
                   verbs.add_parser("images", help="list images (image ls)")):
        _list_options(parser)
    inspect = sub.add_parser("inspect", help="show images as JSON, as docker does")
    inspect.add_argument("refs", nargs="+", metavar="IMAGE")
    inspect.set_defaults(func=_inspect)
    for parser in (sub.add_parser("tag", help="give an image another name"),
                   verbs.add_parser("tag", help="give an image another name (image tag)")):
        parser.add_argument("source", metavar="SOURCE_IMAGE")
        parser.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
        parser.set_defaults(func=_tag)
    for parser in (sub.add_parser("rm", aliases=["remove"], help="remove images"),
                   verbs.add_parser("rmi", help="remove images (image rm)")):
        parser.add_argument("refs", nargs="+", metavar="IMAGE")
        parser.add_argument("-f", "--force", action="store_true",
                            help="remove the image even when it has several tags")
        parser.set_defaults(func=_remove)

    imp = sub.add_parser("import", help="import an OCI or `docker save` archive (`-` = stdin)")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("-t", "--tag", metavar="REF", help="name the image REF instead of the "
                     "names the archive gives")
    imp.set_defaults(func=_import)
    load = verbs.add_parser("load", help="load an image archive (image import)")
    load.add_argument("-i", "--input", dest="file", default="-", metavar="FILE",
                      help="read from FILE instead of standard input")
    load.add_argument("-q", "--quiet", action="store_true", help="accepted for docker's sake")
    load.add_argument("-t", "--tag", metavar="REF", help=argparse.SUPPRESS)
    load.set_defaults(func=_import)

    exp = sub.add_parser("export", help="write an image as an OCI archive (`-` = stdout)")
    exp.add_argument("ref", metavar="IMAGE")
    exp.add_argument("file", metavar="FILE")
    exp.set_defaults(func=_export, refs=None)
    for parser in (sub.add_parser("save", help="write images as one OCI archive"),
                   verbs.add_parser("save", help="write images as one OCI archive")):
        parser.add_argument("refs", nargs="+", metavar="IMAGE")
        parser.add_argument("-o", "--output", dest="file", default="-", metavar="FILE",
                            help="write to FILE instead of standard output")
        parser.set_defaults(func=_export, ref=None)

    for parser in (sub.add_parser("pull", help="download an image from a registry"),
                   verbs.add_parser("pull", help="download an image from a registry")):
        _registry_options(parser)
        parser.set_defaults(func=_pull)
    for parser in (sub.add_parser("push", help="upload an image to a registry"),
                   verbs.add_parser("push", help="upload an image to a registry")):
        _registry_options(parser)
        parser.set_defaults(func=_push)

    boot = sub.add_parser("bootstrap", help="make a base image on this host: busybox (from "
                          "busybox-static, instant) or debian (debootstrap minbase, minutes)")
    boot.add_argument("name", choices=["busybox", "debian"])
    boot.add_argument("-t", "--tag", metavar="REF", help="name (default NAME:latest)")
    boot.set_defaults(func=_bootstrap)


def _list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print image ids only")
    parser.add_argument("-a", "--all", action="store_true", help="accepted for docker's sake")
    parser.add_argument("--no-trunc", action="store_true", help="print full image ids")
    parser.add_argument("--digests", action="store_true", help="add a DIGEST column")
    parser.set_defaults(func=_list)


def _registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="NAME[:TAG|@DIGEST]")
    parser.add_argument("--insecure", action="store_true",
                        help="allow plain HTTP and unverified TLS for this registry")
    parser.add_argument("-u", "--username", help="registry user (else a saved `login`)")
    parser.add_argument("-p", "--password", help="registry password")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _store(args: argparse.Namespace) -> ImageStore:
    return ImageStore(args.root)


# -- handlers ----------------------------------------------------------------------------------

def _list(args: argparse.Namespace) -> int:
    images = _store(args).list()
    if args.quiet:
        seen = []
        for image in images:
            shown = image.id if args.no_trunc else image.short_id
            if shown not in seen:
                seen.append(shown)
        for shown in seen:
            print(shown)
        return 0
    now = time.time()
    rows = []
    for image in images:
        created = _created_epoch(image)
        for repository, tag in _names(image):
            rows.append({
                "Repository": repository,
                "Tag": tag,
                "ID": image.id if args.no_trunc else image.short_id,
                "Digest": image.manifest_digest,
                "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
                "CreatedSince": _since(now - created),
                "Size": human_size(image.size),
                "SizeBytes": image.size,
            })
    if args.json:
        print_json(rows)
        return 0
    columns = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID",
               "CREATED", "SIZE"]
    print_table(columns, [
        [row["Repository"], row["Tag"], *([row["Digest"]] if args.digests else []), row["ID"],
         row["CreatedSince"], row["Size"]]
        for row in rows
    ])
    return 0


def _names(image: Image) -> list[tuple[str, str]]:
    if not image.tags:
        return [("<none>", "<none>")]
    return [(tag.rsplit(":", 1)[0], tag.rsplit(":", 1)[1]) for tag in image.tags]


def _created_epoch(image: Image) -> float:
    """The config's `created` time (RFC 3339), else when the image entered this store."""
    text = image.config.get("created")
    if isinstance(text, str) and len(text) >= 19:
        try:
            return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
        except ValueError:
            pass
    return image.created


def _since(seconds: float) -> str:
    """Docker's "CREATED" wording: `5 minutes ago`, `About an hour ago`, `3 weeks ago`."""
    seconds = max(0, int(seconds))
    if seconds < 1:
        return "Less than a second ago"
    if seconds < 60:
        return "1 second ago" if seconds == 1 else f"{seconds} seconds ago"
    minutes = round(seconds / 60)
    if minutes == 1:
        return "About a minute ago"
    if minutes < 60:
        return f"{minutes} minutes ago"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour ago"
    if hours < 48:
        return f"{hours} hours ago"
    days = seconds // 86400
    if days < 14:
        return f"{days} days ago"
    if days < 60:
        return f"{days // 7} weeks ago"
    if days < 730:
        return f"{days // 30} months ago"
    return f"{days // 365} years ago"


def _inspect(args: argparse.Namespace) -> int:
    store = _store(args)
    print_json([store.get(ref).inspect() for ref in args.refs])
    return 0


def _tag(args: argparse.Namespace) -> int:
    _store(args).tag(args.source, args.target)
    return 0


def _remove(args: argparse.Namespace) -> int:
    from runtime.host import Host

    host = Host(args.root)

    def users(image_id: str) -> list[str]:
        """Names of the containers (any state) made from the image."""
        return [str(name) for name in host.containers.users_of_image(image_id)]

    status = 0
    for ref in args.refs:
        try:
            for line in host.images.remove(ref, users=users, force=args.force):
                print(line)
        except BerthError as exc:
            print(f"berth-runtime: {exc}", file=sys.stderr)
            status = status or exc.exit_code
    return status


def _import(args: argparse.Namespace) -> int:
    from runtime.images.archive import import_archive

    if args.file == "-":
        if sys.stdin.isatty():
            raise InvalidArgument("no archive given: name a FILE (or -i FILE), or pipe one in")
        images = import_archive(_store(args), sys.stdin.buffer, tag=args.tag)
    else:
        images = import_archive(_store(args), args.file, tag=args.tag)
    if args.json:
        print_json([{"Id": image.id, "RepoTags": image.tags} for image in images])
    else:
        for image in images:
            print(image.id)
    return 0


def _export(args: argparse.Namespace) -> int:
    from runtime.images.archive import export_archive

    refs = args.refs or [args.ref]
    if args.file == "-":
        if sys.stdout.isatty():
            raise InvalidArgument("refusing to write an archive to a terminal; use -o FILE or "
                                  "redirect standard output")
        sys.stdout.flush()
        export_archive(_store(args), refs, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        export_archive(_store(args), refs, args.file)
    return 0


def _credentials(args: argparse.Namespace) -> tuple[str | None, str | None]:
    password = args.password
    if args.password_stdin:
        if password is not None:
            raise InvalidArgument("give the password once: --password or --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if (args.username is None) != (password is None):
        raise InvalidArgument("--username and --password (or --password-stdin) go together")
    return args.username, password


def _progress(args: argparse.Namespace) -> Any:
    """Docker-like progress lines on stderr, one per blob state change (not per MiB)."""
    if args.quiet or args.json:
        return None
    words = {"exists": "Already exists", "downloading": "Downloading",
             "uploading": "Pushing", "complete": "Complete"}

    def report(event: dict[str, Any]) -> None:
        status = event.get("status")
        if status in words and event.get("digest"):
            print(f"{short_id(event['digest'])}: {words[status]}", file=sys.stderr)

    return report


def _pull(args: argparse.Namespace) -> int:
    from runtime.images.registry import pull

    username, password = _credentials(args)
    image = pull(_store(args), args.ref, insecure=args.insecure, username=username,
                 password=password, progress=_progress(args))
    if args.json:
        print_json({"Id": image.id, "RepoTags": image.tags,
                    "ManifestDigest": image.manifest_digest})
    else:
        print(image.id)
    return 0


def _push(args: argparse.Namespace) -> int:
    from runtime.images.registry import push

    username, password = _credentials(args)
    digest = push(_store(args), args.ref, insecure=args.insecure, username=username,
                  password=password, progress=_progress(args))
    if args.json:
        print_json({"Ref": args.ref, "Digest": digest})
    else:
        print(digest)
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from runtime.images.bootstrap import bootstrap

    image = bootstrap(_store(args), args.name, tag=args.tag)
    if args.json:
        print_json({"Id": image.id, "RepoTags": image.tags})
    else:
        print(image.id)
    return 0
