"""The run page as one self-contained HTML document: Jinja2 with autoescape on (nothing a
step printed or a person typed can become markup), every string passed through the masker
on its way out (Jinja's `finalize`: a secret that reached a row or an output unmasked is
masked here too), the timeline an inline SVG drawn from the rows' times, the styles inline.
No script, no external asset, no request: it opens from a change ticket's attachment as it
opens from `cutover serve`, and the server's Content-Security-Policy forbids anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bot.notices import duration
from bot.runpage.page import RunPage
from phases.secrets import GLOBAL_MASKER

TEMPLATES = Path(__file__).resolve().parent / "templates"
# What the page may load: nothing but its own inline styles and data: images.
# The exported file carries it in a <meta> (where frame-ancestors does not apply: a browser
# says so on its console); the server sends it as a header, with frame-ancestors.
META_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)
CSP = f"{META_CSP}; frame-ancestors 'none'"

WIDTH, LABEL, LANE, AXIS = 960, 210, 26, 34
PLOT = WIDTH - LABEL - 20
DECISION_CLASS = {"continue": "ok", "retry": "retry", "rollback": "bad"}


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    y: float
    css: str
    title: str


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    css: str
    title: str


@dataclass(frozen=True)
class Lane:
    y: float
    label: str
    href: str


@dataclass(frozen=True)
class Timeline:
    height: int
    lanes: list[Lane]
    bars: list[Bar]
    marks: list[Mark]
    ticks: list[tuple[float, str]]


def hms(at: datetime | None) -> str:
    return at.strftime("%H:%M:%S UTC") if at is not None else "—"


def span(seconds: float | None) -> str:
    """A span as people read it: 45 s, 3 min 20 s, 1 h 5 min."""
    if seconds is None:
        return "—"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return duration(s)


def timeline(page: RunPage) -> Timeline:
    """Lanes: one per phase attempt (running, then waiting at its gate, then the decision),
    and one for the rollback; x is time from the run's first row to its last."""
    total = page.span_s

    def x(at: datetime) -> float:
        return LABEL + PLOT * max(0.0, min(1.0, (at - page.start).total_seconds() / total))

    def bar(a: datetime, b: datetime, y: float, css: str, title: str) -> Bar:
        left, right = x(a), x(b)
        return Bar(left, max(2.0, right - left), y, css, title)

    lanes, bars, marks = [], [], []
    for i, a in enumerate(page.attempts):
        y = AXIS + i * LANE
        lanes.append(
            Lane(y, f"{a.number}. {a.name} #{a.attempt}", f"#{anchor(a.phase, a.attempt)}")
        )
        run_end = a.opened.at if a.opened is not None else a.ended_at
        if run_end is not None:
            took = span(a.running_s)
            bars.append(bar(a.started.at, run_end, y, "run", f"{a.name}: running, {took}"))
        if a.opened is not None:
            wait_end = a.decided.at if a.decided is not None else a.ended_at
            if wait_end is not None:
                bars.append(
                    bar(
                        a.opened.at,
                        wait_end,
                        y,
                        "wait",
                        f"{a.name}: waiting at the gate, {span(a.waiting_s)}",
                    )
                )
        if a.decided is not None:
            marks.append(
                Mark(
                    x(a.decided.at),
                    y,
                    DECISION_CLASS.get(a.decision, "other"),
                    f"{a.decision} by {', '.join(a.deciders)} at {hms(a.decided.at)}",
                )
            )
    if page.rollback_started is not None:
        y = AXIS + len(page.attempts) * LANE
        lanes.append(Lane(y, "Rollback", "#rollback"))
        end = page.rollback.at if page.rollback is not None else page.end
        took = span((end - page.rollback_started.at).total_seconds())
        bars.append(bar(page.rollback_started.at, end, y, "rb", f"rollback, {took}"))
    ticks = []
    for n in range(6):
        at_s = total * n / 5
        at = page.start.timestamp() + at_s
        ticks.append(
            (
                LABEL + PLOT * n / 5,
                datetime.fromtimestamp(at, page.start.tzinfo).strftime("%H:%M:%S"),
            )
        )
    return Timeline(AXIS + max(1, len(lanes)) * LANE + 8, lanes, bars, marks, ticks)


def anchor(phase: str, attempt: int) -> str:
    return f"phase-{phase}-{attempt}"


# The masker of the render in progress: `finalize` is compiled into the template, so the
# template is compiled once and each render says which masker its strings go through.
_MASK: ContextVar[Callable[[str], str]] = ContextVar("runpage_mask")


def _finalize(value: Any) -> Any:
    return _MASK.get()(value) if isinstance(value, str) else value


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
        auto_reload=False,
    )
    env.globals.update(hms=hms, span=span, anchor=anchor, DECISION_CLASS=DECISION_CLASS)
    return env


def render(page: RunPage, mask: Callable[[str], str] | None = None) -> str:
    """The page as HTML. Every string printed goes through `mask` (default: the process's
    masker, which knows the bot's own secrets and every environment's the engine read)."""
    masker = mask or GLOBAL_MASKER.mask
    memo: dict[str, str] = {}  # actor ids, kinds, statuses repeat: each is masked once

    def masked(value: str) -> str:
        found = memo.get(value)
        if found is None:
            found = memo[value] = masker(value)
        return found

    token = _MASK.set(masked)
    try:
        template = _environment().get_template("run.html.j2")
        return template.render(page=page, tl=timeline(page), width=WIDTH, label=LABEL, csp=META_CSP)
    finally:
        _MASK.reset(token)
