"""The pytest11 entry point ``mlsupply``: options, ini keys, and the gate when enabled.

This module imports only the standard library and pytest at import time: every
pytest run in an environment where the plugin is installed pays for it, so the
real work (and its imports) happens inside hooks, and only when enabled.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_mlsupply.findings import Finding, Report
    from pytest_mlsupply.gate import GateResult
    from pytest_mlsupply.settings import Settings
    from pytest_mlsupply.shadowing import ImportIndex

GATE_ITEM_NAME = "environment"
GATE_NODEID = "mlsupply::environment"
WORKERINPUT_KEY = "mlsupply_report"
#: The controller's interpreter, so a worker can tell whether the verdict is about it.
WORKERINPUT_ORIGIN_KEY = "mlsupply_interpreter"
#: Installed import names and their locations, for a worker's check of ``sys.modules``.
WORKERINPUT_IMPORTS_KEY = "mlsupply_imports"
#: What a worker's check of ``sys.modules`` found, for the controller's report.
WORKEROUTPUT_IMPORTS_KEY = "mlsupply_import_findings"
NOT_RUN_REASON = "the mlsupply gate failed"
NOT_COLLECTED_NOTE = (
    "the tests were not collected (no conftest.py or test module was imported) because "
    f"{NOT_RUN_REASON}; --mlsupply-warn-only runs them and reports the findings only"
)
#: When the plugin was registered too late to decide before conftest files loaded.
NOT_COLLECTED_LATE_NOTE = (
    f"the tests were not collected (no test module was imported) because {NOT_RUN_REASON}; "
    "conftest.py files were imported before the gate ran, because the plugin was registered "
    "late (load it as an installed plugin or with -p mlsupply)"
)
#: When the gate passed but a module was imported from elsewhere while the tests ran.
FAILED_AT_END_NOTE = (
    "the tests ran, but a module of an installed package was imported from somewhere else "
    f"while they did, so the run fails ({NOT_RUN_REASON} at the end of the session)"
)
#: The controller's early verdict for its popen workers, which load their initial
#: conftest files before ``workerinput`` reaches them (see ``_verdict_for_workers``).
VERDICT_ENV = "PYTEST_MLSUPPLY_CONTROLLER_VERDICT"

_gate_key = pytest.StashKey["GatePlugin"]()
_early_key = pytest.StashKey["EarlyVerdict"]()
#: ``sys.pycache_prefix`` as it was before the gate set its own (restored at unconfigure),
#: and the cache folder whose pycache files the controller records then.
_pycache_key = pytest.StashKey[tuple[str | None, Path | None]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlsupply", "supply-chain gate (pytest-mlsupply)")
    group.addoption(
        "--mlsupply",
        action="store_true",
        default=None,
        help="check the installed environment against the lockfile before tests run "
        "(ini: mlsupply = true).",
    )
    group.addoption(
        "--mlsupply-lock",
        metavar="PATH",
        default=None,
        help="lockfile to check against (default: mlsupply.lock in the rootdir; "
        "ini: mlsupply_lock).",
    )
    group.addoption(
        "--mlsupply-update-lock",
        action="store_true",
        default=None,
        help="write or refresh the lockfile from the current environment, then run the "
        "tests as usual (implies --mlsupply).",
    )
    group.addoption(
        "--mlsupply-strict",
        action="store_true",
        default=None,
        help="warnings (unlocked extras, a changed interpreter, shadowed copies) fail the "
        "run too (ini: mlsupply_strict).",
    )
    group.addoption(
        "--mlsupply-warn-only",
        action="store_true",
        default=None,
        help="report findings but never fail the run, for adopting the gate "
        "(ini: mlsupply_warn_only).",
    )
    group.addoption(
        "--mlsupply-report",
        metavar="PATH",
        default=None,
        help="write the findings to PATH: SARIF 2.1.0 when it ends in .sarif, JSON "
        "otherwise (ini: mlsupply_report).",
    )
    group.addoption(
        "--mlsupply-rehash",
        action="store_true",
        default=None,
        help="hash every installed file again, ignoring the hash cache (a fresh CI machine "
        "always does).",
    )
    group.addoption(
        "--mlsupply-waivers",
        metavar="PATH",
        default=None,
        help="TOML file of [[waiver]] entries (match, kind, reason, expires) for findings "
        "accepted until a date (ini: mlsupply_waivers).",
    )
    group.addoption(
        "--mlsupply-lock-format",
        metavar="FORMAT",
        default=None,
        help="format of --mlsupply-lock: auto (by file name, the default), mlsupply, pylock, "
        "requirements, uv, poetry, pipfile (ini: mlsupply_lock_format).",
    )
    group.addoption(
        "--mlsupply-min-age",
        metavar="DAYS",
        default=None,
        help="a locked artifact uploaded fewer than DAYS days ago is an error (pylock.toml and "
        "uv.lock record upload times; ini: mlsupply_min_age).",
    )
    group.addoption(
        "--mlsupply-lock-extras",
        metavar="NAME[,NAME]",
        default=None,
        help="extras of a uv/poetry/pylock lock that this install took (all: every one; "
        "default: none, as uv sync and poetry install; ini: mlsupply_lock_extras).",
    )
    group.addoption(
        "--mlsupply-lock-groups",
        metavar="NAME[,NAME]",
        default=None,
        help="dependency groups this install took, replacing the installer's default "
        "(uv: default-groups; poetry: non-optional groups; all; none: main only; "
        "ini: mlsupply_lock_groups).",
    )
    parser.addini("mlsupply_lock_format", "lockfile format (auto by file name).", default="")
    parser.addini("mlsupply_lock_extras", "extras of a foreign lock taken.", default="")
    parser.addini("mlsupply_lock_groups", "dependency groups of a foreign lock taken.", default="")
    parser.addini("mlsupply_min_age", "minimum age in days of locked artifacts.", default="")
    group.addoption(
        "--mlsupply-known-bad",
        metavar="PATH",
        action="append",
        default=None,
        help="known-bad feed: an OSV record, a folder or zip of them, or a hash list "
        "(repeatable; ini: mlsupply_known_bad).",
    )
    group.addoption(
        "--mlsupply-no-builtin-known-bad",
        action="store_true",
        default=None,
        help="do not apply the built-in list of known-bad ML releases "
        "(ini: mlsupply_builtin_known_bad = false).",
    )
    group.addoption(
        "--mlsupply-vulnerabilities",
        metavar="LEVEL",
        default=None,
        help="how a release a feed calls vulnerable (not malicious) is reported: off, warn "
        "(the default) or error; malicious releases are always errors "
        "(ini: mlsupply_vulnerabilities).",
    )
    group.addoption(
        "--mlsupply-fail-on-cvss",
        metavar="SCORE",
        default=None,
        help="a vulnerable release whose CVSS base score is SCORE or more (or unknown) is an "
        "error (ini: mlsupply_fail_on_cvss).",
    )
    parser.addini(
        "mlsupply_vulnerabilities", "vulnerable releases: off, warn or error.", default=""
    )
    parser.addini(
        "mlsupply_fail_on_cvss", "vulnerable releases at or above this CVSS score fail.", default=""
    )
    parser.addini(
        "mlsupply_known_bad",
        "known-bad feeds, one path a line, relative to the ini file.",
        type="linelist",
        default=[],
    )
    parser.addini(
        "mlsupply_builtin_known_bad",
        "apply the built-in list of known-bad ML releases (true/false, default true).",
        default="",
    )
    parser.addini("mlsupply", "turn the mlsupply gate on for every run (true/false).", default="")
    parser.addini("mlsupply_lock", "lockfile path, relative to the ini file.", default="")
    parser.addini("mlsupply_strict", "warnings fail the run too (true/false).", default="")
    parser.addini("mlsupply_warn_only", "report findings but never fail (true/false).", default="")
    parser.addini(
        "mlsupply_report", "report path (.sarif for SARIF), relative to the ini file.", default=""
    )
    parser.addini("mlsupply_waivers", "waivers file, relative to the ini file.", default="")
    # Verified data (fixtures.py): always available, whether or not the gate is on.
    group.addoption(
        "--mlsupply-data",
        metavar="PATH",
        default=None,
        help="data manifest for @pytest.mark.verified_data (default: mlsupply-data.toml in "
        "the rootdir; ini: mlsupply_data).",
    )
    group.addoption(
        "--mlsupply-update-data",
        action="store_true",
        default=None,
        help="re-record the digests of every dataset in the data manifest, then run the tests.",
    )
    group.addoption(
        "--mlsupply-missing-data",
        choices=("fail", "skip"),
        default=None,
        help="when a dataset's data is absent: fail its tests (default) or skip them "
        "(ini: mlsupply_missing_data).",
    )
    parser.addini("mlsupply_data", "data manifest path, relative to the ini file.", default="")
    parser.addini(
        "mlsupply_missing_data", "absent data fails (fail) or skips (skip) its tests.", default=""
    )


def _resolve_settings(
    config: pytest.Config, option: Callable[[str], Any] | None = None
) -> Settings:
    from pytest_mlsupply.errors import SettingsError
    from pytest_mlsupply.settings import SettingSources, resolve_settings

    inipath = config.inipath
    sources = SettingSources(
        option=option or (lambda name: config.getoption(name)),
        ini=config.getini,
        ini_file=str(inipath) if inipath else None,
        invocation_dir=config.invocation_params.dir,
        ini_dir=inipath.parent if inipath else config.rootpath,
        rootdir=config.rootpath,
    )
    try:
        return resolve_settings(sources)
    except SettingsError as exc:
        raise pytest.UsageError(f"mlsupply: {exc}") from None


@dataclass(frozen=True)
class EarlyVerdict:
    """The gate's outcome, decided before any conftest.py or test module is imported."""

    failed: bool
    #: None on an xdist worker that took its controller's verdict (the report
    #: itself arrives later, in ``workerinput``).
    report: Report | None = None
    lock_written: bool = False
    written_path: str | None = None
    report_format: str = "JSON"
    own_verdict: str | None = None
    #: Installed import names and their locations, for the ``sys.modules`` backstop.
    imports: ImportIndex | None = None
    #: The value VERDICT_ENV had before this run set it, restored at unconfigure.
    previous_env: str | None = None
    env_set: bool = False
    #: A worker's check of the bytecode it loaded before the verdict (the controller
    #: checked its own), added to the report it takes from ``workerinput``.
    bytecode: tuple[Finding, ...] = ()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser
) -> Generator[None, None, None]:
    """Decide the verdict before pytest imports the first conftest.py (issue: fail closed).

    Outermost of this hook's wrappers, so the gate runs before output capturing
    starts and before ``conftest.py`` files are loaded. What has run by now:
    pytest itself, ``.pth`` files, ``sitecustomize``, plugins named by ``-p`` or
    ``PYTEST_PLUGINS`` and every installed ``pytest11`` plugin (README, "When the
    gate fails"). A failed gate turns conftest loading off for the whole run and
    ``GatePlugin`` collects nothing, so no test code is imported.
    """
    namespace = early_config.known_args_namespace
    if not (namespace.help or namespace.version):
        words = [
            os.environ.get("PYTEST_ADDOPTS", ""),
            *map(str, early_config.invocation_params.args),
        ]
        if any("--mlsupply-" in word for word in words):
            from pytest_mlsupply.rootdir import check_rootdir

            misread = check_rootdir(early_config, parser)
            if misread:
                raise pytest.UsageError(f"mlsupply: {misread}")
        settings = _resolve_settings(early_config, lambda name: getattr(namespace, name, None))
        if settings.enabled:
            early = _early_verdict(early_config, settings)
            early_config.stash[_early_key] = early
            if early.failed:
                namespace.noconftest = True
    return (yield)


def _early_verdict(config: pytest.Config, settings: Settings) -> EarlyVerdict:
    from pytest_mlsupply.render import write_report

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    own_verdict = None
    if worker is not None:
        from_controller, told = _controller_verdict()
        if told is not None:
            # It shares the folder its controller checked (a worker creates nothing).
            _distrust_pycache(config, _existing_cache_dir(config), clear=False, shared=True)
            found = _worker_bytecode(config)
            return EarlyVerdict(
                failed=(told or bool(found)) and not settings.warn_only, bytecode=found
            )
        if from_controller:
            # Started by a gated controller on another interpreter
            # (``--tx popen//python=...``): its verdict says nothing about this one.
            own_verdict = f"xdist worker {worker} runs {sys.executable}"
        # Otherwise nothing here says a gated controller started this process (a
        # pytest run inside a worker's test, a remote worker): it checks for itself.
    namespace = config.known_args_namespace
    cache_dir = None if own_verdict else _early_cache_dir(config)
    rehash = settings.rehash or bool(getattr(namespace, "cacheclear", False))
    # From here on nothing is read from __pycache__, not even by the gate's own lazy imports;
    # what was loaded before is checked below. A worker checking for itself, which may run
    # beside others, compiles from source (os.devnull).
    _distrust_pycache(config, cache_dir if worker is None else None, clear=rehash)
    result = _run_gate(
        config,
        settings,
        update=settings.update_lock and own_verdict is None,
        cache_dir=cache_dir,
        rehash=rehash,
        progress=None if own_verdict else _early_progress(config),
    )
    report = with_loaded_bytecode(result.report, result.imports, cache_dir, rehash)
    failed = not settings.warn_only and report.fails(strict=settings.strict)
    report_format = "JSON"
    if settings.report_path and own_verdict is None:
        try:
            report_format = write_report(
                settings.report_path,
                report,
                failed=failed,
                strict=settings.strict,
                warn_only=settings.warn_only,
            )
        except OSError as exc:
            raise pytest.UsageError(
                f"mlsupply: cannot write the report {settings.report_path}: {exc}"
            ) from None
    previous, env_set = os.environ.get(VERDICT_ENV), False
    if own_verdict is None:
        os.environ[VERDICT_ENV] = _verdict_for_workers(failed)
        env_set = True
    return EarlyVerdict(
        failed=failed,
        report=report,
        lock_written=result.lock_written,
        written_path=result.written_path,
        report_format=report_format,
        own_verdict=own_verdict,
        imports=result.imports,
        previous_env=previous,
        env_set=env_set,
    )


def with_loaded_bytecode(
    report: Report, imports: ImportIndex | None, cache_dir: Path | None, rehash: bool
) -> Report:
    """Add ``bytecode-mismatch`` findings for modules imported before the verdict.

    pytest, pluggy, the plugins and what they import came from ``__pycache__``
    before the gate could say anything about it (see ``bytecode.py``).
    """
    import site

    from pytest_mlsupply.bytecode import check_loaded_bytecode
    from pytest_mlsupply.findings import Report

    started = time.perf_counter()
    if imports is not None:
        site_dirs = {p.location for providers in imports.values() for p in providers}
        owner = {name: providers[0].dist for name, providers in imports.items() if providers}
    else:  # fail closed: at least the interpreter's own site directories
        site_dirs, owner = set(site.getsitepackages()), {}
    checked = check_loaded_bytecode(
        dict(sys.modules), site_dirs, cache_dir=cache_dir, rehash=rehash, owner=owner
    )
    stats = {
        **report.stats,
        "bytecode_modules_checked": checked.checked,
        "bytecode_modules_compiled": checked.compiled,
        "bytecode_seconds": round(time.perf_counter() - started, 3),
    }
    return Report.build(
        [*report.findings, *checked.findings],
        lock_path=report.lock_path,
        distributions_checked=report.distributions_checked,
        environment=report.environment,
        notes=report.notes,
        stats=stats,
    )


def _worker_bytecode(config: pytest.Config) -> tuple[Finding, ...]:
    """A worker's own pre-verdict imports (its plugins may load modules the controller did not).

    The import index arrives later, in ``workerinput``: the site directories are
    the interpreter's. The controller's passes are read, never written here.
    """
    import site

    from pytest_mlsupply.bytecode import check_loaded_bytecode

    site_dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        site_dirs.append(site.getusersitepackages())
    cache_dir = _existing_cache_dir(config)
    return check_loaded_bytecode(
        dict(sys.modules), site_dirs, cache_dir=cache_dir, save=False
    ).findings


def _distrust_pycache(
    config: pytest.Config, cache_dir: Path | None, *, clear: bool, shared: bool = False
) -> None:
    """From now on every import compiles from the verified source or reads the gate's own cache.

    A ``__pycache__/*.pyc`` beside a verified source is not verified (RECORD has
    no hash for it) and runs instead of the source when its header matches, so
    the gated process stops reading those folders (``sys.pycache_prefix``, which
    the import system and pytest's assertion rewriter both honour).
    """
    from pytest_mlsupply.bytecode import PYCACHE_FOLDER, pycache_prefix

    if shared and cache_dir is not None:
        # The controller checked (or emptied) the folder before it started this worker,
        # and records its files at its end; a worker neither empties nor records it.
        prefix, recorded = str(cache_dir / PYCACHE_FOLDER), None
    else:
        prefix = pycache_prefix(cache_dir, clear=clear)
        recorded = cache_dir if prefix != os.devnull else None
    if _pycache_key not in config.stash:
        config.stash[_pycache_key] = (sys.pycache_prefix, recorded)
    sys.pycache_prefix = prefix


def _verdict_for_workers(failed: bool) -> str:
    """The verdict as popen workers inherit it: bound to this process and interpreter.

    xdist hands ``workerinput`` to a worker only after the worker has parsed its
    command line and loaded its initial conftest files, too late to keep them
    from running; the environment of a process this one starts arrives in time.
    """
    return json.dumps({"pid": os.getpid(), "interpreter": interpreter_identity(), "failed": failed})


def _controller_verdict() -> tuple[bool, bool | None]:
    """Whether this process's parent is a gated controller, and its verdict if it applies here.

    Only a verdict set by this process's parent counts, and only on the same
    interpreter; it is consumed, so a pytest run started by a test in this
    worker does not take it for its own.
    """
    raw = os.environ.pop(VERDICT_ENV, None)
    if raw is None:
        return False, None
    try:
        told = json.loads(raw)
    except ValueError:
        return False, None
    if not isinstance(told, dict) or told.get("pid") != os.getppid():
        return False, None
    failed = told.get("failed")
    if told.get("interpreter") != interpreter_identity() or not isinstance(failed, bool):
        return True, None
    return True, failed


def _early_cache_dir(config: pytest.Config) -> Path | None:
    """The hash caches' folder in pytest's cache, before the cache plugin has configured."""
    if not config.pluginmanager.hasplugin("cacheprovider"):
        return None
    # Where the cache plugin will put it (``cache_dir`` ini, relative to the rootdir),
    # through pytest's Cache so that the folder gets its .gitignore and CACHEDIR.TAG.
    raw = os.path.expandvars(os.path.expanduser(str(config.getini("cache_dir"))))
    try:
        cache = pytest.Cache(config.rootpath / raw, config, _ispytest=True)
        return Path(cache.mkdir("mlsupply"))
    except (OSError, TypeError, AttributeError, ValueError):
        return None


def _existing_cache_dir(config: pytest.Config) -> Path | None:
    """``_early_cache_dir`` for a worker, which writes nothing: the folder if it exists."""
    if not config.pluginmanager.hasplugin("cacheprovider"):
        return None
    raw = os.path.expandvars(os.path.expanduser(str(config.getini("cache_dir"))))
    folder = config.rootpath / raw / "d" / "mlsupply"  # pytest's Cache.mkdir layout
    return folder if folder.is_dir() else None


def _early_progress(config: pytest.Config) -> Callable[[int, int], None] | None:
    """Progress for long first runs on an interactive terminal (no terminal reporter yet)."""
    if getattr(config.known_args_namespace, "verbose", 0) < 0 or not sys.stderr.isatty():
        return None
    return _progress(lambda text: (sys.stderr.write(text), sys.stderr.flush()))


def _progress(write: Callable[[str], object]) -> Callable[[int, int], None]:
    started = time.monotonic()
    shown = False

    def show(done: int, total: int) -> None:
        nonlocal shown
        if time.monotonic() - started < 1.0 and not shown:
            return
        shown = True
        end = "\n" if done >= total else "\r"
        write(f"mlsupply: verifying installed files {done:,}/{total:,}{end}")

    return show


def _run_gate(
    config: pytest.Config,
    settings: Settings,
    *,
    update: bool,
    cache_dir: Path | None,
    rehash: bool,
    progress: Callable[[int, int], None] | None,
) -> GateResult:
    from pytest_mlsupply.errors import MlsupplyError
    from pytest_mlsupply.gate import run_gate
    from pytest_mlsupply.knownbad import KnownBadConfig, VulnerabilityPolicy

    try:
        return run_gate(
            settings.lock_path,
            update=update,
            base=config.rootpath,
            cache_dir=cache_dir,
            rehash=rehash,
            progress=progress,
            waivers=settings.waivers_path,
            lock_format=settings.lock_format,
            min_age_days=settings.min_age_days,
            lock_extras=settings.lock_extras,
            lock_groups=settings.lock_groups,
            known_bad=KnownBadConfig(
                settings.known_bad,
                settings.builtin_known_bad,
                VulnerabilityPolicy(settings.vulnerabilities, settings.fail_on_cvss),
            ),
            import_path=import_path(config),
            pinned_imports=pinned_imports(config),
        )
    except MlsupplyError as exc:
        raise pytest.UsageError(f"mlsupply: {exc}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    prefix_state = config.stash.get(_pycache_key, None)
    if prefix_state is not None:
        previous_prefix, recorded = prefix_state
        sys.pycache_prefix = previous_prefix
        del config.stash[_pycache_key]
        if recorded is not None:
            from pytest_mlsupply.bytecode import record_pycache

            record_pycache(recorded)
    early = config.stash.get(_early_key, None)
    if early is not None and early.env_set:
        if early.previous_env is None:
            os.environ.pop(VERDICT_ENV, None)
        else:
            os.environ[VERDICT_ENV] = early.previous_env


def pytest_configure(config: pytest.Config) -> None:
    from pytest_mlsupply import fixtures

    config.addinivalue_line("markers", fixtures.MARKER_LINE)
    settings = _resolve_settings(config)
    fixtures.configure(
        config, known_bad_paths=settings.known_bad, builtin_known_bad=settings.builtin_known_bad
    )
    if not settings.enabled:
        return
    plugin = GatePlugin(config, settings, config.stash.get(_early_key, None))
    config.stash[_gate_key] = plugin
    config.pluginmanager.register(plugin, "mlsupply-gate")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHandOff(plugin), "mlsupply-xdist")


class GateFailure(Exception):
    """Raised by the gate item; its text is the full finding list (and so the JUnit entry)."""


class GateItem(pytest.Item):
    """One test item that carries the gate's verdict into every pytest output.

    Being a real item, its failure shows in the FAILURES section, in the exit
    status, in ``--junitxml`` files and in any other report plugin's output.
    """

    def runtest(self) -> None:
        plugin = self.config.stash[_gate_key]
        # Every finding travels with the item, so JUnit files carry the full list
        # as <property> entries whether the gate passed or failed.
        self.user_properties.extend(plugin.junit_properties())
        if plugin.failed:
            raise GateFailure(plugin.failure_text())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, GateFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        plugin = self.config.stash[_gate_key]
        return plugin.settings.lock_path, None, GATE_NODEID


class GatePlugin:
    """The gate, registered only when enabled; state lives here and in the stash."""

    def __init__(
        self, config: pytest.Config, settings: Settings, early: EarlyVerdict | None = None
    ) -> None:
        self.config = config
        self.settings = settings
        self.report: Report | None = None
        self.lock_written = False
        self.written_path: str | None = None
        self.report_format = "JSON"
        #: Set on an xdist worker that runs another interpreter than the controller
        #: and so checked its own environment (README: "pytest-xdist").
        self.own_verdict: str | None = None
        #: Installed import names and where they may be imported from (the backstop).
        self.imports: ImportIndex | None = None
        self.backstop_findings: list[Finding] = []
        #: The gate passed before the tests and failed after them (the sys.modules check).
        self.failed_at_end = False
        #: The verdict decided before conftest files loaded; a failure there stands.
        self.failed_early = early is not None and early.failed
        self.early_bytecode = early.bytecode if early is not None else ()
        self.decided_early = early is not None
        if early is not None and early.report is not None:
            self.report = early.report
            self.lock_written = early.lock_written
            self.written_path = early.written_path
            self.report_format = early.report_format
            self.own_verdict = early.own_verdict
            self.imports = early.imports

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @property
    def failed(self) -> bool:
        if self.settings.warn_only:
            return False
        if self.failed_early:
            return True
        return self.report is not None and self.report.fails(strict=self.settings.strict)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Take the controller's report on a worker; run the gate if it did not run early.

        It runs here only when the plugin was registered too late for
        ``pytest_load_initial_conftests`` (say, from a conftest's ``pytest_plugins``).
        """
        from pytest_mlsupply.findings import Report

        if self.is_worker and self.own_verdict is None:
            workerinput: dict[str, Any] = getattr(self.config, "workerinput")  # noqa: B009
            data = workerinput.get(WORKERINPUT_KEY)
            origin = workerinput.get(WORKERINPUT_ORIGIN_KEY)
            if data is not None and origin == interpreter_identity():
                self.report = Report.from_dict(data)
                self._imports_from(workerinput)
                self._add_findings([self._owned(f) for f in self.early_bytecode])
                return
            # Another interpreter (``--tx popen//python=...``, a remote host): the
            # controller's verdict says nothing about this one, so it checks (or,
            # before its conftest files loaded, checked) its own.
            worker = workerinput.get("workerid", "?")
            self.own_verdict = f"xdist worker {worker} runs {sys.executable}"
        if self.report is not None:
            # Decided early: what plugins imported since is checked now.
            self._check_loaded_modules()
            return
        # No more __pycache__ from here on; what conftest files and plugins loaded is checked.
        _distrust_pycache(self.config, self._cache_dir(), clear=self.settings.rehash)
        result = _run_gate(
            self.config,
            self.settings,
            update=self.settings.update_lock and not self.is_worker,
            cache_dir=self._cache_dir(),
            rehash=self.settings.rehash,
            progress=self._progress_printer(),
        )
        self.report = with_loaded_bytecode(
            result.report, result.imports, self._cache_dir(), self.settings.rehash
        )
        self.imports = result.imports
        # Modules already loaded (by plugins, -p, conftest files) are checked now.
        self._check_loaded_modules()
        self.lock_written = result.lock_written
        self.written_path = result.written_path
        self._write_report()

    def _write_report(self) -> None:
        from pytest_mlsupply.render import write_report

        if self.settings.report_path and not self.is_worker and self.report is not None:
            try:
                self.report_format = write_report(
                    self.settings.report_path,
                    self.report,
                    failed=self.failed,
                    strict=self.settings.strict,
                    warn_only=self.settings.warn_only,
                )
            except OSError as exc:
                raise pytest.UsageError(
                    f"mlsupply: cannot write the report {self.settings.report_path}: {exc}"
                ) from None

    def _imports_from(self, workerinput: dict[str, Any]) -> None:
        from pytest_mlsupply.shadowing import index_from_dict

        data = workerinput.get(WORKERINPUT_IMPORTS_KEY)
        if isinstance(data, dict):
            self.imports = index_from_dict(data)

    def _owned(self, finding: Finding) -> Finding:
        """A worker's finding named by module, renamed after the distribution that provides it."""
        import dataclasses

        providers = (self.imports or {}).get(finding.subject.partition(".")[0])
        return dataclasses.replace(finding, subject=providers[0].dist) if providers else finding

    def _check_loaded_modules(self) -> None:
        """The backstop: installed packages' modules imported from somewhere else.

        Runs at session start (what plugins and conftest files imported), after
        collection, before the verdict decides whether tests run, and at session
        finish (what the tests imported); a
        finding fails the gate like any other and is added to the report file.
        Waivers do not apply to these findings.
        """
        from pytest_mlsupply.shadowing import check_loaded_modules

        if self.imports is not None:
            self._add_findings(check_loaded_modules(sys.modules, self.imports))

    def _add_findings(self, found: list[Finding]) -> None:
        from pytest_mlsupply.findings import Report

        if self.report is None:
            return
        known = set(self.report.findings)
        found = [finding for finding in found if finding not in known]
        if not found:
            return
        self.backstop_findings.extend(found)
        report = self.report
        self.report = Report.build(
            [*report.findings, *found],
            lock_path=report.lock_path,
            distributions_checked=report.distributions_checked,
            environment=report.environment,
            notes=report.notes,
            stats=report.stats,
        )
        self._write_report()

    def _cache_dir(self) -> Path | None:
        """Verification caches live in pytest's cache; none with ``-p no:cacheprovider``."""
        cache = getattr(self.config, "cache", None)
        if cache is None or self.is_worker:
            return None
        try:
            return Path(cache.mkdir("mlsupply"))
        except OSError:
            return None

    def _progress_printer(self) -> Callable[[int, int], None] | None:
        """Progress for long first runs, on an interactive terminal, after the first second."""
        if self.is_worker or self.config.get_verbosity() < 0:
            return None
        writer = self.config.get_terminal_writer()
        if not writer.hasmarkup:  # an interactive terminal (or --color=yes), not a CI log
            return None
        return _progress(lambda text: writer.write(text, flush=True))

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        from pytest_mlsupply.render import header_line

        if self.report is None:
            return []
        lines = []
        if self.lock_written:
            shown = self.written_path or self.report.lock_path
            lines.append(f"mlsupply: wrote {shown} from this environment")
        lines.append(header_line(self.report))
        return lines

    def pytest_collection(self, session: pytest.Session) -> bool | None:
        """After a failed gate, collect nothing: no test path is even looked up.

        Decision (README, "When the gate fails"): collecting imports test modules
        (and, with ``--pyargs``, their packages), so it does not happen in an
        environment that failed the gate. The gate item alone is added below.
        """
        if not self.failed:
            return None
        session.perform_collect(args=[])
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        """Every other way into collection (``--fixtures``, another plugin) finds nothing."""
        if not self.failed:
            return None
        return pytest.CollectReport(collector.nodeid, "passed", None, [])

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        self._check_loaded_modules()
        gate = GateItem.from_parent(session, name=GATE_ITEM_NAME, nodeid=GATE_NODEID)
        if self.failed and items:  # collection is blocked above; this is a second fence
            config.hook.pytest_deselected(items=list(items))
            items.clear()
        items.insert(0, gate)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Check ``sys.modules`` once more: the tests themselves may have imported from
        elsewhere. A finding now fails the session though every test passed."""
        failed_before = self.failed
        self._check_loaded_modules()
        self.failed_at_end = self.failed and not failed_before
        if self.failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKEROUTPUT_IMPORTS_KEY] = [f.to_dict() for f in self.backstop_findings]
        # Modes that run no test (--collect-only, --fixtures, --markers, --setup-plan)
        # would end with 0 or 5 after a failed gate: a CI step using them as a cheap
        # environment check must fail too.
        if self.failed and session.exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def failure_text(self) -> str:
        """The full finding list (errors and warnings, then waived ones), for FAILURES and JUnit."""
        from pytest_mlsupply.render import GATE_FAILED, counts_line, finding_lines

        assert self.report is not None
        head = f"{GATE_FAILED} ({self.report.lock_path}): {counts_line(self.report)}"
        if self.own_verdict:
            head += f" [checked on {self.own_verdict}]"
        return "\n".join([head, *finding_lines(self.report, include_info=False)])

    def junit_properties(self) -> list[tuple[str, str]]:
        from pytest_mlsupply.render import counts_line, finding_lines, ignored_by_warn_only

        if self.report is None:
            return []
        counts = counts_line(self.report)
        ignored = ignored_by_warn_only(self.report, warn_only=self.settings.warn_only)
        return [
            ("mlsupply", f"{counts}; {ignored}" if ignored else counts),
            *(("mlsupply-finding", line) for line in finding_lines(self.report, include_info=True)),
        ]

    def pytest_terminal_summary(
        self, terminalreporter: Any, exitstatus: int, config: pytest.Config
    ) -> None:
        from pytest_mlsupply.findings import Severity
        from pytest_mlsupply.gate import display_path
        from pytest_mlsupply.render import (
            SECTION_TITLE,
            WARN_ONLY_NOTE,
            finding_lines,
            ignored_by_warn_only,
            verdict_line,
        )

        report = self.report
        if report is None or self.is_worker:
            return
        verbose = config.get_verbosity() > 0
        quiet = config.get_verbosity() < 0
        lines = finding_lines(report, include_info=verbose)
        if quiet and not lines:
            return
        terminalreporter.section(SECTION_TITLE, sep="-", bold=True)
        for line in lines:
            red = line.startswith("ERROR")
            terminalreporter.line(line, red=red, yellow=not red)
        for note in report.notes:
            terminalreporter.line(f"mlsupply: {note}")
        hidden_info = report.count(Severity.INFO) if not verbose else 0
        warn_only = self.settings.warn_only
        ignored = bool(ignored_by_warn_only(report, warn_only=warn_only))
        summary = "mlsupply: " + verdict_line(report, failed=self.failed, warn_only=warn_only)
        if hidden_info:
            summary += " (-v lists the notes)"
        passed = not self.failed and not ignored
        terminalreporter.line(summary, red=self.failed, yellow=ignored, green=passed)
        if self.failed:
            if self.failed_at_end:
                note = FAILED_AT_END_NOTE
            else:
                note = NOT_COLLECTED_NOTE if self.decided_early else NOT_COLLECTED_LATE_NOTE
            terminalreporter.line(f"mlsupply: {note}")
        if self.settings.warn_only and report.fails(strict=self.settings.strict):
            terminalreporter.line(f"mlsupply: {WARN_ONLY_NOTE}", yellow=True)
        if self.settings.report_path:
            shown = display_path(self.settings.report_path, config.rootpath)
            terminalreporter.line(f"mlsupply: {self.report_format} report written to {shown}")
        if os.environ.get("GITHUB_ACTIONS") == "true":
            from pytest_mlsupply.render import github_annotations

            for annotation in github_annotations(report):
                terminalreporter.write_line(annotation)


class XdistHandOff:
    """Registered only when pytest-xdist is loaded: the controller's verdict goes to workers.

    Workers never snapshot the environment; they read the report from
    ``workerinput`` and collect the same gate item, so collection matches. The
    one exception is a worker on another interpreter (see ``interpreter_identity``).
    """

    def __init__(self, plugin: GatePlugin) -> None:
        self.plugin = plugin

    def pytest_configure_node(self, node: Any) -> None:
        if self.plugin.report is not None:
            node.workerinput[WORKERINPUT_KEY] = self.plugin.report.to_dict()
            node.workerinput[WORKERINPUT_ORIGIN_KEY] = interpreter_identity()
        if self.plugin.imports is not None:
            from pytest_mlsupply.shadowing import index_to_dict

            node.workerinput[WORKERINPUT_IMPORTS_KEY] = index_to_dict(self.plugin.imports)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """A worker's check of ``sys.modules`` comes back for the controller's report."""
        from pytest_mlsupply.findings import Finding

        found = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_IMPORTS_KEY) or []
        self.plugin._add_findings([Finding.from_dict(data) for data in found])


def import_path(config: pytest.Config) -> list[str]:
    """The path test imports will search: ``sys.path`` with pytest's insertions.

    In the ``prepend`` import mode (the default) pytest puts the directory above
    each test module's top package at ``sys.path[0]`` as collection imports it;
    ``append`` puts it last; ``importlib`` leaves the path alone. Works before
    ``config.args`` is decided (in ``pytest_load_initial_conftests``) as after.
    """
    import contextlib

    from pytest_mlsupply.shadowing import prepend_roots

    namespace = config.known_args_namespace
    mode = str(getattr(namespace, "importmode", None) or config.getoption("importmode"))
    current = [os.getcwd() if entry == "" else entry for entry in sys.path]
    # The ``pythonpath`` ini key's folders go first (pytest's python_path plugin);
    # early in start-up they may not be on sys.path yet.
    with contextlib.suppress(ValueError):  # no python_path plugin (-p no:python_path)
        current = [*(str(p) for p in config.getini("pythonpath")), *current]
    if mode not in ("prepend", "append"):
        return current
    try:
        namespaces = bool(config.getini("consider_namespace_packages"))
    except ValueError:  # pytest < 8.1 has no such ini key
        namespaces = False
    roots = prepend_roots(
        _test_paths(config),
        python_files=config.getini("python_files"),
        norecursedirs=config.getini("norecursedirs"),
        already_on_path=current,
        consider_namespace_packages=namespaces,
        confcutdir=_confcutdir(config),
        doctest_modules=bool(getattr(namespace, "doctestmodules", False)),
    )
    return [*roots, *current] if mode == "prepend" else [*current, *roots]


def pinned_imports(config: pytest.Config) -> list[tuple[str, str]]:
    """In ``importlib`` mode, the folders pytest imports test files' top-level names from."""
    from pytest_mlsupply.shadowing import imported_files, importlib_tops

    namespace = config.known_args_namespace
    mode = str(getattr(namespace, "importmode", None) or config.getoption("importmode"))
    if mode != "importlib":
        return []
    files = imported_files(
        _test_paths(config),
        python_files=config.getini("python_files"),
        norecursedirs=config.getini("norecursedirs"),
        confcutdir=_confcutdir(config),
        doctest_modules=bool(getattr(namespace, "doctestmodules", False)),
    )
    return importlib_tops(files, config.rootpath)


def _confcutdir(config: pytest.Config) -> Path | None:
    """Where pytest stops looking for ``conftest.py`` upwards (``Config._preparse``)."""
    given = getattr(config.known_args_namespace, "confcutdir", None)
    if given:
        return config.invocation_params.dir / str(given)
    return config.inipath.parent if config.inipath is not None else config.rootpath


def _test_paths(config: pytest.Config) -> list[Path]:
    """What collection will walk, decided as ``Config._decide_args`` does."""
    import glob

    base = config.invocation_params.dir
    args = [str(a) for a in getattr(config, "args", None) or ()]
    if not args:
        args = [str(a) for a in getattr(config.known_args_namespace, "file_or_dir", None) or ()]
    if args:
        return [base / arg.split("::")[0] for arg in args]
    testpaths = config.getini("testpaths")
    if base == config.rootpath and testpaths:
        found = [
            Path(p)
            for pattern in testpaths
            for p in sorted(glob.glob(str(config.rootpath / pattern), recursive=True))
        ]
        if found:
            return found
    return [base]


def interpreter_identity() -> str:
    """Which interpreter this is: host, installation prefix and exact Python version.

    A worker whose identity differs from the controller's (another venv, another
    machine) verifies its own environment instead of trusting the controller's.
    """
    import platform

    return f"{platform.node()}:{os.path.realpath(sys.prefix)}:{sys.version}"
