"""Benchmarks: `make bench` (python -m bench) runs them and prints the figures for docs/."""
