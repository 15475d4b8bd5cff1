"""``python -m pytest_mlsupply`` / ``mlsupply``: lock and check outside pytest.

Exit codes: 0 the environment matches (or the lock was written), 1 findings
fail the check, 2 unusable input (missing or malformed lock, bad arguments).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_mlsupply import __version__
from pytest_mlsupply.locks import LOCK_FORMATS
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
        sub.add_argument(
            "--lock-format",
            choices=LOCK_FORMATS,
            default=None,
            help="format of --lock (default: auto, by file name: pylock.toml, *.txt, uv.lock, "
            "poetry.lock, Pipfile.lock, else mlsupply.lock); a foreign lock is never "
            "rewritten, `lock` writes mlsupply.lock beside it",
        )

    lock = commands.add_parser("lock", help="write or refresh the lockfile from this environment")
    common(lock)
    check = commands.add_parser("check", help="compare this environment with the lockfile")
    common(check)
    check.add_argument("--strict", action="store_true", help="warnings fail the check too")
    check.add_argument(
        "--report",
        metavar="PATH",
        help="write the findings to PATH: SARIF 2.1.0 when it ends in .sarif, JSON otherwise",
    )
    check.add_argument(
        "--waivers",
        metavar="PATH",
        help="TOML file of [[waiver]] entries for findings accepted until a date",
    )
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
        "--min-age",
        metavar="DAYS",
        help="a locked artifact uploaded fewer than DAYS days ago is an error "
        "(pylock.toml and uv.lock record upload times)",
    )
    check.add_argument(
        "--rehash", action="store_true", help="ignore what --cache-dir holds and hash every file"
    )
    check.add_argument(
        "--known-bad",
        metavar="PATH",
        action="append",
        default=[],
        help="known-bad feed: an OSV record, a folder or zip of them, or a hash list (repeatable)",
    )
    check.add_argument(
        "--no-builtin-known-bad",
        action="store_true",
        help="do not apply the built-in list of known-bad ML releases",
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
    from pytest_mlsupply.knownbad import KnownBadConfig
    from pytest_mlsupply.render import (
        GATE_FAILED,
        GATE_PASSED,
        counts_line,
        finding_lines,
        github_annotations,
        write_report,
    )
    from pytest_mlsupply.settings import parse_min_age

    lock_path = Path(args.lock).resolve()
    try:
        checking = args.command == "check"
        min_age = (
            parse_min_age(args.min_age, "--min-age")
            if checking and args.min_age is not None
            else None
        )
        result = run_gate(
            lock_path,
            update=not checking,
            search_path=args.path,
            base=Path.cwd(),
            verify_files=checking,
            cache_dir=_cache_dir(args.cache_dir) if checking and args.cache_dir else None,
            rehash=checking and args.rehash,
            waivers=Path(args.waivers) if checking and args.waivers else None,
            lock_format=args.lock_format,
            min_age_days=min_age,
            known_bad=KnownBadConfig(
                tuple(Path(p).resolve() for p in args.known_bad),
                builtin=not args.no_builtin_known_bad,
            )
            if checking
            else None,
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
            f"mlsupply: wrote {result.written_path or report.lock_path}: "
            f"{report.distributions_checked} distributions in {report.environment}"
        )
        if result.written_path:
            print(f"mlsupply: {report.lock_path} is not rewritten (it is another tool's lock)")
        return EXIT_OK
    failed = report.fails(strict=args.strict)
    if args.report:
        try:
            write_report(args.report, report, failed=failed, strict=args.strict, warn_only=False)
        except OSError as exc:
            print(f"mlsupply: error: cannot write the report {args.report}: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
    for line in finding_lines(report, include_info=args.verbose):
        print(line)
    for note in report.notes:
        print(f"mlsupply: {note}")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for annotation in github_annotations(report):
            print(annotation)
    verdict = GATE_FAILED if failed else GATE_PASSED
    print(
        f"mlsupply: {verdict} ({report.lock_path}): {report.distributions_checked} "
        f"distributions, {counts_line(report)}"
    )
    return EXIT_FINDINGS if failed else EXIT_OK
