"""``python -m pytest_mlsupply`` / ``mlsupply``: lock and check outside pytest.

Exit codes: 0 the environment matches (or the lock was written), 1 findings
fail the check, 2 unusable input (missing or malformed lock, bad arguments).

Started from the command line, the command first re-runs itself under
``python -I -S`` with an explicit ``sys.path`` (issue item 7): by then ``site``
has run the environment's ``.pth`` import lines and ``sitecustomize``, and
whatever they patched in this process must not decide what the check reports.
Only the standard library is imported before that re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_mlsupply.snapshot import Interpreter

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_UNUSABLE = 2

#: Top-level modules the command imports beyond the standard library (its run-time
#: dependencies; yaml only for YAML feeds). Their folders alone form the re-run's path.
OWN_MODULES = ("pytest_mlsupply", "packaging", "tomli_w", "tomli", "yaml")

#: Standard-library modules the re-run imports before it stops trusting bytecode
#: caches: the interpreter's own ``__pycache__`` is as trusted as the interpreter.
STDLIB_PRELOAD = (
    "argparse", "base64", "collections", "csv", "dataclasses", "datetime", "email.parser",
    "enum", "functools", "hashlib", "importlib.metadata", "io", "itertools", "json",
    "marshal", "pathlib", "re", "stat", "struct", "subprocess", "tempfile", "threading",
    "typing", "warnings", "zipfile", "zlib",
)  # fmt: skip

#: A bytecode-cache prefix under which no file can exist (``/dev/null`` is not a
#: folder), so every module imported after it is set compiles from its source.
NO_PYCACHE = os.devnull

#: What the re-run executes: the standard library path, then the folders of OWN_MODULES.
#: The checked environment's ``__pycache__`` files are not verified (a ``.pyc`` next to
#: a verified source can hold any code), so our own modules and their dependencies,
#: which may live in that environment, are compiled from source and nothing is written.
HARDENED_CODE = (
    "import sys; base = [p for p in sys.path if p]; "
    "[__import__(m) for m in {preload!r}]; "
    "sys.pycache_prefix = {no_pycache!r}; sys.dont_write_bytecode = True; "
    "sys.path.extend({path!r}); "
    "from pytest_mlsupply.cli import hardened_main; "
    "raise SystemExit(hardened_main(base, sys.argv[1:]))"
)

PYTHON_UNUSABLE = "--python {python}: {problem}"
PYTHON_HIDES_SITE = (
    "its reported path leaves out its own venv's {site}; its standard library or pyvenv.cfg "
    "may be tampered with (check with --path instead, which runs nothing of it)"
)


def _parser() -> argparse.ArgumentParser:
    from pytest_mlsupply import __version__
    from pytest_mlsupply.locks import LOCK_FORMATS
    from pytest_mlsupply.settings import DEFAULT_LOCK_NAME

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
            "--python",
            metavar="PATH",
            help="check the environment of the interpreter at PATH (e.g. the test venv's "
            "python) from this one: PATH runs only its standard library (-I -S) to report "
            "its paths, nothing from its site-packages",
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
        "--lock-extras",
        metavar="NAME[,NAME]",
        help="extras of a uv/poetry/pylock lock the install took (all: every one; default: "
        "none, as uv sync and poetry install)",
    )
    check.add_argument(
        "--lock-groups",
        metavar="NAME[,NAME]",
        help="dependency groups the install took, replacing the installer's default (all; "
        "none: the main dependencies only)",
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
    check.add_argument(
        "--vulnerabilities",
        choices=("off", "warn", "error"),
        default="warn",
        help="how a release a feed calls vulnerable (not malicious) is reported (default: "
        "warn); malicious releases are always errors",
    )
    check.add_argument(
        "--fail-on-cvss",
        metavar="SCORE",
        help="a vulnerable release whose CVSS base score is SCORE or more (or unknown) is an error",
    )
    from pytest_mlsupply.datacli import add_commands

    add_commands(commands)
    return parser


def _cache_dir(value: str) -> Path:
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; with *argv* None (a console script, ``-m``), re-run hardened first."""
    hardened = sys.flags.isolated and sys.flags.no_site
    if argv is None and not hardened:
        return _rerun_hardened(sys.argv[1:])
    return _main(argv, base_path=[p for p in sys.path if p] if hardened else None)


def hardened_main(base_path: list[str], argv: list[str]) -> int:
    """The re-run under ``-I -S``: *base_path* is ``sys.path`` before our folders were added."""
    return _main(argv, base_path=base_path)


def own_import_path() -> list[str]:
    """The folders holding OWN_MODULES, found without importing them.

    The path-based finder alone is asked first: an import hook a ``.pth`` line
    installed in this process must not choose where the re-run's modules come from.
    """
    import importlib.machinery
    import importlib.util

    folders: list[str] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    for name in OWN_MODULES[1:]:
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, sys.path)
            spec = spec or importlib.util.find_spec(name)  # e.g. an editable install's finder
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            location = next(iter(spec.submodule_search_locations), None)
            folder = os.path.dirname(location) if location else None
        else:
            folder = os.path.dirname(spec.origin) if spec.origin else None
        if folder and folder not in folders:
            folders.append(folder)
    return folders


def _rerun_hardened(args: Sequence[str]) -> int:
    """Run the command again under ``-I -S``: no ``.pth``, no ``sitecustomize``, no entry points."""
    command = [
        sys.executable,
        "-I",
        "-S",
        "-c",
        HARDENED_CODE.format(preload=STDLIB_PRELOAD, no_pycache=NO_PYCACHE, path=own_import_path()),
        *args,
    ]
    try:
        if os.name == "posix":
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, command)
        return subprocess.run(command, check=False).returncode
    except OSError as exc:
        print(f"mlsupply: error: cannot re-run {sys.executable} isolated: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE


def describe_python(python: str) -> dict[str, Any]:
    """Paths and identity of *python*, which runs only its standard library to tell them.

    ``-I -S`` keeps its ``site``, ``.pth`` files and ``sitecustomize`` from running;
    the script is ``pytest_mlsupply/sitepath.py``, passed as text.
    """
    from pytest_mlsupply.errors import MlsupplyError

    source = (Path(__file__).parent / "sitepath.py").read_text(encoding="utf-8")
    try:
        done = subprocess.run(
            [python, "-I", "-S", "-c", source],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise MlsupplyError(PYTHON_UNUSABLE.format(python=python, problem=exc)) from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        problem = f"exited with status {done.returncode}: {last}"
        raise MlsupplyError(PYTHON_UNUSABLE.format(python=python, problem=problem))
    found = parse_description(python, done.stdout)
    reported = {os.path.normcase(os.path.realpath(entry)) for entry in found["path"]}
    left_out = [
        d for d in _venv_site_dirs(python) if os.path.normcase(os.path.realpath(d)) not in reported
    ]
    if left_out:
        problem = PYTHON_HIDES_SITE.format(site=", ".join(left_out))
        raise MlsupplyError(PYTHON_UNUSABLE.format(python=python, problem=problem))
    return found


def parse_description(python: str, text: str) -> dict[str, Any]:
    """What ``sitepath.py`` printed on *python*, checked key by key; MlsupplyError otherwise."""
    from pytest_mlsupply.errors import MlsupplyError
    from pytest_mlsupply.sitepath import KEYS

    try:
        found = json.loads(text)
    except ValueError as exc:
        problem = f"did not print its paths as JSON ({exc})"
        raise MlsupplyError(PYTHON_UNUSABLE.format(python=python, problem=problem)) from exc
    if not isinstance(found, dict) or any(key not in found for key in KEYS):
        problem = f"printed {str(found)[:80]!r}, not the keys {', '.join(KEYS)}"
        raise MlsupplyError(PYTHON_UNUSABLE.format(python=python, problem=problem))
    wrong = [key for key in KEYS if not _expected_type(key, found[key])]
    if wrong:
        problem = f"printed {', '.join(wrong)} of the wrong type"
        raise MlsupplyError(PYTHON_UNUSABLE.format(python=python, problem=problem))
    return found


def _expected_type(key: str, value: object) -> bool:
    """``path``/``site_dirs`` are lists of strings, ``markers`` a string mapping, the rest str."""
    if key in ("path", "site_dirs"):
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if key == "markers":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, str)


def _venv_site_dirs(python: str) -> list[str]:
    """The site-packages of the venv *python* belongs to, found on disk by this process.

    A cross-check of what that interpreter reports: ``-I -S`` still runs its
    standard library, which could leave its own site-packages out of the answer.
    """
    exe_dir = Path(os.path.abspath(python)).parent
    for root in (exe_dir, exe_dir.parent):
        if (root / "pyvenv.cfg").is_file():
            found = [*root.glob("lib*/python*/site-packages"), *root.glob("Lib/site-packages")]
            # lib64 is often a link to lib: one folder, whichever name shows it.
            return sorted({os.path.realpath(p) for p in found if p.is_dir()})
    return []


def _target(
    args: argparse.Namespace, base_path: list[str] | None
) -> tuple[list[str] | None, Interpreter | None, dict[str, str] | None]:
    """Search path, interpreter and marker values of the environment to read."""
    from pytest_mlsupply.snapshot import Interpreter

    if args.python:
        found = describe_python(args.python)
        interpreter = Interpreter(
            str(found["implementation"]), str(found["python_version"]), str(found["platform"])
        )
        markers = {str(k): str(v) for k, v in dict(found["markers"]).items()}
        return args.path or list(found["path"]), interpreter, markers
    if args.path or base_path is None:
        return args.path, None, None
    from pytest_mlsupply.sitepath import describe

    return list(describe(base_path)["path"]), None, None


def _main(argv: Sequence[str] | None, *, base_path: list[str] | None) -> int:
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
    from pytest_mlsupply.knownbad import KnownBadConfig, VulnerabilityPolicy
    from pytest_mlsupply.locks import parse_choice
    from pytest_mlsupply.render import (
        finding_lines,
        github_annotations,
        verdict_line,
        write_report,
    )
    from pytest_mlsupply.settings import parse_cvss_score, parse_min_age

    lock_path = Path(args.lock).resolve()
    try:
        search_path, interpreter, markers = _target(args, base_path)
        checking = args.command == "check"
        min_age = (
            parse_min_age(args.min_age, "--min-age")
            if checking and args.min_age is not None
            else None
        )
        fail_on_cvss = (
            parse_cvss_score(args.fail_on_cvss, "--fail-on-cvss")
            if checking and args.fail_on_cvss is not None
            else None
        )
        extras = getattr(args, "lock_extras", None)
        groups = getattr(args, "lock_groups", None)
        result = run_gate(
            lock_path,
            update=not checking,
            search_path=search_path,
            base=Path.cwd(),
            verify_files=checking,
            cache_dir=_cache_dir(args.cache_dir) if checking and args.cache_dir else None,
            rehash=checking and args.rehash,
            waivers=Path(args.waivers) if checking and args.waivers else None,
            lock_format=args.lock_format,
            min_age_days=min_age,
            lock_extras=parse_choice(extras, "--lock-extras") if extras is not None else None,
            lock_groups=parse_choice(groups, "--lock-groups") if groups is not None else None,
            known_bad=KnownBadConfig(
                tuple(Path(p).resolve() for p in args.known_bad),
                builtin=not args.no_builtin_known_bad,
                vulnerabilities=VulnerabilityPolicy(args.vulnerabilities, fail_on_cvss),
            )
            if checking
            else None,
            interpreter=interpreter,
            markers=markers,
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
    print(f"mlsupply: {verdict_line(report, failed=failed, warn_only=False)}")
    return EXIT_FINDINGS if failed else EXIT_OK
