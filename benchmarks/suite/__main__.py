"""python -m benchmarks.suite [--tiny] [--only NAMES] [--kinds kpk-io,node] [--out DIR]"""

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
               kinds: tuple[str, ...] = KINDS) -> list[dict[str, Any]]:
    bar = Bar()
    rows: list[dict[str, Any]] = []
    env = {key: value for key, value in os.environ.items() if key.startswith("KPK_IO_")}
    for number, scenario in enumerate(scenarios, 1):
        row: dict[str, Any] = {"name": scenario.name, "label": scenario.label,
                               "load": scenario.load}
        for kind in kinds:
            bar.prefix = f"[{number}/{len(scenarios)}] {scenario.label[:38]:<38} {kind:<6}"
            try:
                row[kind] = await run(scenario, kind, env, bar)
            except Exception as exc:  # the other scenarios still run and are reported
                row[kind] = {"error": repr(exc)[:300]}
                sys.stderr.write(f"\n{scenario.label} on {kind} failed: {exc!r}\n")
        rows.append(row)
        sys.stderr.write("\n")
        report.write(out, rows, tiny)  # after every scenario: a run cut short keeps its rows
    return rows


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="the CI size: about 30 seconds")
    parser.add_argument("--only", default="", help="scenario families, e.g. fanout,rooms")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="servers to run, e.g. kpk-io alone while profiling it")
    return parser.parse_args(argv)


def cli(argv: list[str] | None = None) -> int:
    args = parse(argv)
    scenarios = tiny_scenarios() if args.tiny else full_scenarios()
    if args.only:
        scenarios = [s for s in scenarios if s.name in args.only.split(",")]
    kinds = tuple(kind for kind in args.kinds.split(",") if kind in KINDS)
    rows = asyncio.run(main(scenarios, args.out, args.tiny, kinds or KINDS))
    print(report.markdown(rows))
    print(f"results in {args.out}/results.json, .md and .png")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
