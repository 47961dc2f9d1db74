"""The browser client's node tests against a real `kpk-io serve` on Redis
(web/test-server/*.test.js): tags, dedupe, validation errors and resume."""

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import StartKpk
from tests.processes import RedisServer

WEB = Path(__file__).resolve().parent.parent / "web"
MAX_UPDATE_BYTES = 4096


def test_browser_client_against_a_real_server(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    node = shutil.which("node")
    assert node, "node is needed for the browser client's tests (apt-get install nodejs)"
    assert shutil.which("redis-cli"), "the tags test makes Redis lose a room with redis-cli"
    server = start_kpk(
        "--redis-url", redis_server.url, "--key-prefix", key_prefix,
        "--max-update-bytes", str(MAX_UPDATE_BYTES),
    )
    files = sorted(str(p.relative_to(WEB)) for p in (WEB / "test-server").glob("*.test.js"))
    assert files
    env = {
        **os.environ,
        "KPK_IO_TEST_URL": server.url,
        "KPK_IO_TEST_REDIS_URL": redis_server.url,
        "KPK_IO_TEST_KEY_PREFIX": key_prefix,
        "KPK_IO_TEST_MAX_UPDATE_BYTES": str(MAX_UPDATE_BYTES),
    }
    result = subprocess.run(
        [node, "--test", "--test-concurrency=1", *files],
        cwd=WEB, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith("# ")]
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "# fail 0" in summary and "# skipped 0" in summary, summary
