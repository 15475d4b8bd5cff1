"""The rules, called directly: (snapshot, lock) -> findings."""

from __future__ import annotations

from pytest_mlsupply.checks import check_environment
from pytest_mlsupply.findings import Kind, Severity
from pytest_mlsupply.locks.mlsupply_lock import refresh_lock
from pytest_mlsupply.sources import Source

from test_lockfile import D1, D2, D3, LINUX, MAC, installed, snapshot


def kinds(report) -> list[tuple[str, str, str]]:
    return [(f.kind.value, f.severity.value, f.subject) for f in report.findings]


def test_clean_environment_has_no_findings() -> None:
    env = snapshot(LINUX, installed("numpy", "2.1.0", D1), installed("torch", "2.13.0+cpu", D2))
    report = check_environment(env, refresh_lock(None, env))
    assert report.findings == ()
    assert not report.fails(strict=True)
    assert report.distributions_checked == 2


def test_each_kind_of_drift_is_one_finding() -> None:
    locked = refresh_lock(
        None,
        snapshot(
            LINUX,
            installed("numpy", "2.1.0", D1),
            installed("torch", "2.13.0+cpu", D2),
            installed("scipy", "1.14.0", D3),
            installed("pillow", "11.0.0", D3),
        ),
    )
    now = snapshot(
        LINUX,
        installed("numpy", "2.1.0", D2),  # rebuilt wheel
        installed("torch", "2.13.0+cu128", D2),  # local label counts
        installed(
            "pillow",
            "11.0.0",
            D3,
            Source("vcs", url="https://example.invalid/p.git", vcs="git", commit="abc"),
        ),
        installed("torchtriton", "2.0.0", D1),
    )
    report = check_environment(now, locked)
    assert kinds(report) == [
        ("content-changed", "error", "numpy"),
        ("source-changed", "error", "pillow"),
        ("missing", "error", "scipy"),
        ("version-changed", "error", "torch"),
        ("unexpected", "warning", "torchtriton"),
    ]
    torch = next(f for f in report.findings if f.subject == "torch")
    assert (torch.expected, torch.actual) == ("2.13.0+cpu", "2.13.0+cu128")
    assert report.fails(strict=False)


def test_versions_compare_by_pep440() -> None:
    locked = refresh_lock(None, snapshot(LINUX, installed("numpy", "2.1", D1)))
    report = check_environment(snapshot(LINUX, installed("numpy", "2.1.0", D1)), locked)
    assert report.findings == ()


def test_local_working_trees_are_noted_not_compared() -> None:
    editable = Source("editable", url="file:///home/alice/proj")
    locked = refresh_lock(None, snapshot(LINUX, installed("proj", "0.1.dev3", D1, editable)))
    moved = Source("directory", url="file:///builds/ci/proj")
    report = check_environment(snapshot(LINUX, installed("proj", "0.2.dev9", D2, moved)), locked)
    assert kinds(report) == [("not-verifiable", "info", "proj")]
    assert not report.fails(strict=True)


def test_unknown_platform_warns_and_expects_only_common_entries() -> None:
    lock = refresh_lock(
        None, snapshot(LINUX, installed("numpy", "2.1.0", D1), installed("pure", "1.0", D3))
    )
    lock = refresh_lock(
        lock,
        snapshot(
            MAC,
            installed("numpy", "2.1.0", D2),
            installed("pure", "1.0", D3),
            installed("appnope", "0.1.4", D3),
        ),
    )
    windows = snapshot(
        LINUX.__class__("cpython", "3.11.7", "win-amd64"),
        installed("numpy", "2.1.0", D2),
        installed("pure", "1.0", D3),
    )
    report = check_environment(windows, lock)
    assert kinds(report) == [("interpreter-changed", "warning", "interpreter")]
    assert "appnope" not in " ".join(f.message for f in report.findings)


def test_known_platform_does_not_expect_other_platforms_packages() -> None:
    lock = refresh_lock(None, snapshot(LINUX, installed("numpy", "2.1.0", D1)))
    lock = refresh_lock(
        lock, snapshot(MAC, installed("numpy", "2.1.0", D2), installed("appnope", "0.1.4", D3))
    )
    report = check_environment(snapshot(LINUX, installed("numpy", "2.1.0", D1)), lock)
    assert report.findings == ()
    on_linux_with_mac_digest = check_environment(
        snapshot(LINUX, installed("numpy", "2.1.0", D2)), lock
    )
    assert on_linux_with_mac_digest.findings == ()  # digests are accepted per entry


def test_patch_upgrade_of_python_is_a_warning() -> None:
    lock = refresh_lock(None, snapshot(LINUX, installed("numpy", "2.1.0", D1)))
    newer = LINUX.__class__("cpython", "3.11.8", "linux-x86_64")
    report = check_environment(snapshot(newer, installed("numpy", "2.1.0", D1)), lock)
    [finding] = report.findings
    assert (finding.kind, finding.severity) == (Kind.INTERPRETER_CHANGED, Severity.WARNING)
    assert (finding.expected, finding.actual) == ("3.11.7", "3.11.8")
    assert not report.fails(strict=False) and report.fails(strict=True)


def test_lock_without_content_checks_version_and_notes_it() -> None:
    lock = refresh_lock(None, snapshot(LINUX, installed("debian-pkg", "1.0", None)))
    report = check_environment(snapshot(LINUX, installed("debian-pkg", "1.0", None)), lock)
    assert kinds(report) == [("not-verifiable", "info", "debian-pkg")]
