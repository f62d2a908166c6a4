"""A team's history as sentences: its latest audit events, with membership and invite events
told in full ("Ana changed bob's role from viewer to operator"), since panel.audit.describe
names only the membership; every other event is described by panel.audit.describe."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from panel.access import policy
from panel.audit.describe import PEOPLE_CHANNELS, describe
from panel.audit.models import AuditEvent

LIMIT = 50


def _who(event: AuditEvent) -> str:
    name = event.actor_name or "someone"
    return name[:1].upper() + name[1:] if event.channel in PEOPLE_CHANNELS else name


def _user(event: AuditEvent, details: dict[str, Any]) -> str:
    for part in ("after", "before"):
        user = (details.get(part) or {}).get("user")
        if user:
            return str(user)
    return event.target_name.rsplit("@", 1)[0] or "someone"


def _team_change(details: dict[str, Any]) -> str:
    before, after = details.get("before") or {}, details.get("after") or {}
    changed = []
    if before.get("require_2fa") != after.get("require_2fa"):
        changed.append("now requires two-factor sign-in" if after.get("require_2fa")
                       else "no longer requires two-factor sign-in")
    if before.get("description") != after.get("description"):
        changed.append(f"description “{after.get('description') or ''}”")
    if before.get("name") != after.get("name"):
        changed.append(f"renamed from {before.get('name')} to {after.get('name')}")
    other = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)
                   and k not in ("require_2fa", "description", "name"))
    changed.extend(f"{key.replace('_', ' ')} changed" for key in other)
    return ", ".join(changed) or "saved without changes"


def sentence(event: AuditEvent) -> str:
    """One sentence for `event`, in the words of the team page."""
    if event.outcome != "succeeded":
        return describe(event)
    details, who = event.details, _who(event)
    when = timezone.localtime(event.created_at).strftime("%a %H:%M")
    team = event.team_name or "the team"
    if event.action == "membership.change":
        user, role = _user(event, details), (details.get("after") or {}).get("role")
        before = (details.get("before") or {}).get("role")
        if before is None:
            return f"{who} added {user} to {team} as {role} on {when}"
        return f"{who} changed {user}'s role in {team} from {before} to {role} on {when}"
    if event.action == "membership.remove":
        role = (details.get("before") or {}).get("role")
        return f"{who} removed {_user(event, details)} ({role}) from {team} on {when}"
    if event.action == "team.invite":
        return f"{who} created an invite link to {team} as {details.get('role')} on {when}"
    if event.action == "team.invite_accept":
        role = (details.get("after") or {}).get("role")
        return f"{who} joined {team} as {role} with an invite link from " \
               f"{details.get('invited_by') or 'a team admin'} on {when}"
    if event.action == "team.invite_revoke":
        return f"{who} revoked an invite link to {team} as {details.get('role')} on {when}"
    if event.action in ("team.token_create", "team.token_revoke"):
        part = details.get("after") or details.get("before") or {}
        verb = "created" if event.action == "team.token_create" else "revoked"
        scope = f"{part.get('role')}{', read-only' if part.get('read_only') else ''}"
        return f"{who} {verb} the team token {part.get('name') or event.target_name} " \
               f"({scope}) of {team} on {when}"
    if event.action == "team.change":
        return f"{who} changed team {team} on {when}: {_team_change(details)}"
    return describe(event)


def team_history(user: Any, team_id: int, limit: int = LIMIT) -> list[dict[str, Any]]:
    """The latest `limit` events of team `team_id` that `user` may see ("auditevent.view"),
    newest first, as {"event", "text"} rows (one query)."""
    events = policy.visible(user, AuditEvent.objects.filter(team_id=team_id)).order_by(
        "-seq")[:limit]
    return [{"event": event, "text": sentence(event)} for event in events]
