"""Internal networks in the panel without agents: the API, the network page's form, what is
dispatched to a host, and the stack engine refusing to change an existing network's isolation.
The runtime side (an internal network on a real agent) is in
tests/panel/stacks/test_network_internal_deploy.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from panel.audit.models import AuditEvent
from panel.audit.services import Actor
from panel.stacks.engine import run_revision
from panel.stacks.models import Revision, Stack
from panel.workloads import services as workloads
from panel.workloads.models import Network
from panel.workloads.spec import ValidationFailed

pytestmark = pytest.mark.django_db


def test_api_creates_an_internal_network_and_shows_it_in_detail_and_list(api, broker):
    created = api.post("/api/v1/networks/", {"name": "vault", "internal": True}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["internal"] is True
    assert Network.objects.get(name="vault").internal is True
    assert api.get("/api/v1/networks/vault/").json()["internal"] is True
    listed = {n["name"]: n["internal"] for n in api.get("/api/v1/networks/").json()["results"]}
    assert listed == {"vault": True}
    event = AuditEvent.objects.get(action="network.create")
    assert event.details["after"]["internal"] is True


def test_api_network_is_not_internal_unless_asked(api, broker):
    created = api.post("/api/v1/networks/", {"name": "open"}, format="json")
    assert created.status_code == 201 and created.json()["internal"] is False
    assert Network.objects.get(name="open").internal is False


@pytest.mark.parametrize("value", ["maybe", "true", 1, None, ["yes"]])
def test_api_refuses_an_internal_that_is_not_a_boolean_naming_the_field(api, broker, value):
    refused = api.post("/api/v1/networks/", {"name": "vault", "internal": value}, format="json")
    assert refused.status_code == 400
    (message,) = refused.json()["internal"]
    assert "must be true or false" in message and set(refused.json()) == {"internal"}
    assert not Network.objects.exists()


def test_the_host_receives_internal_in_the_network_spec_of_a_container(
        make_host, actor, broker, django_capture_on_commit_callbacks):
    make_host("h1")
    with django_capture_on_commit_callbacks(execute=True):
        workloads.create_network(actor, "vault", "10.89.7.0/24", internal=True)
        workloads.create_container(actor, {"name": "keeper", "image": "busybox",
                                           "networks": ["vault"]})
    (task,) = [t for t in broker.sent("h1") if t["task"] == "berth.agent.apply_container"]
    spec = task["args"][0]
    assert spec["networks"] == ["vault"]
    assert spec["network_specs"]["vault"] == {
        "name": "vault", "driver": "bridge", "subnet": "10.89.7.0/24", "gateway": "",
        "internal": True, "labels": {}}


def test_service_refuses_a_non_boolean_internal_with_the_other_bad_fields(actor):
    with pytest.raises(ValidationFailed) as refused:
        workloads.create_network(actor, "vault", "nonsense", internal="yes")
    assert set(refused.value.errors) == {"subnet", "internal"}


@pytest.fixture
def browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_network_page_has_the_checkbox_and_creates_an_internal_network(browser):
    page = browser.get("/networks/").content.decode()
    (checkbox,) = re.findall(r'<input type="checkbox" name="internal"[^>]*>', page)
    assert " checked" not in checkbox and "Internal (no outbound)" in page
    made = browser.post("/networks/", {"name": "vault", "internal": "on", "project": ""})
    assert made.status_code == 302
    made = browser.post("/networks/", {"name": "plain", "project": ""})
    assert made.status_code == 302
    assert dict(Network.objects.values_list("name", "internal")) == {"vault": True,
                                                                     "plain": False}
    rows = browser.get("/networks/").content.decode().split("<tbody>")[1]
    vault_row = next(r for r in rows.split("<tr>") if "<td>vault</td>" in r)
    plain_row = next(r for r in rows.split("<tr>") if "<td>plain</td>" in r)
    assert ">internal</span>" in vault_row and "<td>outbound</td>" in plain_row


def test_network_page_refusal_keeps_the_checkbox_ticked(browser):
    refused = browser.post("/networks/", {"name": "vault", "subnet": "nonsense",
                                          "internal": "on", "project": ""})
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "is not an IPv4 subnet" in page
    (checkbox,) = re.findall(r'<input type="checkbox" name="internal"[^>]*>', page)
    assert " checked" in checkbox
    assert not Network.objects.exists()


INTERNAL_STACK = """
services:
  db:
    image: busybox
    command: ["sleep", "600"]
    networks: [backend]
    deploy: {replicas: 0}
networks:
  backend: {internal: true}
"""


def test_stack_engine_creates_the_compose_network_internal(api, broker):
    assert api.post("/api/v1/stacks/", {"name": "shop", "compose": INTERNAL_STACK},
                    format="json").status_code == 201
    revision = Revision.objects.get(stack__name="shop", number=1)
    assert run_revision(revision.pk) == Revision.SUCCEEDED
    assert Network.objects.get(name="shop_backend").internal is True


def test_stack_engine_refuses_to_change_the_isolation_of_an_existing_network(api, broker):
    workloads.create_network(Actor.system("tests"), "shop_backend")  # made open earlier
    assert api.post("/api/v1/stacks/", {"name": "shop", "compose": INTERNAL_STACK},
                    format="json").status_code == 201
    revision = Revision.objects.get(stack__name="shop", number=1)
    assert run_revision(revision.pk) == Revision.PAUSED
    revision.refresh_from_db()
    assert "network 'shop_backend' (networks.backend) exists with internal: false" in \
        revision.reason and "asks for internal: true" in revision.reason
    assert Network.objects.get(name="shop_backend").internal is False
    assert Stack.objects.get(name="shop").current_revision is None
