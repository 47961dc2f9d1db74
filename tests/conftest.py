import uuid
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.processes import CHROMIUM, CHROMIUM_ARGS, KpkServer, RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the session; tests keep apart by key prefix."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server this test alone may stop, kill and restart."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def key_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:"


StartKpk = Callable[..., KpkServer]


@pytest.fixture
def start_kpk() -> Iterator[StartKpk]:
    """Start `kpk-io serve` processes; every one is stopped after the test."""
    servers: list[KpkServer] = []

    def start(*flags: str, env: dict[str, str] | None = None) -> KpkServer:
        server = KpkServer(*flags, env=env)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
        server.log_path.unlink(missing_ok=True)


@pytest.fixture
def redis_kpk(start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str) -> KpkServer:
    """One kpk-io process on the session Redis, under this test's key prefix."""
    return start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, one per test module."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()
