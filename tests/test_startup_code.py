"""Unlocked distributions whose code runs at start-up are errors (not warnings), any lock."""

from __future__ import annotations

import contextlib
import site
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mlsupply.checks import (
    LAUNCH_DIR_PLUGIN,
    SHADOWED_PLUGIN,
    STARTUP_NO_RECORD,
    STARTUP_PLUGIN,
    _pth_runs_code,
    check_environment,
    launch_directory_findings,
    snapshot_findings,
)
from pytest_mlsupply.findings import Kind, Severity
from pytest_mlsupply.foreign_checks import check_foreign_lock
from pytest_mlsupply.locks.foreign import FORMAT_REQUIREMENTS, load_foreign_lock
from pytest_mlsupply.locks.mlsupply_lock import refresh_lock
from pytest_mlsupply.snapshot import take_snapshot

from wheelfactory import install_fake

PLUGIN_ENTRY_POINTS = (
    "[pytest11]\nquiet = quiet_plugin\n\n[console_scripts]\nq = quiet_plugin:main\n"
)


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "site-packages"
    install_fake(folder, "numpy", "2.2.6")
    return folder


def _unexpected(site_dir: Path) -> list[tuple[Severity, str]]:
    """Severity and message of each `unexpected` finding, with only numpy locked."""
    locked_env = take_snapshot([str(site_dir)])
    lock = refresh_lock(None, locked_env)
    lock = replace(lock, distributions=tuple(d for d in lock.distributions if d.name == "numpy"))
    report = check_environment(take_snapshot([str(site_dir)]), lock)
    return [(f.severity, f.message) for f in report.findings if f.kind is Kind.UNEXPECTED]


def test_plain_unlocked_library_stays_a_warning(site_dir: Path) -> None:
    install_fake(site_dir, "tiny-extra", "0.3")
    install_fake(site_dir, "paths", "1.0", {"paths.pth": "extra_dir\n# import os\n"})
    nested = {"nested/sitecustomize.py": "", "nested/x.pth": "import os\n"}  # never run by site
    install_fake(site_dir, "nested", "1.0", nested)
    assert [s for s, _ in _unexpected(site_dir)] == [Severity.WARNING] * 3


def test_unlocked_pytest_plugin_is_an_error_that_says_why(site_dir: Path) -> None:
    dist_info = install_fake(site_dir, "quiet-plugin", "1.0")
    (dist_info / "entry_points.txt").write_text(PLUGIN_ENTRY_POINTS)
    [(severity, message)] = _unexpected(site_dir)
    assert severity is Severity.ERROR
    assert "quiet-plugin 1.0 is installed but not locked" in message
    assert STARTUP_PLUGIN.format(name="quiet") in message


@pytest.mark.parametrize(
    ("files", "shown"),
    [
        ({"hook.pth": "import os; os.getpid()\n"}, "hook.pth"),
        ({"hook.pth": "\ufeffimport os\n"}, "hook.pth"),  # 3.13 strips the BOM
        ({"hook.pth": "some_dir\rimport\tos\n"}, "hook.pth"),  # a lone CR ends a line
        ({"sitecustomize.py": "import os\n"}, "sitecustomize.py"),
        ({"usercustomize/__init__.py": ""}, "usercustomize/__init__.py"),
        ({"pkg/../hook.pth": "import os\n"}, "hook.pth"),  # spelled to look nested
        ({"../stdlib/sitecustomize.py": ""}, "../stdlib/sitecustomize.py"),  # outside site dir
    ],
)
def test_unlocked_startup_files_are_errors(
    site_dir: Path, files: dict[str, str], shown: str
) -> None:
    install_fake(site_dir, "hooky", "1.0", files)
    [(severity, message)] = _unexpected(site_dir)
    assert severity is Severity.ERROR
    assert f"ships {shown}, " in message


def test_latin1_next_line_in_pth_counts(site_dir: Path) -> None:
    dist_info = install_fake(site_dir, "hooky", "1.0", {"hook.pth": "x\n"})
    # A locale (latin-1) reading splits at U+0085 (NEL); the RECORD hash is not checked here.
    (site_dir / "hook.pth").write_bytes(b"somedir\x85import os\n")
    assert dist_info.is_dir()
    [(severity, _)] = _unexpected(site_dir)
    assert severity is Severity.ERROR


@pytest.mark.parametrize("record", ["missing", "malformed"])
def test_unlocked_without_readable_record_fails_closed(site_dir: Path, record: str) -> None:
    dist_info = install_fake(site_dir, "norecord", "1.0", record=record == "malformed")
    if record == "malformed":
        (dist_info / "RECORD").write_text('"unterminated,\n')
    [(severity, message)] = _unexpected(site_dir)
    assert severity is Severity.ERROR
    assert STARTUP_NO_RECORD in message


def test_unreadable_entry_points_fail_closed(site_dir: Path) -> None:
    dist_info = install_fake(site_dir, "garbled", "1.0")
    (dist_info / "entry_points.txt").write_bytes(b"[pytest11]\nx = \xff\xfe\n")
    [(severity, message)] = _unexpected(site_dir)
    assert severity is Severity.ERROR
    assert "entry_points.txt cannot be read" in message


def test_foreign_lock_gets_the_same_rule(site_dir: Path, tmp_path: Path) -> None:
    dist_info = install_fake(site_dir, "quiet-plugin", "1.0")
    (dist_info / "entry_points.txt").write_text(PLUGIN_ENTRY_POINTS)
    install_fake(site_dir, "tiny-extra", "0.3")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.2.6\n")
    lock = load_foreign_lock(requirements, FORMAT_REQUIREMENTS)
    report = check_foreign_lock(take_snapshot([str(site_dir)]), lock)
    rows = [(f.severity, f.subject) for f in report.findings if f.kind is Kind.UNEXPECTED]
    assert rows == [(Severity.ERROR, "quiet-plugin"), (Severity.WARNING, "tiny-extra")]
    assert "pytest11 plugin `quiet`" in report.findings[0].message


_PTH_TOKENS = ["import", " ", "\t", "\n", "\r", "\x0c", "\x85", "#", "os", "\ufeff", "é", "x"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_PTH_TOKENS), max_size=12).map("".join),
    st.sampled_from(["utf-8", "latin-1"]),
)
def test_a_pth_line_site_would_execute_is_always_seen(text: str, encoding: str) -> None:
    """Emulation check against this Python's own ``site.addpackage``, with exec recorded."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.pth"
        path.write_bytes(text.encode(encoding, "replace"))
        executed: list[str] = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(site, "exec", executed.append, raising=False)
            patch.setattr("sys.stderr", _Sink())
            # 3.11 reads in the locale encoding and may fail late; lines before still ran.
            with contextlib.suppress(UnicodeDecodeError):
                site.addpackage(folder, "probe.pth", set())
        if executed:
            assert _pth_runs_code(path), (text, encoding, executed)


class _Sink:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def test_baseline_tooling_may_ship_only_its_own_startup_code(site_dir: Path, tmp_path: Path):
    """pip, setuptools, wheel and pytest-mlsupply are not 'unexpected'; a hook of theirs is."""
    install_fake(site_dir, "setuptools", "80.0", {"distutils-precedence.pth": "import os\n"})
    dist_info = install_fake(site_dir, "wheel", "0.45")
    (dist_info / "entry_points.txt").write_text("[pytest11]\nwheelhook = wheel_hook\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.2.6\n")
    lock = load_foreign_lock(requirements, FORMAT_REQUIREMENTS)
    report = check_foreign_lock(take_snapshot([str(site_dir)]), lock)
    rows = [(f.kind, f.severity, f.subject) for f in report.findings if f.severity.value != "info"]
    assert rows == [(Kind.UNEXPECTED, Severity.ERROR, "wheel")]
    assert "pytest11 plugin `wheelhook`" in report.findings[0].message
    assert any(
        "setuptools" in note and "not reported as unexpected" in note for note in report.notes
    )


def test_hidden_copy_with_a_pytest_plugin_is_an_error(tmp_path: Path) -> None:
    """pluggy loads entry points of every copy on the path, the hidden ones too."""
    first, second = tmp_path / "first", tmp_path / "second"
    install_fake(first, "dup", "2.0")
    install_fake(second, "dup", "1.0")
    plain = take_snapshot([str(first), str(second)])
    assert [(f.kind, f.severity) for f in snapshot_findings(plain)] == [
        (Kind.SHADOWED, Severity.WARNING)
    ]
    hidden = second / "dup-1.0.dist-info"
    (hidden / "entry_points.txt").write_text("[pytest11]\nevil = evil_mod\n")
    [finding] = snapshot_findings(take_snapshot([str(first), str(second)]))
    assert (finding.kind, finding.severity) == (Kind.SHADOWED, Severity.ERROR)
    assert SHADOWED_PLUGIN.format(names="`evil`") in finding.message


def test_plugin_in_the_launch_directory_is_an_error(tmp_path: Path) -> None:
    """`python -m pytest` puts the current directory on sys.path; pluggy loads plugins there."""
    repo, site_dir = tmp_path / "repo", tmp_path / "site-packages"
    dist_info = install_fake(repo, "evil", "1.0")
    installed = install_fake(site_dir, "own-plugin", "1.0")
    env = take_snapshot([str(site_dir)])
    assert list(launch_directory_findings(str(repo), env)) == []  # no plugin, no finding
    (dist_info / "entry_points.txt").write_text("[pytest11]\nevil = evil_mod\n")
    [finding] = launch_directory_findings(str(repo), env)
    assert (finding.kind, finding.severity, finding.subject) == (
        Kind.UNEXPECTED,
        Severity.ERROR,
        "evil",
    )
    expected = LAUNCH_DIR_PLUGIN.format(
        name="evil", version="1.0", directory=str(repo), names="`evil`"
    )
    assert finding.message == expected
    assert list(launch_directory_findings(str(repo), take_snapshot([str(repo)]))) == []

    # A project's own egg-info declaring what its installed copy declares: no new code.
    (dist_info / "entry_points.txt").unlink()
    own = repo / "own_plugin.egg-info"
    own.mkdir()
    (own / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: own-plugin\nVersion: 1.0\n")
    (own / "entry_points.txt").write_text("[pytest11]\nown = own_plugin.plugin\n")
    (installed / "entry_points.txt").write_text("[pytest11]\nown = own_plugin.plugin\n")
    assert list(launch_directory_findings(str(repo), env)) == []
    (own / "entry_points.txt").write_text("[pytest11]\nown = own_plugin.other\n")
    [changed] = launch_directory_findings(str(repo), env)
    assert changed.subject == "own-plugin" and "`own`" in changed.message
