"""Known RECORD quirks: the bundled list, matching, and every malformed file's message."""

from __future__ import annotations

from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from pytest_mlsupply.errors import MlsupplyError
from pytest_mlsupply.quirks import (
    BUNDLED_PACKAGE,
    BUNDLED_PARTS,
    MISMATCH_KINDS,
    QuirksFileError,
    RecordQuirk,
    find_quirk,
    load_quirks,
    parse_quirks,
)

BUNDLED = load_quirks()


def _bundled_text() -> str:
    resource = resources.files(BUNDLED_PACKAGE)
    for part in BUNDLED_PARTS:
        resource = resource / part
    return resource.read_text(encoding="utf-8")


def _quirk_id(quirk: RecordQuirk) -> str:
    return f"{quirk.name}{quirk.versions}"


# ---------------------------------------------------------------- the bundled list


def test_bundled_file_loads_with_canonical_names() -> None:
    assert BUNDLED
    for quirk in BUNDLED:
        assert quirk.name == canonicalize_name(quirk.name)
        assert quirk.reason.strip()


def test_bundled_header_documents_every_mismatch_kind_and_the_review() -> None:
    text = _bundled_text()
    header = text.split("format = ", 1)[0]
    for kind in MISMATCH_KINDS:
        assert f"#   {kind}" in header or f"#                {kind}" in header
    assert "public reference" in header
    assert "2026-11-25" in header


@pytest.mark.parametrize("quirk", BUNDLED, ids=_quirk_id)
def test_every_bundled_entry_has_an_https_reference(quirk: RecordQuirk) -> None:
    parts = urlsplit(quirk.reference)
    assert parts.scheme == "https"
    assert parts.hostname
    assert parts.path not in ("", "/")


def _bump(release: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in (*release[:-1], release[-1] + 1))


def _lower(release: tuple[int, ...]) -> str | None:
    parts = list(release)
    for index in reversed(range(len(parts))):
        if parts[index] > 0:
            parts[index] -= 1
            return ".".join(str(part) for part in parts)
    return None


def probe_versions(specifiers: SpecifierSet) -> tuple[list[str], list[str]]:
    """Versions just inside and just outside each clause of *specifiers*.

    Derived from the operators, not from ``SpecifierSet.contains``, so the
    test checks the specifier means what the entry's reason says.
    """
    inside: list[str] = []
    outside: list[str | None] = []
    for specifier in specifiers:
        operator, text = specifier.operator, specifier.version
        base = text.removesuffix(".*")
        version = Version(base)
        release = version.release
        if operator == "==" and text.endswith(".*"):
            inside += [f"{base}.0", f"{base}.1.post1"]
            outside.append(_bump(release))
        elif operator == "==":
            inside.append(base)
            outside += [_bump(release), f"{base}.post1" if not version.local else None]
            if version.local:
                outside.append(version.public)
        elif operator == ">=":
            inside.append(base)
            outside.append(_lower(release))
        elif operator == ">":
            inside.append(_bump(release))
            outside.append(base)
        elif operator == "<=":
            inside.append(base)
            outside.append(_bump(release))
        elif operator == "<":
            inside.append(_lower(release) or "0")
            outside.append(base)
        elif operator == "!=":
            outside.append(base)
        elif operator == "~=":
            inside.append(base)
            outside.append(_lower(release))
        else:
            pytest.fail(f"no probes for operator {operator!r}; extend probe_versions")
    return inside, [probe for probe in outside if probe is not None]


def _example_path(quirk: RecordQuirk) -> str:
    if not quirk.files:
        return f"{quirk.name}/__init__.py"
    path = quirk.files[0].replace("*", "x").replace("?", "x")
    assert fnmatchcase(path, quirk.files[0])
    return path


def _example_kind(quirk: RecordQuirk) -> str:
    return quirk.mismatch[0] if quirk.mismatch else "hash"


@pytest.mark.parametrize("quirk", BUNDLED, ids=_quirk_id)
def test_bundled_entry_matches_inside_its_range_and_not_outside(quirk: RecordQuirk) -> None:
    inside, outside = probe_versions(quirk.versions)
    assert inside, f"{quirk.versions} gives no version that it covers"
    assert outside, f"{quirk.versions} gives no version that it excludes"
    path, kind = _example_path(quirk), _example_kind(quirk)
    for version in inside:
        assert find_quirk([quirk], quirk.name, version, path, kind) is quirk, version
        found = find_quirk(BUNDLED, quirk.name, version, path, kind)
        assert found is not None and found.name == quirk.name
    for version in outside:
        assert find_quirk([quirk], quirk.name, version, path, kind) is None, version


@pytest.mark.parametrize("quirk", BUNDLED, ids=_quirk_id)
def test_bundled_entry_is_limited_to_its_files_and_kinds(quirk: RecordQuirk) -> None:
    version = probe_versions(quirk.versions)[0][0]
    if quirk.files:
        assert (
            find_quirk([quirk], quirk.name, version, "zz_other/mod.py", _example_kind(quirk))
            is None
        )
    for kind in MISMATCH_KINDS:
        found = find_quirk([quirk], quirk.name, version, _example_path(quirk), kind)
        assert (found is quirk) == (not quirk.mismatch or kind in quirk.mismatch)
    assert find_quirk([quirk], f"{quirk.name}-other", version, _example_path(quirk), "hash") is None


def test_known_torch_metadata_quirk_is_found_by_display_name() -> None:
    found = find_quirk(BUNDLED, "Torch", "1.11.0", "torch-1.11.0.dist-info/METADATA", "size")
    assert found is not None
    assert found.reference.startswith("https://github.com/pytorch/")
    assert find_quirk(BUNDLED, "torch", "1.11.0", "torch/__init__.py", "hash") is None
    assert find_quirk(BUNDLED, "torch", "1.6.0", "torch-1.6.0.dist-info/METADATA", "hash") is None


# ---------------------------------------------------------------- matching

GLOBS = """\
format = 1

[[quirk]]
name = "Some_Pkg"
versions = ">=1.0,<2"
files = ["some_pkg/*.so", "some_pkg-*.dist-info/METADATA"]
mismatch = ["hash", "size"]
reason = "Test entry."
reference = "https://example.org/issue/1"

[[quirk]]
name = "other"
versions = "==3.0"
reason = "Test entry covering every file and kind."
reference = "https://example.org/issue/2"
"""


@pytest.fixture
def glob_quirks(tmp_path: Path) -> tuple[RecordQuirk, ...]:
    path = tmp_path / "quirks.toml"
    path.write_text(GLOBS, encoding="utf-8")
    return load_quirks(path)


def test_file_globs_filter(glob_quirks: tuple[RecordQuirk, ...]) -> None:
    assert find_quirk(glob_quirks, "some-pkg", "1.5", "some_pkg/_ext.so", "hash")
    assert find_quirk(glob_quirks, "some-pkg", "1.5", "some_pkg/sub/_ext.so", "hash")
    assert find_quirk(glob_quirks, "some-pkg", "1.5", "some_pkg-1.5.dist-info/METADATA", "size")
    assert find_quirk(glob_quirks, "some-pkg", "1.5", "some_pkg/_ext.py", "hash") is None
    assert find_quirk(glob_quirks, "some-pkg", "1.5", "SOME_PKG/_ext.so", "hash") is None
    assert find_quirk(glob_quirks, "some-pkg", "1.5", "some_pkg\\_ext.so", "hash")


def test_mismatch_kinds_filter(glob_quirks: tuple[RecordQuirk, ...]) -> None:
    assert find_quirk(glob_quirks, "some_pkg", "1.5", "some_pkg/_ext.so", "size")
    assert find_quirk(glob_quirks, "some_pkg", "1.5", "some_pkg/_ext.so", "missing") is None
    assert find_quirk(glob_quirks, "some_pkg", "1.5", "some_pkg/_ext.so", "hex-digest") is None
    for kind in MISMATCH_KINDS:
        assert find_quirk(glob_quirks, "Other", "3.0", "anything/at/all.txt", kind)


def test_names_are_compared_canonically(glob_quirks: tuple[RecordQuirk, ...]) -> None:
    for spelling in ("Some_Pkg", "some-pkg", "SOME.PKG", "some__pkg"):
        assert find_quirk(glob_quirks, spelling, "1.0", "some_pkg/a.so", "hash"), spelling


@pytest.mark.parametrize("version", ["not a version", "", "1.0-local+", "banana"])
def test_invalid_versions_never_match(glob_quirks: tuple[RecordQuirk, ...], version: str) -> None:
    assert find_quirk(glob_quirks, "other", version, "x.py", "hash") is None


def test_pre_releases_match_only_when_the_specifier_names_one(
    glob_quirks: tuple[RecordQuirk, ...],
) -> None:
    assert find_quirk(glob_quirks, "some-pkg", "1.5rc1", "some_pkg/a.so", "hash") is None
    text = GLOBS.replace('">=1.0,<2"', '">=1.0rc1,<2"')
    assert find_quirk(parse_quirks(text, "t.toml"), "some-pkg", "1.5rc1", "some_pkg/a.so", "hash")


def test_unknown_mismatch_kind_is_a_programming_error(
    glob_quirks: tuple[RecordQuirk, ...],
) -> None:
    with pytest.raises(ValueError, match="unknown RECORD mismatch kind 'checksum'"):
        find_quirk(glob_quirks, "other", "3.0", "x.py", "checksum")


# ---------------------------------------------------------------- malformed files

GOOD_QUIRK = """\
[[quirk]]
name = "good"
versions = "==1.0"
reason = "Fine."
reference = "https://example.org/good"
"""

#: Each malformed file's text, and the messages its error must contain.
MALFORMED: dict[str, tuple[str, list[str]]] = {
    "bad-toml": (
        'format = 1\n[[quirk]\nname = "x"\n',
        ["line 2, column ", "not valid TOML"],
    ),
    "missing-key": (
        'format = 1\n\n[[quirk]]\nname = "x"\nversions = "==1"\nreason = "r"\n',
        ["line 3: quirk[0].reference: missing"],
    ),
    "bad-specifier": (
        f'format = 1\n{GOOD_QUIRK}\n[[quirk]]\nname = "x"\nversions = ">=1.0,<<2"\n'
        'reason = "r"\nreference = "https://example.org/x"\n',
        [
            "line 8: quirk[1].versions: not a PEP 440 version specifier",
            "'>=1.0,<<2'",
        ],
    ),
    "unknown-mismatch-kind": (
        'format = 1\n[[quirk]]\nname = "x"\nversions = "==1"\nmismatch = ["hash", "checksum"]\n'
        'reason = "r"\nreference = "https://example.org/x"\n',
        [
            "line 2: quirk[0].mismatch: unknown kind 'checksum' "
            "(expected one of: hash, size, missing, hex-digest)"
        ],
    ),
    "unknown-key": (
        'format = 1\n[[quirk]]\nname = "x"\nverions = "==1"\nversions = "==1"\n'
        'reason = "r"\nreference = "https://example.org/x"\n',
        ["line 2: quirk[0].verions: unknown key (expected one of: files, mismatch, name, "],
    ),
    "several-problems": (
        'format = 1\n[[quirk]]\nname = "not a name!"\nversions = "==1"\nfiles = []\n'
        'reason = ""\nreference = "http://example.org/x"\n',
        [
            "4 problems",
            "line 2: quirk[0].name: not a valid distribution name: 'not a name!'",
            "line 2: quirk[0].files: must not be empty; leave the key out to cover every file",
            "line 2: quirk[0].reason: must be a non-empty string, got ''",
            "line 2: quirk[0].reference: must be an https URL of the public record, "
            "got 'http://example.org/x'",
        ],
    ),
    "bad-files": (
        'format = 1\n[[quirk]]\nname = "x"\nversions = "==1"\nfiles = ["/abs/*.so", 3]\n'
        'reason = "r"\nreference = "https://example.org/x"\n',
        ["line 2: quirk[0].files: must be an array of strings, got ['/abs/*.so', 3]"],
    ),
    "absolute-glob": (
        'format = 1\n[[quirk]]\nname = "x"\nversions = "==1"\nfiles = ["/abs/*.so"]\n'
        'reason = "r"\nreference = "https://example.org/x"\n',
        ["quirk[0].files: patterns are '/'-separated paths relative to site-packages"],
    ),
    "duplicate-kind": (
        'format = 1\n[[quirk]]\nname = "x"\nversions = "==1"\nmismatch = ["size", "size"]\n'
        'reason = "r"\nreference = "https://example.org/x"\n',
        ["quirk[0].mismatch: lists a kind twice: ['size', 'size']"],
    ),
    "duplicate-entry": (
        f"format = 1\n{GOOD_QUIRK}\n{GOOD_QUIRK.replace('Fine.', 'Again.')}",
        ["line 8: quirk[1]: duplicates quirk[0] (same name, versions, files and mismatch)"],
    ),
    "not-a-table": (
        "format = 1\nquirk = [1]\n",
        ["quirk[0]: must be a table, got 1"],
    ),
    "quirk-not-array": (
        "format = 1\nquirk = 3\n",
        ["line 2: quirk: must be an array of tables ([[quirk]])"],
    ),
    "no-format": (
        GOOD_QUIRK,
        ["format: missing; expected format = 1"],
    ),
    "format-not-int": (
        f'format = "one"\n{GOOD_QUIRK}',
        ["line 1: format: must be a positive integer, got 'one'"],
    ),
    "newer-format": (
        f"format = 9\n{GOOD_QUIRK}",
        ["format 9 is newer than this pytest-mlsupply reads (format 1); upgrade pytest-mlsupply."],
    ),
    "unknown-top-level-key": (
        f"format = 1\nquirks = []\n{GOOD_QUIRK}",
        ["line 2: quirks: unknown key (expected one of: format, quirk)"],
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_names_the_file_key_and_value(tmp_path: Path, case: str) -> None:
    text, expected = MALFORMED[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(QuirksFileError) as info:
        load_quirks(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert info.value.path == str(path)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_not_utf8_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"format = 1\n# caf\xe9\n")
    with pytest.raises(QuirksFileError, match="not UTF-8 text"):
        load_quirks(path)
    with pytest.raises(QuirksFileError, match="file not found") as info:
        load_quirks(tmp_path / "absent.toml")
    assert str(tmp_path / "absent.toml") in str(info.value)


def test_quirks_file_error_is_an_mlsupply_error() -> None:
    assert issubclass(QuirksFileError, MlsupplyError)


def test_file_with_no_quirks_loads_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("# nothing known yet\nformat = 1\n", encoding="utf-8")
    assert load_quirks(path) == ()


# ---------------------------------------------------------------- properties

_KEYS = ["format", "quirk", "name", "versions", "files", "mismatch", "reason", "reference", "x"]
_VALUES = st.one_of(
    st.sampled_from(
        [
            "1",
            "2",
            "true",
            '"torch"',
            '">=1,<2"',
            '"==1.0.*"',
            '"~="',
            '["hash"]',
            '["*.so", "a/b"]',
            "[]",
            '["bogus"]',
            '"https://example.org/a"',
            '"https://[::1"',
            "{a = 1}",
        ]
    ),
    st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
)
_LINES = st.one_of(
    st.sampled_from(["[[quirk]]", "[quirk]", "", "# comment"]),
    st.builds(lambda k, v: f"{k} = {v}", st.sampled_from(_KEYS), _VALUES),
)


def _parses_or_raises_our_error(text: str) -> None:
    try:
        quirks = parse_quirks(text, "generated.toml")
    except QuirksFileError as exc:
        assert str(exc).startswith("generated.toml: ")
    else:
        assert all(isinstance(quirk, RecordQuirk) for quirk in quirks)


@settings(max_examples=300)
@given(st.text())
def test_any_text_loads_or_raises_quirks_file_error(text: str) -> None:
    _parses_or_raises_our_error(text)


@settings(max_examples=300)
@given(st.lists(_LINES, max_size=14))
def test_any_quirk_shaped_document_loads_or_raises_quirks_file_error(lines: list[str]) -> None:
    _parses_or_raises_our_error("\n".join(lines))
