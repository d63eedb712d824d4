"""Crash safety of the whole application: the real terminal app, headless,
with replay loops running and metadata written beside them, is SIGKILLed at
random moments (a fifth of them during start-up, while it opens the data and
resumes loops), again and again on one data directory, and restarted.

After each kill (see tests/kill_harness.py, shared with bench/soak.py):
every shard and event log loads, `convtui doctor` finds nothing but torn
last lines and the directories of creates and deletes cut short, every
write that returned is there (metadata calls and every event a loop
announced), conversations that were RUNNING show STOPPED, and the next app
resumes each of them from all its events. The soak runs the same with
hundreds of kills."""

from __future__ import annotations

import os
import random
from pathlib import Path

from .kill_harness import kill_ui_with_loops

KILLS = 20


def test_headless_app_with_running_loops_survives_repeated_sigkill(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("CONVTUI_CRASH_SEED", random.randrange(2**32)))
    print(f"CONVTUI_CRASH_SEED={seed}")
    report = kill_ui_with_loops(tmp_path, KILLS, seed)
    print(report.summary())
    assert report.kills == KILLS
    # The kills landed among writes, with loops running, and loops were resumed.
    assert report.writes_verified >= 10 * KILLS
    assert report.mid_write >= KILLS // 2
    assert report.details.get("loops running at a kill", 0) >= KILLS
    assert report.details.get("loops resumed", 0) >= KILLS // 2
