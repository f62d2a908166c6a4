"""REST API: status codes, per-field 400s, pagination, constant query counts, secrets never in
clear, token auth, schema and docs."""

from __future__ import annotations

import json

import pytest

from panel.audit.services import Actor
from panel.workloads import reports
from panel.workloads.models import Container

pytestmark = pytest.mark.django_db


def test_anonymous_requests_are_refused(client, db):
    assert client.get("/api/v1/containers/").status_code in (401, 403)


def test_create_returns_201_with_operation_and_names_of_secrets_only(api, make_host, broker):
    make_host("h1")
    response = api.post("/api/v1/containers/", {
        "name": "web", "image": "busybox", "command": ["httpd", "-f"], "ports": ["8080:80"],
        "memory": "64m", "secrets": {"DB_PASSWORD": "hunter2"}, "labels": {"tier": "front"},
        "healthcheck": {"test": "wget -q -O- localhost", "interval": "5s", "retries": 3,
                        "start_period": "30s", "start_interval": "500ms"},
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secrets"] == ["DB_PASSWORD"] and body["host"] == "h1"
    assert body["healthcheck"]["interval"] == 5_000_000_000
    assert body["healthcheck"]["start_interval"] == 500_000_000
    assert "hunter2" not in response.content.decode()
    operation = api.get(f"/api/v1/operations/{body['operation']}/")
    assert operation.status_code == 200 and operation.json()["status"] == "pending"
    for url in ("/api/v1/containers/", f"/api/v1/containers/{body['id']}/",
                "/api/v1/containers/web/"):
        assert "hunter2" not in api.get(url).content.decode()


def test_bad_input_is_400_naming_each_field(api, make_host, broker):
    make_host("h1")
    response = api.post("/api/v1/containers/", {
        "image": "ghost:1", "ports": ["http"], "memory": "2m", "networks": ["nope"],
        "host": "nowhere"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"image", "ports", "memory", "networks", "host"}
    assert "pull: true" in body["image"][0] and "6m" in body["memory"][0]
    assert Container.objects.count() == 0


def test_image_reference_that_used_to_backtrack_is_400_at_once(api, make_host, broker):
    """A reference the old pattern took minutes over answers 400 and creates nothing (no time
    is asserted here: tests/panel/test_parsers_linear.py measures the parser)."""
    make_host("h1")
    for image in ("reallibrephotos/librephotos-proxy:", "a" * 40 + "-!", "MyOrg/app"):
        response = api.post("/api/v1/containers/", {"image": image}, format="json")
        assert response.status_code == 400
        assert "invalid image reference" in response.json()["image"][0]
    assert Container.objects.count() == 0


def test_no_host_fits_the_constraints_is_400(api, make_host, broker):
    make_host("h1", labels={"zone": "east"})
    response = api.post("/api/v1/containers/", {"image": "busybox",
                                                "constraints": ["zone==west"]}, format="json")
    assert response.status_code == 400
    assert "no host fits" in response.json()["constraints"][0]


def test_non_object_body_is_400(api, db):
    response = api.post("/api/v1/containers/", json.dumps([1, 2]),
                        content_type="application/json")
    assert response.status_code == 400


def test_actions_answer_202_with_an_operation(api, make_host, broker):
    make_host("h1")
    created = api.post("/api/v1/containers/", {"name": "web", "image": "busybox"},
                       format="json").json()
    for verb in ("stop", "start", "restart", "kill"):
        response = api.post(f"/api/v1/containers/web/{verb}/")
        assert response.status_code == 202, (verb, response.content)
        assert response.json()["operation"] != created["operation"]
    assert api.post("/api/v1/containers/web/stop/?timeout=-1").status_code == 400
    assert api.post("/api/v1/containers/web/kill/?signal=BOGUS").status_code == 400
    assert api.delete("/api/v1/containers/web/").status_code == 202
    assert api.get("/api/v1/containers/web/").status_code == 404


def test_remove_of_running_container_without_force_is_409(api, make_host, broker):
    make_host("h1")
    web = api.post("/api/v1/containers/", {"name": "web", "image": "busybox"},
                   format="json").json()
    container = Container.objects.get(pk=web["id"])
    reports.record_container_event(Actor.agent("h1"), "h1", str(container.uid), "started",
                                   {"uid": str(container.uid), "status": "running",
                                    "started_at": "2026-01-01T00:00:00Z", "generation": 1})
    assert api.delete("/api/v1/containers/web/").status_code == 409
    assert api.delete("/api/v1/containers/web/?force=1").status_code == 202


def test_list_filters_and_paginates(api, make_host, broker):
    make_host("a", labels={"zone": "east"})
    make_host("b", labels={"zone": "west"})
    for i in range(5):
        api.post("/api/v1/containers/", {"name": f"c{i}", "image": "busybox", "host": "a" if
                                         i < 3 else "b", "labels": {"n": str(i)}}, format="json")
    page = api.get("/api/v1/containers/?page_size=2").json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    assert api.get("/api/v1/containers/?host=b").json()["count"] == 2
    assert api.get("/api/v1/containers/?label=n=4").json()["count"] == 1
    assert api.get("/api/v1/containers/?label=n").json()["count"] == 5
    assert api.get("/api/v1/containers/?image=busybox:latest").json()["count"] == 5
    assert api.get("/api/v1/containers/?desired_state=maybe").status_code == 400
    assert api.get("/api/v1/hosts/?label=zone=west").json()["results"][0]["name"] == "b"
    assert api.get("/api/v1/hosts/?status=up").json()["count"] == 2
    assert api.get("/api/v1/hosts/?status=sideways").status_code == 400
    assert api.get("/api/v1/operations/?kind=container.create").json()["count"] == 5
    assert api.get("/api/v1/images/?host=a").json()["count"] == 1


@pytest.mark.parametrize("count", [3, 40])
def test_container_list_uses_a_constant_number_of_queries(api, make_host, broker,
                                                          django_assert_num_queries, count):
    make_host("a")
    make_host("b")
    for i in range(count):
        api.post("/api/v1/containers/", {"name": f"c{i}", "image": "busybox"}, format="json")
    # token lookup, count, page
    with django_assert_num_queries(3):
        response = api.get("/api/v1/containers/?page_size=100")
    assert len(response.json()["results"]) == count


def test_logs_of_a_container_on_a_down_host_is_503(api, make_host, broker):
    import datetime

    from django.utils import timezone

    from panel.fleet.models import Host

    make_host("h1")
    api.post("/api/v1/containers/", {"name": "web", "image": "busybox"}, format="json")
    Host.objects.filter(name="h1").update(
        last_heartbeat=timezone.now() - datetime.timedelta(minutes=5))
    response = api.get("/api/v1/containers/web/logs/?tail=10")
    assert response.status_code == 503 and "down" in response.json()["detail"]


def test_logs_when_the_agent_does_not_answer_is_504(api, make_host, broker):
    make_host("h1")
    api.post("/api/v1/containers/", {"name": "web", "image": "busybox"}, format="json")
    response = api.get("/api/v1/containers/web/logs/?tail=10&timestamps=1")
    assert response.status_code == 504
    assert "did not answer" in response.json()["detail"]
    assert api.get("/api/v1/containers/web/logs/?tail=x").status_code == 400
    assert api.get("/api/v1/containers/web/logs/?since=yesterdayish").status_code == 400


def test_volumes_networks_images_endpoints(api, make_host, broker):
    make_host("h1")
    assert api.post("/api/v1/volumes/", {"name": "data"}, format="json").status_code == 201
    assert api.post("/api/v1/volumes/", {"name": "data"}, format="json").status_code == 400
    assert api.post("/api/v1/networks/", {"name": "backend", "subnet": "10.89.9.0/24"},
                    format="json").status_code == 201
    assert api.post("/api/v1/networks/", {"name": "bad", "subnet": "nonsense"},
                    format="json").json()["subnet"]
    pulled = api.post("/api/v1/images/", {"reference": "alpine:3"}, format="json")
    assert pulled.status_code == 202 and pulled.json()["operations"]
    assert api.post("/api/v1/images/", {"reference": "UPPER:case"},
                    format="json").status_code == 400
    assert api.delete("/api/v1/volumes/data/").status_code == 202
    assert api.delete("/api/v1/networks/backend/").status_code == 202
    assert api.get("/api/v1/operations/not-a-uuid/").status_code == 400


def test_schema_and_docs_render(api, db):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/containers/" in schema.content
    docs = api.get("/api/docs/")
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower()


def test_session_auth_works_too(client, user):
    client.force_login(user)
    assert client.get("/api/v1/hosts/").status_code == 200


def test_berth_token_prints_a_new_working_token_each_time(user, client):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    first, second = StringIO(), StringIO()
    call_command("berth_token", "ana", stdout=first)
    call_command("berth_token", "ana", stdout=second)
    assert first.getvalue() != second.getvalue()  # stored hashed: a secret is shown only once
    for out in (first, second):
        answer = client.get("/api/v1/hosts/",
                            HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")
        assert answer.status_code == 200
    with pytest.raises(CommandError, match="createsuperuser"):
        call_command("berth_token", "nobody")


def test_a_tcp_health_test_needs_a_port(api, make_host, broker):
    make_host("h1")
    response = api.post("/api/v1/containers/", {
        "image": "busybox", "healthcheck": {"test": ["TCP", "http"]}}, format="json")
    assert response.status_code == 400
    assert '["TCP", "<port 1-65535>"]' in response.json()["healthcheck"][0]
    accepted = api.post("/api/v1/containers/", {
        "image": "busybox", "healthcheck": {"test": ["TCP", "8080"]}}, format="json")
    assert accepted.status_code == 201, accepted.content
