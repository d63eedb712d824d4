"""Benchmark: the real convtui terminal UI, driven through tmux.

Run on demand (not part of the test suite; needs tmux):

    .venv/bin/python bench/ui.py                        # 1k, 10k and 100k conversations
    .venv/bin/python bench/ui.py --sizes 1000 --keys 20  # a quick run
    .venv/bin/python bench/ui.py --seed store            # seed through the store itself (slow)
    .venv/bin/python bench/ui.py --compare ../prev/.venv/bin/python --rounds 2   # A/B, alternating
    .venv/bin/python bench/ui.py --sizes 100000 --modes both --rounds 2   # A/B: server vs --no-server

For each size N a temporary data directory gets N conversations from
`tests.ui.seed.seed_store(count=N)` ("Conversation number n", repositories
org/repo0..6, one every 36 s of activity). By default the documents
seed_store makes are collected and written as the store's shard files in one
go (the files the store itself writes, checked by opening them with
`ConversationStore`), because seed_store inserting one by one makes every
insert rewrite and fsync a shard: minutes at 100k. `--seed store` runs it
as is.

Then `python -m convtui --data-dir DIR` runs in a detached tmux pane of
--width x --height (default 120x40, TERM=xterm-256color) on a private tmux
server, and the script measures:

  launch        from `tmux respawn-pane` starting the app (Python start-up,
                imports, opening the store, first paint) until capture-pane
                first shows the painted list: the status line "N of N" and
                a row title. --launches runs; the app quits with q between.
                Also shown: when anything at all was first on the screen.
  filter        "/" opens the filter box; then keys are typed one at a time:
                the words "number", "repo3" and "4242" letter by letter, each
                erased again with backspace (each keystroke re-filters all N
                conversations). Two latencies per key, from `send-keys`:
                  echo   the box shows the new text
                  list   the status line shows the list recomputed for it
                         ("X of N · … · filter: TEXT"; without "filter:" once
                         the box is empty again)
  j             j moves the cursor down one row (scrolling once past the
                bottom): latency until the screen (with colours: the cursor
                row is only a background) differs from before the key
  memory        VmHWM (peak resident set) and VmRSS of the app's process
                from /proc/PID/status, read after the key measurements

Every key waits for the screen to settle first (unchanged for
--settle-ms), so a late repaint of the previous key is not taken for the
answer to this one. Latencies are p50/p90/p99/max over --keys samples (with
60 samples p99 lies between the two worst). "out" is when the app wrote
its first bytes after the key (tmux %output notification, so not limited by
the polling; it can be early when an unrelated repaint, e.g. the blinking
cursor of the filter box, happens to fall in the window). "cpu/key" is the
CPU time (user + system, /proc/PID/stat) the app used during the run of keys
divided by their number: work per key that the latency alone does not show
(it includes the app's idle work in that time, a few ms per second).

How the screen is read: one tmux control-mode client (`tmux -C`) sends the
keys and runs capture-pane, so no process is started per poll; the screen is
polled every --poll-ms (default 5 ms). A figure is therefore the app's time
plus the measuring overhead: the pty, tmux's parsing, the round trip of the
control client, and up to one polling interval. The baseline measures exactly
the same loops against trivial programs so the numbers can be read fairly:
`stty raw -echo; cat` for keys (a process that echoes each key at once),
`python -c 'print(...)'` for launch (the interpreter's own start-up), and a
minimal Textual app (an Input whose Changed handler updates a Static) for
both: what Textual itself costs here, e.g. the frames it waits between a key
and a repaint that a message handler causes. A second such app repaints, on
each key, a list as tall as convtui's (styled rows drawn with Textual's line
API, as convtui draws its list): its CPU per key is printed beside the goal
(not a goal itself) to show how much of a filter key is Textual repainting
rows, whatever the app computes.

Goals checked at 100k (or the largest size run), each a ratio to the
minimal Textual app measured in the same run: the list painted within 3x
its launch; the filter key (list recomputed) and j at p50 within 1.0x its key
latency, at p99 within 1.5x; the app's CPU per filter key within 2x the
minimal app's CPU per key; the first two filter keys after launch (the
filter is measured right after the launch, before j; with --rounds, each
position's median over the rounds' launches) no slower than the later ones'
p90; peak memory at most 200 MiB. Everything happens in
a temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import bisect
import os
import platform
import queue
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.ui.seed

import orjson  # noqa: E402
from arguments import parse_sizes  # noqa: E402  (bench/, this script's directory)
from ratios import Goals  # noqa: E402

import tests.ui.seed as seed_module  # noqa: E402
from convtui.backend.store import SHARD_PREFIX, TABLE, ConversationStore, shard_of  # noqa: E402

TARGET_SIZE = 100_000
# Goals as ratios to the minimal Textual app measured in the same run (issue
# "Speed that holds on any box"): absolute times vary 1.5-2x between boxes.
GOAL_PAINTED_RATIO = 3.0  # list painted / the minimal app's launch
GOAL_KEY_P50_RATIO = 1.0  # key p50 / the minimal app's key p50
GOAL_KEY_P99_RATIO = 1.5  # key p99 / the minimal app's key p99
GOAL_CPU_RATIO = 2.0  # app CPU per filter key / the minimal app's CPU per key
GOAL_MEMORY_MIB = 200.0
FIRST_KEYS = 2  # the first filter keys after launch: no slower than later ones (their p90)
FILTER_WORDS = ("number", "repo3", "4242")
KEY_TIMEOUT = 10.0
LAUNCH_TIMEOUT = 60.0
# "N of M · sort: …· filter: …" up to issue 9, "N of M · filter: … · sort: …" since.
STATUS_LINE = re.compile(r"^\s*([\d,]+) of ([\d,]+) · ")
ROW_TITLE = re.compile(r"Conversation number \d+")
FILTER_PLACEHOLDER = "/ filter:"


# -- tmux -----------------------------------------------------------------------------------


class TmuxError(RuntimeError):
    pass


class Tmux:
    """A private tmux server with one session, driven through one
    control-mode client: commands go in as lines and come back as
    %begin/%end blocks; %output notifications are time-stamped."""

    def __init__(self, width: int, height: int) -> None:
        self.executable = shutil.which("tmux") or ""
        self.socket = f"convtui-bench-{uuid.uuid4().hex[:10]}"
        self.session = "bench"
        # Apps run as installed: with their bytecode cached (a box that sets
        # PYTHONDONTWRITEBYTECODE would have convtui's ~100 modules compiled
        # at every launch, ~0.2 s that no user pays; see cache_bytecode).
        self.environment = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "PYTHONDONTWRITEBYTECODE")}
        self.environment["TERM"] = "xterm-256color"
        self._run(
            "new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height),
            "-e", "TERM=xterm-256color", "sleep 1000000",
        )
        self._run("set-option", "-t", self.session, "remain-on-exit", "on")
        self._run("set-option", "-t", self.session, "status", "off")
        self._responses: queue.Queue[tuple[bool, list[str]] | None] = queue.Queue()
        self.output_times: list[float] = []
        self._client = subprocess.Popen(
            [self.executable, "-L", self.socket, "-C", "attach-session", "-t", self.session],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.environment, bufsize=0,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.command("display-message -p ready")  # skips the attach's own reply
        size = self.command(f"display-message -p -t {self.session} '#{{window_width}}x#{{window_height}}'")
        if size != [f"{width}x{height}"]:
            raise TmuxError(f"the pane is {size} rather than {width}x{height}")

    def _run(self, *arguments: str) -> str:
        result = subprocess.run(
            [self.executable, "-L", self.socket, *arguments],
            capture_output=True, text=True, env=self.environment, timeout=20, check=False,
        )
        if result.returncode != 0:
            raise TmuxError(f"tmux {' '.join(arguments)}: {result.stderr.strip()}")
        return result.stdout

    def _read(self) -> None:
        assert self._client.stdout is not None
        block: list[str] | None = None
        mine = False
        for raw in self._client.stdout:
            now = time.perf_counter()
            if block is not None:
                if raw.startswith((b"%end ", b"%error ")):
                    if mine:
                        self._responses.put((raw.startswith(b"%end "), block))
                    block = None
                else:
                    block.append(raw.decode("utf-8", "replace").rstrip("\n"))
            elif raw.startswith(b"%output "):
                self.output_times.append(now)
            elif raw.startswith(b"%begin "):
                block, mine = [], raw.split()[-1] == b"1"
            elif raw.startswith(b"%exit"):
                break
        self._responses.put(None)

    def command(self, line: str, timeout: float = 20.0) -> list[str]:
        assert self._client.stdin is not None
        self._client.stdin.write(line.encode() + b"\n")
        try:
            response = self._responses.get(timeout=timeout)
        except queue.Empty:
            raise TmuxError(f"no answer to {line!r} within {timeout:.0f} s") from None
        if response is None:
            raise TmuxError("the tmux control client went away")
        ok, lines = response
        if not ok:
            raise TmuxError(f"{line!r}: {' '.join(lines)}")
        return lines

    def respawn(self, command: str) -> float:
        """Start `command` in the pane (killing what ran there); the moment
        tmux was asked to."""
        if "'" in command:
            raise ValueError("no single quotes in the command, please")
        started = time.perf_counter()
        self.command(f"respawn-pane -k -e TERM=xterm-256color -t {self.session} '{command}'")
        return started

    def screen(self, colours: bool = False) -> str:
        return "\n".join(self.command(f"capture-pane -p{'e' if colours else ''} -t {self.session}"))

    def send_text(self, text: str) -> float:
        if "'" in text:
            raise ValueError("no single quotes in typed text, please")
        started = time.perf_counter()
        self.command(f"send-keys -t {self.session} -l '{text}'")
        return started

    def send_key(self, key: str) -> float:
        started = time.perf_counter()
        self.command(f"send-keys -t {self.session} {key}")
        return started

    def first_output_after(self, moment: float) -> float | None:
        index = bisect.bisect_right(self.output_times, moment)
        return self.output_times[index] if index < len(self.output_times) else None

    def pane(self, format_: str) -> str:
        return self.command(f"display-message -p -t {self.session} '{format_}'")[0]

    def close(self) -> None:
        try:
            socket_path = self._run("display-message", "-p", "#{socket_path}").strip()
        except (TmuxError, subprocess.TimeoutExpired):
            socket_path = ""
        try:
            self._run("kill-server")
        except (TmuxError, subprocess.TimeoutExpired):
            pass
        if socket_path:  # tmux leaves its socket file behind
            Path(socket_path).unlink(missing_ok=True)
        try:
            self._client.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._client.kill()


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Samples:
    values: list[float] = field(default_factory=list)  # seconds
    outputs: list[float] = field(default_factory=list)  # seconds to the first output
    timeouts: int = 0
    cpu_per_key: float | None = None  # seconds of the app's CPU time per key
    runs: int = 1  # launches of the app whose samples these are (equally many each, in order)

    def quantile(self, q: float, values: list[float] | None = None) -> float:
        data = sorted(self.values if values is None else values)
        if not data:
            return float("nan")
        position = q * (len(data) - 1)
        low = int(position)
        high = min(low + 1, len(data) - 1)
        return data[low] + (data[high] - data[low]) * (position - low)

    def pooled(self, other: Samples) -> Samples:
        """Both rounds' samples together (the CPU per key averaged)."""
        cpu = [value for value in (self.cpu_per_key, other.cpu_per_key) if value is not None]
        return Samples(
            self.values + other.values,
            self.outputs + other.outputs,
            self.timeouts + other.timeouts,
            sum(cpu) / len(cpu) if cpu else None,
            self.runs + other.runs,
        )

    def per_run(self) -> list[list[float]]:
        """The samples of each launch, in order."""
        count = len(self.values) // self.runs
        return [self.values[start : start + count] for start in range(0, count * self.runs, count)]


@dataclass
class Launch:
    anything: float  # something (the "Opening …" screen) first visible
    status: float  # status line "N of N"
    painted: float  # status line and a row title


@dataclass
class Result:
    size: int
    seed_seconds: float
    disk_bytes: int
    launches: list[Launch]
    filter_echo: Samples
    filter_list: Samples
    cursor: Samples
    memory: dict[str, int]
    quit_seconds: float | None

    def pooled(self, other: Result) -> Result:
        """This round and another of the same app on the same data as one
        result (memory: the larger peak; quitting: the slower)."""
        memory = max(self.memory, other.memory, key=lambda each: each.get("VmHWM", 0))
        quits = [value for value in (self.quit_seconds, other.quit_seconds) if value is not None]
        return Result(
            self.size, self.seed_seconds, self.disk_bytes, self.launches + other.launches,
            self.filter_echo.pooled(other.filter_echo), self.filter_list.pooled(other.filter_list),
            self.cursor.pooled(other.cursor), memory,
            max(quits) if len(quits) == 2 else None,
        )


def wait_for(tmux: Tmux, condition: Callable[[str], bool], poll: float, timeout: float, colours: bool = False) -> tuple[float, str]:
    deadline = time.perf_counter() + timeout
    while True:
        screen = tmux.screen(colours)
        now = time.perf_counter()
        if condition(screen):
            return now, screen
        if now > deadline:
            raise TmuxError(f"timed out after {timeout:.0f} s; the screen:\n{tmux.screen()}")
        time.sleep(poll)


def settle(tmux: Tmux, quiet: float, colours: bool, timeout: float = 3.0) -> str:
    """The screen once it has not changed for `quiet` seconds."""
    deadline = time.perf_counter() + timeout
    screen = tmux.screen(colours)
    stable_since = time.perf_counter()
    while True:
        time.sleep(min(0.01, quiet))
        again = tmux.screen(colours)
        now = time.perf_counter()
        if again != screen:
            screen, stable_since = again, now
        elif now - stable_since >= quiet or now > deadline:
            return screen


def list_column(line: str) -> str:
    """A screen line without the detail pane (right of ▏ in the wide layout)."""
    return line.split("▏", 1)[0].rstrip()


def status_line(screen: str) -> str | None:
    return next((list_column(line) for line in screen.splitlines() if STATUS_LINE.match(line)), None)


def status_total(screen: str) -> int | None:
    line = status_line(screen)
    match = STATUS_LINE.match(line) if line else None
    return int(match.group(2).replace(",", "")) if match else None


def filter_box_text(screen: str) -> str | None:
    """What the filter box shows ('' for its placeholder), None if the screen
    has no list yet. The box is the first line of the list column."""
    lines = screen.splitlines()
    if not lines:
        return None
    text = list_column(lines[0]).strip()
    return "" if text.startswith(FILTER_PLACEHOLDER) else text


def list_shows_filter(screen: str, text: str) -> bool:
    line = status_line(screen)
    if line is None:
        return False
    if text:
        return re.search(rf"filter: {re.escape(text)}( ·|$)", line) is not None
    return "filter:" not in line


def measure_launch(tmux: Tmux, command: str, ready: Callable[[str], bool], poll: float) -> Launch:
    started = tmux.respawn(command)
    anything = status = None
    deadline = started + LAUNCH_TIMEOUT
    while True:
        screen = tmux.screen()
        now = time.perf_counter()
        if anything is None and screen.strip():
            anything = now - started
        if status is None and status_line(screen):
            status = now - started
        if ready(screen):
            return Launch(anything or now - started, status or now - started, now - started)
        if now > deadline:
            raise TmuxError(f"the app did not paint its list within {LAUNCH_TIMEOUT:.0f} s; the screen:\n{screen}")
        time.sleep(poll)


def quit_app(tmux: Tmux, poll: float) -> float | None:
    """Escape (leaves the filter box, where q is a letter), then q, and wait
    for the pane's process to end; seconds from q (None: it did not, and the
    next respawn kills it)."""
    tmux.send_key("Escape")
    settle(tmux, 0.1, colours=False)  # apart, or the two read as alt+q
    started = tmux.send_key("q")
    deadline = started + 15
    while time.perf_counter() < deadline:
        if tmux.pane("#{pane_dead}") == "1":
            return time.perf_counter() - started
        time.sleep(poll)
    return None


def key_sample(
    tmux: Tmux, samples: Samples, send: Callable[[], float], changed: Callable[[str], bool], poll: float, colours: bool
) -> None:
    started = send()
    try:
        seen, _ = wait_for(tmux, changed, poll, KEY_TIMEOUT, colours)
    except TmuxError:
        samples.timeouts += 1
        samples.values.append(KEY_TIMEOUT)
        return
    samples.values.append(seen - started)
    output = tmux.first_output_after(started)
    if output is not None and output <= seen:
        samples.outputs.append(output - started)


def measure_cursor(
    tmux: Tmux, keys: int, poll: float, quiet: float, key: str = "j", colours: bool = True, samples: Samples | None = None
) -> Samples:
    samples = Samples() if samples is None else samples
    for _ in range(keys):
        before = settle(tmux, quiet, colours)
        key_sample(tmux, samples, lambda: tmux.send_key(key), lambda screen: screen != before, poll, colours)
    return samples


def filter_plan(keys: int, words: tuple[str, ...] = FILTER_WORDS) -> Iterator[tuple[str, str]]:
    """(what to send, the box's text afterwards): each word typed and erased."""
    count = 0
    while True:
        for word in words:
            steps = [(f"text:{letter}", word[: index + 1]) for index, letter in enumerate(word)]
            steps += [("key:BSpace", word[:index]) for index in range(len(word) - 1, -1, -1)]
            for step in steps:
                if count == keys:
                    return
                yield step
                count += 1


def measure_filter(
    tmux: Tmux,
    keys: int,
    poll: float,
    quiet: float,
    echo: Samples | None = None,
    listed: Samples | None = None,
    words: tuple[str, ...] = FILTER_WORDS,
) -> tuple[Samples, Samples]:
    echo = Samples() if echo is None else echo
    listed = Samples() if listed is None else listed
    tmux.send_key("/")
    # Let the box take the focus before typing (a burst of keys in the same
    # read as "/" is not yet routed to it).
    settle(tmux, quiet, colours=False)
    for action, text in filter_plan(keys, words):
        settle(tmux, quiet, colours=False)
        kind, _, value = action.partition(":")
        started = tmux.send_text(value) if kind == "text" else tmux.send_key(value)
        echo_at = list_at = None
        deadline = started + KEY_TIMEOUT
        while echo_at is None or list_at is None:
            screen = tmux.screen()
            now = time.perf_counter()
            if echo_at is None and filter_box_text(screen) == text:
                echo_at = now
            if list_at is None and filter_box_text(screen) == text and list_shows_filter(screen, text):
                list_at = now
            if now > deadline:
                break
            time.sleep(poll)
        output = tmux.first_output_after(started)
        for samples, seen in ((echo, echo_at), (listed, list_at)):
            if seen is None:
                samples.timeouts += 1
                samples.values.append(KEY_TIMEOUT)
                continue
            samples.values.append(seen - started)
            if output is not None and output <= seen:
                samples.outputs.append(output - started)
    tmux.send_key("Escape")
    wait_for(tmux, lambda screen: filter_box_text(screen) == "", poll, KEY_TIMEOUT)
    return echo, listed


def app_process(tmux: Tmux) -> int | None:
    """The pid of the Python process running in the pane (the pane's own
    process, or its child when a shell runs it)."""
    pid = int(tmux.pane("#{pane_pid}"))
    for _ in range(3):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip().startswith("python"):
                return pid
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        if not children:
            return None
        pid = int(children[0])
    return None


def memory_of(pid: int | None) -> dict[str, int]:
    if pid is None:
        return {}
    figures: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                figures[name] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return figures


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time the process has used so far."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def cpu_per_key(pid: int | None, keys: int, *samples: Samples) -> Iterator[None]:
    before = cpu_seconds(pid)
    yield
    after = cpu_seconds(pid)
    if before is not None and after is not None:
        for each in samples:
            each.cpu_per_key = (after - before) / keys


# -- seeding ------------------------------------------------------------------------------------


class _CollectingStore:
    """Stands in for ConversationStore inside seed_store: keeps the documents."""

    collected: list[dict[str, Any]] = []

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def insert(self, document: dict[str, Any]) -> None:
        _CollectingStore.collected.append(document)

    def close(self) -> None:
        pass


@contextmanager
def collecting_store() -> Iterator[list[dict[str, Any]]]:
    _CollectingStore.collected = []
    real = seed_module.ConversationStore
    seed_module.ConversationStore = _CollectingStore  # type: ignore[misc,assignment]
    try:
        yield _CollectingStore.collected
    finally:
        seed_module.ConversationStore = real  # type: ignore[misc]


def seed(data_dir: Path, size: int, how: str) -> float:
    started = time.perf_counter()
    if how == "store":
        seed_module.seed_store(data_dir, count=size)
    else:
        try:
            with collecting_store() as documents:
                seed_module.seed_store(data_dir, count=size)
        except AttributeError:  # seed_store uses more of the store than insert(): seed as is
            documents = []
        if len(documents) != size:
            shutil.rmtree(data_dir, ignore_errors=True)
            print("  (seed_store no longer inserts one document at a time: running it as is)", flush=True)
            seed_module.seed_store(data_dir, count=size)
            documents = []
        shards: dict[str, dict[str, Any]] = {}
        for document in documents:
            table = shards.setdefault(shard_of(document["conversation_id"]), {})
            table[str(len(table) + 1)] = document
        store_dir = data_dir / "store"
        store_dir.mkdir(parents=True, exist_ok=True)
        for shard, table in shards.items():
            (store_dir / f"{SHARD_PREFIX}{shard}.json").write_bytes(orjson.dumps({TABLE: table}))
    seconds = time.perf_counter() - started
    store = ConversationStore(data_dir / "store")
    try:
        if len(store) != size:
            raise SystemExit(f"seeding went wrong: the store holds {len(store)} conversations, not {size}")
    finally:
        store.close()
    return seconds


def disk_usage(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


# -- runs -----------------------------------------------------------------------------------------


def app_command(python: str, data_dir: Path, options: str = "") -> str:
    return f"{shlex.quote(python)} -m convtui --data-dir {shlex.quote(str(data_dir))}{options}"


def painted(size: int) -> Callable[[str], bool]:
    return lambda screen: status_total(screen) == size and ROW_TITLE.search(screen) is not None


def run_size(root: Path, size: int, args: argparse.Namespace) -> dict[str, Result]:
    """Seed `size` conversations once, then measure each app under test on
    that same data, one after the other (this checkout's, and with
    --compare the other interpreter's): {label: Result}."""
    data_dir = root / f"n{size}"
    print(f"\n=== {size:,} conversations ===", flush=True)
    seed_seconds = seed(data_dir, size, args.seed)
    disk = disk_usage(data_dir)
    print(f"seeded in {seed_seconds:.1f} s ({args.seed}), {disk / 1e6:.1f} MB on disk", flush=True)
    results: dict[str, Result] = {}
    try:
        # Rounds alternate the apps in ABBA order, so that a change in the
        # machine's load during the run (or going first) falls on both alike.
        for round_number in range(args.rounds):
            apps = list(apps_under_test(args).items())
            for label, (python, options) in apps[::-1] if round_number % 2 else apps:
                if "server" in label and "--no-server" not in options:
                    start_server(python, data_dir)
                result = measure_app(python, data_dir, size, seed_seconds, disk, args, options)
                results[label] = results[label].pooled(result) if label in results else result
        return results
    finally:
        stop_server(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def apps_under_test(args: argparse.Namespace) -> dict[str, tuple[str, str]]:
    """{label: (interpreter, extra options)}. The UI's loops run in the data
    directory's server by default; --modes both measures that and
    --no-server (in-process) on the same data in the same run."""
    apps = {}
    if args.modes in ("server", "both"):
        apps["this checkout (server)"] = (sys.executable, "")
    if args.modes in ("no-server", "both"):
        apps["this checkout (--no-server)"] = (sys.executable, " --no-server")
    if args.compare is not None:
        apps[f"compared ({args.compare})"] = (str(args.compare), "")
    return apps


def start_server(python: str, data_dir: Path) -> None:
    """The server running before the UI starts (as after a first launch): the
    launch then measures connecting, not the server's own start beside it."""
    subprocess.run(
        [python, "-c", "import sys; from convtui.backend.server import ensure_server; ensure_server(sys.argv[1])", str(data_dir)],
        check=True, timeout=120,
    )  # fmt: skip


def stop_server(data_dir: Path) -> None:
    """No server outlives the run (a launch may have started one)."""
    subprocess.run(
        [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), "serve", "stop"],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip


def cache_bytecode(python: str) -> None:
    """convtui's modules compiled where Python keeps their bytecode, as
    its first run (or a regular pip install) leaves them for every later one."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [python, "-c", "import compileall, os, convtui; compileall.compile_dir(os.path.dirname(convtui.__file__), quiet=1)"],
        env=environment, check=True, timeout=300,
    )  # fmt: skip


def measure_app(
    python: str, data_dir: Path, size: int, seed_seconds: float, disk: int, args: argparse.Namespace, options: str = ""
) -> Result:
    cache_bytecode(python)
    poll, quiet = args.poll_ms / 1000, args.settle_ms / 1000
    tmux = Tmux(args.width, args.height)
    try:
        launches = []
        quit_seconds = None
        for number in range(args.launches):
            launches.append(measure_launch(tmux, app_command(python, data_dir, options), painted(size), poll))
            if number < args.launches - 1:
                settle(tmux, quiet, colours=False)
                quit_app(tmux, poll)
        settle(tmux, 0.2, colours=True)
        pid = app_process(tmux)
        # The filter first: its first keys are the first after launch (the
        # goal that they are no slower than later ones is about what the app
        # still does once its list is shown).
        filter_echo, filter_list = Samples(), Samples()
        with cpu_per_key(pid, args.keys, filter_echo, filter_list):
            measure_filter(tmux, args.keys, poll, quiet, filter_echo, filter_list)
        settle(tmux, quiet, colours=True)
        cursor = Samples()
        with cpu_per_key(pid, args.keys, cursor):
            measure_cursor(tmux, args.keys, poll, quiet, samples=cursor)
        memory = memory_of(pid)
        quit_seconds = quit_app(tmux, poll)
    finally:
        tmux.close()
    return Result(size, seed_seconds, disk, launches, filter_echo, filter_list, cursor, memory, quit_seconds)


TEXTUAL_ECHO_APP = """
from textual.app import App
from textual.widgets import Input, Static


class Echo(App):
    def compose(self):
        yield Input(id="typed")
        yield Static("textual ready", id="echo")

    def on_input_changed(self, event):
        self.query_one("#echo", Static).update(f"echo:{event.value}")


Echo().run()
"""


# The same Input, but its Changed handler repaints a list as tall as
# convtui's (the screen's height less the filter box, the status line and
# the footer) in the left half of a two-pane screen, drawn as convtui draws
# its list (Textual's line API: a Strip per row): what Textual itself costs
# to repaint that many styled rows on a key, whatever the app computes.
TEXTUAL_LIST_APP = """
import sys

from rich.segment import Segment
from rich.style import Style
from textual.app import App
from textual.containers import Horizontal, Vertical
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Input, Static

ROWS = int(sys.argv[1])
DIM, BOLD, CYAN, GREEN = Style(dim=True), Style(bold=True), Style(color="cyan"), Style(color="green")


class Rows(Widget):
    strips = [Strip([Segment("textual ready")])]

    def render_line(self, y):
        strip = self.strips[y] if y < len(self.strips) else Strip.blank(0)
        return strip.extend_cell_length(self.size.width).crop(0, self.size.width)


class ListEcho(App):
    CSS = "#left { width: 50%; } Rows { height: 1fr; } #detail { border: round $accent; }"

    def compose(self):
        with Horizontal():
            with Vertical(id="left"):
                yield Input(id="typed")
                yield Rows()
            yield Static("detail " * 200, id="detail")

    def on_input_changed(self, event):
        strips = [Strip([Segment(f"typed:{len(event.value)} ")])]
        for number in range(1, ROWS):
            strips.append(Strip([
                Segment(f"{number:>5} ", DIM),
                Segment(f"{event.value} conversation {number}"[:30].ljust(31), BOLD),
                Segment(f"repo-{number % 7:<3}", CYAN),
                Segment(f"{number % 59:>2}m ago", GREEN),
            ]))
        widget = self.query_one(Rows)
        widget.strips = strips
        widget.refresh()  # a repaint: the rows keep their size


ListEcho().run()
"""


@dataclass
class Baseline:
    launch: list[Launch]
    keys: Samples
    textual_launch: list[Launch]
    textual_keys: Samples
    textual_list_keys: Samples


def typed_x_samples(tmux: Tmux, keys: int, poll: float, quiet: float, shown: Callable[[str, int], bool]) -> Samples:
    """Type x `keys` times, each time waiting for `shown(screen, how_many)`."""
    samples = Samples()
    pid = app_process(tmux)
    with cpu_per_key(pid, keys, samples):
        for typed in range(1, keys + 1):
            settle(tmux, quiet, colours=False)
            key_sample(tmux, samples, lambda: tmux.send_text("x"), lambda screen, n=typed: shown(screen, n), poll, False)
    return samples


def run_baseline(args: argparse.Namespace, directory: Path) -> Baseline:
    """The same loops against trivial programs: a `cat` that echoes each key
    (raw tty), `python -c print()`, and a minimal Textual app (an Input whose
    Changed handler updates a Static): what Python and Textual cost by
    themselves in this set-up."""
    poll, quiet = args.poll_ms / 1000, args.settle_ms / 1000
    python = shlex.quote(sys.executable)
    script = directory / "textual_echo.py"
    script.write_text(TEXTUAL_ECHO_APP)
    tmux = Tmux(args.width, args.height)
    try:
        launches = []
        for _ in range(args.launches):
            command = f'{python} -c "import time; print(42 * 1000001); time.sleep(1e6)"'
            launches.append(measure_launch(tmux, command, lambda screen: "42000042" in screen, poll))
        tmux.respawn("stty raw -echo; exec cat")
        wait_for(tmux, lambda screen: app_process(tmux) is None, poll, 5)  # cat, not python, runs now
        keys = typed_x_samples(tmux, args.keys, poll, quiet, lambda screen, n: screen.count("x") >= n)

        textual_launches = []
        for number in range(args.launches):
            textual_launches.append(
                measure_launch(tmux, f"{python} {shlex.quote(str(script))}", lambda screen: "textual ready" in screen, poll)
            )
        settle(tmux, 0.2, colours=False)
        textual_keys = typed_x_samples(tmux, args.keys, poll, quiet, lambda screen, n: f"echo:{'x' * n}" in screen)

        list_script = directory / "textual_list_echo.py"
        list_script.write_text(TEXTUAL_LIST_APP)
        rows = max(1, args.height - 3)  # convtui's list: the screen less filter box, status line, footer
        tmux.respawn(f"{python} {shlex.quote(str(list_script))} {rows}")
        wait_for(tmux, lambda screen: "textual ready" in screen, poll, LAUNCH_TIMEOUT)
        settle(tmux, 0.2, colours=False)
        textual_list_keys = typed_x_samples(tmux, args.keys, poll, quiet, lambda screen, n: f"typed:{n} " in screen)
    finally:
        tmux.close()
    return Baseline(launches, keys, textual_launches, textual_keys, textual_list_keys)


# -- printing ---------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def print_keys(label: str, samples: Samples) -> None:
    out = f"{samples.quantile(0.5, samples.outputs) * 1000:7.1f}" if samples.outputs else "      -"
    timeouts = f"  ({samples.timeouts} timed out at {KEY_TIMEOUT:.0f} s)" if samples.timeouts else ""
    cpu = f"{samples.cpu_per_key * 1000:7.1f}" if samples.cpu_per_key is not None else "      -"
    print(
        f"  {label:<32}{len(samples.values):>4} {ms(samples.quantile(0.5))} {ms(samples.quantile(0.9))} "
        f"{ms(samples.quantile(0.99))} {ms(max(samples.values, default=float('nan')))}   {out} {cpu}{timeouts}"
    )


def key_header() -> None:
    print(
        f"  {'keystroke → screen (ms)':<32}{'n':>4} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}   "
        f"{'out p50':>7} {'cpu/key':>7}"
    )


def print_launches(label: str, launches: list[Launch], show_status: bool = True) -> None:
    painted_ = [launch.painted for launch in launches]
    runs = " ".join(f"{value:.3f}" for value in painted_)
    print(f"  {label:<32} median {statistics.median(painted_):6.3f} s   runs: {runs}")
    if show_status:
        anything = statistics.median(launch.anything for launch in launches)
        status = statistics.median(launch.status for launch in launches)
        print(f"  {'':<32} (median: first anything on screen {anything:.3f} s, status line {status:.3f} s)")


def print_result(result: Result, label: str) -> None:
    print(f"\n--- {result.size:,} conversations: results of {label} ---")
    print_launches("launch → first painted list", result.launches)
    key_header()
    print_keys("filter: text echoed in the box", result.filter_echo)
    print_keys("filter: list recomputed", result.filter_list)
    print_keys("j: cursor row moves", result.cursor)
    hwm, rss = result.memory.get("VmHWM"), result.memory.get("VmRSS")
    if hwm is not None:
        print(f"  {'memory of the app process':<32} peak (VmHWM) {hwm / 2**20:.1f} MiB, now (VmRSS) {(rss or 0) / 2**20:.1f} MiB")
    else:
        print("  memory: the app's process was not found")
    if result.quit_seconds is not None:
        print(f"  {'q → process exited':<32} {result.quit_seconds:.3f} s")
    else:
        print("  q → the process did not exit within 15 s")


def print_baseline(baseline: Baseline) -> None:
    print("\n--- baseline: the same measurements against trivial programs (the overhead of measuring) ---")
    print_launches("launch: python -c print()", baseline.launch, show_status=False)
    print_launches("launch: minimal Textual app", baseline.textual_launch, show_status=False)
    key_header()
    print_keys("key echoed by `cat` (raw tty)", baseline.keys)
    print_keys("minimal Textual app: Input→Static", baseline.textual_keys)
    print_keys("the same repainting a list", baseline.textual_list_keys)


def print_comparison(results: dict[str, Result]) -> None:
    """This checkout against the compared one, measured on the same data in
    the same run: the ratio (this / compared) of each median."""
    (this_label, this), (other_label, other) = results.items()
    print(f"\n--- {this.size:,} conversations: {this_label} / {other_label} (medians; < 1 is faster) ---")

    def line(label: str, mine: float, theirs: float, unit: str) -> None:
        scale, shown = (1000, "ms") if unit == "ms" else (1, "s")
        print(f"  {label:<32} {mine * scale:8.1f} {theirs * scale:8.1f} {shown:<2}  ratio {mine / theirs:5.2f}")

    line("launch → painted list", statistics.median(l.painted for l in this.launches),
         statistics.median(l.painted for l in other.launches), "s")
    for label, mine, theirs in (
        ("filter echo", this.filter_echo, other.filter_echo),
        ("filter list recomputed", this.filter_list, other.filter_list),
        ("j cursor move", this.cursor, other.cursor),
    ):
        line(f"{label} p50", mine.quantile(0.5), theirs.quantile(0.5), "ms")
        line(f"{label} p99", mine.quantile(0.99), theirs.quantile(0.99), "ms")
        if mine.cpu_per_key is not None and theirs.cpu_per_key is not None:
            line(f"{label} cpu/key", mine.cpu_per_key, theirs.cpu_per_key, "ms")
    mine_memory, their_memory = this.memory.get("VmHWM"), other.memory.get("VmHWM")
    if mine_memory and their_memory:
        print(f"  {'peak memory (MiB)':<32} {mine_memory / 2**20:8.1f} {their_memory / 2**20:8.1f}     "
              f"ratio {mine_memory / their_memory:5.2f}")


def check_goals(results: dict[int, Result], baseline: Baseline, ratios: Path | None = None) -> None:
    """The goals at 100k (or the largest size run), each a ratio to the
    minimal Textual app of the same run; the absolute figures beside."""
    size = TARGET_SIZE if TARGET_SIZE in results else max(results)
    result = results[size]
    note = "" if size == TARGET_SIZE else f" (100k not run: checked at {size:,})"
    print(f"\n=== goals at {size:,} conversations{note}, as ratios to the minimal Textual app of this run ({os.cpu_count()} cores) ===")
    goals = Goals(f"ui {size:,}", ratios)
    textual = baseline.textual_keys
    launch = statistics.median(each.painted for each in baseline.textual_launch)
    painted = statistics.median(each.painted for each in result.launches)
    goals.ratio("list painted (median launch)", painted, "s", "minimal Textual app", launch, GOAL_PAINTED_RATIO)
    for label, samples in (("filter key (list shown)", result.filter_list), ("j cursor move", result.cursor)):
        goals.ratio(f"{label} p50", samples.quantile(0.5) * 1000, "ms", "minimal Textual app", textual.quantile(0.5) * 1000, GOAL_KEY_P50_RATIO)
        goals.ratio(f"{label} p99", samples.quantile(0.99) * 1000, "ms", "minimal Textual app", textual.quantile(0.99) * 1000, GOAL_KEY_P99_RATIO)
    if result.filter_list.cpu_per_key is not None and textual.cpu_per_key:
        goals.ratio(
            "CPU per filter key", result.filter_list.cpu_per_key * 1000, "ms", "minimal Textual app",
            textual.cpu_per_key * 1000, GOAL_CPU_RATIO,
        )  # fmt: skip
        if listing := baseline.textual_list_keys.cpu_per_key:
            # Not a goal: what part of the CPU is Textual repainting the rows.
            print(
                f"  info  CPU per filter key against a minimal Textual app repainting a list as tall: "
                f"{result.filter_list.cpu_per_key * 1000:.1f} / {listing * 1000:.1f} ms = "
                f"{result.filter_list.cpu_per_key / listing:.3g}x (that app / the minimal app = "
                f"{listing / textual.cpu_per_key:.3g}x)"
            )
    # Key n after launch: its median over the launches (one sample each), against the later keys of them all.
    runs = result.filter_list.per_run()
    later = Samples([value for run in runs for value in run[FIRST_KEYS:]]).quantile(0.9) * 1000
    for number in range(1, FIRST_KEYS + 1):
        first = Samples([run[number - 1] for run in runs if len(run) >= number]).quantile(0.5) * 1000
        label = f"filter key {number} after launch" + (f" (median of {len(runs)})" if len(runs) > 1 else "")
        goals.ratio(label, first, "ms", "later keys' p90", later, 1.0)
    peak = result.memory.get("VmHWM")
    if peak:
        goals.limit("peak memory", peak / 2**20, "MiB", GOAL_MEMORY_MIB)
    print(f"  {'all goals met' if not goals.failed else f'{goals.failed} goal(s) missed'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[1_000, 10_000, 100_000], help="e.g. 1000,10000")
    parser.add_argument("--keys", type=int, default=60, help="keystrokes measured per kind (default 60)")
    parser.add_argument("--launches", type=int, default=3, help="launches measured per size (default 3)")
    parser.add_argument("--width", type=int, default=120)
    parser.add_argument("--height", type=int, default=40)
    parser.add_argument("--poll-ms", type=float, default=5.0, help="capture-pane polling interval (default 5)")
    parser.add_argument("--settle-ms", type=float, default=60.0, help="quiet screen before each key (default 60)")
    parser.add_argument("--seed", choices=("fast", "store"), default="fast",
                        help="fast: seed_store's documents written as shard files at once (default); "
                             "store: seed_store inserting one by one")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary directory")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each app this many times, alternating with --compare (default 1)")
    parser.add_argument("--compare", type=Path, default=None, metavar="PYTHON",
                        help="also measure the convtui installed for this interpreter (e.g. another "
                             "checkout's .venv/bin/python: the previous main) on the same data, in the same run")
    parser.add_argument("--ratios", type=Path, default=None, metavar="FILE",
                        help="also append the goals as JSON lines to FILE (bench/compare.py reads them)")
    parser.add_argument("--modes", choices=("server", "no-server", "both"), default="server",
                        help="loops in the data directory's server (the default), in the UI (--no-server), "
                             "or both on the same data in the same run, alternating")
    args = parser.parse_args()
    if args.modes == "both" and args.compare is not None:
        parser.error("--modes both and --compare each make an A/B: pick one")
    if args.keys < 1 or args.launches < 1 or args.rounds < 1:
        parser.error("--keys, --launches and --rounds must be at least 1")
    if args.compare is not None and not os.access(args.compare, os.X_OK):
        parser.error(f"--compare: {args.compare} is not an executable interpreter")
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed")

    started = time.perf_counter()
    tmux_version = subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=False).stdout.strip()
    print(
        f"convtui UI through {tmux_version} | {args.width}x{args.height} | Python {platform.python_version()} | "
        f"{platform.system()} {platform.machine()} | {os.cpu_count()} CPUs | poll {args.poll_ms:g} ms, "
        f"settle {args.settle_ms:g} ms, {args.keys} keys, {args.launches} launches"
    )
    results: dict[int, Result] = {}
    with tempfile.TemporaryDirectory(prefix="convtui-bench-ui-", dir=args.dir) as temporary:
        baseline = run_baseline(args, Path(temporary))
        print_baseline(baseline)
        for size in args.sizes:
            by_app = run_size(Path(temporary), size, args)
            for label, result in by_app.items():
                print_result(result, label)
            if len(by_app) == 2:
                print_comparison(by_app)
            results[size] = next(iter(by_app.values()))  # this checkout, in the first mode
    check_goals(results, baseline, args.ratios)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
