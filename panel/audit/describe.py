"""Audit events as plain sentences for managers:

    "Ana deployed shop-web 1.4 → 1.5 on Tue 14:02: 3 of 3 healthy after 41 s"
    "restart policy restarted worker (exit 137, out of memory)"

Deployments (`*.deploy`, `*.update`, `*.rollback`) read these details when present:
`service` (else the target name), `from`/`to` versions (else `before.version`/`after.version`,
else the tags of `before.image`/`after.image`), `healthy`, `replicas` and `seconds`."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

PAST = {
    "create": "created", "start": "started", "stop": "stopped", "restart": "restarted",
    "kill": "killed", "remove": "removed", "pull": "pulled", "deploy": "deployed",
    "rollback": "rolled back", "update": "updated", "reschedule": "moved", "change": "changed",
    "revoke": "revoked", "reconcile": "re-applied", "remove_stray": "removed a stray copy of",
    "sign_in": "signed in", "sign_out": "signed out", "sign_in_failed": "failed to sign in",
    "secrets": "read the secret values of", "member_set": "set a role in",
    "member_remove": "removed a member from", "register": "registered", "down": "lost",
    "up": "got back", "exited": "saw exit of", "oom": "saw out-of-memory kill of",
    "missing": "found missing", "labels": "relabelled",
}
PEOPLE_CHANNELS = ("web", "api", "ws", "cli")
NO_TARGET = ("sign_in", "sign_out", "sign_in_failed")


def _who(event: Any, verb: str) -> str:
    if event.channel in PEOPLE_CHANNELS:
        name = event.actor_name or "someone"
        return name[:1].upper() + name[1:]
    if event.channel == "agent" and verb == "restarted":
        return "restart policy"
    if event.channel == "agent":
        return f"the agent on {event.actor_name.removeprefix('agent:')}" \
            if event.actor_name.startswith("agent:") else "an agent"
    return {"reconciler": "the reconciler", "host-check": "the host check"}.get(
        event.actor_name, event.actor_name or "the system")


def _tag(image: Any) -> str:
    text = str(image or "")
    tail = text.rsplit("/", 1)[-1]
    return tail.split(":", 1)[1] if ":" in tail else text


def _versions(details: dict[str, Any]) -> tuple[str, str]:
    before, after = details.get("before") or {}, details.get("after") or {}
    old = details.get("from") or before.get("version") or _tag(before.get("image"))
    new = details.get("to") or after.get("version") or _tag(after.get("image"))
    return str(old or ""), str(new or "")


def _deployment(event: Any, who: str, verb: str, when: str) -> str:
    details = event.details
    name = details.get("service") or event.target_name
    old, new = _versions(details)
    change = f" {old} → {new}" if old and new and old != new else (f" {new}" if new else "")
    text = f"{who} {verb} {name}{change} on {when}"
    healthy, replicas = details.get("healthy"), details.get("replicas")
    if replicas is not None and healthy is not None:
        text += f": {healthy} of {replicas} healthy"
        if details.get("seconds") is not None:
            text += f" after {round(float(details['seconds']))} s"
    return text


def _exit(event: Any) -> str:
    after, before = event.details.get("after") or {}, event.details.get("before") or {}
    code = after.get("exit_code") or before.get("exit_code")
    oom = after.get("oom_killed") or before.get("oom_killed")
    parts = []
    if code:
        parts.append(f"exit {code}")
    if oom:
        parts.append("out of memory")
    text = f" ({', '.join(parts)})" if parts else ""
    if after.get("stop_note"):
        text += f": {after['stop_note']}"
    return text


def describe(event: Any) -> str:
    """One sentence for `event` (see the module docstring)."""
    kind, _, action = event.action.partition(".")
    verb = PAST.get(action, action.replace("_", " "))
    who = _who(event, verb)
    when = timezone.localtime(event.created_at).strftime("%a %H:%M")
    if event.outcome == "denied":
        return f"{who} was refused: {event.action} on {event.target_name or kind} ({when})"
    if action in ("deploy", "update", "rollback") and kind in ("stack", "service", "container"):
        text = _deployment(event, who, verb, when)
    elif action in NO_TARGET:
        text = f"{who} {verb} on {when}"
    elif action in ("restarted", "exited", "oom"):
        text = f"{who} {verb} {event.target_name}{_exit(event)}"
    else:
        target = event.target_name or event.target_id
        text = f"{who} {verb} {kind} {target} on {when}".replace(f" {kind} {kind} ", f" {kind} ")
    if event.outcome == "failed":
        text += " — it failed"
    return text
