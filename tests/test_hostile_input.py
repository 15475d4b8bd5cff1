"""Hostile input: each crash once found in a parser, replayed, and the limits that stop it.

Every case here once ended in an INTERNALERROR, a traceback or gigabytes of
memory (issue: "no crash on hostile input"). Now each is an error of the
parser's own type (a lockfile error, a known-bad-feed problem) that names the
file and the key or line, or a cache miss with a note.
"""

from __future__ import annotations

import json
import marshal
import struct
import time
import tracemalloc
import zipfile
import zlib
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import pytest

from pytest_mlsupply.checks import _same_version, check_environment
from pytest_mlsupply.errors import LockfileError
from pytest_mlsupply.knownbad import KnownBadConfig, feeds, run_known_bad
from pytest_mlsupply.knownbad.feeds import (
    _CACHE_HEADER,
    _CACHE_MAGIC,
    CACHE_FILE,
    YAML_ALIAS,
    _checked_payload,
    _fingerprint,
    _load_cache,
    load_feeds,
)
from pytest_mlsupply.knownbad.model import CACHE_ENTRY_BROKEN
from pytest_mlsupply.limits import (
    MAX_FEED_FILE_BYTES,
    MAX_NESTING_DEPTH,
    MAX_RECORD_BYTES,
    MAX_VERSION_LENGTH,
    NESTED_TOO_DEEPLY,
    parse_version,
)
from pytest_mlsupply.locks.foreign import load_foreign_lock
from pytest_mlsupply.locks.mlsupply_lock import parse_lock, refresh_lock
from pytest_mlsupply.quirks import QuirksFileError, find_quirk, load_quirks, parse_quirks
from pytest_mlsupply.snapshot import RECORD_MALFORMED, take_snapshot

from wheelfactory import install_fake

HUGE = "1" * 5000  # past Python's 4,300-digit int() limit

LOCK = """\
lock-version = 1

[[environment]]
key = "cpython-3.11-linux"
implementation = "cpython"
python-version = "3.11"
platform = "linux"

[[distribution]]
name = "demo"
version = "{version}"
source = "index"
environments = ["cpython-3.11-linux"]
"""


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "MAL-2026-1",
        "modified": "2026-05-03T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "evil"}, "versions": ["1.0"]}],
    }
    record.update(changes)
    return record


def _affected(**changes: Any) -> list[dict[str, Any]]:
    item: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": "evil"}}
    item.update(changes)
    return [item]


def _problems(path: Path) -> list[str]:
    return [p.describe() for p in load_feeds([path], builtin=False).problems]


# ------------------------------------------------------------------ versions


def test_a_5000_digit_version_in_the_lock_is_a_located_lockfile_error() -> None:
    with pytest.raises(LockfileError) as caught:
        parse_lock(LOCK.format(version=HUGE), "mlsupply.lock")
    text = str(caught.value)
    assert "mlsupply.lock: line 9: distribution[0] (demo).version: version is 5,000" in text
    assert f"the limit is {MAX_VERSION_LENGTH}" in text


def test_a_5000_digit_toml_integer_is_a_located_lockfile_error() -> None:
    """tomllib raises a plain ValueError (not TOMLDecodeError) for it: once an INTERNALERROR."""
    with pytest.raises(LockfileError) as caught:
        parse_lock(f"lock-version = 1\ncreated-by = 'x'\nn = [\n  {HUGE}]\n", "mlsupply.lock")
    assert str(caught.value) == (
        "mlsupply.lock: line 4: not valid TOML: a number of more than 4,300 digits, "
        "past what Python reads"
    )


def test_a_5000_digit_json_number_in_a_feed_is_a_located_problem(tmp_path: Path) -> None:
    path = tmp_path / "number.json"
    path.write_text(json.dumps(_record()).replace('"MAL-2026-1"', f'"MAL-2026-1", "n":\n{HUGE}'))
    assert _problems(path) == [
        f"{path}, line 2: not valid JSON: a number of more than 4,300 digits, "
        "past what Python reads"
    ]


def test_a_version_at_the_limit_still_parses() -> None:
    longest = "1." + "0" * (MAX_VERSION_LENGTH - 2)
    lock = parse_lock(LOCK.format(version=longest), "mlsupply.lock")
    assert lock.distributions[0].version == longest


@pytest.mark.parametrize("text", [HUGE, "1." * 3000 + "0", "0!" + HUGE, "1.0+" + "a" * 300])
def test_version_comparison_never_raises(text: str) -> None:
    assert parse_version(text) is None
    assert _same_version("1.0", text) is False
    assert _same_version(text, text) is True  # exact text, as for any non-PEP 440 version


def test_a_5000_digit_version_in_a_foreign_lock_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(f"demo=={HUGE}\n")
    with pytest.raises(LockfileError) as caught:
        load_foreign_lock(path, "requirements")
    assert "requirements.txt" in str(caught.value)


@pytest.mark.parametrize(
    ("affected", "where"),
    [
        (_affected(versions=[HUGE]), "affected[0].versions[0]: version is 5,000"),
        (
            _affected(ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": HUGE}]}]),
            "affected[0].ranges[0].events[0].introduced: version is 5,000",
        ),
    ],
)
def test_a_5000_digit_version_in_a_feed_is_a_feed_problem(
    tmp_path: Path, affected: list[Any], where: str
) -> None:
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(_record(affected=affected)))
    [problem] = _problems(path)
    assert problem.startswith(f"{path}: not a usable OSV record: {where}")


# ------------------------------------------------------------------ OSV types


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_record(affected=_affected(ranges=5)), "affected[0].ranges must be a list, got 5"),
        (
            _record(affected=_affected(ranges=[{"type": "ECOSYSTEM", "events": [5]}])),
            "affected[0].ranges[0].events[0] must be a mapping",
        ),
        (
            _record(
                affected=_affected(
                    ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": {"a": 1}}]}]
                )
            ),
            "affected[0].ranges[0].events[0].introduced must be a version string, got {'a': 1}",
        ),
        (
            _record(
                affected=_affected(
                    versions=["1.0"], database_specific={"indicators": {"package_integrity": 7}}
                )
            ),
            "affected[0].database_specific.indicators.package_integrity must be a list, got 7",
        ),
        (
            _record(
                affected=_affected(
                    versions=["1.0"],
                    database_specific={"indicators": {"evidence_files": [{"sha256": 5}]}},
                )
            ),
            "affected[0].database_specific.indicators.evidence_files[0].sha256 must be a string",
        ),
        (_record(affected=_affected(versions=[True])), "affected[0].versions[0] must be a"),
        (_record(aliases="GHSA-1"), "'aliases' must be a list of strings, got 'GHSA-1'"),
        (_record(affected=None), "'affected' must be a list"),
        (
            _record(affected=[{"package": {"ecosystem": ["PyPI"], "name": "evil"}}]),
            "affected[0].package.ecosystem must be a string, got ['PyPI']",
        ),
        (
            _record(affected=_affected(ranges=[{"type": 5, "events": []}])),
            "affected[0].ranges[0].type must be a string",
        ),
        (_record(id=7), "'id' must be a string, got 7"),
    ],
)
def test_wrong_types_in_an_osv_record_are_located_problems(
    tmp_path: Path, record: dict[str, Any], message: str
) -> None:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record))
    [problem] = _problems(path)
    assert problem.startswith(f"{path}: not a usable OSV record: {message}")


@pytest.mark.parametrize("withdrawn", ["false", "no", "", True, False, 0, ["2026-01-01"]])
def test_withdrawn_must_be_a_timestamp_not_a_truthy_value(tmp_path: Path, withdrawn: Any) -> None:
    """``"withdrawn": "false"`` once withdrew the record: it matched nothing, silently."""
    path = tmp_path / "record.json"
    path.write_text(json.dumps(_record(withdrawn=withdrawn)))
    loaded = load_feeds([path], builtin=False)
    [problem] = [p.describe() for p in loaded.problems]
    assert "'withdrawn' must be an RFC 3339 timestamp" in problem
    assert loaded.stats[0].withdrawn == 0


@pytest.mark.parametrize("withdrawn", ["2026-06-17T00:00:00Z", "2024-12-12T11:22:57.5+01:00"])
def test_a_withdrawn_timestamp_still_withdraws(tmp_path: Path, withdrawn: str) -> None:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(_record(withdrawn=withdrawn)))
    loaded = load_feeds([path], builtin=False)
    assert not loaded.problems and loaded.stats[0].withdrawn == 1
    assert not loaded.index.match_distribution("evil", "1.0")


# ------------------------------------------------------------------ nesting


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_a_100000_deep_json_document_is_a_problem(tmp_path: Path, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    path = tmp_path / "deep.json"
    path.write_text(opening * 100_000 + "1" + closing * 100_000)
    assert _problems(path) == [
        f"{path}: not valid JSON: {NESTED_TOO_DEEPLY.format(limit=MAX_NESTING_DEPTH)}"
    ]


def test_json_nesting_at_the_limit_is_read_and_brackets_in_strings_do_not_count(
    tmp_path: Path,
) -> None:
    deep: Any = "x"
    for _ in range(MAX_NESTING_DEPTH - 2):
        deep = [deep]
    record = _record(summary="[" * 500 + "{" * 500, database_specific={"deep": deep})
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(record))
    loaded = load_feeds([path], builtin=False)
    assert not loaded.problems
    assert loaded.index.match_distribution("evil", "1.0")


def test_a_100000_deep_yaml_document_is_a_problem(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 100_000 + "]" * 100_000)
    [problem] = _problems(path)
    assert problem == (
        f"{path}, line 1: not valid YAML: {NESTED_TOO_DEEPLY.format(limit=MAX_NESTING_DEPTH)}"
    )


# ------------------------------------------------------------------ YAML aliases

#: 469 bytes that expand ninefold per level: 9**9 strings, about 1.26 GB in memory.
ALIAS_BOMB = """\
id: BOMB
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    started = time.perf_counter()
    [problem] = _problems(path)
    assert time.perf_counter() - started < 5
    assert problem == f"{path}, line 2: not valid YAML: {YAML_ALIAS}"


def test_a_single_yaml_anchor_is_refused_too(tmp_path: Path) -> None:
    """No real OSV record uses anchors; refusing them is what makes aliases impossible."""
    pytest.importorskip("yaml")
    path = tmp_path / "anchor.yaml"
    path.write_text("id: A\naffected: &x []\n")
    [problem] = _problems(path)
    assert problem == f"{path}, line 2: not valid YAML: {YAML_ALIAS}"


# ------------------------------------------------------------------ zip and file sizes


def _zip_with(path: Path, name: str, data: bytes, *, declared: int | None = None) -> None:
    """A zip of one deflated member; *declared* overwrites the sizes both headers state."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(name, data)
    if declared is None:
        return
    raw = bytearray(path.read_bytes())
    local = raw.index(b"PK\x03\x04")
    struct.pack_into("<L", raw, local + 22, declared)  # uncompressed size, local header
    central = raw.index(b"PK\x01\x02")
    struct.pack_into("<L", raw, central + 24, declared)  # uncompressed size, central directory
    path.write_bytes(bytes(raw))


def test_a_zip_member_that_declares_too_much_is_not_inflated(tmp_path: Path) -> None:
    path = tmp_path / "feed.zip"
    _zip_with(path, "big.json", b" " * (MAX_FEED_FILE_BYTES + 1))
    [problem] = _problems(path)
    assert problem.startswith(f"{path}!big.json: declares it is larger than 16,777,216 bytes")


def test_a_zip_member_that_lies_about_its_size_stops_inflating_at_the_limit(
    tmp_path: Path,
) -> None:
    """The central directory says 40 bytes; the member inflates to 4x the limit."""
    path = tmp_path / "feed.zip"
    _zip_with(path, "bomb.json", b" " * (4 * MAX_FEED_FILE_BYTES), declared=40)
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        problems = _problems(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problems == [
        f"{path}!bomb.json: inflates past its declared size: it is larger than 16,777,216 "
        "bytes, the limit for one OSV record file"
    ]
    assert peak < 3 * MAX_FEED_FILE_BYTES


def test_a_stored_member_that_lies_about_its_size_is_refused(tmp_path: Path) -> None:
    """zipfile's own reader (other compressions, encryption flags) is capped the same way."""
    path = tmp_path / "feed.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("bomb.json", b" " * (MAX_FEED_FILE_BYTES + 10))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<L", raw, raw.index(b"PK\x01\x02") + 24, 40)
    path.write_bytes(bytes(raw))
    [problem] = _problems(path)
    assert "inflates past its declared size" in problem or "cannot be extracted" in problem


def test_a_zip_feed_stops_at_its_total_and_member_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The totals, lowered here, that bound a zip of many members that each pass on their own."""
    path = tmp_path / "feed.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(3):
            archive.writestr(f"r{number}.json", json.dumps(_record(id=f"MAL-{number}")))
    size = len(json.dumps(_record(id="MAL-0")))
    monkeypatch.setattr(feeds, "MAX_ZIP_TOTAL_BYTES", 2 * size)
    [problem] = _problems(path)
    assert problem == (
        f"{path}: inflates to more than {2 * size:,} bytes, the limit for one zip feed; "
        "stopped at r2.json"
    )
    monkeypatch.setattr(feeds, "MAX_ZIP_MEMBERS", 2)
    assert _problems(path) == [f"{path}: holds 3 members; the limit is 2"]


def test_an_oversized_hash_list_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.sha256"
    path.write_text(f"sha256:{'a' * 64}\n" * 10)
    monkeypatch.setattr(feeds, "MAX_HASH_LIST_BYTES", 100)
    assert _problems(path) == [f"{path}: is larger than 100 bytes, the limit for a hash list"]


def test_an_oversized_record_file_is_a_problem_and_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as out:
        out.truncate(MAX_FEED_FILE_BYTES + 1)
    [problem] = _problems(path)
    assert problem == (
        f"{path}: is larger than 16,777,216 bytes, the limit for one OSV record file"
    )


# ------------------------------------------------------------------ the compiled cache


def _read_cache(path: Path) -> Any:
    return marshal.loads(_checked_payload(path.read_bytes()))


def _write_cache(path: Path, data: Any) -> None:
    """A well-formed cache file (right length and checksum) holding *data*."""
    payload = marshal.dumps(data)
    path.write_bytes(_CACHE_MAGIC + _CACHE_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)


@pytest.fixture
def cached_feed(tmp_path: Path) -> tuple[Path, Path]:
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps(_record()))
    cache = tmp_path / "cache"
    cache.mkdir()
    load_feeds([feed], builtin=False, cache_dir=cache)
    assert load_feeds([feed], builtin=False, cache_dir=cache).from_cache
    return feed, cache / CACHE_FILE


@pytest.mark.parametrize(
    "content",
    [
        b"\x00garbage",
        b"",
        marshal.dumps([1, 2, 3]),
        _CACHE_MAGIC + b"\xff" * 30,
    ],
)
def test_a_corrupt_cache_is_a_miss_with_a_note(
    cached_feed: tuple[Path, Path], content: bytes
) -> None:
    feed, cache_file = cached_feed
    cache_file.write_bytes(content)
    loaded = load_feeds([feed], builtin=False, cache_dir=cache_file.parent)
    assert not loaded.from_cache
    assert any("compiled afresh" in note for note in loaded.notes)
    assert loaded.index.match_distribution("evil", "1.0")
    assert load_feeds([feed], builtin=False, cache_dir=cache_file.parent).from_cache  # rewritten


@pytest.mark.parametrize(
    "data",
    [[1, 2, 3], {"version": 3}, b"\xe3" + b"\xff" * 20],
    ids=["a list", "no fingerprint", "bad marshal data"],
)
def test_a_checksummed_cache_of_the_wrong_shape_is_a_miss(
    cached_feed: tuple[Path, Path], data: Any
) -> None:
    feed, cache_file = cached_feed
    if isinstance(data, bytes):
        cache_file.write_bytes(
            _CACHE_MAGIC + _CACHE_HEADER.pack(len(data), zlib.crc32(data)) + data
        )
    else:
        _write_cache(cache_file, data)
    loaded = load_feeds([feed], builtin=False, cache_dir=cache_file.parent)
    assert not loaded.from_cache
    assert loaded.index.match_distribution("evil", "1.0")
    assert load_feeds([feed], builtin=False, cache_dir=cache_file.parent).from_cache  # rewritten


def test_a_cache_with_the_right_fingerprint_but_wrong_fields_is_a_miss_with_a_note(
    cached_feed: tuple[Path, Path],
) -> None:
    feed, cache_file = cached_feed
    data = _read_cache(cache_file)
    data["stats"] = [("x", "not a number", 0, 0, None)]
    _write_cache(cache_file, data)
    loaded = load_feeds([feed], builtin=False, cache_dir=cache_file.parent)
    assert not loaded.from_cache
    assert any("was not usable (bad row); compiled afresh" in note for note in loaded.notes)


def test_a_corrupt_cached_entry_fails_closed_for_its_name(cached_feed: tuple[Path, Path]) -> None:
    """An entry decoded only when its name is installed: unreadable, it matches every version."""
    feed, cache_file = cached_feed
    data = _read_cache(cache_file)
    keys, _, _ = data["packages"]
    assert keys == "evil"
    data["packages"] = (keys, struct.pack("<Q", 3), b"\xe3\xff\xff")
    _write_cache(cache_file, data)
    loaded = load_feeds([feed], builtin=False, cache_dir=cache_file.parent)
    assert loaded.from_cache
    for version in ("1.0", "2.0", "not-pep-440"):
        [advisory] = loaded.index.match_distribution("evil", version)
        assert advisory.summary == CACHE_ENTRY_BROKEN
    assert not loaded.index.match_distribution("other", "1.0")


def test_a_cached_event_that_is_not_pep_440_fails_closed(cached_feed: tuple[Path, Path]) -> None:
    feed, cache_file = cached_feed
    data = _read_cache(cache_file)
    fields = (("MAL-1",), "s", "feed", None)
    blob = marshal.dumps([(fields, (), ((("introduced", HUGE),),))])
    data["packages"] = ("evil", struct.pack("<Q", len(blob)), blob)
    _write_cache(cache_file, data)
    loaded = load_feeds([feed], builtin=False, cache_dir=cache_file.parent)
    [advisory] = loaded.index.match_distribution("evil", "1.0")
    assert advisory.summary == CACHE_ENTRY_BROKEN


def test_every_single_byte_change_of_the_cache_is_a_miss_never_a_crash(
    cached_feed: tuple[Path, Path],
) -> None:
    """Every header byte and every 5th payload byte changed twice: a miss, never a crash.

    Before the checksum, marshal took 20 seconds over one of these files.
    """
    feed, cache_file = cached_feed
    fingerprint = _fingerprint([feed])
    assert fingerprint is not None
    original = cache_file.read_bytes()
    header = len(_CACHE_MAGIC) + _CACHE_HEADER.size
    for position in [*range(header), *range(header, len(original), 5)]:
        for value in (original[position] ^ 0xFF, original[position] ^ 0x01):
            changed = bytearray(original)
            changed[position] = value
            cache_file.write_bytes(bytes(changed))
            started = time.perf_counter()
            outcome = _load_cache(cache_file, fingerprint)
            assert time.perf_counter() - started < 1
            assert isinstance(outcome, str), (position, value)
            assert "compiled afresh" in outcome


# ------------------------------------------------------------------ as users run it


def test_hostile_feeds_fail_the_gate_with_located_errors_and_no_traceback(
    pytester: pytest.Pytester,
) -> None:
    """One gated run over every hostile feed: each is a known-bad-feed error, nothing crashes."""
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    assert pytester.runpytest_subprocess("--mlsupply-update-lock").ret == 0
    feeds = pytester.mkdir("feeds")
    name, version = "pluggy", installed_version("pluggy")
    own = _affected(versions=[version])
    own[0]["package"]["name"] = name
    (feeds / "huge-version.json").write_text(
        json.dumps(_record(affected=_affected(versions=[HUGE])))
    )
    (feeds / "ranges-int.json").write_text(json.dumps(_record(affected=_affected(ranges=5))))
    withdrawn = _record(affected=own, withdrawn="false")
    (feeds / "withdrawn-false.json").write_text(json.dumps(withdrawn))
    (feeds / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    _zip_with(feeds / "bomb.zip", "bomb.json", b" " * (2 * MAX_FEED_FILE_BYTES), declared=40)
    result = pytester.runpytest_subprocess("--mlsupply", "--mlsupply-known-bad", "feeds")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    for expected in (
        "huge-version.json: not a usable OSV record: affected[0].versions[0]: version is 5,000",
        "ranges-int.json: not a usable OSV record: affected[0].ranges must be a list, got 5",
        "withdrawn-false.json: not a usable OSV record: 'withdrawn' must be an RFC 3339",
        f"deep.json: not valid JSON: {NESTED_TOO_DEEPLY.format(limit=MAX_NESTING_DEPTH)}",
        "bomb.zip!bomb.json: inflates past its declared size",
    ):
        assert expected in output, expected
    result.assert_outcomes(failed=1)  # the gate item; a failed gate collects nothing


def test_a_5000_digit_version_in_the_lock_is_a_usage_error_not_a_crash(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    (pytester.path / "mlsupply.lock").write_text(LOCK.format(version=HUGE))
    result = pytester.runpytest_subprocess("--mlsupply")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert "distribution[0] (demo).version: version is 5,000 characters long" in output


# ------------------------------------------------------------------ installed distributions


def test_an_installed_5000_digit_version_is_compared_as_text_not_a_crash(tmp_path: Path) -> None:
    """METADATA is as hostile as any lock: its version meets the lock, the feeds and the quirks."""
    site = tmp_path / "site"
    install_fake(
        site, "demo", "1.0", metadata_text=f"Metadata-Version: 2.1\nName: demo\nVersion: {HUGE}\n"
    )
    snapshot = take_snapshot([str(site)])
    [dist] = snapshot.distributions
    assert dist.version == HUGE
    lock = refresh_lock(None, snapshot)
    assert not check_environment(snapshot, lock).findings  # equal as text
    other = parse_lock(LOCK.format(version="1.0").replace("cpython-3.11-linux", "x"), "l")
    kinds = {f.kind.value for f in check_environment(snapshot, other).findings}
    assert "version-changed" in kinds
    feed = tmp_path / "feed.json"
    record = _record(affected=_affected(versions=["1.0"]))
    record["affected"][0]["package"]["name"] = "demo"
    feed.write_text(json.dumps(record))
    assert not run_known_bad(KnownBadConfig((feed,), builtin=False), snapshot).findings
    assert find_quirk(load_quirks(), "demo", HUGE, "demo.py", "hash") is None


def test_a_record_over_the_size_limit_is_malformed_and_not_read(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist_info = install_fake(site, "demo", "1.0")
    with (dist_info / "RECORD").open("r+b") as record:
        record.truncate(MAX_RECORD_BYTES + 1)  # sparse: no disk used, no memory if read
    snapshot = take_snapshot([str(site)])
    [dist] = snapshot.distributions
    assert dist.record_state == RECORD_MALFORMED
    assert dist.problem == (
        f"RECORD is larger than {MAX_RECORD_BYTES:,} bytes, the limit for one RECORD; "
        "it was not read"
    )


def test_a_quirk_with_a_5000_digit_version_is_a_located_error() -> None:
    text = f'[[quirk]]\nname = "demo"\nversions = ">={HUGE}"\nmismatch = ["hash"]\nreason = "r"\n'
    with pytest.raises(QuirksFileError) as caught:
        parse_quirks(text, "quirks.toml")
    assert "versions: version is 5,000 characters long" in str(caught.value)
