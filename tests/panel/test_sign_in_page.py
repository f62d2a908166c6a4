"""The sign-in page over plain HTTP from another machine: with Secure cookies the browser
drops the session and CSRF cookies, so the page says so with the fix instead of looping."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db
LAN = {"ALLOWED_HOSTS": ["192.168.1.5", "localhost", "testserver"],
       "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True}


@override_settings(**LAN)
def test_plain_http_on_a_lan_address_says_why_signing_in_cannot_work():
    page = Client().get("/accounts/login/", HTTP_HOST="192.168.1.5:8000").content.decode()
    assert 'id="cookie-problem"' in page
    assert "BERTH_SECURE_COOKIES=0" in page and "TLS" in page
    # the POST the browser then makes carries no CSRF cookie: the refusal says the same
    refused = Client(enforce_csrf_checks=True).post(
        "/accounts/login/", {"username": "a", "password": "b"}, HTTP_HOST="192.168.1.5:8000")
    assert refused.status_code == 403 and b"BERTH_SECURE_COOKIES=0" in refused.content


@override_settings(**LAN)
@pytest.mark.parametrize("host,secure", [("localhost:8000", False), ("192.168.1.5", True)])
def test_loopback_and_https_need_no_warning(host, secure):
    page = Client().get("/accounts/login/", HTTP_HOST=host, secure=secure).content.decode()
    assert 'id="cookie-problem"' not in page and "Sign in to Berth" in page


@override_settings(ALLOWED_HOSTS=["192.168.1.5"], SESSION_COOKIE_SECURE=False)
def test_no_warning_when_secure_cookies_are_off():
    page = Client().get("/accounts/login/", HTTP_HOST="192.168.1.5:8000").content.decode()
    assert 'id="cookie-problem"' not in page
