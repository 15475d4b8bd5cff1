"""``python -m pytest_mlsupply`` / ``mlsupply``: lock and check outside pytest.

Exit codes: 0 the environment matches (or the lock was written), 1 findings
fail the check, 2 unusable input (missing or malformed lock, bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_mlsupply import __version__
from pytest_mlsupply.settings import DEFAULT_LOCK_NAME

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_UNUSABLE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_mlsupply",
        description="Lock the installed Python environment and check it against the lock; "
        "record and hash datasets.",
    )
    parser.add_argument("--version", action="version", version=f"pytest-mlsupply {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--lock",
            metavar="PATH",
            default=DEFAULT_LOCK_NAME,
            help=f"the lockfile (default: {DEFAULT_LOCK_NAME} in the current directory)",
        )
        sub.add_argument(
            "--path",
            metavar="DIR",
            action="append",
            help="read distributions from DIR instead of this interpreter's sys.path "
            "(repeatable, in import order), e.g. another venv's site-packages",
        )

    lock = commands.add_parser("lock", help="write or refresh the lockfile from this environment")
    common(lock)
    check = commands.add_parser("check", help="compare this environment with the lockfile")
    common(check)
    check.add_argument("--strict", action="store_true", help="warnings fail the check too")
    check.add_argument("--report", metavar="PATH", help="write the findings as JSON to PATH")
    check.add_argument(
        "-v", "--verbose", action="store_true", help="also list notes (not-verifiable items)"
    )
    check.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="keep installed-file hashes in DIR and reuse them on the next run (default: no "
        "cache, every file is hashed)",
    )
    check.add_argument(
        "--rehash", action="store_true", help="ignore what --cache-dir holds and hash every file"
    )
    from pytest_mlsupply.datacli import add_commands

    add_commands(commands)
    return parser


def _cache_dir(value: str) -> Path:
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code or 0)
    from pytest_mlsupply.datacli import DATA_COMMANDS

    if args.command in DATA_COMMANDS:
        from pytest_mlsupply.datacli import run

        return run(args)

    from pytest_mlsupply.errors import MlsupplyError
    from pytest_mlsupply.gate import run_gate
    from pytest_mlsupply.render import (
        GATE_FAILED,
        GATE_PASSED,
        counts_line,
        finding_lines,
        write_json_report,
    )

    lock_path = Path(args.lock).resolve()
    try:
        checking = args.command == "check"
        result = run_gate(
            lock_path,
            update=not checking,
            search_path=args.path,
            base=Path.cwd(),
            verify_files=checking,
            cache_dir=_cache_dir(args.cache_dir) if checking and args.cache_dir else None,
            rehash=checking and args.rehash,
        )
    except MlsupplyError as exc:
        print(f"mlsupply: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except OSError as exc:
        print(f"mlsupply: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    report = result.report
    if args.command == "lock":
        print(
            f"mlsupply: wrote {report.lock_path}: {report.distributions_checked} distributions "
            f"in {report.environment}"
        )
        return EXIT_OK
    failed = report.fails(strict=args.strict)
    if args.report:
        try:
            write_json_report(
                args.report, report, failed=failed, strict=args.strict, warn_only=False
            )
        except OSError as exc:
            print(f"mlsupply: error: cannot write the report {args.report}: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
    for line in finding_lines(report, include_info=args.verbose):
        print(line)
    for note in report.notes:
        print(f"mlsupply: {note}")
    verdict = GATE_FAILED if failed else GATE_PASSED
    print(
        f"mlsupply: {verdict} ({report.lock_path}): {report.distributions_checked} "
        f"distributions, {counts_line(report)}"
    )
    return EXIT_FINDINGS if failed else EXIT_OK
