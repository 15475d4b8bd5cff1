"""Registry files that data tools already keep, read as sources of expected digests.

Three formats, each as its tool writes it:

- pooch: ``name [alg:]hex [url]`` a line, ``#`` comments, sha256 when no algorithm is given;
  names with spaces are ``"quoted"`` or ``back\\ slash-escaped`` (pooch's own test registries).
- ``sha256sum``/``sha512sum``/``sha1sum``/``md5sum`` output: ``hex  name`` (``hex *name`` in
  binary mode; a leading ``\\`` marks an escaped name) and the BSD tag form
  ``SHA256 (name) = hex`` (``--tag``).
- DVC ``.dvc`` files for single files, old format (top-level ``md5``, ``wdir``) and new
  (``outs`` entries with ``md5``, ``size``, ``hash``). Read without a YAML library: a ``.dvc``
  file is a small fixed shape, and a data check should not need PyYAML.

Every malformed line is reported with the file and line number, all at once.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from pytest_mlsupply.errors import FileProblemsError
from pytest_mlsupply.hashing import Digest, DigestError

CHECKSUM_FORMATS = {
    "sha256sum": "sha256",
    "sha512sum": "sha512",
    "sha1sum": "sha1",
    "md5sum": "md5",
    "b2sum": "blake2b",
}
REGISTRY_FORMATS = ("pooch", *CHECKSUM_FORMATS, "dvc")

#: Limits on what a data manifest or registry may be: a registry of a million files is ~100 MB;
#: anything larger, or a line longer than any path and URL, is not one of these files.
MAX_FILE_BYTES = 256 << 20
MAX_LINE_CHARS = 64 << 10
_SHOWN_LINE = 200  # characters of an offending line quoted in a message

MSG_TOO_BIG = "over the {limit}-byte limit ({size} bytes read); not a data manifest or registry"
MSG_NOT_A_FILE = "not a regular file ({kind}); expected a text file"
MSG_NOT_UTF8_TEXT = "not UTF-8 text: {reason}"
MSG_LONG_LINE = "line {line}: longer than {limit} characters ({count})"
MSG_POOCH_LINE = "expected 'name [alg:]hash [url]', got {line}"
MSG_CHECKSUM_LINE = "expected '<hex>  <name>' as {tool} writes it, got {line}"
MSG_HEX_LENGTH = (
    "{name}: {algorithm} digest has {count} hex digits, expected {expected}: {value!r:.80}"
)
MSG_NOT_HEX = "{name}: {value!r:.80} is not a hexadecimal {algorithm} digest"
MSG_VARIABLE = "{name}: {algorithm} has no fixed digest length; use sha256"
MSG_DUPLICATE = "{name}: listed twice (first on line {first})"
MSG_DVC_DIRECTORY = (
    "{name}: a DVC directory output ({value}); only single-file .dvc files are supported, "
    "list the directory's files in the data manifest instead"
)
MSG_DVC_NO_OUTS = "no 'outs' entry with 'path' and 'md5'"


class RegistryError(FileProblemsError):
    """A registry file with malformed lines; each problem names its line."""


@dataclass(frozen=True)
class RegistryRecord:
    """One expected digest from a registry: the name as written, and where it was."""

    name: str
    digest: Digest
    line: int
    url: str | None = None


def read_text_file(path: Path, error: type[FileProblemsError], missing: str) -> str:
    """The UTF-8 text of the regular file at *path*, within ``MAX_FILE_BYTES``.

    Anything else raises *error* naming the file: absent (*missing*), a FIFO or device (opened
    non-blocking, so it cannot hang the run), too big, unreadable, or not UTF-8.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise error(str(path), [missing]) from None
    except OSError as exc:
        raise error(str(path), [f"cannot be read: {exc.strerror or exc}"]) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else stat.filemode(st.st_mode)
            raise error(str(path), [MSG_NOT_A_FILE.format(kind=kind)])
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > MAX_FILE_BYTES:  # the file may grow after fstat: count what is read
                message = MSG_TOO_BIG.format(limit=MAX_FILE_BYTES, size=total)
                raise error(str(path), [message])
            chunks.append(chunk)
    except OSError as exc:
        raise error(str(path), [f"cannot be read: {exc.strerror or exc}"]) from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        line = b"".join(chunks)[: exc.start].count(b"\n") + 1
        reason = f"line {line}: byte {exc.object[exc.start]:#04x} at offset {exc.start}"
        raise error(str(path), [MSG_NOT_UTF8_TEXT.format(reason=reason)]) from None


def _shown(line: str) -> str:
    """*line* quoted for a message, cut to a readable length."""
    if len(line) <= _SHOWN_LINE:
        return repr(line)
    return f"{line[:_SHOWN_LINE]!r}... ({len(line)} characters)"


def _lines(text: str, problems: list[str]) -> list[tuple[int, str]]:
    """Numbered lines of *text*; one longer than ``MAX_LINE_CHARS`` is a problem, skipped."""
    numbered = []
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE_CHARS:
            problems.append(
                MSG_LONG_LINE.format(line=number, limit=MAX_LINE_CHARS, count=len(line))
            )
            continue
        numbered.append((number, line))
    return numbered


def _digest(algorithm: str, value: str, name: str, line: int, problems: list[str]) -> Digest | None:
    """A checked digest, or None with a problem saying exactly what is wrong with *value*."""
    from pytest_mlsupply.hashing import _digest_size

    try:
        size = _digest_size(algorithm)
    except DigestError as exc:
        problems.append(f"line {line}: {name}: {exc}")
        return None
    if size is None:  # shake_*: any length would do, so the value pins nothing down
        problems.append(f"line {line}: " + MSG_VARIABLE.format(name=name, algorithm=algorithm))
        return None
    if not re.fullmatch(r"[0-9a-fA-F]+", value):
        problems.append(
            f"line {line}: " + MSG_NOT_HEX.format(name=name, value=value, algorithm=algorithm)
        )
        return None
    if len(value) != 2 * size:
        problems.append(
            f"line {line}: "
            + MSG_HEX_LENGTH.format(
                name=name, algorithm=algorithm, count=len(value), expected=2 * size, value=value
            )
        )
        return None
    return Digest(algorithm, bytes.fromhex(value))


def _add(records: dict[str, RegistryRecord], record: RegistryRecord, problems: list[str]) -> None:
    first = records.get(record.name)
    if first is not None and first.digest != record.digest:
        message = MSG_DUPLICATE.format(name=record.name, first=first.line)
        problems.append(f"line {record.line}: {message}")
        return
    records.setdefault(record.name, record)


_POOCH_UNQUOTED = re.compile(r"^(?P<name>.+?)\s+(?P<hash>\S+)(?:\s+(?P<url>\S*://\S*))?$")
_POOCH_QUOTED = re.compile(r'^"(?P<name>[^"]+)"\s+(?P<hash>\S+)(?:\s+(?P<url>\S+))?$')


def parse_pooch(text: str) -> tuple[list[RegistryRecord], list[str]]:
    """Records and problems of a pooch registry (``pooch.Pooch.load_registry``'s format)."""
    records: dict[str, RegistryRecord] = {}
    problems: list[str] = []
    for number, raw in _lines(text, problems):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        quoted = line.startswith('"')
        match = (_POOCH_QUOTED if quoted else _POOCH_UNQUOTED).match(line)
        if match is None:
            problems.append(f"line {number}: " + MSG_POOCH_LINE.format(line=_shown(line)))
            continue
        name = match["name"] if quoted else re.sub(r"\\(.)", r"\1", match["name"])
        algorithm, sep, value = match["hash"].rpartition(":")
        algorithm = algorithm.lower() if sep else "sha256"
        digest = _digest(algorithm, value, name, number, problems)
        if digest is not None:
            _add(records, RegistryRecord(name, digest, number, match["url"]), problems)
    return list(records.values()), problems


_BSD_TAG = re.compile(r"^(?P<alg>[A-Za-z0-9_-]+) \((?P<name>.*)\) = (?P<hash>[0-9a-fA-F]+)$")
_GNU_LINE = re.compile(r"^(?P<hash>[0-9a-fA-F]+) (?P<mode>[ *^])(?P<name>.+)$")
_UNESCAPE = {"\\\\": "\\", "\\n": "\n", "\\r": "\r"}


def parse_checksums(text: str, tool: str) -> tuple[list[RegistryRecord], list[str]]:
    """Records and problems of ``sha256sum``-style output (GNU or ``--tag`` lines)."""
    algorithm = CHECKSUM_FORMATS[tool]
    records: dict[str, RegistryRecord] = {}
    problems: list[str] = []
    for number, raw in _lines(text, problems):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        escaped = line.startswith("\\")  # coreutils: the name holds a backslash or newline
        body = line[1:] if escaped else line
        tag = _BSD_TAG.match(body)
        if tag is not None:
            line_algorithm = tag["alg"].lower().replace("-", "")
            line_algorithm = {"blake2b": "blake2b", "sha2256": "sha256"}.get(
                line_algorithm, line_algorithm
            )
            name, value = tag["name"], tag["hash"]
        else:
            gnu = _GNU_LINE.match(body)
            if gnu is None:
                problems.append(
                    f"line {number}: " + MSG_CHECKSUM_LINE.format(tool=tool, line=_shown(line))
                )
                continue
            line_algorithm, name, value = algorithm, gnu["name"], gnu["hash"]
        if escaped:
            name = re.sub(r"\\[\\nr]", lambda m: _UNESCAPE[m.group(0)], name)
        digest = _digest(line_algorithm, value, name, number, problems)
        if digest is not None:
            _add(records, RegistryRecord(name, digest, number), problems)
    return list(records.values()), problems


def _yaml_scalar(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value.split(" #", 1)[0].strip()


def _dvc_outs(text: str, problems: list[str]) -> list[tuple[int, dict[str, str]]]:
    """The items of the top-level ``outs:`` list, each a flat map of its own keys.

    DVC writes list items at column 0 or indented (``- md5: ...`` then ``  size: ...``);
    keys at the item's own indentation are kept, deeper ones (maps inside an item) skipped.
    """
    outs: list[tuple[int, dict[str, str]]] = []
    in_outs = False
    key_indent = -1
    for number, raw in _lines(text, problems):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if not raw.startswith((" ", "-")):
            in_outs = raw.split(":", 1)[0].strip() == "outs"
            continue
        if not in_outs:
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        body = raw.strip()
        if body.startswith("- "):
            outs.append((number, {}))
            key_indent = indent + 2
            body = body[2:].lstrip()
        elif indent != key_indent or not outs:
            continue
        if ":" in body:
            key, _, value = body.partition(":")
            outs[-1][1][key.strip()] = _yaml_scalar(value)
    return outs


def parse_dvc(text: str) -> tuple[list[RegistryRecord], list[str]]:
    """The ``outs`` of a ``.dvc`` file: ``path`` and ``md5`` of each single-file output."""
    records: dict[str, RegistryRecord] = {}
    problems: list[str] = []
    for number, fields in _dvc_outs(text, problems):
        name, value = fields.get("path"), fields.get("md5")
        if not name or not value:
            continue
        if value.endswith(".dir"):
            problems.append(f"line {number}: " + MSG_DVC_DIRECTORY.format(name=name, value=value))
            continue
        # DVC 3 writes ``hash: md5`` beside the value; its md5 is of the raw bytes, DVC 2's
        # ("md5-dos2unix") of text files with CRLF turned to LF, the same for binary data.
        digest = _digest("md5", value, name, number, problems)
        if digest is not None:
            _add(records, RegistryRecord(name, digest, number), problems)
    if not records and not problems:
        problems.append(MSG_DVC_NO_OUTS)
    return list(records.values()), problems


def parse_registry(text: str, registry_format: str) -> tuple[list[RegistryRecord], list[str]]:
    if registry_format == "pooch":
        return parse_pooch(text)
    if registry_format == "dvc":
        return parse_dvc(text)
    if registry_format in CHECKSUM_FORMATS:
        return parse_checksums(text, registry_format)
    raise ValueError(f"unknown registry format {registry_format!r}")


def read_registry(path: Path, registry_format: str) -> list[RegistryRecord]:
    """Every record of the registry at *path*; ``RegistryError`` listing every malformed line."""
    text = read_text_file(path, RegistryError, f"no such {registry_format} registry file")
    records, problems = parse_registry(text, registry_format)
    if problems:
        raise RegistryError(str(path), problems)
    return records
