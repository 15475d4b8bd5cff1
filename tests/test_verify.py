"""Installed-file verification and unowned code, over fake site directories on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_mlsupply.findings import Kind, Severity
from pytest_mlsupply.snapshot import take_snapshot
from pytest_mlsupply.verify import find_unowned_code, verify_installed_files

from wheelfactory import install_fake


def check(site: Path, cache_dir: Path | None = None, rehash: bool = False):
    snapshot = take_snapshot([str(site)])
    findings, stats, ownership = verify_installed_files(
        snapshot, cache_dir=cache_dir, rehash=rehash, quirks=()
    )
    findings.extend(find_unowned_code(snapshot, ownership))
    return findings, stats


def problems(findings) -> list[tuple[str, str, str]]:
    return [
        (f.kind.value, f.severity.value, f.subject)
        for f in findings
        if f.severity is not Severity.INFO
    ]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site-packages"
    install_fake(
        folder,
        "demo-model",
        "1.0",
        {"demo_model/__init__.py": "W = [1, 2]\n", "demo_model/layers.py": "DEPTH = 3\n"},
    )
    install_fake(folder, "helper", "2.0")
    return folder


def test_untouched_environment_has_no_problems(site: Path) -> None:
    findings, stats = check(site)
    assert problems(findings) == []
    assert stats.files_verified == 9  # 3 modules + 2 x (METADATA, WHEEL, INSTALLER)
    assert stats.not_verifiable == {"RECORD files": 2}


def test_appended_byte_is_file_modified(site: Path) -> None:
    with (site / "demo_model" / "layers.py").open("a") as stream:
        stream.write("#")
    findings, _ = check(site)
    [finding] = [f for f in findings if f.severity is Severity.ERROR]
    assert (finding.kind, finding.subject) == (Kind.FILE_MODIFIED, "demo-model")
    assert "demo_model/layers.py was modified after installation" in finding.message
    assert "RECORD size 10, on disk 11" in finding.message
    assert finding.expected and finding.expected.startswith("sha256:")
    assert finding.location == str(site / "demo_model" / "layers.py")


def test_deleted_file_is_file_missing(site: Path) -> None:
    (site / "helper.py").unlink()
    findings, _ = check(site)
    assert problems(findings) == [("file-missing", "error", "helper")]


def test_edit_that_keeps_size_and_mtime_is_caught_through_the_cache(
    site: Path, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    assert problems(check(site, cache_dir)[0]) == []
    target = site / "demo_model" / "layers.py"
    before = target.stat()
    target.write_text("DEPTH = 4\n")  # same size
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    findings, stats = check(site, cache_dir)
    assert problems(findings) == [("file-modified", "error", "demo-model")]
    # helper's files come from its unchanged verdict, demo-model's other files from the hash cache
    assert stats.from_cache == stats.files_verified - 1


def test_warm_run_only_stats_and_rehash_reads_everything(site: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    _, cold = check(site, cache_dir)
    _, warm = check(site, cache_dir)
    assert cold.from_cache == 0
    assert warm.from_cache == warm.files_verified == cold.files_verified
    assert warm.bytes_hashed == 0
    _, again = check(site, cache_dir, rehash=True)
    assert again.from_cache == 0 and again.bytes_hashed == cold.bytes_hashed


def test_a_flagged_distribution_is_checked_again_every_run(site: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (site / "helper.py").write_text("tampered = 1\n")
    assert problems(check(site, cache_dir)[0]) == [("file-modified", "error", "helper")]
    assert problems(check(site, cache_dir)[0]) == [("file-modified", "error", "helper")]


def test_corrupt_caches_are_ignored_with_a_note(site: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    check(site, cache_dir)
    for cache_file in cache_dir.iterdir():
        cache_file.write_text("{not json")
    (site / "helper.py").write_text("tampered = 1\n")  # forces the per-file cache to load
    findings, stats = check(site, cache_dir)
    assert problems(findings) == [("file-modified", "error", "helper")]
    assert any("is corrupt" in note for note in stats.notes)
    assert "is corrupt" in " ".join(stats.notes)


def test_namespace_init_shared_by_two_distributions(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "ns-a", "1.0", {"ns/__init__.py": "# a\n", "ns/a.py": "A = 1\n"})
    install_fake(site, "ns-b", "1.0", {"ns/__init__.py": "# b\n", "ns/b.py": "B = 1\n"})
    findings, _ = check(site)  # ns-b's install overwrote ns-a's __init__.py
    assert problems(findings) == []


def test_startup_code_nobody_owns(site: Path) -> None:
    (site / "zz_evil.pth").write_text("import os; os.system('curl example.invalid')\n")
    (site / "extra_paths.pth").write_text("/opt/models\n# a comment\n")
    (site / "sitecustomize.py").write_text("print('hi')\n")
    (site / "stray.py").write_text("X = 1\n")
    findings, _ = check(site)
    assert sorted(problems(findings)) == [
        ("unowned-module", "warning", "stray.py"),
        ("unowned-startup-code", "error", "sitecustomize.py"),
        ("unowned-startup-code", "error", "zz_evil.pth"),
        # only paths, naming nothing that exists: still reported (issue 12)
        ("unowned-startup-code", "warning", "extra_paths.pth"),
    ]
    pth = next(f for f in findings if f.subject == "zz_evil.pth")
    assert "import os; os.system" in pth.message


def test_owned_startup_hook_is_listed_not_flagged(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(
        site,
        "setuptools",
        "80.0",
        {
            "distutils-precedence.pth": "import os; var = 'SETUPTOOLS_USE_DISTUTILS'\n",
            "_distutils_hack/__init__.py": "\n",
        },
    )
    findings, _ = check(site)
    assert problems(findings) == []
    [hook] = [f for f in findings if f.kind is Kind.STARTUP_HOOK]
    assert "belongs to setuptools" in hook.message


def test_rows_that_cannot_be_verified_are_counted_not_flagged(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(
        site,
        "pretend",
        "1.0",
        extra_record_rows=[
            ("__pycache__/pretend.cpython-311.pyc", "", ""),
            ("pretend-1.0.dist-info/REQUESTED", "", ""),
        ],
    )
    findings, stats = check(site)
    assert problems(findings) == []
    assert stats.not_verifiable == {
        "RECORD files": 1,
        "compiled .pyc files": 1,
        "rows without a hash": 1,
    }


def test_hex_spelled_record_hashes_are_a_known_quirk(tmp_path: Path) -> None:
    import hashlib

    site = tmp_path / "site"
    data = "X = 1\n"
    hex_digest = hashlib.sha256(data.encode()).hexdigest()
    dist_info = install_fake(site, "uvbuilt", "0.1", {"uvbuilt.py": data})
    record = dist_info / "RECORD"
    lines = [
        f"uvbuilt.py,sha256={hex_digest},{len(data)}" if line.startswith("uvbuilt.py,") else line
        for line in record.read_text().splitlines()
    ]
    record.write_text("\n".join(lines) + "\n")
    findings, _ = check(site)
    assert problems(findings) == []
    assert [f.kind for f in findings] == [Kind.KNOWN_QUIRK]


def test_virtualenv_files_are_noted(tmp_path: Path) -> None:
    root = tmp_path / "env"
    site = root / "lib" / "python3.11" / "site-packages"
    install_fake(site, "helper", "1.0")
    (root / "pyvenv.cfg").write_text("home = /usr/bin\nvirtualenv = 20.26.0\n")
    (site / "_virtualenv.pth").write_text("import _virtualenv\n")
    (site / "_virtualenv.py").write_text("# patches\n")
    findings, _ = check(site)
    assert problems(findings) == []
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")  # plain venv: not virtualenv's
    assert ("unowned-startup-code", "error", "_virtualenv.pth") in problems(check(site)[0])


def test_hidden_copies_own_their_files_and_are_verified(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    install_fake(first, "demo", "2.0")
    install_fake(second, "demo", "1.0", {"demo.py": "OLD = True\n"})
    snapshot = take_snapshot([str(first), str(second)])
    findings, stats, ownership = verify_installed_files(snapshot, quirks=())
    findings.extend(find_unowned_code(snapshot, ownership))
    assert problems(findings) == []  # the hidden demo.py is owned, not a stray
    assert stats.files_verified == 8
    (second / "demo.py").write_text("OLD = False\n")
    findings, _, _ = verify_installed_files(snapshot, quirks=())
    assert problems(findings) == [("file-modified", "error", "demo")]


def test_record_less_distributions_own_their_top_level_names(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist_info = install_fake(
        site, "debianpkg", "1.0", {"debianpkg/__init__.py": "\n"}, record=False
    )
    (dist_info / "top_level.txt").write_text("debianpkg\n")
    (site / "stray.py").write_text("\n")
    findings, _ = check(site)
    assert problems(findings) == [("unowned-module", "warning", "stray.py")]


def test_a_reviewed_record_quirk_is_a_note_not_tampering(tmp_path: Path) -> None:
    """numba 0.37-0.42 shipped RECORD hashes that do not match (numba/numba#3665)."""
    site = tmp_path / "site"
    install_fake(site, "numba", "0.40.0", {"numba/__init__.py": "\n"})
    (site / "numba" / "__init__.py").write_text("# as shipped\n")
    snapshot = take_snapshot([str(site)])
    findings, _, _ = verify_installed_files(snapshot)  # the bundled quirks file
    [finding] = findings
    assert finding.kind is Kind.KNOWN_QUIRK and finding.severity is Severity.INFO
    assert finding.hint == "see https://github.com/numba/numba/issues/3665"
    install_fake(tmp_path / "later", "numba", "0.44.0", {"numba/__init__.py": "\n"})
    (tmp_path / "later" / "numba" / "__init__.py").write_text("# edited\n")
    later, _, _ = verify_installed_files(take_snapshot([str(tmp_path / "later")]))
    assert [f.kind for f in later] == [Kind.FILE_MODIFIED]


def check_with_records(site: Path, cache_dir: Path):
    """One gated-run's worth of work with the record cache, as the gate does it."""
    from pytest_mlsupply.hashcache import RecordCache
    from pytest_mlsupply.verify import RECORD_CACHE_FILE

    records = RecordCache.load(cache_dir / RECORD_CACHE_FILE)
    snapshot = take_snapshot([str(site)], keep_rows=True, record_cache=records)
    findings, stats, ownership = verify_installed_files(
        snapshot, cache_dir=cache_dir, quirks=(), record_cache=records
    )
    records.save(cache_dir / RECORD_CACHE_FILE)
    findings.extend(find_unowned_code(snapshot, ownership))
    return snapshot, findings, stats, ownership


def test_a_warm_run_with_the_record_cache_reads_no_record(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    _, _, cold, first = check_with_records(site, cache_dir)
    contents = [d.content for d in take_snapshot([str(site)]).distributions]
    # Reading any RECORD now would fail the test: the warm run must not need one.
    import pytest_mlsupply.snapshot as snapshot_module
    import pytest_mlsupply.verify as verify_module

    def no_record(*args: object, **kwargs: object) -> None:
        raise AssertionError("RECORD was parsed on a warm run")

    monkeypatch.setattr(snapshot_module, "summarize_record", no_record)
    monkeypatch.setattr(verify_module, "iter_record_rows", no_record)
    snapshot, findings, warm, second = check_with_records(site, cache_dir)
    assert problems(findings) == []
    assert warm.files_verified == warm.from_cache == cold.files_verified
    assert warm.not_verifiable == cold.not_verifiable
    assert second.top_level == first.top_level
    assert [d.content for d in snapshot.distributions] == contents


def test_the_record_cache_never_hides_a_change(site: Path, tmp_path: Path) -> None:
    """A changed file, a rewritten RECORD, a new module: each is seen on the next warm run."""
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    check_with_records(site, cache_dir)
    check_with_records(site, cache_dir)
    (site / "helper.py").write_text("tampered = 1\n")
    _, findings, _, _ = check_with_records(site, cache_dir)
    assert problems(findings) == [("file-modified", "error", "helper")]
    # Reinstall helper at another version: its RECORD is new, the cached entry must not apply.
    import shutil

    for dist_info in site.glob("helper-*.dist-info"):
        shutil.rmtree(dist_info)
    (site / "helper.py").unlink()
    install_fake(site, "helper", "2.1", {"helper.py": "VERSION = '2.1'\n"})
    snapshot, findings, _, _ = check_with_records(site, cache_dir)
    assert problems(findings) == []
    helper = next(d for d in snapshot.distributions if d.name == "helper")
    assert helper.version == "2.1"
    assert helper.content == next(
        d.content for d in take_snapshot([str(site)]).distributions if d.name == "helper"
    )
    (site / "stray.py").write_text("import os\n")
    _, findings, _, _ = check_with_records(site, cache_dir)
    assert problems(findings) == [("unowned-module", "warning", "stray.py")]


def test_a_corrupt_record_cache_is_ignored(site: Path, tmp_path: Path) -> None:
    from pytest_mlsupply.verify import RECORD_CACHE_FILE

    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    check_with_records(site, cache_dir)
    (cache_dir / RECORD_CACHE_FILE).write_text('{"version": 1, "entries": {"x": [')
    _, findings, stats, _ = check_with_records(site, cache_dir)
    assert problems(findings) == []
    assert stats.files_verified == 9


# ------------------------------------------------ RECORD rows named in a roundabout way


def _rewrite_record(site: Path, change) -> Path:
    [record] = site.glob("demo_model-1.0.dist-info/RECORD")
    record.write_text(change(record.read_text()))
    return record


def test_absolute_record_rows_are_verified_where_they_point(site: Path) -> None:
    """The installed-packages spec allows absolute rows (Poetry's editable install writes them)."""
    _rewrite_record(site, lambda text: text.replace("demo_model/", f"{site}/demo_model/"))
    findings, stats = check(site)
    assert problems(findings) == []
    assert stats.files_verified == 9
    with (site / "demo_model" / "layers.py").open("a") as stream:
        stream.write("#")
    assert problems(check(site)[0]) == [("file-modified", "error", "demo-model")]


def test_a_row_inside_pycache_owns_nothing(site: Path) -> None:
    """Left out of the content digest, so it may not vouch for a file either."""
    cache = site / "demo_model" / "__pycache__"
    cache.mkdir()
    (cache / "evil.py").write_text("RAN = True\n")
    _rewrite_record(site, lambda text: text + "demo_model/__pycache__/evil.py,sha256=x,11\n")
    findings, stats = check(site)
    assert ("unowned-module", "error", "demo-model") in problems(findings)
    assert stats.not_verifiable["rows inside __pycache__"] == 1


@pytest.mark.parametrize(
    "row", ["demo_model/__pycache__/../layers.py", "demo_model/a\x00b.txt", "demo_model//layers.py"]
)
def test_rows_a_record_may_not_have_make_a_broken_distribution(site: Path, row: str) -> None:
    from pytest_mlsupply.checks import snapshot_findings

    _rewrite_record(site, lambda text: text + f"{row},sha256=x,1\n")
    snapshot = take_snapshot([str(site)])
    findings, _, ownership = verify_installed_files(snapshot, quirks=())
    findings.extend(find_unowned_code(snapshot, ownership))
    findings.extend(snapshot_findings(snapshot))
    assert ("broken-distribution", "error", "demo-model") in problems(findings)
