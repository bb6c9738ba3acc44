"""A runbook file is read within bounds, and a repeated key is refused, never dropped.

Driven through `cutover runbook check`, as whoever wrote the runbook would see it: an alias
bomb, a deep nesting or an oversized file is refused in well under a second with the line
and what to do; a key written twice at any level fails with both line numbers.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from bot.cli import EXIT_RUNBOOK, main
from phases.runbook import RunbookError, load_runbook
from phases.yaml_loader import MAX_ALIASES, MAX_BYTES, load_yaml

ROOT = Path(__file__).resolve().parent.parent

SMALL = """\
name: Small
phases:
  - id: one
    name: One
    estimate_minutes: 1
    checkpoint: ok
    checks:
      - {id: c, name: C, kind: command, params: {argv: ["true"]}}
environments:
  staging:
    domain: staging.test
    base_url: http://127.0.0.1:9
    approvers: ["T1:U1"]
"""


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    began = time.monotonic()
    code = main(["runbook", "check", str(path)])
    return code, capsys.readouterr().err, time.monotonic() - began


def bomb(levels: int, width: int) -> str:
    """The billion laughs, in a step's parameters (the bot walks those to fill in
    placeholders): each level lists the one before `width` times."""
    items = ["&a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        items.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    laughs = 'params: {argv: ["true"], x: [' + ", ".join(items) + "]}"
    return SMALL.replace('params: {argv: ["true"]}', laughs)


@pytest.mark.timeout(20)
def test_an_alias_bomb_is_refused_at_once_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(bomb(levels=12, width=12), encoding="utf-8")
    assert path.stat().st_size < 1500
    code, err, took = check(path, capsys)
    assert code == EXIT_RUNBOOK
    assert took < 2
    assert re.search(rf"bomb\.yml: line \d+: more than {MAX_ALIASES} aliases", err), err
    assert "write the values out" in err


@pytest.mark.timeout(20)
def test_aliases_within_the_budget_that_expand_to_millions_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "laughs.yml"
    path.write_text(bomb(levels=11, width=8), encoding="utf-8")  # 80 aliases, 8**11 values
    code, err, took = check(path, capsys)
    assert code == EXIT_RUNBOOK
    assert took < 2
    assert "with its aliases expanded this document has more than" in err, err


@pytest.mark.timeout(20)
def test_a_deeply_nested_runbook_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.yml"
    path.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    code, err, _took = check(path, capsys)
    assert code == EXIT_RUNBOOK
    assert re.search(r"deep\.yml: line 1: nested more than \d+ levels deep", err), err
    assert "Traceback" not in err


@pytest.mark.timeout(20)
def test_a_self_referring_alias_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loop.yml"
    path.write_text(SMALL.replace("name: Small\n", "name: Small\nvars: &v {x: *v}\n"))
    code, err, _took = check(path, capsys)
    assert code == EXIT_RUNBOOK
    assert "loop.yml: line 2: an alias refers to the node that contains it" in err, err


def test_a_file_beyond_the_size_bound_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.yml"
    path.write_text(SMALL + "#" * MAX_BYTES + "\n", encoding="utf-8")
    code, err, _took = check(path, capsys)
    assert code == EXIT_RUNBOOK
    assert f"huge.yml: more than {MAX_BYTES} bytes" in err


def test_a_few_plain_aliases_still_work() -> None:
    data = load_yaml("base: &b {x: 1, y: 2}\nother: {<<: *b, y: 3}\nlist: [*b, *b]\n")
    assert data == {
        "base": {"x": 1, "y": 2},
        "other": {"x": 1, "y": 3},  # a merge key may be overridden: that is what it is for
        "list": [{"x": 1, "y": 2}, {"x": 1, "y": 2}],
    }


def test_approvers_written_twice_fail_runbook_check_with_both_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "twice.yml"
    path.write_text(SMALL + '    approvers: ["T1:U9"]\n', encoding="utf-8")
    code, err, _took = check(path, capsys)
    assert code == EXIT_RUNBOOK
    assert (
        "twice.yml: line 14: key 'approvers' is repeated (first at line 13, again at line 14)"
        in err
    ), err
    assert "merge them into one" in err


def test_two_environments_of_one_name_fail_runbook_check_with_both_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "envs.yml"
    path.write_text(
        SMALL + "  staging:\n    domain: b.test\n    base_url: http://b.test\n", encoding="utf-8"
    )
    code, err, _took = check(path, capsys)
    assert code == EXIT_RUNBOOK
    assert "key 'staging' is repeated (first at line 10, again at line 14)" in err, err


@pytest.mark.parametrize(
    "text, first, again",
    [
        ("name: a\nname: b\n", 1, 2),  # top level
        ("a:\n  b:\n    - {c: 1, d: 2, c: 3}\n", 3, 3),  # a flow mapping in a list
        ("a:\n  b:\n    c: 1\n    d:\n      e: 1\n    c: 2\n", 3, 6),  # nested block
        ("1: x\n'1': y\n1: z\n", 1, 3),  # equal after YAML typing
    ],
)
def test_a_repeated_key_is_refused_at_every_level(text: str, first: int, again: int) -> None:
    with pytest.raises(RunbookError, match=rf"first at line {first}, again at line {again}"):
        load_yaml(text, "x.yml")


def test_the_shipped_runbooks_have_no_repeated_keys() -> None:
    for name in ("nostrmaxi.yml", "demo.yml"):
        load_runbook(ROOT / "runbooks" / name)


def test_no_module_of_the_bot_reads_yaml_past_the_bounded_loader() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("bot", "commands", "phases")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "yaml_loader.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\byaml\.(safe_load|load|full_load|unsafe_load)\b", line)
    ]
    assert readers == []


def test_the_loader_reads_what_safe_load_reads_for_the_shipped_runbook() -> None:
    text = (ROOT / "runbooks" / "nostrmaxi.yml").read_text(encoding="utf-8")
    assert load_yaml(text) == yaml.safe_load(text)
