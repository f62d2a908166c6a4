"""REST API v1 for access: teams and their members, projects, users (platform administrators),
API tokens (your own) and your account (/me/, TOTP enrolment). Thin views over
panel/access/services.py, authorised through panel/access/policy.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from panel.access import policy, services
from panel.access.models import ApiToken, Membership, Project, Team
from panel.api import access_serializers as s
from panel.api.permissions import PlatformAdmin, Scoped, actor_of, find, token_of
from panel.workloads.spec import ValidationFailed


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationFailed({"body": ["must be a JSON object"]})
    return dict(request.data)


def _changes(body: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    unknown = set(body) - set(allowed)
    if unknown:
        raise ValidationFailed({f: [f"unknown field: use {', '.join(allowed)}"]
                                for f in sorted(unknown)})
    return body


class TeamViewSet(Scoped, viewsets.ModelViewSet):
    """Teams you belong to (all, for platform administrators). Members: GET/POST
    `/teams/{id}/members/` with {"username", "role"}; PATCH/DELETE
    `/teams/{id}/members/{username}/`."""

    serializer_class = s.TeamSerializer
    resource = "team"
    lookup_value_regex = r"[^/]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def base_queryset(self) -> QuerySet:
        return Team.objects.prefetch_related("projects")

    def policy_action(self) -> str:
        if self.action in ("members", "member"):
            return "team.view" if self.request.method in SAFE_METHODS else "team.members"
        return super().policy_action()

    @extend_schema(request=s.TeamRequest, responses={201: s.TeamSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        policy.authorize(request.user, "team.create", None, actor_of(request), token_of(request))
        body = _changes(_body(request), ("name", "description", "require_2fa"))
        team = services.create_team(actor_of(request), body.get("name"),
                                    body.get("description", ""),
                                    body.get("require_2fa", False))
        return Response(self.get_serializer(team).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.TeamRequest, responses={200: s.TeamSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        team = self.get_object()
        body = _changes(_body(request), ("name", "description", "require_2fa",
                                         "allowed_capabilities", "allow_sysctls", "host_paths"))
        team = services.update_team(actor_of(request), team, **body)
        return Response(self.get_serializer(team).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.remove_team(actor_of(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.MemberRequest, responses={200: s.MemberSerializer(many=True)})
    @action(detail=True, methods=["get", "post"])
    def members(self, request: Request, pk: str | None = None) -> Response:
        team = self.get_object()
        if request.method == "POST":
            body = _changes(_body(request), ("username", "role"))
            membership = services.set_member(actor_of(request), team, body.get("username"),
                                             body.get("role"))
            return Response(s.MemberSerializer(membership).data,
                            status=status.HTTP_201_CREATED)
        members = team.memberships.select_related("user")
        return Response(s.MemberSerializer(members, many=True).data)

    @extend_schema(request=s.MemberRequest, responses={200: s.MemberSerializer})
    @action(detail=True, methods=["patch", "delete"],
            url_path=r"members/(?P<username>[^/]+)")
    def member(self, request: Request, pk: str | None = None,
               username: str | None = None) -> Response:
        team = self.get_object()
        membership = Membership.objects.select_related("user", "team").filter(
            team=team, user__username=username).first()
        if membership is None:
            raise Http404(f"{username} is not a member of team {team.name}")
        if request.method == "DELETE":
            services.remove_member(actor_of(request), membership)
            return Response(status=status.HTTP_204_NO_CONTENT)
        body = _changes(_body(request), ("role",))
        membership = services.set_member(actor_of(request), team, username, body.get("role"))
        return Response(s.MemberSerializer(membership).data)


class ProjectViewSet(Scoped, viewsets.ModelViewSet):
    """Projects of your teams. POST {"team", "name", "description"} (team admins)."""

    serializer_class = s.ProjectSerializer
    resource = "project"
    lookup_value_regex = r"[^/]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def base_queryset(self) -> QuerySet:
        return Project.objects.select_related("team")

    def get_queryset(self) -> QuerySet:
        queryset = self.scoped(self.base_queryset())
        if self.request.query_params.get("team"):
            queryset = queryset.filter(team__name=self.request.query_params["team"])
        return queryset

    @extend_schema(request=s.ProjectRequest, responses={201: s.ProjectSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = _changes(_body(request), ("team", "name", "description"))
        user, actor = request.user, actor_of(request)
        team = find(Team.objects.all(), str(body.get("team") or ""))
        if team is None or not policy.can(user, "team.view", team):
            if team is not None:
                policy.deny_missing(actor, "project.create", team)
            raise ValidationFailed({"team": [f"unknown team {body.get('team')!r}: use the id "
                                             "or name of one of your teams"]})
        if not policy.can(user, "project.create", Project(team=team), token_of(request)):
            policy._record_denied(actor, "project.create", team, reason="not a team admin")
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("only admins of the team create its projects")
        project = services.create_project(actor, team, body.get("name"),
                                          body.get("description", ""))
        return Response(self.get_serializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ProjectRequest, responses={200: s.ProjectSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.get_object()
        body = _changes(_body(request), ("name", "description"))
        return Response(self.get_serializer(
            services.update_project(actor_of(request), project, **body)).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.remove_project(actor_of(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserViewSet(viewsets.ModelViewSet):
    """Users (platform administrators only). POST {"username", "password", "email",
    "is_superuser"}; PATCH email, password, is_active, is_superuser."""

    serializer_class = s.UserSerializer
    permission_classes = [PlatformAdmin]
    resource = "user"
    lookup_value_regex = r"[^/]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet:
        return get_user_model().objects.order_by("username")

    def get_object(self) -> Any:
        user = find(self.get_queryset(), str(self.kwargs["pk"]), "username")
        if user is None:
            raise Http404(f"no user {self.kwargs['pk']!r}")
        return user

    @extend_schema(request=s.UserRequest, responses={201: s.UserSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = _changes(_body(request), ("username", "password", "email", "is_superuser"))
        user = services.create_user(actor_of(request), body.get("username"),
                                    body.get("password"), body.get("email", ""),
                                    body.get("is_superuser", False))
        return Response(self.get_serializer(user).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = _changes(_body(request), ("email", "password", "is_active", "is_superuser"))
        user = services.update_user(actor_of(request), self.get_object(), **body)
        return Response(self.get_serializer(user).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.remove_user(actor_of(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin,
                   viewsets.ReadOnlyModelViewSet):
    """Your API tokens (platform administrators see everyone's, to revoke a leaked one).
    POST {"name", "read_only", "expires_in_days"} answers the secret once; DELETE revokes."""

    serializer_class = s.TokenSerializer
    resource = "apitoken"

    def get_queryset(self) -> QuerySet:
        queryset = ApiToken.objects.select_related("user")
        if not policy.is_platform_admin(self.request.user):
            queryset = queryset.filter(user=self.request.user)
        return queryset

    def get_object(self) -> ApiToken:
        token = find(self.get_queryset(), str(self.kwargs["pk"]), "")
        if token is None:
            raise Http404(f"no token {self.kwargs['pk']!r}")
        return token

    @extend_schema(request=s.TokenRequest, responses={201: s.TokenCreated})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = _changes(_body(request), ("name", "read_only", "expires_in_days"))
        days = body.get("expires_in_days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int)
                                 or not 1 <= days <= 3650):
            raise ValidationFailed({"expires_in_days": ["a whole number from 1 to 3650"]})
        expires = timezone.now() + timedelta(days=days) if days else None
        token, secret = services.create_token(actor_of(request), request.user,
                                              body.get("name"), body.get("read_only", False),
                                              expires)
        return Response({**s.TokenSerializer(token).data, "secret": secret},
                        status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        token = services.revoke_token(actor_of(request), self.get_object())
        return Response(s.TokenSerializer(token).data)


class MeView(APIView):
    """Who you are: your teams and roles, platform administration, two-factor state."""

    resource = "me"

    @extend_schema(responses={200: None})
    def get(self, request: Request) -> Response:
        from django_otp import user_has_device

        user: Any = request.user  # signed in: the permission classes refuse anonymous
        token = token_of(request)
        return Response({
            "id": user.pk, "username": user.get_username(),
            "platform_admin": policy.is_platform_admin(user),
            "teams": [{"id": m.team_id, "team": m.team.name, "role": m.role,
                       "require_2fa": m.team.require_2fa}
                      for m in Membership.objects.filter(user=user).select_related("team")],
            "two_factor": {"enrolled": user_has_device(user, confirmed=True),
                           "required": services.two_factor_required(user)},
            "token": {"name": token.name, "read_only": token.read_only} if token else None,
        })


class TotpView(APIView):
    """POST: enrol a TOTP authenticator (answers its otpauth:// URI; confirm with a code at
    /me/totp/confirm/). DELETE: remove your authenticators."""

    resource = "me"

    @extend_schema(request=None, responses={201: None})
    def post(self, request: Request) -> Response:
        device, uri = services.enroll_totp(actor_of(request), request.user)
        return Response({"otpauth_uri": uri, "confirmed": False},
                        status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        services.remove_totp(actor_of(request), request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TotpConfirmView(APIView):
    """POST {"code": "123456"}: confirm the authenticator enrolled last."""

    resource = "me"

    @extend_schema(request=s.TotpConfirmRequest, responses={200: None})
    def post(self, request: Request) -> Response:
        body = _body(request)
        services.confirm_totp(actor_of(request), request.user, body.get("code"))
        return Response({"confirmed": True})
