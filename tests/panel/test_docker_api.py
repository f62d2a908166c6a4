"""The Docker-compatible endpoint with Django's test client: Docker's shapes and error codes,
bad input refused naming what was wrong (4xx, never 500, nothing created)."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from rest_framework.test import APIClient

from panel.access import services as access
from panel.audit.services import Actor
from panel.dockerapi.views import _frame
from panel.workloads import services as workloads
from panel.workloads.models import Container
from tests.panel.fixtures import two_teams

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(django_user_model: Any, make_host: Any, broker: Any) -> dict[str, Any]:
    teams = two_teams(django_user_model)
    make_host("h1")
    workloads.create_container(Actor.system("tests"), {"name": "web", "image": "busybox",
                                                       "labels": {"tier": "front"}},
                               teams.alpha)
    clients = {}
    for name in ("operator", "viewer", "other"):
        _, secret = access.create_token(Actor.system("tests"), teams.users[name], "docker")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        clients[name] = client
    return {"clients": clients}


def _create(client: APIClient, body: Any, name: str = "") -> Any:
    return client.post(f"/docker/v1.41/containers/create?name={name}",
                       body if isinstance(body, str) else json.dumps(body),
                       content_type="application/json")


def test_ping_is_open_and_everything_else_wants_a_token(world):
    ping = APIClient().get("/docker/_ping")
    assert ping.status_code == 200 and ping.content == b"OK" and ping["Api-Version"] == "1.41"
    refused = APIClient().get("/docker/v1.41/containers/json")
    assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["message"]
    bad = APIClient(HTTP_AUTHORIZATION="Bearer brt_nope").get("/docker/containers/json")
    assert bad.status_code == 401 and "invalid" in bad.json()["message"]


def test_ps_lists_in_dockers_shape_with_filters_and_the_project_label(world):
    client = world["clients"]["operator"]
    rows = client.get('/docker/containers/json?all=1&filters={"label":["tier=front"]}').json()
    assert [(r["Names"], r["Labels"]["berth.project"], len(r["Id"])) for r in rows] == [
        (["/web"], "alpha", 64)]
    assert client.get('/docker/containers/json?all=1&filters={"label":["tier=back"]}').json() \
        == []
    assert world["clients"]["other"].get("/docker/containers/json?all=1").json() == []
    unknown = client.get('/docker/containers/json?filters={"volume":["x"]}')
    assert unknown.status_code == 400 and "'volume' is not supported" in unknown.json()["message"]
    assert client.get("/docker/containers/json?filters=nope").status_code == 400


def test_bad_creates_are_refused_in_dockers_shape_and_create_nothing(world):
    client = world["clients"]["operator"]
    before = Container.objects.count()
    cases = [("{not json", 400, "not JSON"),
             ({"Image": "busybox", "Tty": True, "OpenStdin": True}, 400, "run detached"),
             ({"Image": "never-pulled:9"}, 404, "No such image: never-pulled:9"),
             ({"Image": "busybox", "HostConfig": {"Memory": 1}}, 400, "memory"),
             ({"Image": "busybox", "Labels": {"berth.project": "nowhere"}}, 404,
              "No such project: nowhere")]
    for body, status, message in cases:
        answer = _create(client, body)
        assert answer.status_code == status, (body, answer.content)
        assert message in answer.json()["message"], answer.json()
    taken = _create(client, {"Image": "busybox"}, name="web")
    assert taken.status_code == 409 and '"/web" is already in use' in taken.json()["message"]
    assert Container.objects.count() == before
    missing = client.post("/docker/containers/nothing-here/start")
    assert missing.status_code == 404 and missing.json()["message"] == \
        "No such container: nothing-here"


def test_create_maps_dockers_body_onto_the_berth_spec(world):
    answer = _create(world["clients"]["operator"], {
        "Image": "busybox", "Cmd": ["sleep", "60"], "Env": ["A=1", "B"],
        "Labels": {"berth.project": "alpha", "tier": "db"}, "WorkingDir": "/srv",
        "HostConfig": {"Memory": 64 * 2**20, "NanoCpus": 500_000_000, "Init": True,
                       "RestartPolicy": {"Name": "always"},
                       "PortBindings": {"80/tcp": [{"HostPort": "8088"}]}}}, name="db")
    assert answer.status_code == 201, answer.content
    container = Container.objects.get(name="db")
    assert (container.command, container.env, container.labels, container.memory,
            container.cpus, container.init, container.restart, container.ports,
            container.desired_state) == (["sleep", "60"], {"A": "1", "B": ""}, {"tier": "db"},
                                         64 * 2**20, 0.5, True, "always", ["8088:80/tcp"],
                                         "stopped")
    shown = world["clients"]["viewer"].get(f"/docker/containers/{answer.json()['Id'][:12]}/json")
    assert shown.status_code == 200
    state = shown.json()
    assert (state["Name"], state["Config"]["WorkingDir"], state["State"]["Status"]) == (
        "/db", "/srv", "created")


def test_a_viewer_may_look_but_not_start_and_another_team_sees_nothing(world):
    viewer, other = world["clients"]["viewer"], world["clients"]["other"]
    assert viewer.get("/docker/containers/web/json").status_code == 200
    refused = viewer.post("/docker/containers/web/start")
    assert refused.status_code == 403 and "may not" in refused.json()["message"]
    assert other.get("/docker/containers/web/json").status_code == 404
    running = world["clients"]["operator"].delete("/docker/containers/web")
    assert running.status_code in (204, 409)


def test_log_frames_are_dockers_multiplexed_stream():
    frame = _frame("stderr", b"oops\n")
    assert frame[:8] == struct.pack(">BxxxL", 2, 5) and frame[8:] == b"oops\n"


def test_volumes_and_networks_in_dockers_shapes_and_their_refusals(world):
    client = world["clients"]["operator"]

    def post(path: str, body: Any) -> Any:
        return client.post(path, json.dumps(body), content_type="application/json")

    made = post("/docker/volumes/create", {"Name": "pg", "Labels": {"tier": "db"}})
    assert made.status_code == 201 and made.json()["Labels"] == {"tier": "db",
                                                                 "berth.project": "alpha"}
    again = post("/docker/volumes/create", {"Name": "pg"})  # Docker's create is idempotent
    assert again.status_code == 201 and again.json()["Name"] == "pg"
    assert post("/docker/volumes/create", {"Name": "x", "Driver": "nfs"}).status_code == 400
    unnamed = post("/docker/volumes/create", {})
    assert unnamed.status_code == 201 and len(unnamed.json()["Name"]) == 64
    assert [v["Name"] for v in client.get("/docker/volumes").json()["Volumes"]] == sorted(
        ["pg", unnamed.json()["Name"]])
    assert world["clients"]["other"].get("/docker/volumes/pg").status_code == 404
    network = post("/docker/networks/create", {"Name": "backend", "Internal": True,
                                               "IPAM": {"Config": [{"Subnet": "10.77.0.0/24"}]}})
    assert network.status_code == 201, network.content
    shown = client.get(f"/docker/networks/{network.json()['Id'][:12]}").json()
    assert (shown["Name"], shown["Internal"], shown["IPAM"]["Config"]) == (
        "backend", True, [{"Subnet": "10.77.0.0/24"}])
    assert post("/docker/networks/create", {"Name": "backend"}).status_code == 409
    assert post("/docker/networks/create", {"Name": "o", "Driver": "overlay"}).status_code == 400
    bad = post("/docker/networks/create", {"Name": "n3", "IPAM": {"Config": [{"Subnet": "x"}]}})
    assert bad.status_code == 400 and "subnet" in bad.json()["message"]
    assert client.delete("/docker/networks/backend").status_code == 204
    assert client.get("/docker/images/busybox/json").json()["RepoTags"] == ["busybox:latest"]
    assert client.get("/docker/images/nothing:1/json").status_code == 404


def test_a_call_berth_does_not_serve_is_named_in_dockers_shape(world):
    answer = world["clients"]["operator"].post("/docker/v1.41/plugins/pull")
    assert answer.status_code == 404 and answer.json()["message"] == (
        "page not found: Berth does not serve POST /v1.41/plugins/pull of the Docker API yet")


def test_networks_of_a_container_change_only_before_it_first_runs(world):
    from django.utils import timezone

    client = world["clients"]["operator"]
    client.post("/docker/networks/create", json.dumps({"Name": "appnet"}),
                content_type="application/json")
    web = Container.objects.get(name="web")
    Container.objects.filter(pk=web.pk).update(desired_state="stopped")
    connect = client.post("/docker/networks/appnet/connect", json.dumps(
        {"Container": "web", "EndpointConfig": {"Aliases": ["frontend"]}}),
        content_type="application/json")
    assert connect.status_code == 200, connect.content
    web.refresh_from_db()
    assert "appnet" in web.networks and web.options["network_aliases"] == ["frontend"]
    assert web.generation == 2  # the host makes it again, on the new network
    Container.objects.filter(pk=web.pk).update(started_at=timezone.now())
    refused = client.post("/docker/networks/appnet/disconnect", json.dumps({"Container": "web"}),
                          content_type="application/json")
    assert refused.status_code == 409 and "has run" in refused.json()["message"]


@pytest.mark.parametrize("body, field", [
    ({"Image": 7}, "Image"), ({"Image": "busybox", "Cmd": "sleep 1"}, "Cmd"),
    ({"Image": "busybox", "Env": {"A": "1"}}, "Env"), ({"Image": "busybox", "Env": [1]}, "Env"),
    ({"Image": "busybox", "Labels": ["a"]}, "Labels"),
    ({"Image": "busybox", "HostConfig": []}, "HostConfig"),
    ({"Image": "busybox", "HostConfig": {"Memory": "64m"}}, "HostConfig.Memory"),
    ({"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": "8080"}}},
     "HostConfig.PortBindings"),
    ({"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": []}},
     "NetworkingConfig.EndpointsConfig"),
])
def test_a_create_field_of_the_wrong_type_is_named_not_a_server_error(world, body, field):
    answer = _create(world["clients"]["operator"], body)
    assert answer.status_code == 400 and answer.json()["message"].startswith(f"{field}: "), \
        answer.content


@pytest.mark.parametrize("path, body", [
    ("/docker/volumes/create", {"Name": "v", "Labels": ["x"]}),
    ("/docker/networks/create", {"Name": "n", "Labels": "x"}),
    ("/docker/networks/create", {"Name": "n", "IPAM": {"Config": ["10.0.0.0/24"]}}),
    ("/docker/networks/create", {"Name": "n", "IPAM": []}),
    ("/docker/volumes/create", ["v"]),
])
def test_volume_and_network_bodies_of_the_wrong_shape_are_refused(world, path, body):
    answer = world["clients"]["operator"].post(path, json.dumps(body),
                                               content_type="application/json")
    assert answer.status_code == 400 and answer.json()["message"], answer.content
