"""From what a stack stores to what its revision deploys: the compose file resolved with the
stack's environment, with secret values kept out of the stored spec.

Secret values are substituted as references (`@@berth-secret:NAME@@`), so a revision's JSON,
its diff and the exported compose file never hold them; a reference may appear only in a
service's `environment:` and becomes a secret of each replica (encrypted at rest, sent only to
the replica's host). A change of a secret's value changes the revision's `secret_digests`, and
so the replica hash of the services using it: they are rolled like any other change."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from panel.stacks.compose import ComposeError, StackSpec, container_spec_hash, parse_compose
from panel.stacks.compose.files import stack_path
from panel.workloads.spec import ValidationFailed

SECRET_REFERENCE = "@@berth-secret:{}@@"
_REFERENCE = re.compile(r"@@berth-secret:([A-Za-z_][A-Za-z0-9_]*)@@")
STACK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ComposeInvalid(ValidationFailed):
    """The compose file was refused: `errors["compose"]` lists {path, line, column, message}."""

    def __init__(self, issues: list[dict[str, Any]]):
        super().__init__({"compose": [f"line {i['line']}, column {i['column']}: "
                                      f"{i['path']}: {i['message']}" for i in issues]})
        self.errors = {"compose": issues}  # type: ignore[dict-item]


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not STACK_NAME.match(name):
        raise ValidationFailed({"name": ["a stack name is required: lower-case letters, digits, "
                                         "'_' and '-', starting with a letter or digit, at most "
                                         "48 characters"]})
    return name


MAX_FILES, MAX_FILE_BYTES, MAX_TOTAL_BYTES = 200, 1024 * 1024, 4 * 1024 * 1024


def check_files(values: Any) -> dict[str, str]:
    """`files` of a stack: its directory, an object of relative path -> text content."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValidationFailed({"files": ['must be an object of relative paths to their text, '
                                          'e.g. {"nginx.conf": "events {}", ".env": "A=1"}']})
    if len(values) > MAX_FILES:
        raise ValidationFailed({"files": [f"at most {MAX_FILES} files, not {len(values)}"]})
    out: dict[str, str] = {}
    total = 0
    for key, content in values.items():
        path = stack_path(key) if isinstance(key, str) else None
        if path is None or path == ".":
            raise ValidationFailed({"files": [f"{key!r} is not a relative path inside the "
                                              "stack's directory (no leading /, no ..)"]})
        if not isinstance(content, str):
            raise ValidationFailed({"files": [f"the content of {key} must be text"]})
        size = len(content.encode())
        total += size
        if size > MAX_FILE_BYTES or total > MAX_TOTAL_BYTES:
            raise ValidationFailed({"files": [
                f"{key}: a file may hold {MAX_FILE_BYTES // 1024} KiB and all files "
                f"{MAX_TOTAL_BYTES // 1024 // 1024} MiB; put larger data in a volume"]})
        if path in out or any(p.startswith(path + "/") or path.startswith(p + "/")
                              for p in out):
            raise ValidationFailed({"files": [f"{key!r} is given twice, or is both a file "
                                              "and a directory"]})
        out[path] = content
    return dict(sorted(out.items()))


def check_variables(field: str, values: Any) -> dict[str, str]:
    """`environment`/`secrets` of a stack: an object of NAME -> string (numbers allowed)."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValidationFailed({field: ['must be an object of names to strings, e.g. '
                                        '{"TAG": "1.4"}']})
    out = {}
    for key, value in values.items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            raise ValidationFailed({field: [f"{key!r} is not a valid variable name: letters, "
                                            "digits and _, not starting with a digit"]})
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValidationFailed({field: [f"the value of {key} must be a string"]})
        out[key] = str(value)
    return out


def secret_digest(value: str) -> str:
    """A keyed hash of a secret value: changes with the value, reveals nothing of it."""
    key = settings.BERTH_SECRETS_KEY.encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def resolve(name: str, compose: str, environment: Mapping[str, str],
            secrets: Mapping[str, str], scale: Mapping[str, int] | None = None,
            allow_bind_mounts: bool = False, files: Mapping[str, str] | None = None,
            ) -> StackSpec:
    """The StackSpec a deploy of this stack would roll out; ComposeInvalid naming each line."""
    both = set(environment) & set(secrets)
    if both:
        raise ValidationFailed({"secrets": [f"{', '.join(sorted(both))}: a name is either in "
                                            "environment or in secrets"]})
    values = {**environment, **{key: SECRET_REFERENCE.format(key) for key in secrets}}
    if not isinstance(compose, str) or not compose.strip():
        raise ComposeInvalid([{"path": "", "line": 1, "column": 1,
                               "message": "the compose file is empty: it needs services:"}])
    try:
        spec = parse_compose(compose, stack_name=name, environment=values,
                             allow_bind_mounts=allow_bind_mounts, files=files,
                             secret_names=set(secrets))
    except ComposeError as exc:
        raise ComposeInvalid(exc.errors) from None
    misplaced = []
    for service_name, service in spec.services.items():
        outside = {k: v for k, v in service.container.items() if k != "env"}
        if _REFERENCE.search(json.dumps(outside)):
            misplaced.append(f"services.{service_name}")
    if misplaced:
        raise ValidationFailed({"secrets": [
            f"{', '.join(misplaced)}: secret values may be used only in environment: (they "
            "are never written into commands, labels or other keys)"]})
    for service_name, replicas in (scale or {}).items():
        if service_name in spec.services:
            spec.services[service_name].replicas = int(replicas)
    return spec


def used_secrets(container: Mapping[str, Any]) -> list[str]:
    """Names of the secrets a replica uses: referenced by its environment, or mounted as
    files (a stack secret's name, or "file:PATH" for a secret file of the stack)."""
    return sorted({m for value in (container.get("env") or {}).values()
                   for m in _REFERENCE.findall(str(value))}
                  | {entry["secret"] for entry in container.get("files") or []
                     if entry.get("secret")})


def split_environment(env: Mapping[str, str], secrets: Mapping[str, str],
                      ) -> tuple[dict[str, str], dict[str, str]]:
    """A replica's environment as (plain env, secret env with the references filled in)."""
    plain, secret = {}, {}
    for key, value in env.items():
        if _REFERENCE.search(value):
            secret[key] = _REFERENCE.sub(lambda m: secrets.get(m.group(1), ""), value)
        else:
            plain[key] = value
    return plain, secret


def replica_hash(spec: StackSpec, service: str, secret_digests: Mapping[str, str],
                 image_digest: str = "") -> str:
    """What a replica is made from: the service's container spec, the digests of the secrets
    it uses, and the image digest pinned by the deploy. Equal hashes: nothing to roll."""
    service_spec = spec.services[service]
    used = {name: secret_digests.get(name, "") for name in used_secrets(service_spec.container)}
    text = json.dumps([container_spec_hash(service_spec), used, image_digest], sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
