"""Messages to agents leave on commit, ahead of the other on-commit callbacks their atomic block
queued (browser pushes, audit forwarding), in the order they were queued; none leaves on
rollback."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from panel.fleet.dispatch import send_on_commit

pytestmark = pytest.mark.django_db


def _tasks(callbacks: list[Any]) -> list[str]:
    return [getattr(callback, "task", "other") for callback in callbacks]


def test_agent_messages_leave_first_in_the_order_they_were_queued(
        broker, django_capture_on_commit_callbacks):
    pushed: list[str] = []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            transaction.on_commit(lambda: pushed.append("browser push"))
            send_on_commit("h1", "container_action", "uid-1", "stop", {}, None)
            transaction.on_commit(lambda: pushed.append("audit forward"))
            send_on_commit("h1", "snapshot")
    assert _tasks(callbacks) == ["container_action", "snapshot", "other", "other"]
    assert [t["task"] for t in broker.sent("h1")] == ["berth.agent.container_action",
                                                     "berth.agent.snapshot"]
    assert pushed == ["browser push", "audit forward"]


def test_a_message_of_a_rolled_back_savepoint_never_leaves(
        broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            transaction.on_commit(lambda: None)
            try:
                with transaction.atomic():
                    send_on_commit("h1", "snapshot")
                    raise RuntimeError("the change failed")
            except RuntimeError:
                pass
            send_on_commit("h1", "container_action", "uid-1", "start", {}, None)
    assert _tasks(callbacks) == ["container_action", "other"]
    assert [t["task"] for t in broker.sent("h1")] == ["berth.agent.container_action"]


def test_callbacks_of_an_earlier_block_keep_their_place(broker,
                                                        django_capture_on_commit_callbacks):
    pushed: list[str] = []
    with transaction.atomic():
        transaction.on_commit(lambda: pushed.append("earlier block"))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            transaction.on_commit(lambda: pushed.append("push"))
            send_on_commit("h1", "snapshot")
    assert _tasks(callbacks) == ["snapshot", "other"]
    assert [t["task"] for t in broker.sent("h1")] == ["berth.agent.snapshot"]
    assert pushed == ["push"]  # the earlier block's callback waits for the test's commit


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_message_leaves_at_once(broker):
    send_on_commit("h1", "snapshot")
    assert [t["task"] for t in broker.sent("h1")] == ["berth.agent.snapshot"]
