"""The commands that read runs: `status`, `logs` (kept step output) and `record`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot import audit
from bot.cli.config import load_runbook_file, read_database
from bot.cli.exits import EXIT_OK, EXIT_USAGE
from bot.cli.options import Parser, command
from bot.settings import Settings
from bot.store.db import Database
from phases.secrets import GLOBAL_MASKER

COMMANDS = ("status", "logs", "record")


def add(sub: argparse._SubParsersAction[Parser], both: Parser, db_only: Parser) -> None:
    st = command(
        sub,
        "status",
        "status of active runs",
        "Active runs: phase, elapsed time against the estimate, who approved what.",
        [both],
    )
    st.add_argument("env", nargs="?", metavar="ENV", help="only this environment")

    lg = command(
        sub,
        "logs",
        "what a run's steps printed (kept, masked)",
        "List the steps of run RUN that kept output, or print what one step printed: the "
        "last 64 KB of its stdout and stderr as they came, masked before it was kept (the "
        "environment's secrets show as [redacted]). PHASE/STEP is the newest attempt of the "
        "phase; PHASE/STEP#N its attempt N; rollback/STEP a rollback step. One line about it "
        "goes to stderr, the output itself to stdout.",
        [db_only],
    )
    lg.add_argument("run", type=int, metavar="RUN", help="the run number")
    lg.add_argument(
        "step", nargs="?", metavar="PHASE/STEP[#N]", help="the step to print (default: list)"
    )

    rc = command(
        sub,
        "record",
        "a run's cutover record, or its page as one HTML file",
        "Print run RUN's cutover record (the runbook's Notes, filled in from the audit trail). "
        "With --html, its run page instead: one self-contained HTML file (no external asset, "
        "no script) with the timeline, each gate's wait and deciders, every step's status and "
        "kept output (masked), the rollback, and the run's audit rows verified (signatures "
        "with CUTOVER_AUDIT_KEY_FILE's key or --public-key), to attach to a change ticket.",
        [both],
    )
    rc.add_argument("run", type=int, metavar="RUN", help="the run number")
    rc.add_argument("--html", action="store_true", help="the run page, as HTML on stdout")
    rc.add_argument(
        "--public-key",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="Ed25519 public key (PEM) the rows' signatures are checked with; repeat for "
        "rotated keys (default: the key of CUTOVER_AUDIT_KEY_FILE, if set)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "logs":
        return logs(read_database(settings), args.run, args.step)
    if args.command == "record":
        return record(settings, args.run, args.html, args.public_key)
    if args.command == "status":
        from bot.engine import Engine
        from bot.store.reads import Reads
        from commands.handlers import CommandService

        engine = Engine(read_database(settings), load_runbook_file(settings), background=False)
        reads = Reads(engine.db, engine.runbook)
        print(engine.masker.mask(CommandService(engine, reads).status(args.env)))
        return 0
    raise AssertionError(args.command)


def record(settings: Settings, run_id: int, html: bool, public_keys: list[Path]) -> int:
    """`cutover record RUN [--html]`: the record's text, or the run page (stdout)."""
    from bot.record import build_record, record_text
    from bot.runpage import page, render
    from bot.store import step_outputs

    db = read_database(settings)
    rb = load_runbook_file(settings)
    if not step_outputs.run_known(db, run_id):
        print(f"cutover: there is no run #{run_id} in this database", file=sys.stderr)
        return EXIT_USAGE
    if not html:
        print(GLOBAL_MASKER.mask(record_text(build_record(db, rb, run_id), rb)))
        return EXIT_OK
    keys = audit.load_public_keys(public_keys) if public_keys else None
    if keys is None and settings.audit_key_file is not None:
        signer = audit.Signer.from_file(settings.audit_key_file)
        keys = {signer.key_id: signer.public_key}
    sys.stdout.write(render.render(page.build(db, rb, run_id, keys), GLOBAL_MASKER.mask))
    return EXIT_OK


def logs(db: Database, run_id: int, address: str | None) -> int:
    """`cutover logs`: a run's steps that kept output, or one step's output (stdout; what it
    is on stderr). An unknown run or step is bad usage (exit 2), saying what exists."""
    from bot.store import step_outputs

    mask = GLOBAL_MASKER.mask  # kept masked already; the bot's own tokens too, here
    if not step_outputs.run_known(db, run_id):
        print(f"cutover: there is no run #{run_id} in this database", file=sys.stderr)
        return EXIT_USAGE
    if address is None:
        kept = step_outputs.listing(db, run_id)
        if not kept:
            print(f"Run #{run_id} kept no step output.")
            return EXIT_OK
        print(f"Steps of run #{run_id} that kept output (oldest first):")
        width = max(len(k.address) for k in kept)
        for k in kept:
            more = ", earlier output not kept" if k.truncated else ""
            print(
                mask(
                    f"  {k.address:<{width}}  {k.status:<7} {step_outputs.size(k.bytes)} "
                    f"printed{more}  {k.name}"
                )
            )
        print(f"Print one: cutover logs {run_id} PHASE/STEP (its newest attempt) or PHASE/STEP#N")
        return EXIT_OK
    found = step_outputs.find(db, run_id, address)
    if isinstance(found, str):
        print(f"cutover: {mask(found)}", file=sys.stderr)
        return EXIT_USAGE
    print(mask(step_outputs.describe(found)), file=sys.stderr)
    text = mask(found.text)
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return EXIT_OK
