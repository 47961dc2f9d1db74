"""The suite's results: a JSON file, a Markdown table and a PNG plot, kpk-io beside the
Node.js baseline with kpk-io's ratio to it."""

import json
import os
import platform
from pathlib import Path
from typing import Any

COLUMNS = [  # (key, heading, format)
    ("commits_per_s", "commits/s", "{:.0f}"),
    ("deliveries_per_s", "deliveries/s", "{:.0f}"),
    ("latency_ms_p50", "p50 ms", "{:.1f}"),
    ("latency_ms_p99", "p99 ms", "{:.1f}"),
    ("latency_ms_max", "max ms", "{:.0f}"),
    ("server_cpu_us_per_delivery", "server CPU µs/delivery", "{:.1f}"),
    ("server_cpu_percent", "server CPU %", "{:.0f}"),
    ("load_cpu_percent", "load gen CPU %", "{:.0f}"),
    ("rss_per_connection_kb", "RSS KB/conn", "{:.1f}"),
    ("join_seconds_max", "slowest join s", "{:.2f}"),
    ("server_rss_growth_mb", "RSS growth MB", "{:.1f}"),
    ("complete", "all delivered", "{}"),
]
KINDS = ("kpk-io", "node")
RATIOS = ["server_cpu_us_per_delivery", "latency_ms_p99", "rss_per_connection_kb"]


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average": os.getloadavg(), "kernel": platform.release()}


def ratio(row: dict[str, Any], key: str) -> float | None:
    mine, theirs = row.get("kpk-io", {}).get(key), row.get("node", {}).get(key)
    if not isinstance(mine, int | float) or not isinstance(theirs, int | float) or not theirs:
        return None
    return float(mine) / float(theirs)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| scenario | server | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "| --- | --- |" + " --- |" * len(COLUMNS)]
    for row in rows:
        for kind in ("kpk-io", "node"):
            if kind not in row:
                continue
            cells = [_cell(row[kind].get(key), fmt) for key, _, fmt in COLUMNS]
            lines.append(f"| {row['label']} | {kind} | " + " | ".join(cells) + " |")
        ratios = [f"{key.split('_')[0]} {value:.2f}x" for key in RATIOS
                  if (value := ratio(row, key)) is not None]
        lines.append(f"| {row['label']} | **kpk-io / node** | " + ", ".join(ratios)
                     + " |" + " |" * (len(COLUMNS) - 1))
    return "\n".join(lines) + "\n"


def _cell(value: object, fmt: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    return fmt.format(value)


def write(out: Path, rows: list[dict[str, Any]], tiny: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine(), "tiny": tiny, "scenarios": rows}
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    (out / "results.md").write_text(markdown(rows))
    plot(out / "results.png", rows)


def plot(path: Path, rows: list[dict[str, Any]]) -> None:
    """Latency p99 and CPU per delivery against offered load (deliveries per second), one
    line per server. Skipped when matplotlib (the `bench` extra) is not installed."""
    try:
        import matplotlib  # noqa: PLC0415 (optional: the `bench` extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return
    traffic = [row for row in rows
               if all("server_cpu_us_per_delivery" in row.get(kind, {}) for kind in KINDS)]
    figure, (cpu_axis, latency_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for kind, style in (("kpk-io", "o"), ("node", "s")):
        xs = [row[kind].get("deliveries_per_s", 0) for row in traffic]
        cpu_axis.plot(xs, [row[kind]["server_cpu_us_per_delivery"] for row in traffic], style,
                      label=kind, linestyle="none")
        latency_axis.plot(xs, [row[kind]["latency_ms_p99"] for row in traffic], style,
                          label=kind, linestyle="none")
        for row, x in zip(traffic, xs, strict=True):
            cpu_axis.annotate(row["name"], (x, row[kind]["server_cpu_us_per_delivery"]),
                              fontsize=7)
    cpu_axis.set(xlabel="deliveries/s", ylabel="server CPU µs per delivery", ylim=(0, None))
    latency_axis.set(xlabel="deliveries/s", ylabel="latency p99 (ms)", yscale="log")
    for axis in (cpu_axis, latency_axis):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.suptitle("kpk-io beside Node.js Socket.IO + @socket.io/redis-adapter, same run")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
