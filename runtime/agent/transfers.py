"""Files between the browser and a host, through Redis only (the agent needs nothing else):
image archives to import, volume backups to download, volume restores from an upload.

The panel (panel/live/transfers.py) pushes a request onto ``berth:logship:requests:<host>``;
the log shipper's request thread (logship.py) hands the kinds below to `handle`:

- ``image-import`` {"upload", "operation", "tag"?}: the archive's chunks are read from the list
  ``berth:upload:<upload>`` (ending with an empty chunk) into a staging file and imported;
- ``volume-backup`` {"volume", "operation", "download"}: the backup (tar.zst) is written in
  chunks onto ``berth:download:<download>`` (ending with an empty chunk), kept for DOWNLOAD_TTL;
- ``volume-restore`` {"volume", "upload", "operation"}: like an import, then restored (forced).

Progress goes to the control queue as ``operation_progress`` (runtime/protocol.py)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from runtime.host import Host
from runtime.protocol import CONTROL_QUEUE, agent_task, control_task, host_queue

log = logging.getLogger("berth.transfers")

CHUNK = 1024 * 1024
UPLOAD_WAIT = 60  # seconds to wait for the next chunk of an upload
KEEP_BACKUP = 900  # seconds a finished backup waits for its download


def upload_key(token: str) -> str:
    return f"berth:upload:{token}"


class Transfers:
    def __init__(self, host: Host, client: redis.Redis, redis_url: str, host_name: str):
        self.host = host
        self.redis = client
        self.host_name = host_name
        self.app = Celery("berth-transfers", broker=redis_url)
        self.app.conf.update(task_serializer="json", accept_content=["json"],
                             broker_connection_retry_on_startup=True)

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

    def _receive(self, token: str, operation: str, into: Path, total: int) -> None:
        """Copy the uploaded chunks into `into` (progress 0..40 %)."""
        received = 0
        with open(into, "wb") as out:
            while True:
                item = self.redis.blpop([upload_key(token)], timeout=UPLOAD_WAIT)
                if item is None:
                    raise TimeoutError("the upload stopped arriving: upload the file again")
                chunk: bytes = item[1]  # type: ignore[assignment]
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                if total:
                    self.progress(operation, "running", int(40 * received / total),
                                  f"received {received >> 20} of {total >> 20} MiB")
        self.redis.delete(upload_key(token))

    def _import(self, request: dict[str, Any], operation: str) -> None:
        from runtime.images.archive import import_archive

        self.progress(operation, "running", 1, "receiving the archive")
        with tempfile.TemporaryDirectory(prefix="berth-import-",
                                         dir=self.host.root) as staging:
            path = Path(staging) / "archive.tar"
            self._receive(str(request["upload"]), operation, path, int(request.get("size") or 0))
            self.progress(operation, "running", 45, "importing layers")
            images = import_archive(self.host.images, path, request.get("tag") or None)
        names = sorted({tag for image in images for tag in image.tags})
        self.progress(operation, "succeeded", 100, f"imported {', '.join(names) or 'an image'}",
                      {"ok": True, "images": names})
        self.app.send_task(agent_task("snapshot"), queue=host_queue(self.host_name))

    def _backup(self, request: dict[str, Any], operation: str) -> None:
        name, key = str(request["volume"]), f"berth:download:{request['download']}"
        self.progress(operation, "running", 5, f"archiving volume {name}")
        with tempfile.TemporaryDirectory(prefix="berth-backup-", dir=self.host.root) as staging:
            path = Path(staging) / f"{name}.tar.zst"
            size = self.host.volumes.backup(name, path)
            sent = 0
            with open(path, "rb") as source:
                while chunk := source.read(CHUNK):
                    with self.redis.pipeline(transaction=False) as pipe:
                        pipe.rpush(key, chunk)
                        pipe.expire(key, KEEP_BACKUP)
                        pipe.execute()
                    sent += len(chunk)
                    self.progress(operation, "running", 5 + int(90 * sent / max(size, 1)),
                                  f"{sent >> 10} of {size >> 10} KiB ready")
            self.redis.rpush(key, b"")
            self.redis.expire(key, KEEP_BACKUP)
        self.progress(operation, "succeeded", 100, f"backup of {name} ready to download "
                      f"({size} bytes, kept {KEEP_BACKUP // 60} minutes)",
                      {"ok": True, "download": request["download"], "size": size,
                       "filename": f"{name}.tar.zst"})

    def _restore(self, request: dict[str, Any], operation: str) -> None:
        name = str(request["volume"])
        self.progress(operation, "running", 1, "receiving the archive")
        with tempfile.TemporaryDirectory(prefix="berth-restore-", dir=self.host.root) as staging:
            path = Path(staging) / str(request.get("filename") or "backup.tar")
            self._receive(str(request["upload"]), operation, path, int(request.get("size") or 0))
            self.progress(operation, "running", 50, f"restoring volume {name}")
            self.host.volumes.restore(name, path, users=self.host.containers.users_of_volume,
                                      force=True)
        self.progress(operation, "succeeded", 100, f"volume {name} restored", {"ok": True})
