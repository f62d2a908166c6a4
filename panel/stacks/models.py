"""Stacks: an application defined by a compose file, deployed as revisions.

- `Stack`: the compose text and environment people edit (secret values encrypted at rest, as
  container secrets are), the revision currently deployed, and what the image check found.
- `Revision`: one deployment, immutable once written (number, the full resolved spec, who,
  when, why); only its `status`, `result` and the engine's durable state move while the deploy
  engine works on it: the lease (`lease_owner` until `lease_expires_at`, renewed by the
  owner's heartbeat) and the progress (`phase`, `progress`, `deadline_at`) from which any control
  worker continues it (engine.py).
- `Replica`: which Container is replica `slot` of a service, made from which spec hash.
- `StackTemplate`: a team's own stack saved as a template (the built-in catalogue is files in
  panel/stacks/catalogue/)."""

from __future__ import annotations

from django.db import models

from panel.access.policy import ANY_ROLE, CHANGE, register
from panel.access.querysets import ScopedQuerySet


class Stack(models.Model):
    """A compose-defined application in a project."""

    name = models.CharField(max_length=64, unique=True)
    project = models.ForeignKey("access.Project", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="stacks",
                                help_text="owner; none = platform administrators only")
    compose = models.TextField()
    environment = models.JSONField(default=dict, blank=True,
                                   help_text="${VAR} values shown to the stack's team")
    secrets_encrypted = models.TextField(blank=True)
    secret_names = models.JSONField(default=list, blank=True)
    files = models.JSONField(default=dict, blank=True,
                             help_text="the stack's directory: relative path -> text (env_file, "
                                       "configs, relative binds)")
    secret_files_encrypted = models.TextField(blank=True,
                                              help_text="files used as a secret's file:")
    secret_file_names = models.JSONField(default=list, blank=True)
    scale = models.JSONField(default=dict, blank=True,
                             help_text="service -> replicas set by scale, over the file's")
    current_revision = models.ForeignKey("Revision", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    image_updates = models.JSONField(default=dict, blank=True,
                                     help_text="image -> newer digest found in its registry")
    image_baseline = models.JSONField(default=dict, blank=True,
                                      help_text="image -> digest first seen after a deploy "
                                                "that pinned none")
    images_checked_at = models.DateTimeField(null=True, blank=True)
    image_check_problems = models.JSONField(default=dict, blank=True,
                                            help_text="image -> why its registry could not "
                                                      "tell at the last check")
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Revision(models.Model):
    """One deployment of a stack (see the module docstring)."""

    PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
    PAUSED, ROLLED_BACK, CANCELLED = "paused", "rolled_back", "cancelled"
    STATUSES = [(s, s) for s in (PENDING, RUNNING, SUCCEEDED, FAILED, PAUSED, ROLLED_BACK,
                                 CANCELLED)]
    ACTIVE = (PENDING, RUNNING)

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    spec = models.JSONField(help_text="the resolved StackSpec (secret values as references)")
    compose = models.TextField(help_text="the compose text it was resolved from")
    environment = models.JSONField(default=dict, blank=True)
    secret_digests = models.JSONField(default=dict, blank=True,
                                      help_text="secret name -> hash of its value")
    image_digests = models.JSONField(default=dict, blank=True,
                                     help_text="image -> registry digest pinned for the deploy")
    actor_name = models.CharField(max_length=150, blank=True)
    message = models.TextField(blank=True, help_text="why, as the person said")
    reason = models.TextField(blank=True, help_text="why the result is what it is")
    rollback_of = models.PositiveIntegerField(null=True, blank=True,
                                              help_text="the revision number restored")
    status = models.CharField(max_length=12, choices=STATUSES, default=PENDING, db_index=True)
    result = models.JSONField(default=dict, blank=True)
    operation = models.ForeignKey("workloads.Operation", null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # the engine's durable state (engine.py): who works on it, until when, and where it is
    lease_owner = models.CharField(max_length=160, blank=True,
                                   help_text="the engine slice holding the revision")
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                            help_text="past this, any control worker takes "
                                                      "the revision over")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True,
                                       help_text="the deploy fails when not finished by then")
    phase = models.CharField(max_length=120, blank=True, help_text="the step it is at")
    progress = models.JSONField(default=dict, blank=True,
                                help_text="steps so far, wait timers, the batch being rolled")

    class Meta:
        ordering = ["stack", "-number"]
        constraints = [models.UniqueConstraint(fields=["stack", "number"],
                                               name="stacks_revision_number")]

    def __str__(self) -> str:
        return f"{self.stack.name}#{self.number}"

    @property
    def project(self):  # type: ignore[no-untyped-def]
        return self.stack.project


class Replica(models.Model):
    """Container `container` is replica `slot` of `service`, made from `spec_hash`."""

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="replicas")
    service = models.CharField(max_length=64)
    slot = models.PositiveIntegerField()
    container = models.OneToOneField("workloads.Container", on_delete=models.CASCADE,
                                     related_name="replica")
    spec_hash = models.CharField(max_length=80)
    revision = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["stack", "service", "slot", "created_at"]


class StackTemplate(models.Model):
    """A team's stack saved as a template: its compose text and typed parameters."""

    name = models.CharField(max_length=64)
    project = models.ForeignKey("access.Project", null=True, blank=True,
                                on_delete=models.CASCADE, related_name="stack_templates")
    title = models.CharField(max_length=128)
    description = models.TextField(blank=True)
    compose = models.TextField()
    parameters = models.JSONField(default=list, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"],
                                               name="stacks_template_name")]

    def __str__(self) -> str:
        return self.name


register("stack", {"view": ANY_ROLE, "history": ANY_ROLE, "create": CHANGE, "deploy": CHANGE,
                   "update": CHANGE, "rollback": CHANGE, "remove": CHANGE, "logs": CHANGE})
register("stacktemplate", {"view": ANY_ROLE, "create": CHANGE, "remove": CHANGE})
