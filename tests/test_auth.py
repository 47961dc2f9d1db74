"""Identity and permissions on real `kpk-io serve` processes with real tokens."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
import socketio

from kpk_io.change import CommittedChange
from kpk_io.client import KpkClient, KpkError
from kpk_io.tokens import issue
from tests.auth_keys import OTHER_SECRET, SECRET, KeyPair, claims, handmade, hs256
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import KpkServer
from tests.sockets import Member, untagged

AUDIENCE, ISSUER = "kpk-io", "kpk-app"
SECRET_ENV = {"KPK_IO_JWT_SECRET": SECRET}


class TokenMember(Member):
    """A raw Socket.IO connection that presents a token."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url)
        self.token = token

    async def connect(self) -> "TokenMember":
        await self.sio.connect(self.url, auth={"token": self.token}, transports=["websocket"],
                               wait_timeout=10)
        return self


@asynccontextmanager
async def member(url: str, token: str) -> AsyncIterator[TokenMember]:
    connected = await TokenMember(url, token).connect()
    try:
        yield connected
    finally:
        await connected.close()


async def refusal(url: str, auth: object) -> Any:
    """The `data` of the connect_error a connect with `auth` gets."""
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
    assert len(errors) == 1, errors
    return errors[0]["data"]


@pytest.fixture(params=["memory", "redis"])
def kpk(request: pytest.FixtureRequest, start_kpk: StartKpk) -> KpkServer:
    """A server with an HS256 secret, an audience and an issuer."""
    env = {**SECRET_ENV, "KPK_IO_JWT_AUDIENCE": AUDIENCE, "KPK_IO_JWT_ISSUER": ISSUER}
    if request.param == "memory":
        return start_kpk(env=env)
    redis_url = request.getfixturevalue("redis_server").url
    prefix = request.getfixturevalue("key_prefix")
    return start_kpk("--redis-url", redis_url, "--key-prefix", prefix, env=env)


def token(sub: str = "ann", **extra: Any) -> str:
    return hs256(claims(sub, aud=AUDIENCE, iss=ISSUER, **extra))


def unsigned() -> str:
    return handmade({"alg": "none", "typ": "JWT"}, claims(aud=AUDIENCE, iss=ISSUER), None)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: None, "a token is required"),
        (lambda: 42, "a token is required"),
        (lambda: "not.a.jwt", "well-formed"),
        (lambda: "x" * 20_000, "longer than"),
        (lambda: hs256(claims(aud=AUDIENCE, iss=ISSUER), OTHER_SECRET), "signature"),
        (lambda: token(ttl=-120), "expired"),
        (unsigned, "must be signed with HS256"),
        (lambda: hs256({"sub": "ann", "aud": AUDIENCE, "iss": ISSUER}), "no exp claim"),
        (lambda: hs256({"exp": claims()["exp"], "aud": AUDIENCE, "iss": ISSUER}), "no sub"),
        (lambda: hs256(claims(aud="someone-else", iss=ISSUER)), "audience"),
        (lambda: hs256(claims(iss=ISSUER)), "no aud claim"),
        (lambda: hs256(claims(aud=AUDIENCE, iss="mallory")), "issuer"),
        (lambda: token(rooms="org/*"), "rooms must be a list"),
    ],
    ids=["missing", "not-a-string", "malformed", "too-long", "wrong-signature", "expired",
         "alg-none", "no-exp", "no-sub", "wrong-audience", "no-audience", "wrong-issuer",
         "bad-rooms"],
)
async def test_a_token_that_does_not_verify_is_refused_at_connect(
    kpk: KpkServer, make: Any, reason: str
) -> None:
    data = await refusal(kpk.url, {"token": make()})
    assert data["error"] == "unauthorized"
    assert reason in data["message"]
    assert set(data) == {"error", "message"}


async def test_no_auth_object_at_all_is_refused(kpk: KpkServer) -> None:
    assert (await refusal(kpk.url, None))["error"] == "unauthorized"


async def test_a_token_in_the_url_is_not_read(kpk: KpkServer) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(f"{kpk.url}?token={token(rooms=['*'])}", transports=["websocket"],
                          wait_timeout=10)
    assert errors[0]["data"]["error"] == "unauthorized"


async def test_joins_and_updates_follow_the_patterns(kpk: KpkServer) -> None:
    ann = token(rooms=["org/a/*", "exact"], read_rooms=["pub/*"])
    async with member(kpk.url, ann) as a, member(kpk.url, token("w", rooms=["*"])) as w:
        for room in ("org/a/x", "org/a/x/y", "exact", "pub/news"):
            assert (await a.call("join", {"room": room}))["ok"], room
        for room in ("org/a", "org/ab/x", "org/ab", "org%2Fa/x", "org/a%2Fx", "ORG/a/x",
                     "org\uff0fa/x", "exact/", "exact ", "pub", "other"):
            ack = await a.call("join", {"room": room})
            assert (ack["ok"], ack["error"]) == (False, "forbidden"), room
        assert (await a.update("org/a/x", set={"t": 1}))["ok"]
        # Read-only: joined, sees updates, may sync, may not write; nothing changes.
        await w.join("pub/news")
        refused = await a.update("pub/news", set={"t": "defaced"})
        assert (refused["ok"], refused["error"]) == (False, "forbidden")
        assert (await a.call("sync", {"room": "pub/news", "since": 0}))["ok"]
        assert (await w.join("pub/news"))["rev"] == 0
        await w.update("pub/news", set={"t": "news"})
        assert [u["rev"] for u in await a.wait_updates("pub/news", 1)] == [1]
        assert (await a.call("join", {"room": "org/a/x"}))["ok"]  # still usable


async def test_a_token_without_rooms_may_connect_but_join_nothing(kpk: KpkServer) -> None:
    async with member(kpk.url, token()) as a:
        assert (await a.call("join", {"room": "any"}))["error"] == "forbidden"


async def test_updates_and_sync_carry_who_made_them(kpk: KpkServer) -> None:
    ann, bob = token("ann", name="Ann", rooms=["r"]), token("bob", rooms=["r"])
    async with member(kpk.url, ann) as a, member(kpk.url, bob) as b:
        await a.join("r")
        await b.join("r")
        await a.update("r", set={"x": 1}, id="a-1")
        await b.update("r", set={"y": 2})
        assert untagged(await b.wait_updates("r", 1)) == [{
            "room": "r", "rev": 1, "set": {"x": 1}, "unset": [], "replace": False, "id": "a-1",
            "by": {"user": "ann", "name": "Ann"},
        }]
        assert (await a.wait_updates("r", 1))[0]["by"] == {"user": "bob"}
        synced = await b.call("sync", {"room": "r", "since": 0})
        assert [c["by"] for c in synced["changes"]] == [{"user": "ann", "name": "Ann"},
                                                        {"user": "bob"}]


async def test_without_auth_changes_carry_no_by(start_kpk: StartKpk) -> None:
    server = start_kpk()
    async with member(server.url, "ignored") as a, member(server.url, "") as b:
        await a.join("r")
        await b.join("r")
        await a.update("r", set={"x": 1})
        assert "by" not in (await b.wait_updates("r", 1))[0]
    assert "auth is off" in server.log()


async def test_with_auth_on_there_is_no_warning(kpk: KpkServer) -> None:
    assert "auth is off" not in kpk.log()
    assert "auth is on" in kpk.log()
    assert "shorter than 32 bytes" not in kpk.log()


async def test_a_short_secret_serves_with_a_warning(start_kpk: StartKpk) -> None:
    server = start_kpk(env={"KPK_IO_JWT_SECRET": "short-secret"})
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):  # PyJWT's own, as documented
        token = issue("ann", rooms=["r"], key="short-secret")
    async with member(server.url, token) as ann:
        assert (await ann.join("r"))["ok"]
    wrong = await refusal(server.url, {"token": hs256(claims(rooms=["r"]), SECRET)})
    assert wrong["error"] == "unauthorized", wrong
    assert "KPK_IO_JWT_SECRET is shorter than 32 bytes" in server.log()
    assert "WARNING" in next(line for line in server.log().splitlines() if "shorter" in line)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
async def test_public_keys_verify_their_own_algorithm_only(
    start_kpk: StartKpk, tmp_path: Path, kind: str
) -> None:
    pair = KeyPair.rsa(tmp_path) if kind == "rsa" else KeyPair.ec(tmp_path)
    server = start_kpk(env={"KPK_IO_JWT_PUBLIC_KEY": str(pair.public_path)})
    async with member(server.url, pair.sign(claims(rooms=["r"]))) as a:
        assert (await a.call("join", {"room": "r"}))["ok"]
    # Algorithm confusion: an HS256 token whose HMAC key is the public key's PEM.
    confused = handmade({"alg": "HS256", "typ": "JWT"}, claims(rooms=["*"]), pair.public_pem)
    assert (await refusal(server.url, {"token": confused}))["error"] == "unauthorized"
    (tmp_path / "other").mkdir()
    other = KeyPair.rsa(tmp_path / "other") if kind == "rsa" else KeyPair.ec(tmp_path / "other")
    assert (await refusal(server.url, {"token": other.sign(claims())}))["error"] == \
        "unauthorized"
    unsigned_token = handmade({"alg": "none"}, claims(rooms=["*"]), None)
    assert (await refusal(server.url, {"token": unsigned_token}))["error"] == "unauthorized"
    # An HS256 token made with a real secret finds no HS256 key here either.
    assert (await refusal(server.url, {"token": hs256(claims())}))["error"] == "unauthorized"


async def test_issue_signs_with_the_private_key_named_by_the_environment(
    start_kpk: StartKpk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = KeyPair.ec(tmp_path)
    server = start_kpk(env={"KPK_IO_JWT_PUBLIC_KEY": str(pair.public_path)})
    monkeypatch.delenv("KPK_IO_JWT_SECRET", raising=False)
    monkeypatch.setenv("KPK_IO_JWT_PRIVATE_KEY", str(pair.private_path))
    async with member(server.url, issue("ann", rooms=["r"], ttl=60)) as a:
        assert (await a.call("join", {"room": "r"}))["ok"]


async def test_a_bad_public_key_file_stops_the_server(
    start_kpk: StartKpk, tmp_path: Path
) -> None:
    path = tmp_path / "not-a-key.pem"
    path.write_text("hello")
    with pytest.raises(RuntimeError, match=r"KPK_IO_JWT_PUBLIC_KEY .*not a PEM public key"):
        start_kpk(env={"KPK_IO_JWT_PUBLIC_KEY": str(path)})


BY_VECTORS = json.loads((Path(__file__).parent / "by_vectors.json").read_text())


@pytest.mark.parametrize("case", BY_VECTORS["cases"], ids=lambda case: json.dumps(case["wire"]))
def test_by_vectors(case: dict[str, Any]) -> None:
    """The same cases as web/test/change.test.js: both clients read `by` alike."""
    body = {"rev": 1, "set": {}, "unset": [], "replace": False, "by": case["wire"]}
    if case.get("refused"):
        with pytest.raises(ValueError, match="not a change"):
            CommittedChange.from_wire("r", body)
    else:
        assert CommittedChange.from_wire("r", body).by == case["by"]


async def test_python_client_listeners_see_who_made_a_change(kpk: KpkServer) -> None:
    ann = KpkClient(kpk.url, token=token("ann", name="Ann", rooms=["r"]))
    bob = KpkClient(kpk.url, token=lambda: token("bob", rooms=["r"]))
    async with ann, bob:
        seen: list[object] = []
        (await bob.join("r")).on_change(lambda room, change: seen.append(change.by))
        room = await ann.join("r")
        room.set("x", 1)
        await room.flush()
        await eventually(lambda: seen, 10, "bob sees ann's change")
        assert seen == [{"user": "ann", "name": "Ann"}]
    stale = KpkClient(kpk.url, token=hs256(claims(aud=AUDIENCE, iss=ISSUER, ttl=-60)))
    with pytest.raises(KpkError) as refused:
        await stale.connect()
    await stale.close()
    assert (refused.value.code, stale.status) == ("unauthorized", "offline")
    assert "expired" in refused.value.message
