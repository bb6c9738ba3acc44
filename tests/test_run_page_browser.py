"""The run page in a real browser: Debian's chromium (scripts/test.sh installs it) opens the
page from `cutover serve`'s real HTTP server, with its token and its Content-Security-Policy,
renders it without a console message (no script runs, nothing is blocked or fails to load),
and draws the timeline: the DOM has its bars, and the screenshot (kept as a CI artifact in
.ci/artifacts/) shows their colours."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.runpage import tokens
from bot.runpage.serve import RunPages
from bot.store.db import Database
from tests.schedule_helpers import START, clock_at, make_engine
from tests.test_record_truth import completed_run, truth_runbook
from tests.test_run_page_access import SECRET, Clock, serving

ARTIFACTS = Path(__file__).resolve().parent.parent / ".ci" / "artifacts"
RUNNING, WAITING = (0x3B, 0x73, 0xD9), (0xF0, 0xB4, 0x29)  # the timeline's bar colours


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (scripts/test.sh installs it)")
    return found


def browse(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # as root (CI): chromium refuses to start sandboxed
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1100,1600",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )


def pixels(png: bytes) -> set[tuple[int, int, int]]:
    """The distinct RGB colours of an 8-bit RGB or RGBA PNG (as chromium writes them)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    channels = 4
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, _, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    prev, seen = bytearray(stride), set()
    for row in range(len(raw) // (stride + 1)):
        f, line = (
            raw[row * (stride + 1)],
            bytearray(raw[row * (stride + 1) + 1 : (row + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        seen.update((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels * 2))
        prev = line
    return seen


def test_chromium_renders_the_run_page_with_its_timeline_and_no_console_message(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(sqlite_db, truth_runbook(tmp_path), clock)
    run_id = completed_run(engine, clock)
    now = Clock(datetime.now(UTC))
    pages = RunPages(sqlite_db, engine.runbook, SECRET, now=now)
    with serving(pages) as http:
        url = tokens.link(http.url, SECRET, run_id, now())
        dom = browse(url, tmp_path, "--dump-dom")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "run-page.png"
        shot.unlink(missing_ok=True)
        taken = browse(url, tmp_path, f"--screenshot={shot}")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f"Cutover run #{run_id}" in dom.stdout
    assert '<figure id="timeline"' in dom.stdout and '<rect class="run"' in dom.stdout
    assert '<rect class="wait"' in dom.stdout
    console = [ln for ln in (dom.stderr + taken.stderr).splitlines() if ":CONSOLE" in ln]
    assert console == []  # no script error, no blocked or failed load
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    colours = pixels(shot.read_bytes())
    assert RUNNING in colours and WAITING in colours  # the timeline's bars are on screen
