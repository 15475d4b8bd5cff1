"""Fuzzing every parser: structurally valid and invalid documents, only our errors come out.

Each strategy builds documents shaped like the real format (the keys a lock or
an OSV record has, at the right depth), with any value at any key: the right
type, the wrong type, a 5,000-digit version, deep nesting, empty text. A
parser either returns or raises its own error type (``LockfileError``, a
feed problem, a cache miss); anything else is a crash, and each crash found
is kept below as an ``@example`` (issue: "fuzzing, as trusted parsers are
tested").

The number of examples per test is small by default so CI stays fast; set
``MLSUPPLY_FUZZ_EXAMPLES`` (say 5000) to fuzz for longer.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import marshal
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_mlsupply.checks import _same_version
from pytest_mlsupply.errors import LockfileError, RecordError
from pytest_mlsupply.foreign_checks import version_matches
from pytest_mlsupply.hashcache import HashCache, RecordCache, VerdictCache
from pytest_mlsupply.hashing import Digest, FileState
from pytest_mlsupply.knownbad.feeds import (
    _CACHE_HEADER,
    _CACHE_MAGIC,
    CACHE_FILE,
    _fingerprint,
    load_feeds,
)
from pytest_mlsupply.knownbad.hashlist import parse_hash_list
from pytest_mlsupply.knownbad.match import HINT_UPGRADE, _vulnerable_hint, severity_of
from pytest_mlsupply.limits import parse_version
from pytest_mlsupply.locks.foreign import ForeignLock, select
from pytest_mlsupply.locks.mlsupply_lock import parse_lock
from pytest_mlsupply.locks.pipfile import parse_pipfile_lock
from pytest_mlsupply.locks.poetry import parse_poetry_lock
from pytest_mlsupply.locks.pylock import parse_pylock
from pytest_mlsupply.locks.requirements import parse_requirements
from pytest_mlsupply.locks.uvlock import parse_uv_lock
from pytest_mlsupply.quirks import QuirksFileError, parse_quirks
from pytest_mlsupply.record import iter_record_rows, parse_record, summarize_record
from pytest_mlsupply.sources import Source
from pytest_mlsupply.waivers import WaiverFileError, parse_waivers

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("MLSUPPLY_FUZZ_EXAMPLES", "60"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)

HUGE_NUMBER = "1" * 5000
SHA = "a" * 64

# ------------------------------------------------------------------ building blocks

#: Texts that broke, or could break, a parser: long numbers, brackets, separators, markup.
NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "0",
        "1.0",
        "==1.0",
        ">=1,<2",
        "1.0+local",
        "0!1.0.post1.dev2",
        HUGE_NUMBER,
        f"=={HUGE_NUMBER}",
        f">={HUGE_NUMBER}",
        f"python_version >= '{HUGE_NUMBER}'",
        "1." * 200,
        "[" * 100,
        "{" * 100,
        "\x00",
        "\r\n",
        '"',
        "a,b,c",
        "*",
        "sha256:" + SHA,
        "sha256=" + "A" * 43,
        "md5:" + "0" * 32,
        "sha256:zz",
        "https://files.example.invalid/a/b/demo-1.0-py3-none-any.whl",
        "git+https://example.invalid/r.git@" + "0" * 40,
        "demo-1.0.tar.gz",
        "2026-06-17T00:00:00Z",
        "not a date",
        "PyPI",
        "ECOSYSTEM",
        "false",
        "cpython-3.11-linux",
    ]
)
TEXT = NASTY_TEXT | st.text(max_size=20)
SCALAR = (
    TEXT
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**40, max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
)
#: Any TOML value (TOML has no null).
TOML_VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
JSON_VALUE = st.recursive(
    st.none() | SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def shaped(fields: dict[str, st.SearchStrategy[Any]], anything: Any) -> Any:
    """A table with some of *fields* (each its own strategy or *anything*) and maybe a stray key."""
    optional = {key: strategy | anything for key, strategy in fields.items()}
    return st.fixed_dictionaries({}, optional=optional) | st.dictionaries(
        TEXT, anything, max_size=2
    )


def tables(table: Any, anything: Any) -> Any:
    return st.lists(table, max_size=3) | anything


def _toml(document: Any) -> str:
    try:
        return tomli_w.dumps(document)
    except (TypeError, ValueError):  # not representable in TOML (a float key, say)
        return ""


def mutated(text_strategy: Any) -> Any:
    """Documents, some of them cut short or with a nasty line inserted."""

    @st.composite
    def build(draw: Any) -> str:
        text: str = draw(text_strategy)
        lines = text.split("\n")
        choice = draw(st.integers(0, 3))
        if choice == 1 and lines:
            del lines[draw(st.integers(0, len(lines) - 1))]
        elif choice == 2:
            lines.insert(draw(st.integers(0, len(lines))), draw(TEXT))
        elif choice == 3:
            return text[: draw(st.integers(0, len(text)))]
        return "\n".join(lines)

    return build()


def exercise_foreign(lock: ForeignLock) -> None:
    """What the gate does with a lock that parsed: select for this interpreter, compare."""
    select(lock)
    select(lock, {"python_full_version": "3.11.4", "python_version": "3.11"})
    for package in lock.packages:
        if package.version is not None:
            version_matches("1.0", package.version)
            version_matches(package.version, package.version)


# ------------------------------------------------------------------ mlsupply.lock

_ENVIRONMENT = shaped(
    {
        "key": st.just("cpython-3.11-linux"),
        "implementation": st.just("cpython"),
        "python-version": st.just("3.11"),
        "platform": st.just("linux"),
    },
    TOML_VALUE,
)
_DISTRIBUTION = shaped(
    {
        "name": st.sampled_from(["demo", "Demo_Model", "x"]),
        "version": NASTY_TEXT,
        "source": st.sampled_from(["index", "archive", "vcs", "directory", "editable"]),
        "source-url": NASTY_TEXT,
        "source-commit": NASTY_TEXT,
        "content": st.lists(NASTY_TEXT, max_size=2),
        "environments": st.just(["cpython-3.11-linux"]),
    },
    TOML_VALUE,
)
MLSUPPLY_LOCK = mutated(
    shaped(
        {
            "lock-version": st.just(1),
            "created-by": TEXT,
            "environment": tables(_ENVIRONMENT, TOML_VALUE),
            "distribution": tables(_DISTRIBUTION, TOML_VALUE),
        },
        TOML_VALUE,
    ).map(_toml)
)


@fuzz
@given(MLSUPPLY_LOCK)
@example(
    '\nlock-version = 1\n[[environment]]\nkey = "k"\nimplementation = "c"\n'
    'python-version = "3"\nplatform = "p"\n[[distribution]]\nname = "a"\n'
    f'version = "{HUGE_NUMBER}"\nsource = "index"\nenvironments = ["k"]\n'
)
@example("[" * 5000)
@example(f"lock-version = {HUGE_NUMBER}\n")  # found by the uv.lock fuzzer: tomllib ValueError
def test_mlsupply_lock_parses_or_raises_a_lockfile_error(text: str) -> None:
    try:
        lock = parse_lock(text, "mlsupply.lock")
    except LockfileError as exc:
        assert str(exc).startswith("mlsupply.lock")
        return
    for dist in lock.distributions:
        _same_version("1.0", dist.version)
        _same_version(dist.version, dist.version)


# ------------------------------------------------------------------ uv.lock, poetry.lock, pylock

_WHEEL = shaped(
    {"url": NASTY_TEXT, "hash": NASTY_TEXT, "size": st.integers(), "filename": NASTY_TEXT},
    TOML_VALUE,
)
_UV_PACKAGE = shaped(
    {
        "name": st.sampled_from(["demo", "other"]),
        "version": NASTY_TEXT,
        "source": shaped(
            {
                "registry": NASTY_TEXT,
                "git": NASTY_TEXT,
                "editable": NASTY_TEXT,
                "virtual": NASTY_TEXT,
            },
            TOML_VALUE,
        ),
        "sdist": _WHEEL,
        "wheels": tables(_WHEEL, TOML_VALUE),
        "dependencies": tables(
            shaped({"name": st.just("other"), "marker": NASTY_TEXT}, TOML_VALUE), TOML_VALUE
        ),
        "resolution-markers": st.lists(NASTY_TEXT, max_size=2),
    },
    TOML_VALUE,
)
UV_LOCK = mutated(
    shaped(
        {
            "version": st.just(1),
            "revision": st.integers(0, 3),
            "requires-python": NASTY_TEXT,
            "package": tables(_UV_PACKAGE, TOML_VALUE),
            "manifest": shaped({"members": st.lists(TEXT, max_size=2)}, TOML_VALUE),
        },
        TOML_VALUE,
    ).map(_toml)
)

_POETRY_PACKAGE = shaped(
    {
        "name": st.sampled_from(["demo", "other"]),
        "version": NASTY_TEXT,
        "optional": st.booleans(),
        "python-versions": NASTY_TEXT,
        "groups": st.lists(st.sampled_from(["main", "dev"]), max_size=2),
        "markers": NASTY_TEXT,
        "files": tables(shaped({"file": NASTY_TEXT, "hash": NASTY_TEXT}, TOML_VALUE), TOML_VALUE),
        "source": shaped(
            {"type": st.sampled_from(["git", "url", "file", "directory"]), "url": NASTY_TEXT},
            TOML_VALUE,
        ),
        "dependencies": st.dictionaries(st.just("other"), NASTY_TEXT, max_size=1),
    },
    TOML_VALUE,
)
POETRY_LOCK = mutated(
    shaped(
        {
            "package": tables(_POETRY_PACKAGE, TOML_VALUE),
            "metadata": shaped(
                {"lock-version": st.just("2.1"), "python-versions": NASTY_TEXT}, TOML_VALUE
            ),
        },
        TOML_VALUE,
    ).map(_toml)
)

_PYLOCK_FILE = shaped(
    {
        "name": NASTY_TEXT,
        "url": NASTY_TEXT,
        "hashes": st.dictionaries(st.just("sha256"), NASTY_TEXT, max_size=1),
        "size": st.integers(),
    },
    TOML_VALUE,
)
PYLOCK = mutated(
    shaped(
        {
            "lock-version": st.just("1.0"),
            "created-by": TEXT,
            "requires-python": NASTY_TEXT,
            "environments": st.lists(NASTY_TEXT, max_size=2),
            "packages": tables(
                shaped(
                    {
                        "name": st.sampled_from(["demo", "other"]),
                        "version": NASTY_TEXT,
                        "marker": NASTY_TEXT,
                        "requires-python": NASTY_TEXT,
                        "wheels": tables(_PYLOCK_FILE, TOML_VALUE),
                        "sdist": _PYLOCK_FILE,
                    },
                    TOML_VALUE,
                ),
                TOML_VALUE,
            ),
        },
        TOML_VALUE,
    ).map(_toml)
)


@fuzz
@given(UV_LOCK)
@example(f'version = 1\nrequires-python = ">={HUGE_NUMBER}"\n')
@example('version = 1\nmanifest = " "\n')  # found by this test: AttributeError
@example(f"x = [\n{HUGE_NUMBER}]\n")  # found by this test: ValueError from tomllib
def test_uv_lock_parses_or_raises_a_lockfile_error(text: str) -> None:
    try:
        lock = parse_uv_lock(text, "uv.lock")
    except LockfileError:
        return
    exercise_foreign(lock)


@fuzz
@given(POETRY_LOCK)
def test_poetry_lock_parses_or_raises_a_lockfile_error(text: str) -> None:
    try:
        lock = parse_poetry_lock(text, "poetry.lock")
    except LockfileError:
        return
    exercise_foreign(lock)


@fuzz
@given(PYLOCK)
@example(
    'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "demo"\n'
    f'version = "{HUGE_NUMBER}"\n'
)
def test_pylock_parses_or_raises_a_lockfile_error(text: str) -> None:
    try:
        lock = parse_pylock(text, "pylock.toml")
    except LockfileError:
        return
    exercise_foreign(lock)


# ------------------------------------------------------------------ Pipfile.lock, requirements

_PIPFILE_ENTRY = shaped(
    {
        "version": NASTY_TEXT,
        "hashes": st.lists(NASTY_TEXT, max_size=2),
        "markers": NASTY_TEXT,
        "index": NASTY_TEXT,
        "git": NASTY_TEXT,
        "ref": NASTY_TEXT,
        "path": NASTY_TEXT,
        "file": NASTY_TEXT,
        "editable": st.booleans(),
    },
    JSON_VALUE,
)
PIPFILE_LOCK = mutated(
    shaped(
        {
            "_meta": shaped({"pipfile-spec": st.just(6), "sources": JSON_VALUE}, JSON_VALUE),
            "default": st.dictionaries(st.sampled_from(["demo", "other"]), _PIPFILE_ENTRY),
            "develop": st.dictionaries(st.sampled_from(["demo", "dev"]), _PIPFILE_ENTRY),
        },
        JSON_VALUE,
    ).map(json.dumps)
)


@fuzz
@given(PIPFILE_LOCK)
@example('{"default": {"demo": {"version": "==' + HUGE_NUMBER + '"}}}')
@example("[" * 5000 + "]" * 5000)  # found by this test: RecursionError
@example(HUGE_NUMBER)  # found by this test: ValueError from json.loads
def test_pipfile_lock_parses_or_raises_a_lockfile_error(text: str) -> None:
    try:
        lock = parse_pipfile_lock(text, "Pipfile.lock")
    except LockfileError:
        return
    exercise_foreign(lock)


_REQUIREMENT_PART = st.sampled_from(
    [
        "demo",
        "Demo_Model[extra]",
        "==1.0",
        "===weird",
        f"=={HUGE_NUMBER}",
        ">=1",
        " @ https://files.example.invalid/demo-1.0-py3-none-any.whl",
        " ; python_version >= '3'",
        f" ; python_version >= '{HUGE_NUMBER}'",
        f" --hash=sha256:{SHA}",
        " --hash=sha256:zz",
        " --hash",
        " \\",
        "-r other.txt",
        "-c constraints.txt",
        "-e git+https://example.invalid/r.git@" + "0" * 40 + "#egg=demo",
        "--index-url https://pypi.example.invalid/simple",
        "# comment",
        "'",
        '"',
        "#sha256=" + SHA,
    ]
)
REQUIREMENTS = st.lists(
    st.lists(_REQUIREMENT_PART | TEXT, min_size=1, max_size=4).map("".join), max_size=6
).map("\n".join)


@fuzz
@given(REQUIREMENTS)
@example(f"demo=={HUGE_NUMBER}\n")
def test_requirements_parse_or_raise_a_lockfile_error(text: str) -> None:
    try:
        lock = parse_requirements(text, "requirements.txt")
    except LockfileError:
        return
    exercise_foreign(lock)


# ------------------------------------------------------------------ OSV feeds

_EVENT = st.dictionaries(
    st.sampled_from(["introduced", "fixed", "last_affected", "limit", "other"]),
    NASTY_TEXT | JSON_VALUE,
    max_size=2,
)
_SEVERITY = st.lists(
    shaped(
        {
            "type": st.sampled_from(["CVSS_V2", "CVSS_V3", "CVSS_V4", "Ubuntu", "CVSS_V5"]),
            "score": st.sampled_from(
                [
                    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                    "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                    "AV:N/AC:L/Au:N/C:P/I:P/A:P",
                    "CVSS:3.1/AV:N",
                    "medium",
                ]
            )
            | NASTY_TEXT,
        },
        JSON_VALUE,
    ),
    max_size=2,
)
_AFFECTED = shaped(
    {
        "severity": _SEVERITY,
        "package": shaped(
            {"ecosystem": st.sampled_from(["PyPI", "PyPI:3", "npm"]), "name": st.just("evil")},
            JSON_VALUE,
        ),
        "versions": st.lists(NASTY_TEXT | JSON_VALUE, max_size=3),
        "ranges": st.lists(
            shaped(
                {
                    "type": st.sampled_from(["ECOSYSTEM", "GIT", "SEMVER"]),
                    "events": st.lists(_EVENT, max_size=3),
                },
                JSON_VALUE,
            ),
            max_size=2,
        ),
        "database_specific": shaped(
            {
                "indicators": shaped(
                    {
                        "package_integrity": st.lists(
                            shaped(
                                {"hashes": st.dictionaries(st.just("sha256"), NASTY_TEXT)},
                                JSON_VALUE,
                            ),
                            max_size=2,
                        ),
                        "evidence_files": st.lists(
                            shaped({"sha256": NASTY_TEXT}, JSON_VALUE), max_size=2
                        ),
                    },
                    JSON_VALUE,
                ),
                "malicious-packages-origins": JSON_VALUE,
                "cwes": st.lists(shaped({"cweId": st.just("CWE-506")}, JSON_VALUE), max_size=1),
            },
            JSON_VALUE,
        ),
    },
    JSON_VALUE,
)
OSV_RECORD = shaped(
    {
        "id": NASTY_TEXT,
        "modified": NASTY_TEXT,
        "withdrawn": NASTY_TEXT,
        "aliases": st.lists(NASTY_TEXT, max_size=2),
        "summary": TEXT,
        "details": TEXT,
        "references": st.lists(shaped({"url": NASTY_TEXT}, JSON_VALUE), max_size=1),
        "affected": st.lists(_AFFECTED, max_size=2),
        "severity": _SEVERITY,
        "database_specific": shaped({"cwe_ids": st.lists(NASTY_TEXT, max_size=2)}, JSON_VALUE),
    },
    JSON_VALUE,
)
OSV_DOCUMENT = (
    OSV_RECORD
    | st.lists(OSV_RECORD, max_size=3)
    | st.fixed_dictionaries({"vulns": st.lists(OSV_RECORD, max_size=2)})
)
VERSIONS = st.sampled_from(["1.0", "0", "2.0rc1", "not-pep-440", HUGE_NUMBER])


def _assert_feed_never_crashes(path: Path, versions: list[str]) -> None:
    loaded = load_feeds([path], builtin=False)
    for problem in loaded.problems:
        assert problem.describe()
    for version in versions:
        loaded.index.match_distribution("evil", version)
        found = loaded.index.match_release("evil", version)
        if found:  # every record the feed kept renders as a finding, never an exception
            severity_of([advisory for advisory, _fixes in found])
            _vulnerable_hint(found, HINT_UPGRADE)
    loaded.index.match_digest(Digest("sha256", bytes.fromhex(SHA)))
    loaded.index.record_spellings()
    loaded.freshness_note()


@fuzz
@given(document=OSV_DOCUMENT | JSON_VALUE, versions=st.lists(VERSIONS, max_size=3))
@example(document={"id": "X", "affected": [{"package": {}, "ranges": 5}]}, versions=[])
@example(
    document={"id": "X", "affected": [{"versions": [HUGE_NUMBER], "package": {"name": "evil"}}]},
    versions=["1.0"],
)
def test_any_osv_json_document_loads_or_is_a_feed_problem(
    tmp_path_factory: pytest.TempPathFactory, document: Any, versions: list[str]
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-record.json"
    path.write_text(json.dumps(document))
    _assert_feed_never_crashes(path, versions)


@fuzz
@given(
    document=OSV_DOCUMENT | JSON_VALUE,
    versions=st.lists(VERSIONS, max_size=2),
    anchor=st.booleans(),
)
def test_any_osv_yaml_document_loads_or_is_a_feed_problem(
    tmp_path_factory: pytest.TempPathFactory, document: Any, versions: list[str], anchor: bool
) -> None:
    yaml = pytest.importorskip("yaml")
    path = tmp_path_factory.getbasetemp() / "fuzz-record.yaml"
    text = yaml.safe_dump(document, allow_unicode=True)
    if anchor:  # the same document written with an anchor and an alias, as a bomb is
        text = "x: &a [1]\ny: *a\n" + text if isinstance(document, dict) else text
    path.write_text(text)
    _assert_feed_never_crashes(path, versions)


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # duplicates are wanted
@fuzz
@given(
    members=st.lists(
        st.tuples(
            st.sampled_from(["a.json", "b.yaml", "dir/c.json", "../d.json", "e.txt"]),
            st.binary(max_size=40) | OSV_RECORD.map(lambda r: json.dumps(r).encode()),
            st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2]),
        ),
        max_size=3,
    ),
    cut=st.integers(0, 400) | st.none(),
    flip=st.integers(0, 400) | st.none(),
)
def test_any_zip_feed_loads_or_is_a_feed_problem(
    tmp_path_factory: pytest.TempPathFactory,
    members: list[tuple[str, bytes, int]],
    cut: int | None,
    flip: int | None,
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data, method in members:
            archive.writestr(name, data, compress_type=method)
    raw = bytearray(buffer.getvalue())
    if flip is not None and flip < len(raw):
        raw[flip] ^= 0xFF
    if cut is not None:
        raw = raw[: max(cut, 1)]
    path = tmp_path_factory.getbasetemp() / "fuzz-feed.zip"
    path.write_bytes(bytes(raw))
    _assert_feed_never_crashes(path, ["1.0"])


# ------------------------------------------------------------------ hash lists, RECORD

_HASH_LINE = st.lists(
    st.sampled_from(
        [
            f"sha256:{SHA}",
            SHA,
            "0" * 32,
            "sha256:",
            ":",
            "md5:zz",
            "  ",
            "\t",
            "*name.whl",
            "# comment",
            "sha256=" + "A" * 43,
        ]
    )
    | TEXT,
    max_size=4,
).map(" ".join)


@fuzz
@given(st.lists(_HASH_LINE, max_size=8).map("\n".join))
def test_hash_lists_give_entries_and_located_problems_never_an_exception(text: str) -> None:
    entries, problems = parse_hash_list(text)
    lines = len(text.splitlines())
    assert all(1 <= entry.line <= lines for entry in entries)
    assert all(1 <= line <= lines and message for line, message in problems)


_RECORD_FIELD = st.sampled_from(
    ["demo/__init__.py", "demo-1.0.dist-info/RECORD", "../bin/x", "sha256=" + "A" * 43, "", "12"]
) | st.text(max_size=12)


def _record_text(rows: list[list[str]], separator: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator=separator).writerows(rows)
    return out.getvalue()


@fuzz
@given(
    rows=st.lists(st.lists(_RECORD_FIELD, max_size=4), max_size=6),
    separator=st.sampled_from(["\n", "\r\n", "\r"]),
    noise=st.sampled_from(["", '"', "\x00", "a" * 200_000, ",\n"]),
)
@example(rows=[["a", "b", "c"]], separator="\n", noise='"' + "a" * 200_000)
def test_record_parses_or_raises_a_record_error(
    rows: list[list[str]], separator: str, noise: str
) -> None:
    text = _record_text(rows, separator) + noise
    for parse in (
        lambda: parse_record(text, "RECORD"),
        lambda: summarize_record(text, "RECORD", "demo-1.0.dist-info", keep_rows=True),
    ):
        try:
            parse()
        except RecordError as exc:
            assert "RECORD" in str(exc)
    list(iter_record_rows(text))


# ------------------------------------------------------------------ quirks, waivers


@fuzz
@given(
    shaped(
        {
            "quirk": tables(
                shaped(
                    {
                        "name": st.just("demo"),
                        "versions": NASTY_TEXT,
                        "mismatch": st.lists(TEXT, max_size=2),
                        "files": st.lists(TEXT, max_size=2),
                        "reason": TEXT,
                    },
                    TOML_VALUE,
                ),
                TOML_VALUE,
            )
        },
        TOML_VALUE,
    ).map(_toml)
)
def test_quirks_parse_or_raise_a_quirks_error(text: str) -> None:
    with contextlib.suppress(QuirksFileError):
        parse_quirks(text, "quirks.toml")


@fuzz
@given(
    shaped(
        {
            "waiver": tables(
                shaped(
                    {
                        "id": NASTY_TEXT,
                        "kind": TEXT,
                        "subject": TEXT,
                        "reason": TEXT,
                        "expires": NASTY_TEXT | st.dates(),
                    },
                    TOML_VALUE,
                ),
                TOML_VALUE,
            )
        },
        TOML_VALUE,
    )
)
def test_waivers_parse_or_raise_a_waiver_error(document: dict[str, Any]) -> None:
    with contextlib.suppress(WaiverFileError):
        parse_waivers(document, "waivers.toml")


# ------------------------------------------------------------------ on-disk caches

_STATE = FileState(1, 2, 3, 4, 5)


@fuzz
@given(document=JSON_VALUE | shaped({"version": st.just(1), "entries": JSON_VALUE}, JSON_VALUE))
@example(  # found by this test: OverflowError from int(inf)
    document={
        "version": 1,
        "entries": {"/a": {"stat": [1], "content": "x", "rows": 1e999, "unhashed": 0}},
    }
)
@example(
    document={
        "version": 1,
        "entries": {"/a": {"stat": [1], "paths": [1], "tops": [None], "skipped": {"a": "b"}}},
    }
)
def test_json_caches_load_as_a_cache_or_a_miss(
    tmp_path_factory: pytest.TempPathFactory, document: Any
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-cache.json"
    path.write_text(json.dumps(document))
    hashes, _ = HashCache.load(path)
    hashes.get("/a", _STATE, "sha256")
    verdicts, _ = VerdictCache.load(path)
    verdicts.matches("/a", "x")
    records = RecordCache.load(path)
    records.summary("/a", (1,))
    records.ownership("/a", (1,))


_KNOWN_BAD_CACHE = st.fixed_dictionaries(
    {
        "version": st.just(3),
        "packages": st.tuples(st.just("evil"), st.binary(max_size=16), st.binary(max_size=40))
        | st.dictionaries(st.just("evil"), st.binary(max_size=40))
        | st.just(("evil", struct.pack("<Q", 0), b"")),
        "digests": st.dictionaries(st.just(f"sha256:{SHA}"), st.binary(max_size=40)),
        "spellings": st.dictionaries(TEXT, TEXT, max_size=2),
        "stats": st.lists(st.tuples(TEXT, st.integers(), st.integers(), st.integers(), TEXT)),
        "problems": st.lists(st.tuples(TEXT, TEXT, st.none() | st.integers()), max_size=2),
        "notes": st.lists(TEXT, max_size=2),
    }
)
_MARSHALLED_ENTRY = st.lists(
    st.tuples(
        st.tuples(st.tuples(TEXT), TEXT, TEXT, st.none() | TEXT),
        st.tuples(NASTY_TEXT),
        st.tuples(st.tuples(st.tuples(st.sampled_from(["introduced", "fixed", "x"]), NASTY_TEXT))),
    )
    | st.tuples(SCALAR),
    max_size=2,
).map(marshal.dumps)


@fuzz
@given(
    data=_KNOWN_BAD_CACHE | JSON_VALUE.map(lambda v: v if not isinstance(v, float) else 0),
    entry=_MARSHALLED_ENTRY | st.binary(max_size=30),
)
def test_known_bad_cache_loads_as_a_cache_or_a_miss(
    tmp_path_factory: pytest.TempPathFactory, data: Any, entry: bytes
) -> None:
    """A cache file with a valid checksum and anything inside: a miss, or lookups that work."""
    base = tmp_path_factory.getbasetemp()
    feed = base / "fuzz-cached-feed.json"
    if not feed.exists():
        feed.write_text('{"id": "A", "affected": []}')
    folder = base / "fuzz-known-bad-cache"
    folder.mkdir(exist_ok=True)
    if isinstance(data, dict) and data.get("version") == 3:
        data["fingerprint"] = _fingerprint([feed])
        if isinstance(data["packages"], dict):
            data["packages"] = {"evil": entry}
        data["digests"] = {f"sha256:{SHA}": entry}
    payload = marshal.dumps(data)
    header = _CACHE_MAGIC + _CACHE_HEADER.pack(len(payload), zlib.crc32(payload))
    (folder / CACHE_FILE).write_bytes(header + payload)
    loaded = load_feeds([feed], builtin=False, cache_dir=folder)
    for version in ("1.0", "not-pep-440"):
        loaded.index.match_distribution("evil", version)
    loaded.index.match_digest(Digest("sha256", bytes.fromhex(SHA)))
    loaded.index.record_spellings()
    loaded.freshness_note()


# ------------------------------------------------------------------ direct_url.json

_DIRECT_URL = shaped(
    {
        "url": NASTY_TEXT,
        "vcs_info": shaped({"vcs": st.just("git"), "commit_id": NASTY_TEXT}, JSON_VALUE),
        "dir_info": shaped({"editable": st.booleans()}, JSON_VALUE),
        "archive_info": shaped(
            {"hash": NASTY_TEXT, "hashes": st.dictionaries(st.just("sha256"), NASTY_TEXT)},
            JSON_VALUE,
        ),
    },
    JSON_VALUE,
)


@fuzz
@given(mutated(_DIRECT_URL.map(json.dumps)))
@example("[" * 100_000)  # found while reviewing: RecursionError from json.loads
def test_direct_url_json_gives_a_source_never_an_exception(text: str) -> None:
    source = Source.from_direct_url(text)
    source.describe()
    source.portable()


# ------------------------------------------------------------------ versions


@fuzz
@given(st.text(alphabet="0123456789.!+-abcdeprlostv*", max_size=6000) | NASTY_TEXT)
def test_version_helpers_never_raise(text: str) -> None:
    parsed = parse_version(text)
    assert parsed is None or len(text) <= 256
    _same_version(text, "1.0")
    version_matches(text, "1.0")
    version_matches("1.0", text)
