"""Input we did not choose (file names that are not UTF-8) never becomes a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pytest_mlsupply.findings import Finding, Kind, Report, printable
from pytest_mlsupply.render import finding_line, github_annotations, write_report
from pytest_mlsupply.sarif import fingerprint

UNDECODABLE = "/site-packages/\udcff\udcfe.py"  # os.fsdecode(b"/site-packages/\xff\xfe.py")


def test_a_finding_about_an_undecodable_file_name_says_its_bytes() -> None:
    finding = Finding.of(
        Kind.UNOWNED_MODULE, "x", f"{UNDECODABLE} is importable", location=UNDECODABLE
    )
    assert finding.location == "/site-packages/\\xff\\xfe.py"
    assert finding.message == "/site-packages/\\xff\\xfe.py is importable"


def test_every_output_writes_a_finding_about_an_undecodable_name(tmp_path: Path) -> None:
    finding = Finding.of(Kind.UNOWNED_MODULE, "x", UNDECODABLE, location=UNDECODABLE)
    report = Report((finding,), lock_path="mlsupply.lock")
    for name in ("r.sarif", "r.json"):
        write_report(tmp_path / name, report, failed=True, strict=False, warn_only=False)
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "\\\\xff\\\\xfe.py" in text, text
        json.loads(text)
    finding_line(finding).encode("utf-8")
    for line in github_annotations(report):
        line.encode("utf-8")


@given(st.text(), st.text())
def test_any_text_in_a_finding_is_encodable(message: str, location: str) -> None:
    finding = Finding.of(Kind.UNOWNED_MODULE, message, message, location=location)
    for value in (finding.subject, finding.message, finding.location or ""):
        value.encode("utf-8")
    assert len(fingerprint(finding)) == 32


@given(st.text())
def test_printable_keeps_encodable_text(text: str) -> None:
    if printable(text) == text:
        text.encode("utf-8")
    else:
        printable(text).encode("utf-8")
