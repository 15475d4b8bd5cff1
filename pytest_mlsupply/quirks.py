"""Known RECORD quirks: published wheels whose RECORD does not match their own files.

Some legitimately published wheels ship a ``*.dist-info/RECORD`` that disagrees
with the files beside it (stale hashes after a release script edited METADATA,
hex digests from an old build backend). Installers copy those rows into the
installed RECORD, so a verifier that hashes every installed file sees them as
changed. The bundled ``data/record_quirks.toml``
lists such wheels, each entry backed by a public reference, so a mismatch they
explain can be reported as a known quirk rather than as tampering.

This module is pure: it reads and validates the list and answers "does a quirk
explain this mismatch?". Whether a quirk is reported, and how loudly, is for
the checks and the plugin to decide.

Installers have quirks of their own, which no list can pin to a release; they
are handled by rule where the files are judged (``verify.py``), each one checked
on real installs (tests/test_installers_venv.py: pip, ``uv pip``, ``uv sync``,
Poetry, pdm) and named here so it stays a decision:

- uv creates the folders a wheel lists as directory entries, also when nothing
  goes in them (``PyYAML.libs/``, ``cffi.libs/``, ``black.libs/``): an unowned
  folder whose name is not an identifier is not reported while it is empty; code
  in it is an error (``verify._unimportable_folder``), judged on every run.
- virtualenv writes ``_virtualenv.pth``/``_virtualenv.py`` (a note when
  ``pyvenv.cfg`` names virtualenv) and a ``pip-VER.virtualenv`` marker (not code).
- Poetry lists ``direct_url.json`` without a hash, and the pip that virtualenv
  seeds lists ``__pycache__`` folders without one: rows without a hash own nothing.
- pip leaves ``~name`` folders after an interrupted upgrade: not part of a clean
  install, so judged like any unowned folder (code in one is an error).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from pytest_mlsupply.errors import FileProblemsError
from pytest_mlsupply.limits import parse_version, version_problem
from pytest_mlsupply.tomlfile import parse_toml

#: The ``format`` this version of pytest-mlsupply reads.
QUIRKS_FORMAT = 1

#: Kinds of RECORD mismatch a quirk can explain (the ``mismatch`` key): the
#: recorded hash or size differs from the file's, a listed file is not on disk,
#: or the recorded hash is spelled in hex instead of urlsafe-base64-nopad.
MISMATCH_HASH = "hash"
MISMATCH_SIZE = "size"
MISMATCH_MISSING = "missing"
MISMATCH_HEX_DIGEST = "hex-digest"
MISMATCH_KINDS: tuple[str, ...] = (
    MISMATCH_HASH,
    MISMATCH_SIZE,
    MISMATCH_MISSING,
    MISMATCH_HEX_DIGEST,
)

#: Where the bundled list lives inside the package.
BUNDLED_PACKAGE = "pytest_mlsupply"
BUNDLED_PARTS = ("data", "record_quirks.toml")

_TOP_KEYS = frozenset({"format", "quirk"})
_REQUIRED_KEYS = ("name", "versions", "reason", "reference")
_QUIRK_KEYS = frozenset({*_REQUIRED_KEYS, "files", "mismatch"})


class QuirksFileError(FileProblemsError):
    """A RECORD quirks file is missing, malformed, or from a newer pytest-mlsupply.

    Each problem names its line (where known), its ``quirk[i].key`` and the offending value.
    """


@dataclass(frozen=True)
class RecordQuirk:
    """One published wheel whose RECORD is known not to match its files.

    ``files`` holds fnmatch patterns over RECORD paths (``"*"`` also matches
    ``"/"``); empty means any file of the distribution. ``mismatch`` holds kinds
    from :data:`MISMATCH_KINDS`; empty means any kind.
    """

    name: str
    versions: SpecifierSet
    files: tuple[str, ...]
    mismatch: tuple[str, ...]
    reason: str
    reference: str

    def covers(self, name: str, version: Version, relative_path: str, mismatch: str) -> bool:
        """Whether this quirk explains *mismatch* on *relative_path*.

        *name* must already be canonical. A pre-release matches only when the
        specifier itself names a pre-release, whichever ``packaging`` is
        installed (its default changed across releases).
        """
        if name != self.name:
            return False
        if not self.versions.contains(version, prereleases=_names_prerelease(self.versions)):
            return False
        if self.mismatch and mismatch not in self.mismatch:
            return False
        return not self.files or any(fnmatchcase(relative_path, p) for p in self.files)


def _names_prerelease(specifiers: SpecifierSet) -> bool:
    for specifier in specifiers:
        text = specifier.version.removesuffix(".*")
        try:
            if Version(text).is_prerelease:
                return True
        except (InvalidVersion, ValueError):  # ``===`` arbitrary equality; int() past its limit
            continue
    return False


def find_quirk(
    quirks: Iterable[RecordQuirk],
    name: str,
    version: str,
    relative_path: str,
    mismatch: str,
) -> RecordQuirk | None:
    """The first quirk that explains *mismatch* on one installed file, if any.

    *relative_path* is the file's RECORD path (relative to site-packages);
    *mismatch* is one of :data:`MISMATCH_KINDS`. A version that is not valid
    PEP 440 never matches: a quirk is an exception to verification, so
    anything it cannot place exactly stays a finding.
    """
    if mismatch not in MISMATCH_KINDS:
        raise ValueError(
            f"unknown RECORD mismatch kind {mismatch!r}; expected one of {MISMATCH_KINDS}"
        )
    parsed = parse_version(version)
    if parsed is None:
        return None
    canonical = canonicalize_name(name)
    path = relative_path.replace("\\", "/")
    for quirk in quirks:
        if quirk.covers(canonical, parsed, path, mismatch):
            return quirk
    return None


# ---------------------------------------------------------------- reading


def load_quirks(path: Path | None = None) -> tuple[RecordQuirk, ...]:
    """Read and validate a quirks file; the bundled list when *path* is None."""
    if path is None:
        resource = resources.files(BUNDLED_PACKAGE)
        for part in BUNDLED_PARTS:
            resource = resource / part
        source = str(resource)
    else:
        resource = Path(path)
        source = str(path)
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QuirksFileError(source, ["file not found"]) from None
    except UnicodeDecodeError as exc:
        raise QuirksFileError(source, [f"not UTF-8 text: {exc}"]) from exc
    except OSError as exc:
        raise QuirksFileError(source, [f"cannot be read: {exc.strerror or exc}"]) from exc
    return parse_quirks(text, source)


def parse_quirks(text: str, source: str) -> tuple[RecordQuirk, ...]:
    """Parse quirks-file text; raise one QuirksFileError that lists every problem."""
    document, problem = parse_toml(text)
    if document is None:
        raise QuirksFileError(source, [str(problem)])
    return _QuirksReader(text).read(document, source)


_QUIRK_HEADER = re.compile(r"^\s*\[\[\s*quirk\s*\]\]")
_TOP_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


class _QuirksReader:
    """Validates a decoded quirks document, collecting every problem before raising."""

    def __init__(self, text: str) -> None:
        self.problems: list[str] = []
        self.table_lines: list[int] = []
        self.key_lines: dict[str, int] = {}
        in_top = True
        for number, line in enumerate(text.splitlines(), start=1):
            if _QUIRK_HEADER.match(line):
                self.table_lines.append(number)
            if line.lstrip().startswith("["):
                in_top = False
            elif in_top and (key := _TOP_KEY.match(line)):
                self.key_lines.setdefault(key.group(1), number)

    def problem(self, where: str, message: str, line: int | None = None) -> None:
        prefix = f"line {line}: " if line else ""
        self.problems.append(f"{prefix}{where}: {message}")

    def read(self, document: Mapping[str, Any], source: str) -> tuple[RecordQuirk, ...]:
        self._format(document, source)
        for key in document:
            if key not in _TOP_KEYS:
                self.problem(key, _unknown_key(_TOP_KEYS), self.key_lines.get(key))
        tables = document.get("quirk", [])
        if not isinstance(tables, list):
            self.problem(
                "quirk", "must be an array of tables ([[quirk]])", self.key_lines.get("quirk")
            )
            tables = []
        quirks: list[RecordQuirk] = []
        seen: dict[tuple[object, ...], str] = {}
        for index, table in enumerate(tables):
            where = f"quirk[{index}]"
            line = self.table_lines[index] if index < len(self.table_lines) else None
            quirk = self._quirk(table, where, line)
            if quirk is None:
                continue
            identity = (quirk.name, str(quirk.versions), quirk.files, quirk.mismatch)
            if identity in seen:
                self.problem(
                    where,
                    f"duplicates {seen[identity]} (same name, versions, files and mismatch)",
                    line,
                )
                continue
            seen[identity] = where
            quirks.append(quirk)
        if self.problems:
            raise QuirksFileError(source, self.problems)
        return tuple(quirks)

    def _format(self, document: Mapping[str, Any], source: str) -> None:
        value = document.get("format")
        line = self.key_lines.get("format")
        if value is None:
            self.problem("format", f"missing; expected format = {QUIRKS_FORMAT}")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.problem("format", f"must be a positive integer, got {value!r}", line)
        elif value > QUIRKS_FORMAT:
            raise QuirksFileError(
                source,
                [
                    f"format {value} is newer than this pytest-mlsupply reads "
                    f"(format {QUIRKS_FORMAT}); upgrade pytest-mlsupply."
                ],
            )

    def _quirk(self, table: object, where: str, line: int | None) -> RecordQuirk | None:
        if not isinstance(table, dict):
            self.problem(where, f"must be a table, got {table!r}", line)
            return None
        for key in table:
            if key not in _QUIRK_KEYS:
                self.problem(f"{where}.{key}", _unknown_key(_QUIRK_KEYS), line)
        for key in _REQUIRED_KEYS:
            if key not in table:
                self.problem(f"{where}.{key}", "missing", line)
        name = self._name(table, where, line)
        versions = self._versions(table, where, line)
        files = self._files(table, where, line)
        mismatch = self._mismatch(table, where, line)
        reason = self._text(table, "reason", where, line)
        reference = self._reference(table, where, line)
        if name is None or versions is None or files is None or mismatch is None:
            return None
        if reason is None or reference is None:
            return None
        return RecordQuirk(name, versions, files, mismatch, reason, reference)

    def _text(self, table: Mapping[str, Any], key: str, where: str, line: int | None) -> str | None:
        if key not in table:
            return None  # reported as missing already
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            self.problem(f"{where}.{key}", f"must be a non-empty string, got {value!r}", line)
            return None
        return value.strip()

    def _name(self, table: Mapping[str, Any], where: str, line: int | None) -> str | None:
        value = self._text(table, "name", where, line)
        if value is None:
            return None
        try:
            return canonicalize_name(value, validate=True)
        except InvalidName:
            self.problem(f"{where}.name", f"not a valid distribution name: {value!r}", line)
            return None

    def _versions(
        self, table: Mapping[str, Any], where: str, line: int | None
    ) -> SpecifierSet | None:
        value = self._text(table, "versions", where, line)
        if value is None:
            return None
        try:
            specifiers = SpecifierSet(value)
        except InvalidSpecifier:
            self.problem(
                f"{where}.versions",
                f"not a PEP 440 version specifier (for example '>=1.7,<1.13'): {value!r}",
                line,
            )
            return None
        for specifier in specifiers:
            too_long = version_problem(specifier.version)
            if too_long:
                self.problem(f"{where}.versions", too_long, line)
                return None
        return specifiers

    def _list(
        self, table: Mapping[str, Any], key: str, where: str, line: int | None
    ) -> list[str] | None:
        value = table[key]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(f"{where}.{key}", f"must be an array of strings, got {value!r}", line)
            return None
        if not value:
            self.problem(
                f"{where}.{key}",
                "must not be empty; leave the key out to cover every "
                + ("file" if key == "files" else "kind"),
                line,
            )
            return None
        return value

    def _files(
        self, table: Mapping[str, Any], where: str, line: int | None
    ) -> tuple[str, ...] | None:
        if "files" not in table:
            return ()
        patterns = self._list(table, "files", where, line)
        if patterns is None:
            return None
        valid = True
        for pattern in patterns:
            if not pattern.strip() or pattern.startswith("/") or "\\" in pattern:
                self.problem(
                    f"{where}.files",
                    f"patterns are '/'-separated paths relative to site-packages, got {pattern!r}",
                    line,
                )
                valid = False
        return tuple(patterns) if valid else None

    def _mismatch(
        self, table: Mapping[str, Any], where: str, line: int | None
    ) -> tuple[str, ...] | None:
        if "mismatch" not in table:
            return ()
        kinds = self._list(table, "mismatch", where, line)
        if kinds is None:
            return None
        valid = True
        for kind in kinds:
            if kind not in MISMATCH_KINDS:
                listed = ", ".join(MISMATCH_KINDS)
                self.problem(
                    f"{where}.mismatch", f"unknown kind {kind!r} (expected one of: {listed})", line
                )
                valid = False
        if len(set(kinds)) != len(kinds):
            self.problem(f"{where}.mismatch", f"lists a kind twice: {kinds!r}", line)
            valid = False
        return tuple(kinds) if valid else None

    def _reference(self, table: Mapping[str, Any], where: str, line: int | None) -> str | None:
        value = self._text(table, "reference", where, line)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError:  # for example an unclosed "[" in the host
            parts, host = None, None
        if parts is None or parts.scheme != "https" or not host or any(c.isspace() for c in value):
            self.problem(
                f"{where}.reference",
                f"must be an https URL of the public record, got {value!r}",
                line,
            )
            return None
        return value


def _unknown_key(allowed: Iterable[str]) -> str:
    return f"unknown key (expected one of: {', '.join(sorted(allowed))})"
