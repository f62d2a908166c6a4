"""Team API tokens: a token that acts for a team, not for a person (CI, scripts).

A team token is an ordinary ApiToken of a *service account*: a user made for it alone, with an
unusable password (it never signs in to the browser), never a superuser, holding the token's
role (its scope) in the team through an ordinary Membership. So the REST API authorises it
through panel/access/policy.py like anyone else, and a read-only token may only look.
`ApiToken.team` marks the token and, through it, its service account
(`models.service_accounts()`): such accounts are listed with the team's tokens, not as members;
their membership cannot be changed or removed by hand (services.set_member/remove_member
refuse: revoke the token instead), they cannot mint tokens of their own (which would outlive
the team token's expiry), and they never count as the admins who keep a team administered
(services._admins_left), so an admin-scoped token neither blocks removing the last human
admin nor stands in for one.

Only the SHA-256 of the secret is stored (hash_token); the secret is returned once. Like
panel/access/services.py each writer validates, writes and records exactly one audit event in
one transaction; callers authorise ("team.members": team admins and platform admins)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from panel.access import policy
from panel.access.models import ADMIN, ROLES, ApiToken, Membership, Team, hash_token
from panel.audit.services import Actor, record_event
from panel.workloads.privileges import actor_is_platform_admin
from panel.workloads.services import Conflict
from panel.workloads.spec import ValidationFailed

MAX_DAYS = 3650  # as for personal tokens


def _summary(token: ApiToken) -> dict[str, Any]:
    """What the audit keeps of a team token (never its secret; key names avoid "token",
    which the audit redacts)."""
    return {"name": token.name, "role": token.team_role, "read_only": token.read_only,
            "prefix": token.prefix, "account": token.user.get_username(),
            "expires_at": token.expires_at.isoformat() if token.expires_at else None}


def _validate(team: Team, name: Any, role: Any, read_only: Any,
              expires_in_days: Any) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        errors["name"] = ["required: a label of at most 64 characters, e.g. \"ci deploys\""]
    elif ApiToken.objects.filter(team=team, name=name.strip(),
                                 revoked_at__isnull=True).exists():
        errors["name"] = [f"team {team.name} already has a token named {name.strip()!r}: "
                          "choose another name or revoke that one"]
    if role not in ROLES:
        errors["role"] = [f"{role!r} is not a role: use one of {', '.join(ROLES)}"]
    if not isinstance(read_only, bool):
        errors["read_only"] = ["must be true or false"]
    if expires_in_days is not None and (isinstance(expires_in_days, bool)
                                        or not isinstance(expires_in_days, int)
                                        or not 1 <= expires_in_days <= MAX_DAYS):
        errors["expires_in_days"] = [f"a whole number of days from 1 to {MAX_DAYS}, or empty "
                                     "for a token that does not expire"]
    return errors


def _may_grant_admin(actor: Actor, team: Team) -> bool:
    """An admin-scoped token is made by a team admin or a platform admin (the panel's own
    actors, which carry no person, are trusted)."""
    if actor.user_id is None or actor_is_platform_admin(actor):
        return True
    return Membership.objects.filter(team=team, user_id=actor.user_id, role=ADMIN).exists()


def _username(team: Team) -> str:
    users = get_user_model().objects
    while True:
        username = f"token-{team.name}-{secrets.token_hex(4)}"
        if not users.filter(username=username).exists():
            return username


@transaction.atomic
def create_team_token(actor: Actor, team: Team, name: Any, role: Any, read_only: Any = False,
                      expires_in_days: Any = None) -> tuple[ApiToken, str]:
    """A new token acting for `team` with `role` (its service account and membership are made
    with it); returns the token and its secret, which is shown only this once."""
    errors = _validate(team, name, role, read_only, expires_in_days)
    if errors:
        raise ValidationFailed(errors)
    if role == ADMIN and not _may_grant_admin(actor, team):
        raise PermissionDenied("only a team admin or a platform admin may create a token with "
                               "role admin")
    account = get_user_model()(username=_username(team), is_active=True, is_staff=False,
                               is_superuser=False)
    account.set_unusable_password()
    account.save()
    Membership.objects.create(team=team, user=account, role=role)
    secret = ApiToken.PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken.objects.create(user=account, team=team, team_role=role, name=name.strip(),
                                    key_hash=hash_token(secret), prefix=secret[:10],
                                    read_only=read_only, expires_at=expires_at)
    record_event(actor, "team.token_create", token, team=team, after=_summary(token))
    return token, secret


def team_tokens(team: Team) -> QuerySet[ApiToken]:
    """The tokens of `team`, newest first, revoked ones included (one query): `name`,
    `team_role` (the scope), `read_only`, `prefix`, `last_used_at`, `expires_at`,
    `revoked_at`, `is_usable`."""
    return ApiToken.objects.filter(team=team).select_related("user").order_by("-created_at")


@transaction.atomic
def revoke_team_token(actor: Actor, token: ApiToken) -> ApiToken:
    """Revoke a team token for good: the token, its service account (deactivated) and the
    account's membership (removed), so nothing of it can act again; it stays listed."""
    token = ApiToken.objects.select_for_update(of=("self",)).select_related(
        "user", "team").get(pk=token.pk)
    if token.team is None:
        raise Conflict(f"token {token.name} is a personal token, not a team token: its owner "
                       "revokes it on their account page")
    if token.revoked_at is not None:
        raise Conflict(f"token {token.name} was already revoked at {token.revoked_at:%c}")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    account = token.user
    account.is_active = False
    account.save(update_fields=["is_active"])
    Membership.objects.filter(user=account).delete()
    policy.forget(account)
    record_event(actor, "team.token_revoke", token, team=token.team, before=_summary(token))
    return token
