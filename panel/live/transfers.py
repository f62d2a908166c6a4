"""Files between the browser and a host, streamed over HTTP through the panel (the agent side is
runtime/agent/transfers.py and transfer_server.py): uploads in, backups out, and the service
functions that start the operations tracking them (image import, volume backup and restore).

Redis carries only the request that announces a transfer and its token (and the transfer URL
each host publishes); the bytes stream browser → panel (Django spools an upload to a temporary
file on disk) → host, and host → panel → browser, in 1 MiB pieces, so no process holds a file
in memory. Uploads are checked end to end: the panel hashes what it received and the host
refuses a file whose sha256 differs; a broken upload to the host resumes where it stopped. A
backup's sha256 is in its operation's result and in the download's X-Berth-Sha256 header, and a
download accepts Range, so it resumes too."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

import redis
import requests
from django.conf import settings
from django.db import transaction

from panel.audit.services import Actor, record_event
from panel.fleet.models import Host
from panel.live.emit import emit_operation
from panel.workloads.models import Operation, Volume
from runtime.agent.logship import download_key, requests_key
from runtime.agent.transfer_server import CHUNK, url_key

ANNOUNCE_WAIT = 30  # seconds for the host to open an announced upload
PART = 64 * 1024 * 1024  # bytes per PUT: a broken upload resumes at the last whole part
RETRIES = 3
FIRST_CHUNK_WAIT = 30


class TransferFailed(Exception):
    """The host could not be reached or refused the file; the message says which."""


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def new_token() -> str:
    return secrets.token_hex(16)


def file_sha256(source: IO[bytes]) -> str:
    """sha256 of an uploaded file, read in chunks (rewound afterwards)."""
    digest = hashlib.sha256()
    source.seek(0)
    while chunk := source.read(CHUNK):
        digest.update(chunk)
    source.seek(0)
    return digest.hexdigest()


def host_url(host_name: str) -> str:
    try:
        url = _redis().get(url_key(host_name))
    except redis.RedisError as exc:
        raise TransferFailed(f"Redis does not answer, so host {host_name}'s transfer address "
                             f"is unknown: {exc}") from None
    if not url:
        raise TransferFailed(f"host {host_name} publishes no transfer address: is its agent "
                             "running (berth-agent starts the transfer server)?")
    return url.decode() if isinstance(url, bytes) else str(url)


def send_to_host(host_name: str, token: str, source: IO[bytes], size: int, sha256: str) -> None:
    """PUT `source` to the host's announced upload `token`, in parts, resuming after a broken
    connection from what the host says it received; the last part carries the sha256."""
    url = f"{host_url(host_name)}/t/{token}"
    deadline = time.monotonic() + ANNOUNCE_WAIT
    while True:  # the announcement travels through Redis: wait until the host opened it
        try:
            answer = requests.head(url, timeout=10)
        except requests.RequestException as exc:
            raise TransferFailed(f"host {host_name} does not answer at {url}: {exc}") from None
        if answer.status_code == 200:
            break
        if time.monotonic() > deadline:
            raise TransferFailed(f"host {host_name} did not open the upload within "
                                 f"{ANNOUNCE_WAIT}s")
        time.sleep(0.1)
    offset, failures = 0, 0
    while offset < size or size == 0:
        length = min(PART, size - offset)
        last = offset + length >= size
        source.seek(offset)
        headers = {"Content-Length": str(length)}
        if last:
            headers["X-Berth-Sha256"] = sha256
        try:
            answer = requests.put(f"{url}?offset={offset}", data=_part(source, length),
                                  headers=headers, timeout=300)
        except requests.RequestException as exc:
            failures += 1
            if failures > RETRIES:
                raise TransferFailed(f"the upload to host {host_name} broke {failures} times: "
                                     f"{exc}") from None
            offset = int(requests.head(url, timeout=10).headers.get("X-Berth-Received", 0))
            continue
        if answer.status_code == 409:  # the host has another offset: go on from there
            offset = int(answer.headers.get("X-Berth-Received", 0))
            continue
        if answer.status_code != 200:
            raise TransferFailed(f"host {host_name} refused the upload: "
                                 f"{answer.text.strip()[:500]}")
        offset = int(answer.headers.get("X-Berth-Received", offset + length))
        if last:
            return


def _part(source: IO[bytes], length: int) -> Iterator[bytes]:
    left = length
    while left > 0:
        chunk = source.read(min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def fetch_from_host(host_name: str, token: str, byte_range: str | None) -> requests.Response:
    """The host's download `token` as a streaming response (the caller closes it)."""
    headers = {"Range": byte_range} if byte_range else {}
    try:
        answer = requests.get(f"{host_url(host_name)}/t/{token}", headers=headers, stream=True,
                              timeout=60)
    except requests.RequestException as exc:
        raise TransferFailed(f"host {host_name} does not answer: {exc}") from None
    if answer.status_code not in (200, 206, 416):
        answer.close()
        raise TransferFailed(f"host {host_name} has no such download any more (it is kept an "
                             "hour): back the volume up again")
    return answer


async def chunks_of(answer: requests.Response) -> AsyncIterator[bytes]:
    """The body of `answer`, a piece at a time. An async iterator on purpose: under ASGI,
    Django reads a synchronous one whole into memory before sending it."""
    from asgiref.sync import sync_to_async

    pieces = answer.iter_content(CHUNK)

    def read() -> bytes:
        return next(pieces, b"")

    try:
        while piece := await sync_to_async(read, thread_sensitive=False)():
            yield piece
    finally:
        await sync_to_async(answer.close, thread_sensitive=False)()


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
                         tag: str | None = None, sha256: str = "") -> Operation:
    """Import an uploaded image archive on `host` (progress on the returned operation)."""
    operation = _operation(actor, "image.import", "image", "", filename[:255], host)
    record_event(actor, "image.import", target_type="image", target_name=filename[:255],
                 host=host.name, size=size, sha256=sha256, operation=str(operation.pk))
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
                                  "download": new_token(),
                                  "operation": str(operation.pk)})
    return operation


@transaction.atomic
def restore_volume(actor: Actor, volume: Volume, host: Host, token: str, size: int,
                   filename: str, sha256: str = "") -> Operation:
    """Replace `volume`'s content on `host` by an uploaded backup."""
    operation = _operation(actor, "volume.restore", "volume", str(volume.pk), volume.name, host,
                           volume.project)
    record_event(actor, "volume.restore", volume, host=host.name, size=size,
                 filename=filename[:255], sha256=sha256, operation=str(operation.pk))
    request_on_commit(host.name, {"kind": "volume-restore", "volume": volume.name,
                                  "upload": token, "size": size, "filename": filename[-100:],
                                  "operation": str(operation.pk)})
    return operation
