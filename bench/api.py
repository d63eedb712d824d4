"""Benchmark: `convtui serve`'s REST API and live stream, with their
baselines measured in the same run.

Run on demand (not part of the test suite):

    .venv/bin/python bench/api.py                    # 100,000 conversations, 200 loops
    .venv/bin/python bench/api.py --size 10000 --loops 50 --samples 100   # a quick run

Setup. A temporary data directory seeded with --size conversations (bench/store.py's
realistic documents, written as the store's shard files), then a real
`convtui serve --host 127.0.0.1` process, as a user starts it. Requests go
through httpx over the unix socket and over TCP (with the bearer token).

Measured, each the median (p50) and p99 of --samples requests after a warm-up:
  no-op            GET /api/health: the round trip of a request that does nothing
                   (the baseline of the page and the write)
  first page       GET /api/conversations?limit=20 (the list's first screen)
  PATCH title      PATCH /api/conversations/{id} on random conversations
  store write      ConversationStore.update of a title in this process, on the same
                   data directory, its column index built as the server's is (the
                   baseline of the PATCH: the same work, fsyncs and lock)
  stream latency   with --loops loops working (a fake OpenAI server in its own process
                   answers each call after --delay s with a tool call, confirmation off),
                   for every event the stream delivers: the time it arrived here minus
                   the event's timestamp (set when the server appended it)
  server RSS       of the server process after the first page (VmRSS)

Goals (issue "convtui serve"), each against its baseline in this run:
  first page p50 <= 3x the no-op p50, and <= 20 ms on a quiet box;
  PATCH p50 <= 2x the store write p50; stream latency p50 <= 17 ms (one frame);
  server RSS <= 250 MiB at 100,000.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import orjson  # noqa: E402
from ratios import Goals  # noqa: E402
from store import make_documents, write_store_shards  # noqa: E402  (bench/store.py)

from convtui.backend.client import socket_client, socket_transport  # noqa: E402
from convtui.backend.server import server_status  # noqa: E402
from convtui.backend.settings import SettingsStore  # noqa: E402
from convtui.backend.store import ConversationFilter, ConversationStore  # noqa: E402

API_KEY = "sk-bench-api-0123456789"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed_requests(send, count: int) -> list[float]:  # noqa: ANN001
    samples = []
    for index in range(count):
        started = time.perf_counter()
        response = send(index)
        samples.append(time.perf_counter() - started)
        if response.status_code >= 400:
            raise RuntimeError(f"{response.request.method} {response.request.url} answered {response.status_code}: {response.text[:200]}")
    return samples


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_fake_model(delay: float, iterations: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "loops.py"), "--serve", "--delay", str(delay),
         "--iterations", str(iterations), "--tools", "bash", "--jitter", "0.5"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    first = process.stdout.readline().split()
    if first[:1] != ["PORT"]:
        raise RuntimeError(f"the fake model did not start (said {first!r})")
    return process, f"http://127.0.0.1:{first[1]}/v1"


def row(name: str, samples: list[float]) -> tuple[str, float, float]:
    return name, statistics.median(samples) * 1000, percentile(samples, 0.99) * 1000


async def stream_latency(base: str, headers: dict, transport: httpx.AsyncHTTPTransport | None, seconds: float) -> list[float]:
    from httpx_sse import aconnect_sse

    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, headers=headers, transport=transport, timeout=None) as client:
        try:
            async with asyncio.timeout(seconds):
                async with aconnect_sse(client, "GET", "/api/updates") as source:
                    async for message in source.aiter_sse():
                        if message.event != "update":
                            continue
                        arrived = time.time()
                        update = orjson.loads(message.data)
                        if update["type"] == "event" and update["event"].get("timestamp"):
                            appended = datetime.fromisoformat(update["event"]["timestamp"]).timestamp()
                            latencies.append(arrived - appended)
        except TimeoutError:
            pass
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="conversations in the store (default 100,000)")
    parser.add_argument("--samples", type=int, default=300, help="requests per figure (default 300)")
    parser.add_argument("--loops", type=int, default=200, help="loops working while the stream is measured (0: skip)")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds per fake model answer (default 1)")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the stream is measured (default 15)")
    parser.add_argument("--dir", help="parent of the temporary data directory")
    parser.add_argument("--sandbox", choices=("on", "off"), default="on", help="the loops' commands sandboxed (default on)")
    parser.add_argument("--ratios", type=Path, default=None, metavar="FILE", help="also append the goals as JSON lines to FILE")
    args = parser.parse_args()
    for name in ("DATA_DIR", "LLM_MODEL", "LLM_API_KEY", "LLM_BASE_URL", "USER", "SERVER"):
        os.environ.pop(f"CONVTUI_{name}", None)

    workdir = Path(tempfile.mkdtemp(prefix="convtui-bench-api-", dir=args.dir))
    data_dir = workdir / "data"
    rng = random.Random(20261203)
    server = model = None
    try:
        print(f"box: {os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}")
        started = time.perf_counter()
        documents = make_documents(args.size, rng)
        write_store_shards(data_dir / "store", documents)
        ids = [document["conversation_id"] for document in documents]
        print(f"seeded {args.size:,} conversations in {time.perf_counter() - started:.1f} s")
        model, model_url = start_fake_model(args.delay, 9_999)
        SettingsStore(data_dir / "settings.json").update(
            {"llm_model": "openai/fake-model", "llm_api_key": API_KEY, "llm_base_url": model_url,
             "confirmation_mode": False, "max_concurrent_loops": max(1, args.loops), "max_iterations": 10_000,
             "sandbox": args.sandbox == "on",
             "llm_timeout": 120}
        )  # fmt: skip
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "CONVTUI_USER": documents[0]["user_id"] or ""},  # the owner of the seeded rows
        )  # fmt: skip
        started = time.perf_counter()
        while server_status(data_dir) is None:
            if server.poll() is not None or time.perf_counter() - started > 120:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        print(f"server up in {time.perf_counter() - started:.2f} s")
        token = (data_dir / "server.token").read_text().strip()
        socket_path = server_status(data_dir)["socket"]
        clients = {
            "unix socket": socket_client(Path(socket_path), 60.0),
            "TCP": httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}),
        }
        results: dict[str, list[tuple[str, float, float]]] = {}
        rss = None
        for name, client in clients.items():
            timed_requests(lambda _: client.get("/api/health"), 30)  # warm-up: connections, caches, the index
            timed_requests(lambda _: client.get("/api/conversations", params={"limit": 20}), 30)
            noop = timed_requests(lambda _: client.get("/api/health"), args.samples)
            page = timed_requests(lambda _: client.get("/api/conversations", params={"limit": 20}), args.samples)
            if rss is None:
                rss = rss_mib(server.pid)
            targets = rng.sample(ids, args.samples)
            patch = timed_requests(
                lambda i: client.patch(f"/api/conversations/{targets[i]}", json={"title": f"Bench title {i} {name}"}),
                args.samples,
            )
            results[name] = [row("no-op GET /api/health", noop), row("first page", page), row("PATCH title", patch)]

        store = ConversationStore(data_dir / "store")
        store.search(ConversationFilter(), 20, None, {})  # the column index built, as in the server
        writes = []
        for index, conversation_id in enumerate(rng.sample(ids, min(args.samples, 100))):
            def rename(document: dict, index: int = index) -> dict:
                return {**document, "title": f"Store title {index}"}

            started = time.perf_counter()
            store.update(conversation_id, rename)
            writes.append(time.perf_counter() - started)
        store.close()
        store_write = row("store write (this process)", writes)

        latencies: list[float] = []
        if args.loops:
            client = clients["unix socket"]
            loop_ids = []
            for index in range(args.loops):
                created = client.post("/api/conversations", json={"initial_user_msg": f"[bench api{index}] work"})
                loop_ids.append(created.json()["conversation_id"])
            for conversation_id in loop_ids:
                client.post(f"/api/conversations/{conversation_id}/start", json={})
            time.sleep(2 * args.delay)  # every loop is past its first model call
            running = len(client.get("/api/server").json()["running"])
            transport = socket_transport(Path(socket_path))
            latencies = asyncio.run(stream_latency("http://convtui", {}, transport, args.seconds))
            print(f"stream: {len(latencies):,} events from {running} running loops in {args.seconds:g} s")

        print()
        print(f"{'figure':<34}{'transport':<13}{'p50 ms':>9}{'p99 ms':>9}")
        for name, rows in results.items():
            for figure, p50, p99 in rows:
                print(f"{figure:<34}{name:<13}{p50:>9.2f}{p99:>9.2f}")
        print(f"{store_write[0]:<34}{'-':<13}{store_write[1]:>9.2f}{store_write[2]:>9.2f}")
        if latencies:
            print(f"{'stream latency (event appended → here)':<34}{'unix socket':<13}"
                  f"{statistics.median(latencies) * 1000:>9.2f}{percentile(latencies, 0.99) * 1000:>9.2f}")  # fmt: skip
        print(f"server RSS after the first page: {rss:.0f} MiB")

        print()
        print(f"goals (ratios to baselines of this run; {os.cpu_count()} cores):")
        goals = Goals(f"api {args.size:,}", args.ratios)
        for name, rows in results.items():
            noop_p50, page_p50, patch_p50 = rows[0][1], rows[1][1], rows[2][1]
            goals.ratio(f"first page p50 ({name})", page_p50, "ms", "a no-op request", noop_p50, 3.0)
            goals.limit(f"first page p50 ({name})", page_p50, "ms", 20.0)
            goals.ratio(f"PATCH title p50 ({name})", patch_p50, "ms", "the store's write", store_write[1], 2.0)
        if latencies:
            goals.limit(f"stream latency p50 ({args.loops} loops)", statistics.median(latencies) * 1000, "ms", 17.0)
        if args.size >= 100_000:
            goals.limit("server RSS", rss, "MiB", 250.0)
        failed = goals.failed
        return 0 if not failed else 2
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        if model is not None:
            model.stdin.close()
            model.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
