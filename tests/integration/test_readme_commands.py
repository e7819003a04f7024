"""The README's ``rules test``, ``rules check`` and ``rules eval`` examples run as written, from
the repository root, on the repository's own files, and exit 0 (issue 13: ``rules check
rules/ template.yaml`` failed on them). The commands are read from README.md's fenced shell
blocks, not copied here, so the test follows the README; a ``# =>`` line after a command
is a line of what it prints, and must be."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

import pytest

from emulator.config import REPO_ROOT

SECTION = "## Debug rules and policies before you deploy"


@dataclass(frozen=True, slots=True)
class Example:
    command: str  # as the shell reads it, continuation lines joined
    prints: tuple[str, ...]  # the README's ``# =>`` lines after it

    @property
    def subcommand(self) -> str:
        match = re.search(r"chat-emulator rules (\w+)", self.command)
        assert match is not None
        return match.group(1)


def readme_examples() -> list[Example]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    examples: list[Example] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        command = ""
        prints: list[str] = []
        for line in block.splitlines() + [""]:
            if command.endswith("\\"):
                command += "\n" + line
                continue
            if line.startswith("# =>"):
                prints.append(line.removeprefix("# =>").strip())
                continue
            if command and "chat-emulator rules " in command:
                examples.append(Example(command, tuple(prints)))
            command, prints = "", []
            if line.strip() and not line.startswith("#"):
                command = line
    return examples


EXAMPLES = readme_examples()


def test_the_readme_shows_each_rules_command() -> None:
    assert {e.subcommand for e in EXAMPLES} == {"test", "check", "eval"}


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[f"{i}-{e.subcommand}" for i, e in enumerate(EXAMPLES)]
)
def test_a_readme_example_runs_as_written(example: Example) -> None:
    result = subprocess.run(
        ["bash", "-c", example.command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = [line.strip() for line in output.splitlines()]
    for line in example.prints:
        assert line in lines, (line, output)
    if example.subcommand == "eval":
        answers = [json.loads(line) for line in result.stdout.splitlines()]
        assert answers and all(a["matched"] is True for a in answers), answers
    elif example.subcommand == "check":
        assert result.stdout == ""  # no diagnostic
        summaries = result.stderr.splitlines()
        assert summaries and all(s.endswith(": 0 errors") for s in summaries), summaries
    else:
        assert re.search(r"^rule \w+ matched$", result.stdout, re.M), result.stdout
        assert result.stderr == ""  # no diagnostic while loading
