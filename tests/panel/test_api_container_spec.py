"""Every field of the one container spec (runtime.protocol.ContainerSpec) the API may set can be
set through POST /api/v1/containers/, is read back the same, reaches the host's apply_container
message, and a bad value is a 400 naming the field and what is allowed."""

from __future__ import annotations

import pytest

from panel.workloads.models import Container
from panel.workloads.services import container_spec
from runtime.protocol import default_of, spec_fields

pytestmark = pytest.mark.django_db

SPEC_VALUES = {
    "user": "1000:1000", "workdir": "/srv", "hostname": "my_db", "read_only": True,
    "stop_signal": "SIGQUIT", "stop_timeout": 3, "pids_limit": 64,
    "network_aliases": ["db.internal"], "cap_add": ["NET_ADMIN"], "cap_drop": ["MKNOD"],
    "privileged": False, "security_opt": ["no-new-privileges"], "devices": ["/dev/fuse"],
    "sysctls": {"net.ipv4.ip_forward": "1"}, "ulimits": {"nofile": {"soft": 1024, "hard": 2048}},
    "tmpfs": ["/run:size=64m"], "shm_size": 128 * 1024**2,
    "extra_hosts": ["gateway:host-gateway"], "dns": ["192.0.2.53"], "dns_search": ["corp"],
    "dns_opt": ["ndots:2"], "pid": "host", "ipc": "shareable", "network_mode": "none",
    "expose": ["80", "53/udp"], "logging": {"driver": "local", "options": {"max-size": "10m"}},
    "platform": "linux/amd64", "memory_reservation": 32 * 1024**2, "cpus_reservation": 0.25,
    "group_add": ["audio"],
}


def test_every_spec_field_the_api_may_set_is_covered_here() -> None:
    columns = {"name", "image", "pull", "command", "entrypoint", "env", "ports", "volumes",
               "networks", "memory", "cpus", "restart", "healthcheck", "labels", "init",
               "constraints"}
    settable = {info.name for info in spec_fields() if info.api}
    assert settable - columns == set(SPEC_VALUES)


def test_spec_fields_are_set_read_back_and_sent_to_the_host(api, make_host, broker):
    make_host("h1")
    response = api.post("/api/v1/containers/", {"name": "full", "image": "busybox",
                                                **SPEC_VALUES}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    body["pid"] = body.pop("pid_mode")  # `pid` reads as the process id
    assert {key: body[key] for key in SPEC_VALUES} == SPEC_VALUES
    assert api.get("/api/v1/containers/full/").json()["cap_add"] == ["NET_ADMIN"]
    spec = container_spec(Container.objects.get(name="full"))  # what apply_container sends
    # fields at their default are left out of the message (the agent applies the default)
    assert {key: spec.get(key, default_of(key)) for key in SPEC_VALUES} == SPEC_VALUES
    assert "privileged" not in spec


def test_defaults_are_not_stored_and_read_back_as_defaults(api, make_host, broker):
    make_host("h1")
    response = api.post("/api/v1/containers/", {"name": "plain", "image": "busybox",
                                                "cap_add": [], "read_only": False},
                        format="json")
    assert response.status_code == 201, response.content
    assert Container.objects.get(name="plain").options == {}
    body = response.json()
    assert body["cap_add"] == [] and body["read_only"] is False and body["user"] is None
    assert body["shm_size"] == 0 and body["logging"] == {}


def test_sizes_and_signals_are_normalised(api, make_host, broker):
    make_host("h1")
    response = api.post("/api/v1/containers/", {"image": "busybox", "shm_size": "64m",
                                                "stop_signal": "quit", "user": 1000,
                                                "cap_add": ["cap_net_admin"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["shm_size"], body["stop_signal"], body["user"], body["cap_add"]) == \
        (64 * 1024**2, "SIGQUIT", "1000", ["NET_ADMIN"])


def test_bad_spec_fields_are_400_naming_each_field(api, make_host, broker):
    make_host("h1")
    response = api.post("/api/v1/containers/", {
        "image": "busybox", "user": "a b", "hostname": "-bad", "stop_signal": "SIGNOPE",
        "read_only": "yes", "cap_add": "NET_ADMIN", "pid": "container:x", "sysctls": ["a=b"],
        "network_mode": "bridge", "logging": {"driver": "syslog"}, "shm_size": "lots",
        "ulimits": {"nofile": 5}, "capadd": ["X"]}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"user", "hostname", "stop_signal", "read_only", "cap_add", "pid",
                         "sysctls", "network_mode", "logging", "shm_size", "ulimits", "capadd"}
    assert "list of strings" in body["cap_add"][0]
    assert "'host'" in body["pid"][0]
    assert "json-file, local or none" in body["logging"][0]
    assert "unknown field" in body["capadd"][0] and "cap_add" in body["capadd"][0]
    assert Container.objects.count() == 0


def test_stack_only_fields_are_refused_by_the_container_api(api, make_host, broker):
    make_host("h1")
    response = api.post("/api/v1/containers/", {"image": "busybox", "port_group": "g",
                                                "stack_dir": {}}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"port_group", "stack_dir"}


def test_the_schema_documents_every_spec_field(api, db):
    schema = api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    text = schema.content.decode()
    for name in SPEC_VALUES:
        assert f'"{name}"' in text, name
    assert "capabilities to add" in text


def test_an_operator_may_not_set_fields_that_weaken_isolation(django_user_model, make_host,
                                                               broker):
    from rest_framework.test import APIClient

    from tests.panel.fixtures import two_teams

    teams = two_teams(django_user_model)
    make_host("h1")
    client = APIClient()
    client.force_authenticate(teams.users["operator"])
    response = client.post("/api/v1/containers/", {
        "image": "busybox", "project": teams.alpha.pk, "privileged": True,
        "cap_add": ["NET_ADMIN"], "pid": "host", "network_mode": "host",
        "devices": ["/dev/fuse"], "security_opt": ["seccomp=unconfined"],
        "user": "1000", "sysctls": {"net.core.somaxconn": "1024"}}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"privileged", "cap_add", "pid", "network_mode", "devices",
                         "security_opt"}
    assert "needs a platform administrator" in body["privileged"][0]
    assert "a team admin can allow it" in body["cap_add"][0]
    assert Container.objects.count() == 0
