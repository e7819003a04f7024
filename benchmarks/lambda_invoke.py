"""Warm Lambda invoke overhead (issue 4): synchronous invocations of a no-op handler.

Two views: through the Lambda Invoke API over HTTP (what boto3 in a test does), and
through the function service directly (what a rule's action costs, minus the queue).

    python -m benchmarks.lambda_invoke [--count 2000]
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


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[int(len(ms) * 0.99) - 1]
    return f"median {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, n={len(ms)}"


async def measure(count: int) -> None:
    config = load_config(
        {
            "mqtt_port": 0,
            "http_port": 0,
            "rules": [str(RULES)],
            "backend": "moto",
            "hot_reload": False,
            "in_memory": True,
        },
        environ={},
    )
    em = Emulator(config)
    await em.start()
    try:
        for _ in range(50):  # warm: the worker process has imported the handler
            await em.functions.invoke("bench-noop", b"{}")
        direct = []
        for _ in range(count):
            start = time.perf_counter()
            result = await em.functions.invoke("bench-noop", b'{"n": 1}')
            direct.append(time.perf_counter() - start)
            assert result.function_error is None
        url = f"http://127.0.0.1:{em.http_port}/2015-03-31/functions/bench-noop/invocations"
        over_http = []
        async with aiohttp.ClientSession() as http:
            for _ in range(count):
                start = time.perf_counter()
                async with http.post(url, data=b'{"n": 1}') as response:
                    await response.read()
                    assert response.status == 200
                over_http.append(time.perf_counter() - start)
        print(f"warm invoke, function service: {summary(direct)}")
        print(f"warm invoke, Invoke API over HTTP: {summary(over_http)}")
    finally:
        await em.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000)
    asyncio.run(measure(parser.parse_args().count))


if __name__ == "__main__":
    main()
