"""The contract every check and action step follows.

A step kind is a function taking its validated parameters and a `StepContext`
and returning a `StepResult`. The context carries every outside effect (clock,
HTTP transport, DNS resolver factory, Docker client factory, subprocess runner,
secret masker) so a test can put a real local server behind each one.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from phases.secrets import Masker

if TYPE_CHECKING:  # imported by the checks that use it, when they run (phases/checks)
    import httpx


class Status(enum.StrEnum):
    PASS = "pass"  # noqa: S105  (a status, not a password)
    FAIL = "fail"
    WARN = "warn"
    ERROR = "error"  # the check could not run (timeout, unreachable, bad config)
    SKIPPED = "skipped"  # dry run of an action, or a step not applicable

    @property
    def blocks_gate(self) -> bool:
        """FAIL and ERROR fail closed: the gate cannot Continue on them."""
        return self in (Status.FAIL, Status.ERROR)


@dataclass(frozen=True)
class StepResult:
    status: Status
    evidence: str  # one short line; never holds a secret value
    duration_ms: int = 0
    details: dict[str, Any] = field(default_factory=dict)  # metrics, masked output tail


class Clock(Protocol):
    def now(self) -> float: ...  # epoch seconds
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class CommandOutput:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False  # stdout/stderr are the last part of longer output
    stdout_matches: bool | None = None  # the watched text appeared anywhere in stdout
    # stdout and stderr line by line as they came (its last TAIL_BYTES), and how many bytes
    # the command printed in all; None from a runner that does not keep them
    combined: str | None = None
    total_bytes: int | None = None
    stopped: str | None = None  # "sigterm" / "sigkill": stopped on request (StopRequest)
    stop_seconds: float = 0.0  # from SIGTERM to its end


OUTPUT = "output"  # the details key of a step's kept output (a KeptOutput)


@dataclass(frozen=True)
class KeptOutput:
    """The tail of what a step printed, masked, kept with its result (table step_output) for
    `cutover logs` and the checkpoint's Show output. Not a str, so it is stored as the step
    masked it: a surface that shows it defuses mentions and links itself."""

    text: str
    truncated: bool  # earlier output was not kept
    total_bytes: int  # what the step printed in all


class CommandRunner(Protocol):
    def __call__(
        self, argv: list[str], *, timeout: float, cwd: str | None, env: dict[str, str] | None
    ) -> CommandOutput: ...


@dataclass(frozen=True)
class StepUser:
    """The unprivileged account a runbook's programs run as (CUTOVER_STEP_USER): never the
    bot's own, so a step cannot read the bot's environment, memory, key file or settings."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...] = ()  # its supplementary groups (e.g. docker), nothing of the bot's
    home: str = "/"


class StopRequest:
    """Asks the step running now to stop: set by the engine when the run is aborted (or its
    lease is lost) while an action executes. A command step polls it, sends SIGTERM to its
    process group, waits the step's grace period, then SIGKILLs; a step waiting in this
    process (`pause`: polling, spacing readings) leaves its wait within STOP_LOOK_SECONDS
    with no verdict; a single call that cannot be interrupted (one Docker SDK request) runs
    to its end, bounded by its timeout."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self.step: str | None = None  # the name of the step executing now, for the channel
        self.during: str | None = None  # the step that was executing when the request came
        self.kill_by: float | None = None  # time.monotonic() by which it must be dead
        # The holder's watchdog (phases/checks/leash.py): told of each process group a step
        # starts, it kills them once the holder's lease may have lapsed (holder paused, dead).
        self.leash: Any = None

    def set(self, reason: str, kill_by: float | None = None) -> None:
        """`kill_by`: a lost lease leaves no time for a graceful stop: SIGKILL by then."""
        if not self._event.is_set():
            self.reason = reason
            self.during = self.step
            self.kill_by = kill_by
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


@dataclass
class StepContext:
    """Everything a step may touch in the outside world."""

    dry_run: bool = False
    clock: Clock = field(default_factory=SystemClock)
    # The clock a step spaces repeated readings of the same thing on (docker_stats: its CPU
    # readings `cpu_interval_seconds` apart); None: `clock`. A test may fast-forward it so
    # the readings, each still real, come back to back; waits for something to happen (a
    # container turning healthy, a log line) stay on `clock`.
    pace: Clock | None = None
    masker: Masker = field(default_factory=Masker)
    http_transport: httpx.BaseTransport | None = None
    resolver_factory: Callable[[list[str] | None], Any] | None = None
    docker_factory: Callable[[], Any] | None = None
    command_runner: CommandRunner | None = None
    workdir: str | None = None
    timeout: float = 30.0  # this step's own limit; a step bounds every wait by it
    # env-file keys the runbook marks public; every other env-file value is masked
    public_env_keys: frozenset[str] = frozenset()
    # When the run and the executing phase started (epoch seconds): "built during this run",
    # "logs since the phase started". None outside a run (a dry run, a single check).
    run_started_at: float | None = None
    phase_started_at: float | None = None
    # Who a runbook's programs run as; None: the bot's own user (a bot not started as root)
    run_as: StepUser | None = None
    # Set while a run's phase executes: a command step stops (SIGTERM, then SIGKILL after
    # `stop_grace` seconds) once it is set; see StopRequest.
    stop: StopRequest | None = None
    stop_grace: float = 10.0
    # The run's lease epoch (fencing token), given to a step's process as
    # CUTOVER_FENCING_TOKEN so it can refuse work a newer holder superseded.
    fencing_token: int | None = None
    # The checks of a manual step run once it is ticked: when it was (epoch seconds), for
    # "the webhook line within 30 s of the payment's tick". None for any other step.
    ticked_at: float | None = None


P = TypeVar("P", bound=BaseModel)


class StepParams(BaseModel):
    """Base for each kind's parameters: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class StepKind(Generic[P]):
    name: str
    params: type[P]
    run: Callable[[P, StepContext], StepResult]
    mutates: bool = False  # an action: honours dry-run by reporting what it would do
    describe: Callable[[P], str] | None = None  # what a dry run reports


REGISTRY: dict[str, StepKind[Any]] = {}


def register(kind: StepKind[Any]) -> StepKind[Any]:
    if kind.name in REGISTRY:
        raise ValueError(f"step kind {kind.name!r} registered twice")
    REGISTRY[kind.name] = kind
    return kind


class StepStopped(BaseException):
    """A step waiting in this process (polling for a container to turn healthy, a URL to
    answer, a log line to appear; spacing its readings) was asked to stop (`StopRequest`:
    an abort, a lost lease) while it waited. A BaseException, as a cancellation is: a
    step's own `except Exception` (an engine unreachable, an HTTP error) must not read it
    as a finding about the target."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


STOP_LOOK_SECONDS = 0.2  # how often a waiting step looks at its stop request


def pause(ctx: StepContext, seconds: float, clock: Clock | None = None) -> None:
    """Waits `seconds` on the step's clock (or `clock`: its pace), looking at its stop
    request every STOP_LOOK_SECONDS: raises StepStopped once it is set, so a check that
    waits up to its `wait_seconds` ends at the abort, not at the end of its wait, and the
    rollback does not wait for it."""
    clock = clock or ctx.clock
    stop = ctx.stop
    if stop is None:
        clock.sleep(seconds)
        return
    left = seconds  # counted down by what was asked of the clock, not read back from it
    while not stop.is_set():
        if left <= 0:
            return
        slice_ = min(left, STOP_LOOK_SECONDS)
        clock.sleep(slice_)
        left -= slice_
    raise StepStopped(stop.reason or "request")


def timed(fn: Callable[[], StepResult], clock: Clock) -> StepResult:
    """Runs fn and stamps its duration; an exception becomes an ERROR result, and a step
    stopped while it waited (StepStopped) an ERROR that says so: it gave no verdict."""
    start = clock.monotonic()
    try:
        result = fn()
    except StepStopped as stopped:
        waited = clock.monotonic() - start
        result = StepResult(
            Status.ERROR,
            f"stopped by {stopped.reason} after {waited:.1f} s, while it waited: no verdict",
            details={"stopped": "request"},  # (left within STOP_LOOK_SECONDS: not timed)
        )
    except Exception as exc:  # a check never raises into the engine
        result = StepResult(Status.ERROR, f"{type(exc).__name__}: {exc}")
    elapsed = int((clock.monotonic() - start) * 1000)
    return StepResult(result.status, result.evidence, elapsed, result.details)


def clip(text: str, limit: int) -> str:
    """Evidence on one line, at most `limit` characters (a chat message and an audit row
    have room for a sentence, not a dump): whitespace runs become one space, and a cut text
    ends in "…"."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
