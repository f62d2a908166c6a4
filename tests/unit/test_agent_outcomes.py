"""An operation's final report is kept, and sent again when the panel asks (its first copy can
be lost with a control worker killed as it took it); reports still running are not kept."""

from __future__ import annotations

from typing import Any

from runtime.agent.outcomes import Outcomes
from runtime.agent.tasks import AgentTasks, Operation


class RecordingClient:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, task_name: str, expires: float | None = None, **kwargs: Any) -> bool:
        self.sent.append(kwargs)
        return True


def test_a_final_report_is_sent_again_when_asked_for():
    client, outcomes = RecordingClient(), Outcomes()
    Operation(client, "op-1", outcomes).running(0, "remove container u1")  # type: ignore[arg-type]
    Operation(client, "op-1", outcomes).succeeded("container removed", {"action": "removed"})  # type: ignore[arg-type]
    tasks = AgentTasks.__new__(AgentTasks)
    tasks.client, tasks.outcomes = client, outcomes  # type: ignore[assignment]
    client.sent.clear()
    assert tasks.resend_outcomes(["op-1", "op-unknown"]) == {"ok": True, "sent": 1}
    assert client.sent == [{"operation_id": "op-1", "status": "succeeded", "progress": 100,
                            "message": "container removed", "result": {"action": "removed"}}]


def test_only_the_latest_outcomes_are_kept():
    outcomes = Outcomes(size=2)
    for number in range(3):
        outcomes.keep(f"op-{number}", {"operation_id": f"op-{number}"})
    assert outcomes.get("op-0") is None and outcomes.get("op-2") is not None
