"""Benchmarks: `make bench` (python -m bench) runs them and prints the figures for docs/."""

from pathlib import Path

#: The checkout the benchmarks run from (examples/, otel-collector/, ...).
CHECKOUT = Path(__file__).resolve().parent.parent
