"""The soak tool: many real clients, silent clients and injected faults against a small
kpk-io cluster for a set time, then a check of every invariant docs/reliability.md lists.

    python -m benchmarks.soak --duration 60 --nodes 2 --clients 12 --rooms 4 --json soak.json

Run `python -m benchmarks.soak --help` for every option and its hard cap.
"""
