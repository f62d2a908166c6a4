"""The create-container form: text fields as a person types them, turned into the API's request
shape (panel/workloads/spec.py validates it, so the form accepts exactly what the API does)."""

from __future__ import annotations

import shlex
from typing import Any

from django import forms

from panel.workloads.spec import API_FIELDS
from runtime.protocol import FieldInfo, field_info

RESTART_CHOICES = [("no", "no"), ("on-failure", "on-failure"), ("always", "always"),
                   ("unless-stopped", "unless-stopped")]
# Service error keys → the form field that shows them.
FIELD_OF = {"healthcheck": "health_cmd", "host": "host", "secrets": "secrets"}


# Spec fields the form has no hand-made field for, shown under "Advanced" as generated fields
# (one line each for lists, KEY=value lines for maps); nested ones (ulimits, logging) are set
# through the API or a compose file.
_HAND_MADE = {"name", "image", "pull", "command", "env", "ports", "volumes", "networks", "memory",
              "cpus", "restart", "healthcheck", "labels", "init", "constraints"}
_SIMPLE_TYPES = ("str", "str | None", "bool", "int", "int | None", "float", "list[str]",
                 "list[str] | None", "dict[str, str]")
ADVANCED_FIELDS = tuple(name for name in API_FIELDS if name not in _HAND_MADE
                        and field_info(name).type in _SIMPLE_TYPES)


def _form_field(info: FieldInfo) -> forms.Field:
    base = info.type.removesuffix(" | None")
    label = info.name.replace("_", " ").capitalize()
    if base == "bool":
        return forms.BooleanField(required=False, label=label, help_text=info.doc)
    if base in ("list[str]", "dict[str, str]"):
        what = "one per line" if base == "list[str]" else "one KEY=value per line"
        return forms.CharField(required=False, label=label, help_text=f"{info.doc}; {what}",
                               widget=forms.Textarea(attrs={"rows": 2}))
    return forms.CharField(required=False, label=label, help_text=info.doc)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class ContainerForm(forms.Form):
    image = forms.CharField(max_length=512, help_text="e.g. busybox:latest")
    name = forms.CharField(max_length=128, required=False,
                           help_text="letters, digits, . _ -; empty: a generated name")
    project = forms.ChoiceField(required=False)
    command = forms.CharField(required=False, help_text="as in a shell, e.g. sleep 600")
    env = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                          help_text="one KEY=value per line")
    secrets = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                              help_text="one KEY=value per line; stored encrypted")
    ports = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                            help_text="one per line: [IP:][HOST:]CONTAINER[/udp], e.g. 8080:80")
    volumes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                              help_text="one per line: NAME:/path[:ro]")
    networks = forms.CharField(required=False, help_text="names separated by commas")
    memory = forms.CharField(required=False, help_text="e.g. 256m; empty: no limit")
    cpus = forms.CharField(required=False, help_text="e.g. 0.5; empty: no limit")
    restart = forms.ChoiceField(choices=RESTART_CHOICES, initial="no")
    health_cmd = forms.CharField(required=False, label="Health check command",
                                 help_text="run in the container; exit 0 = healthy")
    health_interval = forms.CharField(required=False, initial="30s", label="Health interval")
    health_timeout = forms.CharField(required=False, initial="5s", label="Health timeout")
    health_retries = forms.IntegerField(required=False, min_value=0, initial=3,
                                        label="Health retries")
    labels = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="one KEY=value per line")
    host = forms.ChoiceField(required=False, help_text="empty: the host that fits best")
    constraints = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                  help_text="one per line: label==value or label!=value")
    pull = forms.BooleanField(required=False, help_text="pull the image on the host first")
    init = forms.BooleanField(required=False, help_text="run an init process as PID 1")
    start = forms.BooleanField(required=False, initial=True, help_text="start it now")

    def __init__(self, *args: Any, projects: list[tuple[str, str]], hosts: list[str],
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        choice_fields: Any = self.fields  # ChoiceFields: the stubs type them as Field
        choice_fields["project"].choices = projects
        choice_fields["host"].choices = [("", "any host that fits")] + [(h, h) for h in hosts]
        for name in ADVANCED_FIELDS:
            self.fields[name] = _form_field(field_info(name))

    @property
    def advanced_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ADVANCED_FIELDS]

    def _advanced(self, request: dict[str, Any]) -> None:
        """The generated fields, typed as the API takes them; empty ones are left out."""
        for name in ADVANCED_FIELDS:
            value: Any = self.cleaned_data.get(name)
            if value in (None, "", False):
                continue
            base = field_info(name).type.removesuffix(" | None")
            if base == "list[str]":
                request[name] = _lines(value)
            elif base == "dict[str, str]":
                request[name] = self._pairs(name)
            elif base in ("int", "float"):
                text = value.strip()
                try:
                    request[name] = int(text) if base == "int" else float(text)
                except ValueError:
                    request[name] = text  # sizes such as 64m; the validator names bad ones
            else:
                request[name] = value.strip() if isinstance(value, str) else value

    def _pairs(self, field: str) -> dict[str, str]:
        result = {}
        for line in _lines(self.cleaned_data.get(field, "")):
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                self.add_error(field, f"{line!r} is not KEY=value")
                continue
            result[key.strip()] = value
        return result

    def request_data(self) -> dict[str, Any]:
        """The API-shaped request (call after is_valid(); may add field errors)."""
        data = self.cleaned_data
        request: dict[str, Any] = {"image": data["image"].strip(), "pull": data["pull"],
                                   "init": data["init"], "start": data["start"],
                                   "restart": data["restart"]}
        if data.get("name"):
            request["name"] = data["name"].strip()
        if data.get("command"):
            try:
                request["command"] = shlex.split(data["command"])
            except ValueError as exc:
                self.add_error("command", f"cannot split this command: {exc}")
        request["env"] = self._pairs("env")
        request["secrets"] = self._pairs("secrets")
        request["labels"] = self._pairs("labels")
        request["ports"] = _lines(data.get("ports", ""))
        request["volumes"] = _lines(data.get("volumes", ""))
        request["constraints"] = _lines(data.get("constraints", ""))
        request["networks"] = [n.strip() for n in (data.get("networks") or "").split(",")
                               if n.strip()]
        if data.get("memory"):
            request["memory"] = data["memory"].strip()
        if data.get("cpus"):
            try:
                request["cpus"] = float(data["cpus"])
            except ValueError:
                self.add_error("cpus", f"{data['cpus']!r} is not a number: e.g. 0.5 or 2")
        if data.get("host"):
            request["host"] = data["host"]
        if data.get("health_cmd"):
            request["healthcheck"] = {
                "test": data["health_cmd"], "interval": data.get("health_interval") or "30s",
                "timeout": data.get("health_timeout") or "5s",
                "retries": data.get("health_retries") if data.get("health_retries") is not None
                else 3}
        self._advanced(request)
        return request

    def show_service_errors(self, errors: dict[str, list[str]]) -> None:
        for key, messages in errors.items():
            field = FIELD_OF.get(key, key)
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class PullForm(forms.Form):
    reference = forms.CharField(max_length=512, help_text="e.g. 127.0.0.1:5000/app:1.4")
    host = forms.ChoiceField(required=False)


class VolumeForm(forms.Form):
    name = forms.CharField(max_length=64)
    project = forms.ChoiceField(required=False)


class NetworkForm(forms.Form):
    name = forms.CharField(max_length=64)
    subnet = forms.CharField(required=False, help_text="e.g. 10.89.1.0/24; empty: automatic")
    internal = forms.BooleanField(
        required=False, help_text="no traffic in or out: containers reach only each other")
    project = forms.ChoiceField(required=False)
