"""The stack's merged live log (`/ws/stacks/<id>/logs/`) through the real ASGI application, a real
Redis channel layer and real Redis log streams, written as the agents' log shipper writes them."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator

from panel.access import services as access
from panel.audit.services import Actor
from panel.stacks import services as stacks
from panel.stacks.logs import ReplicaColours, interleave, sort_key
from runtime.agent.logship import log_stream_key
from tests.panel.fixtures import two_teams
from tests.panel.test_live import _communicator, _headers, _refused

pytestmark = pytest.mark.django_db(transaction=True)

COMPOSE = "services:\n  web:\n    image: busybox\n  db:\n    image: busybox\n"


def _add_replica(stack: Any, service: str, slot: int) -> Any:
    return stacks.add_replica(Actor.system("tests"), stack, service, slot, "spec-1", 1,
                              {"name": f"shop-{service}-{slot}", "image": "busybox"}, {})


@pytest.fixture
def world(django_user_model: Any, make_host: Any, broker: Any) -> dict[str, Any]:
    system = Actor.system("tests")
    teams = two_teams(django_user_model)
    users, team_a, alpha = teams.users, teams.team_a, teams.alpha
    make_host("h1")
    stack = stacks.create_stack(system, "shop", COMPOSE, alpha)
    replicas = {f"{service}-{slot}": _add_replica(stack, service, slot)
                for service, slot in (("web", 1), ("web", 2), ("db", 1))}
    return {"users": users, "stack": stack, "replicas": replicas, "redis": broker,
            "team_a": team_a}


def _write(redis: Any, replica: Any, seq: int, second: int, text: str,
           stream: str = "stdout") -> None:
    """One line as the shipper writes it: id `<seq>-0`, conmon's timestamp."""
    redis.xadd(log_stream_key(str(replica.container.uid)),
               {"ts": f"2026-11-28T03:24:{second:02d}.{seq:09d}+00:00", "stream": stream,
                "text": text}, id=f"{seq}-0")


async def _receive_until(communicator: WebsocketCommunicator, done: Any) -> list[dict]:
    """Messages until `done(messages)` holds."""
    messages: list[dict] = []
    while not done(messages):
        messages.append(await communicator.receive_json_from(timeout=10))
    return messages


def _lines(messages: list[dict]) -> list[dict]:
    return [line for message in messages for line in message.get("lines", [])]


def _texts(messages: list[dict]) -> list[str]:
    return [line["text"] for line in _lines(messages)]


def test_tail_of_every_replica_arrives_merged_by_time_then_new_lines_follow(world):
    redis, replicas = world["redis"], world["replicas"]
    web1, web2, db1 = replicas["web-1"], replicas["web-2"], replicas["db-1"]
    # Each replica's lines in its own order; merged by time they alternate between replicas.
    for seq, second in enumerate((1, 4, 7, 10), 1):
        _write(redis, web1, seq, second, f"web-1 at {second}")
    for seq, second in enumerate((2, 5, 8, 11), 1):
        _write(redis, web2, seq, second, f"web-2 at {second}", "stderr")
    for seq, second in enumerate((3, 6, 9, 12), 1):
        _write(redis, db1, seq, second, f"db-1 at {second}")
    headers = _headers(world["users"]["operator"])
    path = f"/ws/stacks/{world['stack'].pk}/logs/"

    async def scenario() -> None:
        communicator = _communicator(f"{path}?tail=3", headers)
        assert (await communicator.connect())[0]
        messages = await _receive_until(communicator, lambda m: len(_lines(m)) >= 9)
        announced = messages[0]["replicas"]
        assert [r["replica"] for r in announced] == ["shop-db-1", "shop-web-1", "shop-web-2"]
        assert len({r["colour"] for r in announced}) == 3
        colour = {r["replica"]: r["colour"] for r in announced}
        lines = _lines(messages)
        # the last 3 of each replica, interleaved by time
        assert [line["text"] for line in lines] == [
            f"{name} at {second}" for second, name in zip(
                range(4, 13), ["web-1", "web-2", "db-1"] * 3, strict=True)]
        first = lines[0]
        assert first["replica"] == "shop-web-1" and first["service"] == "web"
        assert first["container"] == web1.container_id and first["seq"] == 2
        assert first["timestamp"] == "2026-11-28T03:24:04.000000002Z"
        assert all(line["colour"] == colour[line["replica"]] for line in lines)
        assert {line["stream"] for line in lines if line["replica"] == "shop-web-2"} \
            == {"stderr"}

        _write(redis, db1, 5, 20, "db-1 live")  # followed without reconnecting
        _write(redis, web2, 5, 21, "web-2 live")
        followed = await _receive_until(communicator, lambda m: len(_lines(m)) >= 2)
        assert sorted(_texts(followed)) == ["db-1 live", "web-2 live"]
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_resume_after_seqs_sends_the_missed_lines_interleaved_and_nothing_twice(world):
    redis, replicas = world["redis"], world["replicas"]
    web1, web2 = replicas["web-1"], replicas["web-2"]
    _write(redis, web1, 1, 1, "seen 1")
    _write(redis, web2, 1, 2, "seen 2")
    headers = _headers(world["users"]["operator"])
    path = f"/ws/stacks/{world['stack'].pk}/logs/?service=web"

    async def scenario() -> None:
        communicator = _communicator(path, headers)
        assert (await communicator.connect())[0]
        seen = await _receive_until(communicator, lambda m: len(_lines(m)) >= 2)
        assert _texts(seen) == ["seen 1", "seen 2"]
        assert [r["replica"] for r in seen[0]["replicas"]] == ["shop-web-1", "shop-web-2"]
        await communicator.disconnect()
        # written while the page was away, each replica's in a run of its own
        for seq, second in ((2, 5), (3, 7)):
            _write(redis, web1, seq, second, f"missed {second}")
        for seq, second in ((2, 4), (3, 6)):
            _write(redis, web2, seq, second, f"missed {second}")
        again = _communicator(
            f"{path}&after={web1.container_id}:1,{web2.container_id}:1", headers)
        assert (await again.connect())[0]
        missed = await _receive_until(again, lambda m: len(_lines(m)) >= 4)
        assert _texts(missed) == ["missed 4", "missed 5", "missed 6", "missed 7"]
        assert await again.receive_nothing(timeout=0.5)
        await again.disconnect()

    async_to_sync(scenario)()


def test_replica_added_after_connect_joins_and_a_removed_one_drops_out(world):
    redis, replicas, stack = world["redis"], world["replicas"], world["stack"]
    _write(redis, replicas["web-1"], 1, 1, "web-1 first")
    headers = _headers(world["users"]["operator"])

    async def scenario() -> None:
        communicator = _communicator(f"/ws/stacks/{stack.pk}/logs/?service=web", headers)
        assert (await communicator.connect())[0]
        start = await _receive_until(communicator, lambda m: len(_lines(m)) >= 1)
        colours = {r["replica"]: r["colour"] for r in start[0]["replicas"]}

        # scale up: the new replica writes before the socket notices it, and after
        web3 = await database_sync_to_async(_add_replica)(stack, "web", 3)
        _write(redis, web3, 1, 30, "web-3 starting")
        _write(redis, web3, 2, 31, "web-3 ready")
        grown = await _receive_until(communicator, lambda m: len(_lines(m)) >= 2)
        announced = next(m["replicas"] for m in grown if "replicas" in m)
        assert [r["replica"] for r in announced] == ["shop-web-1", "shop-web-2", "shop-web-3"]
        assert {r["replica"]: r["colour"] for r in announced if r["replica"] != "shop-web-3"} \
            == colours  # the others keep their colours
        assert _texts(grown) == ["web-3 starting", "web-3 ready"]
        _write(redis, web3, 3, 32, "web-3 serving")
        assert _texts(await _receive_until(communicator, lambda m: len(_lines(m)) >= 1)) \
            == ["web-3 serving"]

        # scale down: it leaves the list, its last words still arrive
        await database_sync_to_async(stacks.drop_replica)(Actor.system("tests"), web3)
        shrunk = await _receive_until(communicator, lambda m: any("replicas" in x for x in m))
        assert [r["replica"] for r in shrunk[-1]["replicas"]] == ["shop-web-1", "shop-web-2"]
        _write(redis, web3, 4, 33, "web-3 stopping")
        assert _texts(await _receive_until(communicator, lambda m: len(_lines(m)) >= 1)) \
            == ["web-3 stopping"]
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_viewer_gets_4403_another_team_and_a_missing_stack_4404_anonymous_4401(world):
    path = f"/ws/stacks/{world['stack'].pk}/logs/"
    assert _refused(path, world["users"]["viewer"]) == 4403  # sees the stack, not its logs
    assert _refused(path, world["users"]["other"]) == 4404  # as if there were no such stack
    assert _refused("/ws/stacks/999999/logs/", world["users"]["operator"]) == 4404
    assert _refused(path, None) == 4401


def test_bad_parameters_are_refused_with_4400(world):
    path = f"/ws/stacks/{world['stack'].pk}/logs/"
    operator = world["users"]["operator"]
    for query in ("tail=lots", "tail=1001", "tail=-1", "service=web%20app", "after=web:3",
                  "after=1:x"):
        assert _refused(f"{path}?{query}", operator) == 4400, query


def test_socket_closes_with_4403_once_the_role_no_longer_reads_logs(world):
    headers = _headers(world["users"]["operator"])

    async def scenario() -> None:
        communicator = _communicator(f"/ws/stacks/{world['stack'].pk}/logs/", headers)
        assert (await communicator.connect())[0]
        assert "replicas" in await communicator.receive_json_from(timeout=5)
        await database_sync_to_async(access.set_member)(
            Actor.system("tests"), world["team_a"], "operator", "viewer")
        messages = await _receive_until(communicator, lambda m: any("error" in x for x in m))
        assert messages[-1]["code"] == 4403
        close = await communicator.receive_output(timeout=5)
        assert close["type"] == "websocket.close" and close["code"] == 4403
        assert close["reason"] == "your role may not read this stack's logs"
        await communicator.wait()

    async_to_sync(scenario)()


def test_timestamps_of_any_fraction_width_and_offset_sort_by_the_moment_they_name():
    assert sort_key("2026-11-28T03:24:14.292631276+00:00") == \
        sort_key("2026-11-28T03:24:14.292631276Z") == 1795836254292631276
    assert sort_key("2026-11-28T03:24:14.3Z") > sort_key("2026-11-28T03:24:14.29999Z")
    assert sort_key("2026-11-28T05:24:14.1+02:00") == sort_key("2026-11-28T03:24:14.1Z")
    assert sort_key("2026-11-28T03:24:14Z") == 1795836254000000000
    assert sort_key("not a time") == 0


def test_interleave_merges_by_time_and_keeps_each_replicas_own_order():
    def line(replica: str, second: int, text: str) -> dict:
        return {"replica": replica, "timestamp": f"2026-11-28T03:24:{second:02d}Z", "text": text}

    # b's second entry carries an earlier time (an entry is stamped when its first part came)
    a = [line("a", 1, "a1"), line("a", 3, "a2")]
    b = [line("b", 2, "b1"), line("b", 1, "b2"), line("b", 4, "b3")]
    assert [x["text"] for x in interleave([a, b])] == ["a1", "b1", "b2", "a2", "b3"]


def test_replica_colours_stay_put_and_newcomers_take_the_least_used():
    colours = ReplicaColours()
    assert colours.assign(["a", "b", "c"]) == {"a": 0, "b": 1, "c": 2}
    assert colours.assign(["a", "c", "d"]) == {"a": 0, "c": 2, "d": 1}  # b's colour was free
    assert colours.assign([f"r{n}" for n in range(9)])["r8"] == 0  # all 8 in use: wraps
