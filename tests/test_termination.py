"""A terminating signal ends convtui even when its clean exit hangs: after
the grace period the registered clean-ups run and the process ends with the
shell's code for the signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

HUNG_APP = """
import sys, threading, time
from pathlib import Path
from convtui.termination import ends_cleanly_on_termination

class NeverEnds:
    is_running = True
    def exit(self, result=None, return_code=0):
        pass  # asked to exit, it never does (a hung shutdown)

marker = Path(sys.argv[1])
with ends_cleanly_on_termination(forced_exit_seconds=1.0) as termination:
    termination.cleanups.append(lambda: marker.write_text("cleaned"))
    import asyncio
    async def main():
        termination.app = NeverEnds()
        print("ready", flush=True)
        await asyncio.Event().wait()  # hung for good
    asyncio.run(main())
"""


def test_a_hung_exit_is_forced_after_the_grace_period_and_cleans_up(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    process = subprocess.Popen([sys.executable, "-c", HUNG_APP, str(marker)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    signalled = time.monotonic()
    process.send_signal(signal.SIGHUP)
    assert process.wait(timeout=20) == 128 + signal.SIGHUP
    assert 0.9 < time.monotonic() - signalled < 15
    assert marker.read_text() == "cleaned"
