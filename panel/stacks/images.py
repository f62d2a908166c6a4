"""Image updates: does a stack's image tag point at a newer manifest in its registry?

The check asks the registry for the manifest digest of each image a stack pulls (a HEAD of
`/v2/<name>/manifests/<tag>` through the runtime's registry client) and compares it with the
digest the last deploy pinned, or else with the digest first seen after the deploy (the stack's
baseline). Images on Docker Hub (`busybox`, `docker.io/library/redis`) are checked only when
BERTH_STACK_CHECK_DOCKER_HUB is set: the panel must not contact the internet unasked. Images
with `pull_policy: never` are never checked: they come from the hosts' own stores. A registry on
a loopback address may answer plain HTTP, as the agents allow when they pull.

A registry that cannot be asked (down, 401, 403, 404, …) gives a problem per image, saying why,
instead of a digest; an update found before stays shown through such an outage.

A deploy with `pull` pins the digests it finds and rolls the services whose digest changed
(their replicas are created from `image@digest`)."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from panel.audit.services import Actor
from panel.stacks.models import Revision, Stack
from runtime.errors import BerthError
from runtime.images.auth import DOCKER_HUB, normalise_registry
from runtime.images.reference import parse_reference
from runtime.images.registry import INDEX_TYPES, MANIFEST_TYPES, RegistryClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lookup:
    """What a registry said of one image: the digest its tag points at now, or why it could
    not tell (`problem`); both empty when the image is not checked at all."""

    digest: str = ""
    problem: str = ""


@dataclass
class ImageCheck:
    """The outcome of checking one stack: {image: newer digest} and {image: why it could not
    be checked}."""

    updates: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def _insecure(registry: str) -> bool:
    """Plain HTTP is allowed for a registry on a loopback address (as the agents allow it)."""
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    host = host.removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refusal(registry: str, what: str, status: int) -> str:
    if status == 401:
        return (f"registry {registry} wants a login to read {what} (HTTP 401); the panel "
                "checks images anonymously, so it cannot see updates of this image")
    if status == 403:
        return f"registry {registry} refused to let the panel read {what} (HTTP 403)"
    if status == 404:
        return (f"{what} is not in registry {registry} (HTTP 404): the repository or tag was "
                "removed or renamed")
    return f"registry {registry} answered HTTP {status} when asked for {what}"


def look_up(image: str) -> Lookup:
    """The digest `image`'s tag points at now in its registry, or why that is not known."""
    try:
        reference = parse_reference(image)
    except BerthError as exc:
        return Lookup(problem=str(exc))
    if reference.digest:
        return Lookup(digest=reference.digest)
    registry = normalise_registry(reference.registry)
    if registry == DOCKER_HUB and not getattr(settings, "BERTH_STACK_CHECK_DOCKER_HUB", False):
        return Lookup()
    path, tag = reference.remote_path, reference.tag or "latest"
    what, scope = f"{reference.repository}:{tag}", f"repository:{path}:pull"
    try:
        with RegistryClient(registry, insecure=_insecure(registry)) as client:
            response = client.request(
                "HEAD", f"/v2/{path}/manifests/{tag}", scope=scope,
                headers={"Accept": ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))})
            response.close()
            if response.status_code != 200:
                return Lookup(problem=_refusal(registry, what, response.status_code))
            digest = response.headers.get("Docker-Content-Digest", "")
            if not digest.startswith("sha256:"):
                # a registry that leaves the header out: the digest of the manifest itself
                digest = client.get_manifest(path, tag, scope, f"check {what}")[2]
            return Lookup(digest=digest)
    except (BerthError, OSError) as exc:
        return Lookup(problem=f"checking {what}: {exc}")


def _pulled_images(spec: dict[str, Any]) -> set[str]:
    return {s["container"]["image"] for s in spec.get("services", {}).values()
            if s["container"]["pull"] and "@" not in s["container"]["image"]}


def pin_digests(revision: Revision) -> dict[str, str]:
    """Before a `pull` deploy: pin the digests the images point at now. Returns {image: why
    it could not be looked up}; such an image keeps the digest pinned before, if any."""
    from panel.stacks.services import pin_image_digests

    digests, problems = {}, {}
    for image in sorted(_pulled_images(revision.spec)):
        found = look_up(image)
        if found.digest:
            digests[image] = found.digest
        elif found.problem:
            problems[image] = found.problem
            log.warning("stack %s revision %s: %s keeps its image as it was: %s",
                        revision.stack.name, revision.number, image, found.problem)
    pin_image_digests(revision, digests)
    return problems


def _deploying(stack: Stack) -> bool:
    return stack.revisions.filter(status__in=Revision.ACTIVE).exists()


def check_stack(actor: Actor, stack: Stack,
                lookups: dict[str, Lookup] | None = None) -> ImageCheck | None:
    """Compare each pulled image of the current revision with its registry; records the
    newer digests found and returns them with the problems met. None (nothing recorded) while
    a revision of the stack is being deployed: the deploy decides what runs. `lookups`
    caches registry answers across the stacks of one periodic run."""
    from panel.stacks.services import record_image_updates

    stack = Stack.objects.select_related("current_revision").get(pk=stack.pk)
    revision = stack.current_revision
    if revision is None or _deploying(stack):
        return None
    lookups = {} if lookups is None else lookups
    known = dict(stack.image_updates or {})
    seen_first = dict(stack.image_baseline or {})
    check, baseline = ImageCheck(), {}
    for image in sorted(_pulled_images(revision.spec)):
        if image not in lookups:
            lookups[image] = look_up(image)
        found = lookups[image]
        pinned = revision.image_digests.get(image)
        if not pinned:
            # unpinned: the digest seen first after the deploy is taken as what runs
            pinned = seen_first.get(image) or found.digest
            if pinned:
                baseline[image] = pinned
        if found.problem:
            check.problems[image] = found.problem
            if image in known:  # an outage of the registry does not hide an update found
                check.updates[image] = known[image]
        elif found.digest and found.digest != pinned:
            check.updates[image] = found.digest
    stack.refresh_from_db(fields=["current_revision"])
    if stack.current_revision_id != revision.pk or _deploying(stack):
        return None  # a deploy started or ended meanwhile: its outcome decides
    if not record_image_updates(actor, stack, check.updates, baseline, check.problems,
                                revision.pk):
        return None
    return check
