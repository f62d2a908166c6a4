"""Sign-in and sign-out for the browser: password (argon2) with lockout after repeated failures
(django-axes), then a TOTP code when the user's team requires one or they enrolled a device.
Every sign-in, failure and sign-out is audited."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, login, logout, user_login_failed
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from panel.access import account, services
from panel.access.forms import SignInForm
from panel.audit.services import Actor

LOCKED_OUT = "too many failed sign-ins: this account is locked for a while"
# Browsers keep Secure cookies from these over plain HTTP too (they count as secure contexts).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def cookie_problem(request: HttpRequest) -> str:
    """Why signing in cannot work from this page, or "": over plain HTTP from another machine
    the browser drops the Secure session and CSRF cookies, and the form would just come back."""
    if request.is_secure() or not settings.SESSION_COOKIE_SECURE:
        return ""
    host = request.get_host().rsplit(":", 1)[0] if not request.get_host().startswith("[") \
        else request.get_host().split("]")[0] + "]"
    if host in LOOPBACK_HOSTS or host.endswith(".localhost"):
        return ""
    return (f"This page came over plain HTTP (http://{request.get_host()}), but Berth's "
            "sign-in cookies are marked Secure, so your browser will not keep them and signing "
            "in cannot work. Put TLS in front of Berth (a reverse proxy with HTTPS), or, on a "
            "network you trust, start it with BERTH_SECURE_COOKIES=0.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """The CSRF refusal page: says why when it is the plain-HTTP cookie problem."""
    problem = cookie_problem(request)
    text = problem or ("This form expired or was not sent by Berth's own page (CSRF check: "
                       f"{reason}). Reload the page and try again.")
    return render(request, "access/sign_in.html",
                  {"form": SignInForm(), "error": "" if problem else text,
                   "cookie_problem": problem, "next": _next(request)}, status=403)


def _actor(request: HttpRequest, name: str) -> Actor:
    actor = Actor.from_request(request, "web")
    return actor if request.user.is_authenticated else Actor(
        name=name[:150] or "anonymous", channel="web", request_id=actor.request_id,
        source_address=actor.source_address)


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return settings.LOGIN_REDIRECT_URL


@sensitive_post_parameters("password", "otp_token")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    form = SignInForm(request.POST or None)
    error, status = "", 200
    if request.method == "POST" and form.is_valid():
        username = form.cleaned_data["username"]
        user = authenticate(request, username=username,
                            password=form.cleaned_data["password"])
        actor = _actor(request, username)
        if getattr(request, "axes_locked_out", False):
            error, status = LOCKED_OUT, 429
            services.record_sign_in_failure(actor, username, "locked out")
        elif user is None:
            error, status = "wrong username or password", 401
            services.record_sign_in_failure(actor, username, "wrong username or password")
        else:
            device, reason = None, ""
            if services.two_factor_required(user):
                from django_otp import match_token, user_has_device

                code = form.cleaned_data["otp_token"].strip()
                if not user_has_device(user, confirmed=True):
                    # The password is right and a team requires two-factor: this session may
                    # only enrol an authenticator (panel.web.common.signed_in), then goes on.
                    login(request, user)
                    account.record_session(user, request, two_factor=False)
                    services.record_sign_in(Actor.from_request(request, "web"), user,
                                            enrolment_required=True)
                    return HttpResponseRedirect(f"{reverse('web-account')}?"
                                                f"{urlencode({'enrol': '1'})}")
                if not code:
                    reason = "two-factor sign-in is required: enter the code from your app"
                else:
                    device = match_token(user, code)
                    reason = "" if device else "wrong or expired authenticator code"
            if reason:
                # Counts towards the lockout like a wrong password.
                user_login_failed.send(sender=__name__, credentials={"username": username},
                                       request=request)
                services.record_sign_in_failure(actor, username, reason)
                error, status = reason, 401
            else:
                login(request, user)
                if device is not None:
                    from django_otp import login as otp_login

                    otp_login(request, device)
                account.record_session(user, request, two_factor=device is not None)
                services.record_sign_in(Actor.from_request(request, "web"), user,
                                        two_factor=device is not None)
                return HttpResponseRedirect(_next(request))
    elif request.method == "POST":
        error, status = "enter a username and a password", 400
    return render(request, "access/sign_in.html",
                  {"form": form, "error": error, "next": _next(request),
                   "cookie_problem": cookie_problem(request)}, status=status)


@require_POST
@csrf_protect
def sign_out(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        services.record_sign_out(Actor.from_request(request, "web"), request.user)
    account.forget_session(request.session.session_key)
    logout(request)
    return HttpResponseRedirect(settings.LOGIN_URL)


