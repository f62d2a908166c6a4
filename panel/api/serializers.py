"""Read serializers (what the API returns) and the documented shapes of write requests.

Writes are validated by the service layer (panel/workloads/spec.py), which the UI shares; the
request serializers here document the fields for the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers

from panel.fleet.models import Host
from panel.workloads.models import Container, Image, Network, Operation, Volume


class HostSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()

    class Meta:
        model = Host
        fields = ["id", "name", "status", "labels", "cpus", "memory", "inventory",
                  "last_heartbeat", "down_since", "created_at", "updated_at"]

    def get_status(self, host: Host) -> str:
        return host.current_status()


class ImageSerializer(serializers.ModelSerializer):
    hosts = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Image
        fields = ["id", "reference", "image_id", "size", "hosts", "created_at", "updated_at"]


class ContainerSerializer(serializers.ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    requested_host = serializers.SlugRelatedField(slug_field="name", read_only=True)
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
                  "last_seen",
                  "created_at", "updated_at"]


class VolumeSerializer(serializers.ModelSerializer):
    hosts = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Volume
        fields = ["id", "name", "labels", "hosts", "created_at", "updated_at"]


class NetworkSerializer(serializers.ModelSerializer):
    hosts = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

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


class ContainerCreateRequest(serializers.Serializer):
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
