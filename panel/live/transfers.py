"""Files between the browser and a host through Redis (the agent side is
runtime/agent/transfers.py and logship.py): uploads in, downloads out, and the service functions
that start the operations tracking them (image import, volume backup and restore)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import IO, Any

import redis
from django.conf import settings
from django.db import transaction

from panel.audit.services import Actor, record_event
from panel.fleet.models import Host
from panel.live.emit import emit_operation
from panel.workloads.models import Operation, Volume
from runtime.agent.logship import download_key, requests_key
from runtime.agent.transfers import CHUNK, upload_key

UPLOAD_TTL = 900
FIRST_CHUNK_WAIT = 30


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def store_upload(source: IO[bytes]) -> tuple[str, int]:
    """Copy an uploaded file into Redis chunks for the agent; (token, size)."""
    token = secrets.token_hex(16)
    client, size = _redis(), 0
    key = upload_key(token)
    while chunk := source.read(CHUNK):
        with client.pipeline(transaction=False) as pipe:
            pipe.rpush(key, chunk)
            pipe.expire(key, UPLOAD_TTL)
            pipe.execute()
        size += len(chunk)
    client.rpush(key, b"")
    client.expire(key, UPLOAD_TTL)
    return token, size


def push_request(host_name: str, request: dict[str, Any]) -> None:
    _redis().rpush(requests_key(host_name), json.dumps(request))


def request_on_commit(host_name: str, request: dict[str, Any]) -> None:
    transaction.on_commit(lambda: push_request(host_name, request))


async def download(token: str) -> AsyncIterator[bytes]:
    """The chunks of `berth:download:<token>` until its end mark (consumed as read)."""
    from panel.live.streams import client

    key, first = download_key(token), True
    while True:
        item: Any = await client().blpop([key], timeout=FIRST_CHUNK_WAIT if first else 60)
        first = False
        if item is None or not item[1]:
            return
        if item[1].startswith(b"\x00error:"):
            yield b"\n[berth: " + item[1][7:] + b"]\n"
            return
        yield item[1]


def _operation(actor: Actor, kind: str, target_type: str, target_id: str, target_name: str,
               host: Host, project: Any = None) -> Operation:
    operation = Operation.objects.create(
        kind=kind, project=project, target_type=target_type, target_id=target_id,
        target_name=target_name, host_name=host.name, actor_name=actor.name)
    emit_operation(operation)
    return operation


@transaction.atomic
def import_image_archive(actor: Actor, host: Host, token: str, size: int, filename: str,
                         tag: str | None = None) -> Operation:
    """Import an uploaded image archive on `host` (progress on the returned operation)."""
    operation = _operation(actor, "image.import", "image", "", filename[:255], host)
    record_event(actor, "image.import", target_type="image", target_name=filename[:255],
                 host=host.name, size=size, operation=str(operation.pk))
    request_on_commit(host.name, {"kind": "image-import", "upload": token, "size": size,
                                  "tag": tag, "operation": str(operation.pk)})
    return operation


@transaction.atomic
def backup_volume(actor: Actor, volume: Volume, host: Host) -> Operation:
    """Archive `volume` on `host`; the finished operation's result names the download."""
    operation = _operation(actor, "volume.backup", "volume", str(volume.pk), volume.name, host,
                           volume.project)
    record_event(actor, "volume.backup", volume, host=host.name, operation=str(operation.pk))
    request_on_commit(host.name, {"kind": "volume-backup", "volume": volume.name,
                                  "download": secrets.token_hex(16),
                                  "operation": str(operation.pk)})
    return operation


@transaction.atomic
def restore_volume(actor: Actor, volume: Volume, host: Host, token: str, size: int,
                   filename: str) -> Operation:
    """Replace `volume`'s content on `host` by an uploaded backup."""
    operation = _operation(actor, "volume.restore", "volume", str(volume.pk), volume.name, host,
                           volume.project)
    record_event(actor, "volume.restore", volume, host=host.name, size=size,
                 filename=filename[:255], operation=str(operation.pk))
    request_on_commit(host.name, {"kind": "volume-restore", "volume": volume.name,
                                  "upload": token, "size": size, "filename": filename[-100:],
                                  "operation": str(operation.pk)})
    return operation
