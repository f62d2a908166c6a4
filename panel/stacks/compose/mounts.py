"""`volumes:` of a service: named volumes (declared under the top-level `volumes:`), anonymous
volumes, relative bind mounts into the stack's directory (files.py), and bind mounts of
absolute host paths for platform admins only. Short syntax
("NAME:/path[:ro]") and long syntax (type volume|bind, source, target, read_only,
volume.nocopy). Each entry is checked by the runtime's `-v` parser and written back as
"REAL_NAME:/path[:ro][,nocopy]"."""

from __future__ import annotations

from collections.abc import Mapping

from panel.stacks.compose.files import stack_path
from panel.stacks.compose.loader import Node
from panel.stacks.compose.spec import VolumeSpec
from panel.stacks.compose.values import (
    Context,
    boolean,
    check_keys,
    describe,
    join,
    mapping,
    string,
)
from runtime.containers import options as opts
from runtime.errors import InvalidArgument

LONG_KEYS = ("type", "source", "target", "read_only", "volume")
LONG_REFUSED = {
    "bind": "bind options (propagation, create_host_path, selinux) are not supported; remove "
            "bind:",
    "tmpfs": "tmpfs mounts are not supported; use a named volume",
    "consistency": "consistency is a Docker Desktop option Berth does not have; remove it",
    "image": "image mounts are not supported; copy the files into your image or a volume",
}
TYPE_ADVICE = {
    "tmpfs": "tmpfs mounts are not supported; use a named volume",
    "npipe": "named pipes are a Windows feature; not supported",
    "cluster": "cluster volumes are not supported; use a named volume",
    "image": "image mounts are not supported; copy the files into your image or a volume",
}
BIND_ADMIN_ONLY = ("bind mounts of host paths are allowed for platform admins only; use a named "
                   "volume (NAME:/path, with NAME declared under the top-level volumes:)")
BIND_OUTSIDE = ("a relative bind mount must stay inside the stack's directory (./path, not "
                "../path); use a named volume (NAME:/path) for anything else")
BIND_RELATIVE = ("a bind mount's source is an absolute host path or a path of the stack's "
                 "directory starting with ./")
# relative sources travel as STACK_DIR/<path> until the service splits them off (stack_dir)
STACK_DIR = "/@stack"


def _resolve(ctx: Context, source: str, rest: str, path: str, node: Node,
             declared: Mapping[str, VolumeSpec], used: set[str]) -> str | None:
    """The `-v` text with the real volume name, or None after reporting why not."""
    if source.startswith((".", "~")):
        relative = stack_path(source)
        if relative is None:
            ctx.error(path, node.mark, BIND_OUTSIDE)
            return None
        return f"{STACK_DIR}:{rest}" if relative == "." else f"{STACK_DIR}/{relative}:{rest}"
    if source.startswith("/"):
        if not ctx.allow_bind_mounts:
            ctx.error(path, node.mark, BIND_ADMIN_ONLY)
            return None
        return f"{source}:{rest}"
    if not source:
        return rest
    volume = declared.get(source)
    if volume is None:
        known = ", ".join(sorted(declared)) or "none"
        ctx.error(path, node.mark, f"undefined volume {source!r}: declare it under the top-level "
                                   f"volumes: (declared: {known})")
        return None
    used.add(source)
    return f"{volume.name}:{rest}"


def _canonical(ctx: Context, text: str, path: str, node: Node) -> opts.MountRequest | None:
    try:
        return opts.parse_volume(text)
    except InvalidArgument as exc:
        ctx.error(path, node.mark, str(exc).replace("invalid -v ", "invalid volume ", 1))
        return None


def _short(ctx: Context, node: Node, path: str, declared: Mapping[str, VolumeSpec],
           used: set[str]) -> str | None:
    text = string(ctx, node, path, empty=False)
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) == 1:
        return text
    return _resolve(ctx, parts[0], ":".join(parts[1:]), path, node, declared, used)


def _long(ctx: Context, node: Node, path: str, declared: Mapping[str, VolumeSpec],
          used: set[str]) -> str | None:
    check_keys(ctx, node, path, LONG_KEYS, LONG_REFUSED)
    fields = node.value
    kind = "volume"
    if "type" in fields:
        kind_node = fields["type"]
        kind = kind_node.value if isinstance(kind_node.value, str) else ""
        if kind not in ("volume", "bind"):
            ctx.error(join(path, "type"), kind_node.mark, TYPE_ADVICE.get(
                kind, f"type must be volume or bind, not {describe(kind_node.value)}"))
            return None
    if "target" not in fields:
        ctx.error(path, node.mark, "target: is required: the path inside the container")
        return None
    target = string(ctx, fields["target"], join(path, "target"), empty=False)
    source = ""
    if "source" in fields:
        source = string(ctx, fields["source"], join(path, "source"), empty=False) or ""
    read_only = False
    if "read_only" in fields:
        read_only = bool(boolean(ctx, fields["read_only"], join(path, "read_only")))
    no_copy = False
    if "volume" in fields:
        options = mapping(ctx, fields["volume"], join(path, "volume"), "{nocopy: true}",
                          null_is_empty=True)
        if options:
            check_keys(ctx, fields["volume"], join(path, "volume"), ("nocopy",),
                       {"subpath": "subpath is not supported; mount the whole volume"})
            if "nocopy" in options:
                no_copy = bool(boolean(ctx, options["nocopy"], join(path, "volume.nocopy")))
    if target is None:
        return None
    if kind == "bind" and not source:
        ctx.error(path, node.mark, "source: is required for a bind mount (an absolute host path)")
        return None
    if kind == "bind" and not source.startswith(("/", ".", "~")):
        ctx.error(join(path, "source"), fields["source"].mark, BIND_RELATIVE)
        return None
    if kind == "volume" and source.startswith(("/", ".", "~")):
        ctx.error(join(path, "source"), fields["source"].mark,
                  "a volume's source is a volume name; use type: bind for a host path")
        return None
    if not source and read_only:
        ctx.error(path, node.mark, "an anonymous volume cannot be read-only; give it a source "
                                   "(a named volume)")
        return None
    flags = ",".join(f for f, on in (("ro", read_only), ("nocopy", no_copy)) if on)
    rest = f"{target}:{flags}" if flags else target
    if not source:
        return rest
    return _resolve(ctx, source, rest, path, node, declared, used)


def parse_mounts(ctx: Context, node: Node, path: str, declared: Mapping[str, VolumeSpec],
                 used: set[str]) -> list[str]:
    """The canonical `-v` strings of a service; `used` collects the volume keys it names."""
    if not node.is_seq:
        ctx.error(path, node.mark, f'must be a list (e.g. ["data:/var/lib/data"]), not '
                                   f"{describe(node.plain())}")
        return []
    mounts: list[str] = []
    targets: dict[str, str] = {}
    for index, item in enumerate(node.value):
        item_path = join(path, index)
        text = _long(ctx, item, item_path, declared, used) if item.is_map else \
            _short(ctx, item, item_path, declared, used)
        if text is None:
            continue
        mount = _canonical(ctx, text, item_path, item)
        if mount is None:
            continue
        if mount.destination in targets:
            ctx.error(item_path, item.mark, f"{mount.destination} is already mounted by "
                                            f"{targets[mount.destination]}")
            continue
        targets[mount.destination] = item_path
        flags = ",".join(f for f, on in (("ro", mount.read_only), ("nocopy", mount.no_copy))
                         if on)
        head = f"{mount.source}:{mount.destination}" if mount.source else mount.destination
        mounts.append(f"{head}:{flags}" if flags else head)
    return mounts
