"""Memory after a class leaves (issue 21, item 4): once every session has closed, the server's RSS
is back within 10 % of its warm baseline within 30 s.

Runs benchmarks/bench_memory.py's measurement with the server's default allocator setting (glibc,
``malloc_trim`` after the last session; the benchmark compares it with MALLOC_ARENA_MAX=2 and
jemalloc): one warm-up session, then four frame clients that open the dashboard, play and close.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from own_loop import call_on_own_thread

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_memory.py"


def _bench():
    spec = importlib.util.spec_from_file_location("nbody_bench_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rss_returns_to_the_warm_baseline_after_every_session_closes(tmp_path):
    bench = _bench()
    # On a thread of its own: the benchmark's clients use asyncio.run (tests/own_loop.py).
    row = call_on_own_thread(bench.run_variant, "glibc+trim", bench.VARIANTS["glibc+trim"], sessions=4,
                             play_s=5.0, watch_s=35.0, log_dir=tmp_path)
    assert not row["errors"], row["errors"]
    assert row["peak_mib"] > row["warm_mib"]  # the sessions did cost memory while open
    assert row["ok"], (f"RSS {row['at_30s_mib']} MiB 30 s after the last close, warm baseline {row['warm_mib']} MiB "
                       f"(goal <= {bench.GOAL:.2f}x); samples {row['samples'][::10]}")
