"""The stack's "update available" for real: Debian's `docker-registry` on loopback
(tests/integration/registry_server.py), the control worker running the periodic image check and
the deploy engine, and one agent pulling from that registry into runc containers.

A tag that moves to a new manifest shows as an update (API and page) and the page's one-click
redeploy rolls the replicas onto the new digest; registries that are down, want a login or lack
the image leave a reason and no false update; images a host holds without a registry never show
one."""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from panel.stacks.models import Replica, Revision, Stack
from runtime.host import Host
from runtime.images import registry as registry_client
from runtime.images.archive import export_archive, import_archive
from runtime.images.bootstrap import DEFAULT_PATH, bootstrap_busybox
from runtime.images.builder import image_from_layers, tar_directory
from runtime.images.store import Image, ImageStore
from tests.integration.registry_server import RegistryServer, serving, serving_token_issuer
from tests.panel.stacks.stack_harness import deploy_through_api, wait_for, wait_revision

pytestmark = [pytest.mark.root, pytest.mark.django_db(transaction=True)]

HTTPD = ["httpd", "-f", "-p", "8080", "-h", "/www"]  # the app images' own command


AGENT_HOST = "imagehost"  # the name of the plane fixture's agent (conftest.py)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="berth-stack-images-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(workdir: Path) -> Iterator[RegistryServer]:
    """An anonymous registry on loopback, plain HTTP."""
    with serving(workdir / "open") as server:
        yield server


@pytest.fixture(scope="module")
def private_registry(workdir: Path) -> Iterator[RegistryServer]:
    """A registry behind token auth that gives anonymous callers nothing (pulls answer 401)."""
    with serving_token_issuer(workdir / "issuer", {"alice": "correct horse"}) as issuer, \
            serving(workdir / "private", ("token", issuer)) as server:
        yield server


@pytest.fixture(scope="module")
def source(workdir: Path) -> ImageStore:
    """The image store images are built in and pushed from (a developer's machine)."""
    store = ImageStore(workdir / "source")
    bootstrap_busybox(store)
    return store


@pytest.fixture
def browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _app_image(store: ImageStore, version: str, tag: str) -> Image:
    """busybox plus a layer with /www/index.html saying `version`, serving it on 8080."""
    base = store.get("busybox:latest")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "www").mkdir()
        (Path(tmp) / "www" / "index.html").write_text(f"{version}\n")
        layer = tar_directory(Path(tmp))
    return image_from_layers(store, [store.read_blob(base.layers[0].digest), layer],
                             {"Env": [DEFAULT_PATH], "Cmd": HTTPD}, tags=[tag])


def _push(store: ImageStore, version: str, ref: str) -> Image:
    image = _app_image(store, version, ref)
    assert registry_client.push(store, ref, insecure=True) == image.manifest_digest
    return image


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode().strip()
    except OSError:
        return ""


def _check_in_worker(stack: Stack) -> Stack:
    """Run the periodic task in the control worker, as beat does; the stack once checked."""
    from panel.celery import app
    from runtime.protocol import control_task

    before = Stack.objects.get(pk=stack.pk).images_checked_at
    app.send_task(control_task("stack_check_images"), queue="control")
    wait_for(lambda: Stack.objects.get(pk=stack.pk).images_checked_at != before, 60,
             "the image check running")
    return Stack.objects.get(pk=stack.pk)


def _page(browser: Client, stack: Stack) -> str:
    page = browser.get(f"/stacks/{stack.pk}/")
    assert page.status_code == 200
    return page.content.decode()


def _running_replicas(stack: Stack) -> list[Replica]:
    return [r for r in Replica.objects.filter(stack=stack).select_related("container")
            if r.container.status == "running"]


def test_a_moved_tag_shows_an_update_and_the_one_click_redeploy_rolls_onto_its_digest(
        host, registry, source, api, browser):
    ref = f"{registry.address}/app:1"
    first = _push(source, "v1", ref)
    port = _free_port()
    # the default update_config (stop-first, one at a time): what most stacks roll with
    stack = deploy_through_api(api, host, "fresh", f"""
services:
  web:
    image: {ref}
    ports: ["{port}:8080"]
    deploy: {{replicas: 2}}
""")
    wait_for(lambda: _get(f"http://127.0.0.1:{port}/") == "v1", 30, "v1 answering")

    stack = _check_in_worker(stack)
    shown = api.get(f"/api/v1/stacks/{stack.pk}/").json()
    assert shown["update_available"] is False and shown["image_updates"] == {}
    assert stack.image_baseline == {ref: first.manifest_digest}
    assert "update available" not in _page(browser, stack)

    second = _push(source, "v2", ref)
    assert second.manifest_digest != first.manifest_digest
    stack = _check_in_worker(stack)
    shown = api.get(f"/api/v1/stacks/{stack.pk}/").json()
    assert shown["update_available"] is True
    assert shown["image_updates"] == {ref: second.manifest_digest}
    assert [s["update_available"] for s in shown["services"]] == [True]
    html = _page(browser, stack)
    assert "update available" in html and "Pull and redeploy" in html
    button = re.search(r'action="(/stacks/\d+/update/)"', html)
    assert button is not None and button.group(1) == f"/stacks/{stack.pk}/update/"

    # The registry going away keeps the update it had found and says why it could not look.
    from panel.audit.services import Actor
    from panel.stacks.images import check_stack

    # A redeploy meanwhile pulls nothing, says why, and leaves the update pending.
    registry.stop()
    try:
        outage = check_stack(Actor.system("image-check"), stack)
        assert browser.post(button.group(1)).status_code == 302
        blind = wait_revision(stack.pk, 2, plane=host)
    finally:
        registry.start()
    assert outage is not None and outage.updates == {ref: second.manifest_digest}
    assert f"cannot reach registry {registry.address}" in outage.problems[ref]
    assert blind.status == Revision.SUCCEEDED and blind.image_digests == {}
    assert f"cannot reach registry {registry.address}" in blind.result["image_problems"][ref]
    assert api.get(f"/api/v1/stacks/{stack.pk}/").json()["update_available"] is True

    clicked = browser.post(button.group(1))
    assert clicked.status_code == 302
    revision = wait_revision(stack.pk, 3, plane=host)
    assert revision.status == Revision.SUCCEEDED, revision.reason
    assert revision.result["pull"] is True
    assert revision.image_digests == {ref: second.manifest_digest}

    pinned = f"{ref}@{second.manifest_digest}"
    wait_for(lambda: len(_running_replicas(stack)) == 2
             and Replica.objects.filter(stack=stack).count() == 2, 30, "the old replicas going")
    replicas = _running_replicas(stack)
    assert {r.container.image for r in replicas} == {pinned}
    runtime = Host(host.agent.state_dir).containers
    assert {runtime.get(r.container.name).image_id for r in replicas} == {second.id}
    answers = {_get(f"http://127.0.0.1:{port}/") for _ in range(10)}
    assert answers == {"v2"}

    stack.refresh_from_db()
    assert stack.image_updates == {}
    shown = api.get(f"/api/v1/stacks/{stack.pk}/").json()
    assert shown["update_available"] is False and shown["image_updates"] == {}
    stack = _check_in_worker(stack)
    assert stack.image_updates == {}
    assert "update available" not in _page(browser, stack)
    assert api.delete(f"/api/v1/stacks/{stack.pk}/").status_code == 202


def test_registries_that_are_down_want_a_login_or_lack_the_image_say_why_and_show_no_update(
        host, registry, private_registry, api, browser, caplog):
    closed = _free_port()  # nothing listens there
    agent_images = Host(host.agent.state_dir).images
    refs = {"down": f"127.0.0.1:{closed}/down:1", "missing": f"{registry.address}/missing:1",
            "private": f"{private_registry.address}/private:1"}
    for ref in refs.values():  # the host holds them, so the deploy needs no registry
        agent_images.tag("busybox:latest", ref)
    services = "".join(f"""
  {name}:
    image: {ref}
    command: ["sleep", "600"]
""" for name, ref in refs.items())
    stack = deploy_through_api(api, host, "shaky", f"services:{services}")

    from panel.stacks.tasks import stack_check_images

    with caplog.at_level("WARNING", logger="panel.stacks.tasks"):
        stack_check_images()  # the periodic task itself: it must not raise
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for ref in refs.values():
        assert f"stack shaky: cannot check image {ref}: " in logged

    from panel.audit.services import Actor
    from panel.stacks.images import check_stack

    found = check_stack(Actor.system("image-check"), stack)
    assert found is not None and found.updates == {}
    assert f"cannot reach registry 127.0.0.1:{closed}" in found.problems[refs["down"]]
    assert "connection refused" in found.problems[refs["down"]]
    assert found.problems[refs["missing"]].startswith(
        f"{refs['missing']} is not in registry {registry.address} (HTTP 404)")
    assert found.problems[refs["private"]].startswith(
        f"registry {private_registry.address} wants a login to read {refs['private']} "
        "(HTTP 401)")

    shown = api.get(f"/api/v1/stacks/{stack.pk}/")
    assert shown.status_code == 200
    assert shown.json()["update_available"] is False and shown.json()["image_updates"] == {}
    assert shown.json()["image_check_problems"] == found.problems  # recorded, and shown
    page = _page(browser, stack)
    assert "update available" not in page
    assert "wants a login to read" in page and "connection refused" in page
    assert browser.get("/stacks/").status_code == 200
    assert api.delete(f"/api/v1/stacks/{stack.pk}/").status_code == 202


def test_images_held_without_a_registry_never_show_an_update(host, registry, source, api,
                                                              browser, workdir):
    from panel.fleet.dispatch import send_to_host
    from panel.workloads.models import Image as ImageRow

    agent_images = Host(host.agent.state_dir).images
    # imported from an archive, as `berth-runtime image import` does
    _app_image(source, "homemade", "homemade/tool:1")
    archive = workdir / "homemade.oci.tar"
    export_archive(source, ["homemade/tool:1"], archive)
    import_archive(agent_images, archive)
    # in a registry that moves on, but the stack says the host's own copy is to be used
    never = f"{registry.address}/never:1"
    _push(source, "never-1", never)
    agent_images.tag("busybox:latest", never)
    send_to_host(host.host, "snapshot")  # placement of a never-pulled image needs it known
    wait_for(lambda: ImageRow.objects.filter(reference=never, hosts__name=host.host).exists(),
             30, "the host reporting its images")
    stack = deploy_through_api(api, host, "homemade", f"""
services:
  base:
    image: busybox
    command: ["sleep", "600"]
  tool:
    image: homemade/tool:1
    command: ["sleep", "600"]
  own:
    image: {never}
    pull_policy: never
    command: ["sleep", "600"]
""")
    _push(source, "never-2", never)

    stack = _check_in_worker(stack)
    assert stack.image_updates == {} and stack.image_baseline == {}  # nothing was asked
    from panel.audit.services import Actor
    from panel.stacks.images import check_stack

    found = check_stack(Actor.system("image-check"), stack)
    assert found is not None and found.updates == {} and found.problems == {}
    shown = api.get(f"/api/v1/stacks/{stack.pk}/").json()
    assert shown["update_available"] is False
    assert not any(s["update_available"] for s in shown["services"])
    assert "update available" not in _page(browser, stack)
    assert api.delete(f"/api/v1/stacks/{stack.pk}/").status_code == 202
