"""Image updates: does a stack's image tag point at a newer manifest in its registry?

The check asks the registry for the manifest digest of each image a stack pulls (a HEAD of
`/v2/<name>/manifests/<tag>` through the runtime's registry client) and compares it with the
digest the last deploy pinned. Images without an explicit registry host (Docker Hub names such
as `busybox`) are checked only when BERTH_STACK_CHECK_DOCKER_HUB is set: the panel must not
contact the internet unasked. A deploy with `pull` pins the digests it finds and rolls the
services whose digest changed (their replicas are created from `image@digest`)."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from django.conf import settings

from panel.audit.services import Actor
from panel.stacks.models import Revision, Stack
from runtime.errors import BerthError
from runtime.images.reference import parse_reference
from runtime.images.registry import INDEX_TYPES, MANIFEST_TYPES, RegistryClient

log = logging.getLogger(__name__)


def _insecure(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def registry_digest(image: str) -> str | None:
    """The digest `image`'s tag points at now, or None (not checked, or not reachable)."""
    reference = parse_reference(image)
    explicit = "/" in image and ("." in image.split("/")[0] or ":" in image.split("/")[0]
                                 or image.split("/")[0] == "localhost")
    if not explicit and not getattr(settings, "BERTH_STACK_CHECK_DOCKER_HUB", False):
        return None
    if reference.digest:
        return reference.digest
    try:
        with RegistryClient(reference.registry, insecure=_insecure(reference.registry)) \
                as client:
            path = reference.remote_path
            response = client.request(
                "HEAD", f"/v2/{path}/manifests/{reference.tag}", scope=f"repository:{path}:pull",
                headers={"Accept": ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))})
            digest = response.headers.get("Docker-Content-Digest")
            response.close()
            if response.status_code != 200 or not digest:
                return None
            return str(digest)
    except (BerthError, OSError) as exc:
        log.info("image check of %s: %s", image, exc)
        return None


def _pulled_images(spec: dict[str, Any]) -> set[str]:
    return {s["container"]["image"] for s in spec.get("services", {}).values()
            if s["container"]["pull"] and "@" not in s["container"]["image"]}


def pin_digests(revision: Revision) -> None:
    """Before a `pull` deploy: the digests the images point at now."""
    from panel.stacks.services import pin_image_digests

    digests = {}
    for image in sorted(_pulled_images(revision.spec)):
        digest = registry_digest(image)
        if digest:
            digests[image] = digest
    pin_image_digests(revision, digests)


def check_stack(actor: Actor, stack: Stack) -> dict[str, str]:
    """Compare each pulled image of the current revision with its registry; records and
    returns {image: newer digest}."""
    from panel.stacks.services import record_image_updates

    revision = stack.current_revision
    if revision is None:
        return {}
    updates: dict[str, str] = {}
    baseline = dict(stack.image_baseline or {})
    for image in sorted(_pulled_images(revision.spec)):
        digest = registry_digest(image)
        pinned = revision.image_digests.get(image) or baseline.get(image)
        if digest and pinned is None:
            baseline[image] = pinned = digest
        if digest and pinned and digest != pinned:
            updates[image] = digest
    record_image_updates(actor, stack, updates, baseline)
    return updates
