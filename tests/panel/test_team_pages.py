"""Team administration pages with Django's test client: members added, re-roled and removed
(each audited with the team and told in the team's history), the last admin kept, the
two-factor requirement and who has not enrolled, one-time invite links, what viewers and
auditors see, 404 for other teams, and a constant number of queries on the teams list."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from panel.access import invites
from panel.access import services as access
from panel.access.models import Membership, Project, Team, TeamInvite, hash_token
from panel.audit.models import AuditEvent
from panel.audit.services import Actor
from tests.panel.fixtures import two_teams

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")
JOIN = re.compile(r"/teams/join/([A-Za-z0-9_-]{40,})/")


@pytest.fixture
def world(django_user_model: Any) -> dict[str, Any]:
    teams = two_teams(django_user_model, platform=True)
    users = teams.users
    for name in ("admin", "auditor", "newbie", "second"):
        users[name] = django_user_model.objects.create_user(name, password="pw-" + name * 3)
    access.set_member(SYSTEM, teams.team_a, "admin", "admin")
    access.set_member(SYSTEM, teams.team_a, "auditor", "auditor")
    return {"users": users, "team": teams.team_a, "alpha": teams.alpha}


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _main(response: Any) -> str:
    """The page's own content (not the header's theme and sign-out controls)."""
    return response.content.decode().split('id="main"', 1)[1]


def _membership(team: Team, username: str) -> Membership | None:
    return Membership.objects.filter(team=team, user__username=username).first()


def test_admin_adds_changes_and_removes_a_member_each_audited_and_in_the_history(world):
    team, client = world["team"], _client(world["users"]["admin"])
    page = reverse("web-team", args=[team.pk])
    response = client.post(reverse("web-team-members", args=[team.pk]),
                           {"username": "newbie", "role": "viewer"})
    assert response.status_code == 302 and response["Location"] == page
    membership = _membership(team, "newbie")
    assert membership is not None and membership.role == "viewer"

    response = client.post(reverse("web-team-member", args=[membership.pk]),
                           {"role": "operator"})
    assert response.status_code == 302
    assert _membership(team, "newbie").role == "operator"

    response = client.post(reverse("web-team-member", args=[membership.pk]),
                           {"action": "remove"})
    assert response.status_code == 302 and _membership(team, "newbie") is None

    events = list(AuditEvent.objects.filter(target_name="newbie@a-team").order_by("seq"))
    assert [(e.action, e.team_id, e.actor_name, e.channel) for e in events] == [
        ("membership.change", team.pk, "admin", "web"),
        ("membership.change", team.pk, "admin", "web"),
        ("membership.remove", team.pk, "admin", "web")]
    history = _main(client.get(page))
    assert "Admin added newbie to a-team as viewer" in history
    assert "Admin changed newbie&#x27;s role in a-team from viewer to operator" in history
    assert "Admin removed newbie (operator) from a-team" in history


def test_adding_someone_already_in_the_team_or_unknown_names_the_field(world):
    team, client = world["team"], _client(world["users"]["admin"])
    before = AuditEvent.objects.count()
    response = client.post(reverse("web-team-members", args=[team.pk]),
                           {"username": "nobody", "role": "viewer"})
    assert response.status_code == 400
    assert "username: no user named &#x27;nobody&#x27;" in response.content.decode()
    response = client.post(reverse("web-team-members", args=[team.pk]),
                           {"username": "viewer", "role": "admin"})
    assert response.status_code == 400 and "viewer is already a member (viewer)" in \
        response.content.decode()
    response = client.post(reverse("web-team-members", args=[team.pk]),
                           {"username": "newbie", "role": "owner"})
    assert response.status_code == 400 and "role:" in response.content.decode()
    membership = _membership(team, "viewer")
    response = client.post(reverse("web-team-member", args=[membership.pk]), {"role": "boss"})
    assert response.status_code == 400 and "role: &#x27;boss&#x27; is not a role" in \
        response.content.decode()
    assert _membership(team, "viewer").role == "viewer" and _membership(team, "newbie") is None
    assert AuditEvent.objects.count() == before


def test_the_last_admin_cannot_be_demoted_or_removed(world):
    team, client = world["team"], _client(world["users"]["admin"])
    own = _membership(team, "admin")
    before = AuditEvent.objects.count()
    for data in ({"role": "viewer"}, {"action": "remove"}):
        response = client.post(reverse("web-team-member", args=[own.pk]), data)
        assert response.status_code == 409
        assert "admin is the last admin of team a-team" in response.content.decode()
    assert _membership(team, "admin").role == "admin"
    assert AuditEvent.objects.count() == before


def test_require_2fa_toggles_and_the_page_names_who_has_not_enrolled(world):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    team, users = world["team"], world["users"]
    TOTPDevice.objects.create(user=users["operator"], name="phone", confirmed=True)
    TOTPDevice.objects.create(user=users["viewer"], name="pending", confirmed=False)
    response = _client(users["admin"]).post(reverse("web-team-settings", args=[team.pk]),
                                            {"description": "the A team", "require_2fa": "on"})
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.require_2fa and team.description == "the A team"
    event = AuditEvent.objects.filter(action="team.change").latest("seq")
    assert event.team_id == team.pk and event.details["after"]["require_2fa"] is True

    assert [m.user.username for m in invites.members_without_2fa(team)] == [
        "admin", "auditor", "viewer"]
    platform = _client(users["platform"])  # the team's members must now sign in with a code
    page = _main(platform.get(reverse("web-team", args=[team.pk])))
    listed = page.split('id="not-enrolled"', 1)[1].split("</ul>", 1)[0]
    assert "admin" in listed and "viewer" in listed and "auditor" in listed
    assert "operator" not in listed
    assert "now requires two-factor sign-in" in page

    response = platform.post(reverse("web-team-settings", args=[team.pk]),
                             {"description": "the A team"})
    assert response.status_code == 302
    team.refresh_from_db()
    assert not team.require_2fa


def test_members_without_2fa_is_one_query(world, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert len(list(invites.members_without_2fa(world["team"]))) == 4


def test_an_invite_link_makes_a_member_once(world):
    team, users = world["team"], world["users"]
    admin = _client(users["admin"])
    response = admin.post(reverse("web-team-invite", args=[team.pk]),
                          {"role": "operator", "days": "7"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    secret = JOIN.search(response.content.decode()).group(1)
    invite = TeamInvite.objects.get()
    assert invite.key_hash == hash_token(secret) and invite.role == "operator"
    created = AuditEvent.objects.get(action="team.invite")
    assert created.team_id == team.pk and created.details["role"] == "operator"
    assert not AuditEvent.objects.filter(details_json__contains=secret).exists()
    assert secret not in admin.get(reverse("web-team", args=[team.pk])).content.decode()

    newbie = _client(users["newbie"])
    join = reverse("web-team-join", args=[secret])
    page = newbie.get(join)
    assert page.status_code == 200 and "Join a-team as operator" in page.content.decode()
    assert page["Referrer-Policy"] == "no-referrer"
    assert _membership(team, "newbie") is None  # opening the link changes nothing
    response = newbie.post(join)
    assert response.status_code == 302
    assert response["Location"] == reverse("web-team", args=[team.pk])
    assert _membership(team, "newbie").role == "operator"
    invite.refresh_from_db()
    assert invite.used_by == "newbie" and invite.used_at is not None
    accepted = AuditEvent.objects.get(action="team.invite_accept")
    assert accepted.team_id == team.pk and accepted.actor_name == "newbie"
    assert "Newbie joined a-team as operator with an invite link from admin" in \
        _main(admin.get(reverse("web-team", args=[team.pk])))

    second = _client(users["second"])
    for response in (second.get(join), second.post(join)):
        assert response.status_code == 400
        text = _main(response)
        assert "already used" in text and "a-team" not in text
    assert _membership(team, "second") is None


def test_expired_revoked_and_unknown_invites_are_refused_without_naming_the_team(world):
    team, users = world["team"], world["users"]
    admin_actor = Actor.from_user(users["admin"], "web")
    expired, expired_secret = invites.create_invite(admin_actor, team, "viewer", days=1)
    TeamInvite.objects.filter(pk=expired.pk).update(expires_at=timezone.now()
                                                    - timedelta(minutes=1))
    revoked, revoked_secret = invites.create_invite(admin_actor, team, "viewer")
    response = _client(users["admin"]).post(reverse("web-team-invite-revoke",
                                                    args=[revoked.pk]))
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="team.invite_revoke").team_id == team.pk
    newbie = _client(users["newbie"])
    for secret, reason in ((expired_secret, "expired"), (revoked_secret, "revoked"),
                           ("x" * 43, "not valid")):
        response = newbie.post(reverse("web-team-join", args=[secret]))
        assert response.status_code == 400, secret
        assert reason in _main(response) and "a-team" not in _main(response)
    assert _membership(team, "newbie") is None
    assert invites.pending_invites(team).count() == 0


def test_an_invite_for_someone_already_in_the_team_is_refused_and_left_unused(world):
    team, users = world["team"], world["users"]
    _, secret = invites.create_invite(Actor.from_user(users["admin"]), team, "admin")
    viewer = _client(users["viewer"])
    assert "already a member" in viewer.get(reverse("web-team-join", args=[secret])
                                            ).content.decode()
    response = viewer.post(reverse("web-team-join", args=[secret]))
    assert response.status_code == 409 and "with role viewer" in response.content.decode()
    assert _membership(team, "viewer").role == "viewer"
    assert invites.pending_invites(team).count() == 1


def test_anonymous_join_goes_through_the_sign_in_page(world):
    _, secret = invites.create_invite(SYSTEM, world["team"], "viewer")
    response = Client().get(reverse("web-team-join", args=[secret]))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=%2Fteams%2Fjoin%2F")


def _change_posts(team: Team) -> list[tuple[str, dict[str, str]]]:
    membership = _membership(team, "operator")
    invite, _ = invites.create_invite(SYSTEM, team, "viewer")
    return [
        (reverse("web-team-members", args=[team.pk]), {"username": "newbie", "role": "admin"}),
        (reverse("web-team-member", args=[membership.pk]), {"role": "admin"}),
        (reverse("web-team-member", args=[membership.pk]), {"action": "remove"}),
        (reverse("web-team-settings", args=[team.pk]), {"require_2fa": "on"}),
        (reverse("web-team-invite", args=[team.pk]), {"role": "admin", "days": "7"}),
        (reverse("web-team-invite-revoke", args=[invite.pk]), {}),
        (reverse("web-team-projects", args=[team.pk]), {"name": "sneaky"}),
    ]


@pytest.mark.parametrize("who", ["viewer", "auditor", "operator"])
def test_members_who_may_not_administer_see_no_controls_and_get_403(world, who):
    team = world["team"]
    client = _client(world["users"][who])
    response = client.get(reverse("web-team", args=[team.pk]))
    assert response.status_code == 200
    page = _main(response)
    assert "<form" not in page and "<button" not in page and "<select" not in page
    assert "alpha" in page and "viewer" in page  # projects and members are shown
    assert ("History" in page) == (who == "auditor")  # admins and auditors see the history
    posts = _change_posts(team)
    denied = AuditEvent.objects.filter(outcome="denied").count()
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert AuditEvent.objects.filter(outcome="denied").count() == denied + len(posts)
    assert _membership(team, "operator").role == "operator"
    assert not team.invites.filter(role="admin").exists()
    assert not Project.objects.filter(name="sneaky").exists()


def test_a_member_of_another_team_gets_404_everywhere(world):
    team = world["team"]
    client = _client(world["users"]["other"])
    assert client.get(reverse("web-team", args=[team.pk])).status_code == 404
    denied = AuditEvent.objects.filter(outcome="denied").count()
    posts = _change_posts(team)
    for url, data in posts:
        assert client.post(url, data).status_code == 404, url
    assert AuditEvent.objects.filter(outcome="denied").count() == denied + len(posts)
    assert "a-team" not in client.get(reverse("web-teams")).content.decode()


def test_admins_create_projects_and_platform_admins_create_teams(world):
    team, users = world["team"], world["users"]
    admin = _client(users["admin"])
    response = admin.post(reverse("web-team-projects", args=[team.pk]),
                          {"name": "beta", "description": "second"})
    assert response.status_code == 302 and Project.objects.get(name="beta").team == team
    response = admin.post(reverse("web-team-projects", args=[team.pk]), {"name": "bad name!"})
    assert response.status_code == 400 and "name:" in response.content.decode()
    assert "<form" in _main(admin.get(reverse("web-team", args=[team.pk])))

    assert admin.post(reverse("web-teams"), {"name": "c-team"}).status_code == 403
    assert "Create team" not in admin.get(reverse("web-teams")).content.decode()
    platform = _client(users["platform"])
    response = platform.post(reverse("web-teams"), {"name": "c-team", "require_2fa": "on"})
    created = Team.objects.get(name="c-team")
    assert response.status_code == 302 and created.require_2fa
    assert response["Location"] == reverse("web-team", args=[created.pk])
    response = platform.post(reverse("web-teams"), {"name": "c-team"})
    assert response.status_code == 400 and "already exists" in response.content.decode()


def test_the_teams_list_shows_roles_and_counts(world):
    page = _main(_client(world["users"]["admin"]).get(reverse("web-teams")))
    assert "a-team" in page and "b-team" not in page
    row = page.split("a-team", 1)[1].split("</tr>", 1)[0]
    assert "<td>admin</td><td>4</td><td>1</td>" in row


def test_the_teams_list_takes_a_constant_number_of_queries(world, django_user_model):
    platform = _client(world["users"]["platform"])
    admin = _client(world["users"]["admin"])

    def count(client: Client) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("web-teams")).status_code == 200
        return len(queries)

    few_platform, few_admin = count(platform), count(admin)
    for n in range(20):
        extra = access.create_team(SYSTEM, f"team-{n}")
        access.create_project(SYSTEM, extra, f"project-{n}")
        access.set_member(SYSTEM, extra, "admin", "admin")
        access.set_member(SYSTEM, extra, "viewer", "viewer")
    assert count(platform) == few_platform
    assert count(admin) == few_admin


# --- team API tokens ----------------------------------------------------------------------------

SECRET = re.compile(r'id="team-token-secret"[^>]*value="(brt_[A-Za-z0-9_-]{40,})"')


def _bearer(secret: str) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _tokens_table(page: str) -> str:
    return page.split('id="team-tokens"', 1)[1].split("</table>", 1)[0]


def _members_table(page: str) -> str:
    return page.split('id="members-h"', 1)[1].split("</table>", 1)[0]


def test_a_team_token_is_shown_once_acts_with_its_role_on_the_api_and_is_revoked(world):
    from panel.access.models import ApiToken

    team, users = world["team"], world["users"]
    admin = _client(users["admin"])
    page_url = reverse("web-team", args=[team.pk])
    response = admin.post(reverse("web-team-tokens", args=[team.pk]),
                          {"name": "ci deploys", "role": "viewer", "expires_in_days": "30"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    secret = SECRET.search(response.content.decode()).group(1)
    token = ApiToken.objects.select_related("user").get(team=team)
    account = token.user
    assert token.key_hash == hash_token(secret) and token.prefix == secret[:10]
    assert token.name == "ci deploys" and token.team_role == "viewer" and not token.read_only
    assert account.username.startswith("token-a-team-") and account.is_active
    assert not account.has_usable_password() and not account.is_superuser
    assert _membership(team, account.username).role == "viewer"
    created = AuditEvent.objects.get(action="team.token_create")
    assert created.team_id == team.pk and created.actor_name == "admin"
    assert created.details["after"]["role"] == "viewer"
    assert created.details["after"]["name"] == "ci deploys"
    assert created.details["after"]["expires_at"] is not None
    assert not AuditEvent.objects.filter(details_json__contains=secret).exists()
    assert not AuditEvent.objects.filter(details_json__contains=secret[10:20]).exists()
    # the service account never signs in to the browser
    assert not Client().login(username=account.username, password="")

    page = _main(admin.get(page_url))
    assert secret not in page and secret[10:] not in page
    assert account.username not in page  # not a person: neither a member nor "not enrolled"
    row = _tokens_table(page)
    assert "ci deploys" in row and "viewer" in row and "never</td>" in row  # not used yet
    assert token.expires_at.strftime("%Y-%m-%d") in row
    assert "Admin created the team token ci deploys (viewer) of a-team" in page

    api = _bearer(secret)
    assert api.get("/api/v1/containers/").status_code == 200
    assert api.post("/api/v1/containers/", {"image": "busybox", "project": "alpha"},
                    format="json").status_code == 403
    token.refresh_from_db()
    assert token.last_used_at is not None
    row = _tokens_table(_main(admin.get(page_url)))
    assert token.last_used_at.strftime("%Y-%m-%d") in row and "active" in row

    response = admin.post(reverse("web-team-token-revoke", args=[token.pk]))
    assert response.status_code == 302 and response["Location"] == page_url
    assert api.get("/api/v1/containers/").status_code == 401
    account.refresh_from_db()
    token.refresh_from_db()
    assert not account.is_active and token.revoked_at is not None
    assert _membership(team, account.username) is None
    revoked = AuditEvent.objects.get(action="team.token_revoke")
    assert revoked.team_id == team.pk and revoked.details["before"]["name"] == "ci deploys"
    page = _main(admin.get(page_url))
    assert "revoked" in _tokens_table(page) and secret not in page
    assert "Admin revoked the team token ci deploys (viewer) of a-team" in page
    # revoked twice: a conflict, nothing more recorded
    assert admin.post(reverse("web-team-token-revoke", args=[token.pk])).status_code == 409
    assert AuditEvent.objects.filter(action="team.token_revoke").count() == 1


def test_platform_admins_create_team_tokens_and_read_only_ones_only_look(world):
    from panel.access.models import ApiToken

    team, platform = world["team"], _client(world["users"]["platform"])
    response = platform.post(reverse("web-team-tokens", args=[team.pk]),
                             {"name": "ops", "role": "operator", "read_only": "on"})
    assert response.status_code == 200
    secret = SECRET.search(response.content.decode()).group(1)
    token = ApiToken.objects.get(team=team)
    assert token.read_only and token.team_role == "operator" and token.expires_at is None
    api = _bearer(secret)
    assert api.get("/api/v1/containers/").status_code == 200
    assert api.post("/api/v1/volumes/", {"name": "v2", "project": "alpha"},
                    format="json").status_code == 403


def test_team_tokens_are_listed_in_one_query(world, django_assert_num_queries):
    from panel.access import team_tokens

    for name in ("one", "two", "three"):
        team_tokens.create_team_token(SYSTEM, world["team"], name, "viewer")
    with django_assert_num_queries(1):
        listed = [(t.name, t.team_role, t.prefix, t.user.username, t.is_usable)
                  for t in team_tokens.team_tokens(world["team"])]
    assert [row[0] for row in listed] == ["three", "two", "one"]


def test_viewers_see_no_token_section_and_other_teams_get_404(world):
    from panel.access import team_tokens

    team, users = world["team"], world["users"]
    token, secret = team_tokens.create_team_token(SYSTEM, team, "ci", "viewer")
    viewer = _client(users["viewer"])
    page = _main(viewer.get(reverse("web-team", args=[team.pk])))
    assert "Team API tokens" not in page and "ci" not in page.split('id="projects-h"')[0]
    assert token.user.username not in page
    assert viewer.post(reverse("web-team-tokens", args=[team.pk]),
                       {"name": "mine", "role": "viewer"}).status_code == 403
    assert viewer.post(reverse("web-team-token-revoke", args=[token.pk])).status_code == 403
    other = _client(users["other"])  # admin of b-team
    denied = AuditEvent.objects.filter(outcome="denied").count()
    assert other.post(reverse("web-team-token-revoke", args=[token.pk])).status_code == 404
    assert other.post(reverse("web-team-tokens", args=[team.pk]),
                      {"name": "mine", "role": "admin"}).status_code == 404
    assert AuditEvent.objects.filter(outcome="denied").count() == denied + 2
    token.refresh_from_db()
    assert token.revoked_at is None and team.api_tokens.count() == 1
    assert _bearer(secret).get("/api/v1/containers/").status_code == 200
    # a personal token is not a team token: not found here, even for a platform admin
    personal, _ = access.create_token(SYSTEM, users["admin"], "mine")
    platform = _client(users["platform"])
    assert platform.post(reverse("web-team-token-revoke", args=[personal.pk])).status_code == 404


@pytest.mark.parametrize(("data", "field"), [
    ({"role": "viewer"}, "name"),
    ({"name": "ci", "role": "owner"}, "role"),
    ({"name": "ci", "role": "viewer", "expires_in_days": "0"}, "expires_in_days"),
    ({"name": "ci", "role": "viewer", "expires_in_days": "soon"}, "expires_in_days"),
])
def test_bad_team_token_input_names_the_field_and_creates_nothing(world, data, field,
                                                                  django_user_model):
    from panel.access.models import ApiToken

    team = world["team"]
    counts = (django_user_model.objects.count(), Membership.objects.count(),
              ApiToken.objects.count(), AuditEvent.objects.count())
    response = _client(world["users"]["admin"]).post(reverse("web-team-tokens", args=[team.pk]),
                                                      data)
    assert response.status_code == 400
    assert f"{field}:" in response.content.decode()
    assert not SECRET.search(response.content.decode())
    assert (django_user_model.objects.count(), Membership.objects.count(),
            ApiToken.objects.count(), AuditEvent.objects.count()) == counts


def test_team_token_service_accounts_are_not_people(world):
    """An admin-scoped token does not keep the team administered, its membership is changed
    only by revoking it, and it cannot mint tokens of its own (which would outlive it)."""
    from panel.access import team_tokens
    from panel.workloads.services import Conflict

    team, users = world["team"], world["users"]
    admin = _client(users["admin"])
    token, secret = team_tokens.create_team_token(Actor.from_user(users["admin"], "web"), team,
                                                  "robot", "admin")
    account = token.user.username
    own = _membership(team, "admin")
    response = admin.post(reverse("web-team-member", args=[own.pk]), {"role": "viewer"})
    assert response.status_code == 409 and "admin is the last admin" in \
        response.content.decode()
    service = _membership(team, account)
    for data in ({"role": "viewer"}, {"action": "remove"}):
        response = admin.post(reverse("web-team-member", args=[service.pk]), data)
        assert response.status_code == 409 and "revoke the token" in response.content.decode()
    assert _membership(team, account).role == "admin"
    response = admin.post(reverse("web-team-members", args=[team.pk]),
                          {"username": account, "role": "viewer"})
    assert response.status_code in (400, 409)
    other_team = Team.objects.get(name="b-team")
    with pytest.raises(Conflict):  # nor can another team's admin take it in
        access.set_member(SYSTEM, other_team, account, "viewer")
    with pytest.raises(Conflict):
        access.update_user(SYSTEM, token.user, password="a long enough passphrase")
    response = _bearer(secret).post("/api/v1/tokens/", {"name": "forever"}, format="json")
    assert response.status_code == 409 and token.user.api_tokens.count() == 1
    # an operator may not hand out tokens; only admins can make an admin-scoped one
    with pytest.raises(PermissionDenied):
        team_tokens.create_team_token(Actor.from_user(users["operator"], "web"), team,
                                      "sneaky", "admin")
