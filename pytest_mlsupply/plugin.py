"""The pytest11 entry point ``mlsupply``: options, ini keys, and the gate when enabled.

This module imports only the standard library and pytest at import time: every
pytest run in an environment where the plugin is installed pays for it, so the
real work (and its imports) happens inside hooks, and only when enabled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_mlsupply.findings import Report
    from pytest_mlsupply.settings import Settings

GATE_ITEM_NAME = "environment"
GATE_NODEID = "mlsupply::environment"
WORKERINPUT_KEY = "mlsupply_report"
NOT_RUN_REASON = "the mlsupply gate failed"

_gate_key = pytest.StashKey["GatePlugin"]()


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
        help="write the findings as JSON to PATH (ini: mlsupply_report).",
    )
    group.addoption(
        "--mlsupply-rehash",
        action="store_true",
        default=None,
        help="hash every installed file again, ignoring the hash cache (a fresh CI machine "
        "always does).",
    )
    parser.addini("mlsupply", "turn the mlsupply gate on for every run (true/false).", default="")
    parser.addini("mlsupply_lock", "lockfile path, relative to the ini file.", default="")
    parser.addini("mlsupply_strict", "warnings fail the run too (true/false).", default="")
    parser.addini("mlsupply_warn_only", "report findings but never fail (true/false).", default="")
    parser.addini("mlsupply_report", "JSON report path, relative to the ini file.", default="")
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


def _resolve_settings(config: pytest.Config) -> Settings:
    from pytest_mlsupply.errors import SettingsError
    from pytest_mlsupply.settings import SettingSources, resolve_settings

    inipath = config.inipath
    sources = SettingSources(
        option=lambda name: config.getoption(name),
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


def pytest_configure(config: pytest.Config) -> None:
    from pytest_mlsupply import fixtures

    config.addinivalue_line("markers", fixtures.MARKER_LINE)
    fixtures.configure(config)
    settings = _resolve_settings(config)
    if not settings.enabled:
        return
    plugin = GatePlugin(config, settings)
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

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.report: Report | None = None
        self.lock_written = False
        self.not_run = 0

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @property
    def failed(self) -> bool:
        if self.report is None or self.settings.warn_only:
            return False
        return self.report.fails(strict=self.settings.strict)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from pytest_mlsupply.errors import MlsupplyError
        from pytest_mlsupply.findings import Report

        if self.is_worker:
            workerinput: dict[str, Any] = getattr(self.config, "workerinput")  # noqa: B009
            data = workerinput.get(WORKERINPUT_KEY)
            if data is not None:
                self.report = Report.from_dict(data)
                return
        from pytest_mlsupply.gate import run_gate
        from pytest_mlsupply.render import write_json_report

        try:
            result = run_gate(
                self.settings.lock_path,
                update=self.settings.update_lock and not self.is_worker,
                base=self.config.rootpath,
                cache_dir=self._cache_dir(),
                rehash=self.settings.rehash,
                progress=self._progress_printer(),
            )
        except MlsupplyError as exc:
            raise pytest.UsageError(f"mlsupply: {exc}") from None
        self.report = result.report
        self.lock_written = result.lock_written
        if self.settings.report_path and not self.is_worker:
            try:
                write_json_report(
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
        started = time.monotonic()
        shown = False

        def show(done: int, total: int) -> None:
            nonlocal shown
            if time.monotonic() - started < 1.0 and not shown:
                return
            shown = True
            end = "\n" if done >= total else "\r"
            writer.write(f"mlsupply: verifying installed files {done:,}/{total:,}{end}", flush=True)

        return show

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        from pytest_mlsupply.render import header_line

        if self.report is None:
            return []
        lines = []
        if self.lock_written:
            lines.append(f"mlsupply: wrote {self.report.lock_path} from this environment")
        lines.append(header_line(self.report))
        return lines

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        gate = GateItem.from_parent(session, name=GATE_ITEM_NAME, nodeid=GATE_NODEID)
        if self.failed and items:
            # Decision (README, "When the gate fails"): the suite is not run in an
            # environment that failed the gate; its tests are deselected so every
            # report shows they were not run, and why.
            self.not_run = len(items)
            config.hook.pytest_deselected(items=list(items))
            items.clear()
        items.insert(0, gate)

    def failure_text(self) -> str:
        from pytest_mlsupply.findings import Severity
        from pytest_mlsupply.render import GATE_FAILED, counts_line, finding_line

        assert self.report is not None
        shown = [
            finding_line(f)
            for f in self.report.findings
            if f.severity is Severity.ERROR
            or (self.settings.strict and f.severity is Severity.WARNING)
        ]
        head = f"{GATE_FAILED} ({self.report.lock_path}): {counts_line(self.report)}"
        return "\n".join([head, *shown])

    def pytest_terminal_summary(
        self, terminalreporter: Any, exitstatus: int, config: pytest.Config
    ) -> None:
        from pytest_mlsupply.findings import Severity
        from pytest_mlsupply.gate import display_path
        from pytest_mlsupply.render import (
            GATE_FAILED,
            GATE_PASSED,
            SECTION_TITLE,
            WARN_ONLY_NOTE,
            counts_line,
            finding_lines,
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
        verdict = GATE_FAILED if self.failed else GATE_PASSED
        summary = (
            f"mlsupply: {verdict} ({report.lock_path}): {report.distributions_checked} "
            f"distributions, {counts_line(report)}"
        )
        if hidden_info:
            summary += " (-v lists the notes)"
        terminalreporter.line(summary, red=self.failed, green=not self.failed)
        if self.not_run:
            terminalreporter.line(
                f"mlsupply: {self.not_run} tests were not run because {NOT_RUN_REASON}; "
                "--mlsupply-warn-only runs them and reports the findings only"
            )
        if self.settings.warn_only and report.fails(strict=self.settings.strict):
            terminalreporter.line(f"mlsupply: {WARN_ONLY_NOTE}", yellow=True)
        if self.settings.report_path:
            shown = display_path(self.settings.report_path, config.rootpath)
            terminalreporter.line(f"mlsupply: JSON report written to {shown}")


class XdistHandOff:
    """Registered only when pytest-xdist is loaded: the controller's verdict goes to workers.

    Workers never snapshot the environment; they read the report from
    ``workerinput`` and collect the same gate item, so collection matches.
    """

    def __init__(self, plugin: GatePlugin) -> None:
        self.plugin = plugin

    def pytest_configure_node(self, node: Any) -> None:
        if self.plugin.report is not None:
            node.workerinput[WORKERINPUT_KEY] = self.plugin.report.to_dict()
