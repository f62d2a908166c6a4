"""Resolving `--user` / the image's User against the image's own /etc/passwd and /etc/group.

The files are read from the unpacked layers (topmost first) rather than through a mounted root
filesystem, so a symlinked /etc/passwd in an image can never make us read a file of the host:
only regular files inside a layer directory count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import InvalidArgument


@dataclass
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"


def _layer_file(layer_dirs: list[Path], relpath: str) -> str | None:
    """The content of `relpath` as the merged image shows it, or None (missing, whited out, or
    not a regular file). Whiteouts are overlayfs ones: a 0/0 character device, or the
    `trusted.overlay.opaque` xattr on a directory hiding everything below it."""
    parent = relpath.rpartition("/")[0]
    for layer in reversed(layer_dirs):
        if any((layer / p).is_symlink() for p in _prefixes(parent)):
            return None
        candidate = layer / relpath
        if os.path.lexists(candidate):
            if candidate.is_symlink() or not candidate.is_file():
                return None  # a symlink, a directory, or a whiteout device
            return candidate.read_text(errors="replace")
        if _is_opaque(layer / parent):
            return None
    return None


def _is_opaque(directory: Path) -> bool:
    try:
        return os.getxattr(directory, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _prefixes(parent: str) -> list[str]:
    parts = [p for p in parent.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _entries(text: str | None, fields: int) -> list[list[str]]:
    rows = []
    for line in (text or "").splitlines():
        if line and not line.startswith("#"):
            parts = line.split(":")
            if len(parts) >= fields:
                rows.append(parts)
    return rows


def resolve_user(spec: str, layer_dirs: list[Path]) -> ResolvedUser:
    """Turn `name`, `uid`, `name:group` or `uid:gid` into numeric ids, as docker does.

    A numeric uid absent from /etc/passwd runs with gid 0; a name must exist in /etc/passwd."""
    passwd = _entries(_layer_file(layer_dirs, "etc/passwd"), 7)
    groups = _entries(_layer_file(layer_dirs, "etc/group"), 4)
    user_part, _, group_part = (spec or "").partition(":")
    user_part = user_part or "0"
    entry = None
    for row in passwd:
        if row[0] == user_part or (user_part.isdigit() and row[2] == user_part):
            entry = row
            break
    if entry is None:
        if not user_part.isdigit():
            raise InvalidArgument(
                f"unable to find user {user_part!r}: no matching entry in the image's /etc/passwd;"
                " use a numeric uid or a user the image defines"
            )
        uid, gid, home, user_name = int(user_part), 0, "/", None
    else:
        uid, gid, home, user_name = int(entry[2]), int(entry[3]), entry[5] or "/", entry[0]
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            match = [row for row in groups if row[0] == group_part]
            if not match:
                raise InvalidArgument(
                    f"unable to find group {group_part!r}: no matching entry in the image's "
                    "/etc/group; use a numeric gid or a group the image defines"
                )
            gid = int(match[0][2])
    additional: list[int] = []
    if user_name is not None and not group_part:
        for row in groups:
            members = [m for m in row[3].split(",") if m]
            if user_name in members and row[2].isdigit() and int(row[2]) != gid:
                additional.append(int(row[2]))
    if uid > 0xFFFFFFFE or gid > 0xFFFFFFFE:
        raise InvalidArgument(f"user {spec!r} is out of range: ids must be below 4294967295")
    return ResolvedUser(uid=uid, gid=gid, additional_gids=additional, home=home)


def resolve_groups(names: list[str], layer_dirs: list[Path]) -> list[int]:
    """`group_add`: numeric gids as given, names looked up in the image's /etc/group."""
    groups = _entries(_layer_file(layer_dirs, "etc/group"), 4)
    gids: list[int] = []
    for name in names:
        if name.isdigit():
            gid = int(name)
        else:
            match = [row for row in groups if row[0] == name and row[2].isdigit()]
            if not match:
                raise InvalidArgument(
                    f"unable to find group {name!r} (group_add): no matching entry in the "
                    "image's /etc/group; use a numeric gid or a group the image defines")
            gid = int(match[0][2])
        if gid not in gids:
            gids.append(gid)
    return gids
