"""Benchmarks: `bench/run` (or `make bench`) runs them all and prints one table."""
