"""Synthetic bank customers with labelled fraud and a risk outcome: `generate`."""

from finrisk.synthetic.generator import DEFAULT_START, GENERATOR_VERSION, generate

# The documented benchmark data set (docs/synthetic-data.md): `finrisk data generate` and
# `finrisk evaluate` default to it, and the README's figures were measured on it.
BENCHMARK_USERS = 5000
BENCHMARK_DAYS = 120
BENCHMARK_SEED = 7

__all__ = [
    "BENCHMARK_DAYS",
    "BENCHMARK_SEED",
    "BENCHMARK_USERS",
    "DEFAULT_START",
    "GENERATOR_VERSION",
    "generate",
]
