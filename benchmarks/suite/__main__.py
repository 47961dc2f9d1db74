"""python -m benchmarks.suite [--tiny] [--only NAMES] [--kinds kpk-io,node] [--repeat N]
[--out DIR]"""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.suite import report
from benchmarks.suite.scenarios import Scenario, full_scenarios, run, tiny_scenarios

KINDS = ("kpk-io", "node")


class Bar:
    """One line on stderr: scenario, server, phase and a bar."""

    def __init__(self) -> None:
        self.prefix = ""
        self.started = time.monotonic()

        self.shown = ""

    def __call__(self, phase: str, done: float) -> None:
        filled = int(30 * min(max(done, 0.0), 1.0))
        if f"{self.prefix}{phase}{filled}" == self.shown:
            return
        self.shown = f"{self.prefix}{phase}{filled}"
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r{self.prefix} {phase:<11} [{'#' * filled}{'.' * (30 - filled)}]"
                         f" {elapsed:5.0f}s ")
        sys.stderr.flush()


async def main(scenarios: list[Scenario], out: Path, tiny: bool,
               kinds: tuple[str, ...] = KINDS, repeat: int = 1) -> list[dict[str, Any]]:
    bar = Bar()
    rows: list[dict[str, Any]] = []
    env = {key: value for key, value in os.environ.items() if key.startswith("KPK_IO_")}
    for number, scenario in enumerate(scenarios, 1):
        row: dict[str, Any] = {"name": scenario.name, "label": scenario.label,
                               "load": scenario.load}
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        for attempt in range(repeat):  # the kinds alternate, so that both see the same machine
            for kind in kinds:
                bar.prefix = (f"[{number}/{len(scenarios)}] {scenario.label[:34]:<34} {kind:<6}"
                              + (f" {attempt + 1}/{repeat}" if repeat > 1 else ""))
                try:
                    runs[kind].append(await run(scenario, kind, env, bar))
                except Exception as exc:  # the other scenarios still run and are reported
                    runs[kind].append({"error": repr(exc)[:300]})
                    sys.stderr.write(f"\n{scenario.label} on {kind} failed: {exc!r}\n")
        for kind in kinds:
            row[kind] = median_run(runs[kind])
        rows.append(row)
        sys.stderr.write("\n")
        report.write(out, rows, tiny)  # after every scenario: a run cut short keeps its rows
    return rows


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Of several runs of one scenario on one kind of server, the run with the median CPU per
    delivery (or memory per connection), whole, so that its figures belong together; with
    every run's figure beside it, and "complete" only if every run was."""
    key = next((k for k in ("server_cpu_us_per_delivery", "rss_per_connection_kb")
                if all(k in one for one in runs)), None)
    if key is None or len(runs) == 1:
        return runs[0] if len(runs) == 1 else next((one for one in runs if "error" in one), runs[0])
    ordered = sorted(runs, key=lambda one: float(one[key]))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs"] = [one[key] for one in runs]
    if "complete" in chosen:
        chosen["complete"] = all(one.get("complete") for one in runs)
    return chosen


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="the CI size: about 30 seconds")
    parser.add_argument("--only", default="", help="scenario families, e.g. fanout,rooms")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each scenario N times per server, kinds alternating, and "
                        "report the run with the median CPU per delivery")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="servers to run, e.g. kpk-io alone while profiling it")
    return parser.parse_args(argv)


def cli(argv: list[str] | None = None) -> int:
    args = parse(argv)
    scenarios = tiny_scenarios() if args.tiny else full_scenarios()
    if args.only:
        scenarios = [s for s in scenarios if s.name in args.only.split(",")]
    kinds = tuple(kind for kind in args.kinds.split(",") if kind in KINDS)
    rows = asyncio.run(main(scenarios, args.out, args.tiny, kinds or KINDS, max(1, args.repeat)))
    print(report.markdown(rows))
    print(f"results in {args.out}/results.json, .md and .png")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
