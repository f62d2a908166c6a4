"""The "My account" pages with Django's test client: the password change (current one first,
this session kept, the others ended), TOTP enrolment with an inline SVG QR code and a real
code, one-time recovery codes that sign in once, personal API tokens whose secret is shown once,
and browser sessions signed out elsewhere. Every change is audited, once."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from panel.access.models import ApiToken, UserSession, hash_token
from panel.audit.models import AuditEvent
from tests.panel.fixtures import main_of, page_client, two_teams

pytestmark = pytest.mark.django_db
PASSWORD = "pw-operatoroperatoroperator"  # two_teams: "pw-" + name * 3
NEW_PASSWORD = "a brand new long passphrase"
LOGIN = "/accounts/login/"


@pytest.fixture
def users(django_user_model: Any) -> dict[str, Any]:
    return two_teams(django_user_model).users



def _sign_in(client: Client, username: str, password: str, code: str = "") -> Any:
    return client.post(LOGIN, {"username": username, "password": password, "otp_token": code})



def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def _totp_code(user: Any, drift: int = 0) -> str:
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user).order_by("-pk").first()
    assert device is not None
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, drift):0{device.digits}d}"


def _enrol(client: Client, user: Any) -> None:
    """Enrol and confirm an authenticator through the pages."""
    assert client.post(reverse("web-account-totp")).status_code == 200
    confirmed = client.post(reverse("web-account-totp-confirm"), {"code": _totp_code(user)})
    assert confirmed.status_code == 302


def test_account_page_shows_who_you_are_and_needs_a_sign_in(users):
    response = page_client(users["operator"]).get(reverse("web-account"))
    assert response.status_code == 200
    page = main_of(response)
    assert "operator" in page and "a-team" in page and "Set up an authenticator" in page
    assert 'for="pw-current_password"' in page and 'id="pw-current_password"' in page
    anonymous = Client().get(reverse("web-account"))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(LOGIN)
    assert page_client(users["operator"]).get(reverse("web-account-password")).status_code == 405


def test_wrong_current_password_is_refused_naming_the_field_and_changes_nothing(users):
    user, client = users["operator"], page_client(users["operator"])
    before = user.password
    response = client.post(reverse("web-account-password"), {
        "current_password": "not it", "new_password": NEW_PASSWORD,
        "new_password_again": NEW_PASSWORD})
    assert response.status_code == 400 and "current_password" in main_of(response)
    assert "not it" not in response.content.decode()
    user.refresh_from_db()
    assert user.password == before and not _events("user.password_change")

    weak = client.post(reverse("web-account-password"), {
        "current_password": PASSWORD, "new_password": "short", "new_password_again": "short"})
    assert weak.status_code == 400 and "new_password" in main_of(weak)
    mismatch = client.post(reverse("web-account-password"), {
        "current_password": PASSWORD, "new_password": NEW_PASSWORD,
        "new_password_again": NEW_PASSWORD + "!"})
    assert mismatch.status_code == 400 and "new_password_again" in main_of(mismatch)
    user.refresh_from_db()
    assert user.password == before and not _events("user.password_change")


def test_password_change_keeps_this_session_ends_the_others_and_is_audited(users):
    here, elsewhere = Client(), Client()
    assert _sign_in(here, "operator", PASSWORD).status_code == 302
    assert _sign_in(elsewhere, "operator", PASSWORD).status_code == 302
    response = here.post(reverse("web-account-password"), {
        "current_password": PASSWORD, "new_password": NEW_PASSWORD,
        "new_password_again": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("web-account")

    assert here.get(reverse("web-account")).status_code == 200  # this session survives
    ended = elsewhere.get(reverse("web-account"))
    assert ended.status_code == 302 and ended["Location"].startswith(LOGIN)
    listed = UserSession.objects.filter(user=users["operator"])
    assert [s.session_key for s in listed] == [here.session.session_key]

    (event,) = _events("user.password_change")
    assert event.actor_name == "operator" and event.channel == "web"
    assert event.details == {"other_sessions_ended": 1}
    assert PASSWORD not in event.details_json and NEW_PASSWORD not in event.details_json
    assert _sign_in(Client(), "operator", PASSWORD).status_code == 401
    assert _sign_in(Client(), "operator", NEW_PASSWORD).status_code == 302


def test_totp_enrolment_shows_an_svg_qr_code_and_a_real_code_confirms_it(users):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user, client = users["operator"], page_client(users["operator"])
    response = client.post(reverse("web-account-totp"))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    page = main_of(response)
    assert "<svg" in page and 'role="img"' in page and 'for="totp-secret"' in page
    assert 'for="totp-code"' in page

    wrong = client.post(reverse("web-account-totp-confirm"), {"code": "000000"})
    assert wrong.status_code == 400 and "code:" in main_of(wrong) and "<svg" in main_of(wrong)
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()

    device = TOTPDevice.objects.get(user=user)
    device.throttle_reset()  # the wrong code above slowed further tries down
    confirmed = client.post(reverse("web-account-totp-confirm"), {"code": _totp_code(user)})
    assert confirmed.status_code == 302
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1
    # two-factor sign-in is now on for this user, and this session counts as verified
    page = main_of(client.get(reverse("web-account")))
    assert "Sign-in asks for a code" in page and "Generate recovery codes" in page
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="user.totp")
            .order_by("seq")] == ["user.totp_enroll", "user.totp_confirm"]


def test_recovery_codes_need_an_authenticator_sign_in_once_and_are_shown_once(users):
    user, client = users["operator"], page_client(users["operator"])
    refused = client.post(reverse("web-account-recovery"))
    assert refused.status_code == 400 and "totp:" in main_of(refused)
    _enrol(client, user)

    response = client.post(reverse("web-account-recovery"))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", main_of(response))
    assert len(codes) == 10 and len(set(codes)) == 10
    assert not any(code in main_of(client.get(reverse("web-account"))) for code in codes)
    (event,) = _events("user.recovery_codes")
    assert not any(code in event.details_json for code in codes)

    browser = Client()
    assert _sign_in(browser, "operator", PASSWORD, codes[0]).status_code == 302
    assert browser.get(reverse("web-account")).status_code == 200
    assert _sign_in(Client(), "operator", PASSWORD, codes[0]).status_code == 401  # spent
    assert "9 unused recovery codes left" in main_of(client.get(reverse("web-account")))

    renewed = client.post(reverse("web-account-recovery"))
    assert renewed.status_code == 200
    assert _sign_in(Client(), "operator", PASSWORD, codes[1]).status_code == 401  # replaced


def test_token_secret_is_shown_once_never_listed_and_only_own_tokens_revoke(users):
    client = page_client(users["operator"])
    bad = client.post(reverse("web-account-tokens"), {"name": "", "expires_in_days": "0"})
    assert bad.status_code == 400 and "name:" in main_of(bad) and "expires_in_days" in main_of(bad)
    assert not ApiToken.objects.exists()

    response = client.post(reverse("web-account-tokens"), {"name": "nightly backups",
                                                           "read_only": "on",
                                                           "expires_in_days": "30"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    (secret,) = re.findall(r'value="(brt_[^"]+)"', main_of(response))
    token = ApiToken.objects.get(user=users["operator"])
    assert token.key_hash == hash_token(secret) and token.read_only and token.expires_at
    listing = client.get(reverse("web-account-tokens"))
    assert listing.status_code == 200 and secret not in listing.content.decode()
    assert "nightly backups" in main_of(listing) and token.prefix in main_of(listing)

    theirs = page_client(users["other"])
    assert theirs.post(reverse("web-account-token-revoke", args=[token.pk])).status_code == 404
    assert "nightly backups" not in main_of(theirs.get(reverse("web-account-tokens")))
    token.refresh_from_db()
    assert token.revoked_at is None

    revoked = client.post(reverse("web-account-token-revoke", args=[token.pk]))
    assert revoked.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    again = client.post(reverse("web-account-token-revoke", args=[token.pk]))
    assert again.status_code == 409 and "already revoked" in main_of(again)
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="apitoken.")
            .order_by("seq")] == ["apitoken.create", "apitoken.revoke"]


def test_sign_out_elsewhere_ends_the_other_session_and_is_audited(users):
    here, elsewhere = Client(), Client()
    assert _sign_in(here, "operator", PASSWORD).status_code == 302
    assert _sign_in(elsewhere, "operator", PASSWORD, ).status_code == 302
    listing = here.get(reverse("web-account-sessions"))
    assert listing.status_code == 200
    assert main_of(listing).count("<tr aria-current") == 1 and "this session" in main_of(listing)
    assert UserSession.objects.filter(user=users["operator"]).count() == 2

    response = here.post(reverse("web-account-sessions"))
    assert response.status_code == 302
    ended = elsewhere.get(reverse("web-account"))
    assert ended.status_code == 302 and ended["Location"].startswith(LOGIN)
    assert here.get(reverse("web-account")).status_code == 200
    (event,) = _events("user.sign_out_elsewhere")
    assert event.actor_name == "operator" and event.details == {"sessions": 1}
    assert list(UserSession.objects.values_list("session_key", flat=True)) == [
        here.session.session_key]

    here.post("/accounts/logout/")
    assert not UserSession.objects.exists()
