"""Big files between the panel and this host over HTTP, never through Redis: volume backups to
download, volume restores and image archives uploaded.

Why HTTP served by the agent, proxied by the panel: the bytes go host → panel → browser as a
stream (and back) with constant memory on every hop, Redis carries only the small request that
announces a transfer, and the browser never needs a route to the host. Each transfer is a
capability: a 128-bit token the panel chooses and announces to this agent through Redis (the
trusted channel, see runtime/agent/transfers.py); the server knows only announced tokens, so
reaching its port is not enough to read or write anything.

- ``GET /t/TOKEN``: the spooled file of a download (a finished backup), with ``Range`` (so a
  broken download resumes), ``Content-Length`` and ``X-Berth-Sha256``.
- ``HEAD /t/TOKEN``: for an upload, ``X-Berth-Received`` says how many bytes arrived (to resume).
- ``PUT /t/TOKEN?offset=N``: upload bytes at offset N (N must be what was received: 409 with the
  right offset otherwise); ``X-Berth-Sha256`` on the last part ends the upload: the whole file
  is checked against it (422 and nothing done when it differs) and the transfer's completion
  runs in a thread of its own (an import, a restore).

The address is BERTH_TRANSFER_LISTEN (default 127.0.0.1:0, an ephemeral port); the URL the panel
uses is BERTH_TRANSFER_URL (default http://LISTEN) and is published in Redis under
``berth:transfer:url:<host>``. Hosts on other machines set both (a trusted network, as for the
agent's Redis).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from runtime.fsutil import file_sha256

log = logging.getLogger("berth.transfers")

CHUNK = 1024 * 1024
_TOKEN = re.compile(r"^/t/([0-9a-f]{32})$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def url_key(host_name: str) -> str:
    return f"berth:transfer:url:{host_name}"


@dataclass
class Transfer:
    """One announced transfer: a file to serve (`download`) or to receive (`upload`)."""

    kind: str  # "download" | "upload"
    path: Path
    expires: float
    sha256: str = ""
    on_complete: Callable[[Path], None] | None = None
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class TransferServer:
    """The HTTP endpoint (module docstring); `spool` holds the files of open transfers."""

    def __init__(self, spool: Path, listen: str = "127.0.0.1:0"):
        self.spool = spool
        self.spool.mkdir(parents=True, exist_ok=True)
        host, _, port = listen.rpartition(":")
        self.transfers: dict[str, Transfer] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(_Handler):
            transfers = server

        self.httpd = ThreadingHTTPServer((host or "127.0.0.1", int(port or 0)), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return os.environ.get("BERTH_TRANSFER_URL") or f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="berth-transfer-http",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- announcing ------------------------------------------------------------------------------
    def offer(self, token: str, path: Path, keep: float) -> str:
        """Serve `path` (moved into the spool) under `token` for `keep` seconds; its sha256."""
        target = self.spool / token
        shutil.move(str(path), target)
        digest = file_sha256(target)
        self._add(token, Transfer("download", target, time.time() + keep, sha256=digest))
        return digest

    def expect(self, token: str, keep: float, on_complete: Callable[[Path], None]) -> None:
        """Receive an upload under `token`; `on_complete(path)` runs once it arrived whole."""
        target = self.spool / token
        target.write_bytes(b"")
        self._add(token, Transfer("upload", target, time.time() + keep, on_complete=on_complete))

    def _add(self, token: str, transfer: Transfer) -> None:
        if not re.fullmatch(r"[0-9a-f]{32}", token):
            raise ValueError(f"a transfer token is 32 hex digits, not {token[:40]!r}")
        with self._lock:
            self._expire()
            self.transfers[token] = transfer

    def get(self, token: str) -> Transfer | None:
        with self._lock:
            self._expire()
            return self.transfers.get(token)

    def forget(self, token: str) -> None:
        with self._lock:
            transfer = self.transfers.pop(token, None)
        if transfer is not None:
            transfer.path.unlink(missing_ok=True)

    def _expire(self) -> None:
        now = time.time()
        for token in [t for t, x in self.transfers.items() if x.expires < now]:
            self.transfers.pop(token).path.unlink(missing_ok=True)


def new_token() -> str:
    return secrets.token_hex(16)


class _Handler(BaseHTTPRequestHandler):
    transfers: TransferServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        log.debug("transfer %s", format % args)

    def _transfer(self, kind: str) -> tuple[str, Transfer] | None:
        match = _TOKEN.match(urlsplit(self.path).path)
        transfer = self.transfers.get(match.group(1)) if match else None
        if transfer is None or transfer.kind != kind:
            self._reply(404, b"no such transfer (expired, finished, or never announced)\n")
            return None
        assert match is not None
        return match.group(1), transfer

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        found = self._transfer("download")
        if found is None:
            return
        _, transfer = found
        size = transfer.path.stat().st_size
        start, end = 0, size - 1
        status = 200
        header = self.headers.get("Range")
        if header:
            match = _RANGE.match(header.strip())
            if not match or (not match.group(1) and not match.group(2)):
                self._reply(416, headers={"Content-Range": f"bytes */{size}"})
                return
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # the last N bytes
                start = max(0, size - int(match.group(2)))
            if start > end or start >= size:
                self._reply(416, headers={"Content-Range": f"bytes */{size}"})
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Berth-Sha256", transfer.sha256)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        with open(transfer.path, "rb") as source:
            source.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = source.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def do_HEAD(self) -> None:  # noqa: N802
        found = self._transfer("upload")
        if found is not None:
            self._reply(200, headers={"X-Berth-Received": str(found[1].path.stat().st_size)})

    def do_PUT(self) -> None:  # noqa: N802
        found = self._transfer("upload")
        if found is None:
            return
        token, transfer = found
        try:
            length = int(self.headers.get("Content-Length") or "")
            offset = int(parse_qs(urlsplit(self.path).query).get("offset", ["0"])[0])
        except ValueError:
            self._reply(400, b"Content-Length and ?offset=N are required\n")
            return
        with transfer.lock:  # one writer at a time; a retry waits for the broken one
            received = transfer.path.stat().st_size
            if transfer.done or offset != received:
                self._reply(409, f"expected offset {received}\n".encode(),
                            {"X-Berth-Received": str(received)})
                return
            with open(transfer.path, "ab") as out:
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(CHUNK, left))
                    if not chunk:
                        break
                    out.write(chunk)
                    left -= len(chunk)
            received = transfer.path.stat().st_size
            wanted = (self.headers.get("X-Berth-Sha256") or "").lower()
            if not wanted:
                self._reply(200, b"", {"X-Berth-Received": str(received)})
                return
            actual = file_sha256(transfer.path)
            if actual != wanted:
                self.transfers.forget(token)
                self._reply(422, f"the file arrived with sha256 {actual}, not {wanted}: "
                                 "upload it again\n".encode())
                return
            transfer.done = True
        self._reply(200, b"", {"X-Berth-Received": str(received)})
        if transfer.on_complete is not None:
            threading.Thread(target=self._complete, args=(token, transfer),
                             name="berth-transfer-complete", daemon=True).start()

    def _complete(self, token: str, transfer: Transfer) -> None:
        try:
            assert transfer.on_complete is not None
            transfer.on_complete(transfer.path)
        finally:
            self.transfers.forget(token)
