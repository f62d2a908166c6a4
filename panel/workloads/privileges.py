"""Who may use the container fields that loosen its isolation: one check for the container API
and for stacks alike.

Three tiers, so a refusal can say who may allow it:
- **harmless** for anyone who may create containers: init, tmpfs, shm_size, ulimits, extra_hosts,
  dns*, expose, logging, stop_signal, cap_drop, adding back one of Docker's default
  capabilities, ipc private/shareable, a `container:NAME` network or IPC of the same project;
- **team setting** (a team admin allows it in the team's container policy, `Team`
  `allowed_capabilities` / `allow_sysctls`): any other capability that is confined by the
  container's namespaces (NET_ADMIN, SYS_NICE, IPC_LOCK, …), none allowed until a team admin
  adds it; and namespaced sysctls (the runtime refuses any other), allowed until a team admin
  turns them off;
- **platform administrators only**, whatever the team says: privileged, the capabilities that
  reach past the container's namespaces (SYS_ADMIN, SYS_MODULE, SYS_PTRACE, SYS_RAWIO, ALL, …),
  devices, the host's PID, IPC or network namespace, security_opt that turns seccomp, AppArmor,
  masked paths or no-new-privileges off, and bind mounts of host paths outside the team's
  allow-list (`Team.host_paths`, which only a platform administrator sets).

The check runs when a person acts: creating a container, creating, changing, deploying or
rolling back a stack. The panel's own work (an automatic rollback, a reconcile, a redeploy
after a host failed) carries no person and is not checked again, so a later policy change never
strands a running application; the next deploy by a person is checked against the policy then.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

# Docker's default set: adding one back (after a cap_drop of ALL, say) grants nothing new.
DEFAULT_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"})
# Capabilities that act on the host itself, beyond the container's namespaces.
HOST_CAPABILITIES = frozenset({
    "ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "SYS_BOOT", "SYS_TIME",
    "MAC_ADMIN", "MAC_OVERRIDE", "DAC_READ_SEARCH", "BPF", "PERFMON", "SYSLOG", "AUDIT_CONTROL",
    "AUDIT_READ", "SYS_PACCT", "LINUX_IMMUTABLE", "WAKE_ALARM", "BLOCK_SUSPEND",
    "CHECKPOINT_RESTORE"})
# security_opt entries that switch a protection off (others are no-ops or tighten).
_UNSAFE_SECURITY = ("seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined",
                    "no-new-privileges=false", "no-new-privileges:false", "label=disable",
                    "label:disable")
PLATFORM = "needs a platform administrator"


def _team_help(team_name: str) -> str:
    return (f"is not allowed for team {team_name}: a team admin can allow it in the team's "
            "container policy")


def _capability(name: str) -> str:
    return name.upper().removeprefix("CAP_")


def _bind_sources(volumes: Iterable[str]) -> list[str]:
    return [entry.split(":", 1)[0] for entry in volumes
            if isinstance(entry, str) and entry.startswith("/")]


def _under(path: str, roots: Iterable[str]) -> bool:
    path = posixpath.normpath(path)
    for root in roots:
        root = posixpath.normpath(root)
        if root == "/" or path == root or path.startswith(root.rstrip("/") + "/"):
            return True
    return False


def privilege_problems(fields: Mapping[str, Any], *, platform_admin: bool,
                       team: Any | None) -> dict[str, list[str]]:
    """What of container `fields` (spec field names) the person may not use, per field, each
    message naming the value and who can allow it; empty when everything is allowed.
    `team` is the Team owning the project (None: a platform-only object)."""
    if platform_admin:
        return {}
    problems: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    team_name = team.name if team is not None else "(none)"
    team_caps = {_capability(c) for c in (team.allowed_capabilities if team else [])}
    if fields.get("privileged"):
        refuse("privileged", f"privileged: true {PLATFORM}: it gives the container every "
                             "capability and every host device")
    for cap in fields.get("cap_add") or []:
        name = _capability(cap)
        if name in HOST_CAPABILITIES:
            refuse("cap_add", f"cap_add {name} {PLATFORM}: it reaches past the container's "
                              "namespaces to the host")
        elif name not in DEFAULT_CAPABILITIES and name not in team_caps:
            refuse("cap_add", f"cap_add {name} {_team_help(team_name)}")
    if fields.get("devices"):
        refuse("devices", f"devices {PLATFORM}: a host device gives direct access to hardware")
    for field in ("pid", "ipc", "network_mode"):
        if fields.get(field) == "host":
            refuse(field, f"{field}: host {PLATFORM}: it shares the host's namespace")
    for option in fields.get("security_opt") or []:
        if str(option).replace(" ", "").lower() in _UNSAFE_SECURITY:
            refuse("security_opt", f"security_opt {option} {PLATFORM}: it turns a protection "
                                   "off")
    if fields.get("sysctls") and not (team is not None and team.allow_sysctls):
        refuse("sysctls", f"sysctls {_team_help(team_name)}")
    allowed_paths = list(team.host_paths) if team is not None else []
    for source in _bind_sources(fields.get("volumes") or []):
        if not _under(source, allowed_paths):
            where = (f"team {team_name} may bind only under {', '.join(allowed_paths)}"
                     if allowed_paths else f"team {team_name} has no allowed host paths")
            refuse("volumes", f"the bind mount of host path {source} {PLATFORM} ({where}; a "
                              "platform administrator sets them)")
    return problems


def actor_is_platform_admin(actor: Any) -> bool:
    """Whether the person behind `actor` is a platform administrator (False for the panel's
    own actors, which carry no person)."""
    if getattr(actor, "user_id", None) is None:
        return False
    from django.contrib.auth import get_user_model

    from panel.access.policy import is_platform_admin

    return is_platform_admin(get_user_model().objects.filter(pk=actor.user_id).first())


def check_privileges(actor: Any, project: Any | None, fields: Mapping[str, Any]) -> \
        dict[str, list[str]]:
    """`privilege_problems` for the person behind `actor` creating `fields` in `project`;
    nothing for the panel's own work (module docstring)."""
    if getattr(actor, "user_id", None) is None:
        return {}
    return privilege_problems(fields, platform_admin=actor_is_platform_admin(actor),
                              team=project.team if project is not None else None)
