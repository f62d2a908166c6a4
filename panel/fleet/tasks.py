"""Control-queue tasks of the fleet (names from runtime/protocol.py): thin calls into services."""

from __future__ import annotations

import logging
from typing import Any

from panel.audit.services import Actor
from panel.celery import REPORT_RETRY, app
from panel.fleet import services
from runtime.protocol import control_task

log = logging.getLogger(__name__)


@app.task(name=control_task("heartbeat"), ignore_result=True, **REPORT_RETRY)
def heartbeat(host: str, inventory: dict[str, Any], **_extra: Any) -> None:
    """An agent's heartbeat with its inventory."""
    try:
        services.record_heartbeat(Actor.agent(str(host)), host, inventory)
    except services.InvalidReport as exc:
        log.warning("dropped heartbeat from %r: %s", host, exc)


@app.task(name=control_task("check_hosts"), ignore_result=True)
def check_hosts() -> None:
    """Periodic (beat): mark silent hosts down."""
    services.check_hosts(Actor.system("host-check"))
