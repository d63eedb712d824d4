"""Benchmark: what the command sandbox costs, with its baselines measured in
the same run.

Run on demand (not part of the test suite):

    .venv/bin/python bench/runtime.py                 # 200 samples, 50 concurrent
    .venv/bin/python bench/runtime.py --samples 50    # a quick run

Measured, each through Workspace.run as the agent's commands run (p50 and
p99 of --samples runs after a warm-up, alternating between the variants so
that a busy moment of the box lands on both):
  true              `true`: without the sandbox (the baseline: bash, the
                    limits, the pipes) and in it
  python3 -c pass   the same for a Python start
  concurrent        --concurrent commands at once, each in the sandbox of its
                    own conversation (50 workspaces), every one asked to
                    write its name into its own workspace: how long, and
                    whether every one ran and wrote only where it should

Goals (issue "The agent's runtime as OpenHands users expect it"): the
sandbox adds <= 15 ms p50 to a command; 50 concurrent sandboxed commands
across 50 conversations without an error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ratios import Goals  # noqa: E402

from convtui.backend.runtime import Workspace  # noqa: E402
from convtui.backend.sandbox import SandboxPolicy, for_conversation, status  # noqa: E402

OVERHEAD_GOAL_MS = 15.0


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def conversation(data_dir: Path, name: str, sandboxed: bool) -> Workspace:
    directory = data_dir / "conversations" / name
    root = directory / "workspace"
    root.mkdir(parents=True, exist_ok=True)
    if not sandboxed:
        return Workspace(root, policy=SandboxPolicy(enabled=False))
    sandbox = for_conversation(SandboxPolicy(), data_dir, directory, root)
    if sandbox is None:
        raise SystemExit(f"no sandbox here: {status(SandboxPolicy(), data_dir).description}")
    return Workspace(root, sandbox=sandbox)


async def timed(workspace: Workspace, command: str) -> float:
    started = time.perf_counter()
    result = await workspace.run(command, timeout=60)
    elapsed = (time.perf_counter() - started) * 1000
    if result.exit_code != 0:
        raise SystemExit(f"{command!r} failed (exit {result.exit_code}): {result.output[-300:]}")
    return elapsed


async def one_command(data_dir: Path, command: str, samples: int) -> dict[str, list[float]]:
    plain, sandboxed = conversation(data_dir, "plain", False), conversation(data_dir, "sandboxed", True)
    for _ in range(5):  # warm-up: page cache, the probe, Python's first start
        await timed(plain, command)
        await timed(sandboxed, command)
    times: dict[str, list[float]] = {"plain": [], "sandboxed": []}
    for _ in range(samples):
        times["plain"].append(await timed(plain, command))
        times["sandboxed"].append(await timed(sandboxed, command))
    return times


async def concurrent(data_dir: Path, count: int) -> tuple[float, int, list[str]]:
    """(seconds for all, how many ran as they should, what went wrong)."""
    workspaces = [conversation(data_dir, f"c{number:03}", True) for number in range(count)]
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            workspace.run(f"echo {number} > /workspace/mine && cat /workspace/mine && ls /workspace", timeout=120)
            for number, workspace in enumerate(workspaces)
        ),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - started
    good, problems = 0, []
    for number, (workspace, result) in enumerate(zip(workspaces, results)):
        if isinstance(result, BaseException):
            problems.append(f"{number}: {type(result).__name__}: {result}")
        elif result.exit_code != 0 or result.output != f"{number}\nmine\n":
            problems.append(f"{number}: exit {result.exit_code}: {result.output[-200:]!r}")
        elif (workspace.root / "mine").read_text() != f"{number}\n":
            problems.append(f"{number}: wrote elsewhere")
        else:
            good += 1
    return elapsed, good, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="runs per variant (default 200)")
    parser.add_argument("--concurrent", type=int, default=50, help="sandboxed commands at once (default 50)")
    parser.add_argument("--ratios", type=Path, default=None, metavar="FILE", help="also append the goals as JSON lines to FILE")
    arguments = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="convtui-bench-runtime-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    try:
        found = status(SandboxPolicy(), data_dir)
        print(f"{os.cpu_count()} cores; commands: {found.label}")
        if not found.sandboxed:
            return 1
        goals = Goals("runtime", arguments.ratios)
        print(f"\n{'command':<18} {'plain p50':>10} {'sandbox p50':>12} {'plain p99':>10} {'sandbox p99':>12}")
        measured = {}
        for command in ("true", "python3 -c pass"):
            times = asyncio.run(one_command(data_dir, command, arguments.samples))
            measured[command] = statistics.median(times["plain"]), statistics.median(times["sandboxed"])
            print(
                f"{command:<18} {measured[command][0]:>8.1f}ms {measured[command][1]:>10.1f}ms "
                f"{percentile(times['plain'], 0.99):>8.1f}ms {percentile(times['sandboxed'], 0.99):>10.1f}ms"
            )
        elapsed, good, problems = asyncio.run(concurrent(data_dir, arguments.concurrent))
        print(f"\ngoals ({os.cpu_count()} cores; the unsandboxed command measured in the same run):")
        for command, (plain, sandboxed) in measured.items():
            goals.limit(f"sandbox overhead p50 ({command})", sandboxed - plain, "ms", OVERHEAD_GOAL_MS)
        goals.limit(
            f"{arguments.concurrent} concurrent sandboxed commands that failed", arguments.concurrent - good, "", 0
        )
        print(f"  ({good} ran as they should in {elapsed:.2f} s)")
        for problem in problems[:10]:
            print("  " + problem)
        failed = goals.failed
        return 1 if failed else 0
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
