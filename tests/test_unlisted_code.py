"""Code inside a distribution's folder that no RECORD lists with a hash, over fake site dirs.

Each test is one attempt to get a wrong all-clear out of the ownership check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest_mlsupply.verify as verify_module
from pytest_mlsupply.findings import Finding, Kind, Severity
from pytest_mlsupply.snapshot import take_snapshot
from pytest_mlsupply.verify import (
    PYC_CODE,
    PYC_HINT,
    PYC_STRAY,
    PYC_UNCHECKED,
    UNLISTED_CODE,
    UNLISTED_SOURCELESS,
    UNLISTED_SYMLINK,
    WALK_CACHE_FILE,
    find_unowned_code,
    verify_installed_files,
)

from gatehelpers import verify_site as check
from wheelfactory import install_fake

VICTIM = {
    "victim/__init__.py": "from victim import core\n",
    "victim/core.py": "SAFE = True\n",
    "victim/data/labels.json": "[]\n",
}


def problems(findings: list[Finding]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (f.kind.value, f.severity.value, f.subject, os.path.basename(f.location or ""))
        for f in findings
        if f.severity is not Severity.INFO
    )


@pytest.fixture(autouse=True)
def _no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folders made a moment ago may be cached here; the racy window has its own test."""
    monkeypatch.setattr(verify_module, "RACY_WINDOW_NS", 0)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "lib" / "python3.11" / "site-packages"
    install_fake(folder, "victim", "1.0", VICTIM)
    return folder


@pytest.fixture(params=["cold", "warm"])
def cache_dir(request: pytest.FixtureRequest, tmp_path: Path, site: Path) -> Path | None:
    """Each attack is tried without caches and after a clean run filled every cache."""
    if request.param == "cold":
        return None
    folder = tmp_path / "cache"
    folder.mkdir()
    assert problems(check(site, folder)) == []
    assert problems(check(site, folder)) == []  # the warm path itself
    return folder


def test_a_clean_package_with_data_and_bytecode_passes(site: Path, cache_dir: Path | None) -> None:
    cache = site / "victim" / "__pycache__"
    cache.mkdir()
    (cache / "core.cpython-311.pyc").write_bytes(b"\x00" * 16)  # written at run time
    (cache / "__init__.cpython-311.opt-1.pyc").write_bytes(b"\x00" * 16)  # python -O
    (cache / "core.cpython-311.pyc.140234").write_bytes(b"")  # py_compile's temporary file
    (cache / "gone.cpython-311.pyc").write_bytes(b"\x00" * 16)  # no source: never imported
    (site / "victim" / "data" / "cache.bin").write_bytes(b"\x01")  # data made at run time
    assert problems(check(site, cache_dir)) == []


def test_an_added_module_inside_a_locked_package(site: Path, cache_dir: Path | None) -> None:
    (site / "victim" / "extra.py").write_text("open('marker', 'w')\n")
    [finding] = [f for f in check(site, cache_dir) if f.severity is not Severity.INFO]
    assert (finding.kind, finding.severity, finding.subject) == (
        Kind.UNOWNED_MODULE,
        Severity.ERROR,
        "victim",
    )
    path = str(site / "victim" / "extra.py")
    assert finding.message == UNLISTED_CODE.format(path=path, owner="victim")
    assert finding.location == path


def test_a_package_shadowing_a_verified_module(site: Path, cache_dir: Path | None) -> None:
    """victim/core/__init__.py wins over the verified victim/core.py at import."""
    (site / "victim" / "core").mkdir()
    (site / "victim" / "core" / "__init__.py").write_text("SAFE = False\n")
    assert problems(check(site, cache_dir)) == [
        ("unowned-module", "error", "victim", "__init__.py")
    ]


def test_a_sourceless_pyc_is_code(site: Path, cache_dir: Path | None) -> None:
    (site / "victim" / "helper.pyc").write_bytes(b"\x00" * 16)
    [finding] = [f for f in check(site, cache_dir) if f.severity is not Severity.INFO]
    assert finding.severity is Severity.ERROR
    assert finding.message.endswith(UNLISTED_SOURCELESS)


@pytest.mark.parametrize(
    "name",
    [
        "_fast.cpython-311-x86_64-linux-gnu.so",
        "_fast.abi3.so",
        "_fast.pyd",
        "libevil.so.1",
        "deep/inside/_x.so",
        "__pycache__/evil.py",  # importable as the namespace package victim.__pycache__
        "gui.pyw",
        "nested.pth",
    ],
)
def test_dropped_in_code_files(site: Path, name: str) -> None:
    target = site / "victim" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"\x7fELF")
    assert problems(check(site)) == [("unowned-module", "error", "victim", target.name)]


def test_a_symlinked_folder_inside_a_package(site: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "__init__.py").write_text("X = 1\n")
    (site / "victim" / "plugins").symlink_to(elsewhere, target_is_directory=True)
    [finding] = [f for f in check(site) if f.severity is not Severity.INFO]
    path = str(site / "victim" / "plugins")
    assert finding.message == UNLISTED_SYMLINK.format(path=path, owner="victim")
    assert finding.severity is Severity.ERROR


def test_a_row_without_a_hash_does_not_vouch_for_a_module(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "victim", "1.0", VICTIM, extra_record_rows=[("victim/extra.py", "", "")])
    (site / "victim" / "extra.py").write_text("X = 1\n")
    assert problems(check(site)) == [("unowned-module", "error", "victim", "extra.py")]


@pytest.mark.parametrize(
    ("hook", "row"),
    [
        ("zz.pth", "zz.pth/__pycache__/x"),
        ("zz.pth", "zz.pth"),
        ("sitecustomize.py", "sitecustomize.py/__pycache__/x"),
        ("sitecustomize.py", "sitecustomize.py"),
    ],
)
def test_a_hashless_row_does_not_own_startup_code(
    tmp_path: Path, hook: str, row: str, cache_dir: Path | None
) -> None:
    """Hashless rows leave the content digest unchanged, so they must not grant ownership."""
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    dist_info = site / "victim-1.0.dist-info"
    before = take_snapshot([str(site)]).by_name()["victim"].content
    with (dist_info / "RECORD").open("a") as stream:
        stream.write(f"{row},,\n")
    if "__pycache__" in row:  # invisible to the lock; a direct row at least changes it
        assert take_snapshot([str(site)]).by_name()["victim"].content == before
    (site / hook).write_text("import os; open('marker', 'w')\n")
    assert problems(check(site, cache_dir)) == [("unowned-startup-code", "error", hook, hook)]


def test_a_hashless_row_still_counts_a_pyc_it_describes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    rows = [("victim/__pycache__/core.cpython-311.pyc", "", "")]
    install_fake(site, "victim", "1.0", VICTIM, extra_record_rows=rows)
    (site / "victim" / "__pycache__").mkdir()
    (site / "victim" / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"\x00" * 16)
    assert problems(check(site)) == []


def test_namespace_packages_shared_by_two_distributions(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "acme-a", "1.0", {"acme/a/__init__.py": "\n", "acme/a/m.py": "\n"})
    install_fake(site, "acme-b", "1.0", {"acme/b/__init__.py": "\n"})
    assert problems(check(site)) == []
    (site / "acme" / "c.py").write_text("\n")
    assert problems(check(site)) == [("unowned-module", "error", "acme-a", "c.py")]


def test_record_less_packages_are_not_walked(tmp_path: Path) -> None:
    """Without RECORD nothing can be verified file by file; that is a note elsewhere."""
    site = tmp_path / "site"
    dist_info = install_fake(site, "debpkg", "1.0", {"debpkg/__init__.py": "\n"}, record=False)
    (dist_info / "top_level.txt").write_text("debpkg\n")
    (site / "debpkg" / "more.py").write_text("\n")
    assert problems(check(site)) == []


def test_stray_code_outside_any_package_is_a_warning(site: Path) -> None:
    (site / "loose.pyc").write_bytes(b"\x00" * 16)
    (site / "_native.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    assert problems(check(site)) == [
        ("unowned-module", "warning", name, name)
        for name in ("_native.cpython-311-x86_64-linux-gnu.so", "loose.pyc")
    ]


def test_a_warm_run_lists_no_package_folder(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    check(site, cache)
    listed: list[str] = []
    real_scandir = os.scandir

    def counting(path: str) -> object:
        listed.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting)
    assert problems(check(site, cache)) == []
    assert str(site / "victim") not in listed and listed  # the site folder itself is listed
    (site / "victim" / "data" / "new.py").write_text("\n")  # a folder's stat changes
    listed.clear()
    assert problems(check(site, cache)) == [("unowned-module", "error", "victim", "new.py")]
    assert str(site / "victim" / "data") in listed


def test_a_failed_walk_is_not_kept(site: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    extra = site / "victim" / "extra.py"
    extra.write_text("\n")
    assert problems(check(site, cache)) == [("unowned-module", "error", "victim", "extra.py")]
    assert str(site) not in (cache / WALK_CACHE_FILE).read_text()
    assert problems(check(site, cache)) == [("unowned-module", "error", "victim", "extra.py")]
    extra.unlink()
    assert problems(check(site, cache)) == []
    assert str(site) in (cache / WALK_CACHE_FILE).read_text()


def test_a_record_that_stops_listing_a_file_is_walked_again(site: Path, tmp_path: Path) -> None:
    """No folder changes, but the RECORD does: what counts as verified changed."""
    cache = tmp_path / "cache"
    cache.mkdir()
    assert problems(check(site, cache)) == []
    record = site / "victim-1.0.dist-info" / "RECORD"
    kept = [line for line in record.read_text().splitlines() if "victim/core.py" not in line]
    record.write_text("\n".join(kept) + "\n")
    assert ("unowned-module", "error", "victim", "core.py") in problems(check(site, cache))


def test_a_corrupt_walk_cache_is_ignored(site: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    check(site, cache)
    (site / "victim" / "extra.py").write_text("\n")
    for text in ("{not json", '{"version": 1, "walks": {"x": 1}}', '{"version": 1, "walks": 3}'):
        (cache / WALK_CACHE_FILE).write_text(text)
        assert problems(check(site, cache)) == [("unowned-module", "error", "victim", "extra.py")]


@pytest.mark.parametrize(
    ("hook", "text"), [("sitecustomize.py", "X = 1\n"), ("zz.pth", "import os\n")]
)
def test_startup_code_named_only_by_a_record_less_distribution(
    tmp_path: Path, hook: str, text: str
) -> None:
    """top_level.txt is no proof for code that runs at every start: it must be hashed."""
    site = tmp_path / "site"
    dist_info = install_fake(site, "legacy", "1.0", {"legacy.py": "\n"}, record=False)
    (dist_info / "top_level.txt").write_text(f"legacy\n{hook.split('.')[0]}\n{hook}\n")
    (site / hook).write_text(text)
    [finding] = [f for f in check(site) if f.severity is not Severity.INFO]
    assert (finding.kind, finding.severity, finding.subject) == (
        Kind.UNOWNED_STARTUP_CODE,
        Severity.ERROR,
        hook,
    )
    assert "a distribution without RECORD names it" in finding.message


def test_a_hashed_startup_hook_is_still_a_note(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "tool", "1.0", {"tool.pth": "import os\n", "sitecustomize.py": "\n"})
    findings = check(site)
    assert problems(findings) == []
    assert [f.kind for f in findings if f.subject == "tool.pth"] == [Kind.STARTUP_HOOK]


def test_editable_finders_data_dirs_and_installer_files_pass(tmp_path: Path) -> None:
    site = tmp_path / "site"
    finder = "__editable___victim_1_0_finder"
    install_fake(
        site,
        "victim",
        "1.0",
        {
            "__editable__.victim-1.0.pth": f"import {finder}; {finder}.install()\n",
            f"{finder}.py": "def install():\n    pass\n",
        },
        direct_url='{"url": "file:///src/victim", "dir_info": {"editable": true}}',
    )
    # An empty leftover runs nothing; one holding code is an error (test_installer_quirks.py:
    # a path-only .pth line can put it on sys.path).
    (site / "victim-1.0.data" / "purelib").mkdir(parents=True)
    findings = check(site)
    assert problems(findings) == []
    assert [f.kind for f in findings] == [Kind.STARTUP_HOOK]


def test_a_walk_is_not_kept_while_its_folders_are_racy(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder changed within the window: its times may not show the next change."""
    monkeypatch.setattr(verify_module, "RACY_WINDOW_NS", 3_600 * 10**9)
    cache = tmp_path / "cache"
    cache.mkdir()
    assert problems(check(site, cache)) == []
    assert (
        not (cache / WALK_CACHE_FILE).exists()
        or str(site) not in (cache / WALK_CACHE_FILE).read_text()
    )
    monkeypatch.setattr(verify_module, "RACY_WINDOW_NS", 0)
    assert problems(check(site, cache)) == []
    assert str(site) in (cache / WALK_CACHE_FILE).read_text()


# ------------------------------------------------------------------ __pycache__ entries


def pyc_bytes(flags: int, body: bytes = b"") -> bytes:
    import importlib.util

    return importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little") + b"\0" * 8 + body


@pytest.mark.parametrize(
    ("name", "content", "template"),
    [
        ("core.cpython-311.pyc", pyc_bytes(0b01), PYC_UNCHECKED),  # unchecked hash-based
        ("core.cpython-311.opt-2.pyc", pyc_bytes(0b01), PYC_UNCHECKED),
        ("evil.pyc", pyc_bytes(0), PYC_STRAY),  # importable as victim.__pycache__.evil
        ("core.pyc", pyc_bytes(0), PYC_STRAY),
        ("evil.py", b"RAN = True\n", PYC_CODE),
        ("evil.cpython-311-x86_64-linux-gnu.so", b"\x7fELF", PYC_CODE),
    ],
)
def test_code_in_pycache_that_python_would_run_unchecked(
    site: Path, cache_dir: Path | None, name: str, content: bytes, template: str
) -> None:
    cache = site / "victim" / "__pycache__"
    cache.mkdir()
    (cache / "core.cpython-311.pyc").write_bytes(pyc_bytes(0))
    (cache / name).write_bytes(content)
    [finding] = [f for f in check(site, cache_dir) if f.severity is not Severity.INFO]
    assert (finding.kind, finding.severity, finding.subject) == (
        Kind.UNOWNED_MODULE,
        Severity.ERROR,
        "victim",
    )
    assert finding.message == template.format(path=str(cache / name))
    assert finding.hint == PYC_HINT


def test_checked_hash_pyc_is_fine_whatever_its_hash(site: Path, cache_dir: Path | None) -> None:
    """Python compares a checked hash-based .pyc with its source and recompiles on a mismatch."""
    cache = site / "victim" / "__pycache__"
    cache.mkdir()
    (cache / "core.cpython-311.pyc").write_bytes(pyc_bytes(0b11, b"garbage"))
    assert problems(check(site, cache_dir)) == []


def test_dotted_names_in_pycache_cannot_be_imported(site: Path, cache_dir: Path | None) -> None:
    """pytest caches rewritten plugin modules as ``core.cpython-311-pytest-9.2.0.pyc``: a
    name with dots before ``.pyc`` is no module name, so nothing can import it."""
    cache = site / "victim" / "__pycache__"
    cache.mkdir()
    (cache / "core.cpython-311-pytest-9.2.0.pyc").write_bytes(pyc_bytes(0))
    (cache / "core.cpython-311.pyc.1234567").write_bytes(pyc_bytes(0))
    assert problems(check(site, cache_dir)) == []


def test_a_folder_inside_pycache_is_importable(site: Path, cache_dir: Path | None) -> None:
    evil = site / "victim" / "__pycache__" / "evil"
    evil.mkdir(parents=True)
    (evil / "__init__.py").write_text("RAN = True\n")
    assert [p[3] for p in problems(check(site, cache_dir))] == ["evil"]


def test_flags_edited_in_place_are_seen_through_the_walk_cache(site: Path, tmp_path: Path) -> None:
    """An in-place edit keeps the folder's times; the walk cache keeps each .pyc's stat too."""
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    pyc = site / "victim" / "__pycache__" / "core.cpython-311.pyc"
    pyc.parent.mkdir()
    pyc.write_bytes(pyc_bytes(0))
    folder_times = pyc.parent.stat()
    assert problems(check(site, cache_dir)) == []
    assert problems(check(site, cache_dir)) == []
    with pyc.open("r+b") as stream:
        stream.seek(4)
        stream.write((0b01).to_bytes(4, "little"))
    after = pyc.parent.stat()  # the folder's times say nothing changed
    assert (after.st_mtime_ns, after.st_ctime_ns) == (
        folder_times.st_mtime_ns,
        folder_times.st_ctime_ns,
    )
    assert [p[3] for p in problems(check(site, cache_dir))] == ["core.cpython-311.pyc"]


def test_top_level_pycache_is_judged_like_any_other(site: Path) -> None:
    install_fake(site, "six", "1.0", {"six.py": ""})
    cache = site / "__pycache__"
    cache.mkdir()
    (cache / "six.cpython-311.pyc").write_bytes(pyc_bytes(0))
    assert problems(check(site, None)) == []
    (cache / "evil.pyc").write_bytes(pyc_bytes(0))
    (cache / "six.cpython-311.pyc").write_bytes(pyc_bytes(0b01))
    assert [p[3] for p in problems(check(site, None))] == [
        "evil.pyc",
        "six.cpython-311.pyc",
    ]


@pytest.mark.parametrize("name", ["README", "README.txt", ".DS_Store"])
def test_names_skipped_as_files_are_walked_as_folders(site: Path, name: str) -> None:
    (site / name).write_text("not code\n")
    assert problems(check(site, None)) == []
    (site / name).unlink()
    (site / name).mkdir()
    (site / name / "__init__.py").write_text("RAN = True\n")
    found = problems(check(site, None))
    if name.isidentifier():
        assert [(kind, where) for kind, _, _, where in found] == [("unowned-module", name)]


@pytest.mark.parametrize("spelling", ["relative", "absolute"])
def test_a_row_outside_its_site_directory_cannot_vouch_for_code_in_another(
    site: Path, tmp_path: Path, spelling: str
) -> None:
    """The digest leaves out rows outside their own site directory; they may not vouch either."""
    import base64
    import hashlib

    other = tmp_path / "other-site"
    install_fake(other, "tool", "1.0", {"tool.py": ""})
    extra = site / "victim" / "extra.py"
    extra.write_text("RAN = True\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(extra.read_bytes()).digest()).decode()
    row = os.path.relpath(extra, other) if spelling == "relative" else str(extra)
    [record] = other.glob("tool-1.0.dist-info/RECORD")
    with record.open("a") as stream:
        stream.write(f"{row},sha256={digest.rstrip('=')},{extra.stat().st_size}\n")
    snapshot = take_snapshot([str(site), str(other)], keep_rows=True)
    findings, _, ownership = verify_installed_files(snapshot, quirks=())
    assert problems(findings) == []  # the row's file matches its hash: verified
    found = problems(list(find_unowned_code(snapshot, ownership)))
    assert found == [("unowned-module", "error", "victim", "extra.py")]


@given(
    st.text(alphabet=st.characters(blacklist_characters="/\x00"), min_size=1),
    st.sampled_from(["", "1", "2"]),
)
def test_every_name_python_caches_under_is_recognised(stem: str, optimization: str) -> None:
    """``_CACHED_PYC`` reads back what importlib.util.cache_from_source writes."""
    import importlib.util

    cached = importlib.util.cache_from_source(f"/pkg/{stem}.py", optimization=optimization)
    match = verify_module._CACHED_PYC.fullmatch(os.path.basename(cached))
    assert match is not None
    assert match["stem"] == stem or "." in stem


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=20), st.text(alphabet="ab.-_0123pyco", min_size=1, max_size=14))
def test_any_pycache_entry_is_judged_without_raising(site: Path, header: bytes, name: str) -> None:
    cache = site / "victim" / "__pycache__"
    cache.mkdir(exist_ok=True)
    for old in cache.iterdir():
        old.unlink()
    if name in (".", ".."):
        return
    (cache / name).write_bytes(header)
    for finding in check(site, None):
        assert finding.severity is Severity.INFO or finding.subject == "victim"
