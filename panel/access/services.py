"""Service functions of access: the only writers of teams, projects, memberships, users, API
tokens and TOTP devices, and the recorders of sign-ins. Each validates first, writes the change
and exactly one audit event in one transaction.

Callers (views, the API) authorise with panel.access.policy before calling; these functions
enforce invariants that hold whoever calls (a team keeps at least one admin, a project with
workloads cannot be removed)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from panel.access import policy
from panel.access.models import (
    ADMIN,
    ROLES,
    ApiToken,
    Membership,
    Project,
    Team,
    hash_token,
    is_service_account,
    service_accounts,
)
from panel.audit.services import Actor, record_event
from panel.workloads.privileges import actor_is_platform_admin
from panel.workloads.services import Conflict
from panel.workloads.spec import ValidationFailed

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_USERNAME = re.compile(r"^[\w.@+-]{1,150}$")


def _name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValidationFailed({field: ["required: letters, digits, '.', '_' and '-', starting "
                                        "with a letter or digit, at most 64 characters"]})
    return value


def _text(value: Any, field: str, limit: int = 255) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise ValidationFailed({field: [f"must be text of at most {limit} characters"]})
    return value


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed({field: ["must be true or false"]})
    return value


def team_summary(team: Team) -> dict[str, Any]:
    return {"name": team.name, "description": team.description, "require_2fa": team.require_2fa,
            "allowed_capabilities": list(team.allowed_capabilities),
            "allow_sysctls": team.allow_sysctls, "host_paths": list(team.host_paths)}


def _capabilities(value: Any) -> list[str]:
    """A team's allowed capabilities: names such as NET_ADMIN; never one that reaches the host
    (those stay with platform administrators, panel/workloads/privileges.py)."""
    from panel.workloads.privileges import HOST_CAPABILITIES

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed({"allowed_capabilities": ['must be a list of capability names, '
                                                         'e.g. ["NET_ADMIN"]']})
    names = sorted({v.strip().upper().removeprefix("CAP_") for v in value})
    bad = [n for n in names if not re.fullmatch(r"[A-Z][A-Z0-9_]*", n)]
    if bad:
        raise ValidationFailed({"allowed_capabilities": [f"{bad[0]!r} is not a capability "
                                                         "name: use e.g. NET_ADMIN"]})
    host_wide = [n for n in names if n in HOST_CAPABILITIES]
    if host_wide:
        raise ValidationFailed({"allowed_capabilities": [
            f"{', '.join(host_wide)} reach past the container to the host: only a platform "
            "administrator may use them, and no team policy can allow them"]})
    return names


def _host_paths(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed({"host_paths": ['must be a list of absolute host directories, '
                                               'e.g. ["/srv/media"]']})
    paths = []
    for path in value:
        if not path.startswith("/") or ".." in path.split("/") or path.rstrip("/") == "":
            raise ValidationFailed({"host_paths": [f"{path!r} must be an absolute directory "
                                                   "without '..', and not / itself"]})
        paths.append(path.rstrip("/"))
    return sorted(set(paths))


# --- teams and projects -------------------------------------------------------------------------

@transaction.atomic
def create_team(actor: Actor, name: Any, description: str = "",
                require_2fa: bool = False) -> Team:
    """A new team (platform administrators)."""
    name = _name(name)
    if Team.objects.filter(name=name).exists():
        raise ValidationFailed({"name": [f"a team named {name!r} already exists"]})
    team = Team.objects.create(name=name, description=_text(description, "description"),
                               require_2fa=_flag(require_2fa, "require_2fa"))
    record_event(actor, "team.create", team, after=team_summary(team))
    return team


@transaction.atomic
def update_team(actor: Actor, team: Team, **changes: Any) -> Team:
    """Change a team's name, description or two-factor requirement."""
    allowed = {"name", "description", "require_2fa", "allowed_capabilities", "allow_sysctls",
               "host_paths"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed({f: [f"cannot be changed: use {', '.join(sorted(allowed))}"]
                                for f in sorted(unknown)})
    # the panel's own actors (management commands) carry no person and are trusted
    if "host_paths" in changes and actor.user_id is not None \
            and not actor_is_platform_admin(actor):
        raise PermissionDenied("host_paths: only a platform administrator may choose which host "
                               "directories a team may bind-mount")
    team = Team.objects.select_for_update().get(pk=team.pk)
    before = team_summary(team)
    if "name" in changes:
        name = _name(changes["name"])
        if Team.objects.filter(name=name).exclude(pk=team.pk).exists():
            raise ValidationFailed({"name": [f"a team named {name!r} already exists"]})
        team.name = name
    if "description" in changes:
        team.description = _text(changes["description"], "description")
    if "require_2fa" in changes:
        team.require_2fa = _flag(changes["require_2fa"], "require_2fa")
    if "allowed_capabilities" in changes:
        team.allowed_capabilities = _capabilities(changes["allowed_capabilities"])
    if "allow_sysctls" in changes:
        team.allow_sysctls = _flag(changes["allow_sysctls"], "allow_sysctls")
    if "host_paths" in changes:
        team.host_paths = _host_paths(changes["host_paths"])
    team.save()
    record_event(actor, "team.change", team, before=before, after=team_summary(team))
    return team


@transaction.atomic
def remove_team(actor: Actor, team: Team) -> None:
    """Remove a team that owns no projects (its memberships go with it)."""
    projects = list(team.projects.values_list("name", flat=True)[:10])
    if projects:
        raise Conflict(f"team {team.name} owns projects {', '.join(projects)}: remove or move "
                       "them first")
    record_event(actor, "team.remove", team, before=team_summary(team),
                 members=list(team.memberships.values_list("user__username", "role")))
    # the service accounts of its tokens go with it (their tokens and memberships cascade)
    get_user_model().objects.filter(api_tokens__team=team).delete()
    team.delete()


def _project_fields(team: Any, name: Any, description: Any) -> dict[str, Any]:
    return {"name": _name(name), "description": _text(description, "description"),
            "team": team}


@transaction.atomic
def create_project(actor: Actor, team: Team, name: Any, description: str = "") -> Project:
    """A new project owned by `team`."""
    fields = _project_fields(team, name, description)
    if Project.objects.filter(name=fields["name"]).exists():
        raise ValidationFailed({"name": [f"a project named {fields['name']!r} already exists"]})
    project = Project.objects.create(**fields)
    record_event(actor, "project.create", project,
                 after={"name": project.name, "team": team.name,
                        "description": project.description})
    return project


@transaction.atomic
def update_project(actor: Actor, project: Project, **changes: Any) -> Project:
    """Rename a project or change its description."""
    unknown = set(changes) - {"name", "description"}
    if unknown:
        raise ValidationFailed({f: ["cannot be changed: use name, description"]
                                for f in sorted(unknown)})
    project = Project.objects.select_for_update(of=("self",)).select_related("team").get(
        pk=project.pk)
    before = {"name": project.name, "description": project.description}
    if "name" in changes:
        name = _name(changes["name"])
        if Project.objects.filter(name=name).exclude(pk=project.pk).exists():
            raise ValidationFailed({"name": [f"a project named {name!r} already exists"]})
        project.name = name
    if "description" in changes:
        project.description = _text(changes["description"], "description")
    project.save()
    record_event(actor, "project.change", project, before=before,
                 after={"name": project.name, "description": project.description})
    return project


def _project_contents(project: Project) -> list[str]:
    """Names of what still belongs to `project` (every model with a `project` foreign key)."""
    found = []
    meta: Any = project._meta  # Options.related_objects is missing from django-stubs
    for relation in meta.related_objects:
        model = relation.related_model
        if relation.field.name != "project" or model._meta.app_label == "audit":
            continue
        for name in model._default_manager.filter(project=project).values_list(
                "pk", flat=True)[:5]:
            found.append(f"{model._meta.model_name} {name}")
    return found


@transaction.atomic
def remove_project(actor: Actor, project: Project) -> None:
    """Remove a project that owns nothing any more."""
    contents = _project_contents(project)
    if contents:
        raise Conflict(f"project {project.name} still holds {', '.join(contents[:10])}: "
                       "remove them first")
    record_event(actor, "project.remove", project,
                 before={"name": project.name, "team": project.team.name})
    project.delete()


# --- members ------------------------------------------------------------------------------------

def _admins_left(team: Team, without: Membership) -> int:
    """The team's other admins who are people: a team token with role admin does not keep a
    team administered (it expires, is revoked, and cannot sign in to the team page)."""
    return team.memberships.filter(role=ADMIN).exclude(pk=without.pk).exclude(
        user_id__in=service_accounts()).count()


TOKEN_MEMBER = "is the service account of a team token: its role is the token's scope; " \
               "revoke the token on the team page (and create another) instead"


@transaction.atomic
def set_member(actor: Actor, team: Team, username: Any, role: Any) -> Membership:
    """Give `username` `role` in `team` (adding them, or changing their role)."""
    errors: dict[str, list[str]] = {}
    if role not in ROLES:
        errors["role"] = [f"{role!r} is not a role: use one of {', '.join(ROLES)}"]
    user = get_user_model().objects.filter(username=username).first() \
        if isinstance(username, str) else None
    if user is None:
        errors["username"] = [f"no user named {username!r}: a platform administrator creates "
                              "users (POST /api/v1/users/)"]
    if errors or user is None:
        raise ValidationFailed(errors)
    if is_service_account(user):
        raise Conflict(f"{username} {TOKEN_MEMBER}")
    membership = Membership.objects.select_for_update().filter(team=team, user=user).first()
    before = {"role": membership.role} if membership else None
    if membership is not None and membership.role == ADMIN and role != ADMIN \
            and not _admins_left(team, membership):
        raise Conflict(f"{username} is the last admin of team {team.name}: make someone else "
                       "admin first")
    if membership is None:
        membership = Membership.objects.create(team=team, user=user, role=role)
    else:
        membership.role = role
        membership.save(update_fields=["role", "updated_at"])
    policy.forget(user)
    record_event(actor, "membership.change", membership, target_name=membership.name,
                 team=team, before=before, after={"role": role, "user": user.get_username()})
    return membership


@transaction.atomic
def remove_member(actor: Actor, membership: Membership) -> None:
    """Take `membership`'s user out of its team (not the last admin)."""
    membership = Membership.objects.select_for_update(of=("self",)).select_related(
        "team", "user").get(pk=membership.pk)
    if is_service_account(membership.user):
        raise Conflict(f"{membership.user} {TOKEN_MEMBER}")
    if membership.role == ADMIN and not _admins_left(membership.team, membership):
        raise Conflict(f"{membership.user} is the last admin of team {membership.team}: make "
                       "someone else admin first")
    record_event(actor, "membership.remove", membership, target_name=membership.name,
                 team=membership.team, before={"role": membership.role,
                                               "user": membership.user.get_username()})
    membership.delete()
    policy.forget(membership.user)


# --- users (platform administrators) ------------------------------------------------------------

def user_summary(user: Any) -> dict[str, Any]:
    return {"username": user.get_username(), "email": user.email, "is_active": user.is_active,
            "is_superuser": user.is_superuser}


def _password(password: Any, user: Any = None) -> str:
    if not isinstance(password, str):
        raise ValidationFailed({"password": ["required: a text of at least 8 characters"]})
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationFailed({"password": list(exc.messages)}) from None
    return password


@transaction.atomic
def create_user(actor: Actor, username: Any, password: Any = None, email: Any = "",
                is_superuser: Any = False) -> Any:
    """A new user; without a password they cannot sign in until one is set."""
    errors: dict[str, list[str]] = {}
    users = get_user_model()
    if not isinstance(username, str) or not _USERNAME.match(username):
        errors["username"] = ["required: letters, digits and @.+-_, at most 150 characters"]
    elif users.objects.filter(username=username).exists():
        errors["username"] = [f"a user named {username!r} already exists"]
    if errors:
        raise ValidationFailed(errors)
    email = _text(email, "email", 254)
    superuser = _flag(is_superuser, "is_superuser")
    user = users(username=username, email=email, is_superuser=superuser, is_staff=superuser)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(_password(password, user))
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise ValidationFailed({"username": [f"a user named {username!r} already exists"]}) \
            from None
    record_event(actor, "user.create", user, target_name=username, after=user_summary(user))
    return user


@transaction.atomic
def update_user(actor: Actor, user: Any, **changes: Any) -> Any:
    """Change email, password, is_active or is_superuser (the password is never audited)."""
    allowed = {"email", "password", "is_active", "is_superuser"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed({f: [f"cannot be changed: use {', '.join(sorted(allowed))}"]
                                for f in sorted(unknown)})
    user = get_user_model().objects.select_for_update().get(pk=user.pk)
    if is_service_account(user) and (changes.get("is_superuser") or "password" in changes):
        raise Conflict(f"{user} is the service account of a team token: it never signs in "
                       "with a password nor administers the platform")
    before = user_summary(user)
    if "email" in changes:
        user.email = _text(changes["email"], "email", 254)
    if "password" in changes:
        user.set_password(_password(changes["password"], user))
    for flag in ("is_active", "is_superuser"):
        if flag in changes:
            setattr(user, flag, _flag(changes[flag], flag))
    user.is_staff = user.is_superuser
    if user.pk == actor.user_id and not (user.is_active and user.is_superuser):
        raise Conflict("you cannot remove your own platform administration or deactivate "
                       "yourself: ask another platform administrator")
    user.save()
    record_event(actor, "user.change", user, target_name=user.get_username(), before=before,
                 after=user_summary(user), password_changed="password" in changes)
    return user


@transaction.atomic
def remove_user(actor: Actor, user: Any) -> None:
    """Delete a user with their memberships and tokens (audit events keep their name)."""
    if user.pk == actor.user_id:
        raise Conflict("you cannot remove yourself: ask another platform administrator")
    last_admin_of = [] if is_service_account(user) else [
        m.team.name for m in Membership.objects.filter(user=user, role=ADMIN)
        if not _admins_left(m.team, m)]
    if last_admin_of:
        raise Conflict(f"{user} is the last admin of {', '.join(last_admin_of)}: make someone "
                       "else admin first")
    record_event(actor, "user.remove", user, target_name=user.get_username(),
                 before=user_summary(user))
    user.delete()


# --- API tokens ---------------------------------------------------------------------------------

def token_summary(token: ApiToken) -> dict[str, Any]:
    return {"name": token.name, "prefix": token.prefix, "read_only": token.read_only,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            "user": token.user.get_username()}


@transaction.atomic
def create_token(actor: Actor, user: Any, name: Any, read_only: Any = False,
                 expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new API token for `user`; returns it and its secret, which is shown only this once."""
    errors: dict[str, list[str]] = {}
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        errors["name"] = ["required: a label of at most 64 characters, e.g. \"ci deploys\""]
    if not isinstance(read_only, bool):
        errors["read_only"] = ["must be true or false"]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["must be in the future"]
    if errors:
        raise ValidationFailed(errors)
    if is_service_account(user):
        # else a team token could mint itself a token that outlives its expiry
        raise Conflict("a team token cannot create API tokens: a team admin creates team "
                       "tokens on the team page")
    secret = ApiToken.PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name.strip(), key_hash=hash_token(secret),
                                    prefix=secret[:10], read_only=read_only,
                                    expires_at=expires_at)
    record_event(actor, "apitoken.create", token, after=token_summary(token))
    return token, secret


@transaction.atomic
def revoke_token(actor: Actor, token: ApiToken) -> ApiToken:
    """Revoke a token at once; it stays listed as revoked."""
    token = ApiToken.objects.select_for_update(of=("self",)).select_related("user").get(pk=token.pk)
    if token.revoked_at is not None:
        raise Conflict(f"token {token.name} was already revoked at {token.revoked_at:%c}")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    record_event(actor, "apitoken.revoke", token, before=token_summary(token))
    return token


# --- sign-in ------------------------------------------------------------------------------------

def two_factor_required(user: Any) -> bool:
    """True when a team of `user` requires TOTP, or the user enrolled a device themselves."""
    from django_otp import user_has_device

    return Membership.objects.filter(user=user, team__require_2fa=True).exists() \
        or user_has_device(user, confirmed=True)


@transaction.atomic
def record_sign_in(actor: Actor, user: Any, two_factor: bool = False,
                   enrolment_required: bool = False) -> None:
    """A sign-in; `enrolment_required`: with the password only, to enrol the authenticator a
    team requires (the session reaches nothing else until then)."""
    extra: dict[str, Any] = {"enrolment_required": True} if enrolment_required else {}
    record_event(actor, "user.sign_in", user, target_name=user.get_username(),
                 two_factor=two_factor, **extra)


@transaction.atomic
def record_sign_out(actor: Actor, user: Any) -> None:
    record_event(actor, "user.sign_out", user, target_name=user.get_username())


@transaction.atomic
def record_sign_in_failure(actor: Actor, username: str, reason: str) -> None:
    record_event(actor, "user.sign_in_failed", target_type="user",
                 target_name=str(username)[:150], outcome="failed", reason=reason)


@transaction.atomic
def enroll_totp(actor: Actor, user: Any) -> tuple[Any, str]:
    """A new, unconfirmed TOTP device for `user` (replacing unconfirmed ones); returns it and
    its otpauth:// URI for the authenticator app."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    record_event(actor, "user.totp_enroll", user, target_name=user.get_username())
    return device, device.config_url


@transaction.atomic
def confirm_totp(actor: Actor, user: Any, code: Any) -> Any:
    """Confirm the pending device of `user` with a current code from the app."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
    if device is None:
        raise ValidationFailed({"code": ["no pending authenticator: enrol one first"]})
    if not isinstance(code, str) or not device.verify_token(code):
        raise ValidationFailed({"code": ["wrong or expired code: enter the 6 digits the app "
                                         "shows now"]})
    device.confirmed = True
    device.save()
    record_event(actor, "user.totp_confirm", user, target_name=user.get_username())
    return device


@transaction.atomic
def remove_totp(actor: Actor, user: Any) -> int:
    """Remove every TOTP device of `user` (a lost phone)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    count, _ = TOTPDevice.objects.filter(user=user).delete()
    record_event(actor, "user.totp_remove", user, target_name=user.get_username(),
                 devices=count)
    return count
