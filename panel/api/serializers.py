"""Read serializers (what the API returns) and the documented shapes of write requests.

Writes are validated by the service layer (panel/workloads/spec.py), which the UI shares; the
request serializers here document the fields for the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from panel.fleet.models import Host
from panel.workloads.models import Container, Image, Network, Operation, Volume
from panel.workloads.services import SPEC_COLUMNS
from panel.workloads.spec import API_FIELDS
from runtime.protocol import FieldInfo, field_info

# spec fields kept in Container.options rather than a column of their own
OPTION_FIELDS = tuple(name for name in API_FIELDS if name not in SPEC_COLUMNS and name != "name")
# read back under another name where the container already has a field of that name (`pid` is
# the observed process id; the spec's pid namespace mode reads as `pid_mode`, as in docker's
# HostConfig.PidMode)
READ_NAMES = {"pid": "pid_mode"}


def _spec_serializer_field(info: FieldInfo, **kwargs: Any) -> serializers.Field:
    """A serializer field of the spec field's type, documented with its doc line."""
    base = info.type.removesuffix(" | None")
    nullable = info.type.endswith("| None")
    kwargs.setdefault("help_text", info.doc)
    if base == "str":
        return serializers.CharField(allow_null=nullable, allow_blank=True, **kwargs)
    if base == "bool":
        return serializers.BooleanField(**kwargs)
    if base == "int":
        return serializers.IntegerField(allow_null=nullable, **kwargs)
    if base == "float":
        return serializers.FloatField(allow_null=nullable, **kwargs)
    if base == "list[str]":
        return serializers.ListField(child=serializers.CharField(), allow_null=nullable,
                                     **kwargs)
    if base == "dict[str, str]":
        return serializers.DictField(child=serializers.CharField(), **kwargs)
    return serializers.JSONField(**kwargs)


class _OptionsAttribute:
    """Reads a spec field from Container.options, its default when it is not stored."""

    spec_name = ""

    def get_attribute(self, instance: Container) -> Any:
        return (instance.options or {}).get(self.spec_name, field_info(self.spec_name).default)


def _option_field(name: str) -> serializers.Field:
    field = _spec_serializer_field(field_info(name), read_only=True)
    field.__class__ = type(f"Option{type(field).__name__}", (_OptionsAttribute, type(field)),
                           {"spec_name": name})
    return field


class HostSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()

    class Meta:
        model = Host
        fields = ["id", "name", "status", "labels", "cpus", "memory", "inventory",
                  "last_heartbeat", "down_since", "created_at", "updated_at"]

    def get_status(self, host: Host) -> str:
        return host.current_status()


class ImageSerializer(serializers.ModelSerializer):
    hosts: Any = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Image
        fields = ["id", "reference", "image_id", "size", "hosts", "created_at", "updated_at"]


class _SpecOptions(serializers.SerializerMetaclass):
    """Adds a read-only field for each spec field stored in Container.options."""

    def __new__(mcs, name: str, bases: tuple, attrs: dict[str, Any]) -> type:
        for option in OPTION_FIELDS:
            attrs.setdefault(READ_NAMES.get(option, option), _option_field(option))
        return super().__new__(mcs, name, bases, attrs)


class ContainerSerializer(serializers.ModelSerializer, metaclass=_SpecOptions):
    host: Any = serializers.SlugRelatedField(slug_field="name", read_only=True)
    requested_host: Any = serializers.SlugRelatedField(slug_field="name", read_only=True)
    secrets = serializers.ListField(source="secret_names", child=serializers.CharField(),
                                    read_only=True, help_text="names only, never values")

    class Meta:
        model = Container
        fields = ["id", "uid", "name", "image", "pull", "command", "entrypoint", "env",
                  "secrets", "ports", "volumes", "networks", "memory", "cpus", "restart",
                  "healthcheck", "labels", "init", "constraints", "requested_host",
                  "desired_state", "generation", "host", "status", "pid", "exit_code",
                  "oom_killed", "health", "addresses", "published_ports", "started_at",
                  "finished_at", "restart_count", "observed_generation", "error", "stop_note",
                  "last_seen", "created_at", "updated_at",
                  *(READ_NAMES.get(name, name) for name in OPTION_FIELDS)]


class VolumeSerializer(serializers.ModelSerializer):
    hosts: Any = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Volume
        fields = ["id", "name", "labels", "hosts", "created_at", "updated_at"]


class NetworkSerializer(serializers.ModelSerializer):
    hosts: Any = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Network
        fields = ["id", "name", "driver", "subnet", "gateway", "internal", "labels", "hosts",
                  "created_at", "updated_at"]


class OperationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Operation
        fields = ["id", "kind", "target_type", "target_id", "target_name", "host_name",
                  "actor_name", "status", "progress", "message", "result", "created_at",
                  "updated_at"]


class HealthcheckRequest(serializers.Serializer):
    test = serializers.ListField(child=serializers.CharField())
    interval = serializers.CharField(required=False, help_text="duration, e.g. 30s")
    timeout = serializers.CharField(required=False)
    retries = serializers.IntegerField(required=False)
    start_period = serializers.CharField(required=False)
    start_interval = serializers.CharField(required=False,
                                           help_text="probe gap within start_period (5s)")


class _SpecRequestFields(serializers.SerializerMetaclass):
    """Documents every other settable spec field, typed and described by ContainerSpec."""

    def __new__(mcs, name: str, bases: tuple, attrs: dict[str, Any]) -> type:
        for option in API_FIELDS:
            if option not in attrs:
                attrs[option] = _spec_serializer_field(field_info(option), required=False)
        return super().__new__(mcs, name, bases, attrs)


class ContainerCreateRequest(serializers.Serializer, metaclass=_SpecRequestFields):
    name = serializers.CharField(required=False)
    image = serializers.CharField(help_text="must be known to the panel, or set pull: true")
    pull = serializers.BooleanField(required=False, default=False)
    command = serializers.ListField(child=serializers.CharField(), required=False)
    entrypoint = serializers.ListField(child=serializers.CharField(), required=False)
    env = serializers.DictField(child=serializers.CharField(), required=False)
    secrets = serializers.DictField(child=serializers.CharField(), required=False,
                                    help_text="stored encrypted; only names are returned")
    ports = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text='"[IP:][HOST:]CTR[/udp]"')
    volumes = serializers.ListField(child=serializers.CharField(), required=False,
                                    help_text='"NAME:/path[:ro]"')
    networks = serializers.ListField(child=serializers.CharField(), required=False)
    memory = serializers.CharField(required=False, help_text='e.g. "256m"; at least 6m')
    cpus = serializers.FloatField(required=False)
    restart = serializers.CharField(required=False,
                                    help_text="no | on-failure[:N] | always | unless-stopped")
    healthcheck = HealthcheckRequest(required=False)
    labels = serializers.DictField(child=serializers.CharField(), required=False)
    init = serializers.BooleanField(required=False)
    host = serializers.CharField(required=False)
    constraints = serializers.ListField(child=serializers.CharField(), required=False,
                                        help_text='"label==value" / "label!=value"')
    start = serializers.BooleanField(required=False, default=True)


class ImagePullRequest(serializers.Serializer):
    reference = serializers.CharField()
    host = serializers.CharField(required=False, help_text="default: every host that is up")


class VolumeCreateRequest(serializers.Serializer):
    name = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField(), required=False)
    host = serializers.CharField(required=False)


class NetworkCreateRequest(serializers.Serializer):
    name = serializers.CharField()
    subnet = serializers.CharField(required=False)
    gateway = serializers.CharField(required=False)
    internal = serializers.BooleanField(
        required=False, default=False,
        help_text="no traffic in or out of the host: its containers reach only each other")
    labels = serializers.DictField(child=serializers.CharField(), required=False)
