"""Benchmarks (`make bench` = `python -m benchmarks`): ratios against a baseline measured in the same run, on
real ledgers, a real immudb, runtimes and registry. Outside the package: they use tests/support."""
