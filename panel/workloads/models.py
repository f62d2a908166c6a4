"""Workloads: images, containers (desired spec + observed state), volumes, networks, operations.

Desired state is what people asked for; observed state is what the host's agent last reported.
`Container.observed_key` orders reports so a late or duplicated one never moves state backwards."""

from __future__ import annotations

import uuid

from django.db import models

from panel.access.policy import ANY_ROLE, CHANGE, register
from panel.access.querysets import ScopedQuerySet
from panel.fleet.models import Host

RUNNING, STOPPED = "running", "stopped"
# Observed statuses that mean "the process runs".
ACTIVE_STATUSES = ("running", "restarting", "paused")


class Image(models.Model):
    """An image reference known to the panel, and the hosts that hold it (from snapshots)."""

    reference = models.CharField(max_length=512, unique=True)
    image_id = models.CharField(max_length=80, blank=True)
    size = models.BigIntegerField(default=0)
    hosts = models.ManyToManyField(Host, related_name="images", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reference"]

    def __str__(self) -> str:
        return self.reference

    @property
    def name(self) -> str:
        return self.reference


class Volume(models.Model):
    """A named volume; each host keeps its own copy of the data (volumes are host-local)."""

    name = models.CharField(max_length=128, unique=True)
    project = models.ForeignKey("access.Project", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="volumes",
                                help_text="owner; none = platform administrators only")
    labels = models.JSONField(default=dict, blank=True)
    hosts = models.ManyToManyField(Host, related_name="volumes", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Network(models.Model):
    """A bridge network, created on each host that runs a container attached to it."""

    name = models.CharField(max_length=64, unique=True)
    project = models.ForeignKey("access.Project", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="networks",
                                help_text="owner; none = platform administrators only")
    driver = models.CharField(max_length=16, default="bridge")
    subnet = models.CharField(max_length=64, blank=True)
    gateway = models.CharField(max_length=64, blank=True)
    internal = models.BooleanField(default=False,
                                   help_text="no traffic in or out of the host: its containers "
                                             "reach only each other")
    labels = models.JSONField(default=dict, blank=True)
    hosts = models.ManyToManyField(Host, related_name="networks", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def to_spec(self) -> dict:
        """What `berth.agent.ensure_network` receives."""
        return {"name": self.name, "driver": self.driver, "subnet": self.subnet,
                "gateway": self.gateway, "internal": self.internal, "labels": self.labels}


class Container(models.Model):
    """A container's desired spec (set by people) and observed state (reported by its host)."""

    DESIRED = [(RUNNING, RUNNING), (STOPPED, STOPPED)]

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=128, unique=True)
    project = models.ForeignKey("access.Project", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="containers",
                                help_text="owner; none = platform administrators only")

    # desired spec — a change of any of these bumps `generation` (the agent recreates)
    image = models.CharField(max_length=512)
    pull = models.BooleanField(default=False)
    command = models.JSONField(default=list, blank=True)
    entrypoint = models.JSONField(null=True, blank=True)
    env = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True)
    secret_names = models.JSONField(default=list, blank=True)
    ports = models.JSONField(default=list, blank=True)
    volumes = models.JSONField(default=list, blank=True)
    networks = models.JSONField(default=list, blank=True)
    memory = models.BigIntegerField(default=0)
    cpus = models.FloatField(default=0)
    restart = models.CharField(max_length=32, default="no")
    healthcheck = models.JSONField(null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    init = models.BooleanField(default=False)
    constraints = models.JSONField(default=list, blank=True)
    # optional agent-protocol fields (runtime/protocol.py): user, workdir, hostname, read_only,
    # stop_signal, stop_timeout, pids_limit, network_aliases, port_group (stacks set them)
    options = models.JSONField(default=dict, blank=True)
    requested_host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="pinned_containers")
    desired_state = models.CharField(max_length=8, choices=DESIRED, default=RUNNING,
                                     db_index=True)
    desired_changed_at = models.DateTimeField(null=True, blank=True)
    generation = models.PositiveIntegerField(default=1)

    # placement and delivery
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="containers")
    applied_generation = models.PositiveIntegerField(default=0)
    applied_at = models.DateTimeField(null=True, blank=True)

    # observed state
    status = models.CharField(max_length=16, blank=True, db_index=True)
    runtime_id = models.CharField(max_length=80, blank=True)
    pid = models.IntegerField(default=0)
    exit_code = models.IntegerField(default=0)
    oom_killed = models.BooleanField(default=False)
    health = models.CharField(max_length=16, blank=True)
    addresses = models.JSONField(default=dict, blank=True)
    published_ports = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    restart_count = models.PositiveIntegerField(default=0)
    observed_generation = models.PositiveIntegerField(default=0)
    observed_key = models.CharField(max_length=96, blank=True)
    error = models.TextField(blank=True)
    stop_note = models.TextField(blank=True, help_text="why the last stop ended in SIGKILL, "
                                                       "and the fix")
    last_seen = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Operation(models.Model):
    """One requested change and its progress, as reported by the agent doing it."""

    PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
    STATUSES = [(s, s) for s in (PENDING, RUNNING, SUCCEEDED, FAILED)]
    FINISHED = (SUCCEEDED, FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=64, db_index=True)
    project = models.ForeignKey("access.Project", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="operations",
                                help_text="owner; none = platform administrators only")
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, blank=True)
    target_name = models.CharField(max_length=255, blank=True)
    host_name = models.CharField(max_length=128, blank=True)
    actor_name = models.CharField(max_length=150, blank=True)
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING, db_index=True)
    progress = models.FloatField(default=0)
    message = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.target_name} {self.status}"


class BackupSchedule(models.Model):
    """Back up `volume` on `host` every `interval_hours` to `target` (a directory on the host
    or an S3 bucket), keeping the newest backup of each of the last `keep_daily` days and
    `keep_weekly` ISO weeks (runtime/volumes/scheduled.py). The S3 secret key is encrypted."""

    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="backup_schedules")
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="backup_schedules")
    interval_hours = models.PositiveIntegerField(default=24)
    keep_daily = models.PositiveIntegerField(default=7)
    keep_weekly = models.PositiveIntegerField(default=4)
    target = models.JSONField(help_text="{kind: directory, path} or {kind: s3, bucket, prefix, "
                                        "endpoint_url, access_key, region}")
    secret_key_encrypted = models.TextField(blank=True)
    next_run_at = models.DateTimeField(db_index=True)
    last_backup = models.ForeignKey(Operation, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    last_drill = models.ForeignKey(Operation, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["volume__name", "pk"]

    def __str__(self) -> str:
        return f"backups of {self.volume.name} on {self.host.name}"

    @property
    def project(self):  # type: ignore[no-untyped-def]
        return self.volume.project

    @property
    def name(self) -> str:
        return str(self.pk)


register("backupschedule", {"view": ANY_ROLE, "create": CHANGE, "remove": CHANGE,
                            "run": CHANGE, "drill": CHANGE}, path="volume__project")
