"""What the gateway adds on top of talking to vLLM directly: latency (sequential requests,
alternating direct / through the gateway) and throughput (concurrent requests), with the
gateway as deployed (request log on, PII scrubbing on).

    .venv/bin/python bench/gateway_overhead.py --requests 300 --concurrency 32

Needs the serving environment (`make serve-env`). Starts vLLM's CPU build with a tiny chat
model and the gateway in front of it; the load generator runs in this process (aiohttp).
On a 2-core machine all three share the cores, so the throughput ratio is a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DOMAINLLM_VLLM_PYTHON", str(Path(__file__).resolve().parent.parent / ".venv-serve/bin/python"))

import aiohttp  # noqa: E402

from domainllm.serve.gateway.auth import add_key  # noqa: E402
from domainllm.serve.gateway.ids import new_signing_secret  # noqa: E402
from domainllm.serve.gateway.routes import Route, write_routes  # noqa: E402
from domainllm.serve.vllm_server import VllmServer, free_port  # noqa: E402
from tests.lib.evals.vllm_helpers import tiny_chat_model  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def one(session: aiohttp.ClientSession, url: str, body: dict) -> tuple[float, int]:
    t0 = time.perf_counter()
    async with session.post(url, json=body) as resp:
        data = await resp.read()
        assert resp.status == 200, data[:300]
    return (time.perf_counter() - t0) * 1000, json.loads(data)["usage"]["completion_tokens"]


HEADERS: dict[str, str] = {}
"""The bench key's `Authorization` (vLLM ignores it; the gateway needs it)."""


async def latency(direct: str, gateway: str, n: int) -> dict[str, list[float]]:
    body = {"model": "tiny", "prompt": "sub hello {", "max_tokens": 1, "temperature": 0}
    out: dict[str, list[float]] = {"direct": [], "gateway": []}
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        for _ in range(10):  # warm both paths
            await one(session, direct, body)
            await one(session, gateway, body)
        for i in range(n):
            order = [("direct", direct), ("gateway", gateway)] if i % 2 == 0 else [("gateway", gateway), ("direct", direct)]
            for name, url in order:
                out[name].append((await one(session, url, body))[0])
    return out


async def throughput(url: str, n: int, concurrency: int, max_tokens: int) -> tuple[float, float]:
    body = {"model": "tiny", "prompt": "my %h = (", "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}
    sem = asyncio.Semaphore(concurrency)
    tokens = 0

    async def go(session: aiohttp.ClientSession) -> None:
        nonlocal tokens
        async with sem:
            _, got = await one(session, url, body)
            tokens += got

    async with aiohttp.ClientSession(headers=HEADERS, connector=aiohttp.TCPConnector(limit=0)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(go(session) for _ in range(n)))
        wall = time.perf_counter() - t0
    return n / wall, tokens / wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-scrub-pii", action="store_true", help="the gateway without PII scrubbing of its log")
    ap.add_argument("--pin", action="store_true",
                    help="as deployed: the gateway on a core of its own (CPU 1), vLLM and the load generator on CPU 0")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_chat_model(Path(tmp) / "m")
        server = VllmServer(model, served_name="tiny", extra_args=["--max-model-len", "512"], log_path=f"{tmp}/vllm.log",
                            env={"VLLM_CPU_OMP_THREADS_BIND": "0"} if args.pin else None)  # fmt: skip
        if args.pin:
            os.sched_setaffinity(0, {0})  # this process and the vLLM processes it starts
        with server:
            routes, port = Path(tmp) / "routes.json", free_port()
            write_routes(routes, [Route("stable", server.base_url, "1", 100)])
            pin = ["taskset", "-c", "1"] if args.pin else []
            keys, secret = Path(tmp) / "keys.json", Path(tmp) / "signing.secret"
            key = add_key(keys, "bench", limits={"requests_per_minute": 10**6, "concurrency": 4096, "requests_per_day": 10**9,
                                                 "tokens_per_day": 10**12})  # fmt: skip
            HEADERS["Authorization"] = f"Bearer {key}"
            new_signing_secret(secret)
            gw = subprocess.Popen([*pin, sys.executable, "-m", "domainllm", "serve", "gateway", "--routes", str(routes), "--log-root",
                                   f"{tmp}/logs", "--port", str(port), "--admin-port", str(free_port()), "--keys", str(keys),
                                   "--signing-secret", str(secret), *(["--no-scrub-pii"] if args.no_scrub_pii else [])])  # fmt: skip
            try:
                for _ in range(100):
                    try:
                        import urllib.request

                        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                        break
                    except OSError:
                        time.sleep(0.2)
                direct, gateway = f"{server.base_url}/completions", f"http://127.0.0.1:{port}/v1/completions"
                lat = asyncio.run(latency(direct, gateway, args.requests))
                d50, g50 = statistics.median(lat["direct"]), statistics.median(lat["gateway"])
                print(f"latency, {args.requests} sequential requests (max_tokens 1), ms:")
                for name in ("direct", "gateway"):
                    v = lat[name]
                    print(f"  {name:8s} p50 {statistics.median(v):7.2f}  p90 {pct(v, 90):7.2f}  p99 {pct(v, 99):7.2f}")
                print(f"  added by the gateway: p50 {g50 - d50:+.2f} ms")
                rows: dict[str, list] = {"direct": [], "gateway": []}
                asyncio.run(throughput(direct, args.requests, args.concurrency, args.max_tokens))  # warm-up: vLLM's batch shapes
                writer = children(gw.pid)
                cpu0, wcpu0, served = cpu_seconds(gw.pid), sum(cpu_seconds(w) for w in writer), 0
                for _ in range(args.rounds):  # alternate, keep each side's best round
                    for name, url in (("direct", direct), ("gateway", gateway)):
                        rows[name].append(asyncio.run(throughput(url, args.requests, args.concurrency, args.max_tokens)))
                        served += args.requests if name == "gateway" else 0
                best = {k: max(v) for k, v in rows.items()}
                print(f"throughput, {args.requests} requests x {args.max_tokens} tokens, {args.concurrency} concurrent (best of {args.rounds}):")
                for name, (rps, tps) in best.items():
                    print(f"  {name:8s} {rps:7.1f} req/s  {tps:8.0f} tok/s")
                print(f"  gateway / direct: {best['gateway'][0] / best['direct'][0]:.1%}")
                time.sleep(5)  # let the log writer catch up
                print(f"CPU per request: gateway {(cpu_seconds(gw.pid) - cpu0) / served * 1000:.2f} ms, its log writer "
                      f"{(sum(cpu_seconds(w) for w in writer) - wcpu0) / served * 1000:.2f} ms")
                logged = sum(len(f.read_text().splitlines()) for f in Path(tmp, "logs").rglob("*.jsonl"))
                print(f"requests logged by the gateway: {logged}")
            finally:
                gw.terminate()
                gw.wait(20)


if __name__ == "__main__":
    main()
