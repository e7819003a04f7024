"""Lambda invoke overhead (issues 4 and 16): a no-op handler under each runtime.

Warm: synchronous invocations of a warm worker, through the function service directly (what
a rule's action costs, minus the queue) and through the Lambda Invoke API over HTTP (what
boto3 in a test does), for the Python no-op (awslambdaric) and the Node.js one (AWS's
aws-lambda-ric). Cold: one invocation right after the function's workers were retired, so
it starts a worker process, its runtime client and the handler module first (for Node.js,
a CommonJS and an ES module handler: the latter's worker registers the resolve hook).

    python -m benchmarks.lambda_invoke [--count 2000] [--cold 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import aiohttp

from emulator.app import Emulator
from emulator.config import load_config

RULES = Path(__file__).parent / "rules" / "lambda"
NODE_RULES = Path(__file__).parent / "rules" / "lambda-node"
FUNCTIONS = {"python": "bench-noop", "nodejs": "bench-noop-node"}
COLD = {**FUNCTIONS, "nodejs ES module": "bench-noop-node-esm"}


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[max(0, int(len(ms) * 0.99) - 1)]
    return f"median {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, n={len(ms)}"


async def warm(em: Emulator, name: str, count: int) -> tuple[list[float], list[float]]:
    """(function service, Invoke API over HTTP) times of ``count`` warm invocations each."""
    for _ in range(50):  # warm: the worker process has imported the handler
        await em.functions.invoke(name, b"{}")
    direct = []
    for _ in range(count):
        start = time.perf_counter()
        result = await em.functions.invoke(name, b'{"n": 1}')
        direct.append(time.perf_counter() - start)
        assert result.function_error is None, result.payload
    url = f"http://127.0.0.1:{em.http_port}/2015-03-31/functions/{name}/invocations"
    over_http = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            start = time.perf_counter()
            async with http.post(url, data=b'{"n": 1}') as response:
                await response.read()
                assert response.status == 200
            over_http.append(time.perf_counter() - start)
    return direct, over_http


async def cold(em: Emulator, name: str, count: int) -> list[float]:
    """Times of ``count`` invocations that each start a new worker."""
    pool = em.functions.pools[name]
    samples = []
    for _ in range(count):
        await pool.reload()  # the idle worker goes: the next invocation starts one
        start = time.perf_counter()
        result = await em.functions.invoke(name, b"{}")
        samples.append(time.perf_counter() - start)
        assert result.function_error is None, result.payload
    return samples


async def measure(count: int, cold_count: int) -> None:
    config = load_config(
        {
            "mqtt_port": 0,
            "http_port": 0,
            "rules": [str(RULES), str(NODE_RULES)],
            "backend": "moto",
            "hot_reload": False,
            "in_memory": True,
        },
        environ={},
    )
    em = Emulator(config)
    await em.start()
    try:
        for runtime, name in FUNCTIONS.items():
            direct, over_http = await warm(em, name, count)
            print(f"{runtime} warm invoke, function service: {summary(direct)}")
            print(f"{runtime} warm invoke, Invoke API over HTTP: {summary(over_http)}")
        for runtime, name in COLD.items():
            print(
                f"{runtime} cold start (new worker + invoke): {summary(await cold(em, name, cold_count))}"
            )
    finally:
        await em.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--cold", type=int, default=20, help="cold starts per runtime")
    args = parser.parse_args()
    asyncio.run(measure(args.count, args.cold))


if __name__ == "__main__":
    main()
