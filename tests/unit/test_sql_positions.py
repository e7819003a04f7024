"""A SQL error is reported at its line and column in the file, in every YAML scalar style
the ``sql``/``Sql`` value may be written in (issue 13: a typo at 8:33 of a ``>-`` block was
reported at 7:92, past the end of the line).

Each case writes a statement with a known mistake in one style, in a rule file and in a
CloudFormation template, and expects the diagnostic where the mistake's text is in the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from emulator.project.loader import load_project

# Two SQL lines; the mistake is on the second, after other text.
SYNTAX = ("SELECT clientid() AS id, topic(2)", "AS room FRM 'chat/+'")  # FRM for FROM
FUNCTION = ("SELECT clientid() AS id,", "concatt(a, b) AS c FROM 'chat/+'")  # no concatt
END = ("SELECT clientid() AS id", "FROM 'chat/+' WHERE")  # nothing after WHERE

Render = Callable[[tuple[str, str], str], str]


def _single(lines: tuple[str, str], indent: str) -> str:
    a, b = (line.replace("'", "''") for line in lines)
    return f"'{a}\n{indent}{b}'"


def _double(lines: tuple[str, str], indent: str) -> str:
    a, b = (line.replace('"', '\\"') for line in lines)
    return f'"{a}\n{indent}{b}"'


# style name -> how to write the two lines as the value of a key whose children are
# indented by ``indent``.
STYLES: dict[str, Render] = {
    "plain, one line": lambda s, i: f"{s[0]} {s[1]}",
    "plain, two lines": lambda s, i: f"{s[0]}\n{i}{s[1]}",
    "plain, continuation indented further": lambda s, i: f"{s[0]}\n{i}      {s[1]}",
    "plain, blank line between": lambda s, i: f"{s[0]}\n\n{i}{s[1]}",
    "single-quoted, one line": lambda s, i: _single(s, i).replace("\n" + i, " "),
    "single-quoted, two lines": _single,
    "double-quoted, one line": lambda s, i: _double(s, i).replace("\n" + i, " "),
    "double-quoted, two lines": _double,
    "double-quoted, escapes before the mistake": lambda s, i: (
        '"' + s[0].replace(" ", "\\x20", 1).replace("(", "\\u0028", 1) + f'\\t\n{i}\\u0020{s[1]}"'
    ),
    "double-quoted, escaped line break": lambda s, i: f'"{s[0]} \\\n{i}    {s[1]}"',
    "literal": lambda s, i: f"|\n{i}{s[0]}\n{i}{s[1]}",
    "literal, strip": lambda s, i: f"|-\n{i}{s[0]}\n{i}{s[1]}",
    "literal, keep, trailing blank lines": lambda s, i: f"|+\n{i}{s[0]}\n{i}{s[1]}\n\n",
    "literal, indentation indicator": lambda s, i: f"|2-\n{i}{s[0]}\n{i}   {s[1]}",
    "literal, more-indented line and a comment": lambda s, i: (
        f"| # the rule's SQL\n{i}{s[0]}\n{i}     {s[1]}"
    ),
    "folded": lambda s, i: f">\n{i}{s[0]}\n{i}{s[1]}",
    "folded, strip": lambda s, i: f">-\n{i}{s[0]}\n{i}{s[1]}",
    "folded, keep": lambda s, i: f">+\n{i}{s[0]}\n{i}{s[1]}\n",
    "folded, strip, indentation indicator": lambda s, i: f">-2\n{i}{s[0]}\n{i}{s[1]}",
    "folded, blank line and more-indented line": lambda s, i: f">-\n{i}{s[0]}\n\n{i}    {s[1]}",
    "folded, tabs after the text and a comment": lambda s, i: f">- # SQL\n{i}{s[0]}\t\n{i}{s[1]}",
}


def _native(value: str) -> str:
    return (
        "# rules\n"
        "rules:\n"
        "  - ruleName: R\n"
        "    awsIotSqlVersion: '2016-03-23'\n"
        f"    sql: {value}\n"
        "    actions:\n"
        "      - republish: {topic: out}\n"
    )


def _template(value: str) -> str:
    return (
        "Resources:\n"
        "  Rule:\n"
        "    Type: AWS::IoT::TopicRule\n"
        "    Properties:\n"
        "      RuleName: R\n"
        "      TopicRulePayload:\n"
        "        AwsIotSqlVersion: '2016-03-23'\n"
        f"        Sql: {value}\n"
        "        Actions:\n"
        "          - Republish: {Topic: out, RoleArn: arn:aws:iam::123456789012:role/r}\n"
    )


def _sam_event(value: str) -> str:
    return (
        "Resources:\n"
        "  R:\n"  # the rule of event E of function R is named RE
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      Handler: app.handler\n"
        "      CodeUri: code\n"
        "      Events:\n"
        "        E:\n"
        "          Type: IoTRule\n"
        "          Properties:\n"
        "            AwsIotSqlVersion: '2016-03-23'\n"
        f"            Sql: {value}\n"
    )


FILES = {
    "rule file": (_native, "      "),
    "template": (_template, "          "),
    "SAM IoTRule event": (_sam_event, "              "),
}


def _where(text: str, marker: str, after: bool = False) -> tuple[int, int]:
    """1-based line and column of ``marker`` in the file (or just after it)."""
    index = text.index(marker) + (len(marker) if after else 0)
    assert text.count(marker) == 1, marker
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _diagnostics(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "code").mkdir()
    file = tmp_path / "rules.yaml"
    file.write_text(text)
    project = load_project([file])
    assert project.rules == ()
    return [str(d).removeprefix(f"{file}:") for d in project.errors]


# mistake -> (the SQL, the text the error points at, before or after it, the message)
MISTAKES = {
    "syntax error": (SYNTAX, "FRM", False, "expected FROM, found 'FRM'"),
    "unknown function": (FUNCTION, "concatt", False, "unknown function 'concatt'"),
    "unfinished statement": (END, "WHERE", True, "unexpected end of statement"),
}


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("kind", FILES)
@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_sql_error_is_at_its_place_in_the_file(
    tmp_path: Path, mistake: str, kind: str, style: str
) -> None:
    sql, marker, after, expected = MISTAKES[mistake]
    write, indent = FILES[kind]
    text = write(STYLES[style](sql, indent))
    line, column = _where(text, marker, after)
    [message] = _diagnostics(tmp_path, text)
    rule = "RE" if kind == "SAM IoTRule event" else "R"
    assert message.startswith(f"{line}:{column}: rule '{rule}': {expected}"), message


def test_json_rule_files_map_escapes_too(tmp_path: Path) -> None:
    text = (
        '{"rules": [{"ruleName": "R", "awsIotSqlVersion": "2016-03-23",\n'
        '  "sql": "SELECT \\"a\\" AS b,\\n\\u0020concatt(a) AS c FROM \'t\'",\n'
        '  "actions": [{"republish": {"topic": "out"}}]}]}\n'
    )
    line, column = _where(text, "concatt")
    [message] = _diagnostics(tmp_path, text)
    assert message.startswith(f"{line}:{column}: rule 'R': unknown function 'concatt'"), message


def test_an_action_template_error_is_at_its_place_too(tmp_path: Path) -> None:
    text = _native("\"SELECT * FROM 'a'\"").replace(
        "{topic: out}", '{topic: "out/\\u0061/${concatt(a)}"}'
    )
    line, column = _where(text, "concatt")
    [message] = _diagnostics(tmp_path, text)
    assert message.startswith(f"{line}:{column}: rule 'R': republish.topic: unknown function")


def test_sql_an_intrinsic_makes_is_reported_at_the_intrinsic(tmp_path: Path) -> None:
    text = _template("!Sub \"SELECT a FRM '${AWS::Region}'\"")
    line, column = _where(text, "!Sub")
    assert _diagnostics(tmp_path, text) == [
        f"{line}:{column}: rule 'R': expected FROM, found 'FRM'"
    ]


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("{RoleArn: r}", "action 'republish' needs 'topic'"),
        ('{Topic: !Join ["", ["o/", "${concatt(a)}"]], RoleArn: r}', "republish.topic: unknown"),
    ],
)
def test_a_template_action_without_positions_is_reported_at_the_action(
    tmp_path: Path, action: str, expected: str
) -> None:
    text = _template("SELECT * FROM 'a'").replace(
        "{Topic: out, RoleArn: arn:aws:iam::123456789012:role/r}", action
    )
    line, column = _where(text, "Republish")
    [message] = _diagnostics(tmp_path, text)
    assert message.startswith(f"{line}:{column}: rule 'R': {expected}"), message
