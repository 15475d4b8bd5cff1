"""Known-bad feeds: real OSV records, ranges, hash lists, bad input, the cache, the built-in list.

Pure core tests; the plugin and the command line are exercised in
test_knownbad_venv.py (real venvs) and test_knownbad_cli.py.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from pytest_mlsupply.findings import Kind
from pytest_mlsupply.hashing import Digest, hash_bytes
from pytest_mlsupply.knownbad import KnownBadConfig, load_feeds, run_known_bad
from pytest_mlsupply.knownbad.feeds import (
    BUILTIN_DIR,
    BUILTIN_LIST_DATE,
    CACHE_FILE,
    NO_RECORDS,
    PATH_MISSING,
    YAML_MISSING,
)
from pytest_mlsupply.knownbad.hashlist import format_hash_list, parse_hash_list
from pytest_mlsupply.knownbad.model import (
    FIXED,
    INTRODUCED,
    LAST_AFFECTED,
    LIMIT,
    AffectedPackage,
    PackedBlobs,
    in_range,
)
from pytest_mlsupply.snapshot import take_snapshot

from wheelfactory import install_fake

ASSETS = Path(__file__).parent / "assets" / "known_bad"

# ------------------------------------------------------------------ real records


@pytest.fixture(scope="module")
def osv_dir(realdata: Path) -> Path:
    return realdata / "osv-malicious-pypi"


def _record_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".json", ".yaml"))


def test_every_real_record_loads_on_its_own(osv_dir: Path) -> None:
    files = _record_files(osv_dir)
    assert len(files) == 24
    for path in files:
        loaded = load_feeds([path], builtin=False)
        assert loaded.problems == [], path
        assert loaded.stats[0].records == 1, path


def test_real_tree_loads_with_freshness_note(osv_dir: Path, realdata: Path) -> None:
    loaded = load_feeds([osv_dir], builtin=False, base=realdata)
    assert loaded.problems == []
    stats = loaded.stats[0]
    assert (stats.records, stats.withdrawn) == (24, 6)  # 5 ossf withdrawn + loguru's rejected CVE
    assert stats.newest is not None and stats.newest.startswith("2026-09-04")
    note = loaded.freshness_note()
    assert "24 records (6 withdrawn) from osv-malicious-pypi, newest modified 2026-09-04" in note


def test_withdrawn_records_never_match(osv_dir: Path) -> None:
    index = load_feeds([osv_dir], builtin=False).index
    for name, version in [
        ("fastapi", "0.136.3"),
        ("nvidia-nat-semantic-kernel", "1.8.0a20260521"),
        ("neural-compressor-jax", "0.0.0"),
        ("urlcon-", "0.1.0rc1"),
        ("loguru", "0.5.3"),
    ]:
        assert index.match_distribution(name, version) == (), name
    for path in (osv_dir / "ossf" / "withdrawn").rglob("*.json"):
        record = json.loads(path.read_text())
        for affected in record["affected"]:
            for version in affected.get("versions", []):
                name = affected["package"]["name"]
                assert index.match_distribution(name, version) == ()


def test_real_records_match_what_they_name(osv_dir: Path) -> None:
    index = load_feeds([osv_dir], builtin=False).index
    ids = {a.display_id for a in index.match_distribution("litellm", "1.82.8")}
    # the merged record, and the two per-source ones (empty id: named by their alias)
    assert ids == {"MAL-2026-2144", "GHSA-92x9-889m-jgmw", "PYSEC-2026-2"}
    assert index.match_distribution("litellm", "1.82.6") == ()
    assert index.match_distribution("0-8", "0.0.0.1")  # odd name, four-part version
    assert index.match_distribution("1337test", "1")
    # a record with no id and no alias is named after its file
    assert {a.display_id for a in index.match_distribution("0requests", "0.0.1")} == {
        "MAL-2026-15859",
        "MAL-0000-amazon-inspector-ce3a594da2523b64",
    }
    # per-source top-level range introduced "0": every version
    assert index.match_distribution("aliyun-ai-labs-snippets-sdk", "99.0")
    # origin-level ranges in database_specific are the sources' claims, not the record's
    chimera = index.match_distribution("chimera-sandbox-extensions", "0.0.1")
    assert chimera == ()


def test_real_yaml_ranges(osv_dir: Path) -> None:
    index = load_feeds([osv_dir / "pypa-advisory-database"], builtin=False).index
    assert index.match_distribution("py", "1.11.0")  # last_affected is inclusive
    assert not index.match_distribution("py", "1.11.1")
    assert index.match_distribution("torch", "1.13.0")
    assert not index.match_distribution("torch", "1.13.1")  # fixed: not affected
    assert index.match_distribution("torch", "1.0.1.post2")  # explicit versions list
    assert index.match_distribution("mlflow", "1.13")


def test_real_package_integrity_digests_become_file_digests(osv_dir: Path) -> None:
    index = load_feeds([osv_dir / "ossf" / "malicious" / "0requests"], builtin=False).index
    wheel = Digest.parse("sha256:c8784cf0aa8fa13a43614fbd6d51902feeecafdc06fc4db2695fd2572db66db8")
    assert {a.display_id for a in index.match_digest(wheel)} == {
        "MAL-2026-15859",
        "MAL-0000-amazon-inspector-ce3a594da2523b64",
    }
    md5 = Digest.parse("md5:6f4a67ec1ae03325b1427a5c33aef095")
    assert index.match_digest(md5)
    # withdrawn records' digests are not loaded either
    withdrawn = load_feeds([osv_dir / "ossf" / "withdrawn"], builtin=False).index
    assert withdrawn.digests == {}


def test_zip_of_records_like_osv_all_zip(osv_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in (osv_dir / "ossf").rglob("*.json"):
            out.write(path, path.name)
    loaded = load_feeds([archive], builtin=False, base=tmp_path)
    assert loaded.problems == []
    assert loaded.stats[0].records == 20
    assert loaded.index.match_distribution("litellm", "1.82.7")


# ------------------------------------------------------------------ ranges


def test_range_matches_inside_and_not_at_fixed() -> None:
    events = ((INTRODUCED, "1.2"), (FIXED, "1.5"))
    assert not in_range(events, Version("1.1.9"))
    assert in_range(events, Version("1.2"))
    assert in_range(events, Version("1.4.99"))
    assert not in_range(events, Version("1.5"))
    assert not in_range(events, Version("2.0"))


def test_unsorted_events_and_reintroduction() -> None:
    events = ((FIXED, "2.0"), (INTRODUCED, "3.0"), (INTRODUCED, "0"), (LAST_AFFECTED, "3.1"))
    assert in_range(events, Version("0.1"))
    assert not in_range(events, Version("2.5"))
    assert in_range(events, Version("3.1"))
    assert not in_range(events, Version("3.1.1"))


_VERSIONS = st.builds(
    lambda parts, pre: Version(".".join(map(str, parts)) + (f"rc{pre}" if pre is not None else "")),
    st.lists(st.integers(0, 4), min_size=1, max_size=3),
    st.none() | st.integers(0, 2),
)
_EVENTS = st.lists(
    st.tuples(st.sampled_from([INTRODUCED, FIXED, LAST_AFFECTED, LIMIT]), _VERSIONS),
    max_size=6,
)


def _reference(events: list[tuple[str, Version]], version: Version) -> bool:
    """Brute force: place each event on a line and take the last one at or before *version*.

    An ``introduced`` or ``fixed`` event sits at its version (a fix wins a tie),
    ``last_affected`` just after it, and ``introduced: "0"`` before every version
    (OSV: "0" is the start of time, below even ``0rc0``); the state is that of the
    last event reached. Limits cut everything at or above the highest one.
    """
    limits = [v for kind, v in events if kind == LIMIT]
    if limits and version >= max(limits):
        return False
    rank = {INTRODUCED: 0, FIXED: 1, LAST_AFFECTED: 2}
    here = (1, version, 1.5)
    reached = []
    for kind, v in events:
        if kind == LIMIT:
            continue
        point = (0, Version("0"), 0) if kind == INTRODUCED and str(v) == "0" else (1, v, rank[kind])
        if point <= here:
            reached.append((point, kind))
    if not reached:
        return False
    return max(reached)[1] == INTRODUCED


@settings(max_examples=400, deadline=None)
@given(events=_EVENTS, version=_VERSIONS)
def test_range_evaluation_agrees_with_brute_force(events, version) -> None:
    as_text = tuple((kind, str(v)) for kind, v in events)
    assert in_range(as_text, version) == _reference(events, version)


@settings(max_examples=200, deadline=None)
@given(version=_VERSIONS, bounds=st.lists(_VERSIONS, min_size=2, max_size=2, unique=True))
def test_range_is_a_half_open_interval(version, bounds) -> None:
    low, high = sorted(bounds)
    events = ((INTRODUCED, str(low)), (FIXED, str(high)))
    from_start = str(low) == "0"  # OSV: introduced "0" is before every version
    assert in_range(events, version) == ((from_start or low <= version) and version < high)


def test_versions_list_compares_by_pep440_and_falls_back_to_text() -> None:
    from pytest_mlsupply.knownbad.model import affects

    entry = AffectedPackage("x", 0, versions=("1.0", "0.8.0-alpha2", "not a version"))
    assert affects(entry, "1.0.0", Version("1.0.0"))
    assert affects(entry, "0.8.0a2", Version("0.8.0a2"))
    assert affects(entry, "not a version", None)
    assert not affects(entry, "1.0.1", Version("1.0.1"))


def test_a_range_with_an_invalid_version_is_skipped_with_a_note(tmp_path: Path) -> None:
    record = {
        "id": "TEST-1",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "demo"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "banana"}]}],
                "versions": ["2.0"],
            }
        ],
    }
    (tmp_path / "r.json").write_text(json.dumps(record))
    loaded = load_feeds([tmp_path / "r.json"], builtin=False)
    assert loaded.problems == []
    assert loaded.notes and "banana" in loaded.notes[0] and "TEST-1" in loaded.notes[0]
    assert loaded.index.match_distribution("demo", "2.0")  # the rest of the record still applies
    assert not loaded.index.match_distribution("demo", "3.0")


def test_other_ecosystems_and_git_ranges_are_ignored(tmp_path: Path) -> None:
    record = {
        "id": "TEST-2",
        "affected": [
            {"package": {"ecosystem": "npm", "name": "demo"}, "versions": ["1.0"]},
            {
                "package": {"ecosystem": "PyPI", "name": "Demo_Pkg"},
                "ranges": [{"type": "GIT", "events": [{"introduced": "0"}]}],
            },
        ],
    }
    (tmp_path / "r.json").write_text(json.dumps(record))
    index = load_feeds([tmp_path / "r.json"], builtin=False).index
    assert index.match_distribution("demo", "1.0") == ()
    assert index.match_distribution("demo-pkg", "1.0") == ()


# ------------------------------------------------------------------ hash lists


def test_hash_list_both_spellings_comments_and_labels() -> None:
    sha = hash_bytes(b"evil")
    md5 = hash_bytes(b"evil", "md5")
    text = (
        "# incident 42\n"
        f"{sha} evil_pkg/__init__.py\n"
        "\n"
        f"{md5.hex}  evil-1.0.tar.gz  # from the write-up\n"
        f"{sha.hex} *binary-mode.whl\n"
    )
    entries, problems = parse_hash_list(text)
    assert problems == []
    assert [(e.digest, e.label, e.line) for e in entries] == [
        (sha, "evil_pkg/__init__.py", 2),
        (md5, "evil-1.0.tar.gz", 4),
        (sha, "binary-mode.whl", 5),
    ]


def test_hash_list_problems_name_the_line() -> None:
    loaded = load_feeds([ASSETS / "bad-lines.txt"], builtin=False, base=ASSETS)
    assert [(p.path, p.line) for p in loaded.problems] == [
        ("bad-lines.txt", 2),
        ("bad-lines.txt", 3),
    ]
    assert "not-a-hash" in loaded.problems[1].message


_LABELS = (
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="#"
        ),
        max_size=20,
    )
    .map(str.strip)
    .filter(lambda s: not s.startswith("*") and "\x85" not in s)
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(min_size=1, max_size=8),
            st.sampled_from(["sha256", "md5", "sha512"]),
            _LABELS | st.none(),
        ),
        max_size=8,
    )
)
def test_hash_list_round_trip(items) -> None:
    entries = [(hash_bytes(data, alg), label or None) for data, alg, label in items]
    parsed, problems = parse_hash_list(format_hash_list(entries))
    assert problems == []
    assert [(e.digest, e.label) for e in parsed] == entries


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_reports_problems_never_raises(text: str) -> None:
    entries, problems = parse_hash_list(text)
    assert all(isinstance(line, int) and line >= 1 for line, _ in problems)
    assert len(entries) + len(problems) <= max(1, len(text.splitlines()))


# ------------------------------------------------------------------ malformed feeds


@pytest.mark.parametrize(
    ("asset", "line", "expected"),
    [
        ("not-json.json", 5, "not valid JSON"),
        ("not-yaml.yaml", 4, "not valid YAML"),
        ("no-package-name.json", None, "affected[0].package.name is missing"),
        ("affected-not-a-list.json", None, "'affected' must be a list"),
        ("bad-lines.txt", 2, "expected 'algorithm:hex [label]'"),
    ],
)
def test_a_malformed_feed_names_file_and_line(asset: str, line: int | None, expected: str) -> None:
    loaded = load_feeds([ASSETS / asset], builtin=False, base=ASSETS)
    problem = loaded.problems[0]
    assert problem.path == asset
    assert problem.line == line
    assert expected in problem.message


def test_one_bad_feed_does_not_disable_the_others(osv_dir: Path, tmp_path: Path) -> None:
    loaded = load_feeds(
        [ASSETS / "not-json.json", tmp_path / "nowhere", osv_dir], builtin=True, base=tmp_path
    )
    assert {p.path for p in loaded.problems} == {str(ASSETS / "not-json.json"), "nowhere"}
    assert PATH_MISSING.format(path="nowhere") in [p.message for p in loaded.problems]
    assert loaded.index.match_distribution("litellm", "1.82.8")
    assert loaded.index.match_distribution("ultralytics", "8.3.41")  # built-in still on


def test_empty_feeds_and_non_osv_json_are_problems(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as out:
        out.writestr("README.md", "no records here")
    (tmp_path / "package.json").write_text('{"name": "not-osv", "version": "1.0.0"}')
    loaded = load_feeds(
        [tmp_path / "empty", tmp_path / "empty.zip", tmp_path / "package.json"],
        builtin=False,
        base=tmp_path,
    )
    assert [(p.path, p.message) for p in loaded.problems] == [
        ("empty", NO_RECORDS),
        ("empty.zip", NO_RECORDS),
        (
            "package.json",
            "not a usable OSV record: has neither 'id' nor 'affected'; not an OSV record",
        ),
    ]


def test_yaml_feed_without_pyyaml_is_a_clear_problem(osv_dir: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    path = osv_dir / "pypa-advisory-database" / "vulns" / "py" / "PYSEC-2022-42969.yaml"
    loaded = load_feeds([path], builtin=False)
    assert [p.message for p in loaded.problems] == [YAML_MISSING]


# ------------------------------------------------------------------ findings, dedup, cache


def _snapshot_with(tmp_path: Path, *dists: tuple[str, str]):
    site = tmp_path / "site"
    for name, version in dists:
        install_fake(site, name, version)
    return take_snapshot([str(site)], keep_rows=True)


def test_duplicates_across_feeds_are_one_finding_with_all_ids(osv_dir: Path, tmp_path) -> None:
    snapshot = _snapshot_with(tmp_path, ("litellm", "1.82.8"), ("requests", "2.32.3"))
    result = run_known_bad(KnownBadConfig((osv_dir,), builtin=True), snapshot)
    [finding] = result.findings
    assert finding.kind is Kind.KNOWN_BAD_PACKAGE
    assert finding.subject == "litellm"
    for advisory_id in ("MAL-2026-2144", "PYSEC-2026-2", "GHSA-92x9-889m-jgmw"):
        assert finding.message.count(advisory_id) == 1
    assert "litellm 1.82.8 is a known-bad release" in finding.message
    assert "Malicious code in litellm" in finding.message


def test_an_installed_file_with_a_listed_hash_is_flagged(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "helper", "1.0", {"helper/__init__.py": "X = 1\n", "helper/evil.py": "E\n"})
    listed = tmp_path / "bad.sha256"
    evil = hash_bytes(b"E\n").hex
    listed.write_text(f"{evil}  evil.py\n")
    snapshot = take_snapshot([str(site)], keep_rows=True)
    result = run_known_bad(KnownBadConfig((listed,), builtin=False), snapshot)
    [finding] = result.findings
    assert finding.kind is Kind.KNOWN_BAD_FILE
    assert finding.location == os.path.normpath(site / "helper" / "evil.py")
    assert "bad.sha256:1" in finding.message and "evil.py" in finding.message


def test_warm_run_uses_the_cache_and_a_change_invalidates_it(osv_dir: Path, tmp_path) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "a.json").write_text((osv_dir / "ossf/malicious/0-8/MAL-2025-2925.json").read_text())
    cache = tmp_path / "cache"
    cache.mkdir()
    cold = load_feeds([feeds], cache_dir=cache)
    assert not cold.from_cache and (cache / CACHE_FILE).is_file()
    warm = load_feeds([feeds], cache_dir=cache)
    assert warm.from_cache
    assert warm.index.match_distribution("0-8", "0.0.0.1")
    assert (
        warm.freshness_note().replace("compiled index from the cache", "").split("(")[0]
        == (cold.freshness_note().split("(")[0])
    )
    (feeds / "b.json").write_text(
        (osv_dir / "ossf/malicious/3web-py/MAL-2024-9934.json").read_text()
    )
    changed = load_feeds([feeds], cache_dir=cache)
    assert not changed.from_cache
    assert changed.index.match_distribution("3web-py", "1.0.0")


def test_a_record_added_deep_in_a_folder_feed_invalidates_the_cache(
    osv_dir: Path, tmp_path: Path
) -> None:
    """One folder per package, as ossf/malicious-packages lays them out: leaves count too."""
    feeds = tmp_path / "osv" / "malicious" / "pypi"
    for name in ("0-8", "3web-py"):
        (feeds / name).mkdir(parents=True)
    (feeds / "0-8" / "MAL-2025-2925.json").write_text(
        (osv_dir / "ossf/malicious/0-8/MAL-2025-2925.json").read_text()
    )
    cache = tmp_path / "cache"
    cache.mkdir()
    load_feeds([tmp_path / "osv"], cache_dir=cache)
    assert load_feeds([tmp_path / "osv"], cache_dir=cache).from_cache
    (feeds / "3web-py" / "MAL-2024-9934.json").write_text(
        (osv_dir / "ossf/malicious/3web-py/MAL-2024-9934.json").read_text()
    )
    changed = load_feeds([tmp_path / "osv"], cache_dir=cache)
    assert not changed.from_cache
    assert changed.index.match_distribution("3web-py", "1.0.0")


def test_a_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / CACHE_FILE).write_bytes(b"\x00garbage")
    loaded = load_feeds([], cache_dir=cache)
    assert not loaded.from_cache
    assert loaded.index.match_distribution("litellm", "1.82.7")


def test_the_cached_index_answers_like_the_compiled_one(osv_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cold = load_feeds([osv_dir], cache_dir=cache)
    warm = load_feeds([osv_dir], cache_dir=cache)
    assert warm.from_cache and not cold.from_cache
    names = {e.name for entries in cold.index.packages.values() for e in entries}
    assert len(names) > 10
    for name in [*sorted(names), "not-listed"]:
        for version in ("0", "0.0.1", "1.0.0", "2.1.0", "99"):
            assert warm.index.match_distribution(name, version) == (
                cold.index.match_distribution(name, version)
            ), (name, version)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=0, max_size=12).filter(lambda k: "\0" not in k),
        st.binary(max_size=40),
        max_size=30,
    )
)
def test_packed_blobs_round_trip(blobs: dict[str, bytes]) -> None:
    packed = PackedBlobs.pack(blobs)
    assert packed is not None
    lazy = PackedBlobs(*packed)
    assert len(lazy) == len(blobs)
    assert lazy.pop("\0absent") is None
    for taken, (key, value) in enumerate(blobs.items(), start=1):
        assert lazy.pop(key) == value
        assert lazy.pop(key) is None  # taken once, like dict.pop
        assert len(lazy) == len(blobs) - taken


def test_packed_blobs_refuse_what_pack_did_not_make() -> None:
    assert PackedBlobs.pack({"a\0b": b"x"}) is None  # stored as a plain dict instead
    keys, ends, blob = PackedBlobs.pack({"a": b"xy", "b": b"z"}) or ("", b"", b"")
    with pytest.raises(ValueError):
        PackedBlobs(keys, ends, blob + b"!")
    with pytest.raises(ValueError):
        PackedBlobs(keys + "\0c", ends, blob)
    with pytest.raises(TypeError):
        PackedBlobs(keys, ends, "not bytes")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the built-in list

INCIDENTS = [
    (
        "litellm",
        ["1.82.7", "1.82.8"],
        "1.82.6",
        {"MAL-2026-2144", "PYSEC-2026-2", "GHSA-92x9-889m-jgmw"},
    ),
    (
        "lightning",
        ["2.6.2", "2.6.3"],
        "2.6.1",
        {"GHSA-w37p-236h-pfx3", "MAL-2026-3201", "CVE-2026-44484"},
    ),
    ("ultralytics", ["8.3.41", "8.3.42", "8.3.45", "8.3.46"], "8.3.47", {"MLSUPPLY-2024-1"}),
    ("aliyun-ai-labs-snippets-sdk", ["1.0.0", "2.1.0"], None, {"MAL-2025-5096"}),
    ("torchtriton", ["3.0.0"], "2.0.0+0d7e753227", {"MLSUPPLY-2022-1"}),
    ("deepseeek", ["0.0.8"], None, {"MAL-2025-1970", "GHSA-h4m9-p24w-65cc"}),
]


@pytest.mark.parametrize(("name", "bad", "good", "ids"), INCIDENTS)
def test_builtin_list_names_the_incidents(name, bad, good, ids) -> None:
    index = load_feeds([], builtin=True).index
    for version in bad:
        [advisory] = index.match_distribution(name, version)
        assert set(advisory.ids) == ids
    if good:
        assert index.match_distribution(name, good) == ()
    assert index.match_distribution("ultralytics", "8.3.44") == ()


def test_builtin_records_cite_their_sources() -> None:
    files = sorted(BUILTIN_DIR.glob("*.json"))
    assert len(files) == len(INCIDENTS)
    for path in files:
        record = json.loads(path.read_text())
        assert record["references"], path
        assert all(ref["url"].startswith("https://") for ref in record["references"])
        assert record["database_specific"]["pytest-mlsupply"]["verified_from"], path
        assert record["modified"].startswith(BUILTIN_LIST_DATE)


def test_builtin_list_can_be_switched_off() -> None:
    loaded = load_feeds([], builtin=False)
    assert loaded.index.match_distribution("litellm", "1.82.8") == ()
    assert loaded.stats == []


def test_the_archive_a_distribution_came_from_is_matched(osv_dir: Path, tmp_path: Path) -> None:
    """pip records the wheel's hash in direct_url.json for URL installs (PEP 610)."""
    wheel_sha256 = "c8784cf0aa8fa13a43614fbd6d51902feeecafdc06fc4db2695fd2572db66db8"
    direct_url = json.dumps(
        {
            "url": "https://files.example.invalid/0requests-0.0.1-py3-none-any.whl",
            "archive_info": {"hashes": {"sha256": wheel_sha256}},
        }
    )
    site = tmp_path / "site"
    install_fake(site, "0requests", "0.0.1", direct_url=direct_url)
    snapshot = take_snapshot([str(site)], keep_rows=True)
    feed = osv_dir / "ossf" / "malicious" / "0requests" / "MAL-2026-15859.json"
    result = run_known_bad(KnownBadConfig((feed,), builtin=False), snapshot)
    kinds = sorted((f.kind.value, f.subject) for f in result.findings)
    assert kinds == [("known-bad-file", "0requests"), ("known-bad-package", "0requests")]
    [archive] = [f for f in result.findings if f.kind is Kind.KNOWN_BAD_FILE]
    assert archive.actual == f"sha256:{wheel_sha256}"
    assert "the archive 0requests 0.0.1 was installed from" in archive.message


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_RECORDISH = st.fixed_dictionaries(
    {},
    optional={
        "id": _JSON,
        "aliases": _JSON,
        "withdrawn": _JSON,
        "summary": _JSON,
        "affected": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "package": st.fixed_dictionaries(
                        {}, optional={"name": _JSON, "ecosystem": st.just("PyPI") | _JSON}
                    ),
                    "versions": _JSON,
                    "ranges": st.lists(
                        st.fixed_dictionaries(
                            {"type": st.just("ECOSYSTEM")},
                            optional={
                                "events": st.lists(
                                    st.dictionaries(
                                        st.sampled_from([INTRODUCED, FIXED, LAST_AFFECTED, LIMIT]),
                                        _JSON | st.sampled_from(["0", "1.0", "2.0rc1"]),
                                        max_size=2,
                                    ),
                                    max_size=3,
                                )
                            },
                        ),
                        max_size=2,
                    )
                    | _JSON,
                    "database_specific": _JSON,
                },
            ),
            max_size=2,
        )
        | _JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(record=_RECORDISH | _JSON, name=st.sampled_from(["x", "demo"]), version=_VERSIONS)
def test_any_record_loads_or_is_a_feed_problem_never_an_exception(
    tmp_path_factory, record, name, version
) -> None:
    path = tmp_path_factory.getbasetemp() / "any-record.json"  # one file, rewritten
    path.write_text(json.dumps(record))
    loaded = load_feeds([path], builtin=False)
    assert all(p.message for p in loaded.problems)
    loaded.index.match_distribution(name, str(version))  # matching never raises either


def test_a_damaged_zip_member_is_a_problem_and_the_rest_load(osv_dir: Path, tmp_path) -> None:
    good = (osv_dir / "ossf/malicious/0-8/MAL-2025-2925.json").read_bytes()
    damaged = (osv_dir / "ossf/malicious/3web-py/MAL-2024-9934.json").read_bytes()
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        out.writestr("MAL-2024-9934.json", damaged)
        out.writestr("MAL-2025-2925.json", good)
        out.writestr("latin1.json", b"{}" + "é".encode("latin-1"))
    data = bytearray(archive.read_bytes())
    where = data.index(b"Malicious code in 3web-py")
    data[where] = ord("m")  # still JSON, no longer the bytes the CRC was computed over
    archive.write_bytes(bytes(data))
    loaded = load_feeds([archive], builtin=False, base=tmp_path)
    problems = {p.path: p.message for p in loaded.problems}
    assert problems.keys() == {"all.zip!MAL-2024-9934.json", "all.zip!latin1.json"}
    assert "bad CRC" in problems["all.zip!MAL-2024-9934.json"]
    assert "not UTF-8" in problems["all.zip!latin1.json"]
    assert loaded.index.match_distribution("0-8", "0.0.0.1")
    assert not loaded.index.match_distribution("3web-py", "1.0.0")


def test_a_file_that_is_not_a_zip_is_one_clear_problem(tmp_path: Path) -> None:
    (tmp_path / "all.zip").write_text("not a zip")
    (tmp_path / "empty.zip").write_bytes(b"")
    loaded = load_feeds(
        [tmp_path / "all.zip", tmp_path / "empty.zip"], builtin=False, base=tmp_path
    )
    assert [p.path for p in loaded.problems] == ["all.zip", "empty.zip"]
    assert all("not a readable zip of OSV records" in p.message for p in loaded.problems)
