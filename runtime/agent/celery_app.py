"""The agent's Celery app (configured from a Redis URL only) and its client for the control queue.

Delivery guarantees the agent relies on:
- tasks are acknowledged late (after they ran) with a prefetch of one per worker slot, so a task
  that was running when the agent died is delivered again;
- a killed agent's unacknowledged messages sit in kombu's `unacked` hash until a visibility
  timeout passes; since only this host's agent consumes `host.<name>`, a starting agent puts
  every unacknowledged message of its own queue back at once (`restore_unacked`) instead of
  waiting for that timeout;
- the broker connection is retried forever, on start-up too, so the agent survives a Redis
  restart; reports that cannot be sent are kept by the reporter and sent once Redis is back.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from celery import Celery

from runtime.protocol import CONTROL_QUEUE

log = logging.getLogger("berth.agent")

VISIBILITY_TIMEOUT = 3600  # seconds; see the module docstring for why restarts do not wait on it
RESULT_EXPIRES = 3600
SEND_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5,
                     "interval_max": 0.5}


def make_app(redis_url: str, host_name: str) -> Celery:
    """The Celery app of the agent of `host_name`: broker and result backend on `redis_url`."""
    # fixups=(): no Django fix-up, even when DJANGO_SETTINGS_MODULE is in the environment (as
    # under `make run`): it would set Django up and run its checks in the agent, and hook every
    # task to close database connections the agent never opens.
    app = Celery(f"berth-agent-{host_name}", broker=redis_url, backend=redis_url,
                 set_as_current=False, fixups=())
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_acks_on_failure_or_timeout=True, task_track_started=False,
        result_expires=RESULT_EXPIRES, result_extended=False,
        broker_connection_retry=True, broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None, broker_channel_error_retry=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT,
                                  "socket_connect_timeout": 5, "socket_keepalive": True},
        result_backend_transport_options={"socket_connect_timeout": 5},
        redis_socket_connect_timeout=5, redis_retry_on_timeout=True,
        worker_hijack_root_logger=False, worker_redirect_stdouts=False,
        worker_enable_remote_control=False, worker_send_task_events=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_default_queue=CONTROL_QUEUE,
    )
    return app


class ControlClient:
    """Sends `berth.control.*` tasks to the control queue; never raises on a broker outage."""

    def __init__(self, app: Celery):
        self.app = app
        self._failing = False

    def send(self, task_name: str, expires: float | None = None, **kwargs: Any) -> bool:
        """Publish one control task with keyword arguments; False when the broker could not be
        reached (the caller keeps what it wanted to say and tries again later)."""
        try:
            # ignore_result: reports have no result to wait for (no subscription to one)
            self.app.send_task(task_name, kwargs=kwargs, queue=CONTROL_QUEUE,
                               retry=True, retry_policy=SEND_RETRY_POLICY, expires=expires,
                               ignore_result=True)
        except Exception as exc:  # kombu raises a variety of connection errors
            if not self._failing:  # once per outage, not once per attempt
                log.warning("cannot send to %s, will keep trying: %s", CONTROL_QUEUE, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("sending to %s works again", CONTROL_QUEUE)
            self._failing = False
        return True


def restore_unacked(app: Celery, queue: str, retry_for: float | None = None) -> int:
    """Put every unacknowledged message of `queue` back at the head of that queue.

    Call it before the worker consumes: only this host's agent consumes `queue`, so such
    messages were taken by a previous agent process that died before finishing them. Retries
    while Redis cannot be reached (forever when `retry_for` is None). Returns how many were
    restored."""
    deadline = None if retry_for is None else time.monotonic() + retry_for
    delay = 0.2
    while True:
        try:
            return _restore_unacked_once(app, queue)
        except Exception as exc:  # connection errors of kombu/redis
            if deadline is not None and time.monotonic() >= deadline:
                raise
            log.warning("waiting for the broker to restore unacknowledged messages: %s", exc)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _restore_unacked_once(app: Celery, queue: str) -> int:
    restored = 0
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        client = channel.client
        for tag, payload in client.hgetall(channel.unacked_key).items():
            try:
                _message, exchange, routing_key = json.loads(payload)
            except (ValueError, TypeError):
                continue
            if queue not in (exchange, routing_key):
                continue
            channel.qos.restore_by_tag(tag.decode() if isinstance(tag, bytes) else tag,
                                       leftmost=True)
            restored += 1
    if restored:
        log.info("restored %d unacknowledged message(s) of %s", restored, queue)
    return restored
