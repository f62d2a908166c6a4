"""Dashboard pages with Django's test client: rendering, the create form's field errors, the
policy (viewers, other teams), bulk actions through the services, constant query counts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from panel.audit.services import Actor
from panel.workloads import services as workloads
from panel.workloads.models import Container
from tests.panel.fixtures import two_teams

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(django_user_model: Any, make_host: Any, broker: Any) -> dict[str, Any]:
    system = Actor.system("tests")
    teams = two_teams(django_user_model, platform=True)
    users, alpha = teams.users, teams.alpha
    make_host("h1")
    container, _ = workloads.create_container(
        system, {"name": "web", "image": "busybox", "env": {"DB_PASSWORD": "hunter2", "A": "b"},
                 "labels": {"com.docker.compose.project": "shop"}}, alpha)
    return {"users": users, "container": container, "alpha": alpha}


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_every_page_renders_for_a_platform_admin(world):
    client = _client(world["users"]["platform"])
    pk = world["container"].pk
    for url in ("/", "/hosts/", "/hosts/h1/", "/containers/", f"/containers/{pk}/",
                "/containers/new/", "/images/", "/volumes/", "/networks/", "/operations/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b'id="main"' in response.content


def test_anonymous_is_sent_to_the_sign_in_page(world):
    response = Client().get("/containers/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_container_page_masks_secret_looking_env_and_groups_by_stack(world):
    client = _client(world["users"]["operator"])
    page = client.get(f"/containers/{world['container'].pk}/").content.decode()
    assert "hunter2" not in page and "DB_PASSWORD=••••••" in page and "A=b" in page
    listing = client.get("/containers/").content.decode()
    assert "Stack shop" in listing


def test_container_page_says_why_the_last_stop_ended_in_sigkill(world):
    container = world["container"]
    container.stop_note = ("stopped with SIGKILL after 10s: it did not exit on SIGTERM: the "
                           "process is PID 1 and has no SIGTERM handler, so the kernel dropped "
                           "the signal; set init: true or handle SIGTERM")
    container.save(update_fields=["stop_note"])
    client = _client(world["users"]["viewer"])
    page = client.get(f"/containers/{container.pk}/").content.decode()
    assert "set init: true or handle SIGTERM" in page
    assert '<div data-row="stop_note" >' in page  # shown (live updates hide it on a new start)
    container.stop_note = ""
    container.save(update_fields=["stop_note"])
    page = client.get(f"/containers/{container.pk}/").content.decode()
    assert '<div data-row="stop_note" hidden>' in page  # there for a live update to fill


def test_viewer_sees_status_but_no_log_viewer_and_no_actions(world):
    client = _client(world["users"]["viewer"])
    page = client.get(f"/containers/{world['container'].pk}/").content.decode()
    assert 'id="log-view"' not in page and "may not read this container" in page
    assert 'id="act-stop"' not in page
    response = client.post(f"/containers/{world['container'].pk}/stop/")
    assert response.status_code == 403
    assert client.get(f"/containers/{world['container'].pk}/logs/download/").status_code == 403


def test_other_team_gets_404_for_the_container(world):
    client = _client(world["users"]["other"])
    assert client.get(f"/containers/{world['container'].pk}/").status_code == 404
    assert "web" not in client.get("/containers/").content.decode().split("<table")[1]


def test_create_form_shows_each_error_beside_its_field_and_writes_nothing(world):
    client = _client(world["users"]["operator"])
    before = Container.objects.count()
    response = client.post("/containers/new/", {
        "image": "nosuch:1", "ports": "99999", "memory": "1k", "restart": "no",
        "project": str(world["alpha"].pk), "env": "NOEQUALS"})
    assert response.status_code == 400
    page = response.content.decode()
    for field in ("id_ports-errors", "id_env-errors", "id_memory-errors"):
        assert field in page, field
    assert Container.objects.count() == before
    response = client.post("/containers/new/", {
        "image": "nosuch:2", "ports": "99999", "memory": "1k", "restart": "no",
        "project": str(world["alpha"].pk)})
    page = response.content.decode()
    assert "id_ports-errors" in page and "id_image-errors" in page


def test_create_form_creates_and_bulk_stop_goes_through_the_services(world):
    client = _client(world["users"]["operator"])
    response = client.post("/containers/new/", {
        "image": "busybox", "name": "api", "command": "sleep 600", "restart": "always",
        "project": str(world["alpha"].pk), "start": "on", "health_cmd": "true"})
    assert response.status_code == 302
    api = Container.objects.get(name="api")
    assert api.command == ["sleep", "600"] and api.healthcheck["test"] == ["CMD-SHELL", "true"]
    response = client.post("/containers/bulk/", {"action": "stop",
                                                  "ids": [api.pk, world["container"].pk]})
    assert response.status_code == 302
    assert set(Container.objects.values_list("desired_state", flat=True)) == {"stopped"}


def test_the_init_checkbox_of_the_create_form_reaches_the_spec(world):
    client = _client(world["users"]["operator"])
    page = client.get("/containers/new/").content.decode()
    assert 'type="checkbox" name="init"' in page
    for name, init in (("with-init", {"init": "on"}), ("without-init", {})):
        response = client.post("/containers/new/", {
            "image": "busybox", "name": name, "command": "sleep 600", "restart": "no",
            "project": str(world["alpha"].pk), **init})
        assert response.status_code == 302
    from panel.workloads.services import container_spec

    # what the agent is sent: init runs as PID 1 and forwards SIGTERM to the command
    assert container_spec(Container.objects.get(name="with-init"))["init"] is True
    assert container_spec(Container.objects.get(name="without-init"))["init"] is False


def test_containers_page_query_count_does_not_grow_with_containers(world):
    client = _client(world["users"]["operator"])
    client.get("/containers/")

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/containers/?per_page=500").status_code == 200
        return len(queries)

    few = count()
    system = Actor.system("tests")
    for i in range(30):
        workloads.create_container(system, {"name": f"c{i}", "image": "busybox"},
                                   world["alpha"])
    assert count() == few


def test_create_form_sets_spec_fields_from_its_advanced_section(world):
    client = _client(world["users"]["operator"])
    assert b"id_cap_add" in client.get("/containers/new/").content
    response = client.post("/containers/new/", {
        "image": "busybox", "name": "tuned", "restart": "no", "project": str(world["alpha"].pk),
        "user": "1000", "read_only": "on", "hostname": "my_db", "stop_signal": "QUIT",
        "dns": "192.0.2.53\n192.0.2.54", "sysctls": "net.core.somaxconn=1024",
        "shm_size": "64m", "stop_timeout": "5"})
    assert response.status_code == 302, re.findall(r'role="alert"><li>(.*?)</li>',
                                                   response.content.decode())
    options = Container.objects.get(name="tuned").options
    assert options == {"user": "1000", "read_only": True, "hostname": "my_db",
                       "stop_signal": "SIGQUIT", "dns": ["192.0.2.53", "192.0.2.54"],
                       "sysctls": {"net.core.somaxconn": "1024"}, "shm_size": 64 * 1024**2,
                       "stop_timeout": 5}
    response = client.post("/containers/new/", {
        "image": "busybox", "restart": "no", "project": str(world["alpha"].pk),
        "pid": "nope", "stop_timeout": "soon", "cap_add": "NET_ADMIN"})
    assert response.status_code == 400
    page = response.content.decode()
    for field in ("id_pid-errors", "id_stop_timeout-errors", "id_cap_add-errors"):
        assert field in page, field
    assert "a team admin can allow it" in page


def test_operation_state_reports_what_the_page_may_have_missed_and_only_to_its_team(world):
    from panel.workloads.models import Operation
    from panel.workloads.reports import record_operation_progress

    operation = Operation.objects.filter(target_id=str(world["container"].pk)).first()
    assert operation is not None
    page = _client(world["users"]["viewer"]).get(f"/operations/{operation.pk}/").content.decode()
    state_url = f"/operations/{operation.pk}/state/"
    assert f'data-state-url="{state_url}"' in page  # read by live.js once its socket is open
    # finished after the page was rendered, before its socket subscribed: nobody pushed it
    record_operation_progress(Actor.system("tests"), str(operation.pk), Operation.SUCCEEDED,
                              100, "created")
    state = _client(world["users"]["viewer"]).get(state_url).json()
    assert (state["id"], state["status"], state["progress"]) == (str(operation.pk),
                                                                  "succeeded", 1.0)
    assert _client(world["users"]["other"]).get(state_url).status_code == 404
    assert Client().get(state_url).status_code == 302
