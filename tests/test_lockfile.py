"""mlsupply.lock: round trips, every malformed input's message, refreshing across platforms."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from pytest_mlsupply.errors import LockfileError, LockfileNotFoundError
from pytest_mlsupply.locks.mlsupply_lock import (
    HEADER,
    Lock,
    LockedDistribution,
    LockedEnvironment,
    dump_lock,
    load_lock,
    parse_lock,
    refresh_lock,
    write_lock,
)
from pytest_mlsupply.snapshot import InstalledDistribution, Interpreter, Snapshot
from pytest_mlsupply.sources import Source

ASSETS = Path(__file__).parent / "assets" / "locks"

#: One asset per malformed input, and the messages its error must contain.
MALFORMED = {
    "not-toml.lock": ["line 2, column ", "not valid TOML"],
    "no-version.lock": ["lock-version: missing; this does not look like an mlsupply.lock"],
    "bad-version-type.lock": ["line 1: lock-version: must be a positive integer, got 'one'"],
    "future.lock": ["lock-version 7 was written by a newer pytest-mlsupply", "Upgrade"],
    "not-utf8.lock": ["not UTF-8 text"],
    "distribution-problems.lock": [
        "line 9: distribution[0] (numpy).verison: unknown key",
        "line 9: distribution[0] (numpy).version: missing",
        "line 15: distribution[1] (torch).source: must be one of index, url, vcs, directory, "
        "editable, unknown; got 'pypi'",
        "line 15: distribution[1] (torch).content: sha256 digest must be 32 bytes, got 2",
        "line 15: distribution[1] (torch).environments: 'cpython-3.12-linux-x86_64' is not the "
        "key of any [[environment]] table",
    ],
    "duplicate.lock": [
        "line 9: environment[1].key: environment 'e' is listed twice",
        "line 21: distribution[1] (numpy): duplicates distribution[0] (Numpy)",
    ],
    "environment-problems.lock": [
        "line 2: distribution: must be an array of tables ([[distribution]])",
        "line 4: environment[0].python-version: missing",
        "line 4: environment[0].platform: must be a non-empty string, got 3",
    ],
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_lock_reports_file_location_and_problem(name: str) -> None:
    path = ASSETS / name
    with pytest.raises(LockfileError) as caught:
        load_lock(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    for expected in MALFORMED[name]:
        assert expected in message, message


def test_every_asset_has_an_expectation() -> None:
    assert {p.name for p in ASSETS.glob("*.lock")} == set(MALFORMED)


def test_missing_lock_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(LockfileNotFoundError, match="pytest --mlsupply-update-lock"):
        load_lock(tmp_path / "mlsupply.lock")


# ------------------------------------------------------------------ round trips

names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True).filter(
    lambda n: "--" not in n
)
versions = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}(\+cpu|rc1|\.post2)?", fullmatch=True)
digests = st.binary(min_size=32, max_size=32).map(lambda b: f"sha256:{b.hex()}")
env_keys = st.sampled_from(
    ["cpython-3.11-linux-x86_64", "cpython-3.12-macosx-11.0-arm64", "pypy-3.10-win-amd64"]
)
text_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
).filter(str.strip)
sources = st.one_of(
    st.just(Source()),
    st.builds(Source, kind=st.just("vcs"), url=text_values, vcs=st.just("git"), commit=text_values),
    st.builds(Source, kind=st.just("url"), url=text_values, archive_hash=st.none() | digests),
    st.builds(Source, kind=st.sampled_from(["directory", "editable"])),
)


@st.composite
def locks(draw: st.DrawFn) -> Lock:
    keys = draw(st.lists(env_keys, min_size=1, max_size=3, unique=True))
    environments = tuple(
        LockedEnvironment(key, "cpython", draw(versions), key.split("-", 2)[-1]) for key in keys
    )
    entries = {}
    for _ in range(draw(st.integers(0, 8))):
        dist = LockedDistribution(
            name=draw(names),
            version=draw(versions),
            source=draw(sources),
            content=tuple(sorted(draw(st.lists(digests, max_size=3, unique=True)))),
            environments=tuple(
                sorted(draw(st.lists(st.sampled_from(keys), min_size=1, unique=True)))
            ),
        )
        entries[(dist.name, dist.version, dist.source)] = dist
    return Lock(environments, tuple(entries.values()))


def _normalized(lock: Lock) -> Lock:
    key = lambda d: (d.name, d.version, repr(sorted(d.source.to_dict().items())))  # noqa: E731
    return Lock(
        tuple(sorted(lock.environments, key=lambda e: e.key)),
        tuple(sorted(lock.distributions, key=key)),
        lock.created_by,
    )


@settings(max_examples=150)
@given(locks())
def test_lock_round_trips(lock: Lock) -> None:
    text = dump_lock(lock)
    assert text.startswith(HEADER)
    assert _normalized(parse_lock(text, "mlsupply.lock")) == _normalized(lock)
    assert dump_lock(parse_lock(text, "mlsupply.lock")) == text  # stable: no churn in diffs


@given(st.text())
def test_any_text_parses_or_raises_lockfile_error(text: str) -> None:
    with contextlib.suppress(LockfileError):
        parse_lock(text, "mlsupply.lock")


@given(locks(), st.data())
def test_mangled_lock_text_parses_or_raises_lockfile_error(lock: Lock, data: st.DataObject) -> None:
    text = dump_lock(lock)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    insert = data.draw(st.text(max_size=10))
    with contextlib.suppress(LockfileError):
        parse_lock(text[:start] + insert + text[end:], "mlsupply.lock")


# ------------------------------------------------------------------ writing


def test_write_is_atomic_and_keeps_the_old_lock_on_failure(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "mlsupply.lock"
    good = Lock((LockedEnvironment("e", "cpython", "3.11.7", "linux-x86_64"),), ())
    write_lock(path, good)
    before = path.read_text()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(LockfileError, match="cannot be written: No space left on device"):
        write_lock(path, Lock())
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["mlsupply.lock"]  # no temp file left


def test_written_lock_is_plain_toml_with_a_header(tmp_path: Path) -> None:
    path = tmp_path / "mlsupply.lock"
    write_lock(path, Lock((LockedEnvironment("e", "cpython", "3.11.7", "linux-x86_64"),), ()))
    text = path.read_text()
    assert text.startswith("# mlsupply.lock: ")
    assert tomllib.loads(text)["lock-version"] == 1


# ------------------------------------------------------------------ refreshing

LINUX = Interpreter("cpython", "3.11.7", "linux-x86_64")
MAC = Interpreter("cpython", "3.11.9", "macosx-11.0-arm64")


FROM_INDEX = Source()


def installed(
    name: str, version: str, content: str | None, source: Source = FROM_INDEX
) -> InstalledDistribution:
    return InstalledDistribution(
        name=name,
        display_name=name,
        version=version,
        source=source,
        installer="pip",
        location="/site",
        metadata_path=f"/site/{name}-{version}.dist-info",
        content=content,
    )


def snapshot(interpreter: Interpreter, *dists: InstalledDistribution) -> Snapshot:
    return Snapshot(interpreter, tuple(dists), (), (), ())


D1, D2, D3 = (f"sha256:{c * 64}" for c in "123")


def test_refresh_on_a_second_platform_adds_and_keeps() -> None:
    linux = refresh_lock(
        None, snapshot(LINUX, installed("numpy", "2.1.0", D1), installed("pure", "1.0", D3))
    )
    both = refresh_lock(
        linux,
        snapshot(
            MAC,
            installed("numpy", "2.1.0", D2),
            installed("pure", "1.0", D3),
            installed("appnope", "0.1.4", D3),
        ),
    )
    by_name = {d.name: d for d in both.distributions}
    assert by_name["numpy"].content == (D1, D2)
    assert by_name["numpy"].environments == (LINUX.key, MAC.key)
    assert by_name["pure"].content == (D3,)
    assert by_name["appnope"].environments == (MAC.key,)
    assert {e.key for e in both.environments} == {LINUX.key, MAC.key}


def test_refresh_replaces_this_platforms_entries_only() -> None:
    first = refresh_lock(None, snapshot(LINUX, installed("numpy", "2.1.0", D1)))
    both = refresh_lock(first, snapshot(MAC, installed("numpy", "2.1.0", D2)))
    upgraded = refresh_lock(both, snapshot(LINUX, installed("numpy", "2.2.0", D3)))
    entries = sorted((d.version, d.content, d.environments) for d in upgraded.distributions)
    assert entries == [("2.1.0", (D1, D2), (MAC.key,)), ("2.2.0", (D3,), (LINUX.key,))]
    removed = refresh_lock(upgraded, snapshot(LINUX))
    assert [d.environments for d in removed.distributions] == [(MAC.key,)]


def test_refresh_records_the_interpreter_and_drops_machine_paths() -> None:
    local = Source("editable", url="file:///home/alice/project")
    wheel = Source("url", url="file:///home/alice/dist/x-1.0-py3-none-any.whl")
    lock = refresh_lock(
        None, snapshot(LINUX, installed("proj", "0.1", D1, local), installed("x", "1.0", D2, wheel))
    )
    assert lock.environments == (LockedEnvironment.of(LINUX),)
    by_name = {d.name: d for d in lock.distributions}
    assert by_name["proj"].source == Source("editable") and by_name["proj"].content == ()
    assert by_name["x"].source.url == "file:x-1.0-py3-none-any.whl"
    assert "alice" not in dump_lock(lock)


def test_deeply_nested_toml_is_a_clear_error_not_a_crash() -> None:
    with pytest.raises(LockfileError, match="not valid TOML: nested too deeply"):
        parse_lock("lock-version = " + "[" * 100_000, "mlsupply.lock")
