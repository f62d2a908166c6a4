"""Sign-in hardening (argon2, lockout, TOTP required by a team, headers, cookies), API tokens
(hashed, read-only, expiring, revocable) and the policy's answers: 404 outside one's teams, 403
for a forbidden action, each refusal audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from panel.access import policy
from panel.access import services as access
from panel.access.models import ApiToken, hash_token
from panel.audit.models import AuditEvent
from panel.audit.services import Actor
from panel.workloads import services as workloads
from panel.workloads.services import Conflict

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")
PASSWORD = "a long enough passphrase"


@pytest.fixture
def team(django_user_model) -> Any:
    team = access.create_team(SYSTEM, "shop")
    access.create_project(SYSTEM, team, "shop-web")
    for name, role in (("ana", "admin"), ("oscar", "operator"), ("vera", "viewer")):
        django_user_model.objects.create_user(name, password=PASSWORD)
        access.set_member(SYSTEM, team, name, role)
    return team


def _bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _sign_in(client: Any, username: str, password: str, code: str = "") -> Any:
    return client.post("/accounts/login/", {"username": username, "password": password,
                                            "otp_token": code})


def test_passwords_are_hashed_with_argon2(team, django_user_model):
    assert django_user_model.objects.get(username="ana").password.startswith("argon2")


def test_sign_in_and_out_are_audited(client, team):
    response = _sign_in(client, "ana", PASSWORD)
    assert response.status_code == 302
    client.post("/accounts/logout/")
    actions = list(AuditEvent.objects.order_by("seq").values_list("action", "actor_name"))
    assert actions[-2:] == [("user.sign_in", "ana"), ("user.sign_out", "ana")]


def test_lockout_after_repeated_failures(client, team, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, "vera", "wrong").status_code == 401
    assert _sign_in(client, "vera", "wrong").status_code == 429  # the limit: locked
    locked = _sign_in(client, "vera", PASSWORD)  # even the right password is refused now
    assert locked.status_code == 429
    failures = AuditEvent.objects.filter(action="user.sign_in_failed", target_name="vera")
    assert failures.count() == settings.AXES_FAILURE_LIMIT + 1
    assert failures.order_by("-seq").first().details["reason"] == "locked out"
    assert "sessionid" not in locked.cookies


def test_team_requiring_totp_needs_a_code_and_sends_the_unenrolled_to_enrol(client, team,
                                                                          django_user_model):
    from django_otp.oath import totp

    access.update_team(SYSTEM, team, require_2fa=True)
    oscar = django_user_model.objects.get(username="oscar")
    # No device enrolled yet: the password opens the enrolment page and nothing else.
    forced = _sign_in(client, "oscar", PASSWORD)
    assert forced.status_code == 302 and forced["Location"] == "/account/?enrol=1"
    assert client.get("/containers/")["Location"] == "/account/?enrol=1"
    assert b'id="enrolment-required"' in client.get("/account/").content
    assert client.get("/api/v1/projects/").status_code == 401
    assert AuditEvent.objects.filter(action="user.sign_in", target_name="oscar").latest(
        "seq").details["enrolment_required"] is True
    client.logout()
    device, uri = access.enroll_totp(Actor.from_user(oscar), oscar)
    assert uri.startswith("otpauth://totp/")
    code = f"{totp(device.bin_key, device.step, device.t0, device.digits):06d}"
    access.confirm_totp(Actor.from_user(oscar), oscar, code)
    refused = _sign_in(client, "oscar", PASSWORD)
    assert refused.status_code == 401 and b"two-factor" in refused.content
    assert _sign_in(client, "oscar", PASSWORD, "000000").status_code == 401
    device.refresh_from_db()
    device.throttle_reset()  # django-otp slows down guessing after a wrong code
    # The confirmation used this step's code, and codes are single-use: take the next step's.
    code = f"{totp(device.bin_key, device.step, device.t0, device.digits, drift=1):06d}"
    assert _sign_in(client, "oscar", PASSWORD, code).status_code == 302
    assert client.get("/api/v1/me/").json()["two_factor"] == {"enrolled": True,
                                                               "required": True}


def test_session_from_before_a_2fa_requirement_stops_counting(client, team, django_user_model):
    client.force_login(django_user_model.objects.get(username="vera"))
    assert client.get("/api/v1/projects/").status_code == 200
    access.update_team(SYSTEM, team, require_2fa=True)
    assert client.get("/api/v1/projects/").status_code == 401


def test_security_headers_and_cookie_flags(client, settings):
    response = client.get("/accounts/login/")
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert response["Referrer-Policy"] == "same-origin" and response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert settings.SESSION_COOKIE_SECURE and settings.SESSION_COOKIE_HTTPONLY
    assert settings.CSRF_COOKIE_SECURE and b"csrfmiddlewaretoken" in response.content


def test_csrf_is_enforced_on_the_sign_in_form(team):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert _sign_in(strict, "ana", PASSWORD).status_code == 403


def test_tokens_are_hashed_shown_once_and_revocable(team, django_user_model):
    ana = django_user_model.objects.get(username="ana")
    token, secret = access.create_token(Actor.from_user(ana), ana, "laptop")
    assert token.key_hash == hash_token(secret) and secret not in token.key_hash
    client = _bearer(secret)
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert [t["name"] for t in listed] == ["laptop"] and "secret" not in listed[0]
    created = client.post("/api/v1/tokens/", {"name": "ci", "expires_in_days": 7},
                          format="json")
    assert created.status_code == 201 and created.json()["secret"].startswith("brt_")
    assert client.delete(f"/api/v1/tokens/{token.pk}/").status_code == 200
    assert client.get("/api/v1/me/").status_code == 401
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"apitoken.create", "apitoken.revoke"} <= actions


def test_expired_token_is_refused(team, django_user_model):
    vera = django_user_model.objects.get(username="vera")
    token, secret = access.create_token(SYSTEM, vera, "old")
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(1))
    assert _bearer(secret).get("/api/v1/projects/").status_code == 401


def test_read_only_token_never_writes_and_the_refusal_is_audited(team, django_user_model,
                                                                 make_host):
    ana = django_user_model.objects.get(username="ana")
    _, secret = access.create_token(SYSTEM, ana, "dashboard", read_only=True)
    client = _bearer(secret)
    assert client.get("/api/v1/projects/").status_code == 200
    answer = client.post("/api/v1/volumes/", {"name": "v", "project": "shop-web"},
                         format="json")
    assert answer.status_code == 403 and "read-only" in answer.json()["detail"]
    denied = AuditEvent.objects.filter(outcome="denied").order_by("-seq").first()
    assert denied.actor_name == "ana" and denied.details["reason"] == "read-only token"


def test_other_teams_objects_answer_404_and_forbidden_actions_403_both_audited(
        team, django_user_model, make_host):
    make_host("h1")
    project = team.projects.get()
    workloads.create_container(SYSTEM, {"name": "web", "image": "busybox"}, project)
    outsider = django_user_model.objects.create_user("olga")
    elsewhere = access.create_team(SYSTEM, "elsewhere")
    access.set_member(SYSTEM, elsewhere, "olga", "admin")
    olga = _bearer(access.create_token(SYSTEM, outsider, "t")[1])
    assert olga.get("/api/v1/containers/web/").status_code == 404
    assert olga.post("/api/v1/containers/web/stop/").status_code == 404
    assert olga.get("/api/v1/containers/").json()["count"] == 0
    vera = _bearer(access.create_token(SYSTEM, django_user_model.objects.get(
        username="vera"), "t")[1])
    assert vera.get("/api/v1/containers/web/").status_code == 200
    assert vera.post("/api/v1/containers/web/stop/").status_code == 403
    assert vera.get("/api/v1/containers/web/logs/").status_code == 403
    denied = list(AuditEvent.objects.filter(outcome="denied").order_by("seq")
                  .values_list("actor_name", "action", "target_name"))
    assert denied == [("olga", "container.view", "web"), ("olga", "container.stop", "web"),
                      ("vera", "container.stop", "web"), ("vera", "container.logs", "web")]


def test_team_admin_manages_members_but_not_the_last_admin(team, django_user_model):
    ana = django_user_model.objects.get(username="ana")
    client = _bearer(access.create_token(SYSTEM, ana, "t")[1])
    django_user_model.objects.create_user("nina")
    added = client.post(f"/api/v1/teams/{team.pk}/members/",
                        {"username": "nina", "role": "auditor"}, format="json")
    assert added.status_code == 201 and added.json()["role"] == "auditor"
    bad = client.post(f"/api/v1/teams/{team.pk}/members/", {"username": "nina",
                                                            "role": "boss"}, format="json")
    assert bad.status_code == 400 and "role" in bad.json()
    assert client.patch(f"/api/v1/teams/{team.pk}/members/ana/", {"role": "viewer"},
                        format="json").status_code == 409
    assert client.delete(f"/api/v1/teams/{team.pk}/members/nina/").status_code == 204
    nina = django_user_model.objects.get(username="nina")
    assert not policy.can(nina, "container.view", team.projects.get())


def test_policy_lets_a_new_resource_type_plug_in(team, django_user_model):
    policy.register("widget", {"view": policy.ANY_ROLE, "spin": policy.CHANGE})
    try:
        project = team.projects.get()

        class Widget:
            def __init__(self, project: Any) -> None:
                self.project = project

        vera = django_user_model.objects.get(username="vera")
        oscar = django_user_model.objects.get(username="oscar")
        assert policy.can(vera, "widget.view", Widget(project))
        assert not policy.can(vera, "widget.spin", Widget(project))
        assert policy.can(oscar, "widget.spin", Widget(project))
        with pytest.raises(KeyError, match="unknown action"):
            policy.can(oscar, "widget.fly", Widget(project))
    finally:
        policy._RESOURCES.pop("widget")


def test_project_with_workloads_cannot_be_removed(team, make_host):
    make_host("h1")
    project = team.projects.get()
    workloads.create_volume(SYSTEM, "data", project=project)
    with pytest.raises(Conflict, match="volume"):
        access.remove_project(SYSTEM, project)
