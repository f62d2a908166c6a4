"""What a compose file reads from its own directory: `env_file:`, the `file:` of top-level
`secrets:` and `configs:`, and relative bind mounts (`./conf:/etc/app`). Berth has no directory
next to the compose file on the panel; the stack's directory is the set of files uploaded with
the compose text (`files`: relative path -> text), and nothing is read from the panel's disk.

- `env_file` is read here, at resolve time, into the service's environment (`environment:`
  wins over it, a later env file over an earlier one), with Compose's dotenv rules: `#`
  comments, `export K=V`, quotes; `${VAR}` is substituted except in single quotes.
- `secrets:` and `configs:` become `files` entries of the container spec: a file mounted
  read-only at its target (`/run/secrets/NAME` and `/NAME` by default). A config's content is
  stored in the spec; a secret's never is: its entry names the secret ("file:PATH" for an
  uploaded file, or a stack secret's name), and the engine gives the value to the replica
  encrypted, as it does secret environment values. Files used as a secret's `file:` are kept
  encrypted and shown by name only (`StackSpec.secret_files`).
- A relative bind mount is a directory of the stack on each host that runs one of its
  replicas (`<agent root>/stacks/<stack>/`), filled with the uploaded files under the mounted
  path; it is confined to that directory, so any operator may use it. `~/x` means the same
  as `./x`; a path leaving the directory (`../x`) is refused.
"""

from __future__ import annotations

import base64
import io
import posixpath
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from dotenv.parser import parse_stream

from panel.stacks.compose.interpolation import InterpolationError, substitute
from panel.stacks.compose.loader import Node
from panel.stacks.compose.values import (
    Context,
    boolean,
    check_keys,
    describe,
    join,
    mapping,
    string,
)

DEFAULT_MODE = 0o444
SECRETS_DIR = "/run/secrets"
SECRET_KEYS = ("file", "environment", "name", "labels")
CONFIG_KEYS = ("file", "content", "environment", "name", "labels")
OBJECT_REFUSED = {
    "external": "Berth keeps no swarm {kind}s: give the value with file: (a file uploaded with "
                "the compose file) or environment: (a variable of the stack)",
    "driver": "{kind} drivers are a swarm feature; use file: or environment:",
    "template_driver": "templated {kind}s are not supported; use file: or environment:",
}
USE_KEYS = ("source", "target", "uid", "gid", "mode")
UPLOAD_HINT = ('upload it with the compose file (the stack\'s files: {"PATH": "content"}), or '
               "paste its content into the file")


def stack_path(text: str) -> str | None:
    """A path of the stack's directory ("conf/app.ini", "." for the directory itself), or None
    when `text` is absolute or leaves the directory."""
    if text == "~" or text.startswith("~/"):
        text = "." + text[1:]
    if not text or text.startswith("/") or "\\" in text or "\0" in text:
        return None
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../"):
        return None
    return normal


@dataclass
class FileObject:
    """A top-level secret or config: where its content comes from."""

    kind: str  # "secret" | "config"
    content: str | None = None  # a config's content, or a secret taken from plain environment
    secret: str = ""  # the engine's name for a secret's value ("file:PATH" or a stack secret)


def _object_source(ctx: Context, kind: str, node: Node, path: str,
                   secret_values: Collection[str], secret_files: set[str]) -> FileObject | None:
    fields = mapping(ctx, node, path, "{file: ./db_password.txt}")
    if fields is None:
        return None
    allowed = SECRET_KEYS if kind == "secret" else CONFIG_KEYS
    check_keys(ctx, node, path, allowed, {k: v.format(kind=kind) for k, v in
                                          OBJECT_REFUSED.items()})
    sources = [k for k in ("file", "content", "environment") if k in fields]
    if len(sources) != 1:
        ctx.error(path, node.mark, f"a {kind} needs exactly one of "
                                   f"{', '.join(k + ':' for k in allowed[:-2])} (has "
                                   f"{', '.join(sources) or 'none'})")
        return None
    source = sources[0]
    value = string(ctx, fields[source], join(path, source), numbers=True, empty=source ==
                   "content")
    if value is None:
        return None
    if source == "content":
        return FileObject(kind, content=value)
    if source == "environment":
        if value in secret_values:
            if kind == "secret":
                return FileObject(kind, secret=value)
            ctx.error(join(path, source), fields[source].mark,
                      f"{value} is a secret of the stack: use it in a top-level secrets: entry "
                      "(a config's content is stored and shown as it is)")
            return None
        if value not in ctx.environment:
            ctx.error(join(path, source), fields[source].mark,
                      f"variable {value} is not set: add it to the stack's "
                      f"{'secrets' if kind == 'secret' else 'environment'}")
            return None
        return FileObject(kind, content=str(ctx.environment[value]))
    relative = stack_path(value)
    if relative is None or relative == ".":
        ctx.error(join(path, "file"), fields["file"].mark,
                  f"{value!r} must be a file of the stack's directory (a relative path such as "
                  "./db_password.txt, not leaving the directory)")
        return None
    if relative not in ctx.files:
        ctx.error(join(path, "file"), fields["file"].mark,
                  f"{value!r} is not among the stack's files: {UPLOAD_HINT}")
        return None
    if kind == "secret":
        secret_files.add(relative)
        return FileObject(kind, secret=f"file:{relative}")
    return FileObject(kind, content=ctx.files[relative])


def parse_objects(ctx: Context, node: Node, kind: str, secret_values: Collection[str],
                  secret_files: set[str]) -> dict[str, FileObject]:
    """Top-level `secrets:` or `configs:` (kind "secret" / "config")."""
    top = f"{kind}s"
    fields = mapping(ctx, node, top, "{db_password: {file: ./db_password.txt}}",
                     null_is_empty=True)
    objects: dict[str, FileObject] = {}
    for key, definition in (fields or {}).items():
        found = _object_source(ctx, kind, definition, join(top, key), secret_values,
                               secret_files)
        if found is not None:
            objects[key] = found
    return objects


def _mode(ctx: Context, node: Node, path: str) -> int | None:
    """A file mode: 0440, "0440" or 0o440 (octal), or a decimal such as 288. YAML 1.2 reads
    0440 as 440; Compose's files mean YAML 1.1's octal, so a leading 0 makes it octal here."""
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool) and node.source.startswith("0") \
            and node.source.isdigit():
        value = node.source
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        ctx.error(path, node.mark, f"must be a file mode such as 0440, not {describe(node.value)}")
        return None
    return value


def parse_uses(ctx: Context, node: Node, path: str, kind: str,
               declared: Mapping[str, FileObject]) -> list[dict[str, Any]]:
    """A service's `secrets:`/`configs:` ([NAME] or [{source, target, uid, gid, mode}]) as
    the container spec's `files` entries."""
    if not node.is_seq:
        ctx.error(path, node.mark, f"must be a list of {kind} names, not "
                                   f"{describe(node.plain())}")
        return []
    entries = []
    for index, item in enumerate(node.value):
        item_path = join(path, index)
        target, mode, owner = "", DEFAULT_MODE, {}
        if item.is_map:
            check_keys(ctx, item, item_path, USE_KEYS, {})
            fields = item.value
            if "source" not in fields:
                ctx.error(item_path, item.mark, f"source: is required: the name of a "
                                                f"top-level {kind}")
                continue
            source = string(ctx, fields["source"], join(item_path, "source"), empty=False)
            if "target" in fields:
                target = string(ctx, fields["target"], join(item_path, "target"),
                                empty=False) or ""
            if "mode" in fields:
                mode = _mode(ctx, fields["mode"], join(item_path, "mode")) or DEFAULT_MODE
            for key in ("uid", "gid"):
                if key in fields:
                    text = string(ctx, fields[key], join(item_path, key), numbers=True)
                    if text is not None and text.isdigit():
                        owner[key] = int(text)
                    elif text is not None:
                        ctx.error(join(item_path, key), fields[key].mark,
                                  f"must be a number, not {text!r}")
        else:
            source = string(ctx, item, item_path, empty=False)
        if source is None:
            continue
        found = declared.get(source)
        if found is None:
            known = ", ".join(sorted(declared)) or "none"
            ctx.error(item_path, item.mark, f"undefined {kind} {source!r}: declare it under the "
                                            f"top-level {kind}s: (declared: {known})")
            continue
        target = target or source
        if not target.startswith("/"):
            target = posixpath.join(SECRETS_DIR, target) if kind == "secret" else f"/{target}"
        if ".." in target.split("/") or target == "/":
            ctx.error(item_path, item.mark, f"target {target!r} must be an absolute path "
                                            "without '..'")
            continue
        entry: dict[str, Any] = {"target": posixpath.normpath(target), "mode": mode, **owner}
        if found.content is not None:
            entry["content"] = base64.b64encode(found.content.encode()).decode()
        else:
            entry["secret"] = found.secret
        entries.append(entry)
    return entries


def parse_env_files(ctx: Context, node: Node, path: str) -> dict[str, str]:
    """`env_file:` (a path, a list of paths, or [{path, required}]) -> the variables it sets."""
    items = node.value if node.is_seq else [node]
    env: dict[str, str] = {}
    for index, item in enumerate(items):
        item_path = join(path, index) if node.is_seq else path
        required = True
        if item.is_map:
            check_keys(ctx, item, item_path, ("path", "required", "format"),
                       {"format": "only the default dotenv format is read; remove format:"})
            if "path" not in item.value:
                ctx.error(item_path, item.mark, "path: is required: the env file's path")
                continue
            if "required" in item.value:
                required = boolean(ctx, item.value["required"], join(item_path, "required")) \
                    is not False
            text = string(ctx, item.value["path"], join(item_path, "path"), empty=False)
        else:
            text = string(ctx, item, item_path, empty=False)
        if text is None:
            continue
        relative = stack_path(text)
        if relative is None or relative == ".":
            ctx.error(item_path, item.mark, f"{text!r} must be a file of the stack's directory "
                                            "(a relative path not leaving it)")
            continue
        if relative not in ctx.files:
            if required:
                ctx.error(item_path, item.mark, f"env file {text!r} is not among the stack's "
                                                f"files: {UPLOAD_HINT}, or set required: false")
            continue
        env.update(_dotenv(ctx, ctx.files[relative], relative, item_path, item))
    return env


def _dotenv(ctx: Context, text: str, name: str, path: str, node: Node) -> dict[str, str]:
    env: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            ctx.error(path, node.mark, f"{name} line {line}: {binding.original.string.strip()!r}"
                                       " is not NAME=VALUE")
            continue
        if binding.key is None:
            continue  # a comment or a blank line
        if binding.value is None:  # a bare NAME takes the stack's value, as in Compose
            if binding.key in ctx.environment:
                env[binding.key] = str(ctx.environment[binding.key])
            continue
        literal = binding.original.string.partition("=")[2].lstrip().startswith("'")
        value = binding.value
        if not literal and "$" in value:
            try:  # the file's own earlier variables first, then the stack's (as Compose)
                value = substitute(value, {**ctx.environment, **env})
            except InterpolationError as exc:
                ctx.error(path, node.mark, f"{name} line {line}: {exc}")
                continue
        env[binding.key] = value
    return env


def bound_files(sources: list[str], files: Mapping[str, str],
                secret_files: set[str]) -> dict[str, str]:
    """The uploaded files a replica's relative binds show (base64), secrets excepted."""
    chosen = {}
    for path, content in files.items():
        if path in secret_files:
            continue
        if any(source == "." or path == source or path.startswith(source + "/")
               for source in sources):
            chosen[path] = base64.b64encode(content.encode()).decode()
    return dict(sorted(chosen.items()))

