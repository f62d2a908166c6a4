"""Read serializers of access and audit (teams, members, projects, users, tokens, events) and the
documented shapes of their write requests (validated by panel/access/services.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from panel.access import policy
from panel.access.models import ROLES, ApiToken, Membership, Project, Team
from panel.audit.describe import describe
from panel.audit.models import AuditEvent


class TeamSerializer(serializers.ModelSerializer):
    projects: Any = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    role = serializers.SerializerMethodField(help_text="your role in the team")

    class Meta:
        model = Team
        fields = ["id", "name", "description", "require_2fa", "allowed_capabilities",
                  "allow_sysctls", "host_paths", "projects", "role", "created_at", "updated_at"]

    def get_role(self, team: Team) -> str | None:
        request = self.context.get("request")
        return policy.role_of(request.user, team, "team") if request else None


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at", "updated_at"]


class ProjectSerializer(serializers.ModelSerializer):
    team: Any = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "team", "team_id", "created_at", "updated_at"]


class UserSerializer(serializers.ModelSerializer):
    teams = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "is_active", "is_superuser", "last_login",
                  "date_joined", "teams"]

    def get_teams(self, user: Any) -> list[dict[str, str]]:
        return [{"team": m.team.name, "role": m.role}
                for m in user.memberships.select_related("team")]


class TokenSerializer(serializers.ModelSerializer):
    user: Any = serializers.SlugRelatedField(slug_field="username", read_only=True)
    usable = serializers.BooleanField(source="is_usable", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "user", "read_only", "expires_at", "revoked_at",
                  "last_used_at", "created_at", "usable"]


class AuditEventSerializer(serializers.ModelSerializer):
    details = serializers.JSONField(read_only=True)
    summary = serializers.SerializerMethodField(help_text="the event in plain language")

    class Meta:
        model = AuditEvent
        fields = ["seq", "created_at", "actor_id", "actor_name", "channel", "request_id",
                  "source_address", "action", "target_type", "target_id", "target_name",
                  "team_id", "team_name", "project_id", "project_name", "outcome", "details",
                  "summary", "prev_hash", "hash"]

    def get_summary(self, event: AuditEvent) -> str:
        return describe(event)


class TeamRequest(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(required=False)
    require_2fa = serializers.BooleanField(required=False)
    allowed_capabilities = serializers.ListField(
        child=serializers.CharField(), required=False,
        help_text="capabilities members may add (team admins; not host-wide ones)")
    allow_sysctls = serializers.BooleanField(required=False,
                                             help_text="members may set namespaced sysctls")
    host_paths = serializers.ListField(
        child=serializers.CharField(), required=False,
        help_text="host directories members may bind-mount (platform administrators only)")


class MemberRequest(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=ROLES)


class ProjectRequest(serializers.Serializer):
    team = serializers.CharField(help_text="team id or name")
    name = serializers.CharField()
    description = serializers.CharField(required=False)


class UserRequest(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(required=False)
    email = serializers.CharField(required=False)
    is_superuser = serializers.BooleanField(required=False)


class TokenRequest(serializers.Serializer):
    name = serializers.CharField()
    # a field named like DRF's own Field.read_only flag, which the stubs type as bool
    read_only = serializers.BooleanField(required=False)  # type: ignore[assignment]
    expires_in_days = serializers.IntegerField(required=False, help_text="1..3650")


class TokenCreated(TokenSerializer):
    secret = serializers.CharField(help_text="shown only in this answer")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "secret"]


class TotpConfirmRequest(serializers.Serializer):
    code = serializers.CharField(help_text="the 6 digits the authenticator app shows")
