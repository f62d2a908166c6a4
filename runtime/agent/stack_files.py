"""The files a container spec brings with it, written on this host before the container is made:

- `files` (compose secrets and configs): each written to `<root>/agent/files/<uid>/` (a
  directory only root can enter) and bind-mounted read-only at its target, with its mode and
  owner; removed with the container.
- `stack_dir` (relative binds): the stack's directory `<root>/stacks/<stack>/`, shared by the
  stack's replicas on this host as Compose's project directory is. The uploaded files are
  written into it (they win over what is there, as a checkout does; what containers wrote
  elsewhere stays), a mounted path that does not exist is made a directory (as Docker does),
  and each path is bind-mounted at its target.

Containers can write into their stack directory, so it is walked one component at a time
with O_NOFOLLOW: a symlink a container planted (`conf -> /etc`) is refused, never followed,
and files are replaced by rename, which replaces a link rather than writing through it.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from runtime.errors import InvalidArgument

_STACK = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def files_dir(root: Path, uid: str) -> Path:
    return root / "agent" / "files" / uid


def stack_dir(root: Path, stack: str) -> Path:
    return root / "stacks" / stack


def prepare(root: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with its files written and their bind mounts added to `volumes` (and the two
    fields consumed); the spec itself when it has neither."""
    entries, directory = spec.get("files") or [], spec.get("stack_dir") or {}
    if not entries and not directory:
        return spec
    volumes = list(spec.get("volumes") or [])
    if entries:
        volumes += _write_files(files_dir(root, str(spec["uid"])), entries)
    if directory:
        volumes += _fill_stack_dir(root, directory)
    return {**{k: v for k, v in spec.items() if k not in ("files", "stack_dir")},
            "volumes": volumes}


def remove_files(root: Path, uid: str) -> None:
    """Forget the secret and config files of the container `uid` (it was removed)."""
    shutil.rmtree(files_dir(root, uid), ignore_errors=True)


def _decode(entry: dict[str, Any], what: str) -> bytes:
    try:
        return base64.b64decode(str(entry.get("content") or ""), validate=True)
    except ValueError:
        raise InvalidArgument(f"{what}: the content must be base64") from None


def _write_files(directory: Path, entries: list[dict[str, Any]]) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    mounts = []
    for index, entry in enumerate(entries):
        target = str(entry.get("target") or "")
        if not target.startswith("/") or ".." in target.split("/") or ":" in target:
            raise InvalidArgument(f"spec.files[{index}].target must be an absolute path "
                                  f"without '..' or ':', not {target!r}")
        path = directory / str(index)
        temporary = directory / f".{index}.new"
        temporary.write_bytes(_decode(entry, f"spec.files[{index}]"))
        os.chmod(temporary, int(entry.get("mode", 0o444)) & 0o777)
        if "uid" in entry or "gid" in entry:
            os.chown(temporary, int(entry.get("uid", 0)), int(entry.get("gid", 0)))
        os.replace(temporary, path)
        mounts.append(f"{path}:{target}:ro")
    return mounts


def _parts(relative: str, what: str) -> list[str]:
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or relative.startswith("/"):
        raise InvalidArgument(f"{what}: {relative!r} leaves the stack's directory")
    return parts


def _walk(top: int, parts: list[str], create: bool, what: str) -> int:
    """A descriptor of the directory `parts` below `top`, no component a symlink."""
    fd = os.dup(top)
    try:
        for part in parts:
            try:
                following = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                following = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except (NotADirectoryError, OSError) as exc:
                raise InvalidArgument(f"{what}: {part!r} in the stack's directory is not a "
                                      f"directory (a symlink is never followed): {exc}") from None
            os.close(fd)
            fd = following
        return fd
    except BaseException:
        os.close(fd)
        raise


def _write_into(top: int, relative: str, data: bytes) -> None:
    parts = _parts(relative, "stack file")
    if not parts:
        raise InvalidArgument("a stack file needs a name")
    fd = _walk(top, parts[:-1], True, f"stack file {relative}")
    try:
        name, temporary = parts[-1], f".{parts[-1]}.berth-new"
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                      | os.O_CLOEXEC, 0o644, dir_fd=fd)
        with os.fdopen(out, "wb") as handle:
            handle.write(data)
        try:
            os.rename(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except IsADirectoryError:
            os.unlink(temporary, dir_fd=fd)
            raise InvalidArgument(f"stack file {relative}: a directory of that name is in the "
                                  "stack's directory") from None
    finally:
        os.close(fd)


def _fill_stack_dir(root: Path, directory: dict[str, Any]) -> list[str]:
    stack = str(directory.get("stack") or "")
    if not _STACK.match(stack):
        raise InvalidArgument(f"spec.stack_dir.stack must be a stack name, not {stack!r}")
    base = stack_dir(root, stack)
    base.mkdir(parents=True, exist_ok=True, mode=0o755)
    top = os.open(base, _DIR_FLAGS)
    try:
        for relative, content in sorted((directory.get("files") or {}).items()):
            _write_into(top, relative, _decode({"content": content}, f"stack file {relative}"))
        mounts = []
        for mount in directory.get("mounts") or []:
            source, _, rest = str(mount).partition(":")
            parts = _parts(source, f"spec.stack_dir mount {mount!r}")
            try:
                os.close(_walk(top, parts, False, f"mount {mount!r}"))
            except FileNotFoundError:
                os.close(_walk(top, parts, True, f"mount {mount!r}"))
            except InvalidArgument:  # not a directory: a file is fine, a symlink is not
                _check_file(top, parts, mount)
            mounts.append(f"{base.joinpath(*parts)}:{rest}")
        return mounts
    finally:
        os.close(top)


def _check_file(top: int, parts: list[str], mount: str) -> None:
    parent = _walk(top, parts[:-1], False, f"mount {mount!r}")
    try:
        mode = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode
    finally:
        os.close(parent)
    if not stat.S_ISREG(mode):
        raise InvalidArgument(f"mount {mount!r}: {'/'.join(parts)!r} in the stack's directory is "
                              "neither a directory nor a file (a symlink is never followed)")
