"""Team invites: one-time links that make whoever opens them (signed in) a member of a team,
and the read helpers of the team pages (open invites, members without two-factor).

Only the SHA-256 of an invite's secret is stored (hash_token), so the link exists once: in the
answer to the admin who made it. Like panel/access/services.py, each writer validates, writes
and records exactly one audit event in one transaction; callers authorise ("team.members")."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from panel.access import policy
from panel.access.models import ROLES, Membership, Team, TeamInvite, hash_token
from panel.audit.services import Actor, record_event
from panel.workloads.services import Conflict
from panel.workloads.spec import ValidationFailed

MAX_DAYS = 30
# One message for every secret that matches nothing: it must not tell a guesser anything.
UNKNOWN = "this invite link is not valid: check that it was copied whole, or ask a team " \
          "admin for a new one"


def _days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise ValidationFailed({"days": [f"must be a whole number of days from 1 to {MAX_DAYS}"]})
    return value


@transaction.atomic
def create_invite(actor: Actor, team: Team, role: Any, days: Any = 7) -> tuple[TeamInvite, str]:
    """A new invite to `team` as `role`, valid for `days`; returns it and its secret, which
    is never stored nor audited (only its hash is kept)."""
    errors: dict[str, list[str]] = {}
    if role not in ROLES:
        errors["role"] = [f"{role!r} is not a role: use one of {', '.join(ROLES)}"]
    try:
        days = _days(days)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    secret = secrets.token_urlsafe(32)
    invite = TeamInvite.objects.create(team=team, role=role, key_hash=hash_token(secret),
                                       created_by=actor.name[:150],
                                       expires_at=timezone.now() + timedelta(days=days))
    record_event(actor, "team.invite", invite, team=team, role=role,
                 expires_at=invite.expires_at.isoformat())
    return invite, secret


def _why_closed(invite: TeamInvite) -> str | None:
    """Why `invite` can no longer be used (never naming its team), or None when it can."""
    if invite.used_at is not None:
        return "this invite link was already used: an invite works once; ask a team admin " \
               "for a new one"
    if invite.revoked_at is not None:
        return "this invite link was revoked by a team admin: ask them for a new one"
    if invite.expires_at <= timezone.now():
        return f"this invite link expired on {invite.expires_at:%Y-%m-%d %H:%M} UTC: ask a " \
               "team admin for a new one"
    return None


def open_invite(secret: Any) -> TeamInvite:
    """The usable invite whose secret is `secret` (for the join page), else ValidationFailed
    saying why, without naming the team."""
    return _usable(TeamInvite.objects.select_related("team"), secret)


def _usable(invites: Any, secret: Any) -> TeamInvite:
    """The invite of `invites` whose secret is `secret`, if it may still be used."""
    invite = invites.filter(key_hash=hash_token(secret)).first() \
        if isinstance(secret, str) and secret else None
    if invite is None:
        raise ValidationFailed({"invite": [UNKNOWN]})
    reason = _why_closed(invite)
    if reason:
        raise ValidationFailed({"invite": [reason]})
    return invite


@transaction.atomic
def accept_invite(actor: Actor, user: Any, secret: Any) -> Membership:
    """Spend the invite `secret` for `user`: they become a member with its role. A spent,
    revoked, expired or unknown invite is refused (ValidationFailed, field "invite"); so is a
    user who is already a member (Conflict: their role is changed by an admin, not a link)."""
    invite = _usable(TeamInvite.objects.select_for_update(of=("self",)).select_related("team"),
                     secret)
    team = invite.team
    current = Membership.objects.filter(team=team, user=user).first()
    if current is not None:
        raise Conflict(f"you are already a member of team {team.name} with role {current.role}: "
                       "a team admin changes roles; the invite is left unused")
    membership = Membership.objects.create(team=team, user=user, role=invite.role)
    invite.used_by, invite.used_at = user.get_username()[:150], timezone.now()
    invite.save(update_fields=["used_by", "used_at"])
    policy.forget(user)
    record_event(actor, "team.invite_accept", membership, target_name=membership.name,
                 team=team, invite=invite.pk, invited_by=invite.created_by,
                 after={"role": invite.role, "user": user.get_username()})
    return membership


@transaction.atomic
def revoke_invite(actor: Actor, invite: TeamInvite) -> TeamInvite:
    """Make an unused invite unusable at once (it stays listed in the history)."""
    invite = TeamInvite.objects.select_for_update(of=("self",)).select_related("team").get(
        pk=invite.pk)
    if invite.used_at is not None:
        raise Conflict(f"{invite.name} was already used by {invite.used_by}: remove the member "
                       "instead")
    if invite.revoked_at is not None:
        raise Conflict(f"{invite.name} was already revoked")
    invite.revoked_at = timezone.now()
    invite.save(update_fields=["revoked_at"])
    record_event(actor, "team.invite_revoke", invite, team=invite.team, role=invite.role)
    return invite


def pending_invites(team: Team) -> QuerySet[TeamInvite]:
    """Invites of `team` that can still be used, newest first."""
    return team.invites.filter(used_at__isnull=True, revoked_at__isnull=True,
                               expires_at__gt=timezone.now()).order_by("-created_at")


def members_without_2fa(team: Team) -> QuerySet[Membership]:
    """Memberships of `team` whose user has no confirmed TOTP device (one query, with the
    users): the people a two-factor requirement will stop at their next sign-in."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    enrolled = TOTPDevice.objects.filter(user=OuterRef("user_id"), confirmed=True)
    return Membership.objects.filter(team=team).filter(~Exists(enrolled)).select_related(
        "user").order_by("user__username")
