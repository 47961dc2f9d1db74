"""The HTTP API on real `kpk-io serve` processes sharing one Redis, seen by real members."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from kpk_io.change import JSON
from kpk_io.rooms import encode_uri_component
from tests.conftest import StartKpk
from tests.polling import eventually_async
from tests.processes import KpkServer, RedisServer
from tests.sockets import members, untagged

API_KEY = f"key-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def nodes(start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str) -> list[KpkServer]:
    """Three servers on one Redis, the API on."""
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    return [start_kpk(*flags, env={"KPK_IO_API_KEY": API_KEY}) for _ in range(3)]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def room_url(node: KpkServer, encoded_room: str) -> URL:
    # encoded=True: the path goes out exactly as written, malformed escapes included.
    return URL(f"{node.url}/api/rooms/{encoded_room}", encoded=True)


async def request(
    http: aiohttp.ClientSession,
    method: str,
    url: URL,
    body: JSON = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, JSON]:
    data = body if isinstance(body, bytes) else None
    json_body = None if isinstance(body, bytes) else body
    async with http.request(
        method, url, json=json_body, data=data, headers=AUTH if headers is None else headers
    ) as response:
        return response.status, await response.json()


async def test_patch_reaches_members_on_every_node(
    nodes: list[KpkServer], http: aiohttp.ClientSession
) -> None:
    body = {"set": {"title": "Q1", "done": None}, "unset": ["draft"], "id": "cron-1"}
    async with members(*(node.url for node in nodes)) as everywhere:
        for member in everywhere:
            await member.join("plan")

        status, answer = await request(http, "PATCH", room_url(nodes[0], "plan"), body)

        assert (status, answer) == (200, {"room": "plan", "rev": 1})
        for member in everywhere:
            assert untagged(await member.wait_updates("plan", 1)) == [{
                "room": "plan", "rev": 1, "set": {"title": "Q1", "done": None},
                "unset": ["draft"], "replace": False, "id": "cron-1",
                "by": {"user": "api"},  # the API key's changes say so
            }]
    status, answer = await request(http, "GET", room_url(nodes[2], "plan"))
    assert (status, answer) == (200, {"room": "plan", "rev": 1,
                                      "state": {"title": "Q1", "done": None}})


async def test_delete_empties_the_room_with_a_replace(
    nodes: list[KpkServer], http: aiohttp.ClientSession
) -> None:
    await request(http, "PATCH", room_url(nodes[0], "plan"), {"set": {"a": 1, "b": 2}})
    async with members(*(node.url for node in nodes)) as everywhere:
        for member in everywhere:
            await member.join("plan")

        status, answer = await request(http, "DELETE", room_url(nodes[1], "plan"))

        assert (status, answer) == (200, {"room": "plan", "rev": 2})
        for member in everywhere:
            assert untagged(await member.wait_updates("plan", 1)) == [
                {"room": "plan", "rev": 2, "set": {}, "unset": [], "replace": True,
                 "by": {"user": "api"}}
            ]
    status, answer = await request(http, "GET", room_url(nodes[0], "plan"))
    assert (status, answer) == (200, {"room": "plan", "rev": 2, "state": {}})


async def test_the_room_is_one_segment_decoded_exactly_once(
    nodes: list[KpkServer], http: aiohttp.ClientSession
) -> None:
    room = "kpk/notes/acme%20co/q1/intro"
    encoded = encode_uri_component(room)
    assert encoded == "kpk%2Fnotes%2Facme%2520co%2Fq1%2Fintro"
    async with members(nodes[1].url) as (member,):
        await member.join(room)

        patch = await request(http, "PATCH", room_url(nodes[0], encoded), {"set": {"x": 1}})

        assert patch == (200, {"room": room, "rev": 1})
        assert [u["rev"] for u in await member.wait_updates(room, 1)] == [1]
    decoded_twice = encode_uri_component("kpk/notes/acme co/q1/intro")
    status, answer = await request(http, "GET", room_url(nodes[2], decoded_twice))
    assert (status, answer["rev"]) == (200, 0)
    for odd in ("{braces}:colons", "a{b", "}", "ünï cödé"):  # valid room IDs, all
        status, answer = await request(
            http, "PATCH", room_url(nodes[0], encode_uri_component(odd)), {"set": {"x": 1}}
        )
        assert (status, answer) == (200, {"room": odd, "rev": 1})


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"},
     {"Authorization": f"Bearer {API_KEY}x"}],
)
async def test_a_wrong_or_missing_key_is_refused(
    start_kpk: StartKpk, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    node = start_kpk(env={"KPK_IO_API_KEY": API_KEY})
    for method in ("GET", "PATCH", "DELETE"):
        async with http.request(
            method, room_url(node, "plan"), json={"set": {"a": 1}}, headers=headers
        ) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["error"] == "unauthorized"
    assert await request(http, "GET", room_url(node, "plan")) == (
        200, {"room": "plan", "rev": 0, "state": {}}
    )


async def test_the_api_is_off_without_a_key(
    start_kpk: StartKpk, http: aiohttp.ClientSession
) -> None:
    node = start_kpk(env={"KPK_IO_API_KEY": ""})
    for method in ("GET", "PATCH", "DELETE"):
        status, answer = await request(http, method, room_url(node, "plan"), {"set": {"a": 1}})
        assert (status, answer["error"]) == (404, "api_disabled")


@pytest.mark.parametrize(
    ("encoded_room", "body", "code"),
    [
        ("plan", b"not json", "invalid_request"),
        ("plan", b"", "invalid_request"),
        ("plan", [1, 2], "invalid_request"),
        ("plan", {"set": {"a": 1}, "room": "other"}, "invalid_request"),
        ("plan", {}, "invalid_update"),
        ("plan", {"set": 1}, "invalid_update"),
        ("plan", {"set": {"a": 1}, "unset": ["a"]}, "invalid_update"),
        ("plan", {"set": {"a": 1}, "rev": -1}, "invalid_update"),
        ("plan", b'{"set": {"a": NaN}}', "invalid_update"),
        ("plan", b'{"set": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}", "invalid_request"),
        ("plan", b'{"set": {"a": ' + b"[" * 900 + b"]" * 900 + b"}}", "invalid_update"),
        ("plan", b"[" * 100_000, "invalid_request"),
        ("plan", b'{"set": {"a": "\xff"}}', "invalid_request"),
        ("plan", b'{"set": {"a": "\\ud800"}}', "invalid_update"),
        ("undefined", {"set": {"a": 1}}, "invalid_room"),
        ("%20", {"set": {"a": 1}}, "invalid_room"),
        ("a%00b", {"set": {"a": 1}}, "invalid_room"),
        ("x" * 257, {"set": {"a": 1}}, "invalid_room"),
        ("50%off", {"set": {"a": 1}}, "invalid_room"),
        ("%FF", {"set": {"a": 1}}, "invalid_room"),
    ],
)
async def test_bad_requests_are_refused_and_change_nothing(
    start_kpk: StartKpk, http: aiohttp.ClientSession, encoded_room: str, body: JSON, code: str
) -> None:
    node = start_kpk(env={"KPK_IO_API_KEY": API_KEY})

    status, answer = await request(http, "PATCH", room_url(node, encoded_room), body)

    assert (status, answer["error"]) == (400, code)
    assert answer["message"]
    assert (await request(http, "GET", room_url(node, "plan")))[1]["rev"] == 0


async def test_a_stale_rev_is_a_conflict_carrying_the_current_rev(
    start_kpk: StartKpk, http: aiohttp.ClientSession
) -> None:
    node = start_kpk(env={"KPK_IO_API_KEY": API_KEY})
    url = room_url(node, "plan")
    assert await request(http, "PATCH", url, {"set": {"a": 1}, "rev": 0}) == (
        200, {"room": "plan", "rev": 1}
    )

    status, answer = await request(http, "PATCH", url, {"set": {"a": 2}, "rev": 0})

    assert (status, answer["error"], answer["rev"]) == (409, "conflict", 1)
    assert (await request(http, "GET", url))[1]["state"] == {"a": 1}


async def test_a_body_over_the_limit_is_refused(
    start_kpk: StartKpk, http: aiohttp.ClientSession
) -> None:
    node = start_kpk(env={"KPK_IO_API_KEY": API_KEY})
    body = b'{"set": {"a": "' + b"x" * 2_000_000 + b'"}}'

    status, answer = await request(http, "PATCH", room_url(node, "plan"), body)

    assert (status, answer["error"]) == (413, "too_large")
    assert answer["message"]
    assert (await request(http, "PATCH", room_url(node, "plan"), {"set": {"a": 1}}))[0] == 200


async def test_the_limits_hold_for_the_api_with_the_same_codes(
    start_kpk: StartKpk, http: aiohttp.ClientSession
) -> None:
    node = start_kpk("--max-update-bytes", "100", "--max-state-bytes", "150",
                     "--max-fields", "2", "--max-field-name", "4",
                     env={"KPK_IO_API_KEY": API_KEY})
    url = room_url(node, "plan")
    refusals = [
        ({"set": {"a": "x" * 100}}, 413, "too_large"),
        ({"set": {"a": 1, "b": 2, "c": 3}}, 413, "too_large"),
        ({"set": {"longer": 1}}, 400, "invalid_update"),
    ]
    for body, status, code in refusals:
        answer = await request(http, "PATCH", url, body)
        assert (answer[0], answer[1]["error"]) == (status, code), answer
        assert answer[1]["message"]
    assert (await request(http, "PATCH", url, {"set": {"a": "x" * 90}}))[0] == 200
    status, answer = await request(http, "PATCH", url, {"set": {"b": "y" * 70}})
    assert (status, answer["error"]) == (413, "too_large")
    assert await request(http, "GET", url) == (200, {
        "room": "plan", "rev": 1, "state": {"a": "x" * 90}
    })


async def test_the_api_is_rate_limited_per_client_address(
    start_kpk: StartKpk, http: aiohttp.ClientSession
) -> None:
    node = start_kpk("--rate-limit", "0.5", "--rate-burst", "2",
                     env={"KPK_IO_API_KEY": API_KEY})
    url = room_url(node, "plan")
    assert (await request(http, "PATCH", url, {"set": {"a": 1}}))[0] == 200
    assert (await request(http, "DELETE", url))[0] == 200
    async with http.patch(url, json={"set": {"a": 2}}, headers=AUTH) as response:
        status, answer = response.status, await response.json()
        retry_header = response.headers["Retry-After"]
    assert (status, answer["error"]) == (429, "rate_limited")
    assert 0 < answer["retry_after"] <= 2000 and answer["message"]
    assert retry_header in {"1", "2"}
    assert (await request(http, "GET", url))[1]["rev"] == 2  # reads have their own bucket
    await asyncio.sleep(answer["retry_after"] / 1000)
    assert (await request(http, "PATCH", url, {"set": {"a": 3}})) == (
        200, {"room": "plan", "rev": 3}
    )


async def test_an_unreachable_store_answers_unavailable(
    start_kpk: StartKpk, own_redis: RedisServer, http: aiohttp.ClientSession
) -> None:
    node = start_kpk("--redis-url", own_redis.url, env={"KPK_IO_API_KEY": API_KEY})
    own_redis.kill()

    for method, body in (("GET", None), ("PATCH", {"set": {"a": 1}}), ("DELETE", None)):
        status, answer = await request(http, method, room_url(node, "plan"), body)
        assert (status, answer["error"]) == (503, "unavailable")


async def test_api_updates_are_counted_in_the_metrics(
    start_kpk: StartKpk, http: aiohttp.ClientSession
) -> None:
    node = start_kpk(env={"KPK_IO_API_KEY": API_KEY})
    await request(http, "PATCH", room_url(node, "plan"), {"set": {"a": 1}})
    await request(http, "DELETE", room_url(node, "plan"))
    await request(http, "PATCH", room_url(node, "plan"), {"set": 1})

    async with http.get(f"{node.url}/metrics") as response:
        text = await response.text()

    assert "kpk_io_updates_committed_total 2.0" in text
    assert 'kpk_io_updates_refused_total{code="invalid_update"} 1.0' in text
    assert "kpk_io_commit_seconds_count 2.0" in text


async def test_get_rooms_lists_the_stored_rooms_page_by_page(
    nodes: list[KpkServer], http: aiohttp.ClientSession
) -> None:
    names = ["kpk/notes/acme/q1/a", "kpk/notes/acme/q1/b", "with space", "ünï"]
    for index, name in enumerate(names):
        url = room_url(nodes[index % 3], encode_uri_component(name))
        assert (await request(http, "PATCH", url, {"set": {"n": index}}))[0] == 200
    seen: list[dict[str, JSON]] = []
    cursor: str | None = None
    for _ in range(10_000):
        query = f"?limit=1&cursor={cursor}" if cursor else "?limit=1"
        status, page = await request(http, "GET", URL(f"{nodes[1].url}/api/rooms{query}"))
        assert status == 200 and len(page["rooms"]) <= 1
        seen += page["rooms"]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert sorted(entry["room"] for entry in seen) == sorted(names)
    first = next(entry for entry in seen if entry["room"] == names[0])
    assert {k: first[k] for k in ("rev", "fields", "bytes")} == {
        "rev": 1, "fields": 1, "bytes": len("n") + len("0")
    }
    assert first["changed"].endswith("Z") and first["changed"].startswith("20")


async def test_get_rooms_counts_each_rooms_members_on_every_node(
    nodes: list[KpkServer], http: aiohttp.ClientSession
) -> None:
    busy, quiet = "kpk/notes/acme/q1/busy", "kpk/notes/acme/q1/quiet"
    for name in (busy, quiet):
        url = room_url(nodes[0], encode_uri_component(name))
        assert (await request(http, "PATCH", url, {"set": {"n": 1}}))[0] == 200

    async def counts() -> dict[str, int]:
        status, page = await request(http, "GET", URL(f"{nodes[2].url}/api/rooms"))
        assert status == 200, page
        return {entry["room"]: entry["members"] for entry in page["rooms"]}

    assert await counts() == {busy: 0, quiet: 0}
    async with members(nodes[0].url, nodes[1].url, nodes[1].url) as [a, b, c]:
        for member in (a, b, c):
            assert (await member.join(busy))["ok"]
        assert (await c.join(quiet))["ok"]
        assert await counts() == {busy: 3, quiet: 1}
        assert (await c.call("leave", {"room": busy}))["ok"]
        assert await counts() == {busy: 2, quiet: 1}
    await eventually_async(counts, {busy: 0, quiet: 0}, timeout=10)


async def test_get_rooms_refuses_bad_paging_and_needs_the_key(
    nodes: list[KpkServer], http: aiohttp.ClientSession
) -> None:
    rooms = f"{nodes[0].url}/api/rooms"
    for query in ("?limit=0", "?limit=1001", "?limit=x", "?limit=²", "?cursor=nonsense"):
        status, answer = await request(http, "GET", URL(rooms + query))
        assert (status, answer["error"]) == (400, "invalid_request"), query
    status, answer = await request(http, "GET", URL(rooms), headers={})
    assert (status, answer["error"]) == (401, "unauthorized")


async def test_listing_rooms_takes_a_read_token_like_reading_a_room(
    start_kpk: StartKpk, http: aiohttp.ClientSession
) -> None:
    node = start_kpk("--join-rate", "0.001", "--join-burst", "2",
                     env={"KPK_IO_API_KEY": API_KEY})
    rooms = URL(f"{node.url}/api/rooms")
    assert (await request(http, "GET", rooms))[0] == 200
    assert (await request(http, "GET", room_url(node, "plan")))[0] == 200
    for url in (rooms, room_url(node, "plan")):  # one bucket of reads per client address
        status, answer = await request(http, "GET", url)
        assert (status, answer["error"]) == (429, "rate_limited"), answer
        assert answer["retry_after"] > 0 and answer["message"]
    assert (await request(http, "PATCH", room_url(node, "plan"), {"set": {"a": 1}}))[0] == 200


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/api/rooms/org/a/z2", 404),  # an unencoded slash in the room ID
    ("PATCH", "/api/rooms/org/a/z2", 404),
    ("GET", "/api/nope", 404),
    ("GET", "/api", 404),
    ("GET", "/api/rooms/", 404),
    ("POST", "/api/rooms/plan", 405),
    ("PUT", "/api/rooms", 405),
])
async def test_unknown_api_paths_and_methods_answer_the_json_error_body(
    start_kpk: StartKpk, http: aiohttp.ClientSession, method: str, path: str, status: int
) -> None:
    node = start_kpk(env={"KPK_IO_API_KEY": API_KEY})
    got, answer = await request(http, method, URL(f"{node.url}{path}", encoded=True), {})
    assert got == status
    assert isinstance(answer, dict) and answer["error"] == "invalid_request", answer
    assert isinstance(answer["message"], str) and answer["message"]
    if path == "/api/rooms/org/a/z2":
        assert "org%2Fa%2Fz2" in answer["message"]
    async with http.get(f"{node.url}/no/such/page") as outside:  # outside /api/: aiohttp's own
        assert outside.status == 404
