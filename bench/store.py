"""Benchmark: convtui's sharded conversation store against plain TinyDB.

Run on demand (not part of the test suite):

    .venv/bin/python bench/store.py                      # 1k, 10k and 100k conversations
    .venv/bin/python bench/store.py --sizes 1000,10000   # a quick run
    .venv/bin/python bench/store.py --repeat 100         # more samples per figure

For each size N the script seeds N realistic conversation documents (made by
`ConversationMetadata(...).to_document()`: 200 repositories with a few busy
ones and a long tail, several branches and triggers, some RUNNING and ERROR,
about 5% archived, activity spread over 60 days, titles from a small word
list). They are written straight to disk twice, in the formats each side
reads: the store's 256 shard files `meta-XX.json` and one plain TinyDB JSON
file (default JSONStorage layout, table "conversations").

Then, in the same run and on the same disk, it measures:

  convtui (`ConversationStore`)
    open              construct a fresh store (parses every shard), close it;
                      then again with the store's snapshot (store/snapshot.bin,
                      as a UI writes after its first paint): what a UI meets
    first search      the first filtered search after an open, which builds
                      the in-memory column index
    metadata write    `store.update()` renaming a random conversation, once
                      before the index is built (a CLI `rename`) and once
                      after (the UI)
    insert            `store.insert()` of a new conversation
    search pages      `store.search(filter, limit=20)` for several filters,
                      and the second page through the returned key
    refresh/version   `refresh()` when nothing changed, `refresh()` after a
                      second store instance on the same directory (standing
                      in for another process) renamed one conversation, and
                      `version()`
    (writes fsync the shard and its directory, and take the store's
    inter-process lock)
  plain TinyDB (`TinyDB(path)`, default JSONStorage, one file)
    open              `TinyDB(path)` plus `len(db.table("conversations"))`
    metadata write    `table.update({"title": ...}, Query().conversation_id == id)`
                      (JSONStorage rewrites the whole file and fsyncs it)
    search pages      `table.search(condition)` equivalent to the store's
                      filter, sorted newest first, first 20 kept; the query
                      cache is cleared before every sample (TinyDB re-reads
                      and re-parses the whole file on every query anyway)

Every figure is the median (p50) and 90th percentile (p90) of n samples,
timed with `time.perf_counter`; n is printed beside each figure. Plain
TinyDB gets fewer samples at large sizes (5 at 100k: each operation there
reads, and a write also rewrites, the whole file). The ratio column is
plain p50 / convtui p50: how many times faster the store is. Before timing,
the first page of every search is checked to be identical on both sides.

Everything happens in a temporary directory (`--dir` picks its parent;
choose a real disk, since writes fsync) that is removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

# Benchmark the code of this checkout, whatever is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import orjson  # noqa: E402
import tinydb  # noqa: E402
from ratios import Goals  # noqa: E402
from arguments import parse_sizes  # noqa: E402  (bench/, this script's directory)
from tinydb import Query, TinyDB  # noqa: E402

from convtui.backend.models import (  # noqa: E402
    ConversationMetadata,
    default_title,
    utc_now,
)
from convtui.backend.store_snapshot import SNAPSHOT_FILE  # noqa: E402
from convtui.backend.store import (  # noqa: E402
    SHARD_PREFIX,
    TABLE,
    ConversationFilter,
    ConversationStore,
    shard_of,
)

Document = dict[str, Any]
PAGE = 20
OPEN_SAMPLES = 5
SEED = 20240611

# -- targets (checked at 100k, or the largest size run) ---------------------------

TARGET_SIZE = 100_000
TARGET_WRITE = 0.005
TARGET_WRITE_RATIO = 0.01  # a metadata write: at most 1/100 of plain TinyDB's
TARGET_OPEN_RATIO = 0.5  # opening: at most half plain TinyDB's
TARGET_SEARCH = 0.030

# -- realistic data -----------------------------------------------------------------

OWNERS = ("acme", "globex", "initech", "hooli", "umbrella")
REPOSITORIES = [f"{OWNERS[k % len(OWNERS)]}/repo{k}" for k in range(200)]
REPOSITORY_WEIGHTS = [1 / (k + 1) for k in range(len(REPOSITORIES))]  # Zipf
COMMON_REPOSITORY = REPOSITORIES[0]
RARE_REPOSITORY = REPOSITORIES[-1]

VERBS = ("Fix", "Add", "Refactor", "Update", "Remove", "Investigate", "Document", "Speed up", "Test", "Migrate")
NOUNS = (
    "login page", "payment flow", "search index", "build script", "CI pipeline",
    "dark mode", "rate limiter", "cache layer", "API client", "onboarding",
    "settings screen", "export job", "webhook handler", "retry logic",
    "error messages", "README", "database schema", "auth tokens", "file upload",
    "notifications", "metrics dashboard", "release notes", "docker image",
)
RARE_WORD = "kafka"  # in about 1% of titles
RARE_NOUN = "kafka consumer"
MISSING_WORD = "zebra"  # in no document: a full scan
COMMON_WORD = "fix"  # a verb, and the prefix of some branches
QUALIFIERS = ("", "", "", " on mobile", " for v2", " in staging", " (flaky)", " again")
BRANCHES = ("main", "main", "main", "develop")
TRIGGERS = ("gui", "cli", "suggested_task", "replay", "openhands_api", "microagent_management")
TRIGGER_WEIGHTS = (50, 30, 8, 4, 5, 3)
STATUSES = ("STOPPED", "ERROR", "RUNNING", "STARTING")
STATUS_WEIGHTS = (95.4, 4.0, 0.5, 0.1)
MODELS = ("anthropic/claude-sonnet-4", "openai/gpt-5", "openai/gpt-5-mini", "gemini/gemini-2.5-pro")


def new_id(rng: random.Random) -> str:
    return uuid.UUID(int=rng.getrandbits(128), version=4).hex


def make_title(rng: random.Random, conversation_id: str) -> str:
    if rng.random() < 0.08:
        return default_title(conversation_id)  # never renamed
    noun = RARE_NOUN if rng.random() < 0.01 else rng.choice(NOUNS)
    return f"{rng.choice(VERBS)} {noun}{rng.choice(QUALIFIERS)}"


def make_branch(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.6:
        return rng.choice(BRANCHES)
    if roll < 0.85:
        return f"feature/task-{rng.randint(1, 5000)}"
    return f"fix/issue-{rng.randint(1, 5000)}"


def make_document(rng: random.Random, now: datetime) -> Document:
    conversation_id = new_id(rng)
    updated = now - timedelta(seconds=rng.uniform(0, 60 * 86400))
    status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
    running = status in ("RUNNING", "STARTING")
    prompt_tokens = rng.randint(0, 400_000)
    completion_tokens = rng.randint(0, 40_000)
    repository = rng.choices(REPOSITORIES, REPOSITORY_WEIGHTS)[0] if rng.random() < 0.9 else None
    return ConversationMetadata(
        conversation_id=conversation_id,
        title=make_title(rng, conversation_id),
        user_id="local",
        selected_repository=repository,
        selected_branch=make_branch(rng) if repository else None,
        git_provider="github" if repository else None,
        trigger=rng.choices(TRIGGERS, TRIGGER_WEIGHTS)[0],
        created_at=updated - timedelta(seconds=rng.uniform(0, 2 * 86400)),
        last_updated_at=updated,
        pr_number=[rng.randint(1, 9000)] if rng.random() < 0.15 else [],
        llm_model=rng.choice(MODELS),
        accumulated_cost=round(rng.uniform(0, 12), 4),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        status=status,
        runtime_status="STATUS$READY" if running else None,
        agent_state="running" if running else ("error" if status == "ERROR" else "finished"),
        status_message="LLM provider returned 529" if status == "ERROR" else None,
        runner_pid=rng.randint(1000, 60000) if running else None,
        runner_host="workstation" if running else None,
        archived=rng.random() < 0.05,
    ).to_document()


def make_documents(count: int, rng: random.Random) -> list[Document]:
    now = utc_now()
    return [make_document(rng, now) for _ in range(count)]


def write_store_shards(directory: Path, documents: Iterable[Document]) -> tuple[int, int]:
    """Bulk-write the store's shard files, in the format the store writes.
    Returns the bytes and the files written."""
    shards: dict[str, dict[str, Document]] = defaultdict(dict)
    for document in documents:
        table = shards[shard_of(document["conversation_id"])]
        table[str(len(table) + 1)] = document
    directory.mkdir(parents=True)
    total = 0
    for shard, table in shards.items():
        raw = orjson.dumps({TABLE: table})
        (directory / f"{SHARD_PREFIX}{shard}.json").write_bytes(raw)
        total += len(raw)
    return total, len(shards)


def write_plain_tinydb(path: Path, documents: list[Document]) -> int:
    """Write the file `TinyDB(path)` would hold after inserting `documents`
    (JSONStorage serialises with `json.dumps` and no options)."""
    table = {str(doc_id): document for doc_id, document in enumerate(documents, 1)}
    raw = json.dumps({TABLE: table})
    path.write_text(raw)
    return len(raw)


# -- measuring ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    samples: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        if len(self.samples) < 2:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=10, method="inclusive")[8]


def timed(action: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action(*args)
    return time.perf_counter() - start, result


def repeat(action: Callable[[], Any], count: int) -> Stats:
    """Time `action()` `count` times."""
    return Stats(tuple(timed(action)[0] for _ in range(count)))


def each(action: Callable[..., Any], arguments: Iterable[tuple]) -> Stats:
    """Time `action(*args)` once for each args (prepared before, so making
    them is not timed)."""
    return Stats(tuple(timed(action, *args)[0] for args in arguments))


def phase() -> None:
    """Start each phase from a clean heap, so one phase's garbage is not
    collected inside the next one's samples."""
    gc.collect()


@dataclass(frozen=True)
class SearchCase:
    key: str
    label: str
    query: ConversationFilter


SEARCH_CASES = (
    SearchCase("all", "no filter (not archived)", ConversationFilter()),
    SearchCase("repo", f"repository {COMMON_REPOSITORY} (busiest)", ConversationFilter(repository=COMMON_REPOSITORY)),
    SearchCase("repo_rare", f"repository {RARE_REPOSITORY} (rarest)", ConversationFilter(repository=RARE_REPOSITORY)),
    SearchCase("text", f"text {RARE_WORD!r}", ConversationFilter(text=RARE_WORD)),
    SearchCase("text_none", f"text {MISSING_WORD!r} (no match, full scan)", ConversationFilter(text=MISSING_WORD)),
    SearchCase("status", "status ERROR", ConversationFilter(status="ERROR")),
    SearchCase(
        "combined",
        f"repository {COMMON_REPOSITORY} + text {COMMON_WORD!r}",
        ConversationFilter(repository=COMMON_REPOSITORY, text=COMMON_WORD),
    ),
)
SECOND_PAGE_CASE = SEARCH_CASES[1]


def page_ids(documents: list[Document]) -> list[str]:
    return [document["conversation_id"] for document in documents]


@dataclass
class Figures:
    """What one side measured at one size: metric key -> samples."""

    stats: dict[str, Stats]
    notes: dict[str, str]


def renames(rng: random.Random, ids: list[str], count: int) -> list[tuple[str, str]]:
    """`count` (conversation id, new title) pairs for random conversations."""
    return [(rng.choice(ids), random_title(rng)) for _ in range(count)]


def random_title(rng: random.Random) -> str:
    return f"{rng.choice(VERBS)} {rng.choice(NOUNS)} #{rng.randint(1, 10**6)}"


def rename(title: str) -> Callable[[Document], Document]:
    def change(document: Document) -> Document:
        document["title"] = title
        return document

    return change


def bench_convtui(directory: Path, rng: random.Random, samples: int) -> Figures:
    stats: dict[str, Stats] = {}
    notes: dict[str, str] = {}
    first_query = SECOND_PAGE_CASE.query
    writes = 4 * samples

    phase()
    opens, first_searches = [], []
    for _ in range(OPEN_SAMPLES):
        seconds, store = timed(ConversationStore, directory)
        opens.append(seconds)
        first_searches.append(timed(store.search, first_query, PAGE)[0])
        store.close()
        del store
        phase()
    stats["open"] = Stats(tuple(opens))
    stats["first_search"] = Stats(tuple(first_searches))

    store = ConversationStore(directory)
    store.save_snapshot()  # as a UI does after its first paint, and the server every 10 minutes
    store.close()
    snapshot_opens = []
    for _ in range(OPEN_SAMPLES):
        seconds, store = timed(ConversationStore, directory)
        snapshot_opens.append(seconds)
        store.close()
        del store
        phase()
    stats["open_snapshot"] = Stats(tuple(snapshot_opens))
    (directory / SNAPSHOT_FILE).unlink()  # the rest as before

    store = ConversationStore(directory)
    ids = store.all_ids()

    def store_rename(conversation_id: str, title: str) -> None:
        store.update(conversation_id, rename(title))

    phase()
    stats["write_cold"] = each(store_rename, renames(rng, ids, writes))
    store.search(first_query, PAGE)  # builds the index

    phase()
    for case in SEARCH_CASES:
        stats[f"search:{case.key}"] = each(store.search, [(case.query, PAGE)] * samples)
    _, next_key = store.search(SECOND_PAGE_CASE.query, PAGE)
    stats["second_page"] = each(store.search, [(SECOND_PAGE_CASE.query, PAGE, next_key)] * samples)

    phase()
    stats["write"] = each(store_rename, renames(rng, ids, writes))
    now = utc_now()
    stats["insert"] = each(store.insert, [(make_document(rng, now),) for _ in range(writes)])

    phase()
    stats["version"] = repeat(store.version, 20 * samples)
    stats["refresh_idle"] = repeat(store.refresh, 20 * samples)
    stats["refresh_other"], missed = measure_refresh_after_other_writer(store, directory, ids, rng, samples)
    if missed:
        notes["refresh_other"] = f"WARNING: {missed} of {samples} renames not seen after refresh()"
    store.close()
    return Figures(stats, notes)


def measure_refresh_after_other_writer(
    store: ConversationStore, directory: Path, ids: list[str], rng: random.Random, samples: int
) -> tuple[Stats, int]:
    """Time `store.refresh()` right after a second store on the same directory
    renamed one conversation. Returns the samples and how many renames the
    refreshed store failed to see."""
    other = ConversationStore(directory)
    phase()
    times, missed = [], 0
    for conversation_id, title in renames(rng, ids, samples):
        other.update(conversation_id, rename(title))
        times.append(timed(store.refresh)[0])
        missed += store.get(conversation_id)["title"] != title
    other.close()
    return Stats(tuple(times)), missed


def tinydb_condition(query: ConversationFilter) -> Any:
    """The TinyDB Query that keeps what `query` keeps (for the filters this
    benchmark uses: status is compared as stored, which equals the store's
    display status when archived conversations are left out)."""
    q = Query()
    condition = q.noop()
    if query.archived is not None:
        condition &= q.archived == query.archived
    if query.repository is not None:
        condition &= q.selected_repository == query.repository
    if query.trigger is not None:
        condition &= q.trigger == query.trigger
    if query.status is not None:
        condition &= q.status == query.status
    for word in (query.text or "").lower().split():

        def contains(value: Any, word: str = word) -> bool:
            return value is not None and word in value.lower()

        matches = q.title.test(contains) | q.selected_repository.test(contains) | q.selected_branch.test(contains)
        if set(word) <= set("0123456789abcdef"):
            matches |= q.conversation_id.test(lambda value, word=word: value.startswith(word))
        condition &= matches
    return condition


def newest_first(documents: list[Document]) -> list[Document]:
    return sorted(documents, key=lambda d: (d["last_updated_at"], d["conversation_id"]), reverse=True)


def tinydb_page(db: TinyDB, query: ConversationFilter, start: int = 0) -> list[Document]:
    table = db.table(TABLE)
    table.clear_cache()
    return newest_first(table.search(tinydb_condition(query)))[start : start + PAGE]


def tinydb_open(path: Path) -> None:
    db = TinyDB(path)
    len(db.table(TABLE))
    db.close()


def bench_tinydb(path: Path, ids: list[str], rng: random.Random, samples: int) -> Figures:
    stats: dict[str, Stats] = {}
    phase()
    stats["open"] = each(tinydb_open, [(path,)] * samples)

    phase()
    db = TinyDB(path)
    for case in SEARCH_CASES:
        stats[f"search:{case.key}"] = each(tinydb_page, [(db, case.query)] * samples)

    phase()
    table = db.table(TABLE)

    def write(conversation_id: str, title: str) -> None:
        table.update({"title": title}, Query().conversation_id == conversation_id)

    stats["write"] = stats["write_cold"] = each(write, renames(rng, ids, samples))
    db.close()
    return Figures(stats, {})


def check_same_pages(directory: Path, path: Path) -> tuple[dict[str, float], list[str]]:
    """Search every case on both sides before anything is written. Returns
    each case's share of matching conversations and a list of mismatches."""
    store = ConversationStore(directory)
    db = TinyDB(path, access_mode="r")
    shares, problems = {}, []
    for case in SEARCH_CASES:
        ours = page_ids(store.search(case.query, PAGE)[0])
        theirs = page_ids(tinydb_page(db, case.query))
        shares[case.key] = store.count(case.query) / max(1, len(store))
        if ours != theirs:
            problems.append(f"first page of {case.label!r} differs")
    _, next_key = store.search(SECOND_PAGE_CASE.query, PAGE)
    ours = page_ids(store.search(SECOND_PAGE_CASE.query, PAGE, after=next_key)[0])
    if ours != page_ids(tinydb_page(db, SECOND_PAGE_CASE.query, start=PAGE)):
        problems.append("second page differs")
    db.close()
    store.close()
    return shares, problems


# -- reporting ------------------------------------------------------------------------

METRICS = (
    ("open", "open (construct, parse every shard)"),
    ("open_snapshot", "open with the store's snapshot"),
    ("first_search", "first filtered search (builds index)"),
    ("write_cold", "metadata write, index not built yet"),
    ("write", "metadata write, index built"),
    ("insert", "insert a new conversation"),
    *((f"search:{case.key}", f"page: {case.label}") for case in SEARCH_CASES),
    ("second_page", f"page 2 via next key: {SECOND_PAGE_CASE.label}"),
    ("refresh_idle", "refresh(), nothing changed"),
    ("refresh_other", "refresh() after another instance wrote 1"),
    ("version", "version()"),
)
FILTERED_SEARCHES = tuple(key for key, _ in METRICS if key.startswith("search:") and key != "search:all") + (
    "second_page",
)


LEGEND = """\
times: p50 (p90) over n samples; plain/convtui = plain p50 / convtui p50 (above 1: convtui is faster)
[x%]: share of all conversations the search matches (archived ones left out, as by default)
plain TinyDB: each open is a fresh TinyDB(path) + len(table); searches and writes share one TinyDB(path),
  its query cache cleared before every search (each query re-reads the whole file anyway); its single
  write figure is shown on both write rows; - = not measured (no such operation or same as another row)"""


def duration(seconds: float) -> str:
    """Three significant digits in µs, ms or s."""
    for scale, unit in ((1e-6, "µs"), (1e-3, "ms"), (1.0, "s")):
        value = seconds / scale
        if value < 1000 or unit == "s":
            decimals = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{decimals}f} {unit}"
    raise AssertionError("unreachable")


def cell(stats: Stats | None) -> tuple[str, str]:
    if stats is None:
        return "-", ""
    return f"{duration(stats.p50)} ({duration(stats.p90)})", str(stats.n)


def ratio(ours: Stats | None, plain: Stats | None) -> str:
    if ours is None or plain is None:
        return ""
    value = plain.p50 / ours.p50
    return f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x"


def print_table(ours: Figures, plain: Figures, shares: dict[str, float]) -> None:
    headers = ("metric", "convtui p50 (p90)", "n", "plain TinyDB p50 (p90)", "n", "plain/convtui")
    rows = []
    for key, label in METRICS:
        if key.startswith("search:"):
            label = f"{label} [{shares[key.split(':', 1)[1]]:.1%}]"
        mine, theirs = ours.stats.get(key), plain.stats.get(key)
        rows.append((label, *cell(mine), *cell(theirs), ratio(mine, theirs)))
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    aligns = ("<", ">", ">", ">", ">", ">")

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(f"{value:{align}{width}}" for value, align, width in zip(values, aligns, widths))

    print(line(headers))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print(line(row))
    for key, note in ours.notes.items():
        print(f"  {key}: {note}")


def check_targets(size: int, ours: Figures, plain: Figures, ratios: Path | None = None) -> None:
    """Goals as ratios to plain TinyDB in the same run (issue "Speed that
    holds on any box"), and the absolute ones beside."""
    stats, theirs = ours.stats, plain.stats
    labels = dict(METRICS)
    write_key = max(("write_cold", "write"), key=lambda k: stats[k].p50)
    search_key = max(FILTERED_SEARCHES, key=lambda k: stats[k].p50)
    where = f"{size:,} conversations" + ("" if size == TARGET_SIZE else f" (targets are set for {TARGET_SIZE:,})")
    print(f"\nGoals at {where} ({os.cpu_count()} cores):")
    goals = Goals(f"store {size:,}", ratios)
    goals.ratio(f"metadata write p50 ({labels[write_key]})", stats[write_key].p50 * 1000, "ms", "plain TinyDB", theirs["write"].p50 * 1000, TARGET_WRITE_RATIO)
    goals.limit("metadata write p50 (a quiet box)", stats[write_key].p50 * 1000, "ms", TARGET_WRITE * 1000)
    goals.ratio("open p50 (with the snapshot)", stats["open_snapshot"].p50, "s", "plain TinyDB", theirs["open"].p50, TARGET_OPEN_RATIO)
    goals.ratio("open p50 (no snapshot)", stats["open"].p50, "s", "plain TinyDB", theirs["open"].p50, TARGET_OPEN_RATIO)
    goals.limit(f"filtered sorted search page p50 ({labels[search_key]})", stats[search_key].p50 * 1000, "ms", TARGET_SEARCH * 1000)


# -- main -----------------------------------------------------------------------------


def plain_samples(size: int, samples: int) -> int:
    """Plain TinyDB reads the whole file per operation (~0.5-1 s at 100k):
    at least 5 samples, fewer as the file grows."""
    return min(samples, max(5, 200_000 // size))


def run_size(root: Path, size: int, samples: int) -> tuple[Figures, Figures]:
    rng = random.Random(SEED + size)
    workdir = root / f"n{size}"
    store_dir, plain_path = workdir / "store", workdir / "plain.json"

    phase()
    started = time.perf_counter()
    documents = make_documents(size, rng)
    store_bytes, shard_count = write_store_shards(store_dir, documents)
    plain_bytes = write_plain_tinydb(plain_path, documents)
    seconds = time.perf_counter() - started
    ids = [document["conversation_id"] for document in documents]
    del documents

    print(f"\n=== {size:,} conversations ===")
    print(
        f"seeded in {seconds:.1f} s: store {store_bytes / 1e6:.1f} MB in {shard_count} shards, "
        f"plain TinyDB file {plain_bytes / 1e6:.1f} MB"
    )
    shares, problems = check_same_pages(store_dir, plain_path)
    for problem in problems:
        print(f"WARNING: convtui and plain TinyDB disagree: {problem}")
    if not problems:
        print("first pages of every search identical in convtui and plain TinyDB")

    ours = bench_convtui(store_dir, rng, samples)
    plain = bench_tinydb(plain_path, ids, rng, plain_samples(size, samples))
    print()
    print_table(ours, plain, shares)
    shutil.rmtree(workdir)
    return ours, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[1_000, 10_000, 100_000], help="e.g. 1000,10000")
    parser.add_argument(
        "--repeat",
        type=int,
        default=50,
        help="samples per convtui search/refresh figure (writes and inserts take 4x, version() 20x; default 50)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary directory (a real disk)")
    parser.add_argument("--ratios", type=Path, default=None, metavar="FILE", help="also append the goals as JSON lines to FILE")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    started = time.perf_counter()
    print(
        f"convtui store vs plain TinyDB {tinydb.__version__} (JSONStorage) | Python {platform.python_version()} | "
        f"{platform.system()} {platform.machine()} | {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="convtui-bench-", dir=args.dir) as temporary:
        print(f"working in {temporary} (removed at the end)")
        print(LEGEND)
        results = {size: run_size(Path(temporary), size, args.repeat) for size in args.sizes}
    size = TARGET_SIZE if TARGET_SIZE in results else max(results)
    check_targets(size, *results[size], args.ratios)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
