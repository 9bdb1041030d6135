"""Benchmarks: each one `make bench-…` target, run as `python -m benchmarks.NAME`."""
