"""The compose topology without Docker: Debian's real nginx running the repository's
config/nginx.conf in front of two `kpk-io serve` processes on one redis-server, and a real
Chromium page on the demo through it.

Only the upstream's `server` line (Docker's DNS name becomes the two local nodes) and the
`listen` port are rewritten; pid file, error log and daemon mode are command-line options.
"""

import re
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import StartKpk
from tests.processes import KpkServer, RedisServer, free_port, port_open, wait_until
from tests.test_browser import add_item, expect_status, open_demo

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FAILOVER_TIMEOUT = 30_000  # ms: socket.io-client's backoff is at most 5 s (plus jitter)
# Before the page's scripts run: no WebSocket, so socket.io-client stays on long-polling.
NO_WEBSOCKET = "Object.defineProperty(window, 'WebSocket', {value: undefined});"
TRANSPORT = "window.__kpk.client.socket.io.engine.transport.name"


def proxy_config(listen: int, upstreams: list[int]) -> str:
    """config/nginx.conf with the upstream's servers and the listen port replaced."""
    text = (ROOT / "config" / "nginx.conf").read_text()
    text, servers = re.subn(
        r"^(\s*)server kpk-io:8000 resolve;$",
        lambda m: "\n".join(f"{m.group(1)}server 127.0.0.1:{port};" for port in upstreams),
        text, flags=re.M,
    )
    text, listens = re.subn(r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{listen};", text,
                            flags=re.M)
    assert servers == listens == 1, "config/nginx.conf changed shape: update this test"
    return text


class Nginx:
    """nginx in the foreground with everything of its own in a temporary prefix."""

    def __init__(self, upstreams: list[int]) -> None:
        self.port = free_port()
        self.prefix = Path(tempfile.mkdtemp(prefix="kpk-nginx-"))
        (self.prefix / "nginx.conf").write_text(proxy_config(self.port, upstreams))
        self.log_path = self.prefix / "error.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [NGINX, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                 "-e", "stderr", "-g", f"daemon off; pid {self.prefix / 'nginx.pid'};"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self._listening, timeout=15, what=f"nginx on {self.port}")

    def _listening(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"nginx exited early:\n{self.log_path.read_text()}")
        return port_open(self.port)

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)  # fast shutdown, workers included
            self._process.wait(15)
        shutil.rmtree(self.prefix, ignore_errors=True)


class Stack:
    def __init__(self, nodes: list[KpkServer], nginx: Nginx) -> None:
        self.nodes = nodes
        self.nginx = nginx


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, start_kpk: StartKpk, redis_server: RedisServer,
    key_prefix: str,
) -> Iterator[Stack]:
    """Two nodes on one Redis behind nginx; the nodes keep an access log. Parametrise it
    (indirect) with {"flags": more flags for the nodes, "nodes": how many}."""
    param = getattr(request, "param", {})
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix, "--access-log",
             *param.get("flags", ()))
    nodes = [start_kpk(*flags) for _ in range(param.get("nodes", 2))]
    nginx = Nginx([node.port for node in nodes])
    try:
        nginx.start()
        yield Stack(nodes, nginx)
    finally:
        nginx.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    contexts: list[BrowserContext] = []

    def make(*, websocket: bool = True) -> BrowserContext:
        context = browser.new_context()
        if not websocket:
            context.add_init_script(NO_WEBSOCKET)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def handshake(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """Engine.IO's opening request, as socket.io-client sends it."""
    request = urllib.request.Request(f"{url}/socket.io/?EIO=4&transport=polling",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def connections(node: KpkServer) -> float:
    with urllib.request.urlopen(node.url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(r"^kpk_io_connections (\S+)$", text, re.M)
    assert match, "kpk_io_connections in /metrics"
    return float(match.group(1))


def test_a_handshake_with_an_origin_answers_200_and_carries_the_client_address(
    stack: Stack,
) -> None:
    origin = stack.nginx.url
    code, body = handshake(origin, {"Origin": origin, "X-Forwarded-For": "203.0.113.7"})
    assert code == 200, body
    assert body.startswith('0{"sid":'), body
    # The node saw the client's address: the proxy's X-Forwarded-For reached it.
    wait_until(lambda: any("203.0.113.7, 127.0.0.1" in node.log() for node in stack.nodes),
               what="the handshake in a node's access log")
    line = next(line for node in stack.nodes for line in node.log().splitlines()
                if "203.0.113.7" in line)
    assert '"GET /socket.io/?EIO=4&transport=polling' in line

    # The same-origin check still runs behind the proxy: another origin is refused.
    code, _ = handshake(origin, {"Origin": "http://elsewhere.example"})
    assert code == 400


def test_a_node_accepts_the_https_origin_its_tls_proxy_reports(
    stack: Stack,
) -> None:
    """TLS ends at nginx, which says so with X-Forwarded-Proto; the node is plain HTTP."""
    page = {"Host": "kpk.example", "Origin": "https://kpk.example"}
    node = stack.nodes[0].url
    assert handshake(node, {**page, "X-Forwarded-Proto": "https"})[0] == 200
    assert handshake(node, page)[0] == 400


@pytest.mark.parametrize(
    "stack",
    # One node, so that the limit, which each node keeps, sees every connection.
    [{"flags": ("--trusted-proxies", "127.0.0.1", "--max-connections-per-address", "1"),
      "nodes": 1}],
    indirect=True,
)
async def test_per_address_limits_count_browsers_not_the_proxy(stack: Stack) -> None:
    """Browsers at different addresses (127.0.0.2 and .3: all of 127/8 is loopback) reach
    the node through nginx from nginx's address; only X-Forwarded-For tells them apart."""
    refusals: list[dict[str, Any]] = []
    made: list[socketio.AsyncClient] = []

    async def connect(address: str) -> None:
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        sio = socketio.AsyncClient(reconnection=False,
                                   http_session=aiohttp.ClientSession(connector=connector))
        sio.on("connect_error", refusals.append)
        made.append(sio)
        await sio.connect(stack.nginx.url, transports=["websocket"], wait_timeout=10)

    try:
        await connect("127.0.0.2")
        await connect("127.0.0.3")
        with pytest.raises(socketio.exceptions.ConnectionError):
            await connect("127.0.0.2")
    finally:
        for sio in made:
            await sio.disconnect()
            await sio.eio.http.close()
    assert [refusal["data"]["error"] for refusal in refusals] == ["too_many_connections"]
    assert "too many connections from 127.0.0.2" in refusals[0]["message"]


def test_the_demo_through_nginx_over_websocket_and_polling(
    stack: Stack, new_context: Callable[..., BrowserContext]
) -> None:
    url = f"{stack.nginx.url}/demo/notes/org-{uuid.uuid4().hex[:8]}/launch/plan"
    alice = open_demo(new_context(), url)
    bob = open_demo(new_context(websocket=False), url)
    wait_until(lambda: alice.evaluate(TRANSPORT) == "websocket", what="alice's upgrade")

    alice.fill("#title", "Behind the proxy")
    expect(bob.locator("#title")).to_have_value("Behind the proxy", timeout=5000)
    add_item(bob, "Polled item")
    expect(alice.locator(".item .text")).to_have_value("Polled item", timeout=5000)
    assert bob.evaluate(TRANSPORT) == "polling"
    assert alice.evaluate(TRANSPORT) == "websocket"


def test_a_page_fails_over_to_the_other_node_when_its_node_dies(
    stack: Stack, new_context: Callable[..., BrowserContext]
) -> None:
    url = f"{stack.nginx.url}/demo/notes/org-{uuid.uuid4().hex[:8]}/launch/plan"
    pages: list[Page] = [
        open_demo(new_context(), url), open_demo(new_context(websocket=False), url)
    ]
    alice, bob = pages
    alice.fill("#title", "Before the crash")
    expect(bob.locator("#title")).to_have_value("Before the crash", timeout=5000)

    # nginx hashes by client address: both pages (127.0.0.1) are on one node. Kill it.
    (busy,) = [node for node in stack.nodes if connections(node) == 2]
    (spare,) = [node for node in stack.nodes if node is not busy]
    busy.kill()
    wait_until(lambda: connections(spare) == 2, timeout=FAILOVER_TIMEOUT / 1000,
               what="both pages on the other node")
    for page in pages:
        expect_status(page, "live", FAILOVER_TIMEOUT)
        expect(page.locator("#title")).to_have_value("Before the crash")

    bob.fill("#title", "After the crash")
    expect(alice.locator("#title")).to_have_value("After the crash", timeout=5000)
    add_item(alice, "Still in sync")
    expect(bob.locator(".item .text")).to_have_value("Still in sync", timeout=5000)
