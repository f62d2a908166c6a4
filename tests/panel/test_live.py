"""WebSocket consumers through the real ASGI application (session cookie, origin check, routing)
with channels' WebsocketCommunicator, a real Redis channel layer and real Redis streams."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client

from panel.audit.services import Actor
from panel.workloads import services as workloads
from runtime.agent.logship import log_stream_key, stats_stream_key, stats_watch_key
from tests.panel.fixtures import two_teams

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(django_user_model: Any, make_host: Any, broker: Any) -> dict[str, Any]:
    system = Actor.system("tests")
    teams = two_teams(django_user_model, platform=True)
    users, alpha = teams.users, teams.alpha
    make_host("h1")
    container, _ = workloads.create_container(system, {"name": "web", "image": "busybox"},
                                              alpha)
    return {"users": users, "container": container, "redis": broker}


def _cookie(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    return [(b"cookie", f"sessionid={session}".encode()), (b"origin", b"http://127.0.0.1")]


def _headers(user: Any = None) -> list[tuple[bytes, bytes]]:
    return _cookie(user) if user is not None else [(b"origin", b"http://127.0.0.1")]


def _communicator(path: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    from panel.asgi import application

    return WebsocketCommunicator(application, path, headers=headers)


def _refused(path: str, user: Any) -> int:
    return async_to_sync(_refused_async)(path, _headers(user))


async def _refused_async(path: str, headers: list[tuple[bytes, bytes]]) -> int:
    communicator = _communicator(path, headers)
    connected, _ = await communicator.connect()
    assert connected  # accepted, then closed with a code the browser can read
    message = await communicator.receive_json_from()
    close = await communicator.receive_output()
    await communicator.wait()
    assert close["type"] == "websocket.close"
    assert message["code"] == close["code"]
    return close["code"]


def _add_lines(redis: Any, uid: str, first: int, last: int) -> None:
    for seq in range(first, last + 1):
        redis.xadd(log_stream_key(uid), {"ts": "2026-11-28T03:24:14.292631276+00:00",
                                         "stream": "stderr" if seq % 2 else "stdout",
                                         "text": f"line {seq}"}, id=f"{seq}-0")


async def _lines(communicator: WebsocketCommunicator, until_seq: int) -> list[dict]:
    received: list[dict] = []
    while not received or received[-1]["seq"] < until_seq:
        message = await communicator.receive_json_from(timeout=5)
        received.extend(message.get("lines", []))
    return received


def test_anonymous_socket_is_closed_with_4401(world):
    uid = world["container"].pk
    for path in ("/ws/events/", f"/ws/containers/{uid}/logs/", f"/ws/containers/{uid}/stats/"):
        assert _refused(path, None) == 4401


def test_viewer_gets_no_logs_and_no_stats_4403(world):
    pk = world["container"].pk
    assert _refused(f"/ws/containers/{pk}/logs/", world["users"]["viewer"]) \
        == 4403
    assert _refused(f"/ws/containers/{pk}/stats/", world["users"]["viewer"]) \
        == 4403


def test_member_of_another_team_gets_4404_as_for_a_missing_container(world):
    pk = world["container"].pk
    assert _refused(f"/ws/containers/{pk}/logs/", world["users"]["other"]) \
        == 4404
    assert _refused("/ws/containers/999999/logs/", world["users"]["operator"]) \
        == 4404


def test_logs_tail_then_follow_then_resume_after_seq_without_gap_or_duplicate(world):
    container, redis = world["container"], world["redis"]
    uid = str(container.uid)
    _add_lines(redis, uid, 1, 50)

    headers = _headers(world["users"]["operator"])

    async def scenario() -> None:
        communicator = _communicator(f"/ws/containers/{container.pk}/logs/?tail=10&timestamps=1",
                                     headers)
        assert (await communicator.connect())[0]
        first = await _lines(communicator, 50)
        assert [line["seq"] for line in first] == list(range(41, 51))
        assert first[0]["ts"] == "2026-11-28T03:24:14.292631276Z"
        assert first[0]["stream"] == "stderr" and first[0]["text"] == "line 41"
        _add_lines(redis, uid, 51, 60)  # followed live
        followed = await _lines(communicator, 60)
        assert [line["seq"] for line in followed] == list(range(51, 61))
        await communicator.disconnect()
        _add_lines(redis, uid, 61, 75)  # written while the viewer was away
        again = _communicator(f"/ws/containers/{container.pk}/logs/?after=60", headers)
        assert (await again.connect())[0]
        missed = await _lines(again, 75)
        assert [line["seq"] for line in missed] == list(range(61, 76))
        await again.disconnect()

    async_to_sync(scenario)()


def test_resume_after_trimmed_lines_reports_the_gap(world):
    container, redis = world["container"], world["redis"]
    uid = str(container.uid)
    _add_lines(redis, uid, 100, 105)

    headers = _headers(world["users"]["operator"])

    async def scenario() -> None:
        communicator = _communicator(f"/ws/containers/{container.pk}/logs/?after=10", headers)
        assert (await communicator.connect())[0]
        notice = await communicator.receive_json_from(timeout=5)
        assert notice == {"gap": {"after": 10, "resumed_at": 100}}
        assert [line["seq"] for line in await _lines(communicator, 105)] == \
            list(range(100, 106))
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_bad_tail_is_refused_with_4400(world):
    pk = world["container"].pk
    assert _refused(f"/ws/containers/{pk}/logs/?tail=lots",
                                   world["users"]["operator"]) == 4400


def test_stats_socket_asks_the_agent_to_sample_and_relays_samples(world):
    container, redis = world["container"], world["redis"]
    uid = str(container.uid)

    headers = _headers(world["users"]["operator"])

    async def scenario() -> None:
        communicator = _communicator(f"/ws/containers/{container.pk}/stats/", headers)
        assert (await communicator.connect())[0]
        assert await communicator.receive_json_from(timeout=5) == {"samples": []}
        assert redis.exists(stats_watch_key(uid))  # the agent samples while this key lives
        redis.xadd(stats_stream_key(uid), {"json": json.dumps({"cpu_percent": 3.5,
                                                               "time": 1.0})})
        message = await communicator.receive_json_from(timeout=5)
        assert message["samples"][0]["cpu_percent"] == 3.5
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_events_reach_members_of_the_project_and_not_other_teams(world):
    from panel.workloads.reports import record_container_event
    from tests.panel.fixtures import container_state

    container = world["container"]

    headers = {name: _headers(world["users"][name]) for name in ("viewer", "other", "platform")}

    async def connect(name: str) -> WebsocketCommunicator:
        communicator = _communicator("/ws/events/", headers[name])
        assert (await communicator.connect())[0]
        assert "hello" in await communicator.receive_json_from(timeout=5)
        return communicator

    async def scenario() -> None:
        from channels.db import database_sync_to_async

        viewer = await connect("viewer")
        outsider = await connect("other")
        admin = await connect("platform")
        await database_sync_to_async(record_container_event)(
            Actor.agent("h1"), "h1", str(container.uid), "started",
            container_state(container, "running"))
        for communicator in (viewer, admin):
            events = []
            while not any(e.get("type") == "container" and e.get("status") == "running"
                          for e in events):
                events += (await communicator.receive_json_from(timeout=5))["events"]
            assert all(e["id"] == container.pk for e in events if e["type"] == "container")
        assert await outsider.receive_nothing(timeout=0.5)
        for communicator in (viewer, outsider, admin):
            await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_stop_note_reaches_the_page_live_and_a_new_start_clears_it(world):
    from panel.workloads.reports import record_container_event
    from tests.panel.fixtures import T1, T2, container_state

    container = world["container"]
    note = ("stopped with SIGKILL after 10s: it did not exit on SIGTERM: the process is PID 1 and "
            "has no SIGTERM handler, so the kernel dropped the signal; set init: true or handle "
            "SIGTERM")

    headers = _headers(world["users"]["viewer"])

    async def scenario() -> None:
        from channels.db import database_sync_to_async

        viewer = _communicator("/ws/events/", headers)
        assert (await viewer.connect())[0]
        assert "hello" in await viewer.receive_json_from(timeout=5)

        async def pushed(event: str, state: dict) -> dict:
            await database_sync_to_async(record_container_event)(
                Actor.agent("h1"), "h1", str(container.uid), event, state)
            while True:
                for sent in (await viewer.receive_json_from(timeout=5))["events"]:
                    if sent.get("type") == "container" and sent["status"] == state["status"]:
                        return sent

        await pushed("started", container_state(container, "running"))
        exited = await pushed("exited", container_state(container, "exited", finished=T1,
                                                        exit_code=137) | {"stop_note": note})
        assert exited["stop_note"] == note
        # the runtime clears the note when the container starts again (the state has none)
        started = await pushed("started", container_state(container, "running", started=T2))
        assert started["stop_note"] == ""
        await viewer.disconnect()

    async_to_sync(scenario)()
