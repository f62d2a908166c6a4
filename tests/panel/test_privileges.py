"""Who may use the container fields that loosen isolation (panel/workloads/privileges.py): the
team's container policy, set by its admins, and what only platform administrators may do; every
refusal names the field, the value and who can allow it."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from panel.access import services as access
from panel.audit.models import AuditEvent
from panel.audit.services import Actor
from panel.workloads.models import Container
from panel.workloads.privileges import privilege_problems
from tests.panel.fixtures import two_teams

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(django_user_model: Any, make_host: Any, broker: Any) -> Any:
    make_host("h1")
    teams = two_teams(django_user_model, platform=True)
    teams.users["teamadmin"] = django_user_model.objects.create_user("teamadmin", password="pw")
    access.set_member(Actor.system("tests"), teams.team_a, "teamadmin", "admin")
    return teams


def _client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _create(world: Any, user: str, **fields: Any) -> Any:
    return _client(world.users[user]).post(
        "/api/v1/containers/", {"image": "busybox", "project": world.alpha.pk, **fields},
        format="json")


def test_operator_is_refused_sys_admin_with_the_message_naming_a_platform_admin(world):
    response = _create(world, "operator", cap_add=["SYS_ADMIN"])
    assert response.status_code == 400
    assert response.json()["cap_add"] == [
        "cap_add SYS_ADMIN needs a platform administrator: it reaches past the container's "
        "namespaces to the host"]
    assert Container.objects.count() == 0


def test_net_admin_needs_the_team_policy_and_a_team_admin_can_allow_it(world):
    refused = _create(world, "operator", cap_add=["NET_ADMIN"])
    assert refused.status_code == 400
    assert "is not allowed for team a-team: a team admin can allow it" in \
        refused.json()["cap_add"][0]
    changed = _client(world.users["teamadmin"]).patch(
        f"/api/v1/teams/{world.team_a.pk}/", {"allowed_capabilities": ["cap_net_admin"]},
        format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["allowed_capabilities"] == ["NET_ADMIN"]
    assert AuditEvent.objects.filter(action="team.change", target_name="a-team").exists()
    assert _create(world, "operator", cap_add=["NET_ADMIN"]).status_code == 201


def test_no_team_policy_can_allow_a_host_wide_capability(world):
    response = _client(world.users["teamadmin"]).patch(
        f"/api/v1/teams/{world.team_a.pk}/", {"allowed_capabilities": ["SYS_ADMIN"]},
        format="json")
    assert response.status_code == 400
    assert "only a platform administrator" in response.json()["allowed_capabilities"][0]


def test_adding_back_a_default_capability_and_harmless_fields_need_nothing(world):
    response = _create(world, "operator", cap_drop=["ALL"], cap_add=["CHOWN"], init=True,
                       tmpfs=["/run"], shm_size="128m", extra_hosts=["db:10.0.0.9"],
                       dns=["10.0.0.2"], ulimits={"nofile": {"soft": 1024, "hard": 2048}})
    assert response.status_code == 201, response.content


def test_platform_admin_may_use_privileged_and_host_namespaces(world):
    response = _create(world, "platform", privileged=True, pid="host", network_mode="host",
                       devices=["/dev/fuse"], security_opt=["seccomp=unconfined"])
    assert response.status_code == 201, response.content


def test_sysctls_follow_the_team_setting(world):
    # namespaced sysctls (the runtime refuses others) are allowed until a team admin says no
    assert _create(world, "operator", name="a",
                   sysctls={"net.core.somaxconn": "1024"}).status_code == 201
    access.update_team(Actor.system("tests"), world.team_a, allow_sysctls=False)
    assert "sysctls" in _create(world, "operator", name="b",
                                sysctls={"net.core.somaxconn": "1024"}).json()


def test_bind_mounts_only_under_the_paths_a_platform_admin_allowed(world):
    refused = _create(world, "operator", volumes=["/srv/media/films:/films:ro"])
    assert refused.status_code == 400
    assert "has no allowed host paths" in refused.json()["volumes"][0]
    team_admin = _client(world.users["teamadmin"]).patch(
        f"/api/v1/teams/{world.team_a.pk}/", {"host_paths": ["/srv/media"]}, format="json")
    assert team_admin.status_code == 403
    platform = _client(world.users["platform"]).patch(
        f"/api/v1/teams/{world.team_a.pk}/", {"host_paths": ["/srv/media/"]}, format="json")
    assert platform.status_code == 200 and platform.json()["host_paths"] == ["/srv/media"]
    assert _create(world, "operator", volumes=["/srv/media/films:/films:ro"]).status_code == 201
    outside = _create(world, "operator", volumes=["/srv/mediaX:/x", "/etc:/host-etc:ro"])
    assert outside.status_code == 400
    assert len(outside.json()["volumes"]) == 2
    assert "may bind only under /srv/media" in outside.json()["volumes"][0]


def test_joining_another_containers_network_only_within_the_project(world):
    assert _create(world, "operator", name="web").status_code == 201
    assert _create(world, "operator", network_mode="container:web").status_code == 201
    refused = _create(world, "operator", network_mode="container:ghost")
    assert refused.status_code == 400
    assert "no container of this project" in refused.json()["network_mode"][0]


@pytest.mark.parametrize(("fields", "refused"), [
    ({"privileged": True}, "privileged"),
    ({"cap_add": ["ALL"]}, "cap_add"),
    ({"cap_add": ["sys_ptrace"]}, "cap_add"),
    ({"devices": ["/dev/sda"]}, "devices"),
    ({"ipc": "host"}, "ipc"),
    ({"security_opt": ["apparmor=unconfined"]}, "security_opt"),
    ({"security_opt": ["no-new-privileges:false"]}, "security_opt"),
    ({"volumes": ["/:/host"]}, "volumes"),
])
def test_dangerous_fields_need_a_platform_admin_whatever_the_team_allows(fields, refused):
    class Team:
        name = "t"
        allowed_capabilities = ["NET_ADMIN", "SYS_NICE"]
        allow_sysctls = True
        host_paths = ["/srv"]

    problems = privilege_problems(fields, platform_admin=False, team=Team())
    assert list(problems) == [refused]
    assert "needs a platform administrator" in problems[refused][0]
    assert privilege_problems(fields, platform_admin=True, team=Team()) == {}


COMPOSE = """services:
  web:
    image: busybox
    command: ["sleep", "600"]
{extra}"""


def _stack(world: Any, user: str, extra: str) -> Any:
    return _client(world.users[user]).post(
        "/api/v1/stacks/", {"name": "shop", "project": "alpha",
                            "compose": COMPOSE.format(extra=extra)}, format="json")


def test_a_stack_with_privileged_from_an_operator_is_refused_at_the_line(world):
    response = _stack(world, "operator", "    privileged: true\n    pid: host\n")
    assert response.status_code == 400, response.content
    issues = response.json()["compose"]
    assert [(i["path"], i["line"]) for i in issues] == [
        ("services.web.privileged", 5), ("services.web.pid", 6)]
    assert "needs a platform administrator" in issues[0]["message"]
    assert _stack(world, "platform", "    privileged: true\n").status_code == 201


def test_a_stack_bind_mount_follows_the_teams_host_paths(world):
    extra = "    volumes:\n      - /srv/media:/media:ro\n"
    assert _stack(world, "operator", extra).status_code == 400
    access.update_team(Actor.system("tests"), world.team_a, host_paths=["/srv/media"])
    assert _stack(world, "operator", extra).status_code == 201, "allowed path"
    response = _client(world.users["operator"]).patch(
        "/api/v1/stacks/shop/", {"compose": COMPOSE.format(
            extra="    volumes:\n      - /etc:/host-etc:ro\n")}, format="json")
    assert response.status_code == 400
    assert response.json()["compose"][0]["path"] == "services.web.volumes"
