"""Service functions of a person's own account: their password, recovery codes and browser
sessions. Like panel/access/services.py (which keeps TOTP enrolment and API tokens, reused by
the "My account" pages), each change validates first, then writes it and exactly one audit event
in one transaction; the caller is the user themselves, so no policy check is needed.

Browser sessions live in Django's session store (settings.SESSION_ENGINE); a UserSession row,
recorded at sign-in, is what lets a user list theirs and end the others. A session store that
keeps nothing on the server (signed cookies) cannot end a session elsewhere."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.crypto import constant_time_compare

from panel.access import services
from panel.access.models import UserSession
from panel.audit.services import Actor, record_event
from panel.workloads.spec import ValidationFailed

RECOVERY_DEVICE = "recovery"
RECOVERY_CODES = 10


# --- password -----------------------------------------------------------------------------------

@transaction.atomic
def change_password(actor: Actor, user: Any, current: Any, new: Any,
                    keep_session_key: str | None = None) -> Any:
    """Set `user`'s password to `new` after checking `current` (a stolen open session alone
    must not be enough to take the account over).

    Django ends the user's other sessions on their next request (their stored password hash no
    longer matches); with `keep_session_key` they are removed from the store and the session
    list now, so the list is right at once. The caller keeps its own session valid with
    django.contrib.auth.update_session_auth_hash, then calls `session_moved`."""
    if not isinstance(current, str) or not current or not user.check_password(current):
        raise ValidationFailed({"current_password": ["wrong password: enter the password you "
                                                     "signed in with"]})
    if not isinstance(new, str) or not new:
        raise ValidationFailed({"new_password": ["required: the new password"]})
    if new == current:
        raise ValidationFailed({"new_password": ["must differ from the current password"]})
    try:
        validate_password(new, user)
    except ValidationError as exc:
        raise ValidationFailed({"new_password": list(exc.messages)}) from None
    # counted before the new password makes every other session stale
    ended = _end_sessions(user, keep_session_key) if keep_session_key is not None else 0
    user.set_password(new)
    user.save(update_fields=["password"])
    # never the password itself, nor its hash
    record_event(actor, "user.password_change", user, target_name=user.get_username(),
                 other_sessions_ended=ended)
    return user


# --- recovery codes -----------------------------------------------------------------------------

def _has_totp(user: Any) -> bool:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def recovery_codes_left(user: Any) -> int | None:
    """How many unused recovery codes `user` has; None when they never generated any."""
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    device = StaticDevice.objects.filter(user=user, name=RECOVERY_DEVICE).first()
    return None if device is None else StaticToken.objects.filter(device=device).count()


@transaction.atomic
def recovery_codes(actor: Actor, user: Any) -> list[str]:
    """Ten new one-time recovery codes for when the authenticator is lost; the old ones stop
    working. They are returned to be shown once: only django_otp's StaticToken rows keep them,
    and each is deleted when it is used to sign in (django_otp.match_token)."""
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    if not _has_totp(user):
        raise ValidationFailed({"totp": ["enrol and confirm an authenticator first: recovery "
                                         "codes stand in for it"]})
    replaced, _ = StaticDevice.objects.filter(user=user, name=RECOVERY_DEVICE).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=c) for c in codes])
    record_event(actor, "user.recovery_codes", user, target_name=user.get_username(),
                 codes=len(codes), replaced_old=bool(replaced))
    return codes


@transaction.atomic
def remove_authenticator(actor: Actor, user: Any) -> int:
    """Remove `user`'s TOTP authenticators (services.remove_totp, which audits) and their
    recovery codes with them: codes that stand in for a device no longer there would leave a
    second factor the user believes is gone."""
    from django_otp.plugins.otp_static.models import StaticDevice

    StaticDevice.objects.filter(user=user, name=RECOVERY_DEVICE).delete()
    return services.remove_totp(actor, user)


# --- browser sessions ---------------------------------------------------------------------------

def _store(session_key: str | None = None) -> SessionBase:
    """A SessionStore of the configured engine (the db, cache or file backend)."""
    engine: Any = import_module(settings.SESSION_ENGINE)
    store: SessionBase = engine.SessionStore(session_key)
    return store


def _source(request: Any) -> str:
    return str(request.META.get("REMOTE_ADDR") or "")[:64]


@transaction.atomic
def record_session(user: Any, request: Any, two_factor: bool) -> UserSession | None:
    """Remember the session `request` just signed in with. Not audited on its own: the sign-in
    that calls this records "user.sign_in"."""
    key = request.session.session_key
    if not key:
        return None
    session, _ = UserSession.objects.update_or_create(session_key=key, defaults={
        "user": user, "two_factor": two_factor, "source_address": _source(request),
        "user_agent": str(request.META.get("HTTP_USER_AGENT") or "")[:255]})
    return session


@transaction.atomic
def session_moved(user: Any, old_key: str | None, new_key: str | None) -> None:
    """Follow a session whose key changed (update_session_auth_hash cycles it after a password
    change), so it stays listed as this session. Bookkeeping of the change already audited."""
    if old_key and new_key and old_key != new_key:
        UserSession.objects.filter(user=user, session_key=old_key).update(session_key=new_key)


@transaction.atomic
def forget_session(session_key: str | None) -> None:
    """Drop the row of a session being signed out (the sign-out is audited by the caller)."""
    if session_key:
        UserSession.objects.filter(session_key=session_key).delete()


def _is_live(user: Any, session_key: str) -> bool:
    """True when `session_key` still signs `user` in: it exists and has not expired, is theirs
    and carries their current password hash (Django ends it otherwise on its next request)."""
    data = _store(session_key).load()
    if str(data.get(SESSION_KEY, "")) != str(user.pk) or not data.get(BACKEND_SESSION_KEY):
        return False
    return constant_time_compare(str(data.get(HASH_SESSION_KEY, "")),
                                 user.get_session_auth_hash())


@transaction.atomic
def sessions_of(user: Any) -> list[UserSession]:
    """`user`'s live browser sessions, newest first; rows of sessions that ended on their own
    (expired, signed out, password changed elsewhere) are dropped on the way."""
    rows = list(UserSession.objects.filter(user=user).order_by("-created_at"))
    ended = [row for row in rows if not _is_live(user, row.session_key)]
    if ended:
        UserSession.objects.filter(pk__in=[row.pk for row in ended]).delete()
    return [row for row in rows if row not in ended]


def _end_sessions(user: Any, keep_session_key: str | None) -> int:
    """Delete every recorded session of `user` but `keep_session_key` from the store and the
    list; returns how many still signed them in."""
    rows = list(UserSession.objects.select_for_update().filter(user=user)
                .exclude(session_key=keep_session_key or ""))
    live = 0
    for row in rows:
        live += _is_live(user, row.session_key)
        _store(row.session_key).delete()
    UserSession.objects.filter(pk__in=[row.pk for row in rows]).delete()
    return live


@transaction.atomic
def sign_out_elsewhere(actor: Actor, user: Any, keep_session_key: str | None) -> int:
    """End all of `user`'s browser sessions except `keep_session_key` (the one asking): a
    browser left signed in somewhere, or a session that may have been stolen. Returns how many
    were ended; API tokens are not touched (they are revoked on their own page)."""
    count = _end_sessions(user, keep_session_key)
    record_event(actor, "user.sign_out_elsewhere", user, target_name=user.get_username(),
                 sessions=count)
    return count
