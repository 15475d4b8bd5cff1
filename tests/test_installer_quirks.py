"""Installer quirks are not findings, and nothing that runs hides behind one (issue 12, item 6).

uv creates the folders a wheel lists as directory entries (``PyYAML.libs/``,
``cffi.libs/``, ``black.libs/``) even when nothing goes in them. A folder whose
name ``import`` cannot spell is not a module, and an empty one runs nothing; but
such a folder can still hold code that runs (shared libraries an extension module
loads through its RPATH, a folder a ``.pth`` line puts on ``sys.path``,
``importlib.import_module("foo-bar")``). Each test below is an attempt to get a
wrong all-clear out of that rule.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest_mlsupply.verify as verify_module
from pytest_mlsupply.findings import Finding, Kind, Severity
from pytest_mlsupply.verify import (
    UNIMPORTABLE_CODE,
    UNIMPORTABLE_FILES,
    UNIMPORTABLE_HINT,
    UNIMPORTABLE_LINK,
    WALK_CACHE_FILE,
)

from gatehelpers import verify_site as check
from wheelfactory import install_fake

#: Folders uv leaves empty in real installs (PyYAML 6.0.2, cffi 1.17.1, black 22.12.0,
#: Cython 0.29.37 wheels list them as directory entries with no file under them).
UV_EMPTY_FOLDERS = ("PyYAML.libs", "cffi.libs", "black.libs", "Cython.libs")


def problems(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return sorted(
        (f.kind.value, f.severity.value, f.subject)
        for f in findings
        if f.severity is not Severity.INFO
    )


@pytest.fixture(autouse=True)
def _no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folders made a moment ago may be cached here (the walk cache is in play)."""
    monkeypatch.setattr(verify_module, "RACY_WINDOW_NS", 0)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site-packages"
    install_fake(folder, "pyyaml", "6.0.2", {"yaml/__init__.py": "\n", "_yaml/__init__.py": "\n"})
    install_fake(
        folder,
        "numpy",
        "2.4.6",
        {"numpy/__init__.py": "\n", "numpy.libs/libscipy_openblas64_-1a2b.so": "ELF\n"},
    )
    return folder


def test_empty_folders_uv_creates_are_no_finding(site: Path) -> None:
    for name in UV_EMPTY_FOLDERS:
        (site / name).mkdir()
    (site / "numpy" / "_core" / "lib" / "npy-pkg-config").mkdir(parents=True)  # inside: as before
    assert problems(check(site)) == []


@pytest.mark.parametrize(
    "name", ["foo.libs", "foo-bar", "foo_bar-1.0.data", "~orch", "1st", "with space"]
)
def test_any_unimportable_empty_folder_nested_or_not_is_no_finding(site: Path, name: str) -> None:
    (site / name / "sub" / "deeper").mkdir(parents=True)
    (site / name / "other").mkdir()
    assert problems(check(site)) == []


def test_an_empty_folder_with_an_importable_name_stays_a_warning(site: Path) -> None:
    """``import torch_xla`` succeeds on an empty folder (a namespace package): not a no-op."""
    (site / "torch_xla").mkdir()
    assert problems(check(site)) == [("unowned-module", "warning", "torch_xla")]


def test_a_shared_library_in_an_unowned_libs_folder_is_an_error(site: Path) -> None:
    """An extension module's RPATH ($ORIGIN/../foo.libs) loads it: code that runs unverified."""
    (site / "cffi.libs").mkdir()
    (site / "cffi.libs" / "libffi-5a3c.so.8.1.0").write_bytes(b"\x7fELF")
    [finding] = [f for f in check(site) if f.severity is not Severity.INFO]
    assert (finding.kind, finding.severity, finding.subject) == (
        Kind.UNOWNED_MODULE,
        Severity.ERROR,
        "cffi.libs",
    )
    assert finding.message == UNIMPORTABLE_CODE.format(
        path=site / "cffi.libs", example="libffi-5a3c.so.8.1.0"
    )
    assert finding.hint == UNIMPORTABLE_HINT
    assert finding.location == str(site / "cffi.libs")


@pytest.mark.parametrize(
    "relative",
    [
        "foo-bar/evil.pth",  # a dash, and a .pth inside (fail closed: we do not argue it is inert)
        "foo-bar/__init__.py",  # importlib.import_module("foo-bar") imports it
        "foo.libs/deep/er/libevil.so",
        "demo-1.0.data/purelib/evil.py",  # a *.data folder an installer should have emptied
        "~umpy/core/_multiarray.cpython-311-x86_64-linux-gnu.so",  # pip's interrupted upgrade
        "foo.libs/loader.pyc",
    ],
)
def test_code_at_any_depth_of_an_unimportable_folder_is_an_error(site: Path, relative: str) -> None:
    target = site / relative
    target.parent.mkdir(parents=True)
    target.write_text("import os\n")
    top = relative.split("/")[0]
    assert problems(check(site)) == [("unowned-module", "error", top)]


def test_other_files_in_an_unimportable_folder_are_a_warning(site: Path) -> None:
    (site / "notes-folder").mkdir()
    (site / "notes-folder" / "README.md").write_text("hello\n")
    [finding] = [f for f in check(site) if f.severity is not Severity.INFO]
    assert (finding.severity, finding.subject) == (Severity.WARNING, "notes-folder")
    assert finding.message == UNIMPORTABLE_FILES.format(
        path=site / "notes-folder", example="README.md"
    )


def test_a_link_to_a_folder_inside_is_code(site: Path, tmp_path: Path) -> None:
    """No RECORD can list what a linked folder holds: fail closed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (site / "foo.libs").mkdir()
    os.symlink(elsewhere, site / "foo.libs" / "linked")
    assert problems(check(site)) == [("unowned-module", "error", "foo.libs")]


def test_a_linked_unimportable_folder_is_an_error_even_when_empty(
    site: Path, tmp_path: Path
) -> None:
    """A link is not followed (it could lead anywhere, even to /): no installer makes one,
    and a link to a folder of libraries must not be a weaker finding than the folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, site / "foo.libs")
    [finding] = [f for f in check(site) if f.severity is not Severity.INFO]
    assert (finding.severity, finding.subject) == (Severity.ERROR, "foo.libs")
    assert finding.message == UNIMPORTABLE_LINK.format(path=site / "foo.libs", example=elsewhere)


def test_hidden_folders_are_judged_by_the_code_they_hold(site: Path) -> None:
    """A hidden top-level folder was never reported, whatever it held."""
    (site / ".cache" / "sub").mkdir(parents=True)
    (site / ".cache" / "notes.txt").write_text("hello\n")
    assert problems(check(site)) == []
    (site / ".cache" / "sub" / "libevil.so").write_bytes(b"\x7fELF")
    assert problems(check(site)) == [("unowned-module", "error", ".cache")]


def test_an_owned_libs_folder_is_still_walked(site: Path) -> None:
    (site / "numpy.libs" / "libgomp-evil.so.1").write_bytes(b"\x7fELF")
    assert problems(check(site)) == [("unowned-module", "error", "numpy")]


def test_an_empty_folder_that_later_gets_a_file_is_caught_with_warm_caches(
    site: Path, tmp_path: Path
) -> None:
    """The walk cache keeps clean walks; the empty verdict must not be one of them."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (site / "cffi.libs").mkdir()
    assert problems(check(site, cache)) == []
    assert problems(check(site, cache)) == []  # warm: every cache in use
    assert str(site) in (cache / WALK_CACHE_FILE).read_text()
    (site / "cffi.libs" / "libffi.so.8").write_bytes(b"\x7fELF")
    assert problems(check(site, cache)) == [("unowned-module", "error", "cffi.libs")]


def test_an_unreadable_unimportable_folder_fails_closed(site: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    folder = site / "foo.libs"
    folder.mkdir()
    folder.chmod(0)
    try:
        assert problems(check(site)) == [("unowned-module", "error", "foo.libs")]
    finally:
        folder.chmod(0o755)


_SEGMENT = st.text(alphabet="abcXYZ019_-.~", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..") and not s.startswith(".")
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    top=_SEGMENT.filter(lambda s: not s.isidentifier()),
    tree=st.lists(st.lists(_SEGMENT, min_size=1, max_size=3), max_size=4),
    plant=st.integers(min_value=0, max_value=10),
    suffix=st.sampled_from([".so", ".so.1", ".py", ".pyc", ".pth", ".pyd", ".dylib", ".dll"]),
)
def test_property_empty_trees_pass_and_any_code_in_them_fails(
    tmp_path_factory: pytest.TempPathFactory,
    top: str,
    tree: list[list[str]],
    plant: int,
    suffix: str,
) -> None:
    site = tmp_path_factory.mktemp("site")
    install_fake(site, "helper", "1.0")
    folders = [site / top] + [site / top / Path(*parts) for parts in tree]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    assert problems(check(site)) == []
    (folders[plant % len(folders)] / f"planted{suffix}").write_bytes(b"x")
    assert problems(check(site)) == [("unowned-module", "error", top)]
