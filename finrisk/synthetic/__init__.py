"""Synthetic bank customers with labelled fraud and a risk outcome: `generate`."""

from finrisk.synthetic.generator import DEFAULT_START, GENERATOR_VERSION, generate

__all__ = ["DEFAULT_START", "GENERATOR_VERSION", "generate"]
