"""Hostile input against a real `kpk-io serve`: arbitrary JSON at every event through a real
python-socketio client, malformed Socket.IO and Engine.IO packets over a bare WebSocket, and
arbitrary rooms and bodies at the HTTP API (which must answer with a status and its error
body, never 500).

Each property shows that the server stays up, answers every packet whose ack id can be read
(with a known error code when it refuses), changes no room the input did not legitimately
write, and keeps serving other clients; the memory test shows that the process gives back
what an attack took. Frames over KPK_IO_MAX_PAYLOAD and binary packets close the connection
instead.

CI runs a size that takes about a minute. For a longer run on demand:
    KPK_IO_FUZZ_EXAMPLES=2000 python3 -m pytest tests/test_hostile.py
(examples per property; default 300), and KPK_IO_FUZZ_SEED=N to repeat a run.
"""

import asyncio
import itertools
import json
import os
import string
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from yarl import URL

from kpk_io.protocol import ErrorCode
from tests.processes import KpkServer, RedisServer
from tests.raw_client import RawClient
from tests.sockets import Member

EXAMPLES = int(os.environ.get("KPK_IO_FUZZ_EXAMPLES", "300"))
SEED = os.environ.get("KPK_IO_FUZZ_SEED")
VICTIM = "kpk/notes/victim/q1/intro"
MAX_PAYLOAD = 64 * 1024
CODES = {code.value for code in ErrorCode}
# pytest-timeout's budget for a property, which grows with the examples asked for.
SIZED_TIMEOUT = pytest.mark.timeout(60 + EXAMPLES // 10)
API_KEY = "hostile-test-key"
T = TypeVar("T")

# --- strategies ---------------------------------------------------------------------------

LONE_SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff\udbff", "x\udc00"])
texts = st.one_of(
    st.text(max_size=12),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=4), LONE_SURROGATES, st.text(max_size=4)),
    st.sampled_from(["", " ", "undefined", "null", "x" * 300, "kpk/notes/a/b/c", "fuzz/a"]),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False), texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=16,
)
# Shaped like requests, so that the checks past "is it an object" are reached too.
requests = st.fixed_dictionaries(
    {"room": st.one_of(texts, json_values)},
    optional={
        "set": st.one_of(json_values, st.dictionaries(texts, json_values, max_size=4)),
        "unset": st.one_of(json_values, st.lists(texts, max_size=4)),
        "replace": json_values,
        "rev": st.one_of(st.integers(-3, 10), json_values),
        "since": st.one_of(st.integers(-3, 10), json_values),
        "tag": json_values,
        "id": st.one_of(texts, json_values),
    },
)
event_names = st.one_of(
    st.sampled_from(["join", "leave", "update", "sync", "presence", "signal", "connect",
                     "disconnect", "connect_error", "message", "*"]),
    texts,
)
calls = st.tuples(event_names, st.lists(st.one_of(requests, json_values), max_size=3))


def _not_a_header(body: str) -> bool:
    # A body that starts with a digit, "-" or "/" would be read as part of the header.
    return body[:1] not in set(string.digits) | {"-", "/"}


event_bodies = st.builds(lambda name, args: json.dumps([name, *args]),
                         st.one_of(event_names, json_values),
                         st.lists(st.one_of(requests, json_values), max_size=3))
bodies = st.one_of(
    event_bodies,
    st.just("[]"),
    json_values.map(json.dumps).filter(_not_a_header),
    st.text(max_size=40).filter(_not_a_header),
    event_bodies.flatmap(lambda body: st.integers(1, len(body) - 1).map(lambda n: body[:n])),
    st.integers(200, 1500).map(
        lambda n: '["update",{"room":"fuzz/deep","set":{"v":' + "[" * n + "]" * n + "}}]"),
    st.integers(900, 3000).map(lambda n: "[" * n + "]" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity"]).map(
        lambda c: '["update",{"room":"fuzz/n","set":{"v":' + c + "}}]"),
    st.sampled_from(['["join",{"room":"\\ud800"}]', '["\\udfff",{}]', '["sync",NaN]',
                     '["update",{"room":"fuzz/s","set":{"\\ud800":1}}]']),
    st.just(""),
).filter(_not_a_header)
# Socket.IO packet types a client may send that keep the connection: EVENT (2), ACK (3),
# and ones no client sends (4 CONNECT_ERROR, 7, 8, 9). 0, 1, 5 and 6 are tested apart.
packet_types = st.sampled_from("2222222234789")
packets = st.tuples(packet_types, st.booleans(), bodies)  # with an ack id or without
http_bodies = st.one_of(
    requests.map(lambda body: json.dumps({k: v for k, v in body.items() if k != "room"})),
    json_values.map(json.dumps),
    bodies,
    st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")),
    st.integers(900, 6000).map(lambda n: '{"set":{"v":' + "[" * n + "]" * n + "}}"),
)
# A room the API's route can carry: one path segment that HTTP clients do not normalise away.
api_rooms = texts.filter(lambda room: room not in {"", ".", ".."})
http_requests = st.tuples(st.sampled_from(["PATCH", "GET", "DELETE"]), api_rooms, http_bodies)


def fuzz_settings(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def wrap(test: Callable[..., None]) -> Callable[..., None]:
        configured = settings(
            max_examples=examples, deadline=None, database=None,
            suppress_health_check=list(HealthCheck), print_blob=True,
        )(test)
        return seed(int(SEED))(configured) if SEED else configured

    return wrap


# --- the server and the room that must not change -----------------------------------------


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[KpkServer]:
    """One server for the properties: no rate limits (the fuzzers send flat out; the limits
    have tests of their own), and a small payload limit so that frames over it are cheap to
    send. Pings keep their defaults: the clients' event loop runs only while an example
    does, and hypothesis may take seconds between examples."""
    node = KpkServer(
        "--redis-url", redis_server.url, "--key-prefix", "hostile:", "--log-level", "warning",
        "--max-payload", str(MAX_PAYLOAD),
        env={"KPK_IO_RATE_LIMIT": "0", "KPK_IO_JOIN_RATE": "0", "KPK_IO_API_KEY": API_KEY},
    )
    node.start()
    yield node
    assert node.returncode is None, node.log()  # it never fell over
    # No input raised anywhere, except the frames that are not Engine.IO packets at all,
    # which python-engineio refuses by raising (and then drops that WebSocket).
    raised = node.log().split("Traceback (most recent call last):")[1:]
    assert all("engineio/packet.py" in trace for trace in raised), node.log()
    node.kill()
    node.log_path.unlink(missing_ok=True)


class Victim:
    """A room with two well-behaved members, which no hostile input may touch."""

    def __init__(self, url: str) -> None:
        self.writer = Member(url)
        self.reader = Member(url)
        self.before: dict[str, Any] = {}

    async def open(self) -> "Victim":
        for member in (self.writer, self.reader):
            await member.connect()
            await member.join(VICTIM)
        await self.writer.update(VICTIM, set={"title": "kept", "n": 0})
        await self.reader.wait_updates(VICTIM, 1)
        self.before = await self.writer.join(VICTIM)
        return self

    async def check_and_close(self) -> None:
        """Nothing changed the room; both members still work and hear each other."""
        after = await self.reader.join(VICTIM)
        assert (after["rev"], after["state"]) == (self.before["rev"], self.before["state"])
        assert len(self.reader.updates) == 1
        ack = await self.writer.update(VICTIM, set={"n": 1})
        assert ack["rev"] == self.before["rev"] + 1
        await self.reader.wait_updates(VICTIM, 2)
        for member in (self.writer, self.reader):
            await member.close()


def check_ack(ack: object) -> None:
    assert isinstance(ack, dict), ack
    assert isinstance(ack.get("ok"), bool), ack
    if not ack["ok"]:
        assert ack["error"] in CODES, ack
        assert isinstance(ack["message"], str), ack


def attack(runner: asyncio.Runner, url: str, body: Callable[[], None]) -> None:
    """Run the property `body` with a victim room open beside it."""
    victim = runner.run(Victim(url).open())
    body()
    runner.run(victim.check_and_close())


def run(runner: asyncio.Runner, step: Awaitable[T]) -> T:
    return runner.run(asyncio.wait_for(step, 60))


# --- the properties -----------------------------------------------------------------------


@SIZED_TIMEOUT
def test_arbitrary_json_at_every_event_gets_an_answer(server: KpkServer) -> None:
    with asyncio.Runner() as runner:
        member = run(runner, Member(server.url).connect())

        async def send(batch: list[tuple[str, list[Any]]]) -> None:
            for event, args in batch:
                data = None if not args else args[0] if len(args) == 1 else tuple(args)
                check_ack(await member.sio.call(event, data, timeout=20))

        @fuzz_settings(EXAMPLES)
        @given(st.lists(calls, min_size=1, max_size=4))
        def events(batch: list[tuple[str, list[Any]]]) -> None:
            run(runner, send(batch))

        try:
            attack(runner, server.url, events)
        finally:
            run(runner, member.close())


@SIZED_TIMEOUT
def test_malformed_packets_are_answered_when_their_ack_id_can_be_read(
    server: KpkServer,
) -> None:
    with asyncio.Runner() as runner:
        async def open_raw() -> RawClient:  # its HTTP session belongs to the running loop
            return await RawClient(server.url).open({"client": "f" * 16})

        raw = run(runner, open_raw())

        ids = itertools.count(1_000_000)

        async def send(batch: list[tuple[str, bool, str]]) -> None:
            answers = []
            for packet_type, with_id, body in batch:
                ack_id = next(ids) if with_id else None
                if ack_id is not None and packet_type != "3":  # an ACK is not answered
                    answers.append(raw.expect_ack(ack_id))
                await raw.send(f"4{packet_type}{'' if ack_id is None else ack_id}{body}")
            for answer in await asyncio.wait_for(asyncio.gather(*answers), 10):
                assert len(answer) == 1, answer
                check_ack(answer[0])
            # The connection is still usable: a valid request after the batch is answered.
            check_ack(await raw.call("sync", {"room": "fuzz/none", "since": 0}))
            assert not raw.closed.is_set()

        @fuzz_settings(EXAMPLES * 2)
        @given(st.lists(packets, min_size=1, max_size=6))
        def frames(batch: list[tuple[str, bool, str]]) -> None:
            run(runner, send(batch))

        try:
            attack(runner, server.url, frames)
        finally:
            run(runner, raw.close())


@SIZED_TIMEOUT
def test_the_http_api_answers_any_body_with_a_status_and_an_error_body(
    server: KpkServer,
) -> None:
    with asyncio.Runner() as runner:

        async def send(batch: list[tuple[str, str, str]]) -> None:
            async with aiohttp.ClientSession() as http:
                for method, room, body in batch:
                    # A lone surrogate goes out as the bytes of its UTF-8-like encoding
                    # (%ED%A0%80), which the server must refuse.
                    segment = quote(room.encode("utf-8", "surrogatepass"), safe="")
                    url = f"{server.url}/api/rooms/{segment}"
                    headers = {"Authorization": f"Bearer {API_KEY}"}
                    data = body.encode("utf-8", "surrogatepass")
                    # encoded=True: the room's escapes go out exactly as written.
                    async with http.request(method, URL(url, encoded=True), data=data,
                                            headers=headers) as response:
                        status, answer = response.status, await response.json()
                    assert status in {200, 400, 404, 409, 413}, (status, answer)
                    if status != 200:
                        assert answer["error"] in CODES and answer["message"], answer

        @fuzz_settings(EXAMPLES)
        @given(st.lists(http_requests, min_size=1, max_size=4))
        def bodies_(batch: list[tuple[str, str, str]]) -> None:
            run(runner, send(batch))

        attack(runner, server.url, bodies_)


@pytest.mark.parametrize(
    "frame",
    [
        '42["update",{"room":"fuzz/big","set":{"v":"' + "x" * MAX_PAYLOAD + '"}}]',
        '451-["update",{"_placeholder":true,"num":0}]',
        "4699-[{}]",
        b"\x04\x00\x01",
        "x",  # not an Engine.IO packet: python-engineio drops the WebSocket
        "",
    ],
    ids=["over-max-payload", "binary-event", "binary-ack", "binary-frame", "not-engine-io",
         "empty"],
)
async def test_frames_that_close_the_connection_close_only_it(
    server: KpkServer, frame: str | bytes
) -> None:
    victim = await Victim(server.url).open()
    raw = await RawClient(server.url).open()
    try:
        await raw.join("fuzz/closing")
        await raw.send(frame)
        await raw.wait_closed(timeout=20)
    finally:
        await raw.close()
    await victim.check_and_close()


async def test_named_malformed_packets(server: KpkServer) -> None:
    cases = [
        ('2{id}["join",{{"room":NaN}}]', "invalid_request"),
        ("2{id}[]", "invalid_request"),
        ("2{id}[5,{{}}]", "invalid_request"),
        ('2{id}{{"bad json', "invalid_request"),
        ("2{id}" + '["join",' + "[" * 1000 + "]" * 1000 + "]", "invalid_request"),
        ('2{id}["update",{{"room":"r","set":{{"v":Infinity}}}}]', "invalid_request"),
        ("4{id}[]", "invalid_request"),
        ("9{id}{{}}", "invalid_request"),
        ("2{id}", "invalid_request"),
        ("2{id}null", "invalid_request"),
        ('2{id}["join",{{"room":"\\ud800"}}]', "invalid_room"),
        ('2{id}["nope",{{}}]', "unknown_event"),
        ('2{id}["*",{{"a":1}}]', "unknown_event"),
        ('2{id}["*"]', "unknown_event"),
        ('2/nope,{id}["join",{{"room":"fuzz/ok"}}]', "invalid_request"),
        ('2{id}["join",{{"room":"fuzz/ok"}}]', None),
    ]
    raw = await RawClient(server.url).open()
    try:
        await raw.send("4")  # an Engine.IO message with an empty Socket.IO packet: no answer
        for number, (template, code) in enumerate(cases, start=5_000_000):
            answer = raw.expect_ack(number)
            await raw.send("4" + template.format(id=number))
            ack = (await asyncio.wait_for(answer, 10))[0]
            assert (ack["ok"], ack.get("error")) == (code is None, code), (template, ack)
    finally:
        await raw.close()


# --- memory -------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def one_attack(url: str, clients: int, frames: list[str]) -> None:
    """`clients` connections at once, each sending every frame, then closing."""

    async def attacker() -> None:
        raw = await RawClient(url).open()
        try:
            for frame in frames:
                await raw.send(frame)
            await raw.call("sync", {"room": "fuzz/none", "since": 0}, timeout=30)
        finally:
            await raw.close()

    await asyncio.gather(*(attacker() for _ in range(clients)))


async def test_memory_returns_to_its_level_after_an_attack(
    start_kpk: Callable[..., KpkServer], redis_server: RedisServer, key_prefix: str
) -> None:
    node = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix,
                     "--log-level", "warning", "--max-payload", str(MAX_PAYLOAD),
                     env={"KPK_IO_RATE_LIMIT": "0", "KPK_IO_JOIN_RATE": "0"})
    big = "x" * (MAX_PAYLOAD - 200)
    frames = [
        '42["update",{"room":"fuzz/m","set":{"v":"' + big + '"}}]',  # not joined: refused
        "421" + '["update",{"room":"fuzz/m","set":{"v":' + "[" * 1200 + "]" * 1200 + "}}]",
        "422" + "[" * 3000 + "]" * 3000,
        '423["join",{"room":"' + big[:200] + '"}]',
        "424{" + big,
        '425["' + big[:5000] + '",{}]',
        "426[]",
        '427["join",{"room":NaN}]',
        '428["update",{"room":"fuzz/m","set":{"' + "k" * 1000 + '":1}}]',
    ] * 4
    victim = await Victim(node.url).open()
    await one_attack(node.url, 10, frames)  # warm-up: the allocator's pools, lazy imports
    await asyncio.sleep(1)
    before = rss_mib(node.pid)
    for _ in range(3):
        await one_attack(node.url, 10, frames)
    # Each round moved about 10 x 36 frames, 60 MiB; a leak of any of it would show.
    deadline = asyncio.get_running_loop().time() + 20
    while (after := rss_mib(node.pid)) > before + 8:
        assert asyncio.get_running_loop().time() < deadline, (before, after)
        await asyncio.sleep(0.5)
    await victim.check_and_close()
    assert node.returncode is None
