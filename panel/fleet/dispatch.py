"""The one seam through which the panel talks to agents: Celery messages on `host.<name>`.

Services never send directly: they call `send_on_commit`, so a rolled-back change never reaches
a host. At the commit these messages leave before the other callbacks the same atomic block
queued (pushes to browsers, audit forwarding), in the order they were queued: a host's work
then starts without waiting on bookkeeping that nobody waits for. `call_host` is the RPC path
(logs, stats) with a deadline."""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from panel.celery import app
from runtime.protocol import agent_task, host_queue

log = logging.getLogger(__name__)


class AgentError(Exception):
    """The agent answered with an error (its message says what went wrong on the host)."""


class AgentUnavailable(Exception):
    """The agent could not be asked (broker unreachable) or did not answer in time."""

    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


class _Unawaited:
    """What `send_task` returns for a message nobody waits on. With `ignore_result` Celery
    neither subscribes to its result nor has the agent store one; this stands in for the
    AsyncResult, whose result backend Celery makes once per thread (about 2 ms), and the web
    server runs each request on a new thread."""

    __slots__ = ("id", "ignored")

    def __init__(self, task_id: str):
        self.id = task_id


def send_to_host(host_name: str, task: str, *args: Any) -> None:
    """Queue `berth.agent.<task>(*args)` for the agent of `host_name`. A broker failure is logged,
    not raised: the change is committed and reconcile re-sends what is still out of sync."""
    try:
        app.send_task(agent_task(task), args=list(args), queue=host_queue(host_name),
                      routing_key=host_queue(host_name), ignore_result=True,
                      result_cls=_Unawaited, add_to_parent=False)
    except OperationalError as exc:
        log.warning("could not queue %s for host %s: %s", task, host_name, exc)


class _HostMessage:
    """A message for an agent, waiting for the commit (an on-commit callback)."""

    __slots__ = ("host_name", "task", "args")

    def __init__(self, host_name: str, task: str, args: tuple[Any, ...]):
        self.host_name, self.task, self.args = host_name, task, args

    def __call__(self) -> None:
        send_to_host(self.host_name, self.task, *self.args)


def send_on_commit(host_name: str, task: str, *args: Any) -> None:
    """`send_to_host` once the current transaction commits (at once outside a transaction),
    ahead of the callbacks that are not agent messages (see the module docstring)."""
    message = _HostMessage(host_name, task, args)
    connection = transaction.get_connection()
    transaction.on_commit(message)
    if connection.in_atomic_block:
        _move_ahead(connection.run_on_commit)


def _move_ahead(callbacks: list[Any]) -> None:
    """Move the last on-commit entry (Django's `(savepoint ids, callable, robust)`) back over
    the entries before it that the same atomic block queued (the same savepoint ids) and that
    are not agent messages. Entries of other blocks keep their place, so callbacks captured
    from a point on (tests) stay after it; savepoint rollbacks drop entries by their ids,
    whatever their place."""
    entry = callbacks.pop()
    index = len(callbacks)
    while index and callbacks[index - 1][0] == entry[0] \
            and not isinstance(callbacks[index - 1][1], _HostMessage):
        index -= 1
    callbacks.insert(index, entry)


def host_for_rpc(container: Any) -> str:
    """The name of the host running `container`, whose agent can answer now (else
    AgentUnavailable, at once rather than after the RPC's deadline)."""
    from panel.fleet.models import UP

    host = container.host
    if host is None:
        raise AgentUnavailable(f"container {container.name} is not placed on any host")
    if host.current_status() != UP:
        seen = host.last_heartbeat.isoformat() if host.last_heartbeat else "never"
        raise AgentUnavailable(f"host {host.name} is down (last heartbeat {seen}): its agent "
                               "cannot answer")
    return host.name


def call_host(host_name: str, task: str, *args: Any, timeout: float | None = None) -> Any:
    """Ask the agent of `host_name` and wait for its answer (at most BERTH_RPC_TIMEOUT s)."""
    timeout = settings.BERTH_RPC_TIMEOUT if timeout is None else timeout
    try:
        result = app.send_task(agent_task(task), args=list(args), queue=host_queue(host_name),
                               routing_key=host_queue(host_name), expires=timeout,
                               ignore_result=False)
    except OperationalError as exc:
        raise AgentUnavailable(f"cannot reach the message broker to ask host {host_name}: "
                               f"{exc}") from None
    try:
        return result.get(timeout=timeout, propagate=True, disable_sync_subtasks=False)
    except CeleryTimeout:
        raise AgentUnavailable(
            f"the agent of host {host_name} did not answer within {timeout:g}s", timed_out=True
        ) from None
    except OperationalError as exc:
        raise AgentUnavailable(f"lost the message broker while asking host {host_name}: "
                               f"{exc}") from None
    except Exception as exc:  # the agent's own error, re-raised by Celery
        raise AgentError(f"host {host_name}: {exc}") from None
    finally:
        result.forget()
