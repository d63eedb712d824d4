"""Command-line arguments the benchmarks share."""

from __future__ import annotations

import argparse


def parse_sizes(text: str) -> list[int]:
    """--sizes: a comma-separated list of positive numbers ("1000,10_000")."""
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes
