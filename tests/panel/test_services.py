"""Service layer: validation writes nothing, one audit event per change, agent work only after
commit, secrets encrypted at rest."""

from __future__ import annotations

import pytest
from django.db import transaction

from panel.audit.models import AuditEvent
from panel.workloads import services
from panel.workloads.models import Container, Image, Network, Operation, Volume
from panel.workloads.secrets import decrypt_secrets
from panel.workloads.spec import ValidationFailed

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, ...]:
    return (Container.objects.count(), Operation.objects.count(), AuditEvent.objects.count(),
            Volume.objects.count(), Network.objects.count())


def test_invalid_create_names_every_bad_field_and_writes_nothing(make_host, actor, broker):
    make_host("h1")
    before = _counts()
    with pytest.raises(ValidationFailed) as caught:
        services.create_container(actor, {
            "name": "bad name!", "image": "nosuch:1", "ports": ["80:99999"], "memory": "1m",
            "networks": ["nonet"], "restart": "sometimes", "cpus": "lots", "colour": "red",
            "volumes": ["data:relative/path"], "labels": {"berth.uid": "x"},
            "healthcheck": {"test": 5}, "constraints": ["zone"]})
    errors = caught.value.errors
    assert set(errors) >= {"name", "image", "ports", "memory", "networks", "restart", "cpus",
                           "colour", "volumes", "labels", "healthcheck", "constraints"}
    assert "pull: true" in errors["image"][0]
    assert "1-65535" in errors["ports"][0]
    assert "6m" in errors["memory"][0]
    assert "nonet" in errors["networks"][0] and "berth" in errors["networks"][0]
    assert "on-failure" in errors["restart"][0]
    assert "allowed" in errors["colour"][0]
    assert "must be absolute" in errors["volumes"][0]
    assert _counts() == before
    assert broker.sent("h1") == []


def test_create_writes_container_operation_and_one_audit_event_then_sends_on_commit(
        make_host, actor, broker, django_capture_on_commit_callbacks):
    make_host("h1")
    audits = AuditEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        container, operation = services.create_container(actor, {
            "name": "web", "image": "busybox", "command": ["sleep", "60"],
            "env": {"MODE": "prod"}, "secrets": {"DB_PASSWORD": "hunter2"}, "memory": "64m",
            "ports": ["8080:80"], "restart": "on-failure:3"})
        assert broker.sent("h1") == []  # nothing reaches the host before commit
    for callback in callbacks:
        callback()
    assert container.host.name == "h1" and container.image == "busybox:latest"
    assert container.memory == 64 * 1024 * 1024 and container.desired_state == "running"
    assert operation.status == "pending" and operation.kind == "container.create"
    events = AuditEvent.objects.filter(pk__gt=0).order_by("id")[audits:]
    assert [e.action for e in events] == ["container.create"]
    assert events[0].actor_name == "ana" and events[0].request_id == "req-test-1"
    (task,) = broker.sent("h1")
    assert task["task"] == "berth.agent.apply_container"
    spec, operation_id = task["args"]
    assert operation_id == str(operation.pk)
    assert spec["uid"] == str(container.uid) and spec["generation"] == 1
    assert "DB_PASSWORD=hunter2" in spec["env"] and "MODE=prod" in spec["env"]
    assert spec["labels"]["berth.uid"] == str(container.uid)


def test_secrets_are_encrypted_at_rest_and_absent_from_audit(make_host, actor, broker):
    make_host("h1")
    container, _ = services.create_container(
        actor, {"name": "db", "image": "busybox", "secrets": {"API_TOKEN": "s3cr3t-value"}})
    container.refresh_from_db()
    assert "s3cr3t-value" not in container.secrets_encrypted
    assert decrypt_secrets(container.secrets_encrypted) == {"API_TOKEN": "s3cr3t-value"}
    assert container.secret_names == ["API_TOKEN"]
    for event in AuditEvent.objects.all():
        assert "s3cr3t-value" not in str(event.details)


def test_rolled_back_change_never_reaches_a_host(make_host, actor, broker,
                                                 django_capture_on_commit_callbacks):
    make_host("h1")
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                services.create_container(actor, {"name": "gone", "image": "busybox"})
                raise RuntimeError("later step failed")
        except RuntimeError:
            pass
    assert not Container.objects.filter(name="gone").exists()
    assert broker.sent("h1") == []


def test_name_taken_is_a_field_error(make_host, actor, broker):
    make_host("h1")
    services.create_container(actor, {"name": "web", "image": "busybox"})
    with pytest.raises(ValidationFailed) as caught:
        services.create_container(actor, {"name": "web", "image": "busybox"})
    assert "already exists" in caught.value.errors["name"][0]


def test_unknown_image_is_allowed_with_pull(make_host, actor, broker):
    make_host("h1")
    container, _ = services.create_container(
        actor, {"name": "app", "image": "registry.local:5000/app:1.4", "pull": True})
    assert container.pull and container.host.name == "h1"


@pytest.mark.parametrize("action, task_action, desired", [
    ("stop_container", "stop", "stopped"),
    ("restart_container", "restart", "running"),
    ("kill_container", "kill", "stopped"),
])
def test_actions_set_desired_state_audit_and_send(make_host, actor, broker,
                                                  django_capture_on_commit_callbacks,
                                                  action, task_action, desired):
    make_host("h1")
    container, _ = services.create_container(actor, {"name": "web", "image": "busybox"})
    with django_capture_on_commit_callbacks(execute=True):
        operation = getattr(services, action)(actor, container)
    container.refresh_from_db()
    assert container.desired_state == desired
    assert AuditEvent.objects.filter(action=f"container.{task_action}",
                                     target_id=str(container.pk)).count() == 1
    (task,) = broker.sent("h1")
    assert task["task"] == "berth.agent.container_action"
    assert task["args"][:2] == [str(container.uid), task_action]
    assert task["args"][3] == str(operation.pk)


def test_start_sends_an_apply_with_desired_running(make_host, actor, broker,
                                                   django_capture_on_commit_callbacks):
    make_host("h1")
    container, _ = services.create_container(actor, {"name": "web", "image": "busybox",
                                                     "start": False})
    assert container.desired_state == "stopped"
    with django_capture_on_commit_callbacks(execute=True):
        services.start_container(actor, container)
    (task,) = broker.sent("h1")
    assert task["task"] == "berth.agent.apply_container"
    assert task["args"][0]["desired"] == "running"


def test_kill_with_a_bad_signal_is_refused(make_host, actor, broker):
    make_host("h1")
    container, _ = services.create_container(actor, {"name": "web", "image": "busybox"})
    with pytest.raises(ValidationFailed) as caught:
        services.kill_container(actor, container, "NOPE")
    assert "signal" in caught.value.errors


def test_remove_running_container_needs_force(make_host, actor, broker,
                                              django_capture_on_commit_callbacks):
    make_host("h1")
    container, _ = services.create_container(actor, {"name": "web", "image": "busybox"})
    Container.objects.filter(pk=container.pk).update(status="running")
    with pytest.raises(services.Conflict):
        services.remove_container(actor, container)
    with django_capture_on_commit_callbacks(execute=True):
        services.remove_container(actor, container, force=True)
    assert not Container.objects.filter(pk=container.pk).exists()
    assert broker.sent("h1")[-1]["args"][:2] == [str(container.uid), "remove"]
    assert AuditEvent.objects.filter(action="container.remove").count() == 1


def test_volume_in_use_cannot_be_removed(make_host, actor, broker):
    make_host("h1")
    volume, _ = services.create_volume(actor, "data", {"team": "web"})
    services.create_container(actor, {"name": "db", "image": "busybox",
                                      "volumes": ["data:/var/lib/db"]})
    with pytest.raises(services.Conflict, match="db"):
        services.remove_volume(actor, volume)
    assert Volume.objects.filter(name="data").exists()


def test_network_validation_and_use(make_host, actor, broker):
    make_host("h1")
    with pytest.raises(ValidationFailed) as caught:
        services.create_network(actor, "backend", subnet="10.0.0.1/24", gateway="10.9.0.1")
    assert {"subnet", "gateway"} <= set(caught.value.errors)
    network, _ = services.create_network(actor, "backend", subnet="10.89.5.0/24")
    container, _ = services.create_container(actor, {"name": "api", "image": "busybox",
                                                     "networks": ["backend"]})
    spec = services.container_spec(container)
    assert spec["network_specs"]["backend"]["subnet"] == "10.89.5.0/24"
    with pytest.raises(services.Conflict):
        services.remove_network(actor, network)


def test_pull_image_queues_one_pull_per_host(make_host, actor, broker,
                                             django_capture_on_commit_callbacks):
    make_host("h1")
    make_host("h2")
    with django_capture_on_commit_callbacks(execute=True):
        image, operations = services.pull_image(actor, "alpine")
    assert image.reference == "alpine:latest" and len(operations) == 2
    assert broker.sent("h1")[0]["task"] == "berth.agent.pull_image"
    assert broker.sent("h2")[0]["args"][0] == "alpine:latest"
    assert Image.objects.filter(reference="alpine:latest").exists()


def test_every_change_writes_exactly_one_audit_event(make_host, actor, broker):
    make_host("h1")
    steps = [
        lambda: services.create_volume(actor, "v1"),
        lambda: services.create_network(actor, "n1"),
        lambda: services.create_container(actor, {"name": "c1", "image": "busybox"}),
        lambda: services.stop_container(actor, Container.objects.get(name="c1")),
        lambda: services.start_container(actor, Container.objects.get(name="c1")),
        lambda: services.restart_container(actor, Container.objects.get(name="c1")),
        lambda: services.kill_container(actor, Container.objects.get(name="c1")),
        lambda: services.remove_container(actor, Container.objects.get(name="c1")),
        lambda: services.remove_volume(actor, Volume.objects.get(name="v1")),
        lambda: services.remove_network(actor, Network.objects.get(name="n1")),
        lambda: services.pull_image(actor, "alpine"),
    ]
    for step in steps:
        before = AuditEvent.objects.count()
        step()
        assert AuditEvent.objects.count() == before + 1
