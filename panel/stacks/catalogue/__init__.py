"""The template catalogue: ready stacks with typed parameters, deployable in one step.

Built-in templates are the compose files in this directory; each carries its form in an
`x-berth-template:` extension field (title, description, parameters), which compose itself
ignores. A team's own templates are StackTemplate rows (services.save_as_template). Parameters
become the stack's environment (${NAME} in the file); a `secret` parameter becomes a stack
secret. Types: string, integer (min/max), boolean, port (1-65535), choice (choices), secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from panel.workloads.spec import ValidationFailed

DIRECTORY = Path(__file__).resolve().parent
TYPES = ("string", "integer", "boolean", "port", "choice", "secret")


@dataclass(frozen=True)
class Template:
    key: str  # file name without .yml, or "team-<id>" for a StackTemplate
    title: str
    description: str
    compose: str
    parameters: list[dict[str, Any]] = field(default_factory=list)
    project_id: int | None = None


@cache
def builtin() -> dict[str, Template]:
    """The templates shipped with Berth, by key."""
    templates = {}
    for path in sorted(DIRECTORY.glob("*.yml")):
        text = path.read_text()
        meta = (yaml.safe_load(text) or {}).get("x-berth-template") or {}
        templates[path.stem] = Template(path.stem, meta.get("title", path.stem),
                                        meta.get("description", ""), text,
                                        list(meta.get("parameters") or []))
    return templates


def from_model(row: Any) -> Template:
    return Template(f"team-{row.pk}", row.title, row.description, row.compose,
                    list(row.parameters or []), row.project_id)


def _convert(parameter: dict[str, Any], value: Any) -> str:
    kind, name = parameter.get("type", "string"), parameter["name"]
    if kind in ("integer", "port"):
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        low, high = (1, 65535) if kind == "port" else (parameter.get("min"), parameter.get("max"))
        if (low is not None and number < low) or (high is not None and number > high):
            raise ValueError(f"must be from {low} to {high}")
        return str(number)
    if kind == "boolean":
        if isinstance(value, bool):
            return "true" if value else "false"
        if str(value).lower() in ("true", "false", "on", "off", "1", "0", "yes", "no"):
            return "true" if str(value).lower() in ("true", "on", "1", "yes") else "false"
        raise ValueError("must be true or false")
    if kind == "choice":
        choices = [str(c) for c in parameter.get("choices") or []]
        if str(value) not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return str(value)
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError("must be text")
    text = str(value)
    if "\n" in text or len(text) > 4000:
        raise ValueError("must be one line of at most 4000 characters")
    if not text and name and parameter.get("required"):
        raise ValueError("is required")
    return text


def check_values(parameters: list[dict[str, Any]],
                 values: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Typed form values -> (environment, secrets); ValidationFailed names each bad field."""
    if not isinstance(values, dict):
        raise ValidationFailed({"parameters": ["must be an object of parameter values"]})
    known = {p["name"] for p in parameters}
    errors: dict[str, list[str]] = {}
    for key in sorted(set(values) - known):
        errors[key] = [f"unknown parameter: this template takes {', '.join(sorted(known))}"]
    environment: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for parameter in parameters:
        name = parameter["name"]
        value = values.get(name)
        if value in (None, "") and "default" in parameter:
            value = parameter["default"]
        if value in (None, ""):
            if parameter.get("required") or parameter.get("type") == "secret":
                errors[name] = ["is required"]
            continue
        try:
            converted = _convert(parameter, value)
        except ValueError as exc:
            errors[name] = [str(exc)]
            continue
        (secrets if parameter.get("type") == "secret" else environment)[name] = converted
    if errors:
        raise ValidationFailed(errors)
    return environment, secrets
