"""`kpk-io serve` from start to exit, as an operator sees it: what it logs, when, and how it
refuses settings it cannot run with. Real processes, real sockets, a real redis-server."""

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import StartKpk
from tests.processes import RedisServer, free_port, port_open, wait_until


def serve(*flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kpk_io", "serve", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def refusal(*flags: str) -> tuple[int, list[str]]:
    """Exit code and stderr lines of a `kpk-io serve` that must stop at once."""
    result = subprocess.run(
        [sys.executable, "-m", "kpk_io", "serve", *flags],
        capture_output=True, text=True, timeout=30, check=False,
    )
    return result.returncode, result.stderr.splitlines()


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        (["--host", "999.1.1.1"], "host"),
        (["--redis-url", "redis://127.0.0.1:notaport/0"], "--redis-url"),
        (["--redis-url", "redis://127.0.0.1:6379/zero"], "--redis-url"),
        (["--cors-origins", "example.com"], "--cors-origins"),
        (["--port", "70000"], "--port"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(flags: list[str], names: str) -> None:
    code, lines = refusal("--port", str(free_port()), *flags)
    assert code != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"kpk-io: bad setting: {names}:"), lines


def test_a_port_in_use_is_one_line_naming_the_port(busy_port: int) -> None:
    code, lines = refusal("--port", str(busy_port))
    assert code != 0
    assert lines == [f"kpk-io: bad setting: port: cannot listen on 127.0.0.1:{busy_port}: "
                     f"port {busy_port} is in use"]


def test_a_bad_redis_url_never_shows_its_password() -> None:
    code, lines = refusal("--redis-url", "redis://:hunter2@127.0.0.1:notaport/0")
    assert code != 0
    assert len(lines) == 1 and "hunter2" not in lines[0] and ":***@" in lines[0], lines


def test_listening_is_logged_once_the_port_is_bound() -> None:
    # Port 0: the line must name the port the system chose, which only exists once bound.
    process = serve("--port", "0")
    try:
        line = process.stderr.readline() if process.stderr else ""
        while line and "listening on" not in line:
            line = process.stderr.readline() if process.stderr else ""
        assert "listening on http://127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1])
        assert port != 0 and port_open(port)  # at once: no wait
    finally:
        process.kill()
        process.wait(10)


def test_sigterm_logs_its_drain_and_exit(start_kpk: StartKpk) -> None:
    server = start_kpk()
    assert server.terminate() == 0
    log = server.log()
    assert "SIGTERM: stopped accepting connections; draining running requests (up to 10 s)" in log
    assert log.rstrip().endswith("drained; exiting")


def test_an_unreachable_redis_is_a_warning_and_not_ready_until_it_answers(
    start_kpk: StartKpk, own_redis: RedisServer
) -> None:
    own_redis.stop()
    url = f"redis://:hunter2@127.0.0.1:{own_redis.port}/0"
    server = start_kpk("--redis-url", url)
    wait_until(lambda: "cannot be reached" in server.log(), timeout=15, what="the warning")
    warning = next(line for line in server.log().splitlines() if "cannot be reached" in line)
    assert "WARNING" in warning and "hunter2" not in server.log()
    assert f"Redis at redis://:***@127.0.0.1:{own_redis.port}/0 cannot be reached" in warning
    assert status(server.url + "/healthz") == 200
    assert status(server.url + "/readyz") == 503

    own_redis.start()
    redis.Redis(port=own_redis.port).config_set("requirepass", "hunter2")
    wait_until(lambda: status(server.url + "/readyz") == 200, timeout=20, what="ready")


def test_the_access_log_is_off_unless_asked_for(start_kpk: StartKpk) -> None:
    quiet = start_kpk()
    chatty = start_kpk("--access-log")
    for server in (quiet, chatty):
        request = urllib.request.Request(server.url + "/healthz", headers={"User-Agent": "probe"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response) == {"status": "ok"}
    wait_until(lambda: '"probe"' in chatty.log(), what="the access line")
    line = next(line for line in chatty.log().splitlines() if '"probe"' in line)
    assert 'kpk_io.access: 127.0.0.1 "GET /healthz HTTP/1.1" 200 ' in line
    assert "GET /healthz" not in quiet.log()

