"""SQL evaluations per second of the chat's republish rule (issue 3), on one core.

Each evaluation is a fresh message: payload parsing, WHERE and SELECT, as the engine does.

    python -m benchmarks.sql_eval [--count 300000]
"""

from __future__ import annotations

import argparse
import json
import time

from emulator.sql.context import MessageContext
from emulator.sql.statement import compile_statement

SQL = (
    "SELECT *, clientid() AS clientId, timestamp() AS timestamp "
    "FROM 'chat/out' WHERE NOT isUndefined(message)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300_000)
    count = parser.parse_args().count
    statement = compile_statement(SQL, "2016-03-23")
    payload = json.dumps({"room": "/lobby", "message": "hello there", "name": "ann"}).encode()
    start = time.perf_counter()
    for _ in range(count):
        statement.evaluate(
            MessageContext(topic="chat/out", payload=payload, client_id="web-1", timestamp_ms=1)
        )
    took = time.perf_counter() - start
    print(f"{count / took:,.0f} evaluations/s ({took / count * 1e6:.2f} us each) of: {SQL}")


if __name__ == "__main__":
    main()
