"""The run page is never public by accident: `cutover serve`'s real HTTP server answers
/runs/N with the page only to a token signed for that run and not expired; no token, an
expired one, another run's, a forged one, or no secret configured: a bare 403 that shows
nothing of the run. Pages are bounded (a rate limit). Secrets planted in step output and
evidence never reach the HTML. And `cutover record RUN --html` writes the same page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot import cli
from bot.runpage import page, render, tokens
from bot.runpage.serve import RunPages
from bot.slack.server import BoltHTTPServer, make_http_server
from bot.store.db import Database
from bot.store.models import StepOutput
from tests.schedule_helpers import ALICE, BOB, START, clock_at, make_engine, write_runbook
from tests.test_record_truth import completed_run, gate, truth_runbook

SECRET = "s" * 40


@contextmanager
def serving(pages: RunPages | None) -> Iterator[BoltHTTPServer]:
    http = make_http_server(None, "127.0.0.1", 0)
    http.run_pages = pages
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield http
    finally:
        http.shutdown()
        http.server_close()


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def two_runs(db: Database, tmp_path: Path) -> tuple[int, int, RunPages, Clock]:
    clock = clock_at(START)
    engine, _ = make_engine(db, truth_runbook(tmp_path), clock)
    first = completed_run(engine, clock)
    second = engine.start_run("prod", ALICE)
    assert second.id is not None
    now = Clock(datetime.now(UTC))
    return first, second.id, RunPages(db, engine.runbook, SECRET, now=now), now


def test_the_page_opens_only_with_an_unexpired_token_for_that_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    first, second, pages, now = two_runs(sqlite_db, tmp_path)
    good = tokens.link("http://x", SECRET, first, now())
    query = good.split("?", 1)[1]
    with serving(pages) as http:
        ok = httpx.get(f"{http.url}/runs/{first}?{query}")
        assert ok.status_code == 200
        assert f"Cutover run #{first}" in ok.text
        assert "default-src 'none'" in ok.headers["content-security-policy"]
        assert ok.headers["cache-control"] == "no-store"
        assert ok.headers["referrer-policy"] == "no-referrer"
        refused = {
            "no token": httpx.get(f"{http.url}/runs/{first}"),
            "empty token": httpx.get(f"{http.url}/runs/{first}?token="),
            "another run's": httpx.get(f"{http.url}/runs/{second}?{query}"),
            "forged": httpx.get(
                f"{http.url}/runs/{first}?token={tokens.sign('t' * 40, first, now())}"
            ),
        }
        now.at += timedelta(days=7, seconds=1)  # the default lifetime, passed
        refused["expired"] = httpx.get(f"{http.url}/runs/{first}?{query}")
    for why, resp in refused.items():
        assert resp.status_code == 403, why
        assert resp.text == "forbidden\n", why  # nothing of the run shown
        assert "Cutover" not in resp.text


def test_without_a_secret_every_run_page_request_is_refused(
    sqlite_db: Database, tmp_path: Path
) -> None:
    first, _, _, now = two_runs(sqlite_db, tmp_path)
    query = tokens.link("http://x", SECRET, first, now()).split("?", 1)[1]
    with serving(None) as http:
        assert httpx.get(f"{http.url}/runs/{first}?{query}").status_code == 403


def test_run_pages_past_the_rate_limit_get_429_without_work(
    sqlite_db: Database, tmp_path: Path
) -> None:
    first, _, pages, now = two_runs(sqlite_db, tmp_path)
    pages.per_minute = 2
    query = tokens.link("http://x", SECRET, first, now()).split("?", 1)[1]
    with serving(pages) as http:
        codes = [httpx.get(f"{http.url}/runs/{first}?{query}").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_secrets_in_step_output_and_evidence_never_reach_the_page(
    sqlite_db: Database, tmp_path: Path
) -> None:
    planted = "hunter2-pl4nted-s3cret-value"
    env_file = tmp_path / "prod.env"
    env_file.write_text(f"DB_PASSWORD={planted}\n")
    base = truth_runbook(tmp_path).model_dump(mode="json", exclude_none=True)
    base["environments"]["prod"]["env_file"] = str(env_file)
    # A value the masker learns only after the run kept it (unmasked then): the page masks
    # what the masker knows when it renders.
    late = "late-learned-t0ken-0123456789"
    leak = {
        "id": "leak",
        "name": "prints the password",
        "kind": "command",
        # Prints to stdout (kept output) and fails, so it is in the evidence too.
        "params": {
            "argv": ["sh", "-c", f"echo password is {planted} {late}; echo {planted} >&2; exit 1"]
        },
    }
    base["phases"][0]["checks"].append(leak)
    runbook = write_runbook(tmp_path, base, "leaky.yml")
    engine, _ = make_engine(sqlite_db, runbook, clock_at(START))
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    gate(engine, run.id)
    with sqlite_db.session() as s:
        kept = s.exec(select(StepOutput.text).where(StepOutput.run_id == run.id)).all()
    assert any(late in text for text in kept) and not any(planted in text for text in kept)
    engine.masker.add(late)
    html = render.render(page.build(sqlite_db, engine.runbook, run.id), engine.masker.mask)
    assert 'data-step="leak" data-status="fail"' in html
    assert "password is" in html  # the output is there, masked
    for secret in (planted, late):
        assert secret not in html
    assert engine.decide(gate(engine, run.id), BOB, "rollback", reason=planted).outcome
    html = render.render(page.build(sqlite_db, engine.runbook, run.id), engine.masker.mask)
    assert planted not in html and late not in html


def test_cutover_record_html_writes_the_page_as_one_self_contained_file(
    sqlite_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(sqlite_db, truth_runbook(tmp_path), clock)
    run_id = completed_run(engine, clock)
    url = sqlite_db.url
    args = ["record", str(run_id), "--html", "--database-url", url]
    code = cli.main([*args, "--runbook", str(tmp_path / "sched.yml")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    assert "<script" not in out and "<link" not in out and " src=" not in out
    assert f"Cutover run #{run_id}" in out and "audit chain OK" in out
    missing = ["record", "999999", "--database-url", url, "--runbook", str(tmp_path / "sched.yml")]
    assert cli.main(missing) == cli.EXIT_USAGE
