"""Benchmark scripts (run them as `python benchmarks/<name>.py`); results go to benchmarks/RESULTS.md."""
