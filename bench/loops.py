"""Benchmark: many agent loops at once in one process and one asyncio event loop.

Run on demand (not part of the test suite):

    .venv/bin/python bench/loops.py                          # 10, 100 and 200 loops
    .venv/bin/python bench/loops.py --loops 200 --iterations 10 --delay 1.0
    .venv/bin/python bench/loops.py --loops 200 --delay 5 --jitter 0.5   # answers out of lockstep
    .venv/bin/python bench/loops.py --loops 200 --slow-callback 50   # name what blocks

Setup. A temporary data directory; settings with confirmation_mode off,
max_concurrent_loops = the largest N, max_iterations = iterations + 1, the
model --model (default "openai/gpt-4o-mini": a name litellm has a price
for, as a user's model has; an unknown name such as "openai/fake-model" sends
litellm's cost calculation through its fallback search, ~8% more worker CPU
per call) at a fake OpenAI server (tests/fake_llm.py, real litellm over TCP). The fake server runs in a SEPARATE PROCESS (this script
started with --serve), so its CPU time and its share of the GIL are not
charged to the loops; it reports its own CPU time. It answers every request
after --delay seconds (Slow): an agent request gets a tool call for each of
the first --iterations requests of its conversation, cycling through
`execute_bash` (`echo step k >> log.txt`), `str_replace_editor` create,
`str_replace_editor` view and `think` (--tools bash: only execute_bash),
then a `finish` call; an auto-title request (system message "Write a short
title ...") gets a short Text title. Each conversation's first message
carries a marker "[bench <key>]" that the server uses to count requests and
tokens per conversation. Every answer carries distinct token usage.
--jitter J (default 0) makes each answer wait delay x uniform(1-J, 1+J)
instead (seeded), so that the loops no longer get their answers in lockstep.

Before the measured cases, a warm-up (2 loops, 1 iteration, 50 ms delay)
pays for importing litellm and its first-call setup; its worst stall is
printed but not counted.

For each N: create N conversations, start all N loops (until_idle=True) side
by side (as the UI starts marked conversations; one after the other took
3.5 s of a 20 s run before 2026-12-05), wait for all, then report
  wall time        from the first start to the last loop's end, beside the
                   ideal (iterations + 1) x delay
  events/s         events the loops appended (user messages excluded) / wall
  updates/s        updates published through manager.subscribe / wall, by type
  stall            a task sleeping 10 ms in a loop records (actual - 10 ms):
                   max, p99 and p50 of that lateness, and ticks later than 100 ms
  CPU per LLM call process CPU (time.process_time: the event-loop thread,
                   whose share time.thread_time gives, plus every other thread:
                   asyncio.to_thread workers, litellm's own threads) / LLM
                   requests served; the workspace commands' CPU
                   (RUSAGE_CHILDREN) and the fake server's CPU are shown apart
  memory           ru_maxrss (peak RSS of the process so far, so it never goes
                   down from one N to the next), the RSS now, and with
                   --tracemalloc the traced peak (slows everything: off by default)
  integrity        every conversation's event log is exactly: the user
                   message, per iteration the action and its observation,
                   then finish; ids 0..n-1 contiguous; every observation's
                   cause is the action before it; commands exited 0; log.txt
                   holds one line per bash step; subscribers saw an
                   EventAdded for every appended event; the metadata's token
                   counts equal what the server sent (title call included);
                   agent state FINISHED and the model's title stored.

Summary: the goals at 200 loops: wall time <= 1.5x the ideal (iterations + 1) x delay, and a worst stall <= 100 ms (PASS/FAIL).
Exit status: 0 all good, 1 an integrity check failed, 2 the goal failed.

--slow-callback MS turns on asyncio debug mode (which adds overhead of its own)
and lists, after each case, the slowest event-loop callbacks as asyncio logs
them (a task's outermost coroutine and the line it stands at).
--stall-stacks MS leaves debug mode off: a thread looks every 5 ms at where
the event loop's thread is whenever the stall meter is more than MS late,
and the innermost frames seen most often are listed. Each case also prints
its garbage collections and the longest of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import re
import resource
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "src"))

from tests.fake_llm import FakeLLMServer, Slow, Text, ToolCall  # noqa: E402
from convtui.backend.events import exit_code_of  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ratios import Goals  # noqa: E402

API_KEY = "sk-bench-0123456789abcdef"
TITLE_PREFIX = "Write a short title"
MARKER = re.compile(r"\[bench ([\w-]+)\]")
TITLE_USAGE = (7, 3)
TICK_SECONDS = 0.01
STALL_GOAL_MS = 100.0
WALL_GOAL_RATIO = 1.5  # wall time / the ideal (iterations + 1) x delay
GOAL_LOOPS = 200
WARM_UP_LOOPS = 2


# -- the script both sides follow -------------------------------------------------------


@dataclass(frozen=True)
class Step:
    tool: str
    arguments: dict[str, Any]
    action: str  # the action event's kind
    observation: str | None  # the observation's kind (None for finish)


def plan(step: int, iterations: int, tools: str) -> Step:
    """What the model does at agent request `step` (0-based) of a conversation."""
    if step >= iterations:
        return Step("finish", {"message": f"done after {iterations} steps"}, "finish", None)
    kind = 0 if tools == "bash" else step % 4
    if kind == 0:
        return Step("execute_bash", {"command": f"echo step {step} >> log.txt"}, "run", "run")
    if kind == 1:
        arguments = {"command": "create", "path": f"/workspace/note_{step}.txt", "file_text": f"note {step}\n"}
        return Step("str_replace_editor", arguments, "edit", "edit")
    if kind == 2:
        arguments = {"command": "view", "path": f"/workspace/note_{step - 1}.txt"}
        return Step("str_replace_editor", arguments, "read", "read")
    return Step("think", {"thought": f"step {step} went fine"}, "think", "think")


def agent_usage(step: int) -> tuple[int, int]:
    return (100 + step, 10 + step % 7)


def title_for(key: str) -> str:
    return f"Bench {key}"


# -- the fake server process (--serve) ------------------------------------------------------


class Responder:
    """Answers every request after `delay` seconds, following `plan`; counts
    requests and tokens per conversation marker."""

    def __init__(self, delay: float, iterations: int, tools: str, jitter: float = 0.0) -> None:
        self.delay, self.iterations, self.tools, self.jitter = delay, iterations, tools, jitter
        self.random = random.Random(0)
        self.requests: Counter[str] = Counter()  # agent requests per key
        self.titles: Counter[str] = Counter()
        self.tokens: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.anomalies: list[str] = []

    def __call__(self, body: dict[str, Any]) -> Slow:
        messages = body["messages"]
        if str(messages[0].get("content") or "").startswith(TITLE_PREFIX):
            key = _marker(messages[1])
            self.titles[key] += 1
            reply: Text | ToolCall = Text(title_for(key), usage=TITLE_USAGE)
        else:
            key = _marker(next(m for m in messages if m["role"] == "user"))
            step = self.requests[key]
            self.requests[key] += 1
            seen = sum(1 for m in messages if m["role"] == "tool")
            if seen != step and len(self.anomalies) < 20:
                self.anomalies.append(f"{key}: request {step} carried {seen} tool results")
            chosen = plan(step, self.iterations, self.tools)
            reply = ToolCall(chosen.tool, chosen.arguments, usage=agent_usage(step))
        self.tokens[key][0] += reply.usage[0]
        self.tokens[key][1] += reply.usage[1]
        return Slow(self.delay * self.random.uniform(1 - self.jitter, 1 + self.jitter), reply)

    def stats(self) -> dict[str, Any]:
        return {
            "cpu": time.process_time(),
            "requests": sum(self.requests.values()),
            "titles": sum(self.titles.values()),
            "per_key": {key: [self.requests[key], self.titles[key], *self.tokens[key]] for key in self.tokens},
            "anomalies": self.anomalies,
        }


def _marker(message: dict[str, Any]) -> str:
    found = MARKER.search(json.dumps(message.get("content")))
    return found.group(1) if found else "?"


async def serve(delay: float, iterations: int, tools: str, jitter: float) -> None:
    """The --serve mode. Prints `PORT <n>`, then answers stdin commands
    `stats` (one JSON line) and `config <delay> <iterations>`; EOF ends it."""
    responder = Responder(delay, iterations, tools, jitter)
    async with FakeLLMServer(responder=responder) as server:
        print(f"PORT {server.port}", flush=True)
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            if line[0] == "stats":
                print(json.dumps(responder.stats()), flush=True)
            elif line[0] == "config":
                responder.delay, responder.iterations = float(line[1]), int(line[2])
                print("OK", flush=True)


class ServerProcess:
    """The parent's handle on the --serve subprocess."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.base_url = f"http://127.0.0.1:{port}/v1"

    @classmethod
    async def start(cls, args: argparse.Namespace) -> ServerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", "--delay", str(args.delay), "--iterations", str(args.iterations),
            "--tools", args.tools, "--jitter", str(args.jitter),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        first = (await process.stdout.readline()).decode().split()
        if first[:1] != ["PORT"]:
            raise RuntimeError(f"the fake server did not start (said {first!r})")
        return cls(process, int(first[1]))

    async def _ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return (await self.process.stdout.readline()).decode()

    async def stats(self) -> dict[str, Any]:
        return json.loads(await self._ask("stats"))

    async def configure(self, delay: float, iterations: int) -> None:
        await self._ask(f"config {delay} {iterations}")

    async def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


# -- instruments ---------------------------------------------------------------------------


class StallMeter:
    """A task sleeping TICK_SECONDS at a time; records how late each wake-up is."""

    def __init__(self, stacks_after_ms: float | None = None) -> None:
        self.lateness: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._stacks_after = stacks_after_ms / 1000 if stacks_after_ms is not None else None
        self.stacks: Counter[str] = Counter()  # where the event loop was, sampled while late
        self._last_wake = 0.0
        self._sampling = False
        self.collections: list[tuple[int, float]] = []  # (generation, seconds) of each garbage collection meanwhile
        self._collecting_since = 0.0

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._collecting_since = time.perf_counter()
        else:
            self.collections.append((info["generation"], time.perf_counter() - self._collecting_since))

    def collections_text(self) -> str:
        """How many garbage collections ran, and the longest (one cause of a stall)."""
        if not self.collections:
            return "no garbage collection"
        generation, longest = max(self.collections, key=lambda item: item[1])
        full = sum(1 for g, _ in self.collections if g == 2)
        return f"{len(self.collections)} garbage collections ({full} full), the longest {1000 * longest:.1f} ms (generation {generation})"

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK_SECONDS)
            self._last_wake = time.perf_counter()
            self.lateness.append(self._last_wake - before - TICK_SECONDS)

    def _sample_stalls(self, loop_thread: int) -> None:
        """A thread: every 5 ms, if the meter has not woken for longer than
        the threshold, note where the event loop's thread is (--stall-stacks)."""
        assert self._stacks_after is not None
        while self._sampling:
            time.sleep(0.005)
            if time.perf_counter() - self._last_wake > TICK_SECONDS + self._stacks_after:
                frame = sys._current_frames().get(loop_thread)
                if frame is not None:
                    entries = traceback.extract_stack(frame)[-6:]
                    self.stacks[" < ".join(f"{Path(e.filename).name}:{e.lineno} {e.name}" for e in reversed(entries))] += 1

    def stacks_text(self, top: int = 8) -> list[str]:
        total = sum(self.stacks.values())
        return [f"{100 * count / total:5.1f}%  {stack}" for stack, count in self.stacks.most_common(top)]

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick(), name="stall-meter")
        gc.callbacks.append(self._on_collection)
        self._last_wake = time.perf_counter()
        if self._stacks_after is not None:
            self._sampling = True
            threading.Thread(target=self._sample_stalls, args=(threading.get_ident(),), daemon=True).start()

    async def stop(self) -> None:
        assert self._task is not None
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)
        self._sampling = False
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def percentile_ms(self, fraction: float) -> float:
        if not self.lateness:
            return 0.0
        ordered = sorted(self.lateness)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def max_ms(self) -> float:
        return 1000 * max(self.lateness, default=0.0)

    def count_over(self, milliseconds: float) -> int:
        return sum(1 for late in self.lateness if late * 1000 > milliseconds)


class UpdateCounter:
    """A manager.subscribe callback: counts updates by type and keeps the
    event ids announced per conversation."""

    def __init__(self) -> None:
        self.by_type: Counter[str] = Counter()
        self.event_ids: dict[str, list[int]] = defaultdict(list)

    def __call__(self, update: Any) -> None:
        self.by_type[type(update).__name__] += 1
        event = getattr(update, "event", None)
        if event is not None:
            self.event_ids[update.conversation_id].append(event["id"])

    @property
    def total(self) -> int:
        return sum(self.by_type.values())


@dataclass(frozen=True)
class Usage:
    """Clocks and CPU counters at one moment."""

    wall: float
    process_cpu: float
    loop_thread_cpu: float  # the calling thread: the event loop's
    children_cpu: float
    workers_cpu: float  # the model worker processes' (running ones)

    @classmethod
    def now(cls) -> Usage:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(
            time.perf_counter(), time.process_time(), time.thread_time(), children.ru_utime + children.ru_stime,
            model_workers_cpu(),
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.wall - other.wall,
            self.process_cpu - other.process_cpu,
            self.loop_thread_cpu - other.loop_thread_cpu,
            self.children_cpu - other.children_cpu,
            self.workers_cpu - other.workers_cpu,
        )


def model_workers_cpu() -> float:
    """CPU seconds of the model worker processes running now, from /proc
    (they are this process's children, but not yet reaped)."""
    from convtui.backend import llm

    total = 0.0
    for worker in list(llm._model_workers._workers):
        with contextlib.suppress(OSError):
            with open(f"/proc/{worker.process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def rss_now_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class SlowCallbacks(logging.Handler):
    """Collects asyncio debug mode's 'Executing <handle> took N seconds'."""

    PATTERN = re.compile(r"Executing (.*) took (\d+\.\d+) seconds", re.S)

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.search(record.getMessage())
        if match:
            self.found.append((float(match.group(2)), match.group(1)))

    def take(self) -> list[tuple[float, str]]:
        found, self.found = self.found, []
        return sorted(found, reverse=True)


# -- one case ------------------------------------------------------------------------------


@dataclass
class CaseResult:
    loops: int
    usage: Usage
    start_seconds: float
    meter: StallMeter
    updates: UpdateCounter
    server: dict[str, Any]  # the stats delta: cpu, requests, titles
    appended: int
    problems: list[str]
    peak_rss: float
    rss: float
    traced_peak: float | None
    slow_callbacks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def llm_calls(self) -> int:
        return self.server["requests"] + self.server["titles"]

    def cpu_per_call_ms(self, seconds: float) -> float:
        return 1000 * seconds / max(1, self.llm_calls)


@dataclass
class Bench:
    service: Any
    manager: Any
    server: ServerProcess
    iterations: int
    tools: str
    slow: SlowCallbacks | None = None
    stall_stacks: float | None = None  # --stall-stacks MS


async def create_conversations(bench: Bench, tag: str, count: int) -> dict[str, str]:
    """Conversation id -> marker key, for `count` new conversations."""
    keys: dict[str, str] = {}
    for number in range(count):
        key = f"{tag}-{number}"
        message = f"[bench {key}] task {number}: note a few things, then finish."
        response = await bench.service.new_conversation({"initial_user_msg": message})
        keys[response.conversation_id] = key
    return keys


async def run_loops(bench: Bench, ids: list[str]) -> float:
    """Start every loop (side by side, as the UI starts the marked ones),
    wait for all; returns the seconds the starts took."""
    began = time.perf_counter()
    await asyncio.gather(*(bench.manager.start(conversation_id, until_idle=True) for conversation_id in ids))
    started = time.perf_counter() - began
    await asyncio.gather(*(bench.manager.wait(conversation_id) for conversation_id in ids))
    return started


def server_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {name: after[name] - before[name] for name in ("cpu", "requests", "titles")}


async def run_case(bench: Bench, loops: int, tag: str, traced: bool) -> CaseResult:
    keys = await create_conversations(bench, tag, loops)
    updates = UpdateCounter()
    unsubscribe = bench.manager.subscribe(updates)
    server_before = await bench.server.stats()
    gc.collect()
    if traced:
        tracemalloc.start()
    meter = StallMeter(bench.stall_stacks)
    meter.start()
    before = Usage.now()
    start_seconds = await run_loops(bench, list(keys))
    usage = Usage.now() - before
    await meter.stop()
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
    if traced:
        tracemalloc.stop()
    unsubscribe()
    server_after = await bench.server.stats()
    problems = list(server_after["anomalies"][len(server_before["anomalies"]) :])
    appended = 0
    for conversation_id, key in keys.items():
        events = await bench.service.search_events(conversation_id)
        appended += len(events) - 1
        problems += await check_conversation(bench, conversation_id, key, events, updates, server_after["per_key"])
    return CaseResult(
        loops=loops,
        usage=usage,
        start_seconds=start_seconds,
        meter=meter,
        updates=updates,
        server=server_delta(server_before, server_after),
        appended=appended,
        problems=problems,
        peak_rss=peak_rss_mb(),
        rss=rss_now_mb(),
        traced_peak=traced_peak,
        slow_callbacks=bench.slow.take() if bench.slow else [],
    )


# -- integrity -----------------------------------------------------------------------------


def expected_kinds(iterations: int, tools: str) -> list[str]:
    kinds = ["a:message"]
    for step in range(iterations):
        chosen = plan(step, iterations, tools)
        kinds += [f"a:{chosen.action}", f"o:{chosen.observation}"]
    return [*kinds, "a:finish"]


def kinds_of(events: list[dict[str, Any]]) -> list[str]:
    return [f"a:{e['action']}" if e.get("action") else f"o:{e.get('observation')}" for e in events]


def check_events(events: list[dict[str, Any]], iterations: int, tools: str) -> Iterator[str]:
    if kinds_of(events) != expected_kinds(iterations, tools):
        ended = events[-1].get("content") if events and events[-1].get("observation") == "agent_state_changed" else None
        yield f"sequence {' '.join(kinds_of(events))}" + (f" (ended: {ended})" if ended else "")
    if [event.get("id") for event in events] != list(range(len(events))):
        yield f"ids {[event.get('id') for event in events]}"
    for index, event in enumerate(events):
        if event.get("observation") is None:
            continue
        if index == 0 or event.get("cause") != events[index - 1].get("id"):
            yield f"event {event.get('id')}: cause {event.get('cause')} is not the action before it"
        if event["observation"] == "run" and exit_code_of(event) != 0:
            yield f"event {event.get('id')}: exit code {exit_code_of(event)}"


async def check_conversation(
    bench: Bench,
    conversation_id: str,
    key: str,
    events: list[dict[str, Any]],
    updates: UpdateCounter,
    per_key: dict[str, list[int]],
) -> list[str]:
    problems = list(check_events(events, bench.iterations, bench.tools))
    if updates.event_ids[conversation_id] != [event["id"] for event in events[1:]]:
        problems.append(f"subscribers saw events {updates.event_ids[conversation_id]}")
    requests, titles, prompt, completion = per_key.get(key, [0, 0, 0, 0])
    if (requests, titles) != (bench.iterations + 1, 1):
        problems.append(f"server saw {requests} agent and {titles} title requests")
    info = await bench.service.get(conversation_id)
    tokens = (info.prompt_tokens, info.completion_tokens, info.total_tokens)
    if tokens != (prompt, completion, prompt + completion):
        problems.append(f"metadata tokens {tokens}, server sent {(prompt, completion, prompt + completion)}")
    if info.agent_state is None or info.agent_state.value != "finished" or info.title != title_for(key):
        problems.append(f"agent state {info.agent_state}, title {info.title!r}")
    bash_steps = expected_kinds(bench.iterations, bench.tools).count("a:run")
    log_file = bench.service.data_dir.workspace(conversation_id) / "log.txt"
    lines = len(log_file.read_text().splitlines()) if log_file.exists() else 0
    if lines != bash_steps:
        problems.append(f"log.txt has {lines} lines, expected {bash_steps}")
    return [f"{conversation_id[:8]} ({key}): {problem}" for problem in problems]


# -- output --------------------------------------------------------------------------------


def _time_rows(r: CaseResult, iterations: int, delay: float) -> list[tuple[str, str]]:
    wall = r.usage.wall
    by_type = ", ".join(f"{name} {count}" for name, count in sorted(r.updates.by_type.items()))
    return [
        ("wall time", f"{wall:.2f} s (ideal (iterations+1) x delay = {(iterations + 1) * delay:.2f} s; "
                      f"starting the {r.loops} loops took {r.start_seconds:.2f} s)"),
        ("events appended", f"{r.appended} ({r.appended / wall:.1f}/s)"),
        ("subscriber updates", f"{r.updates.total} ({r.updates.total / wall:.1f}/s): {by_type}"),
        ("LLM requests served", f"{r.llm_calls} ({r.server['requests']} agent + {r.server['titles']} title)"),
        ("event-loop stall", f"max {r.meter.max_ms():.1f} ms, p99 {r.meter.percentile_ms(0.99):.1f} ms, "
                             f"p50 {r.meter.percentile_ms(0.5):.1f} ms; {len(r.meter.lateness)} ticks, "
                             f"{r.meter.count_over(STALL_GOAL_MS)} later than {STALL_GOAL_MS:.0f} ms"),
        ("garbage collection", r.meter.collections_text()),
    ]  # fmt: skip


def _resource_rows(r: CaseResult) -> list[tuple[str, str]]:
    usage, wall = r.usage, r.usage.wall
    per_call = r.cpu_per_call_ms
    traced = f", tracemalloc peak {r.traced_peak:.1f} MB" if r.traced_peak is not None else ""
    return [
        ("CPU per LLM call", f"{per_call(usage.process_cpu):.2f} ms this process "
                             f"(event-loop thread {per_call(usage.loop_thread_cpu):.2f} "
                             f"+ other threads {per_call(usage.process_cpu - usage.loop_thread_cpu):.2f}); "
                             f"+ workspace commands {per_call(usage.children_cpu):.2f}; "
                             f"model workers {per_call(usage.workers_cpu):.2f} ({100 * usage.workers_cpu / wall:.0f}% of one core); "
                             f"fake server (own process, not included) {per_call(r.server['cpu']):.2f}"),
        ("CPU use", f"this process {100 * usage.process_cpu / wall:.0f}% of one core, "
                    f"event-loop thread {100 * usage.loop_thread_cpu / wall:.0f}%"),
        ("memory", f"peak RSS so far {r.peak_rss:.0f} MB, RSS now {r.rss:.0f} MB{traced}"),
        ("integrity", "OK: every log, id, cause, token count and update as expected"
                      if not r.problems else f"{len(r.problems)} PROBLEMS"),
    ]  # fmt: skip


def print_case(result: CaseResult, iterations: int, delay: float) -> None:
    print(f"\n== {result.loops} loops x {iterations} iterations, {delay:g} s per LLM answer ==")
    for name, value in _time_rows(result, iterations, delay) + _resource_rows(result):
        print(f"  {name:<21}{value}")
    for problem in result.problems[:20]:
        print(f"    - {problem}")
    if result.meter.stacks:
        print(f"  where the event loop was while more than {result.meter._stacks_after * 1000:.0f} ms late (share of the samples):")
        for line in result.meter.stacks_text():
            print(f"    {line}")
    if result.slow_callbacks:
        print(f"  slowest callbacks ({len(result.slow_callbacks)} over the --slow-callback threshold):")
        for seconds, handle in result.slow_callbacks[:8]:
            print(f"    {1000 * seconds:7.1f} ms  {' '.join(handle.split())[:300]}")


def print_summary(
    results: list[CaseResult], iterations: int, delay: float, ratios: Path | None = None
) -> bool:
    """The table over all N and the goal line; returns whether the goal passed."""
    print("\n  loops   wall s  events/s  updates/s  stall max ms  p99 ms  CPU/call ms  peak RSS MB  integrity")
    for r in results:
        wall = r.usage.wall
        print(
            f"  {r.loops:5d} {wall:8.2f} {r.appended / wall:9.1f} {r.updates.total / wall:10.1f}"
            f" {r.meter.max_ms():13.1f} {r.meter.percentile_ms(0.99):7.1f}"
            f" {r.cpu_per_call_ms(r.usage.process_cpu):12.2f} {r.peak_rss:12.0f}"
            f"  {'OK' if not r.problems else f'{len(r.problems)} problems'}"
        )
    goal = next((r for r in results if r.loops == GOAL_LOOPS), None) or max(results, key=lambda r: r.loops)
    note = "" if goal.loops == GOAL_LOOPS else f" (the goals are set for {GOAL_LOOPS})"
    print(f"\ngoals at {goal.loops} loops{note} ({os.cpu_count()} cores):")
    goals = Goals(f"loops {goal.loops}", ratios)
    ideal = (iterations + 1) * delay
    goals.ratio("wall time", goal.usage.wall, "s", "the ideal (iterations+1) x delay", ideal, WALL_GOAL_RATIO)
    goals.limit("worst event-loop stall", goal.meter.max_ms(), "ms", STALL_GOAL_MS)
    return not goals.failed


# -- main ----------------------------------------------------------------------------------


def isolate_environment() -> None:
    """No developer settings or identity leak in (as in tests/conftest.py)."""
    for name in ("DATA_DIR", "LLM_MODEL", "LLM_API_KEY", "LLM_BASE_URL", "USER"):
        os.environ.pop(f"CONVTUI_{name}", None)


async def configure(service: Any, base_url: str, loops: int, iterations: int, model: str) -> None:
    await service.update_settings(
        {
            "llm_model": model,
            "llm_api_key": API_KEY,
            "llm_base_url": base_url,
            "llm_timeout": 120,
            "confirmation_mode": False,
            "max_concurrent_loops": max(WARM_UP_LOOPS, loops),
            "max_iterations": iterations + 1,
        }
    )


async def warm_up(bench: Bench, delay: float) -> None:
    """A few short loops (1 step, 50 ms answers, not checked), so the measured
    cases do not pay for importing litellm and for first calls."""
    await bench.server.configure(0.05, 1)
    meter = StallMeter()
    meter.start()
    began = time.perf_counter()
    keys = await create_conversations(bench, "warmup", WARM_UP_LOOPS)
    await run_loops(bench, list(keys))
    await meter.stop()
    await bench.server.configure(delay, bench.iterations)
    if bench.slow:
        bench.slow.take()
    seconds = time.perf_counter() - began
    print(f"warm-up (not counted): {seconds:.2f} s incl. importing litellm; worst stall {meter.max_ms():.0f} ms")


def install_slow_callback_log(milliseconds: float | None) -> SlowCallbacks | None:
    if milliseconds is None:
        return None
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = milliseconds / 1000
    handler = SlowCallbacks()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(handler)
    asyncio_log.propagate = False
    return handler


async def main_async(args: argparse.Namespace) -> int:
    from convtui.backend.manager import ConversationManager
    from convtui.backend.service import ConversationService

    isolate_environment()
    slow = install_slow_callback_log(args.slow_callback)
    server = await ServerProcess.start(args)
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="convtui-bench-loops-", dir=args.dir) as root:
        service = await ConversationService.open(Path(root) / "data", user_id="bench")
        manager = ConversationManager(service)
        bench = Bench(service, manager, server, args.iterations, args.tools, slow, args.stall_stacks)
        try:
            await configure(service, server.base_url, max(args.loops), args.iterations, args.model)
            print(
                f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; fake server in a separate process "
                f"at {server.base_url}; tools: {args.tools}; jitter {args.jitter:g}; data in {root}"
            )
            await warm_up(bench, args.delay)
            for loops in args.loops:
                result = await run_case(bench, loops, f"n{loops}", args.tracemalloc)
                print_case(result, args.iterations, args.delay)
                results.append(result)
        finally:
            await manager.shutdown()
            service.close()
            await server.close()
    passed = print_summary(results, args.iterations, args.delay, args.ratios)
    if any(result.problems for result in results):
        return 1
    return 0 if passed else 2


def positive_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not values or min(values) < 1 or max(values) > 1000:
        raise argparse.ArgumentTypeError("loop counts must be 1-1000")
    return values


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=positive_list, default=[10, 100, 200], help="loop counts (default 10,100,200)")
    parser.add_argument("--iterations", type=int, default=10, help="tool steps per loop before finish (default 10)")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds per fake LLM answer (default 1.0)")
    parser.add_argument("--tools", choices=("mixed", "bash"), default="mixed", help="tool mix (default mixed)")
    parser.add_argument("--jitter", type=float, default=0.0, help="each answer waits delay x U(1-J, 1+J) (default 0)")
    parser.add_argument("--model", default="openai/gpt-4o-mini", help="the model name sent (default openai/gpt-4o-mini)")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slow)")
    parser.add_argument("--slow-callback", type=float, metavar="MS", help="asyncio debug: list callbacks over MS")
    parser.add_argument(
        "--stall-stacks", type=float, metavar="MS",
        help="sample where the event loop's thread is whenever it is more than MS late (no debug mode)",
    )  # fmt: skip
    parser.add_argument("--dir", help="parent of the temporary data directory")
    parser.add_argument("--ratios", type=Path, default=None, metavar="FILE", help="also append the goals as JSON lines to FILE")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.iterations < 0 or args.iterations > 9_999 or args.delay < 0 or not 0 <= args.jitter <= 1:
        parser.error("--iterations must be 0-9999, --delay >= 0 and --jitter 0-1")
    return args


def main() -> None:
    args = parse_arguments()
    if args.serve:
        asyncio.run(serve(args.delay, args.iterations, args.tools, args.jitter))
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
