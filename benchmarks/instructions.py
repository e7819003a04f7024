"""Instructions per message of ``benchmarks.delivery_cost``'s two paths, under callgrind.

Timings on a shared 2-core machine swing by a third from one second to the next; the
number of instructions the interpreter executes for a message does not. Each path runs
twice in a child interpreter under ``valgrind --tool=callgrind`` (with ``n`` and ``2n``
messages); the difference, divided by the extra messages, is the cost of one message
without start-up, imports or loading the rules.

    python -m benchmarks.instructions [--messages 4000] [--repo PATH]

``--repo`` measures another checkout (e.g. the commit before a change) with this
interpreter, so two versions can be compared on the same machine at any load.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHILD = """
import asyncio, sys
from benchmarks.delivery_cost import measure
asyncio.run(measure(sys.argv[1], rounds=1, messages=int(sys.argv[2])))
"""


def instructions(repo: Path, path: str, messages: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-c",
                CHILD,
                path,
                str(messages),
            ],
            cwd=repo,
            env={**os.environ, "PYTHONPATH": str(repo), "PYTHONHASHSEED": "0"},
            check=True,
            capture_output=True,
        )
        match = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        assert match, "callgrind wrote no summary"
        return int(match.group(1))


def per_message(repo: Path, path: str, messages: int) -> float:
    # measure() warms up with a fifth of the messages before its timed run
    extra = messages * 1.2
    return (instructions(repo, path, 2 * messages) - instructions(repo, path, messages)) / extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument(
        "--path",
        action="append",
        help="pass, chat, pass5 (MQTT 5), props5 (MQTT 5 with properties); default: all "
        "(pass and chat for a --repo from before MQTT 5)",
    )
    args = parser.parse_args()
    paths = args.path or ["pass", "chat", "pass5", "props5"]
    costs = {p: per_message(args.repo.resolve(), p, args.messages) for p in paths}
    for path, cost in costs.items():
        print(f"{path:5} {cost:9,.0f} instructions/message")
    if "chat" in costs and "pass" in costs:
        print(f"chat / pass: {costs['chat'] / costs['pass']:.2f}x")


if __name__ == "__main__":
    main()
