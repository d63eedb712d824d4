"""Run convtui's benchmarks, each with its baselines measured in the same
run, and print one table of their goals as ratios.

    .venv/bin/python bench/compare.py                 # every benchmark at the sizes of its goals (~15 min)
    .venv/bin/python bench/compare.py --quick         # smaller sizes, fewer samples (~3 min): a smoke run
    .venv/bin/python bench/compare.py --only ui,store # some of them

Absolute times vary 1.5-2x between boxes and days, so every goal that can
be is a ratio to something measured in the same run on the same box: a
minimal Textual app (launch, key latency, CPU per key), plain TinyDB (a
metadata write, opening), a no-op request and the store's own write (the
API), the metadata page (search), the unsandboxed command (the sandbox),
the ideal wall time (loops). The few absolute goals (memory, a stall, one
frame) are marked as such. The benchmarks run one after the other, never
side by side; each one's own output is kept in the temporary directory
named at the end and its goal lines are collected from `--ratios`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

# name: (full arguments, --quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "ui": (["--sizes", "100000", "--keys", "40", "--launches", "3"], ["--sizes", "10000", "--keys", "15", "--launches", "1"]),
    "store": (["--sizes", "100000", "--repeat", "30"], ["--sizes", "10000", "--repeat", "10"]),
    "api": (["--size", "100000", "--samples", "200", "--loops", "200", "--seconds", "10"], ["--size", "10000", "--samples", "50", "--loops", "20", "--seconds", "3"]),
    "search": (["--sizes", "10000", "--events", "50", "--samples", "30"], ["--sizes", "1000", "--events", "20", "--samples", "10"]),
    "loops": (["--loops", "200", "--iterations", "10", "--delay", "1.0"], ["--loops", "20", "--iterations", "3", "--delay", "0.5"]),
    "runtime": (["--samples", "150"], ["--samples", "30", "--concurrent", "20"]),
}  # fmt: skip


def commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer samples: a smoke run, not the goals' sizes")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated, of {', '.join(BENCHMARKS)}")
    arguments = parser.parse_args()
    chosen = [name.strip() for name in arguments.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    work = Path(tempfile.mkdtemp(prefix="convtui-compare-"))
    ratios = work / "goals.jsonl"
    started = time.perf_counter()
    statuses = {}
    for name in chosen:
        options = BENCHMARKS[name][1 if arguments.quick else 0]
        log = work / f"{name}.txt"
        print(f"running bench/{name}.py {' '.join(options)} (output: {log}) ...", flush=True)
        with open(log, "w") as output:
            began = time.perf_counter()
            code = subprocess.call(
                [sys.executable, str(BENCH / f"{name}.py"), *options, "--ratios", str(ratios)],
                stdout=output, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        statuses[name] = (code, time.perf_counter() - began)
    rows = [json.loads(line) for line in ratios.read_text().splitlines()] if ratios.exists() else []
    print(
        f"\nconvtui {commit()} | {platform.node()} | {os.cpu_count()} cores | Python {platform.python_version()} | "
        f"{time.strftime('%Y-%m-%d %H:%M')}{' | --quick: not the goals sizes' if arguments.quick else ''}"
    )
    print(f"\n{'benchmark':<14} {'measure':<46} {'value':>12} {'baseline (same run)':>36} {'ratio':>8} {'goal':>10}  ")
    for row in rows:
        value = f"{row['value']:.3f} {row['unit']}" if row["unit"] == "s" else f"{row['value']:.1f} {row['unit']}"
        if row["ratio"] is None:
            baseline, ratio, goal = "(absolute goal)", "", f"<= {row['goal']:g} {row['unit']}"
        else:
            base = f"{row['base']:.3f} {row['unit']}" if row["unit"] == "s" else f"{row['base']:.1f} {row['unit']}"
            baseline, ratio, goal = f"{row['baseline'][:24]} {base}", f"{row['ratio']:.3g}x", f"<= {row['goal']:g}x"
        print(
            f"{row['bench']:<14} {row['measure'][:46]:<46} {value:>12} {baseline:>36} {ratio:>8} {goal:>10}  "
            f"{'PASS' if row['ok'] else 'FAIL'}"
        )
    failed = sum(not row["ok"] for row in rows)
    broken = [f"{name} (exit {code})" for name, (code, _) in statuses.items() if code not in (0, 1, 2)]
    print(f"\n{len(rows) - failed} of {len(rows)} goals met in {time.perf_counter() - started:.0f} s; outputs in {work}")
    for name, (code, seconds) in statuses.items():
        print(f"  bench/{name}.py: exit {code} after {seconds:.0f} s")
    if broken:
        print(f"benchmarks that did not finish: {', '.join(broken)}")
    return 1 if failed or broken else 0


if __name__ == "__main__":
    sys.exit(main())
