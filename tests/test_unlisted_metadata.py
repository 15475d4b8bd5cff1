"""Files added to a ``.dist-info``, and files an unlocked distribution vouches for inside a
locked one's folder, over fake site dirs. Each test is one attempt at a wrong all-clear."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest_mlsupply.verify as verify_module
from pytest_mlsupply.findings import Finding, Kind, Severity
from pytest_mlsupply.hashcache import RecordCache
from pytest_mlsupply.snapshot import take_snapshot
from pytest_mlsupply.verify import (
    INTRUDER,
    INTRUDER_DIFFERS,
    RECORD_CACHE_FILE,
    UNLISTED_METADATA,
    UNLISTED_METADATA_BEHAVIOUR,
    find_intruders,
    find_unowned_code,
    verify_installed_files,
)

from wheelfactory import install_fake

VICTIM = {"victim/__init__.py": "from victim import core\n", "victim/core.py": "SAFE = True\n"}
PLUGIN = "[pytest11]\nevil = victim.core\n"


def check(
    site: Path, cache_dir: Path | None = None, locked: set[str] | None = None
) -> list[Finding]:
    """One gated run's verification, as the gate does it (record cache when *cache_dir*)."""
    records = RecordCache.load(cache_dir / RECORD_CACHE_FILE) if cache_dir else None
    snapshot = take_snapshot([str(site)], keep_rows=True, record_cache=records)
    findings, _, ownership = verify_installed_files(
        snapshot, cache_dir=cache_dir, quirks=(), record_cache=records
    )
    if cache_dir is not None and records is not None:
        records.save(cache_dir / RECORD_CACHE_FILE)
    findings.extend(find_unowned_code(snapshot, ownership, cache_dir=cache_dir))
    if locked is not None:
        findings.extend(find_intruders(snapshot, ownership, frozenset(locked)))
    return findings


def problems(findings: list[Finding]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (f.kind.value, f.severity.value, f.subject, os.path.basename(f.location or ""))
        for f in findings
        if f.severity is not Severity.INFO
    )


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


@pytest.fixture(autouse=True)
def _no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
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
    assert problems(check(site, folder, {"victim"})) == []
    assert problems(check(site, folder, {"victim"})) == []
    return folder


# ------------------------------------------------------------------ A: files added to .dist-info


def test_an_added_entry_points_file_is_an_error(site: Path, cache_dir: Path | None) -> None:
    added = site / "victim-1.0.dist-info" / "entry_points.txt"
    added.write_text(PLUGIN)
    [finding] = [f for f in check(site, cache_dir) if f.severity is not Severity.INFO]
    assert (finding.kind, finding.severity, finding.subject) == (
        Kind.UNOWNED_MODULE,
        Severity.ERROR,
        "victim",
    )
    template = UNLISTED_METADATA + UNLISTED_METADATA_BEHAVIOUR
    assert finding.message == template.format(path=str(added), owner="victim")
    assert finding.location == str(added)


@pytest.mark.parametrize("name", ["top_level.txt", "evil.py", "evil.pth", "_x.so"])
def test_other_behaviour_and_code_files_are_errors(site: Path, name: str) -> None:
    (site / "victim-1.0.dist-info" / name).write_text("import os\n")
    assert problems(check(site)) == [("unowned-module", "error", "victim", name)]


def test_a_stray_file_is_a_warning(site: Path, cache_dir: Path | None) -> None:
    (site / "victim-1.0.dist-info" / "licenses").mkdir()
    (site / "victim-1.0.dist-info" / "licenses" / "NOTICE").write_text("x\n")
    assert problems(check(site, cache_dir)) == [("unowned-module", "warning", "victim", "NOTICE")]


def test_entry_points_in_a_subfolder_is_only_a_warning(site: Path) -> None:
    """importlib.metadata reads entry_points.txt only at the top of the .dist-info."""
    (site / "victim-1.0.dist-info" / "sboms").mkdir()
    (site / "victim-1.0.dist-info" / "sboms" / "entry_points.txt").write_text(PLUGIN)
    assert problems(check(site)) == [("unowned-module", "warning", "victim", "entry_points.txt")]


def test_what_installers_write_after_record_passes(tmp_path: Path) -> None:
    """pip and uv list INSTALLER, REQUESTED, direct_url.json with hashes; Poetry leaves
    direct_url.json hashless; RECORD lists itself without a hash."""
    site = tmp_path / "site"
    rows = [("victim-1.0.dist-info/direct_url.json", "", "")]
    dist_info = install_fake(site, "victim", "1.0", VICTIM, extra_record_rows=rows)
    (dist_info / "direct_url.json").write_text('{"url": "file:///x"}')
    (dist_info / "REQUESTED").write_text("")
    (dist_info / "RECORD.jws").write_text("")
    assert problems(check(site)) == []


def test_a_listed_entry_points_file_passes_and_edits_are_caught(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist_info = install_fake(site, "victim", "1.0", VICTIM)
    data = b"[console_scripts]\nvictim = victim.core:main\n"
    (dist_info / "entry_points.txt").write_bytes(data)
    record = dist_info / "RECORD"
    record.write_text(
        record.read_text()
        + f"victim-1.0.dist-info/entry_points.txt,{record_hash(data)},{len(data)}\n"
    )
    assert problems(check(site)) == []
    (dist_info / "entry_points.txt").write_text(PLUGIN)
    assert problems(check(site)) == [("file-modified", "error", "victim", "entry_points.txt")]


def test_a_hashless_row_does_not_vouch_for_entry_points(tmp_path: Path) -> None:
    site = tmp_path / "site"
    rows = [("victim-1.0.dist-info/entry_points.txt", "", "")]
    dist_info = install_fake(site, "victim", "1.0", VICTIM, extra_record_rows=rows)
    (dist_info / "entry_points.txt").write_text(PLUGIN)
    assert problems(check(site)) == [("unowned-module", "error", "victim", "entry_points.txt")]


def test_another_distributions_row_does_not_vouch_for_metadata(tmp_path: Path) -> None:
    """evil's RECORD hashes victim's entry_points.txt: not victim's own RECORD."""
    site = tmp_path / "site"
    install_fake(site, "victim", "1.0", VICTIM)
    install_fake(
        site, "evil", "1.0", {"victim-1.0.dist-info/entry_points.txt": PLUGIN, "evil.py": "\n"}
    )
    assert problems(check(site)) == [("unowned-module", "error", "victim", "entry_points.txt")]
    # and with a lock naming victim only, evil is named as the intruder
    assert ("unowned-module", "error", "evil", "entry_points.txt") in problems(
        check(site, locked={"victim"})
    )


def test_a_record_less_top_level_does_not_switch_the_walk_off(site: Path) -> None:
    """A fake egg-info naming victim in top_level.txt must not hide victim/extra.py."""
    egg = site / "evil-1.0.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n")
    (egg / "top_level.txt").write_text("victim\n")
    (site / "victim" / "extra.py").write_text("open('marker', 'w')\n")
    assert ("unowned-module", "error", "victim", "extra.py") in problems(check(site))


def test_a_warm_run_lists_no_dist_info(
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
    assert str(site / "victim-1.0.dist-info") not in listed


# ------------------------------------------------------------------ B: unlocked vouching


def test_an_unlocked_distribution_vouching_for_a_module_in_a_locked_folder(
    site: Path, cache_dir: Path | None
) -> None:
    install_fake(site, "evil", "1.0", {"victim/evil.py": "open('marker', 'w')\n"})
    findings = check(site, cache_dir, {"victim"})
    [finding] = [f for f in findings if f.severity is not Severity.INFO]
    path = str(site / "victim" / "evil.py")
    assert (finding.kind, finding.severity, finding.subject) == (
        Kind.UNOWNED_MODULE,
        Severity.ERROR,
        "evil",
    )
    assert finding.message == INTRUDER.format(
        path=path, owner="victim", intruder="evil", differs=""
    )
    assert finding.location == path


def test_a_data_file_vouched_for_by_an_unlocked_distribution_is_a_warning(site: Path) -> None:
    install_fake(site, "evil", "1.0", {"victim/labels.json": "[]\n"})
    assert problems(check(site, locked={"victim"})) == [
        ("unowned-module", "warning", "evil", "labels.json")
    ]


def test_an_unlocked_distribution_overwriting_a_locked_module(tmp_path: Path) -> None:
    """Both list victim/core.py; the bytes match only the unlocked one's hash."""
    site = tmp_path / "site"
    install_fake(site, "victim", "1.0", VICTIM)
    install_fake(site, "evil", "1.0", {"victim/core.py": "SAFE = False\n"})
    assert problems(check(site)) == []  # a RECORD matches: verification alone passes
    [finding] = [f for f in check(site, locked={"victim"}) if f.severity is Severity.ERROR]
    assert finding.subject == "evil"
    assert INTRUDER_DIFFERS in finding.message


def test_a_dotted_row_cannot_hide_the_folder(site: Path) -> None:
    rows = [("evil/../victim/evil.py", record_hash(b"X = 1\n"), "6")]
    install_fake(site, "evil", "1.0", {"evil/__init__.py": "\n"}, extra_record_rows=rows)
    (site / "victim" / "evil.py").write_text("X = 1\n")
    assert ("unowned-module", "error", "evil", "evil.py") in problems(
        check(site, locked={"victim"})
    )


def test_locked_namespace_sharers_and_plugins_pass(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "acme-a", "1.0", {"acme/__init__.py": "\n", "acme/a/__init__.py": "\n"})
    install_fake(site, "acme-b", "1.0", {"acme/__init__.py": "\n", "acme/b/__init__.py": "\n"})
    install_fake(site, "victim", "1.0", VICTIM)
    install_fake(site, "victim-plugin", "1.0", {"victim/plugins/x.py": "\n"})
    everyone = {"acme-a", "acme-b", "victim", "victim-plugin"}
    assert problems(check(site, locked=everyone)) == []
    assert problems(check(site, locked=everyone - {"acme-b"})) == [
        ("unowned-module", "error", "acme-b", "__init__.py")
    ]
    assert problems(check(site, locked=everyone - {"victim-plugin"})) == [
        ("unowned-module", "error", "victim-plugin", "x.py")
    ]


def test_a_shared_namespace_file_with_the_same_hash_passes(tmp_path: Path) -> None:
    """The unlocked one lists the shared __init__.py with the locked one's hash: same bytes."""
    site = tmp_path / "site"
    install_fake(site, "acme-a", "1.0", {"acme/__init__.py": "\n", "acme/a/__init__.py": "\n"})
    install_fake(site, "acme-b", "1.0", {"acme/__init__.py": "\n", "acme/b/__init__.py": "\n"})
    assert problems(check(site, locked={"acme-a"})) == [
        ("unowned-module", "error", "acme-b", "__init__.py")
    ]
    [finding] = [f for f in check(site, locked={"acme-a"}) if f.severity is Severity.ERROR]
    assert finding.location == str(site / "acme" / "b" / "__init__.py")


def test_unlocked_distributions_in_their_own_folders_are_not_intruders(site: Path) -> None:
    install_fake(site, "other", "1.0", {"other/__init__.py": "\n"})
    assert problems(check(site, locked={"victim"})) == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    names=st.sets(
        st.text(alphabet="abcdefgXYZ_.-0123456789", min_size=1, max_size=12).filter(
            lambda n: n not in {".", ".."}
        ),
        max_size=6,
    )
)
def test_every_added_file_is_listed_allowed_or_reported(tmp_path: Path, names: set[str]) -> None:
    """Whatever names are added to a .dist-info, each is either one installers write after
    RECORD, already listed, or exactly one finding: none is silently passed."""
    site = tmp_path / f"site{len(list(tmp_path.iterdir()))}"
    dist_info = install_fake(site, "victim", "1.0", VICTIM)
    before = {p.name for p in dist_info.iterdir()}
    added = {name for name in names if name not in before}
    for name in added:
        (dist_info / name).write_text("x\n")
    allowed = {"RECORD.jws", "RECORD.p7s", "REQUESTED", "direct_url.json", "INSTALLER"}
    reported = [os.path.basename(f.location or "") for f in check(site)]
    assert sorted(reported) == sorted(added - allowed)
