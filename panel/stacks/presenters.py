"""What the API and the pages show of stacks: plain dicts built from the models (read only)."""

from __future__ import annotations

import difflib
from typing import Any

from panel.stacks.compose import StackSpec, export_compose
from panel.stacks.models import Replica, Revision, Stack

_NO_VALUE = object()


def revision_data(revision: Revision, full: bool = False) -> dict[str, Any]:
    data = {"number": revision.number, "status": revision.status,
            "actor": revision.actor_name, "message": revision.message,
            "reason": revision.reason, "rollback_of": revision.rollback_of,
            "created_at": revision.created_at, "finished_at": revision.finished_at,
            "operation": str(revision.operation_id) if revision.operation_id else None,
            "services": sorted((revision.spec or {}).get("services", {}))}
    if full:
        data.update(spec=revision.spec, compose=revision.compose,
                    environment=revision.environment, image_digests=revision.image_digests,
                    result=revision.result)
    return data


def endpoints(container: Any, host_address: str = "") -> list[str]:
    """Published URLs of a replica: http://HOST:PORT for each published TCP port."""
    urls = []
    host = host_address or (container.host.inventory.get("address") if container.host_id
                            and container.host and container.host.inventory else "") \
        or (container.host.name if container.host and container.host else "")
    for key, bindings in (container.published_ports or {}).items():
        if not str(key).endswith("/tcp"):
            continue
        for binding in bindings or []:
            ip = binding.get("HostIp") or "0.0.0.0"
            address = host if ip in ("0.0.0.0", "") else ip
            urls.append(f"http://{address}:{binding.get('HostPort')}/")
    return sorted(set(urls))


def services_data(stack: Stack) -> list[dict[str, Any]]:
    """Per service: desired replicas, each replica (host, status, health), per-host counts,
    endpoints."""
    spec = (stack.current_revision.spec if stack.current_revision else None) or {}
    desired = {name: s["replicas"] for name, s in spec.get("services", {}).items()}
    images = {name: s["container"]["image"] for name, s in spec.get("services", {}).items()}
    replicas: dict[str, list[Replica]] = {}
    for replica in Replica.objects.filter(stack=stack).select_related("container__host"):
        replicas.setdefault(replica.service, []).append(replica)
    out = []
    for name in sorted(set(desired) | set(replicas)):
        rows: list[dict[str, Any]] = []
        per_host: dict[str, int] = {}
        urls: set[str] = set()
        for replica in replicas.get(name, []):
            container = replica.container
            host = container.host.name if container.host else None
            rows.append({"slot": replica.slot, "container": container.name,
                         "container_id": container.pk, "host": host,
                         "status": container.status or "pending", "health": container.health,
                         "revision": replica.revision})
            if host:
                per_host[host] = per_host.get(host, 0) + 1
            urls.update(endpoints(container))
        healthy = sum(1 for r in rows if r["status"] == "running"
                      and r["health"] in ("", "healthy"))
        out.append({"name": name, "image": images.get(name, ""),
                    "replicas": desired.get(name, 0), "ready": healthy,
                    "update_available": images.get(name) in (stack.image_updates or {}),
                    "per_host": per_host, "endpoints": sorted(urls), "containers": rows})
    return out


def stack_data(stack: Stack, detail: bool = False) -> dict[str, Any]:
    current = stack.current_revision
    latest = stack.revisions.order_by("-number").first()
    data = {"id": stack.pk, "name": stack.name,
            "project": stack.project.name if stack.project else None,
            "environment": stack.environment, "secrets": sorted(stack.secret_names),
            "scale": stack.scale,
            "current_revision": current.number if current else None,
            "latest_revision": revision_data(latest) if latest else None,
            "update_available": bool(stack.image_updates),
            "image_updates": stack.image_updates,
            "image_check_problems": stack.image_check_problems,
            "images_checked_at": stack.images_checked_at,
            "created_by": stack.created_by, "created_at": stack.created_at,
            "updated_at": stack.updated_at}
    if detail:
        data["compose"] = stack.compose
        data["files"] = stack.files
        data["secret_files"] = sorted(stack.secret_file_names)  # contents are never shown
        data["services"] = services_data(stack)
        # what the last create or update of the file warned about (Compose warns alike)
        data["warnings"] = getattr(stack, "compose_warnings", [])
    return data


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), out)
    else:
        out[path] = value


def diff_revisions(old: Revision, new: Revision) -> dict[str, Any]:
    """What changed from `old` to `new`: each changed spec path with both values, the
    services changed, added and removed, and a unified diff of the exported compose files."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _flatten(old.spec, "", before)
    _flatten(new.spec, "", after)
    changes = [{"path": path, "from": before.get(path), "to": after.get(path)}
               for path in sorted(set(before) | set(after))
               if before.get(path, _NO_VALUE) != after.get(path, _NO_VALUE)]
    old_services = old.spec.get("services", {})
    new_services = new.spec.get("services", {})
    text = difflib.unified_diff(
        export_compose(StackSpec.from_dict(old.spec)).splitlines(keepends=True),
        export_compose(StackSpec.from_dict(new.spec)).splitlines(keepends=True),
        fromfile=f"revision {old.number}", tofile=f"revision {new.number}")
    return {
        "from": old.number, "to": new.number, "changes": changes,
        "services": {
            "added": sorted(set(new_services) - set(old_services)),
            "removed": sorted(set(old_services) - set(new_services)),
            "changed": sorted(n for n in set(old_services) & set(new_services)
                              if old_services[n] != new_services[n])},
        "compose_diff": "".join(text),
    }
