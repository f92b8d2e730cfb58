"""Performance harness: `make bench` runs every benchmarks/bench_*.py (speed never lives in tests)."""
