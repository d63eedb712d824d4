"""Benchmark: search by what a conversation did (`text:`, `file:`, `cmd:`),
with its baselines measured in the same run.

Run on demand (not part of the test suite):

    .venv/bin/python bench/search.py                        # 10,000 and 100,000 conversations
    .venv/bin/python bench/search.py --sizes 10000 --events 20   # a quick run

Setup, for each size N: N realistic conversations (bench/store.py's
documents, written as the store's shard files) with --events events each
(a user message, then agent steps: commands with their outputs, file reads
and edits, messages; words from a vocabulary of a few thousand with a long
tail, paths from a few hundred files), indexed into a fresh search index as
conversations' appends would (one transaction per conversation).

Measured (p50 and p99 of --samples queries after a warm-up, each a new
word, path or command, through ConversationService.list_ids as the UI's
list calls it: every matching id, more than the API's first page):
  index build      seconds to index every event; the index's size on disk
  text: page       the first page (20) for a word of middling frequency
  file: page       the same for a path
  cmd: page        the same for a command
  metadata page    the list for a title word in a repository (no index), a new
                   repository each time (not an answer the store kept): the baseline
  append           EventLog.append of one event, without and with the index
                   following it (the index's cost added per append)

Goals (issue "What needs me"): a `text:` first page <= 200 ms p50 at
100,000 on a quiet box, and <= 10x the metadata page of the same run; the
index's cost per append <= half the append's own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
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
from store import make_documents, write_store_shards  # noqa: E402  (bench/store.py)

from convtui.backend.events import EventLog  # noqa: E402
from convtui.backend.search_index import INDEX_FILE, SearchIndex  # noqa: E402
from convtui.backend.service import ConversationService  # noqa: E402
from convtui.backend.store import ConversationFilter  # noqa: E402

STEMS = ["pars", "rend", "cach", "auth", "pay", "quer", "index", "stream", "token", "sched", "build", "deploy"]
ENDINGS = ["er", "ing", "ed", "ment", "ion", "s", "able", "ity", "or", "y"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words = {f"{rng.choice(STEMS)}{rng.choice(ENDINGS)}{rng.randrange(size)}" for _ in range(size * 2)}
    return sorted(words)[:size]


def zipf_choice(rng: random.Random, items: list[str]) -> str:
    """Mostly the first items, with a long tail."""
    return items[min(len(items) - 1, int(rng.paretovariate(1.1)) - 1)]


def make_events(rng: random.Random, words: list[str], paths: list[str], count: int) -> list[dict]:
    def sentence(length: int) -> str:
        return " ".join(zipf_choice(rng, words) if rng.random() < 0.5 else rng.choice(words) for _ in range(length))

    events = [{"source": "user", "action": "message", "message": sentence(12), "args": {"content": sentence(12)}}]
    while len(events) < count:
        kind = rng.random()
        path = f"/workspace/{zipf_choice(rng, paths)}"
        if kind < 0.4:
            command = f"{rng.choice(['pytest -x', 'npm test', 'grep -rn', 'make', 'cargo build', 'ls -la'])} {rng.choice(words)}"
            events.append({"source": "agent", "action": "run", "message": f"Running {command}", "args": {"command": command, "thought": sentence(8)}})
            events.append({"source": "agent", "observation": "run", "content": sentence(40), "extras": {"command": command, "metadata": {"exit_code": 0}}})
        elif kind < 0.7:
            events.append({"source": "agent", "action": "read", "message": f"Reading {path}", "args": {"path": path}})
            events.append({"source": "agent", "observation": "read", "content": sentence(60), "extras": {"path": path}})
        elif kind < 0.9:
            events.append({"source": "agent", "action": "edit", "message": f"Editing {path}",
                           "args": {"command": "str_replace", "path": path, "old_str": sentence(5), "new_str": sentence(5)}})  # fmt: skip
        else:
            events.append({"source": "agent", "action": "message", "message": sentence(20), "args": {"content": sentence(20)}})
    for number, event in enumerate(events[:count]):
        event["id"] = number
    return events[:count]


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(action, samples: int) -> list[float]:  # noqa: ANN001
    action()  # warm-up
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times


def run_size(root: Path, size: int, events_per: int, samples: int, rng: random.Random) -> dict[str, list[float] | float]:
    data_dir = root / f"data-{size}"
    documents = make_documents(size, rng)
    write_store_shards(data_dir / "store", documents)
    words = vocabulary(rng, 5000)
    paths = [f"src/{rng.choice(STEMS)}{n}/{rng.choice(STEMS)}_{n}.py" for n in range(400)]
    index = SearchIndex(data_dir / INDEX_FILE)
    started = time.perf_counter()
    for document in documents:
        index.add(document["conversation_id"], make_events(rng, words, paths, events_per))
    build = time.perf_counter() - started
    index.close()
    size_on_disk = sum(path.stat().st_size for path in data_dir.glob(f"{INDEX_FILE}*"))

    service = asyncio.run(ConversationService.open(data_dir, user_id=documents[0]["user_id"]))
    try:
        service.store.warm()
        middling = words[len(words) // 3 : len(words) // 3 + samples + 1]  # a new word each time: no answer is reused
        title_words = sorted({document["title"].split()[0].lower() for document in documents})
        repositories = sorted({document["selected_repository"] for document in documents if document.get("selected_repository")})
        turn = iter(range(10**9))

        def page(query: ConversationFilter) -> None:
            asyncio.run(service.list_ids(query))

        def nth(items: list[str]) -> str:
            return items[next(turn) % len(items)]

        figures: dict[str, list[float] | float] = {
            "text: page": timed(lambda: page(ConversationFilter(event_words=nth(middling))), samples),
            "file: page": timed(lambda: page(ConversationFilter(event_path=nth(paths))), samples),
            "cmd: page": timed(lambda: page(ConversationFilter(event_command=f"grep -rn {nth(middling)}")), samples),
            # a title word in one repository, a new repository each time: the store keeps
            # its last 16 answers, and a new filter is what this baseline is for
            "metadata page": timed(
                lambda: page(ConversationFilter(text=nth(title_words), repository=nth(repositories))), samples
            ),
            "build s": build,
            "index MiB": size_on_disk / 2**20,
        }
        found = len(asyncio.run(service.list_ids(ConversationFilter(event_words=middling[0]))))
        figures["text: matches"] = float(found)

        plain = EventLog(data_dir / "append-plain")
        followed_index = SearchIndex(data_dir / INDEX_FILE)
        followed = EventLog(data_dir / "append-indexed", appended=lambda stored: followed_index.add("f" * 32, stored))
        event = make_events(rng, words, paths, 2)[1]
        figures["append"] = timed(lambda: plain.append([dict(event)]), samples * 5)
        figures["append + index"] = timed(lambda: followed.append([dict(event)]), samples * 5)
        followed_index.close()
    finally:
        service.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="conversation counts, comma-separated")
    parser.add_argument("--events", type=int, default=50, help="events per conversation (default 50)")
    parser.add_argument("--samples", type=int, default=50, help="queries per figure (default 50)")
    parser.add_argument("--dir", help="parent of the temporary directory")
    parser.add_argument("--ratios", type=Path, default=None, metavar="FILE", help="also append the goals as JSON lines to FILE")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="convtui-bench-search-", dir=args.dir))
    rng = random.Random(20261203)
    failed = 0
    try:
        print(f"box: {os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}")
        for size in (int(size) for size in args.sizes.split(",")):
            figures = run_size(root, size, args.events, args.samples, rng)
            print(f"\n{size:,} conversations × {args.events} events: index built in {figures['build s']:.1f} s, "
                  f"{figures['index MiB']:.0f} MiB on disk; the text: word matches {figures['text: matches']:.0f}")  # fmt: skip
            print(f"{'figure':<18}{'p50 ms':>9}{'p99 ms':>9}")
            for name in ("text: page", "file: page", "cmd: page", "metadata page", "append", "append + index"):
                samples = figures[name]
                print(f"{name:<18}{statistics.median(samples) * 1000:>9.2f}{percentile(samples, 0.99) * 1000:>9.2f}")
            text = statistics.median(figures["text: page"]) * 1000
            metadata = statistics.median(figures["metadata page"]) * 1000
            append = statistics.median(figures["append"]) * 1000
            added = statistics.median(figures["append + index"]) * 1000 - append
            print(f"goals at {size:,} (ratios to baselines of this run; {os.cpu_count()} cores):")
            goals = Goals(f"search {size:,}", args.ratios)
            goals.ratio("text: page p50", text, "ms", "metadata page", metadata, 10.0)
            goals.ratio("index cost per append", added, "ms", "the append itself", append, 0.5)
            if size >= 100_000:
                goals.limit("text: page p50", text, "ms", 200.0)
            failed += goals.failed
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
