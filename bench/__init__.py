"""Benchmarks for Gatekeeper; see docs/benchmarks.md."""
