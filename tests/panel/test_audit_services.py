"""Every state-changing service function writes exactly one audit event — all of them, found by
introspection of panel/*/services.py (a new function without an entry in CALLS or HELPERS fails
the test) — and a secret value never appears in an audit event, nor in an API answer to a role
that may not see it."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from panel.access import services as access
from panel.audit.models import AuditEvent
from panel.audit.services import Actor
from panel.fleet import services as fleet
from panel.stacks import services as stacks
from panel.workloads import services as workloads
from tests.panel.fixtures import container_state

pytestmark = pytest.mark.django_db
SECRET = "s3cr3t-value-7f1c"
PANEL = Path(__file__).resolve().parents[2] / "panel"

# Functions of services modules that change nothing themselves (builders, summaries, the audit
# writer itself, helpers called inside another service's transaction).
HELPERS = {
    "panel.workloads.services": {"container_summary", "container_spec", "start_operation",
                                 "send_apply", "placement_request"},
    "panel.access.services": {"team_summary", "user_summary", "token_summary",
                              "two_factor_required"},
    "panel.audit.services": {"record_event", "append", "redact", "writes_suspended"},
    "panel.fleet.services": set(),
    # the deploy engine's writers: exercised with real agents in tests/panel/stacks
    "panel.stacks.services": {"stack_summary", "stack_secrets", "stack_secret_files",
                              "stack_files", "engine_secrets", "claim_revision",
                              "finish_revision", "pin_image_digests", "add_replica",
                              "drop_replica", "record_image_updates", "owner_is_dead",
                              "new_owner", "pass_lease", "take_over_revision",
                              "save_revision_progress", "lock_for_engine",
                              "revisions_to_resume"},
}


def service_functions() -> dict[str, set[str]]:
    found = {}
    for path in sorted(PANEL.glob("*/services.py")):
        name = f"panel.{path.parent.name}.services"
        module = importlib.import_module(name)
        found[name] = {n for n, f in inspect.getmembers(module, inspect.isfunction)
                       if f.__module__ == name and not n.startswith("_")}
    return found


@pytest.fixture
def w(django_user_model, make_host) -> dict[str, Any]:
    actor = Actor(name="ana", channel="api", request_id="req-1")
    make_host("h1")
    team = access.create_team(actor, "t1")
    project = access.create_project(actor, team, "p1")
    user = django_user_model.objects.create_user("bob", password="a fine passphrase")
    django_user_model.objects.create_user("eve", password="a fine passphrase")
    access.set_member(actor, team, "bob", "admin")
    container, _ = workloads.create_container(
        actor, {"name": "web", "image": "busybox", "secrets": {"DB_PASSWORD": SECRET}}, project)
    return {"actor": actor, "team": team, "project": project, "user": user,
            "container": container}


def _fresh_container(w: dict[str, Any], name: str) -> Any:
    container, _ = workloads.create_container(w["actor"], {"name": name, "image": "busybox"},
                                              w["project"])
    return container


def _confirm_totp(w: dict[str, Any]) -> None:
    from django_otp.oath import totp

    device, _ = access.enroll_totp(w["actor"], w["user"])
    code = f"{totp(device.bin_key, device.step, device.t0, device.digits):06d}"
    CALLS["panel.access.services"]["confirm_totp"] = lambda w: access.confirm_totp(
        w["actor"], w["user"], code)


def _token(w: dict[str, Any]) -> Any:
    return access.create_token(w["actor"], w["user"], "t")[0]


# name -> (setup returning nothing or a value, call) ; the event count is taken around `call`.
CALLS: dict[str, dict[str, Callable[[dict[str, Any]], Any]]] = {
    "panel.workloads.services": {
        "create_container": lambda w: workloads.create_container(
            w["actor"], {"name": "c2", "image": "busybox"}, w["project"]),
        "start_container": lambda w: workloads.start_container(w["actor"], w["container"]),
        "stop_container": lambda w: workloads.stop_container(w["actor"], w["container"]),
        "restart_container": lambda w: workloads.restart_container(w["actor"], w["container"]),
        "kill_container": lambda w: workloads.kill_container(w["actor"], w["container"]),
        "remove_container": lambda w: workloads.remove_container(w["actor"], w["container"],
                                                                 force=True),
        "read_container_secrets": lambda w: workloads.read_container_secrets(
            w["actor"], w["container"]),
        "pull_image": lambda w: workloads.pull_image(w["actor"], "alpine:3"),
        "create_volume": lambda w: workloads.create_volume(w["actor"], "v1",
                                                           project=w["project"]),
        "remove_volume": lambda w: workloads.remove_volume(
            w["actor"], w["pre"]),
        "create_network": lambda w: workloads.create_network(w["actor"], "n1",
                                                             project=w["project"]),
        "remove_network": lambda w: workloads.remove_network(w["actor"], w["pre"]),
        "change_networks": lambda w: workloads.change_networks(
            w["actor"], w["pre"], connect=("net-late",), aliases=("db",)),
    },
    "panel.fleet.services": {
        "record_heartbeat": lambda w: fleet.record_heartbeat(
            Actor.agent("h2"), "h2", {"cpus": 1, "memory": 2**30}),
        "check_hosts": lambda w: fleet.check_hosts(Actor.system(),
                                                   timezone.now() + timedelta(minutes=5)),
    },
    "panel.access.services": {
        "create_team": lambda w: access.create_team(w["actor"], "t2"),
        "update_team": lambda w: access.update_team(w["actor"], w["team"], require_2fa=True),
        "remove_team": lambda w: access.remove_team(w["actor"], w["pre"]),
        "create_project": lambda w: access.create_project(w["actor"], w["team"], "p2"),
        "update_project": lambda w: access.update_project(w["actor"], w["project"],
                                                          description="shop"),
        "remove_project": lambda w: access.remove_project(w["actor"], w["pre"]),
        "set_member": lambda w: access.set_member(w["actor"], w["team"], "eve", "viewer"),
        "remove_member": lambda w: access.remove_member(w["actor"], w["pre"]),
        "create_user": lambda w: access.create_user(w["actor"], "carl", "a fine passphrase"),
        "update_user": lambda w: access.update_user(w["actor"], w["user"],
                                                    password="another passphrase"),
        "remove_user": lambda w: access.remove_user(w["actor"], w["pre"]),
        "create_token": lambda w: access.create_token(w["actor"], w["user"], "ci"),
        "revoke_token": lambda w: access.revoke_token(w["actor"], w["pre"]),
        "record_sign_in": lambda w: access.record_sign_in(w["actor"], w["user"]),
        "record_sign_out": lambda w: access.record_sign_out(w["actor"], w["user"]),
        "record_sign_in_failure": lambda w: access.record_sign_in_failure(
            w["actor"], "bob", "wrong password"),
        "enroll_totp": lambda w: access.enroll_totp(w["actor"], w["user"]),
        "confirm_totp": lambda w: None,  # replaced by _confirm_totp's setup
        "remove_totp": lambda w: access.remove_totp(w["actor"], w["user"]),
    },
}
STACK = "services:\n  web:\n    image: busybox\n    environment: {PW: '${PW}'}\n"


def _stack(w: dict[str, Any]) -> Any:
    """A stack whose revision 1 is deployed (its secret is SECRET)."""
    from panel.stacks.models import Revision

    stack = stacks.create_stack(w["actor"], "s0", STACK, w["project"], secrets={"PW": SECRET})
    revision = stacks.deploy_stack(w["actor"], stack)
    Revision.objects.filter(pk=revision.pk).update(status=Revision.SUCCEEDED)
    stack.current_revision = revision
    return stack


CALLS["panel.stacks.services"] = {
    "create_stack": lambda w: stacks.create_stack(w["actor"], "s1", STACK, w["project"],
                                                  secrets={"PW": SECRET}),
    "update_stack": lambda w: stacks.update_stack(w["actor"], w["pre"],
                                                  secrets={"PW": SECRET + "2"}),
    "deploy_stack": lambda w: stacks.deploy_stack(w["actor"], w["pre"]),
    "rollback_stack": lambda w: stacks.rollback_stack(w["actor"], w["pre"], 1),
    "scale_service": lambda w: stacks.scale_service(w["actor"], w["pre"], "web", 2),
    "remove_stack": lambda w: stacks.remove_stack(w["actor"], w["pre"]),
    "save_as_template": lambda w: stacks.save_as_template(w["actor"], w["pre"], "tpl"),
    "remove_template": lambda w: stacks.remove_template(w["actor"], w["pre"]),
    "deploy_template": lambda w: stacks.deploy_template(
        w["actor"], __import__("panel.stacks.catalogue", fromlist=["builtin"]).builtin()[
            "scheduled-worker"], "tw", w["project"], {}),
}

SETUP: dict[str, Callable[[dict[str, Any]], Any]] = {
    **{name: _stack for name in ("update_stack", "deploy_stack", "rollback_stack",
                                 "scale_service", "remove_stack", "save_as_template")},
    "remove_template": lambda w: stacks.save_as_template(w["actor"], _stack(w), "tpl"),
    "remove_volume": lambda w: workloads.create_volume(w["actor"], "gone")[0],
    "remove_network": lambda w: workloads.create_network(w["actor"], "gone")[0],
    # a container created, not started, and a network to attach it to before it first runs
    "change_networks": lambda w: (workloads.create_network(w["actor"], "net-late"),
                                  workloads.create_container(w["actor"], {
                                      "name": "late", "image": "busybox", "start": False},
                                      w["project"])[0])[1],
    "remove_team": lambda w: access.create_team(w["actor"], "empty"),
    "remove_project": lambda w: access.create_project(w["actor"], w["team"], "empty"),
    "remove_member": lambda w: access.set_member(w["actor"], w["team"], "eve", "operator"),
    "remove_user": lambda w: w["user"].__class__.objects.create_user("zed"),
    "revoke_token": _token,
    "confirm_totp": _confirm_totp,
}


def test_every_service_function_is_listed():
    found = service_functions()
    for module, names in found.items():
        listed = set(CALLS.get(module, {})) | HELPERS.get(module, set())
        assert names - listed == set(), f"{module}: add CALLS or HELPERS entries for " \
                                        f"{sorted(names - listed)}"
        assert listed - names == set(), f"{module}: stale entries {sorted(listed - names)}"


@pytest.mark.parametrize("module,name", sorted(
    (m, n) for m, calls in CALLS.items() for n in calls))
def test_state_changing_service_writes_exactly_one_audit_event(w, module, name):
    if name in SETUP:
        w["pre"] = SETUP[name](w)
    before = AuditEvent.objects.count()
    CALLS[module][name](w)
    events = list(AuditEvent.objects.order_by("seq")[before:])
    assert len(events) == 1, f"{name} wrote {[e.action for e in events]}"
    assert SECRET not in events[0].details_json


def test_agent_and_system_events_carry_their_channel(w):
    reports = importlib.import_module("panel.workloads.reports")
    container = w["container"]
    reports.record_container_event(Actor.agent("h1"), "h1", str(container.uid), "restarted",
                                   container_state(container, "running", exit_code=137,
                                                   restart_count=1))
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.channel, event.actor_name, event.action) == ("agent", "agent:h1",
                                                               "container.restarted")
    fleet.check_hosts(Actor.system("host-check"), timezone.now() + timedelta(minutes=5))
    assert AuditEvent.objects.order_by("-seq").first().channel == "system"


def test_secret_values_reach_no_event_and_no_answer_for_roles_that_may_not_see_them(
        w, django_user_model):
    from rest_framework.test import APIClient

    actor, team = w["actor"], w["team"]
    workloads.read_container_secrets(actor, w["container"])
    workloads.stop_container(actor, w["container"])
    access.update_user(actor, w["user"], password="yet another passphrase")
    assert not AuditEvent.objects.filter(details_json__contains=SECRET).exists()
    assert not AuditEvent.objects.filter(details_json__contains="yet another").exists()
    for role in ("operator", "viewer", "auditor"):
        user = django_user_model.objects.create_user(role)
        access.set_member(actor, team, role, role)
        _, secret = access.create_token(actor, user, "t")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        for url in ("/api/v1/containers/", "/api/v1/containers/web/",
                    "/api/v1/containers/web/secrets/", "/api/v1/audit/",
                    "/api/v1/audit/?format=jsonl", "/api/v1/operations/"):
            response = client.get(url)
            body = b"".join(response.streaming_content) if response.streaming \
                else response.content
            assert SECRET.encode() not in body, (role, url)
    admin_client = APIClient()
    _, admin_secret = access.create_token(actor, w["user"], "a")
    admin_client.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_secret}")
    answer = admin_client.get("/api/v1/containers/web/secrets/")
    assert answer.json()["secrets"] == {"DB_PASSWORD": SECRET}  # team admins may read them
    read = AuditEvent.objects.filter(action="container.secrets").order_by("-seq").first()
    assert read.actor_name == "bob" and read.details["secret_names"] == ["DB_PASSWORD"]
