"""The benchmark suite at its CI size (`python -m benchmarks.suite --tiny`), so that it never
rots: every scenario runs against kpk-io and the Node.js baseline, every expected delivery
arrives, and the JSON, Markdown and PNG reports are written."""

import json
from pathlib import Path

import pytest

from benchmarks.suite.__main__ import cli
from benchmarks.suite.servers import NODE_DIR

pytestmark = pytest.mark.timeout(240)


@pytest.mark.skipif(not (NODE_DIR / "node_modules").exists(),
                    reason="run .ci/deps.sh (npm ci in benchmarks/node)")
def test_the_tiny_suite_runs_every_scenario_on_both_servers(tmp_path: Path) -> None:
    assert cli(["--tiny", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    names = [row["name"] for row in results["scenarios"]]
    assert names == ["fanout", "rooms", "nodes", "idle", "slow"]
    for row in results["scenarios"]:
        for kind in ("kpk-io", "node"):
            figures = row[kind]
            assert figures["joined"] == figures["connections"], (row["label"], kind)
            if "complete" in figures:
                assert figures["complete"], (row["label"], kind, figures)
                assert figures["server_cpu_us_per_delivery"] > 0
    slow = results["scenarios"][-1]["kpk-io"]
    assert slow["slow_reader_final"] and slow["slow_reader_connected"], slow
    assert "| **kpk-io / node** |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "results.png").stat().st_size > 10_000
