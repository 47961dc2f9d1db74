"""A one-minute soak: members, silent clients and every fault kind against two nodes, then
every invariant of docs/reliability.md (benchmarks/soak does the work; this runs it as CI
does and reads its JSON summary)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak.plan import FAULT_KINDS

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--duration", "60", "--nodes", "2", "--clients", "10", "--rooms", "4",
        "--silent", "2", "--workers", "2", "--fault-every", "7", "--probe-every", "10"]


@pytest.mark.timeout(300)
def test_a_one_minute_soak_with_faults_and_silent_clients_keeps_every_invariant(
    tmp_path: Path,
) -> None:
    summary_path = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", *ARGS, "--json", str(summary_path)],
        capture_output=True, text=True, timeout=280, check=False, cwd=ROOT,
    )
    summary = json.loads(summary_path.read_text())
    failed = {name: v for name, v in summary["invariants"].items() if not v["ok"]}
    assert (summary["error"], failed) == (None, {}), done.stderr[-3000:]
    assert done.returncode == 0
    assert set(summary["invariants"]) == {
        "states_match", "acked_durable", "history_replays", "delivery_in_order", "no_gaps",
        "applied_once", "history_not_rewritten", "no_wedged_room", "memory_bounded"}
    assert all(v["checked"] > 0 for v in summary["invariants"].values()), summary
    assert set(summary["faults"]["by_kind"]) == set(FAULT_KINDS)
    counts = summary["updates"]["counts"]
    assert summary["updates"]["acked"] > 100
    assert counts["silent no_pong joined"] >= 1 and counts["silent no_read joined"] >= 1
