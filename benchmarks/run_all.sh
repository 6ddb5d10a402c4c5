#!/usr/bin/env bash
# Run every benchmarks/bench_*.py present (each writes benchmarks/results/<name>.json + .md);
# PYTHON overrides the interpreter. Exits non-zero if any benchmark failed.
cd "$(dirname "$0")/.." && status=0 && for script in benchmarks/bench_*.py; do echo "== $script"; "${PYTHON:-python}" "$script" || status=1; done; exit $status
