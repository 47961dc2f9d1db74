"""The browser client's JavaScript unit tests (web/test/*.test.js), run by node's own test
runner as part of the pytest suite."""

import shutil
import subprocess
from pathlib import Path

WEB = Path(__file__).resolve().parent.parent / "web"


def test_node_test_runner_passes() -> None:
    node = shutil.which("node")
    assert node, "node is needed for the browser client's tests (apt-get install nodejs)"
    # Files, not the directory: how node expands a directory argument changed across versions.
    files = sorted(str(path.relative_to(WEB)) for path in (WEB / "test").glob("*.test.js"))
    assert files
    result = subprocess.run(
        [node, "--test", *files],
        cwd=WEB, capture_output=True, text=True, timeout=120, check=False,
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith("# ")]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in summary, summary
