"""Files between the browser and a host: image archives to import, volume backups to download,
volume restores from an upload. The bytes go over HTTP (runtime/agent/transfer_server.py), never
through Redis; Redis carries only the request that announces a transfer and its token.

The panel (panel/live/transfers.py) pushes a request onto ``berth:logship:requests:<host>``;
the log shipper's request thread (logship.py) hands the kinds below to `handle`:

- ``image-import`` {"upload", "operation", "tag"?, "size"}: the token `upload` is opened for a
  PUT of the archive; once it arrived whole (sha256 checked), it is imported;
- ``volume-backup`` {"volume", "operation", "download"}: the backup (tar.zst) is written to the
  spool and served under the token `download` for KEEP_BACKUP seconds (the operation's result
  carries its size and sha256);
- ``volume-restore`` {"volume", "upload", "operation", "size"}: like an import, then restored
  (forced).

Progress goes to the control queue as ``operation_progress`` (runtime/protocol.py)."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from runtime.agent.transfer_server import TransferServer, url_key
from runtime.host import Host
from runtime.protocol import CONTROL_QUEUE, agent_task, control_task, host_queue

log = logging.getLogger("berth.transfers")

KEEP_UPLOAD = 3600  # seconds an announced upload may take to arrive
KEEP_BACKUP = 3600  # seconds a finished backup waits for its download (Range resumes it)
URL_TTL = 60  # the published transfer URL expires unless refreshed (a dead agent's goes away)


class Transfers:
    def __init__(self, host: Host, client: redis.Redis, redis_url: str, host_name: str):
        self.host = host
        self.redis = client
        self.host_name = host_name
        self.app = Celery("berth-transfers", broker=redis_url)
        self.app.conf.update(task_serializer="json", accept_content=["json"],
                             broker_connection_retry_on_startup=True)
        self.server = TransferServer(Path(host.root) / "transfers",
                                     os.environ.get("BERTH_TRANSFER_LISTEN", "127.0.0.1:0"))
        self._stop = threading.Event()

    def start(self) -> None:
        """Serve transfers and keep the URL published (logship.py starts and stops this)."""
        self.server.start()
        threading.Thread(target=self._publish, name="berth-transfer-url", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.server.stop()

    def _publish(self) -> None:
        while not self._stop.is_set():
            try:
                self.redis.set(url_key(self.host_name), self.server.url, ex=URL_TTL)
            except redis.RedisError as exc:
                log.warning("cannot publish the transfer URL: %s", exc)
            self._stop.wait(URL_TTL / 3)

    def progress(self, operation: str, status: str, percent: int, message: str,
                 result: dict[str, Any] | None = None) -> None:
        self.app.send_task(control_task("operation_progress"), queue=CONTROL_QUEUE,
                           kwargs={"operation_id": operation, "status": status,
                                   "progress": percent, "message": message, "result": result})

    def handle(self, request: dict[str, Any]) -> None:
        kind, operation = request.get("kind"), str(request.get("operation") or "")
        try:
            if kind == "image-import":
                self._import(request, operation)
            elif kind == "volume-backup":
                self._backup(request, operation)
            elif kind == "volume-restore":
                self._restore(request, operation)
            else:
                log.warning("unknown transfer kind %r", kind)
        except Exception as exc:  # the operation says what failed; the thread goes on
            log.warning("%s failed: %s", kind, exc)
            if operation:
                self.progress(operation, "failed", 0, str(exc)[:2000], {"ok": False})

    def _failed(self, operation: str, what: str, exc: Exception) -> None:
        log.warning("%s failed: %s", what, exc)
        self.progress(operation, "failed", 0, str(exc)[:2000], {"ok": False})

    def _import(self, request: dict[str, Any], operation: str) -> None:
        def imported(path: Path) -> None:
            from runtime.images.archive import import_archive

            try:
                self.progress(operation, "running", 45, "importing layers")
                images = import_archive(self.host.images, path, request.get("tag") or None)
            except Exception as exc:  # the operation says what failed
                self._failed(operation, "image import", exc)
                return
            names = sorted({tag for image in images for tag in image.tags})
            self.progress(operation, "succeeded", 100,
                          f"imported {', '.join(names) or 'an image'}",
                          {"ok": True, "images": names})
            self.app.send_task(agent_task("snapshot"), queue=host_queue(self.host_name))

        self.server.expect(str(request["upload"]), KEEP_UPLOAD, imported)
        self.progress(operation, "running", 1, "receiving the archive")

    def _backup(self, request: dict[str, Any], operation: str) -> None:
        name = str(request["volume"])
        self.progress(operation, "running", 5, f"archiving volume {name}")
        with tempfile.TemporaryDirectory(prefix="backup-", dir=self.server.spool) as staging:
            path = Path(staging) / f"{name}.tar.zst"
            size = self.host.volumes.backup(name, path)
            self.progress(operation, "running", 90, f"checksumming {size >> 20} MiB")
            digest = self.server.offer(str(request["download"]), path, KEEP_BACKUP)
        self.progress(operation, "succeeded", 100, f"backup of {name} ready to download "
                      f"({size} bytes, sha256 {digest[:12]}…, kept {KEEP_BACKUP // 60} minutes)",
                      {"ok": True, "download": request["download"], "size": size,
                       "sha256": digest, "filename": f"{name}.tar.zst"})

    def _restore(self, request: dict[str, Any], operation: str) -> None:
        name = str(request["volume"])

        def restore(path: Path) -> None:
            try:
                self.progress(operation, "running", 50, f"restoring volume {name}")
                suffix = "".join(Path(str(request.get("filename") or "backup.tar")).suffixes)
                archive = path.with_name(path.name + (suffix or ".tar"))
                path.rename(archive)  # the archive format is told by its name
                try:
                    self.host.volumes.restore(name, archive,
                                              users=self.host.containers.users_of_volume,
                                              force=True)
                finally:
                    archive.unlink(missing_ok=True)
            except Exception as exc:
                self._failed(operation, "volume restore", exc)
                return
            self.progress(operation, "succeeded", 100, f"volume {name} restored", {"ok": True})

        self.server.expect(str(request["upload"]), KEEP_UPLOAD, restore)
        self.progress(operation, "running", 1, "receiving the archive")
