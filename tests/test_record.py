"""RECORD parsing and the content digest, on synthetic rows and on real RECORD files."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_mlsupply.errors import RecordError
from pytest_mlsupply.record import content_digest, parse_record, shipped_rows, summarize_record

REAL_RECORDS = [
    "wheel/setuptools-69.5.1.dist-info/RECORD",
    "wheel/safetensors-0.4.3.dist-info/RECORD",
    "installed/pip_audit-2.10.0.dist-info/RECORD",
    "installed/pretend-1.0.9.dist-info/RECORD",
    "installed/pluggy-0.4.0.dist-info/RECORD",
]


def record_text(rows: list[tuple[str, str, str]]) -> str:
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


@given(st.lists(st.tuples(path_text, field_text, field_text), max_size=20))
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
