"""Path lines of ``.pth`` files: what they put on ``sys.path`` must be verified (issue 12).

``site`` appends every existing file or folder a path line names, and ``zipimport``
serves modules from any file on ``sys.path`` whatever its name: a zip written as
``pip/_vendor/cacert.bin`` plus a one-line ``.pth`` made ``import optmod`` run a
payload while the gate reported a clean environment.
"""

from __future__ import annotations

import contextlib
import io
import os
import site
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest_mlsupply.verify as verify_module
from pytest_mlsupply.findings import Finding, Severity
from pytest_mlsupply.verify import (
    PTH_FILE_UNLISTED,
    PTH_FILE_UNOWNED_PTH,
    PTH_PATH_CODE,
    PTH_PATH_FILE,
    UNIMPORTABLE_BINARY,
    _pth_targets,
)

from gatehelpers import verify_site as check
from wheelfactory import install_fake

VICTIM = {
    "victim/__init__.py": "",
    "victim/core.py": "SAFE = True\n",
    "victim/data/labels.json": "[]\n",
}


def zip_bytes(prefix: bytes = b"") -> bytes:
    """A zip holding ``optmod.py``, behind *prefix* (zipimport reads the end of the file)."""
    buffer = io.BytesIO()
    buffer.write(prefix)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("optmod.py", "open('marker', 'w').close()\n")
    return buffer.getvalue()


def problems(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return sorted(
        (f.kind.value, f.severity.value, f.subject)
        for f in findings
        if f.severity is not Severity.INFO
    )


@pytest.fixture(autouse=True)
def _no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_module, "RACY_WINDOW_NS", 0)


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "lib" / "python3.11" / "site-packages"
    install_fake(folder, "victim", "1.0", VICTIM)
    return folder


@pytest.fixture(params=["cold", "warm"])
def cache_dir(request: pytest.FixtureRequest, tmp_path: Path, site_dir: Path) -> Path | None:
    """Each attack is tried without caches and after clean runs filled every cache."""
    if request.param == "cold":
        return None
    folder = tmp_path / "cache"
    folder.mkdir()
    assert problems(check(site_dir, folder)) == []
    assert problems(check(site_dir, folder)) == []
    return folder


ERROR = ("unowned-startup-code", "error", "zz-paths.pth")
WARNING = ("unowned-startup-code", "warning", "zz-paths.pth")


def test_a_zip_named_like_data_inside_a_locked_package(
    site_dir: Path, cache_dir: Path | None
) -> None:
    """The red team's reproduction: data files pass the walk by design; the path line not."""
    blob = site_dir / "victim" / "data" / "cacert.bin"
    blob.write_bytes(zip_bytes())
    assert problems(check(site_dir, cache_dir)) == []  # data written at run time passes
    (site_dir / "zz-paths.pth").write_text("victim/data/cacert.bin\n")
    findings = check(site_dir, cache_dir)
    assert problems(findings) == [ERROR]
    [finding] = [f for f in findings if f.subject == "zz-paths.pth"]
    assert finding.message == PTH_PATH_FILE.format(
        path=site_dir / "zz-paths.pth", target=blob, why=PTH_FILE_UNOWNED_PTH
    )


@pytest.mark.parametrize("name", ["blob.egg", "blob.zip"])
def test_an_archive_at_the_top_of_the_site_directory(
    site_dir: Path, cache_dir: Path | None, name: str
) -> None:
    (site_dir / name).write_bytes(zip_bytes())
    assert problems(check(site_dir, cache_dir)) == [("unowned-module", "warning", name)]
    (site_dir / "zz-paths.pth").write_text(f"{name}\n")
    assert problems(check(site_dir, cache_dir)) == [("unowned-module", "warning", name), ERROR]


def test_a_zip_in_a_hidden_folder(site_dir: Path, cache_dir: Path | None) -> None:
    (site_dir / ".cache").mkdir()
    (site_dir / ".cache" / "blob").write_bytes(zip_bytes(prefix=b"#!/bin/sh\nexit 0\n"))
    assert problems(check(site_dir, cache_dir)) == []  # nothing can import it yet
    (site_dir / "zz-paths.pth").write_text("# cache\n.cache/blob\n")
    assert problems(check(site_dir, cache_dir)) == [ERROR]


@pytest.mark.parametrize("line", ["{site}/../ext\n", "../ext\n", "../ext/\n", "../ext  \n"])
def test_a_folder_no_distribution_owns(site_dir: Path, line: str) -> None:
    ext = site_dir.parent / "ext"
    ext.mkdir()
    (ext / "notes.txt").write_text("data\n")
    (site_dir / "zz-paths.pth").write_text(line.format(site=site_dir))
    assert problems(check(site_dir)) == [WARNING]  # a folder without code runs nothing
    (ext / "sub").mkdir()
    (ext / "sub" / "optmod.py").write_text("X = 1\n")
    findings = check(site_dir)
    assert problems(findings) == [ERROR]
    assert findings[-1].message == PTH_PATH_CODE.format(
        path=site_dir / "zz-paths.pth",
        target=os.path.abspath(os.path.join(site_dir, line.format(site=site_dir).rstrip())),
        example=ext / "sub" / "optmod.py",
    )


def test_an_unreadable_folder_counts_as_code(site_dir: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    ext = site_dir.parent / "ext"
    (ext / "locked").mkdir(parents=True)
    (ext / "locked").chmod(0)
    try:
        (site_dir / "zz-paths.pth").write_text("../ext\n")
        assert problems(check(site_dir)) == [ERROR]
    finally:
        (ext / "locked").chmod(0o700)


def test_paths_into_owned_folders_or_nowhere_are_a_warning(site_dir: Path) -> None:
    (site_dir / "zz-paths.pth").write_text("victim\n.\nvictim/data\nmissing\n")
    findings = check(site_dir)
    assert problems(findings) == [WARNING]
    assert "no installed package owns it" in findings[-1].message


def test_an_owned_pth_naming_an_unlisted_file(tmp_path: Path) -> None:
    site_dir = tmp_path / "site"
    install_fake(site_dir, "tool", "1.0", {"tool.pth": "tool.egg\nplugins\n", "tool.egg": "x"})
    (site_dir / "plugins").mkdir()
    (site_dir / "plugins" / "p.py").write_text("X = 1\n")
    # Owned file and an owned .pth's folder: as before (the lock vouches for the line).
    assert problems(check(site_dir)) == [("unowned-module", "warning", "plugins")]
    (site_dir / "tool.egg").unlink()
    (site_dir / "tool.egg").write_bytes(zip_bytes())  # now also fails its RECORD hash
    findings = check(site_dir)
    assert ("file-modified", "error", "tool") in problems(findings)
    install_fake(site_dir, "tool", "1.0", {"tool.pth": "other.zip\n"})
    (site_dir / "other.zip").write_bytes(zip_bytes())
    findings = check(site_dir)
    assert ("unowned-startup-code", "error", "tool.pth") in problems(findings)
    [finding] = [f for f in findings if f.subject == "tool.pth"]
    assert PTH_FILE_UNLISTED in finding.message


def test_an_editable_install_pth_naming_a_file_in_its_tree(tmp_path: Path) -> None:
    """Its .pth may name folders in its working tree (judged in local_installs); a file
    there is code no RECORD vouches for."""
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    site_dir = tmp_path / "site"
    url = f'{{"url": "{tree.as_uri()}", "dir_info": {{"editable": true}}}}'
    install_fake(site_dir, "proj", "0.1", {"proj.pth": f"{tree / 'src'}\n"}, direct_url=url)
    assert problems(check(site_dir)) == []
    (tree / "src" / "vendored.bin").write_bytes(zip_bytes())
    install_fake(
        site_dir,
        "proj",
        "0.1",
        {"proj.pth": f"{tree / 'src'}\n{tree / 'src' / 'vendored.bin'}\n"},
        direct_url=url,
    )
    findings = check(site_dir)
    assert problems(findings) == [("unowned-startup-code", "error", "proj.pth")]
    assert PTH_FILE_UNLISTED in findings[-1].message


def test_an_edit_after_a_clean_warm_run_is_seen(site_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (site_dir / "zz-paths.pth").write_text("later.zip\n")
    assert problems(check(site_dir, cache)) == [WARNING]
    assert problems(check(site_dir, cache)) == [WARNING]
    (site_dir / "later.zip").write_bytes(zip_bytes())  # a file added later
    assert ("unowned-startup-code", "error", "zz-paths.pth") in problems(check(site_dir, cache))
    (site_dir / "later.zip").unlink()
    (site_dir / "victim" / "data" / "x.bin").write_bytes(zip_bytes())
    (site_dir / "zz-paths.pth").write_text("victim/data/x.bin\n")  # the .pth edited later
    assert problems(check(site_dir, cache)) == [ERROR]


@pytest.mark.parametrize("name", ["bundle.zip", "old.egg"])
def test_an_archive_added_inside_a_locked_package_is_code(
    site_dir: Path, cache_dir: Path | None, name: str
) -> None:
    (site_dir / "victim" / name).write_bytes(zip_bytes())
    assert problems(check(site_dir, cache_dir)) == [("unowned-module", "error", "victim")]


@pytest.mark.parametrize(
    "head",
    [b"\x7fELF\x02\x01\x01\x00", b"\xcf\xfa\xed\xfe\x07\x00", b"MZ\x90\x00"],
)
def test_a_binary_without_a_suffix_in_a_hidden_folder(
    site_dir: Path, cache_dir: Path | None, head: bytes
) -> None:
    hidden = site_dir / ".libs_cache" / "deep"
    hidden.mkdir(parents=True)
    (hidden / "notes").write_text("data\n")
    assert problems(check(site_dir, cache_dir)) == []  # data only: as before
    (hidden / "libpayload").write_bytes(head + b"\x00" * 64)
    findings = check(site_dir, cache_dir)
    assert problems(findings) == [("unowned-module", "error", ".libs_cache")]
    assert findings[-1].message == UNIMPORTABLE_BINARY.format(
        path=site_dir / ".libs_cache", example=os.path.join("deep", "libpayload")
    )


def test_a_fifo_in_a_hidden_folder_does_not_hang(site_dir: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    (site_dir / ".run").mkdir()
    os.mkfifo(site_dir / ".run" / "pipe")
    assert problems(check(site_dir)) == []


# ------------------------------------------------------------------ emulation of site

_TOKENS = ["d", "f.bin", "..", "/", " ", "\t", "\n", "\r", "\x0c", "\x85", "#", "\ufeff", "é"]


class _Sink:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join),
    st.sampled_from(["utf-8", "latin-1"]),
)
def test_every_path_site_adds_is_judged(text: str, encoding: str) -> None:
    """Against this Python's own ``site.addpackage``: what it appends, we have read."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "d").mkdir()
        (Path(folder) / "f.bin").write_bytes(b"")
        path = Path(folder) / "probe.pth"
        path.write_bytes(text.encode(encoding, "replace"))
        appended: list[str] = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "path", appended)
            patch.setattr("sys.stderr", _Sink())
            with contextlib.suppress(UnicodeDecodeError):
                site.addpackage(folder, "probe.pth", set())
        ours = _pth_targets(str(path), folder, sys.version_info[:2])
        assert set(appended) <= set(ours), (text, encoding)
