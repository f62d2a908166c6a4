"""The "My account" pages of every signed-in user: who they are (teams, roles, two-factor
state), their password, TOTP authenticator with a QR code, recovery codes, personal API tokens
and browser sessions.

Everything here acts on the signed-in user only, so there is no policy lookup: a token of
someone else is simply not found (404). Changes go through panel/access/account.py and
panel/access/services.py. Forms post and redirect with a message; a refused one re-renders its
page with the field named (400, 409 for a clash with the current state). What must be shown
once (the TOTP secret, recovery codes, a new token) is rendered in the POST's own response,
never cached and never shown again."""

from __future__ import annotations

from base64 import b32encode
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from panel.access import account, policy, services
from panel.access.models import ApiToken, Membership
from panel.web.account_forms import PasswordForm, TokenForm, TotpConfirmForm
from panel.web.common import actor, error_text, signed_in
from panel.web.team_forms import apply_errors
from panel.workloads.services import Conflict
from panel.workloads.spec import ValidationFailed


def _back(name: str = "web-account") -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse(name))


def _two_factor(user: Any) -> dict[str, Any]:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    devices = TOTPDevice.objects.filter(user=user)
    return {"enrolled": devices.filter(confirmed=True).exists(),
            "pending": devices.filter(confirmed=False).exists(),
            "required_by": [m.team.name for m in Membership.objects.filter(
                user=user, team__require_2fa=True).select_related("team")],
            "recovery_left": account.recovery_codes_left(user)}


def _overview(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    """The account page; `context` overrides its forms (a refused, bound one)."""
    user = request.user
    page: dict[str, Any] = {
        "platform_admin": policy.is_platform_admin(user),
        "memberships": Membership.objects.filter(user_id=user.pk).select_related("team"),
        "two_factor": _two_factor(user), "password_form": PasswordForm(),
        "confirm_form": TotpConfirmForm(),
        "n_tokens": ApiToken.objects.usable().filter(user_id=user.pk).count(),
    }
    page.update(context)
    return render(request, "account/overview.html", page, status=status)


def _refused(request: HttpRequest, exc: Exception, bound: Any = None,
             render_page: Any = _overview, **context: Any) -> HttpResponse:
    """Re-render a page after a refused change: the message names the field (bad input 400,
    a clash with the current state 409); the field errors go beside the form's fields."""
    if bound is not None and isinstance(exc, ValidationFailed):
        apply_errors(bound, exc)  # the service's errors beside the refused form's fields
    messages.error(request, error_text(exc))
    return render_page(request, status=409 if isinstance(exc, Conflict) else 400, **context)


def _form_errors(form: Any) -> ValidationFailed:
    return ValidationFailed({field if field != "__all__" else "form": list(errors)
                             for field, errors in form.errors.items()})


# --- overview and password ----------------------------------------------------------------------

@signed_in
@require_safe
def overview(request: HttpRequest) -> HttpResponse:
    return _overview(request)


@sensitive_post_parameters("current_password", "new_password", "new_password_again")
@signed_in
@require_POST
def password(request: HttpRequest) -> HttpResponse:
    """Change the password (the current one first). This session stays signed in; the others
    end (Django checks each session's password hash)."""
    form = PasswordForm(request.POST)
    if not form.is_valid():
        return _refused(request, _form_errors(form), password_form=form)
    data, user = form.cleaned_data, request.user
    assert user.is_authenticated  # @signed_in
    old_key = request.session.session_key
    try:
        with transaction.atomic():
            account.change_password(actor(request), user, data["current_password"],
                                    data["new_password"], keep_session_key=old_key)
            update_session_auth_hash(request, user)  # cycles this session's key
            account.session_moved(user, old_key, request.session.session_key)
    except ValidationFailed as exc:
        return _refused(request, exc, bound=form, password_form=form)
    messages.success(request, "password changed: other browsers signed in as you were signed "
                              "out")
    return _back()


# --- TOTP authenticator and recovery codes ------------------------------------------------------

def _qr_svg(uri: str) -> SafeString:
    """The otpauth:// URI as an inline SVG QR code: black on a white quiet zone, so it scans
    in the dark theme too. segno writes only its own path data, nothing of the page's."""
    import segno

    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff",
                                                svgclass="account-qr-code")
    return mark_safe(svg)  # noqa: S308 (segno's own markup, no user text)


def _totp_page(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    """The enrolment page of the user's pending authenticator: its QR code, its secret for
    typing in by hand, and the confirm form; the account page when none is pending."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user_id=request.user.pk, confirmed=False).first()
    if device is None:
        return _overview(request, status=status, **context)
    secret = b32encode(device.bin_key).decode().rstrip("=")
    page = {"qr_svg": _qr_svg(device.config_url), "confirm_form": TotpConfirmForm(),
            "secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))}
    page.update(context)
    return render(request, "account/totp.html", page, status=status)


@never_cache
@signed_in
@require_POST
def totp(request: HttpRequest) -> HttpResponse:
    """Enrol a new authenticator (replacing a pending one) and show its QR code."""
    services.enroll_totp(actor(request), request.user)
    return _totp_page(request)


@never_cache
@sensitive_post_parameters("code")
@signed_in
@require_POST
def totp_confirm(request: HttpRequest) -> HttpResponse:
    """Confirm the pending authenticator with a current code. This session counts as verified
    with it from now on (else two-factor sign-in, now on for the user, would send them to the
    sign-in page at once)."""
    from django_otp import login as otp_login

    form = TotpConfirmForm(request.POST)
    if not form.is_valid():
        return _refused(request, _form_errors(form), render_page=_totp_page, confirm_form=form)
    try:
        device = services.confirm_totp(actor(request), request.user, form.cleaned_data["code"])
    except ValidationFailed as exc:
        return _refused(request, exc, bound=form, render_page=_totp_page, confirm_form=form)
    otp_login(request, device)
    messages.success(request, "authenticator confirmed: sign-in now asks for its code. "
                              "Generate recovery codes in case you lose it.")
    return _back()


@signed_in
@require_POST
def totp_remove(request: HttpRequest) -> HttpResponse:
    """Remove the authenticators and the recovery codes with them."""
    count = account.remove_authenticator(actor(request), request.user)
    messages.success(request, f"{count} authenticator(s) and your recovery codes removed"
                     if count else "you had no authenticator")
    return _back()


@never_cache
@signed_in
@require_POST
def recovery(request: HttpRequest) -> HttpResponse:
    """Generate ten new recovery codes (the old ones stop working) and show them once."""
    try:
        codes = account.recovery_codes(actor(request), request.user)
    except ValidationFailed as exc:
        return _refused(request, exc)
    return render(request, "account/recovery.html", {"codes": codes})


# --- personal API tokens ------------------------------------------------------------------------

def _tokens_page(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    page: dict[str, Any] = {"tokens": ApiToken.objects.filter(user_id=request.user.pk),
                            "form": TokenForm(), "now": timezone.now()}
    page.update(context)
    return render(request, "account/tokens.html", page, status=status)


@never_cache
@signed_in
@require_http_methods(["GET", "HEAD", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """GET: the user's own tokens (never their secrets, which are not stored); POST: create
    one and show its secret in this response only."""
    if request.method != "POST":
        return _tokens_page(request)
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _refused(request, _form_errors(form), render_page=_tokens_page, form=form)
    data = form.cleaned_data
    days = data["expires_in_days"]
    try:
        token, secret = services.create_token(
            actor(request), request.user, data["name"], data["read_only"],
            timezone.now() + timedelta(days=days) if days else None)
    except ValidationFailed as exc:
        return _refused(request, exc, bound=form, render_page=_tokens_page, form=form)
    return _tokens_page(request, new_token=token, secret=secret)


@signed_in
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the user's own tokens (`pk`); anyone else's is not found."""
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=pk,
                              user_id=request.user.pk)
    try:
        services.revoke_token(actor(request), token)
    except Conflict as exc:
        return _refused(request, exc, render_page=_tokens_page)
    messages.success(request, f"token {token.name} revoked: it no longer signs anything in")
    return _back("web-account-tokens")


# --- browser sessions ---------------------------------------------------------------------------

@signed_in
@require_http_methods(["GET", "HEAD", "POST"])
def sessions(request: HttpRequest) -> HttpResponse:
    """GET: the user's browser sessions, this one marked; POST: sign out everywhere else."""
    key = request.session.session_key
    if request.method == "POST":
        count = account.sign_out_elsewhere(actor(request), request.user, key)
        messages.success(request, f"signed out {count} other session(s)")
        return _back("web-account-sessions")
    return render(request, "account/sessions.html", {
        "sessions": account.sessions_of(request.user), "current": key})
