"""Known-bad feeds through `python -m pytest_mlsupply check` and through pytest options and ini."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_mlsupply.cli import EXIT_FINDINGS, EXIT_OK, main
from pytest_mlsupply.knownbad.feeds import BUILTIN_LIST_DATE

from wheelfactory import install_fake

ASSETS = Path(__file__).parent / "assets" / "known_bad"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def locked_site(tmp_path: Path, capsys) -> tuple[Path, str]:
    """A site with the litellm release of the March 2026 compromise, locked after it."""
    site = tmp_path / "site-packages"
    install_fake(site, "litellm", "1.82.8")
    install_fake(site, "numpy", "2.2.6")
    lock = str(tmp_path / "env.lock")
    assert run(capsys, "lock", "--lock", lock, "--path", str(site))[0] == EXIT_OK
    return site, lock


def test_check_catches_a_locked_known_bad_release_with_the_builtin_list(locked_site, capsys):
    site, lock = locked_site
    code, out, _ = run(capsys, "check", "--lock", lock, "--path", str(site))
    assert code == EXIT_FINDINGS
    assert "ERROR [known-bad-package] litellm 1.82.8 is a known-bad release (MAL-2026-2144" in out
    assert f"built-in records (list dated {BUILTIN_LIST_DATE})" in out
    code, out, _ = run(
        capsys, "check", "--lock", lock, "--path", str(site), "--no-builtin-known-bad"
    )
    assert code == EXIT_OK, out
    assert "known-bad" in out  # the note says no feeds were applied


def test_check_with_feeds_reports_freshness_and_bad_feeds(locked_site, tmp_path, capsys, realdata):
    site, lock = locked_site
    report = tmp_path / "report.json"
    code, out, err = run(
        capsys,
        "check",
        "--lock",
        lock,
        "--path",
        str(site),
        "--no-builtin-known-bad",
        "--known-bad",
        str(realdata / "osv-malicious-pypi"),
        "--known-bad",
        str(ASSETS / "bad-lines.txt"),
        "--report",
        str(report),
    )
    assert code == EXIT_FINDINGS
    assert "Traceback" not in out + err
    assert "24 records (6 withdrawn) from" in out and "newest modified 2026-09-04" in out
    assert "ERROR [known-bad-feed] known-bad feed" in out and "bad-lines.txt, line 2" in out
    document = json.loads(report.read_text())
    kinds = sorted(f["kind"] for f in document["findings"] if f["severity"] == "error")
    assert kinds == ["known-bad-feed", "known-bad-feed", "known-bad-package"]
    assert any(n.startswith("known-bad: 24 records") for n in document["notes"])
    assert document["stats"]["known_bad_records"] == 24


def test_check_cache_dir_keeps_the_compiled_index(locked_site, tmp_path, capsys, realdata):
    site, lock = locked_site
    cache = tmp_path / "cache"
    args = ["check", "--lock", lock, "--path", str(site), "--cache-dir", str(cache)]
    args += ["--known-bad", str(realdata / "osv-malicious-pypi")]
    assert run(capsys, *args)[0] == EXIT_FINDINGS
    code, out, _ = run(capsys, *args)
    assert code == EXIT_FINDINGS
    assert "compiled index from the cache" in out


# ------------------------------------------------------------------ pytest options and ini


def _feed_naming(pytester: pytest.Pytester, name: str, version: str, where: Path) -> Path:
    record = {
        "id": "TEST-2026-1",
        "modified": "2026-05-03T00:00:00Z",
        "summary": f"Malicious code in {name}",
        "affected": [{"package": {"ecosystem": "PyPI", "name": name}, "versions": [version]}],
        # ossf's origins key marks the record malicious (a record without it is a vulnerability)
        "database_specific": {"malicious-packages-origins": [{"source": "test"}]},
    }
    where.mkdir(parents=True, exist_ok=True)
    path = where / "TEST-2026-1.json"
    path.write_text(json.dumps(record))
    return path


def test_help_lists_the_known_bad_options(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest("--help").stdout.str()
    for word in (
        "--mlsupply-known-bad",
        "--mlsupply-no-builtin-known-bad",
        "mlsupply_known_bad",
        "mlsupply_builtin_known_bad",
    ):
        assert word in text


def test_ini_feeds_are_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    from importlib.metadata import version

    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    assert pytester.runpytest("--mlsupply-update-lock").ret == 0
    _feed_naming(pytester, "pluggy", version("pluggy"), pytester.path / "feeds")
    pytester.makeini("[pytest]\nmlsupply = true\nmlsupply_known_bad =\n    feeds\n")
    sub = pytester.mkdir("sub")
    result = pytester.runpytest(sub.parent)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*ERROR [[]known-bad-package[]] pluggy * is a known-bad release (TEST-2026-1)*",
            "*known-bad: 6 built-in records*; 1 record from feeds, newest modified 2026-05-03*",
        ]
    )


def test_command_line_feed_and_switching_the_builtin_list_off(pytester: pytest.Pytester) -> None:
    from importlib.metadata import version

    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    assert pytester.runpytest("--mlsupply-update-lock").ret == 0
    feed = _feed_naming(pytester, "pytest", version("pytest"), pytester.path / "f")
    result = pytester.runpytest(
        "--mlsupply", "--mlsupply-known-bad", str(feed.relative_to(pytester.path))
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*known-bad-package*pytest*TEST-2026-1*"])
    pytester.makeini("[pytest]\nmlsupply_builtin_known_bad = false\n")
    result = pytester.runpytest("--mlsupply")
    assert result.ret == 0
    assert "built-in records" not in result.stdout.str()
    result = pytester.runpytest("--mlsupply", "--mlsupply-no-builtin-known-bad")
    assert result.ret == 0


def test_bad_builtin_switch_names_its_source(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    pytester.makeini("[pytest]\nmlsupply_builtin_known_bad = maybe\n")
    result = pytester.runpytest("--mlsupply")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mlsupply_builtin_known_bad*expected true or false*maybe*"])


HASH_A = "a" * 64
HASH_B = "b" * 64


def test_a_foreign_lock_pinning_a_known_bad_archive_or_release_is_caught(
    tmp_path: Path, capsys
) -> None:
    """Archives and releases a lock pins are judged even when not installed here."""
    site = tmp_path / "site-packages"
    install_fake(site, "numpy", "2.2.6")
    lock = tmp_path / "requirements.txt"
    lock.write_text(
        "numpy==2.2.6 --hash=sha256:" + HASH_A + "\n"
        "litellm==1.82.8 ; sys_platform == 'win32' --hash=sha256:" + HASH_B + "\n"
    )
    feed = tmp_path / "bad-archives.txt"
    feed.write_text(f"sha256:{HASH_A} numpy-2.2.6 rebuilt with a payload\n")
    code, out, _ = run(
        capsys, "check", "--lock", str(lock), "--path", str(site), "--known-bad", str(feed)
    )
    assert code == EXIT_FINDINGS
    lines = [line for line in out.splitlines() if "[known-bad-" in line]
    assert len(lines) == 2, out
    assert any(
        "[known-bad-file]" in line
        and "requirements.txt pins an archive of numpy 2.2.6 whose digest sha256:aaaaaaaaaaaa"
        in line
        and "numpy-2.2.6 rebuilt with a payload" in line
        for line in lines
    ), lines
    assert any(
        "[known-bad-package]" in line
        and "pins litellm 1.82.8, a known-bad release (MAL-2026-2144" in line
        for line in lines
    ), lines
    # Without feeds and without the built-in list, the same lock is clean of known-bad findings.
    code, out, _ = run(
        capsys, "check", "--lock", str(lock), "--path", str(site), "--no-builtin-known-bad"
    )
    assert "[known-bad-" not in out
