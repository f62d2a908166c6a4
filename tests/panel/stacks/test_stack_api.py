"""The stacks API without agents: validation (nothing created on a bad file), revisions, diff,
rollback and scale requests, secrets kept out of revisions, templates, and the role table."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from panel.audit.models import AuditEvent
from panel.stacks.models import Revision, Stack, StackTemplate
from panel.workloads.models import Container, Network, Volume

pytestmark = pytest.mark.django_db

GOOD = """
services:
  web:
    image: busybox
    command: ["httpd", "-f"]
    environment: {PASSWORD: "${DB_PASSWORD}", MODE: "${MODE:-prod}"}
    ports: ["8080:80"]
"""

INVALID = """services:
  web:
    image: busybox
    ports: ["8080:80"]
    build: .
  worker:
    image: busybox
    depends_on: [nothere]
"""


def _deploy_tasks(broker: Any) -> list[dict[str, Any]]:
    from tests.panel.fixtures import queued_tasks

    return [t for t in queued_tasks(broker, "control") if t["task"] ==
            "berth.control.stack_deploy"]


def test_invalid_compose_is_refused_with_its_lines_and_nothing_is_created(api, broker):
    answer = api.post("/api/v1/stacks/", {"name": "bad", "compose": INVALID}, format="json")
    assert answer.status_code == 400
    errors = answer.json()["compose"]
    assert [(e["path"], e["line"]) for e in errors] == [("services.web.build", 5),
                                                         ("services.worker.depends_on[0]", 8)]
    assert "remove build:" in errors[0]["message"] and "nothere" in errors[1]["message"]
    assert not Stack.objects.exists() and not Revision.objects.exists()
    assert not Network.objects.exists() and not Volume.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="stack.").exists()
    assert _deploy_tasks(broker) == []


@pytest.mark.parametrize("body, field", [
    ({"name": "Bad Name", "compose": GOOD}, "name"),
    ({"name": "ok", "compose": GOOD, "environment": ["A=1"]}, "environment"),
    ({"name": "ok", "compose": GOOD, "surprise": 1}, "surprise"),
    ({"name": "ok", "compose": ""}, "compose"),
])
def test_bad_fields_are_400_naming_the_field(api, body, field):
    answer = api.post("/api/v1/stacks/", body, format="json")
    assert answer.status_code == 400 and field in answer.json()
    assert not Stack.objects.exists()


def test_create_deploys_a_revision_and_keeps_secret_values_out_of_it(
        api, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post("/api/v1/stacks/", {"name": "shop", "compose": GOOD,
                                              "secrets": {"DB_PASSWORD": "s3cret!"}},
                          format="json")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["secrets"] == ["DB_PASSWORD"] and body["deployment"]["number"] == 1
    revision = Revision.objects.get()
    assert revision.status == Revision.PENDING and "s3cret" not in str(revision.spec)
    assert revision.spec["services"]["web"]["container"]["env"]["MODE"] == "prod"
    assert [t["args"] for t in _deploy_tasks(broker)] == [[revision.pk]]
    stack = Stack.objects.get()
    assert "s3cret" not in stack.secrets_encrypted
    assert AuditEvent.objects.filter(action="stack.create", target_name="shop").count() == 1
    assert "s3cret" not in str(list(AuditEvent.objects.values_list("details_json", flat=True)))
    again = api.post(f"/api/v1/stacks/{stack.pk}/deploy", {}, format="json")
    assert again.status_code == 409  # revision 1 is still pending
    changed = api.patch(f"/api/v1/stacks/{stack.pk}/", {"compose": GOOD + "    init: true\n",
                                                        "deploy": True}, format="json")
    assert changed.status_code == 409  # and the change that could not be deployed is not kept
    stack.refresh_from_db()
    assert stack.compose == GOOD and stack.revisions.count() == 1


def test_secret_references_outside_environment_are_refused(api):
    compose = "services:\n  web:\n    image: busybox\n    command: [echo, '${TOKEN}']\n"
    answer = api.post("/api/v1/stacks/", {"name": "leaky", "compose": compose,
                                          "secrets": {"TOKEN": "x"}}, format="json")
    assert answer.status_code == 400 and "environment" in answer.json()["secrets"][0]


def _finish(revision: Revision) -> None:
    Revision.objects.filter(pk=revision.pk).update(status=Revision.SUCCEEDED)
    Stack.objects.filter(pk=revision.stack_id).update(current_revision=revision)


def test_revisions_diff_rollback_and_scale(api, broker):
    created = api.post("/api/v1/stacks/", {"name": "shop", "compose": GOOD,
                                           "environment": {"DB_PASSWORD": "x"}}, format="json")
    stack = Stack.objects.get()
    _finish(Revision.objects.get(number=1))
    changed = GOOD.replace("httpd", "httpd-v2")
    patched = api.patch(f"/api/v1/stacks/{stack.pk}/", {"compose": changed, "deploy": True,
                                                        "message": "new command"}, format="json")
    assert created.status_code == 201 and patched.status_code == 200, patched.content
    _finish(Revision.objects.get(number=2))
    history = api.get(f"/api/v1/stacks/{stack.pk}/revisions/").json()
    assert [(r["number"], r["message"]) for r in history] == [(2, "new command"), (1, "")]
    diff = api.get(f"/api/v1/stacks/{stack.pk}/revisions/1/diff?to=2").json()
    assert diff["services"] == {"added": [], "removed": [], "changed": ["web"]}
    assert "-    - httpd\n+    - httpd-v2" in diff["compose_diff"]
    assert api.post(f"/api/v1/stacks/{stack.pk}/rollback", {"revision": 9},
                    format="json").status_code == 400
    back = api.post(f"/api/v1/stacks/{stack.pk}/rollback", {"revision": 1}, format="json")
    assert back.status_code == 202 and back.json()["rollback_of"] == 1
    stack.refresh_from_db()
    assert "httpd-v2" not in stack.compose
    _finish(Revision.objects.get(number=3))
    bad = api.post(f"/api/v1/stacks/{stack.pk}/services/web/scale", {"replicas": -1},
                   format="json")
    assert bad.status_code == 400 and "replicas" in bad.json()
    unknown = api.post(f"/api/v1/stacks/{stack.pk}/services/nope/scale", {"replicas": 2},
                       format="json")
    assert unknown.status_code == 400 and "web" in unknown.json()["service"][0]
    scaled = api.post(f"/api/v1/stacks/{stack.pk}/services/web/scale", {"replicas": 3},
                      format="json")
    assert scaled.status_code == 202
    assert Revision.objects.get(number=4).spec["services"]["web"]["replicas"] == 3
    exported = api.get(f"/api/v1/stacks/{stack.pk}/compose").json()["compose"]
    assert "httpd" in exported


def test_catalogue_lists_templates_and_deploys_one_with_typed_parameters(api, broker):
    listed = api.get("/api/v1/stack-templates/").json()
    keys = {t["key"] for t in listed}
    assert {"static-site", "web-cache", "scheduled-worker"} <= keys
    wrong = api.post("/api/v1/stack-templates/static-site/deploy",
                     {"name": "site", "parameters": {"PORT": "99999", "REPLICAS": "x"}},
                     format="json")
    assert wrong.status_code == 400 and {"PORT", "REPLICAS"} <= set(wrong.json())
    assert not Stack.objects.exists()
    made = api.post("/api/v1/stack-templates/static-site/deploy",
                    {"name": "site", "parameters": {"PORT": 8090, "REPLICAS": 3}},
                    format="json")
    assert made.status_code == 201, made.content
    revision = Revision.objects.get(stack__name="site")
    assert revision.spec["services"]["web"]["replicas"] == 3
    assert revision.spec["services"]["web"]["container"]["ports"] == ["8090:8080"]
    saved = api.post(f"/api/v1/stacks/{revision.stack_id}/template",
                     {"name": "our-site", "title": "Our site"}, format="json")
    assert saved.status_code == 201, saved.content
    assert StackTemplate.objects.get().parameters[0]["name"] == "IMAGE"
    assert any(t["title"] == "Our site" for t in api.get("/api/v1/stack-templates/").json())


@pytest.fixture
def team_clients(db: Any) -> dict[str, APIClient]:
    from django.contrib.auth import get_user_model

    from panel.access.models import Membership, Project, Team
    from panel.access.services import create_token
    from panel.audit.services import Actor

    team = Team.objects.create(name="shop")
    Project.objects.create(team=team, name="shop")
    other = Team.objects.create(name="other")
    Project.objects.create(team=other, name="other")
    clients = {}
    for role in ("admin", "operator", "viewer", "auditor", "outsider"):
        user = get_user_model().objects.create_user(role, password="correct horse battery")
        Membership.objects.create(user=user, team=other if role == "outsider" else team,
                                  role="viewer" if role == "outsider" else role)
        _, secret = create_token(Actor.from_user(user), user, "t")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        clients[role] = client
    return clients


def test_roles_decide_who_may_create_deploy_and_see_a_stack(team_clients, broker):
    assert team_clients["viewer"].post("/api/v1/stacks/", {"name": "v", "compose": GOOD,
                                                           "project": "shop"},
                                       format="json").status_code == 403
    made = team_clients["operator"].post("/api/v1/stacks/", {
        "name": "s", "compose": GOOD, "project": "shop", "deploy": False,
        "secrets": {"DB_PASSWORD": "x"}}, format="json")
    assert made.status_code == 201, made.content
    stack_id = made.json()["id"]
    assert team_clients["viewer"].get(f"/api/v1/stacks/{stack_id}/").status_code == 200
    assert team_clients["viewer"].post(f"/api/v1/stacks/{stack_id}/deploy", {},
                                       format="json").status_code == 403
    assert team_clients["outsider"].get(f"/api/v1/stacks/{stack_id}/").status_code == 404
    assert team_clients["outsider"].get("/api/v1/stacks/").json() == []
    assert team_clients["admin"].post(f"/api/v1/stacks/{stack_id}/deploy", {},
                                      format="json").status_code == 202
    assert not Container.objects.exists()  # the engine makes replicas, on the control worker


FILES_COMPOSE = """
services:
  web:
    image: busybox
    env_file: app.env
    secrets: [db_password]
    configs: [{source: motd, target: /etc/motd}]
    volumes: ["./site:/srv/site:ro"]
secrets:
  db_password: {file: ./db_password.txt}
configs:
  motd: {file: ./motd.txt}
"""
FILES = {"app.env": "MODE=prod\n", "db_password.txt": "hunter2-file", "motd.txt": "hello",
         "site/index.html": "<h1>hi</h1>"}


def test_a_stacks_files_are_kept_and_its_secret_files_never_shown(team_clients, broker):
    """An operator uploads the stack's directory with the compose file (relative binds need no
    platform admin); the secret file is stored encrypted and shown by name only, to every
    role and in the audit log; an update that leaves it out keeps it."""
    made = team_clients["operator"].post("/api/v1/stacks/", {
        "name": "withfiles", "compose": FILES_COMPOSE, "project": "shop", "deploy": False,
        "files": FILES}, format="json")
    assert made.status_code == 201, made.content
    stack = Stack.objects.get(name="withfiles")
    assert set(stack.files) == {"app.env", "motd.txt", "site/index.html"}
    assert stack.secret_file_names == ["db_password.txt"]
    for role in ("viewer", "operator", "admin"):
        shown = team_clients[role].get(f"/api/v1/stacks/{stack.pk}/")
        assert shown.status_code == 200
        assert shown.json()["secret_files"] == ["db_password.txt"]
        assert "hunter2-file" not in shown.content.decode()
    assert "hunter2-file" not in str(list(AuditEvent.objects.values()))
    changed = team_clients["operator"].patch(f"/api/v1/stacks/{stack.pk}/", {
        "files": {**{k: v for k, v in FILES.items() if k != "db_password.txt"},
                  "motd.txt": "changed"}}, format="json")
    assert changed.status_code == 200, changed.content
    stack.refresh_from_db()
    from panel.stacks.services import stack_secret_files

    assert stack_secret_files(stack) == {"db_password.txt": "hunter2-file"}
    assert stack.files["motd.txt"] == "changed"


@pytest.mark.parametrize("files, message", [
    (["app.env"], "must be an object"),
    ({"/etc/passwd": "x"}, "not a relative path"),
    ({"../up": "x"}, "not a relative path"),
    ({"a": "x", "a/b": "y"}, "both a file and a directory"),
    ({"big": "x" * (1024 * 1024 + 1)}, "KiB"),
    ({"bin": 5}, "must be text"),
])
def test_bad_files_are_refused_naming_the_field_and_nothing_is_created(api, broker, files,
                                                                       message):
    answer = api.post("/api/v1/stacks/", {"name": "badfiles", "compose": FILES_COMPOSE,
                                          "files": files}, format="json")
    assert answer.status_code == 400, answer.content
    assert message in str(answer.json()["files"])
    assert not Stack.objects.filter(name="badfiles").exists()


def test_compose_warnings_come_back_with_the_stack(api, broker):
    answer = api.post("/api/v1/stacks/", {"name": "warned", "deploy": False, "compose":
                                          "services:\n  web:\n    image: busybox\n"
                                          "    environment: {A: \"${NOT_SET}\"}\n"},
                      format="json")
    assert answer.status_code == 201, answer.content
    warnings = answer.json()["warnings"]
    assert [(w["path"], w["line"]) for w in warnings] == [("services.web.environment.A", 4)]
    assert "NOT_SET is not set" in warnings[0]["message"]
