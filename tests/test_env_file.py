"""Env files are read as Docker Compose reads them, so the masker knows each real value.

The cases are Compose's own documented ones ("Syntax for environment files in Docker
Compose"), with interpolation off (`${OTHER}` stays as written). What Compose refuses is
refused with its line; a value the service receives is a value the masker hides.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from phases.secrets import MASK, EnvFileError, Masker, parse_env_file

# (line as written in the env file, the value Compose gives the service)
COMPOSE_DOCUMENTED = [
    ("VAR=VAL", "VAL"),
    ('VAR="VAL"', "VAL"),
    ("VAR='VAL'", "VAL"),
    ("VAR=VAL # comment", "VAL"),
    ("VAR=VAL# not a comment", "VAL# not a comment"),
    ('VAR="VAL # not a comment"', "VAL # not a comment"),
    ('VAR="VAL" # comment', "VAL"),
    ("VAR='$OTHER'", "$OTHER"),
    ("VAR='${OTHER}'", "${OTHER}"),
    ("VAR='Let\\'s go!'", "Let's go!"),
    ('VAR="{\\"hello\\": \\"json\\"}"', '{"hello": "json"}'),
    ('VAR="some\\tvalue"', "some\tvalue"),
    ("VAR='some\\tvalue'", "some\\tvalue"),
    ("VAR=some\\tvalue", "some\\tvalue"),
    ('VAR="line one\\nline two"', "line one\nline two"),
    ('VAR="back\\\\slash"', "back\\slash"),
    ("export VAR=exported", "exported"),
    ("VAR=", ""),
    ("VAR=${OTHER}", "${OTHER}"),  # interpolation off: as written
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env.prod"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("line, value", COMPOSE_DOCUMENTED, ids=[c[0] for c in COMPOSE_DOCUMENTED])
def test_each_documented_compose_case_reads_as_compose_gives_it(
    tmp_path: Path, line: str, value: str
) -> None:
    assert parse_env_file(write(tmp_path, line + "\n")) == {"VAR": value}


def test_the_issues_escaped_quote_is_read_whole(tmp_path: Path) -> None:
    """Before: `B="say \\"hi\\""` was read as `say \\` and the masker knew only that."""
    assert parse_env_file(write(tmp_path, 'B="say \\"hi\\""\n')) == {"B": 'say "hi"'}


def test_a_quoted_value_may_span_lines_and_later_lines_keep_their_numbers(
    tmp_path: Path,
) -> None:
    text = 'A=1\nCERT="-----BEGIN-----\nMIIBszCCAVmgAwIBAgIU\n-----END-----"\nB=2\nC\n'
    with pytest.raises(EnvFileError, match=r"\.env\.prod:6: C has no '='"):
        parse_env_file(write(tmp_path, text))
    values = parse_env_file(write(tmp_path, text.replace("C\n", "")))
    assert values["CERT"] == "-----BEGIN-----\nMIIBszCCAVmgAwIBAgIU\n-----END-----"
    assert values["B"] == "2"


@pytest.mark.parametrize(
    "text, line, problem",
    [
        ('A=1\nB="never closed\n', 2, "an unterminated quote"),
        ("A=1\n\nB='never closed\n", 3, "an unterminated quote"),
        ('A="closed" and more\n', 1, "expected KEY=VALUE"),
        ("# a comment\nJUST_A_NAME\n", 2, "JUST_A_NAME has no '='"),
    ],
)
def test_what_compose_refuses_is_refused_with_its_line_and_no_value(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse_env_file(write(tmp_path, text))
    message = str(caught.value)
    assert f".env.prod:{line}: {problem}" in message
    assert "never closed" not in message and "more" not in message


def test_the_masker_hides_every_value_the_service_receives(tmp_path: Path) -> None:
    secrets = {
        "QUOTED": 'pw-with-\\"quote\\"-Z7q',  # as written; the service gets pw-with-"quote"-Z7q
        "NEWLINE": "first-Hk2\\nsecond-Hk2",
        "SINGLE": "lit\\'eral-Pq9",
    }
    text = (
        f'QUOTED="{secrets["QUOTED"]}"\n'
        f'NEWLINE="{secrets["NEWLINE"]}"\n'
        f"SINGLE='{secrets['SINGLE']}'\n"
        'MULTI="multi-Aa1-line\nsecond-Bb2-line"\n'
    )
    received = {
        "QUOTED": 'pw-with-"quote"-Z7q',
        "NEWLINE": "first-Hk2\nsecond-Hk2",
        "SINGLE": "lit'eral-Pq9",
        "MULTI": "multi-Aa1-line\nsecond-Bb2-line",
    }
    values = parse_env_file(write(tmp_path, text))
    assert values == received
    masker = Masker()
    masker.add_env(values)
    for value in received.values():
        shown = masker.mask(f"the service echoed: {value} (end)")
        assert value not in shown and MASK in shown
