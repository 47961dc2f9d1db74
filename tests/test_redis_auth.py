"""Redis with a password, with the ACL user docs/deployment.md gives, and over TLS
(`rediss://`): servers, clients and publishers work, on a real redis-server of their own."""

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpk_io.publish import AsyncPublisher
from tests.conftest import StartKpk
from tests.processes import RedisServer
from tests.sockets import members

ROOM = "kpk/notes/acme/q1/intro"
PASSWORD = "correct-horse-battery-staple"
DOCS = Path(__file__).parent.parent / "docs" / "deployment.md"


def documented_acl(password: str) -> list[str]:
    """The ACL lines of docs/deployment.md, with `password`."""
    lines = re.findall(r"^user .*$", DOCS.read_text(encoding="utf-8"), re.M)
    assert [line.split()[1] for line in lines] == ["default", "kpk"], lines
    return [line.replace(">PASSWORD", f">{password}") for line in lines]


@pytest.fixture
def acl_redis() -> Iterator[RedisServer]:
    """A redis-server whose only user is the documented `kpk` ACL user."""
    # On redis-server's command line, `--user` and then each word of the config line.
    options = [word if word != "user" else "--user"
               for line in documented_acl(PASSWORD) for word in line.split()]
    with RedisServer(*options) as server:
        yield server


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    """A redis-server that speaks TLS only (a self-signed certificate for 127.0.0.1) and
    wants a password; and the certificate, for clients to trust."""
    cert, key = tmp_path / "redis.crt", tmp_path / "redis.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server = RedisServer()
    server.options = ("--port", "0", "--tls-port", str(server.port),
                      "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                      "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
                      "--requirepass", PASSWORD)
    with server:
        yield server, cert


async def exercise(start_kpk: StartKpk, url: str) -> None:
    """Two servers on `url`: join, update, sync, leave over sockets; a publisher's get,
    update and delete reach the members."""
    nodes = [start_kpk("--redis-url", url) for _ in range(2)]
    async with members(nodes[0].url, nodes[1].url) as [a, b]:
        await a.join(ROOM)
        await b.join(ROOM)
        assert (await a.update(ROOM, set={"title": "Q1"}, id="a-1"))["rev"] == 1
        assert [u["set"] for u in await b.wait_updates(ROOM, 1)] == [{"title": "Q1"}]
        sync = await b.call("sync", {"room": ROOM, "since": 0})
        assert [c["rev"] for c in sync["changes"]] == [1]
        async with AsyncPublisher(url) as publisher:
            assert (await publisher.get(ROOM)).state == {"title": "Q1"}
            assert await publisher.update(ROOM, {"note": "hi"}) == 2
            assert await publisher.delete(ROOM) == 3
        assert [u["rev"] for u in await a.wait_updates(ROOM, 2)] == [2, 3]
        assert (await b.call("leave", {"room": ROOM}))["ok"]
    for node in nodes:
        assert "NOAUTH" not in node.log() and "NOPERM" not in node.log(), node.log()


async def test_a_password_protected_redis_with_the_documented_acl_user(
    start_kpk: StartKpk, acl_redis: RedisServer
) -> None:
    await exercise(start_kpk, f"redis://kpk:{PASSWORD}@127.0.0.1:{acl_redis.port}/0")


async def test_a_wrong_password_is_reported_not_echoed(
    start_kpk: StartKpk, acl_redis: RedisServer
) -> None:
    node = start_kpk("--redis-url", f"redis://kpk:wrong-{PASSWORD}@127.0.0.1:{acl_redis.port}/0")
    async with members(node.url) as [a]:
        ack = await a.call("join", {"room": ROOM})
        assert (ack["ok"], ack["error"]) == (False, "unavailable")
    assert PASSWORD not in node.log()


async def test_redis_over_tls_with_a_password(
    start_kpk: StartKpk, tls_redis: tuple[RedisServer, Path]
) -> None:
    server, cert = tls_redis
    await exercise(start_kpk, f"rediss://:{PASSWORD}@127.0.0.1:{server.port}/0"
                              f"?ssl_ca_certs={cert}")


async def test_tls_refuses_a_certificate_it_cannot_verify(
    start_kpk: StartKpk, tls_redis: tuple[RedisServer, Path]
) -> None:
    server, _ = tls_redis
    node = start_kpk("--redis-url", f"rediss://:{PASSWORD}@127.0.0.1:{server.port}/0")
    async with members(node.url) as [a]:
        ack = await a.call("join", {"room": ROOM})
        assert (ack["ok"], ack["error"]) == (False, "unavailable")
