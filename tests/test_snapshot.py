"""The snapshot, over fake ``*.dist-info`` trees read by the real importlib.metadata."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_mlsupply.checks import snapshot_findings
from pytest_mlsupply.findings import Kind
from pytest_mlsupply.snapshot import (
    RECORD_LEGACY,
    RECORD_MALFORMED,
    RECORD_MISSING,
    default_search_path,
    take_snapshot,
)
from pytest_mlsupply.sources import Source, strip_credentials

from wheelfactory import install_fake


def test_reads_name_version_source_installer_and_content(tmp_path: Path) -> None:
    direct = json.dumps(
        {
            "url": "https://user:secret@example.invalid/repo.git",
            "vcs_info": {"vcs": "git", "commit_id": "1a2b3c", "requested_revision": "main"},
        }
    )
    install_fake(tmp_path, "Demo_Model", "1.0", installer="uv", direct_url=direct)
    [dist] = take_snapshot([str(tmp_path)]).distributions
    assert (dist.name, dist.display_name, dist.version, dist.installer) == (
        "demo-model",
        "Demo_Model",
        "1.0",
        "uv",
    )
    assert dist.source == Source(
        "vcs", url="https://example.invalid/repo.git", vcs="git", commit="1a2b3c"
    )
    assert dist.content is not None and dist.content.startswith("sha256:")
    assert dist.location == str(tmp_path)


def test_same_files_give_the_same_digest_in_any_location(tmp_path: Path) -> None:
    install_fake(tmp_path / "a", "demo", "1.0", installer="pip")
    install_fake(
        tmp_path / "b",
        "demo",
        "1.0",
        installer="uv",
        extra_record_rows=[
            ("../../bin/demo", "sha256=xyz", "9"),
            ("__pycache__/demo.cpython-311.pyc", "", ""),
        ],
    )
    [a] = take_snapshot([str(tmp_path / "a")]).distributions
    [b] = take_snapshot([str(tmp_path / "b")]).distributions
    assert a.content == b.content
    install_fake(tmp_path / "c", "demo", "1.0", {"demo.py": "changed = True\n"})
    [c] = take_snapshot([str(tmp_path / "c")]).distributions
    assert c.content != a.content


def test_first_copy_on_the_path_wins_and_the_other_is_shadowed(tmp_path: Path) -> None:
    install_fake(tmp_path / "first", "demo", "2.0")
    install_fake(tmp_path / "second", "demo", "1.0")
    snap = take_snapshot([str(tmp_path / "first"), str(tmp_path / "second")])
    assert [d.version for d in snap.distributions] == ["2.0"]
    [pair] = snap.shadowed
    assert (pair.hidden.version, pair.active.version) == ("1.0", "2.0")
    [finding] = list(snapshot_findings(snap))
    assert finding.kind is Kind.SHADOWED and str(tmp_path / "second") in finding.message


def test_record_quirks_are_classified(tmp_path: Path) -> None:
    install_fake(tmp_path, "no-record", "1.0", record=False)
    legacy = tmp_path / "oldpkg-0.1.egg-info"
    legacy.mkdir()
    (legacy / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: oldpkg\nVersion: 0.1\n")
    bad = install_fake(tmp_path, "bad-record", "1.0")
    (bad / "RECORD").write_text("bad_record.py,sha256=x\n")
    states = {d.name: d.record_state for d in take_snapshot([str(tmp_path)]).distributions}
    assert states == {
        "no-record": RECORD_MISSING,
        "oldpkg": RECORD_LEGACY,
        "bad-record": RECORD_MALFORMED,
    }
    messages = [f.message for f in snapshot_findings(take_snapshot([str(tmp_path)]))]
    assert any(
        "bad-record 1.0: RECORD is malformed" in m and ":1: expected 3 fields" in m
        for m in messages
    )


def test_unreadable_metadata_is_a_broken_distribution(tmp_path: Path) -> None:
    install_fake(tmp_path, "ok", "1.0")
    (tmp_path / "ghost-1.0.dist-info").mkdir()
    install_fake(tmp_path, "noversion", "1.0", metadata_text="Metadata-Version: 2.1\nName: x\n")
    snap = take_snapshot([str(tmp_path)])
    assert [d.name for d in snap.distributions] == ["ok"]
    problems = sorted((Path(b.metadata_path).name, b.problem) for b in snap.broken)
    assert problems == [
        ("ghost-1.0.dist-info", "METADATA is missing or has no Name field"),
        ("noversion-1.0.dist-info", "METADATA is missing or has no Version field"),
    ]


def test_default_search_path_leaves_out_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", str(tmp_path), "/somewhere/site-packages"])
    assert default_search_path() == ["/somewhere/site-packages"]


def test_the_running_environment_snapshots_cleanly() -> None:
    snap = take_snapshot()
    names = {d.name for d in snap.distributions}
    assert {"pytest", "pluggy", "packaging", "hypothesis"} <= names
    assert snap.broken == ()
    for dist in snap.distributions:
        if not dist.source.is_local and not dist.legacy:
            assert dist.content is not None, dist


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (None, Source("index")),
        (
            {"url": "file:///src/proj", "dir_info": {"editable": True}},
            Source("editable", url="file:///src/proj"),
        ),
        ({"url": "file:///src/proj", "dir_info": {}}, Source("directory", url="file:///src/proj")),
        (
            {
                "url": "https://example.invalid/x-1.0.whl",
                "archive_info": {"hashes": {"sha256": "AB", "md5": "cd"}, "hash": "md5=cd"},
            },
            Source("url", url="https://example.invalid/x-1.0.whl", archive_hash="sha256:ab"),
        ),
        (
            {"url": "https://example.invalid/x-1.0.whl", "archive_info": {"hash": "sha256=EF"}},
            Source("url", url="https://example.invalid/x-1.0.whl", archive_hash="sha256:ef"),
        ),
        ({"url": "https://example.invalid/x"}, Source("unknown", url="https://example.invalid/x")),
        ([1, 2], Source("unknown")),
    ],
)
def test_direct_url_json_kinds(document: object, expected: Source) -> None:
    text = None if document is None else json.dumps(document)
    assert Source.from_direct_url(text) == expected


def test_source_text_that_is_not_json_is_unknown() -> None:
    assert Source.from_direct_url("{not json").kind == "unknown"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_any_json_gives_a_source_never_an_exception(document: object) -> None:
    source = Source.from_direct_url(json.dumps(document))
    assert source.kind in {"index", "url", "vcs", "directory", "editable", "unknown"}
    source.describe()
    source.matches(source)


def test_credentials_never_reach_the_lock() -> None:
    assert (
        strip_credentials("https://tok:pw@example.invalid/a.git") == "https://example.invalid/a.git"
    )
    assert strip_credentials("git@example.invalid:a.git") == "git@example.invalid:a.git"


@pytest.mark.skipif(os.name == "nt", reason="POSIX paths")
def test_file_urls_compare_by_file_name_across_machines() -> None:
    here = Source("url", url="file:///home/alice/dist/x-1.0-py3-none-any.whl")
    there = Source("url", url="file:///builds/1/dist/x-1.0-py3-none-any.whl")
    assert here.matches(there)
    assert here.portable().url == "file:x-1.0-py3-none-any.whl"
    assert not here.matches(Source("url", url="file:///b/x-1.1-py3-none-any.whl"))
