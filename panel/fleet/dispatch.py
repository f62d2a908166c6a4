"""The one seam through which the panel talks to agents: Celery messages on `host.<name>`.

Services never send directly: they call `send_on_commit`, so a rolled-back change never reaches
a host. `call_host` is the RPC path (logs, stats) with a deadline."""

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


def send_to_host(host_name: str, task: str, *args: Any) -> None:
    """Queue `berth.agent.<task>(*args)` for the agent of `host_name`. A broker failure is logged,
    not raised: the change is committed and reconcile re-sends what is still out of sync."""
    try:
        app.send_task(agent_task(task), args=list(args), queue=host_queue(host_name),
                      routing_key=host_queue(host_name))
    except OperationalError as exc:
        log.warning("could not queue %s for host %s: %s", task, host_name, exc)


def send_on_commit(host_name: str, task: str, *args: Any) -> None:
    """`send_to_host` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: send_to_host(host_name, task, *args))


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
