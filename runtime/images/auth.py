"""Registry credentials and authentication: the saved logins and the WWW-Authenticate dance.

Saved logins live in `<root>/auth.json` (mode 0600), shaped like docker's config.json so people
recognise it:

    {"auths": {"127.0.0.1:5000": {"auth": "<base64 of user:password>"}}}

`Authenticator` answers a registry's 401 challenge. For `Basic` it sends the saved or given
credentials; for `Bearer realm=…,service=…,scope=…` it asks the token server at `realm` for a
token (with basic credentials when it has some, anonymously otherwise) and caches the token per
scope until it expires.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from runtime import fsutil
from runtime.errors import InvalidArgument, RegistryError

AUTH_FILE = "auth.json"
DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", DOCKER_HUB}
_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
TOKEN_TIMEOUT = 30.0


def normalise_registry(name: str) -> str:
    """The key a registry is saved under: host[:port], no scheme or path; Docker Hub's aliases
    become `docker.io`."""
    text = name.strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.split("/", 1)[0].lower()
    if not text or any(c.isspace() for c in text):
        raise InvalidArgument(
            f"invalid registry {name!r}: expected HOST[:PORT], e.g. 127.0.0.1:5000"
        )
    return DOCKER_HUB if text in _HUB_ALIASES else text


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class CredentialStore:
    """The logins saved by `berth-runtime login` under one runtime root."""

    def __init__(self, root: Path | str):
        self.path = Path(root) / AUTH_FILE
        self.lock_path = Path(root) / f".{AUTH_FILE}.lock"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"auths": {}}
        except ValueError as exc:
            raise RegistryError(
                f"{self.path} is not valid JSON ({exc}); remove it and log in again"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("auths", {}), dict):
            raise RegistryError(f"{self.path} has no `auths` object; remove it and log in again")
        data.setdefault("auths", {})
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # the umask must not widen a file holding passwords
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, self.path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def get(self, registry: str) -> Credentials | None:
        """The saved login for `registry`, or None."""
        entry = self._load()["auths"].get(normalise_registry(registry))
        if not entry or not entry.get("auth"):
            return None
        try:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise RegistryError(
                f"the saved login for {registry} in {self.path} is corrupt; "
                f"run `berth-runtime login {registry}` again"
            ) from None
        return Credentials(username, password)

    def save(self, registry: str, credentials: Credentials) -> None:
        """Save (or replace) the login for `registry`."""
        token = f"{credentials.username}:{credentials.password}".encode()
        with fsutil.locked(self.lock_path):
            data = self._load()
            data["auths"][normalise_registry(registry)] = {
                "auth": base64.b64encode(token).decode()
            }
            self._save(data)

    def remove(self, registry: str) -> bool:
        """Forget the login for `registry`; False when there was none."""
        if not self.path.exists():
            return False
        with fsutil.locked(self.lock_path):
            data = self._load()
            if data["auths"].pop(normalise_registry(registry), None) is None:
                return False
            self._save(data)
            return True


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split `Bearer realm="…",service="…"` into ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for match in _CHALLENGE_PARAM.finditer(rest):
        key, value = match.group(1), match.group(2)
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
    return scheme.lower(), params


class Authenticator:
    """Turns a registry's 401 challenge into an Authorization header, caching bearer tokens."""

    def __init__(self, registry: str, credentials: Credentials | None,
                 session: requests.Session, verify_tls: bool = True):
        self.registry = registry
        self.credentials = credentials
        self.session = session
        self.verify_tls = verify_tls
        self.scheme: str | None = None  # "basic" or "bearer" once the registry has said
        self.params: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}

    def learn(self, challenge_header: str | None) -> None:
        """Remember the scheme a 401 response asked for."""
        if not challenge_header:
            raise RegistryError(
                f"registry {self.registry} answered 401 without a WWW-Authenticate challenge"
            )
        scheme, params = parse_challenge(challenge_header)
        if scheme not in ("basic", "bearer"):
            raise RegistryError(
                f"registry {self.registry} asks for {scheme!r} authentication; "
                "berth supports Basic and Bearer"
            )
        self.scheme, self.params = scheme, params

    def header(self, scope: str | None, refresh: bool = False) -> str | None:
        """The Authorization header for a request needing `scope`, or None (anonymous)."""
        if self.scheme == "basic":
            if self.credentials is None:
                return None
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        if self.scheme == "bearer":
            return "Bearer " + self.token(scope, refresh=refresh)
        return None

    def token(self, scope: str | None, refresh: bool = False) -> str:
        """A bearer token for `scope` from the realm's token server (cached until expiry)."""
        key = scope or ""
        cached = self._tokens.get(key)
        if cached and not refresh and cached[1] > time.monotonic():
            return cached[0]
        realm = self.params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.registry} sent a Bearer challenge with no realm")
        query: dict[str, str] = {}
        if self.params.get("service"):
            query["service"] = self.params["service"]
        if scope:
            query["scope"] = scope
        auth = None
        if self.credentials is not None:
            query["account"] = self.credentials.username
            auth = (self.credentials.username, self.credentials.password)
        try:
            response = self.session.get(realm, params=query, auth=auth, timeout=TOKEN_TIMEOUT,
                                        verify=self.verify_tls)
        except requests.ConnectionError as exc:
            raise RegistryError(
                f"cannot reach the token server {realm} of registry {self.registry}: {exc}"
            ) from None
        if response.status_code in (401, 403):
            if self.credentials is None:
                raise RegistryError(
                    f"registry {self.registry} requires a login: its token server {realm} "
                    f"refused an anonymous token; run `berth-runtime login {self.registry}`"
                )
            raise RegistryError(
                f"login failed for {self.registry}: the token server {realm} refused the "
                f"credentials of user {self.credentials.username!r} "
                f"(HTTP {response.status_code}); check the username and password"
            )
        if response.status_code != 200:
            raise RegistryError(
                f"the token server {realm} of registry {self.registry} answered HTTP "
                f"{response.status_code}: {response.text[:200]}"
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            expires_in = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not token or not isinstance(token, str):
            raise RegistryError(f"the token server {realm} answered without a token")
        # Renew a little early so a token does not expire between check and use.
        self._tokens[key] = (token, time.monotonic() + max(expires_in - 10, 5))
        return token
