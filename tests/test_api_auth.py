"""The HTTP API with JWTs: a token's patterns decide what it may read and change, and its
changes carry its `by`; the API key keeps full access as `by: {user: "api"}`."""

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from kpk_io.change import JSON
from kpk_io.tokens import issue
from tests.auth_keys import SECRET, claims, hs256
from tests.conftest import StartKpk
from tests.processes import KpkServer
from tests.test_auth import member

API_KEY = f"key-{uuid.uuid4().hex}"


@pytest.fixture
def kpk(start_kpk: StartKpk) -> KpkServer:
    return start_kpk(env={"KPK_IO_JWT_SECRET": SECRET, "KPK_IO_API_KEY": API_KEY})


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, credential: str | None,
    body: JSON = None,
) -> tuple[int, JSON]:
    headers = {} if credential is None else {"Authorization": f"Bearer {credential}"}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


def token(**extra: JSON) -> str:
    return issue("ann", name="Ann", ttl=600, key=SECRET, **extra)


async def test_a_token_reads_and_writes_what_its_patterns_allow(
    kpk: KpkServer, http: aiohttp.ClientSession
) -> None:
    writer = token(rooms=["org/a/*"], read_rooms=["pub/*"])
    base = f"{kpk.url}/api/rooms"
    async with member(kpk.url, issue("w", rooms=["*"], key=SECRET)) as watcher:
        await watcher.join("org/a/x")
        status, body = await call(http, "PATCH", f"{base}/org%2Fa%2Fx", writer, {"set": {"t": 1}})
        assert (status, body) == (200, {"room": "org/a/x", "rev": 1})
        update = (await watcher.wait_updates("org/a/x", 1))[0]
        assert update["by"] == {"user": "ann", "name": "Ann"}
    assert (await call(http, "GET", f"{base}/org%2Fa%2Fx", writer))[0] == 200
    assert (await call(http, "GET", f"{base}/pub%2Fnews", writer))[0] == 200
    for method, path in (("PATCH", "pub%2Fnews"), ("DELETE", "pub%2Fnews"),
                         ("GET", "org%2Fab%2Fx"), ("PATCH", "org%2Fa"), ("GET", "org%252Fa%2Fx")):
        status, body = await call(http, method, f"{base}/{path}", writer,
                                  {"set": {"t": 2}} if method == "PATCH" else None)
        assert (status, body["error"]) == (403, "forbidden"), (method, path)
    assert (await call(http, "GET", f"{base}/pub%2Fnews", API_KEY))[1]["rev"] == 0
    # Listing every room takes the API key (or a token with `*`).
    assert (await call(http, "GET", base, writer))[0] == 403
    assert (await call(http, "GET", base, API_KEY))[0] == 200
    assert (await call(http, "GET", base, token(read_rooms=["*"])))[0] == 200


async def test_bad_credentials_are_401(kpk: KpkServer, http: aiohttp.ClientSession) -> None:
    url = f"{kpk.url}/api/rooms/r"
    expired = hs256(claims(ttl=-120, rooms=["*"]))
    for credential in (None, "", "nonsense", expired, API_KEY + "x",
                       hs256(claims(rooms=["*"]), "another secret of at least 32 bytes!!")):
        status, body = await call(http, "GET", url, credential)
        assert (status, body["error"]) == (401, "unauthorized"), credential
        assert set(body) == {"error", "message"}


async def test_the_api_key_has_full_access_as_api(
    kpk: KpkServer, http: aiohttp.ClientSession
) -> None:
    async with member(kpk.url, issue("w", rooms=["*"], key=SECRET)) as watcher:
        await watcher.join("any/room")
        url = f"{kpk.url}/api/rooms/any%2Froom"
        assert (await call(http, "PATCH", url, API_KEY, {"set": {"x": 1}}))[0] == 200
        assert (await watcher.wait_updates("any/room", 1))[0]["by"] == {"user": "api"}


async def test_a_jwt_key_alone_turns_the_api_on(
    start_kpk: StartKpk, http: aiohttp.ClientSession
) -> None:
    server = start_kpk(env={"KPK_IO_JWT_SECRET": SECRET})
    url = f"{server.url}/api/rooms/r"
    assert (await call(http, "GET", url, token(rooms=["r"])))[0] == 200
    assert (await call(http, "GET", url, "some key"))[0] == 401
