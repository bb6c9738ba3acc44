"""`cutover audit`: export, verify, keygen and lockdown of the audit trail."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot import audit
from bot.cli.config import read_database
from bot.cli.exits import EXIT_PROBLEM, EXIT_USAGE
from bot.cli.options import Parser, command
from bot.settings import Settings

COMMANDS = ("audit",)


def add(sub: argparse._SubParsersAction[Parser], db_only: Parser) -> None:
    au = command(sub, "audit", "export or verify the audit trail", "Work with the audit trail.")
    au_sub = au.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    ex = command(
        au_sub,
        "export",
        "export events (all, or one run's)",
        "Print the audit trail, all of it or one run's, as JSON lines or CSV.",
        [db_only],
    )
    ex.add_argument("run", nargs="?", type=int, metavar="RUN", help="only this run's events")
    ex.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    ve = command(
        au_sub,
        "verify",
        "recompute the hash chain; name every tampered row",
        "Recompute the audit trail's hash chain; name each edited, deleted or reordered row "
        "(exit 1 when there is one). With --public-key, also check each row's signature and "
        "name every unsigned or badly signed row (a row appended without the signing key), or "
        "a row a retired key signed. With --expect-head (a head posted in Slack at a run's "
        "end), also find rows cut from the end of the trail. Prints the head it verified.",
        [db_only],
    )
    ve.add_argument(
        "--public-key",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="Ed25519 public key (PEM) from `audit keygen`; repeat for rotated keys",
    )
    ve.add_argument(
        "--expect-head",
        action="append",
        default=[],
        type=chain_head,
        metavar="ROW:HASH",
        help="a chain head the trail must still hold (posted in Slack at each run's end, "
        "printed by an earlier verify): fails when the chain is shorter or differs there; "
        "repeat for several",
    )
    kg = command(
        au_sub,
        "keygen",
        "make an Ed25519 key pair that signs audit rows",
        "Write a new Ed25519 key pair: the private key (mode 600) for CUTOVER_AUDIT_KEY_FILE, "
        "the public key for `audit verify --public-key`. Never overwrites a file.",
    )
    kg.add_argument("--private-key", required=True, type=Path, metavar="FILE")
    kg.add_argument("--public-key", required=True, type=Path, metavar="FILE")
    lk = command(
        au_sub,
        "lockdown",
        "PostgreSQL: let ROLE run the bot but never UPDATE, DELETE or TRUNCATE audit rows",
        "PostgreSQL: grant ROLE what the bot needs, but never UPDATE, DELETE or TRUNCATE on "
        "the audit table.",
        [db_only],
    )
    lk.add_argument("--app-role", required=True, help="the role the bot connects as")
    lk.add_argument("--print", action="store_true", help="print the SQL; change nothing")


def chain_head(value: str) -> tuple[int, str]:
    try:
        return audit.parse_head(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.audit_command == "keygen":
        kid = audit.keygen(args.private_key, args.public_key)
        print(
            f"key {kid}: private key {args.private_key} (set CUTOVER_AUDIT_KEY_FILE to it), "
            f"public key {args.public_key} (for `cutover audit verify --public-key`)"
        )
        return 0
    db = read_database(settings)
    if args.audit_command == "export":
        sys.stdout.write(audit.export(db, args.run, args.format))
        return 0
    if args.audit_command == "lockdown":
        try:
            if args.print:
                statements = audit.lockdown_statements(db, args.app_role)
            else:
                statements = audit.lockdown(db, args.app_role)
        except audit.LockdownError as exc:
            print(f"lockdown refused: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(";\n".join(statements) + ";")
        if not args.print:
            print(f"-- applied: {args.app_role} can no longer change or remove audit rows")
        return 0
    verified = audit.verify_chain(db)
    problems = list(verified.problems)
    for seq, digest in args.expect_head:
        problems += audit.check_expected_head(db, verified, seq, digest)
    if args.public_key:
        problems += audit.verify_signatures(db, audit.load_public_keys(args.public_key))
    head = f"head {verified.seq}:{verified.hash}"
    rows = f"rows 1..{verified.seq}" if verified.seq else "no rows (an empty trail)"
    if problems:
        print(f"audit chain BROKEN: {len(problems)} problem(s)")
        for prob in problems:
            print(f"  {prob}")
        print(f"read {rows}, {head}")
        return EXIT_PROBLEM
    signed = ", every row signed by a given key" if args.public_key else ""
    print(f"audit chain OK: {verified.seq} events verified{signed}")
    expected = (
        f"; it holds the expected head{'s' if len(args.expect_head) > 1 else ''} "
        + ", ".join(f"{seq}:{digest}" for seq, digest in args.expect_head)
        if args.expect_head
        else ""
    )
    print(f"verified {rows}, {head}{expected}")
    return 0
