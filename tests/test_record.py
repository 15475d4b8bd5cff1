"""RECORD parsing and the content digest, on synthetic rows and on real RECORD files."""

from __future__ import annotations

import contextlib
import csv
import io
import posixpath
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_mlsupply.errors import RecordError
from pytest_mlsupply.record import (
    DUPLICATE_ROW,
    NUL_IN_ROW,
    content_digest,
    parse_record,
    shipped_rows,
    site_relative,
    summarize_record,
)

REAL_RECORDS = [
    "wheel/setuptools-69.5.1.dist-info/RECORD",
    "wheel/safetensors-0.4.3.dist-info/RECORD",
    "installed/pip_audit-2.10.0.dist-info/RECORD",
    "installed/pretend-1.0.9.dist-info/RECORD",
    "installed/pluggy-0.4.0.dist-info/RECORD",
]


def record_text(rows: list[tuple[str, str, str]]) -> str:
    if any("\x00" in field for row in rows for field in row):
        # Python 3.10's csv writer cannot write a NUL; such rows need no quoting here.
        return "".join(",".join(row) + "\n" for row in rows)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize("relative", REAL_RECORDS)
def test_real_records_parse_and_digest(realdata: Path, relative: str) -> None:
    path = realdata / "record-files" / relative
    rows = parse_record(path.read_text(encoding="utf-8"), str(path))
    with path.open(newline="", encoding="utf-8") as stream:
        expected = [row for row in csv.reader(stream) if row]
    assert [(r.path, r.hash, r.size) for r in rows] == [tuple(row) for row in expected]
    digest = content_digest(rows, path.parent.name)
    assert str(digest).startswith("sha256:") and len(digest.hex) == 64


def test_installed_record_keeps_only_what_the_wheel_shipped(realdata: Path) -> None:
    path = realdata / "record-files/installed/pip_audit-2.10.0.dist-info/RECORD"
    rows = parse_record(path.read_text(), str(path))
    kept = {row.path for row in shipped_rows(rows, "pip_audit-2.10.0.dist-info")}
    dropped = {row.path for row in rows} - kept
    assert dropped == {
        "../../../bin/pip-audit",
        "pip_audit-2.10.0.dist-info/INSTALLER",
        "pip_audit-2.10.0.dist-info/RECORD",
        "pip_audit-2.10.0.dist-info/REQUESTED",
        "pip_audit-2.10.0.dist-info/direct_url.json",
    } | {p for p in kept | dropped if p.endswith(".pyc")}
    assert "pip_audit.pth" in kept and "pip_audit-2.10.0.dist-info/licenses/LICENSE" in kept


def test_pyc_rows_without_hash_are_installer_files(realdata: Path) -> None:
    path = realdata / "record-files/installed/pretend-1.0.9.dist-info/RECORD"
    rows = parse_record(path.read_text(), str(path))
    kept = [row.path for row in shipped_rows(rows, "pretend-1.0.9.dist-info")]
    assert "__pycache__/pretend.cpython-312.pyc" not in kept
    assert sorted(kept) == [
        "pretend-1.0.9.dist-info/METADATA",
        "pretend-1.0.9.dist-info/WHEEL",
        "pretend-1.0.9.dist-info/top_level.txt",
        "pretend.py",
    ]


def test_wheel_record_and_its_installed_form_have_one_digest() -> None:
    """What pip adds at install (INSTALLER, .pyc, scripts, direct_url.json) does not count."""
    wheel_rows = [
        ("demo/__init__.py", "sha256=AAAA", "10"),
        ("demo-1.0.dist-info/METADATA", "sha256=BBBB", "20"),
        ("demo-1.0.dist-info/RECORD", "", ""),
    ]
    installed_rows = [
        *reversed(wheel_rows),
        ("demo/__pycache__/__init__.cpython-311.pyc", "", ""),
        ("demo-1.0.dist-info/INSTALLER", "sha256=CCCC", "4"),
        ("demo-1.0.dist-info/REQUESTED", "sha256=DDDD", "0"),
        ("demo-1.0.dist-info/direct_url.json", "sha256=EEEE", "99"),
        ("../../../bin/demo", "sha256=FFFF", "200"),
    ]
    wheel = content_digest(parse_record(record_text(wheel_rows), "w"), "demo-1.0.dist-info")
    installed = content_digest(parse_record(record_text(installed_rows), "i"), "demo-1.0.dist-info")
    assert wheel == installed
    rebuilt_rows = [("demo/__init__.py", "sha256=AAAB", "10"), *wheel_rows[1:]]
    rebuilt = content_digest(parse_record(record_text(rebuilt_rows), "r"), "demo-1.0.dist-info")
    assert rebuilt != wheel


def test_malformed_rows_are_all_reported_with_line_numbers() -> None:
    text = "a.py,sha256=x,1\nb.py,sha256=y\n\nc.py,1,2,3\n,sha256=z,3\n"
    with pytest.raises(RecordError) as caught:
        parse_record(text, "demo-1.0.dist-info/RECORD")
    message = str(caught.value)
    assert "demo-1.0.dist-info/RECORD:2: expected 3 fields (path,hash,size), got 2" in message
    assert "demo-1.0.dist-info/RECORD:4: expected 3 fields" in message
    assert "demo-1.0.dist-info/RECORD:5: empty path" in message


path_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"),
    min_size=1,
)


field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"),
    max_size=20,
)


@given(
    st.lists(
        st.tuples(path_text, field_text, field_text),
        max_size=20,
        # Two rows naming one file are malformed (a test of their own below).
        unique_by=lambda row: posixpath.normpath(row[0].replace("\\", "/")),
    )
)
def test_rows_round_trip_through_csv(rows: list[tuple[str, str, str]]) -> None:
    parsed = parse_record(record_text(rows), "RECORD")
    assert [(r.path, r.hash, r.size) for r in parsed] == [
        (p.replace("\\", "/"), h, s) for p, h, s in rows
    ]


@given(st.text())
def test_any_text_parses_or_raises_record_error(text: str) -> None:
    with contextlib.suppress(RecordError):
        parse_record(text, "RECORD")


@given(st.permutations(list(range(6))))
def test_digest_ignores_row_order(order: list[int]) -> None:
    rows = [(f"pkg/m{i}.py", f"sha256=h{i}", str(i)) for i in range(6)]
    shuffled = [rows[i] for i in order]
    assert content_digest(parse_record(record_text(rows), "a"), "x.dist-info") == content_digest(
        parse_record(record_text(shuffled), "b"), "x.dist-info"
    )


record_like_text = st.lists(
    st.tuples(path_text, field_text, field_text).map(lambda r: ",".join(r))
    | st.sampled_from(['"a,b.py",sha256=x,1', "", "x", "a.py,,", "a\r\nb,c,d"]),
    max_size=12,
).map("\n".join)


@given(st.one_of(st.text(), record_like_text), st.sampled_from(["d-1.dist-info", "x"]))
def test_fast_summary_agrees_with_parse_then_digest(text: str, metadata_dir: str) -> None:
    """The streaming path of the snapshot and the plain parser never disagree."""
    try:
        rows = parse_record(text, "RECORD")
    except RecordError:
        with pytest.raises(RecordError):
            summarize_record(text, "RECORD", metadata_dir)
        return
    summary = summarize_record(text, "RECORD", metadata_dir)
    assert summary.content == content_digest(rows, metadata_dir)
    assert summary.rows == len(rows)
    assert summary.unhashed_rows == sum(1 for row in rows if not row.hash)


# ---------------------------------------------------- one normalisation of every row

SITE = "/venv/lib/python3.11/site-packages"
META = "pluggy-1.7.0.dist-info"
CLEAN = [
    ("pluggy/__init__.py", "sha256=aaa", "10"),
    ("pluggy/__pycache__/__init__.cpython-311.pyc", "", ""),
    (f"{META}/RECORD", "", ""),
    (f"{META}/INSTALLER", "sha256=ins", "4"),
    ("../../../bin/pluggy", "sha256=bin", "9"),
]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("pluggy/__init__.py", "pluggy/__init__.py"),
        ("pluggy/__pycache__/../__init__.py", "pluggy/__init__.py"),
        ("pluggy/./__init__.py", "pluggy/__init__.py"),
        ("../site-packages/pluggy/__init__.py", "pluggy/__init__.py"),
        (f"{SITE}/{META}/INSTALLER", f"{META}/INSTALLER"),
        (f"{SITE}//pluggy/x.py", "pluggy/x.py"),
        ("zzz.pth/__pycache__/../../zzz.pth", "zzz.pth"),
        ("../../../bin/pluggy", None),
        ("/elsewhere/bin/pluggy", None),
        ("pluggy/..", None),
    ],
)
def test_site_relative_normalises_against_the_site_directory(
    path: str, expected: str | None
) -> None:
    assert site_relative(path, SITE) == expected


@pytest.mark.parametrize(
    "sneaky",
    [
        "pluggy/__pycache__/../_hooks.py",
        "../site-packages/pluggy/_hooks.py",
        "zzz_evil.pth/__pycache__/../../zzz_evil.pth",
        "sitecustomize.py/__pycache__/../../sitecustomize.py",
        f"{SITE}/sitecustomize.py",
    ],
)
def test_a_row_that_lands_in_the_site_directory_counts_in_the_digest(sneaky: str) -> None:
    """A row the digest used to skip by its raw text changes the content digest now."""
    before = summarize_record(record_text(CLEAN), "RECORD", META, location=SITE).content
    text = record_text([*CLEAN, (sneaky, "sha256=evil", "5")])
    after = summarize_record(text, "RECORD", META, location=SITE)
    assert after.content != before
    rows = parse_record(text, "RECORD", SITE)
    assert after.content == content_digest(rows, META, SITE)


#: Content digests of the real RECORDs before RECORD paths were normalised (scheme v1).
V1_DIGESTS = {
    "wheel/setuptools-69.5.1.dist-info/RECORD": "f4e01d5d791307cc856adeb6592fa412"
    "ace972c2cc779aa29f13fcb89855804e",
    "wheel/safetensors-0.4.3.dist-info/RECORD": "ffe017e4855bf61ee69eba20741577cf"
    "185ffba5c89b48d30fa00fe8b7b56bff",
    "installed/pip_audit-2.10.0.dist-info/RECORD": "1ad3d7593529aa87672f90b7cb8cc186"
    "26f87df8aea6b443ca416e20cbce8af6",
    "installed/pretend-1.0.9.dist-info/RECORD": "ffe32e38f222685e0ae7a27b3db67eec"
    "1c569125987d69906af9c9200f53047e",
    "installed/pluggy-0.4.0.dist-info/RECORD": "8d7902b83cba4983a6b408d589089ffd"
    "7eb3883de8e7ac594478afe308d0332c",
}


@pytest.mark.parametrize("relative", REAL_RECORDS)
def test_normal_records_keep_their_digest(realdata: Path, relative: str) -> None:
    """Normalising changed no digest of a normal RECORD (existing locks stay valid)."""
    path = realdata / "record-files" / relative
    text = path.read_text(encoding="utf-8")
    summary = summarize_record(text, str(path), path.parent.name, location=SITE)
    assert summary.content.hex == V1_DIGESTS[relative]


def test_poetry_absolute_rows_count_under_their_site_relative_path() -> None:
    """Poetry's editable install writes absolute rows; they digest the same on any machine."""
    rows = [("demo.pth", "sha256=pth", "3"), (f"{META}/INSTALLER", "sha256=ins", "6")]
    here = [(f"{SITE}/{p}", h, s) for p, h, s in rows]
    there = [(f"/other/site-packages/{p}", h, s) for p, h, s in rows]
    digest_here = summarize_record(record_text(here), "R", META, location=SITE).content
    digest_there = summarize_record(
        record_text(there), "R", META, location="/other/site-packages"
    ).content
    assert digest_here == digest_there == content_digest(parse_record(record_text(rows), "R"), META)


@pytest.mark.parametrize(
    "second",
    [
        "pluggy/__pycache__/../__init__.py",
        "../site-packages/pluggy/__init__.py",
        f"{SITE}/pluggy/__init__.py",
        "pluggy//__init__.py",
        "pluggy/__init__.py",
    ],
)
def test_two_rows_naming_one_file_are_malformed(second: str) -> None:
    text = record_text([*CLEAN, (second, "sha256=evil", "5")])
    with pytest.raises(RecordError) as caught:
        summarize_record(text, "d/RECORD", META, location=SITE)
    expected = DUPLICATE_ROW.format(
        source="d/RECORD", line=6, path=second, first=1, other="pluggy/__init__.py"
    )
    assert str(caught.value) == expected


def test_a_nul_byte_is_a_malformed_record() -> None:
    text = record_text(CLEAN) + "pluggy/__pycache__/a\x00b.txt,sha256=47DEQ,0\n"
    with pytest.raises(RecordError) as caught:
        summarize_record(text, "d/RECORD", META, location=SITE)
    assert str(caught.value) == NUL_IN_ROW.format(source="d/RECORD", line=6)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pluggy", "..", ".", "", "__pycache__", "site-packages", SITE[1:]]),
            st.sampled_from(["__init__.py", "x.pth", "..", "y.pyc", "a\x00b"]),
        ).map("/".join),
        max_size=6,
    )
)
def test_summary_with_a_location_agrees_with_the_parser(paths: list[str]) -> None:
    text = record_text([(p, "sha256=h", "1") for p in paths])
    try:
        rows = parse_record(text, "RECORD", SITE)
    except RecordError:
        with pytest.raises(RecordError):
            summarize_record(text, "RECORD", META, location=SITE)
        return
    summary = summarize_record(text, "RECORD", META, location=SITE)
    assert summary.content == content_digest(rows, META, SITE)


def test_pips_second_row_for_recompiled_bytecode_stands() -> None:
    """A wheel shipping ``__pycache__/*.pyc`` gets a second row when pip compiles over it."""
    pyc = "pluggy/__pycache__/__init__.cpython-311.pyc"
    text = record_text([*CLEAN, (pyc, "sha256=shipped", "7"), (pyc, "sha256=compiled", "9")])
    rows = parse_record(text, "d/RECORD", SITE)
    assert [(row.hash, row.line) for row in rows if row.path == pyc] == [("sha256=compiled", 7)]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("pluggy/__init__.py", "pluggy/__init__.py"),  # not bytecode
        ("pluggy/cache.pyc", "pluggy/cache.pyc"),  # bytecode, but not in __pycache__
        ("pluggy/__pycache__/a.pyc", "pluggy/__pycache__/./a.pyc"),  # spelled differently
        ("pluggy/__pycache__/a.pyc", f"{SITE}/pluggy/__pycache__/a.pyc"),
    ],
)
def test_other_repeated_rows_stay_malformed(first: str, second: str) -> None:
    text = record_text([(first, "sha256=one", "1"), (second, "sha256=two", "2")])
    with pytest.raises(RecordError, match="names the same file as line 1"):
        parse_record(text, "d/RECORD", SITE)


def test_the_summary_of_pips_repeated_bytecode_rows_is_that_of_the_later_row() -> None:
    pyc = "pluggy/__pycache__/extra.cpython-311.pyc"
    twice = record_text([*CLEAN, (pyc, "sha256=shipped", "7"), (pyc, "", "")])
    once = record_text([*CLEAN, (pyc, "", "")])
    summary = summarize_record(twice, "d/RECORD", META, keep_rows=True, location=SITE)
    assert summary == summarize_record(once, "d/RECORD", META, keep_rows=True, location=SITE)
