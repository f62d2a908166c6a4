"""Teams own projects; users hold one role per team; API tokens act for their user (a team
token for its team's service account).

Containers, volumes, networks (and stacks, issue 7) point at a Project; what a user may see and do
with them follows from their Membership role in the project's team (panel/access/policy.py)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

ADMIN, OPERATOR, VIEWER, AUDITOR = "admin", "operator", "viewer", "auditor"
ROLES = (ADMIN, OPERATOR, VIEWER, AUDITOR)
NAME_HELP = "letters, digits, '.', '_', '-'; at most 64"


class Team(models.Model):
    """A group of people holding roles; owns projects."""

    name = models.CharField(max_length=64, unique=True, help_text=NAME_HELP)
    description = models.CharField(max_length=255, blank=True)
    require_2fa = models.BooleanField(
        default=False, help_text="members must sign in with a TOTP code")
    # The team's container policy (panel/workloads/privileges.py): what its operators may use
    # beyond the harmless fields. Team admins set the first two; only platform admins set
    # host_paths.
    allowed_capabilities = models.JSONField(
        default=list, blank=True,
        help_text="capabilities (e.g. NET_ADMIN) members may add; not host-wide ones")
    allow_sysctls = models.BooleanField(default=True,
                                        help_text="members may set namespaced sysctls")
    host_paths = models.JSONField(default=list, blank=True,
                                  help_text="host directories members may bind-mount")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Project(models.Model):
    """A unit of ownership for workloads; belongs to exactly one team."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=64, unique=True, help_text=NAME_HELP)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def project(self) -> Project:
        """A project is its own scope (the policy resolves every object to a project)."""
        return self


class Membership(models.Model):
    """`user` holds `role` in `team` (one role per team)."""

    ROLE_CHOICES = [(r, r) for r in ROLES]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=ROLE_CHOICES)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["user", "team"],
                                               name="access_one_role_per_team")]

    def __str__(self) -> str:
        return f"{self.user} {self.role} of {self.team}"

    @property
    def name(self) -> str:
        return f"{self.user.get_username()}@{self.team.name}"


def hash_token(secret: str) -> str:
    """SHA-256 of a token: tokens are 256-bit random, so a fast hash is enough to make a stolen
    database useless for signing in (no password-style stretching needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class ApiToken(models.Model):
    """A named API token of a user. Only its SHA-256 is stored; the secret is shown once."""

    PREFIX = "brt_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=64)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False,
                              help_text="first characters of the secret, to recognise it")
    read_only = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A team token (panel/access/team_tokens.py): `user` is then a service account of `team`
    # holding `team_role` there through an ordinary Membership; empty for personal tokens.
    team = models.ForeignKey(Team, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="api_tokens")
    team_role = models.CharField(max_length=10, blank=True,
                                 help_text="the role of a team token's service account")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None
                                            or self.expires_at > timezone.now())


def service_accounts() -> models.QuerySet:
    """The ids of team tokens' service accounts (users that exist only to carry a team token,
    panel/access/team_tokens.py), as a subquery: `user_id__in=service_accounts()`."""
    return ApiToken.objects.filter(team__isnull=False).values("user_id")


def is_service_account(user: Any) -> bool:
    return user is not None and getattr(user, "pk", None) is not None \
        and ApiToken.objects.filter(user_id=user.pk, team__isnull=False).exists()


class TeamInvite(models.Model):
    """A one-time link that makes whoever signs in and opens it a member of `team` with
    `role`. Only the SHA-256 of its secret is stored (hash_token); it is spent on first use."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=Membership.ROLE_CHOICES)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_by = models.CharField(max_length=150, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invite to {self.team} as {self.role}"

    @property
    def name(self) -> str:
        return f"invite #{self.pk} to {self.team.name}"

    @property
    def is_open(self) -> bool:
        return self.used_at is None and self.revoked_at is None \
            and self.expires_at > timezone.now()


class UserSession(models.Model):
    """A browser session of a user, recorded at sign-in so they can list their sessions and
    sign out elsewhere (the session itself lives in Django's session store)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="browser_sessions")
    session_key = models.CharField(max_length=40, unique=True)
    user_agent = models.CharField(max_length=255, blank=True)
    source_address = models.CharField(max_length=64, blank=True)
    two_factor = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"session of {self.user} from {self.source_address or 'unknown'}"
