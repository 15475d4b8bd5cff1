"""Waivers as a pure core module: reading the file, matching findings, expiry, unused ones."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from pytest_mlsupply.findings import Finding, Kind, Report, Severity
from pytest_mlsupply.waivers import (
    Waiver,
    WaiverFileError,
    advisory_ids,
    apply_waivers,
    load_waivers,
)

TODAY = datetime.date(2026, 11, 25)

MODIFIED = Finding.of(
    Kind.FILE_MODIFIED,
    "torch",
    "torch 2.13.0: torch/lib/libtorch_cpu.so was modified",
    location="/venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so",
)
DRIFT = Finding.of(Kind.VERSION_CHANGED, "iniconfig", "iniconfig: locked 2.0.0, installed 2.1.0")
ADVISORY = Finding.of(
    Kind.KNOWN_BAD_PACKAGE,
    "litellm",
    "litellm 1.82.8 is a known-bad release (MAL-2026-2144, PYSEC-2026-2): like MAL-2024-7",
    advisories=("MAL-2026-2144", "PYSEC-2026-2"),
)


def waiver(match: str, *, kind: Kind | None = None, expires: str = "2026-12-31") -> Waiver:
    return Waiver(match, "accepted for a test", datetime.date.fromisoformat(expires), kind, "w")


def report(*findings: Finding) -> Report:
    return Report.build(findings, lock_path="mlsupply.lock")


def test_a_waived_finding_is_still_reported_and_no_longer_fails() -> None:
    result = apply_waivers(report(DRIFT), [waiver("IniConfig")], today=TODAY)
    assert not result.fails(strict=True)
    (waived,) = result.waived()
    assert waived.kind is Kind.VERSION_CHANGED
    assert waived.waived is not None and "accepted for a test" in waived.waived
    assert "2026-12-31" in waived.waived


@pytest.mark.parametrize(
    "pattern",
    [
        "torch/lib/libtorch_cpu.so",
        "torch/lib/*.so",
        "*/site-packages/torch/*",
        "/venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so",
    ],
)
def test_paths_and_globs_match_the_finding_location(pattern: str) -> None:
    result = apply_waivers(report(MODIFIED), [waiver(pattern)], today=TODAY)
    assert len(result.waived()) == 1
    assert result.count(Severity.ERROR) == 0


@pytest.mark.parametrize("pattern", ["torchvision/*", "/other/torch/lib/libtorch_cpu.so"])
def test_a_glob_for_other_paths_does_not_match(pattern: str) -> None:
    result = apply_waivers(report(MODIFIED), [waiver(pattern)], today=TODAY)
    assert result.waived() == ()
    assert [f.kind for f in result.findings] == [Kind.FILE_MODIFIED, Kind.WAIVER_UNUSED]


def test_an_advisory_id_matches_findings_that_name_it() -> None:
    assert advisory_ids(ADVISORY) == ("MAL-2026-2144", "PYSEC-2026-2")
    result = apply_waivers(report(ADVISORY, DRIFT), [waiver("pysec-2026-2".upper())], today=TODAY)
    assert [f.subject for f in result.waived()] == ["litellm"]
    assert result.count(Severity.ERROR) == 1


def test_an_id_only_quoted_in_a_summary_waives_nothing() -> None:
    """Record summaries mention other advisories; only the ids a finding rests on count."""
    unused = apply_waivers(report(ADVISORY), [waiver("MAL-2024-7")], today=TODAY)
    assert not unused.waived()
    assert [f.kind for f in unused.findings if f.kind is Kind.WAIVER_UNUSED]


def test_advisory_ids_survive_the_json_round_trip() -> None:
    assert Finding.from_dict(ADVISORY.to_dict()) == ADVISORY
    assert "advisories" not in DRIFT.to_dict()


def test_kind_narrows_the_match() -> None:
    result = apply_waivers(
        report(DRIFT), [waiver("iniconfig", kind=Kind.CONTENT_CHANGED)], today=TODAY
    )
    assert result.waived() == ()
    assert result.fails(strict=False)


def test_expired_waiver_no_longer_applies_and_is_an_error() -> None:
    result = apply_waivers(report(DRIFT), [waiver("iniconfig", expires="2026-11-24")], today=TODAY)
    kinds = sorted(f.kind.value for f in result.findings if f.severity is Severity.ERROR)
    assert kinds == ["version-changed", "waiver-expired"]
    expired = next(f for f in result.findings if f.kind is Kind.WAIVER_EXPIRED)
    assert "expired on 2026-11-24" in expired.message
    assert "accepted for a test" in expired.message


def test_a_waiver_is_valid_through_its_expiry_day() -> None:
    result = apply_waivers(report(DRIFT), [waiver("iniconfig", expires="2026-11-25")], today=TODAY)
    assert not result.fails(strict=True)


def test_unused_waiver_is_a_warning() -> None:
    result = apply_waivers(report(), [waiver("numpy")], today=TODAY)
    (unused,) = result.findings
    assert (unused.kind, unused.severity) == (Kind.WAIVER_UNUSED, Severity.WARNING)
    assert result.fails(strict=True) and not result.fails(strict=False)


def test_waiver_findings_cannot_be_waived_themselves() -> None:
    result = apply_waivers(
        report(), [waiver("numpy"), waiver("numpy", kind=Kind.WAIVER_UNUSED)], today=TODAY
    )
    assert result.waived() == ()


def test_load_reads_toml_dates_and_strings(tmp_path: Path) -> None:
    path = tmp_path / "waivers.toml"
    path.write_text(
        '[[waiver]]\nmatch = "iniconfig"\nreason = "base image"\nexpires = 2026-12-31\n\n'
        '[[waiver]]\nmatch = "GHSA-92x9-889m-jgmw"\nkind = "version-changed"\n'
        'reason = "triaged"\nexpires = "2027-01-15"\n'
    )
    first, second = load_waivers(path, shown="waivers.toml")
    assert first.expires == datetime.date(2026, 12, 31) and first.kind is None
    assert second.kind is Kind.VERSION_CHANGED and second.matches_advisory
    assert second.origin == "waivers.toml: waiver[2]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[waiver]]\nmatch = "x"\nexpires = 2026-12-31\n', "waiver[1]: 'reason' is required"),
        ('[[waiver]]\nmatch = "x"\nreason = "r"\n', "waiver[1]: 'expires' is required"),
        (
            '[[waiver]]\nmatch = "x"\nreason = "r"\nexpires = "soon"\n',
            "waiver[1].expires: expected a date like 2026-12-31, got 'soon'",
        ),
        (
            '[[waiver]]\nmatch = "x"\nreason = "r"\nexpires = 2026-12-31T10:00:00\n',
            "waiver[1].expires: give a date without a time",
        ),
        (
            '[[waiver]]\nmatch = "x"\nreason = " "\nexpires = 2026-12-31\n',
            "waiver[1].reason: must say why",
        ),
        (
            '[[waiver]]\nmatch = "x"\nreason = "r"\nexpires = 2026-12-31\nkind = "bad"\n',
            "waiver[1].kind: unknown finding kind 'bad'",
        ),
        (
            '[[waiver]]\nmatch = "x"\nreason = "r"\nexpire = 2026-12-31\n',
            "waiver[1].expire: unknown key",
        ),
        ('[waiver]\nmatch = "x"\n', "'waiver' must be an array of tables"),
        ('[[waivers]]\nmatch = "x"\n', "unknown top-level key(s) waivers"),
        ('[[waiver]]\nmatch = "x\n', "line 2, column 11: not valid TOML"),
    ],
)
def test_malformed_waivers_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "waivers.toml"
    path.write_text(text)
    with pytest.raises(WaiverFileError) as caught:
        load_waivers(path, shown="ci/waivers.toml")
    message = str(caught.value)
    assert message.startswith("ci/waivers.toml: ")
    assert expected in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "waivers.toml"
    path.write_text('[[waiver]]\nmatch = "x"\n\n[[waiver]]\nreason = "r"\nexpires = 2026-01-01\n')
    with pytest.raises(WaiverFileError) as caught:
        load_waivers(path)
    assert len(caught.value.problems) == 3


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WaiverFileError, match=r"waivers\.toml: file not found"):
        load_waivers(tmp_path / "waivers.toml", shown="waivers.toml")


dist_names = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,20}[A-Za-z0-9]", fullmatch=True)


@given(
    names=st.lists(dist_names, min_size=1, max_size=6, unique_by=canonicalize_name), data=st.data()
)
def test_each_waiver_is_either_used_or_reported_unused(names: list[str], data) -> None:
    """A finding takes the first waiver that matches it; every other waiver is unused."""
    findings = [
        Finding.of(Kind.UNEXPECTED, canonicalize_name(name), f"{name} is not locked")
        for name in names
    ]
    chosen = data.draw(st.lists(st.sampled_from(names)))
    extra = data.draw(st.lists(dist_names, max_size=3))
    waivers = [waiver(name) for name in [*chosen, *extra]]
    result = apply_waivers(report(*findings), waivers, today=TODAY)

    subjects = {canonicalize_name(name) for name in names}
    matched = {canonicalize_name(w.match) for w in waivers} & subjects
    assert {f.subject for f in result.waived()} == matched
    unused = [f for f in result.findings if f.kind is Kind.WAIVER_UNUSED]
    assert len(unused) == len(waivers) - len(matched)
    assert result.fails(strict=False) is False


@pytest.mark.parametrize("value", ["20261231", "2026-W53-4", "2026-365", "2026-12-3", " "])
def test_expires_strings_other_than_yyyy_mm_dd_are_errors_on_every_python(
    tmp_path: Path, value: str
) -> None:
    # Python 3.11+ reads the first three as dates; 3.10 does not. One grammar everywhere.
    path = tmp_path / "waivers.toml"
    path.write_text(f'[[waiver]]\nmatch = "x"\nreason = "r"\nexpires = "{value}"\n')
    with pytest.raises(WaiverFileError) as caught:
        load_waivers(path, shown="waivers.toml")
    assert list(caught.value.problems) == [
        f"waiver[1].expires: expected a date like 2026-12-31, got {value!r}"
    ]


@pytest.mark.parametrize(
    ("finding", "match"),
    [
        (ADVISORY, "litellm"),  # written for a version drift or a vulnerability of litellm
        (
            Finding.of(
                Kind.KNOWN_BAD_FILE,
                "torch",
                "torch/lib/libtorch_cpu.so has a known-bad digest sha256:0123 (MAL-2026-1)",
                location="/venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so",
                advisories=("MAL-2026-1",),
            ),
            "torch/lib/*.so",  # written for a rebuilt vendor library
        ),
    ],
)
def test_a_name_or_path_waiver_without_its_kind_never_waives_malware(
    finding: Finding, match: str
) -> None:
    result = apply_waivers(report(finding), [waiver(match)], today=TODAY)
    assert result.waived() == () and result.fails(strict=False)
    meant = apply_waivers(report(finding), [waiver(match, kind=finding.kind)], today=TODAY)
    assert len(meant.waived()) == 1 and not meant.fails(strict=True)
