"""kpk-io's benchmark suite: kpk-io beside a Node.js Socket.IO baseline, in the same run.

    python -m benchmarks.suite [--tiny] [--only fanout,rooms,...] [--out DIR]

See docs/performance.md for what each scenario does and what the figures mean.
"""
