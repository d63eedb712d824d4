"""Goals as ratios to baselines measured in the same run, shared by the
benchmarks: each goal is printed as a PASS/FAIL line and, with `--ratios
FILE`, appended to FILE as one JSON object per line for bench/compare.py.

A goal is either a ratio (`value / baseline <= goal`, the baseline measured
in the same run: a minimal Textual app, plain TinyDB, a no-op request, the
unsandboxed command, the ideal wall time) or, where the issue states it so,
an absolute limit (memory, a stall, one frame).
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Goals:
    def __init__(self, bench: str, path: Path | str | None = None) -> None:
        self.bench = bench
        self.path = Path(path) if path else None
        self.failed = 0

    def ratio(self, measure: str, value: float, unit: str, baseline: str, base: float, goal: float) -> bool:
        """`value / base <= goal`; prints the line and records it."""
        ratio = value / base if base else float("inf")
        ok = ratio <= goal
        digits = 3 if unit == "s" else 2 if unit == "ms" and value < 10 else 1
        print(
            f"  {'PASS' if ok else 'FAIL'}  {measure:<40} {value:10.{digits}f} {unit:<4} vs {baseline} "
            f"{base:.{digits}f} {unit} = {ratio:.3g}x  (goal <= {goal:g}x)"
        )
        return self._record(ok, measure=measure, value=value, unit=unit, baseline=baseline, base=base, ratio=ratio, goal=goal)

    def limit(self, measure: str, value: float, unit: str, goal: float) -> bool:
        """An absolute goal `value <= goal`."""
        ok = value <= goal
        print(f"  {'PASS' if ok else 'FAIL'}  {measure:<40} {value:10.1f} {unit:<4} (goal <= {goal:g} {unit})")
        return self._record(ok, measure=measure, value=value, unit=unit, baseline=None, base=None, ratio=None, goal=goal)

    def _record(self, ok: bool, **row: object) -> bool:
        self.failed += not ok
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(json.dumps({"bench": self.bench, "ok": ok, "cores": os.cpu_count(), **row}) + "\n")
        return ok
