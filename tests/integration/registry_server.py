"""A real registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, with no
auth, htpasswd basic auth, or token auth backed by a tiny token server run in this process.

The token server follows distribution's token authentication spec: `GET /token?service=…&scope=…`
with optional basic credentials answers `{"token": JWT}`; the JWT is RS256-signed and carries its
self-signed certificate in the `x5c` header, and the registry trusts that certificate through
`rootcertbundle`.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt
import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

REGISTRY_BINARY = "/usr/bin/docker-registry"
SERVICE = "berth-test-registry"
ISSUER = "berth-test-token-issuer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    """An htpasswd file with bcrypt hashes, the only kind distribution accepts."""
    lines = [f"{name}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}"
             for name, pw in users.items()]
    path.write_text("\n".join(lines) + "\n")


class TokenServer:
    """Issues registry tokens: users with the right password get every action they ask for;
    anonymous callers get the actions in `anonymous_actions` (none by default)."""

    def __init__(self, workdir: Path, users: dict[str, str],
                 anonymous_actions: Iterable[str] = ()):
        self.users = users
        self.anonymous_actions = set(anonymous_actions)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = workdir / "token-ca.pem"
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict[str, object]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def issue(self, subject: str, scopes: list[str], granted: set[str] | None) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            allowed = wanted if granted is None else [a for a in wanted if a in granted]
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return jwt.encode(claims, self.key, algorithm="RS256",
                          headers={"x5c": [base64.b64encode(der).decode()]})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def _answer(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    raw = base64.b64decode(header[6:]).decode()
                    name, _, password = raw.partition(":")
                    if server.users.get(name) != password:
                        server.requests.append({"user": name, "ok": False, "scopes": scopes})
                        self._answer(401, {"details": "incorrect username or password"})
                        return
                    user = name
                server.requests.append({"user": user, "ok": True, "scopes": scopes})
                if url.path != "/token" or query.get("service") != [SERVICE]:
                    self._answer(400, {"details": "unknown service"})
                    return
                granted = None if user else server.anonymous_actions
                token = server.issue(user or "", scopes, granted)
                self._answer(200, {"token": token, "access_token": token, "expires_in": 300})

        return Handler


class RegistryServer:
    """`docker-registry serve CONFIG` on a free loopback port with its storage under `workdir`.

    auth: None, ("htpasswd", PATH) or ("token", TokenServer)."""

    def __init__(self, workdir: Path, auth: tuple[str, object] | None = None):
        self.workdir = workdir
        self.port = free_port()
        self.storage = workdir / "storage"
        self.storage.mkdir(parents=True)
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        self.auth = auth
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: {self.address}",
            f"  secret: {secrets.token_hex(16)}",
            "health:",
            "  storagedriver:",
            "    enabled: false",
        ]
        if self.auth and self.auth[0] == "htpasswd":
            lines += ["auth:", "  htpasswd:", "    realm: berth-test",
                      f"    path: {self.auth[1]}"]
        elif self.auth and self.auth[0] == "token":
            token_server = self.auth[1]
            assert isinstance(token_server, TokenServer)
            lines += ["auth:", "  token:", f"    realm: {token_server.realm}",
                      f"    service: {SERVICE}", f"    issuer: {ISSUER}",
                      f"    rootcertbundle: {token_server.cert_path}"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.config_path.write_text(self._config())
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_path.read_text()[-2000:]}")
            try:
                status = requests.get(f"http://{self.address}/v2/", timeout=1).status_code
                if status in (200, 401):
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (to corrupt it on purpose)."""
        hexpart = digest.split(":", 1)[1]
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart
                / "data")


@contextmanager
def serving(workdir: Path, auth: tuple[str, object] | None = None) -> Iterator[RegistryServer]:
    """A started `RegistryServer` under `workdir` (which must not exist yet), stopped after;
    for tests outside this directory (the panel's stack tests) that need a registry."""
    server = RegistryServer(workdir, auth)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serving_token_issuer(workdir: Path, users: dict[str, str],
                         anonymous_actions: Iterable[str] = ()) -> Iterator[TokenServer]:
    """A started `TokenServer` writing its certificate under `workdir`, stopped after."""
    workdir.mkdir(parents=True, exist_ok=True)
    issuer = TokenServer(workdir, users, anonymous_actions)
    issuer.start()
    try:
        yield issuer
    finally:
        issuer.stop()
