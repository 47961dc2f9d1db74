"""What a soak run does, from its command line; every count and time has a hard cap."""

import argparse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from kpk_io.change import JSON

FAULT_KINDS = ("redis_stop", "node_kill", "redis_kill")

# Hard caps: the tool must stay bounded in time and count whatever it is asked.
MAX_DURATION = 3600.0
MAX_NODES = 8
MAX_CLIENTS = 200
MAX_ROOMS = 100
MAX_SILENT = 20
MAX_WORKERS = 8


@dataclass(frozen=True)
class Plan:
    duration: float = 60.0
    nodes: int = 2
    clients: int = 12
    rooms: int = 4
    rooms_per_client: int = 2
    silent: int = 2
    workers: int = 2
    op_interval: float = 0.4  # mean seconds between one client's operations
    value_bytes: int = 64  # padding of each value written: what a slow reader piles up
    fault_every: float = 10.0  # seconds between faults; 0 = no faults
    faults: tuple[str, ...] = FAULT_KINDS
    appendfsync: str = "always"
    ping_interval: float = 3.0  # used only when the server has the setting
    ping_timeout: float = 3.0
    probe_every: float = 15.0  # seconds between fresh-join probes during the run
    rss_slack_mb: float = 64.0  # how far a node's RSS may end above its baseline
    seed: int = 1
    json_path: str | None = None
    keep_logs: bool = False

    def to_json(self) -> dict[str, JSON]:
        return asdict(self)


def _capped(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return value

    return parse


def _fault_list(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault kinds {unknown}; known: {FAULT_KINDS}")
    return kinds


def parse_plan(argv: Sequence[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    add = parser.add_argument
    add("--duration", type=_capped(float, 5, MAX_DURATION), default=Plan.duration,
        help="seconds of load and faults (the checks follow)")
    add("--nodes", type=_capped(int, 1, MAX_NODES), default=Plan.nodes)
    add("--clients", type=_capped(int, 1, MAX_CLIENTS), default=Plan.clients,
        help="simulated clients (kpk_io.client.KpkClient)")
    add("--rooms", type=_capped(int, 1, MAX_ROOMS), default=Plan.rooms)
    add("--rooms-per-client", type=_capped(int, 1, MAX_ROOMS), default=Plan.rooms_per_client)
    add("--silent", type=_capped(int, 0, MAX_SILENT), default=Plan.silent,
        help="silent raw clients: half never answer pings, half never read")
    add("--workers", type=_capped(int, 1, MAX_WORKERS), default=Plan.workers,
        help="client processes")
    add("--op-interval", type=_capped(float, 0.01, 60), default=Plan.op_interval)
    add("--value-bytes", type=_capped(int, 0, 100_000), default=Plan.value_bytes,
        help="bytes of padding in each value written")
    add("--fault-every", type=_capped(float, 0, MAX_DURATION), default=Plan.fault_every,
        help="seconds between faults (0 = none)")
    add("--faults", type=_fault_list, default=Plan.faults,
        help=f"comma-separated fault kinds, from {','.join(FAULT_KINDS)}")
    add("--appendfsync", choices=("always", "everysec"), default=Plan.appendfsync)
    add("--ping-interval", type=_capped(float, 0.5, 60), default=Plan.ping_interval)
    add("--ping-timeout", type=_capped(float, 0.5, 60), default=Plan.ping_timeout)
    add("--probe-every", type=_capped(float, 1, MAX_DURATION), default=Plan.probe_every)
    add("--rss-slack-mb", type=_capped(float, 1, 4096), default=Plan.rss_slack_mb)
    add("--seed", type=int, default=Plan.seed)
    add("--json", dest="json_path", default=None, help="also write the summary here")
    add("--keep-logs", action="store_true", help="keep the nodes' log files (named in the summary)")
    args = parser.parse_args(argv)
    plan = Plan(**vars(args))
    if plan.rooms_per_client > plan.rooms:
        parser.error("--rooms-per-client must not exceed --rooms")
    return plan
