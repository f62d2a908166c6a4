"""A stack deployed before the one-container-spec change is not rolled by the next deploy: its
replicas carry the hashes today's code (c175823, hash_fixtures/) made, and deploying it again
creates and removes no container. Real control worker, agent and runc containers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from panel.stacks.models import Replica, Revision, Stack
from panel.workloads.models import Container
from tests.panel.stacks.stack_harness import wait_revision

pytestmark = [pytest.mark.root, pytest.mark.django_db(transaction=True)]

FIXTURE = json.loads((Path(__file__).parent / "hash_fixtures" / "resolved_at_c175823.json")
                     .read_text())
CASE = next(case for case in FIXTURE["cases"] if case["file"] == "legacy_deploy")


def _old_replica_hash(service: str, revision: Revision) -> str:
    """resolve.replica_hash as c175823 computed it, from that code's container spec hash."""
    used: dict[str, str] = {}  # the case uses no secrets (the worker has its own key)
    image = CASE["spec"]["services"][service]["container"]["image"]
    text = json.dumps([CASE["services"][service]["container_spec_hash"], used,
                       revision.image_digests.get(image, "")], sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _containers(stack: Stack) -> dict[int, tuple[str, int]]:
    return {r.container_id: (r.container.name, r.container.generation)
            for r in Replica.objects.filter(stack=stack).select_related("container")}


def test_a_stack_deployed_by_the_old_code_is_not_rolled_by_the_next_deploy(host, api):
    created = api.post("/api/v1/stacks/", {
        "name": CASE["stack"], "compose": CASE["compose"],
        "environment": CASE["environment"]}, format="json")
    assert created.status_code == 201, created.content
    stack = Stack.objects.get(name=CASE["stack"])
    first = wait_revision(stack.pk, 1, plane=host)
    assert first.status == Revision.SUCCEEDED, first.reason
    replicas = list(Replica.objects.filter(stack=stack))
    assert sorted(r.service for r in replicas) == ["web", "web", "worker"]
    for replica in replicas:
        assert replica.spec_hash == _old_replica_hash(replica.service, first), replica.service
    web = Replica.objects.filter(stack=stack, service="web").first().container
    assert (web.options["user"], web.options["read_only"], web.options["hostname"]) == \
        ("1000:1000", True, "legacy-web")

    # exactly what the old code stored as the revision's spec
    Revision.objects.filter(pk=first.pk).update(spec=CASE["spec"])
    before = _containers(stack)
    deployed = api.post(f"/api/v1/stacks/{stack.pk}/deploy", {}, format="json")
    assert deployed.status_code in (200, 202), deployed.content
    second = wait_revision(stack.pk, 2, plane=host)
    assert second.status == Revision.SUCCEEDED, second.reason
    assert _containers(stack) == before
    assert Container.objects.filter(name__startswith=f"{CASE['stack']}-").count() == len(before)
    diff = api.get(f"/api/v1/stacks/{stack.pk}/revisions/1/diff?to=2").json()
    assert diff["changes"] == [] and diff["services"]["changed"] == []

    assert api.delete(f"/api/v1/stacks/{stack.pk}/?volumes=1").status_code == 202
