"""Soak: the long versions of the reliability attacks in the test suite.

Run on demand (not part of the test suite), at low priority; about 30 minutes
on two cores with the defaults:

    nice -n 19 .venv/bin/python bench/soak.py
    nice -n 19 .venv/bin/python bench/soak.py --parts store-kills ui-kills --store-kills 50 --ui-kills 50
    nice -n 19 .venv/bin/python bench/soak.py --parts hypothesis --hypothesis-scale 5
    nice -n 19 .venv/bin/python bench/soak.py --seed 1234       # repeat a run's kill moments

Parts (each is a test of the suite run longer, with the same checks):

  store-kills  SIGKILL the store writer (tests/workers/store_writer.py: the
               store and event logs written directly, as the CLI does) at
               random moments, --store-kills times on one data directory;
               after each kill every write that returned is there, whole
               (tests/kill_harness.py, as tests/test_store_crash.py).
  ui-kills     SIGKILL the real app, headless, with replay loops running and
               metadata written beside them (tests/workers/ui_with_loops.py),
               --ui-kills times on one data directory, restarting it each
               time (a fifth of the kills land during start-up, while it
               opens the data and resumes loops); after each kill every
               write that returned is there, `convtui doctor` finds only
               what a kill may leave, loops that ran show STOPPED and the
               next app resumes them
               (tests/kill_harness.py, as tests/test_ui_crash.py).
  chat-kills   the same, --chat-kills times, with the app also talking to
               its idle loops: they answer with a fake model (tests/fake_llm.py
               on 127.0.0.1, through the real model worker and litellm),
               calling tools; kills land 1-7 s after the app is ready, so that
               model calls are under way.
  hypothesis   tests/test_hostile_input.py with every example budget
               multiplied by --hypothesis-scale (CONVTUI_HYPOTHESIS_SCALE);
               the examples tried are counted from hypothesis's statistics.
  races        tests/test_process_races.py (4 processes of random operations
               on one data directory, compared with a serial run) for
               --race-seeds seeds with --race-operations operations per
               process (CONVTUI_RACE_SEED, CONVTUI_RACE_OPERATIONS).

Prints, per part, its counts, its duration and PASS or FAIL (with the first
lines of the failure and the seed that repeats it), then a total. Exit
status 0 if every part passed, else 1.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kill_harness import KillReport, kill_store_writer, kill_ui_with_loops

PARTS = ("store-kills", "ui-kills", "chat-kills", "hypothesis", "races")
PYTEST_TIMEOUT = "7200"  # per test; the suite's 300 s is for the short versions


@dataclass
class Outcome:
    part: str
    passed: bool
    counts: str
    seconds: float
    failure: str = ""


def _timed(part: str, run: Callable[[], tuple[bool, str, str]]) -> Outcome:
    print(f"-- {part} ...", flush=True)
    started = time.monotonic()
    try:
        passed, counts, failure = run()
    except Exception:  # noqa: BLE001 - a failing part is reported, the others still run
        passed, counts, failure = False, "", traceback.format_exc()
    outcome = Outcome(part, passed, counts, time.monotonic() - started, failure)
    print(
        f"   {'PASS' if passed else 'FAIL'}  {counts}  ({outcome.seconds:.0f} s)",
        flush=True,
    )
    if failure:
        print("   " + "\n   ".join(failure.strip().splitlines()[:60]), flush=True)
    return outcome


def _kills(
    name: str, run: Callable[..., KillReport], kills: int, seed: int, **options: object
) -> tuple[bool, str, str]:
    report = KillReport(name)
    with tempfile.TemporaryDirectory(prefix="convtui-soak-") as work:
        try:
            run(Path(work), kills, seed, report=report, **options)
        except AssertionError:
            return (
                False,
                f"{report.summary()}; failed after kill {report.kills}, seed {seed}",
                traceback.format_exc(),
            )
    return True, report.summary(), ""


def _pytest(
    test_file: str, environment: dict[str, str], *options: str
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        test_file,
        "-q",
        "-p",
        "no:cacheprovider",
        "--timeout",
        PYTEST_TIMEOUT,
    ]
    return subprocess.run(
        [*command, *options],
        cwd=ROOT,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        check=False,
    )


def _failures(output: str) -> str:
    """pytest's FAILURES section (statistics and passes left out)."""
    start = output.find("= FAILURES =")
    return output[output.rfind("\n", 0, start) + 1 :] if start >= 0 else output[-4000:]


def _hypothesis(scale: float) -> tuple[bool, str, str]:
    result = _pytest(
        "tests/test_hostile_input.py",
        {"CONVTUI_HYPOTHESIS_SCALE": str(scale)},
        "--hypothesis-show-statistics",
    )
    tried = sum(
        int(passing) + int(failing)
        for passing, failing in re.findall(
            r"(\d+) passing, (\d+) failing", result.stdout
        )
    )
    properties = len(
        re.findall(
            r"^tests/test_hostile_input\.py::\S+:$", result.stdout, flags=re.MULTILINE
        )
    )
    counts = f"{tried:,} examples over {properties} properties (budgets x{scale:g})"
    return (
        result.returncode == 0,
        counts,
        "" if result.returncode == 0 else _failures(result.stdout),
    )


def _races(seeds: list[int], operations: int, replays: int) -> tuple[bool, str, str]:
    raced, failures = 0, []
    for seed in seeds:
        result = _pytest(
            "tests/test_process_races.py",
            {
                "CONVTUI_RACE_SEED": str(seed),
                "CONVTUI_RACE_OPERATIONS": str(operations),
                "CONVTUI_RACE_REPLAYS": str(replays),
            },
            "-s",
        )
        if result.returncode == 0:
            raced += 4 * operations
        else:
            failures.append(f"seed {seed}:\n{_failures(result.stdout)}")
        print(
            f"   seed {seed}: {'pass' if result.returncode == 0 else 'FAIL'}",
            flush=True,
        )
    counts = f"{raced:,} operations raced ({len(seeds) - len(failures)} of {len(seeds)} seeds x 4 processes x {operations:,})"
    return not failures, counts, "\n".join(failures)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--seed", type=int, help="seed of the kill moments (default: random, printed)"
    )
    parser.add_argument("--store-kills", type=int, default=250)
    parser.add_argument("--ui-kills", type=int, default=150)
    parser.add_argument("--chat-kills", type=int, default=100)
    parser.add_argument("--hypothesis-scale", type=float, default=20.0)
    parser.add_argument("--race-seeds", type=int, default=8)
    parser.add_argument("--race-operations", type=int, default=2000, help="per process")
    parser.add_argument(
        "--race-replays", type=int, default=12, help="replay loops per process"
    )
    arguments = parser.parse_args()
    seed = arguments.seed if arguments.seed is not None else random.randrange(2**32)
    print(f"convtui soak, seed {seed}, parts: {' '.join(arguments.parts)}", flush=True)

    runs: dict[str, Callable[[], tuple[bool, str, str]]] = {
        "store-kills": lambda: _kills(
            "store writer", kill_store_writer, arguments.store_kills, seed
        ),
        "ui-kills": lambda: _kills(
            "headless UI with loops",
            kill_ui_with_loops,
            arguments.ui_kills,
            seed,
            delay=(0.05, 2.0),
        ),
        "chat-kills": lambda: _kills(
            "headless UI with chatting loops",
            kill_ui_with_loops,
            arguments.chat_kills,
            seed,
            delay=(1.0, 7.0),
            chat=True,
        ),
        "hypothesis": lambda: _hypothesis(arguments.hypothesis_scale),
        "races": lambda: _races(
            [
                random.Random(seed).randrange(10**6) + n
                for n in range(arguments.race_seeds)
            ],
            arguments.race_operations,
            arguments.race_replays,
        ),
    }
    outcomes = [_timed(part, runs[part]) for part in arguments.parts]

    print("\nsummary")
    for outcome in outcomes:
        print(
            f"  {outcome.part:<12} {'PASS' if outcome.passed else 'FAIL'}  {outcome.seconds:>6.0f} s  {outcome.counts}"
        )
    passed = all(outcome.passed for outcome in outcomes)
    total = sum(outcome.seconds for outcome in outcomes)
    print(
        f"  {'total':<12} {'PASS' if passed else 'FAIL'}  {total:>6.0f} s  seed {seed}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
