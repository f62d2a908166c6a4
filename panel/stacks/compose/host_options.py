"""The service keys that tune the container's kernel view (capabilities, devices, sysctls,
ulimits, tmpfs, /dev/shm, /etc/hosts and resolv.conf, namespaces, logging, platform) in each of
their compose forms, turned into the fields of `runtime.protocol.ContainerSpec`.

Only the shape is checked here (with the key's line and column); the values are checked by the
container API's validator and the runtime's own parsers, and who may use the privileged ones by
panel/workloads/privileges.py when a person deploys the stack."""

from __future__ import annotations

from typing import Any

from panel.stacks.compose.loader import Node
from panel.stacks.compose.values import (
    Context,
    boolean,
    describe,
    join,
    key_values,
    mapping,
    size,
    string,
    string_list,
    text_value,
)

# compose key -> spec field, for lists of strings also written as one string
_STRING_OR_LIST = {"dns": "dns", "dns_search": "dns_search", "dns_opt": "dns_opt",
                   "tmpfs": "tmpfs"}
_LISTS = {"cap_add": "cap_add", "cap_drop": "cap_drop", "security_opt": "security_opt",
          "group_add": "group_add"}
_STRINGS = {"pid": "pid", "ipc": "ipc", "platform": "platform"}
LOG_KEYS = ("driver", "options")
KEYS = (*_STRING_OR_LIST, *_LISTS, *_STRINGS, "privileged", "devices", "sysctls", "ulimits",
        "shm_size", "extra_hosts", "expose", "logging")


def _string_or_list(ctx: Context, node: Node, path: str, example: str) -> list[str] | None:
    if isinstance(node.value, str):
        return [node.value] if node.value.strip() else []
    return string_list(ctx, node, path, example)


def _strings_or_numbers(ctx: Context, node: Node, path: str, example: str) -> list[str] | None:
    """A list whose items may be written as numbers (group_add: [1000], expose: [80])."""
    if not node.is_seq:
        ctx.error(path, node.mark, f"must be a list (e.g. {example}), not "
                                   f"{describe(node.plain())}")
        return None
    result = []
    for index, item in enumerate(node.value):
        text = string(ctx, item, join(path, index), numbers=True, empty=False)
        if text is None:
            return None
        result.append(text)
    return result


def _devices(ctx: Context, node: Node, path: str) -> list[str] | None:
    """`/dev/x[:/dev/y[:rwm]]` strings, or {source, target, permissions} mappings."""
    if not node.is_seq:
        ctx.error(path, node.mark, f'must be a list such as ["/dev/fuse"], not '
                                   f"{describe(node.plain())}")
        return None
    result = []
    for index, item in enumerate(node.value):
        item_path = join(path, index)
        if item.is_map:
            fields = mapping(ctx, item, item_path, "{source: /dev/fuse}") or {}
            source = string(ctx, fields["source"], join(item_path, "source"), empty=False) \
                if "source" in fields else None
            if source is None:
                ctx.error(item_path, item.mark, "source: is required (the host's device)")
                continue
            target = string(ctx, fields["target"], join(item_path, "target")) \
                if "target" in fields else None
            permissions = string(ctx, fields["permissions"], join(item_path, "permissions")) \
                if "permissions" in fields else None
            result.append(":".join(p for p in (source, target or source, permissions) if p))
        else:
            text = string(ctx, item, item_path, empty=False)
            if text is not None:
                result.append(text)
    return result


def _sysctls(ctx: Context, node: Node, path: str) -> dict[str, str] | None:
    entries = key_values(ctx, node, path, "net.core.somaxconn")
    if entries is None:
        return None
    result = {}
    for entry in entries:
        if entry.value is None:
            ctx.error(entry.path, entry.mark, f"{entry.key!r} has no value: use KEY=VALUE")
            continue
        result[entry.key] = entry.value
    return dict(sorted(result.items()))


def _limit(ctx: Context, node: Node, path: str) -> int | None:
    value = node.value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.error(path, node.mark, f"must be a whole number (-1: unlimited), not "
                                   f"{describe(value)}")
        return None
    return value


def _ulimits(ctx: Context, node: Node, path: str) -> dict[str, dict[str, int]] | None:
    """{name: N} or {name: {soft: N, hard: M}}."""
    fields = mapping(ctx, node, path, "{nofile: {soft: 1024, hard: 4096}}")
    if fields is None:
        return None
    result = {}
    for name, item in fields.items():
        item_path = join(path, name)
        if item.is_map:
            limits = mapping(ctx, item, item_path, "{soft: 1024, hard: 4096}") or {}
            unknown = sorted(set(limits) - {"soft", "hard"})
            for key in unknown:
                ctx.error(join(item_path, key), item.key_mark(key),
                          f"unknown key {key!r}: allowed soft, hard")
            if not {"soft", "hard"} <= set(limits):
                ctx.error(item_path, item.mark, "needs both soft: and hard:")
                continue
            soft = _limit(ctx, limits["soft"], join(item_path, "soft"))
            hard = _limit(ctx, limits["hard"], join(item_path, "hard"))
            if soft is not None and hard is not None:
                result[name] = {"soft": soft, "hard": hard}
        else:
            both = _limit(ctx, item, item_path)
            if both is not None:
                result[name] = {"soft": both, "hard": both}
    return dict(sorted(result.items()))


def _extra_hosts(ctx: Context, node: Node, path: str) -> list[str] | None:
    """["name:ip", "name=ip"] or {name: ip} (an IPv6 address may hold colons)."""
    if node.is_map:
        result = []
        for name, item in node.value.items():
            address = string(ctx, item, join(path, name), numbers=True, empty=False)
            if address is not None:
                result.append(f"{name}:{address}")
        return result
    texts = string_list(ctx, node, path, '["db.local:10.0.0.5"]')
    if texts is None:
        return None
    result = []
    for index, text in enumerate(texts):
        name, sep, address = text.partition("=") if "=" in text else text.partition(":")
        if not sep or not name or not address:
            ctx.error(join(path, index), node.value[index].mark,
                      f"{text!r} must be NAME:ADDRESS (or NAME=ADDRESS)")
            continue
        result.append(f"{name}:{address}")
    return result


def _logging(ctx: Context, node: Node, path: str) -> dict[str, Any] | None:
    fields = mapping(ctx, node, path, "{driver: json-file, options: {max-size: 10m}}")
    if fields is None:
        return None
    for key in sorted(set(fields) - set(LOG_KEYS)):
        ctx.error(join(path, key), node.key_mark(key), f"unknown key {key!r}: allowed "
                                                       f"{', '.join(LOG_KEYS)}")
    result: dict[str, Any] = {}
    if "driver" in fields:
        driver = string(ctx, fields["driver"], join(path, "driver"))
        if driver is not None:
            result["driver"] = driver
    if "options" in fields:
        options = mapping(ctx, fields["options"], join(path, "options"), "{max-size: 10m}",
                          null_is_empty=True)
        if options is not None:
            result["options"] = {key: text_value(value.value) or ""
                                 for key, value in options.items()}
    return result


def parse_host_options(ctx: Context, fields: dict[str, Node], path: str,
                       request: Any) -> None:
    """Read every key of KEYS present in the service `fields` into `request` (the service's
    _Request: the API validator's input and where each field came from)."""
    for key, name in _STRING_OR_LIST.items():
        if key in fields:
            values = _string_or_list(ctx, fields[key], join(path, key), f'["{key}-value"]')
            if values is not None:
                request.set(name, values, join(path, key), fields[key])
    for key, name in _LISTS.items():
        if key in fields:
            read_list = _strings_or_numbers if key == "group_add" else _string_or_list
            values = read_list(ctx, fields[key], join(path, key), '["NET_ADMIN"]')
            if values is not None:
                request.set(name, values, join(path, key), fields[key])
    for key, name in _STRINGS.items():
        if key in fields:
            text = string(ctx, fields[key], join(path, key))
            if text is not None:
                request.set(name, text, join(path, key), fields[key])
    readers: dict[str, Any] = {
        "devices": _devices, "sysctls": _sysctls, "ulimits": _ulimits,
        "extra_hosts": _extra_hosts, "logging": _logging,
        "expose": lambda c, n, p: _strings_or_numbers(c, n, p, '["80", "53/udp"]')}
    for key, reader in readers.items():
        if key in fields:
            value = reader(ctx, fields[key], join(path, key))
            if value is not None:
                request.set(key, value, join(path, key), fields[key])
    if "privileged" in fields:
        flag = boolean(ctx, fields["privileged"], join(path, "privileged"))
        if flag is not None:
            request.set("privileged", flag, join(path, "privileged"), fields["privileged"])
    if "shm_size" in fields:
        shm = size(ctx, fields["shm_size"], join(path, "shm_size"), "64m")
        if shm is not None:
            request.set("shm_size", shm, join(path, "shm_size"), fields["shm_size"])
