"""Verified data: the data manifest, tree digests, and exact diffs of a dataset on disk.

A dataset is a file or a directory named in ``mlsupply-data.toml``. Its expected digests come
from the manifest itself (one digest for a file; every file's digest plus a tree digest for a
directory) or from a registry file a data tool already keeps (pooch, ``sha256sum``, DVC; see
``registries.py``). Verifying compares bytes on disk with those digests and says exactly what
differs: which files changed (expected and actual digest), which were added, which removed.

Nothing here imports pytest: the fixture (``fixtures.py``), the command line and the public
``verify_file``/``verify_tree`` functions all call into this module.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import stat as stat_module
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pytest_mlsupply import __version__
from pytest_mlsupply.atomic import write_text_atomic
from pytest_mlsupply.errors import FileProblemsError, MlsupplyError
from pytest_mlsupply.hashing import (
    DEFAULT_ALGORITHM,
    FILE_MISSING,
    FILE_NOT_REGULAR,
    Digest,
    DigestError,
    HashOutcome,
    hash_many,
)
from pytest_mlsupply.settings import DEFAULT_DATA_MANIFEST_NAME

DEFAULT_MANIFEST_NAME = DEFAULT_DATA_MANIFEST_NAME
MANIFEST_VERSION = 1
WEAK_ALGORITHMS = frozenset({"md5", "sha1"})
TREE_ALGORITHM = "sha256"
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
_LFS_POINTER_MAX = 1024  # a pointer file is ~130 bytes; the spec caps it at 1024

# --- Messages (tests import these rather than copy them) -------------------------------------
MSG_MISMATCH = "dataset {name!r} ({path}) does not match {manifest}:"
MSG_CHANGED = "changed: {file}: expected {expected}, actual {actual}"
MSG_LFS_POINTER = (
    "changed: {file}: this is a Git LFS pointer, not the data (run `git lfs pull`); "
    "expected {expected}, actual {actual}"
)
MSG_ADDED = "added: {file} (on disk, not in the manifest)"
MSG_REMOVED = "removed: {file} (in the manifest, missing on disk)"
MSG_UNREADABLE = "unreadable: {file}: {reason}"
MSG_NOT_REGULAR = "not a regular file: {file} (the manifest expects a file there)"
MSG_SYMLINK_OUT = "symlink leads outside the dataset: {file} -> {target}"
MSG_DANGLING = "dangling symlink: {file} -> {target} (its target does not exist, or it loops)"
MSG_SPECIAL_FILE = (
    "not a regular file: {file} is a {kind}; a dataset holds only regular files and "
    "directories (and symlinks to them inside the dataset)"
)
MSG_NOT_UTF8 = (
    "file name is not UTF-8: {file}; the manifest (TOML, UTF-8) cannot name it: rename it"
)
MSG_TREE = "tree digest: expected {expected}, actual {actual}"
MSG_MISSING = "dataset {name!r}: data not found at {path} (declared in {manifest})"
MSG_WEAK = (
    "dataset {name!r} is verified with {algorithms}, a weak hash (collisions can be made); "
    "record sha256 digests with `python -m pytest_mlsupply data add`"
)
MSG_NO_MANIFEST = (
    "no data manifest at {path}; create it with `python -m pytest_mlsupply data add NAME PATH`"
)
MSG_UNKNOWN_DATASET = "unknown dataset {name!r}: {manifest} declares {known}"
MSG_ABSOLUTE_PATH = "{key}: {value!r} is an absolute path; write it relative to the manifest"
MSG_ESCAPES = "{key}: {value!r} leads outside {base} ('..'); datasets must live inside it"
MSG_BAD_FILE_NAME = "{key}: {value!r} is not a plain relative path inside the dataset"

Status = Literal["ok", "mismatch", "missing"]
Source = Literal["hashed", "cache", "peer"]


class DataManifestError(FileProblemsError):
    """The data manifest cannot be used; every problem names its dotted key."""


class DataIntegrityError(MlsupplyError):
    """Data on disk differs from its expected digests; the message says which file and how."""

    def __init__(self, message: str, verdict: DatasetVerdict | None = None) -> None:
        super().__init__(message)
        self.verdict = verdict


# --- The manifest model ----------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetEntry:
    """One ``[datasets.NAME]`` table.

    Exactly one source of expected digests: ``digest`` (a file), ``files`` (a directory,
    relative posix path -> digest, with its ``tree`` digest) or ``registry`` (a pooch,
    sha256sum-style or DVC file whose names are relative to ``path``).
    """

    name: str
    path: str
    digest: Digest | None = None
    files: Mapping[str, Digest] | None = None
    tree: Digest | None = None
    registry: str | None = None
    registry_format: str | None = None

    @property
    def kind(self) -> Literal["file", "directory", "registry"]:
        if self.digest is not None:
            return "file"
        if self.files is not None:
            return "directory"
        return "registry"

    def to_toml_table(self) -> dict[str, Any]:
        table: dict[str, Any] = {"path": self.path}
        if self.digest is not None:
            table["digest"] = str(self.digest)
        if self.tree is not None:
            table["tree"] = str(self.tree)
        if self.registry is not None:
            table["registry"] = self.registry
            if self.registry_format is not None:
                table["format"] = self.registry_format
        if self.files is not None:
            table["files"] = {name: str(self.files[name]) for name in sorted(self.files)}
        return table

    @functools.cached_property
    def weak_algorithms(self) -> tuple[str, ...]:
        """md5/sha1 among the entry's digests, computed once: a big table has 20,000."""
        if self.digest is not None:
            return _weak([self.digest])
        return _weak(self.files.values()) if self.files is not None else ()

    @functools.cached_property
    def fingerprint_text(self) -> str:
        """The entry spelled canonically: a cached verdict holds only for this exact entry."""
        return json.dumps(self.to_toml_table(), sort_keys=True)


@dataclass(frozen=True)
class Manifest:
    path: Path
    datasets: Mapping[str, DatasetEntry]

    @property
    def directory(self) -> Path:
        return self.path.parent

    def entry(self, name: str) -> DatasetEntry:
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(repr(n) for n in sorted(self.datasets)) or "no datasets"
            raise MlsupplyError(
                MSG_UNKNOWN_DATASET.format(name=name, manifest=self.path, known=known)
            ) from None


def tree_digest(files: Mapping[str, Digest] | Iterable[tuple[str, Digest]]) -> Digest:
    """One digest for a directory: sha256 over the sorted ``(relative posix path, digest)`` pairs.

    Independent of the order files were created or listed in; any rename, added or removed
    file or changed byte changes it. Each pair is ``path NUL alg:hex LF``: paths cannot hold
    NUL, so no two different listings encode to the same bytes.
    """
    pairs = files.items() if isinstance(files, Mapping) else files
    hasher = hashlib.new(TREE_ALGORITHM)
    for name, digest in sorted(pairs):
        hasher.update(name.encode("utf-8", "surrogateescape"))
        hasher.update(b"\0")
        hasher.update(str(digest).encode("ascii"))
        hasher.update(b"\n")
    return Digest(TREE_ALGORITHM, hasher.digest())


def _has_drive(value: str) -> bool:
    """``C:...``: absolute (or drive-relative) on Windows, so never portable in a manifest."""
    return value[1:2] == ":" and value[:1].isascii() and value[:1].isalpha()


def check_relative(value: str, key: str, manifest_dir: Path, base: Path) -> str | None:
    """Why *value* (relative to *manifest_dir*) is not an acceptable path, or None.

    Absolute paths are refused (a manifest must work from any checkout), and so is any path
    whose ``..`` leads outside *base* (the rootdir): the data must be part of the project.
    """
    if PurePosixPath(value).is_absolute() or os.path.isabs(value) or _has_drive(value):
        return MSG_ABSOLUTE_PATH.format(key=key, value=value)
    joined = os.path.normpath(os.path.join(os.path.abspath(manifest_dir), value))
    if not _inside(joined, os.path.normpath(os.path.abspath(base))):
        return MSG_ESCAPES.format(key=key, value=value, base=base)
    return None


def _check_file_name(value: str, key: str) -> str | None:
    parts = value.split("/")
    if (
        not value
        or value.startswith("/")
        or "\\" in value
        or "\0" in value
        or any(part in ("", ".", "..") for part in parts)
    ):
        return MSG_BAD_FILE_NAME.format(key=key, value=value)
    return None


def _quoted(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else json.dumps(key)


def _digest_at(value: Any, key: str, problems: list[str]) -> Digest | None:
    if not isinstance(value, str):
        problems.append(f"{key}: expected 'algorithm:hex', got {value!r:.60}")
        return None
    try:
        return Digest.parse(value)
    except DigestError as exc:
        problems.append(f"{key}: {exc}")
        return None


def parse_manifest(document: Mapping[str, Any], path: Path, base: Path | None = None) -> Manifest:
    """The manifest in *document*; raises ``DataManifestError`` listing every problem.

    Dataset and registry paths must stay inside *base* (the rootdir; default: the manifest's
    directory, or the rootdir's when the manifest lives outside it).
    """
    base = path.parent if base is None or not _inside(str(path), str(base)) else base
    from pytest_mlsupply.registries import REGISTRY_FORMATS

    problems: list[str] = []
    version = document.get("version", MANIFEST_VERSION)
    if version != MANIFEST_VERSION:
        problems.append(f"version: this version reads {MANIFEST_VERSION}, got {version!r}")
    unknown_top = sorted(set(document) - {"version", "datasets"})
    if unknown_top:
        problems.append(
            f"unknown top-level keys: {', '.join(unknown_top)} (expected [datasets.NAME])"
        )
    raw = document.get("datasets", {})
    if not isinstance(raw, Mapping):
        problems.append("datasets: expected tables [datasets.NAME]")
        raw = {}
    datasets: dict[str, DatasetEntry] = {}
    for name, table in raw.items():
        where = f"datasets.{_quoted(name)}"
        if not isinstance(table, Mapping):
            problems.append(f"{where}: expected a table with 'path'")
            continue
        entry_problems: list[str] = []
        unknown = sorted(set(table) - {"path", "digest", "files", "tree", "registry", "format"})
        if unknown:
            entry_problems.append(f"{where}: unknown keys {', '.join(unknown)}")
        data_path = table.get("path")
        if not isinstance(data_path, str) or not data_path:
            entry_problems.append(f"{where}.path: expected a path relative to the manifest")
            data_path = ""
        elif problem := check_relative(data_path, f"{where}.path", path.parent, base):
            entry_problems.append(problem)

        digest = tree = None
        files: dict[str, Digest] | None = None
        if "digest" in table:
            digest = _digest_at(table["digest"], f"{where}.digest", entry_problems)
        if "tree" in table:
            tree = _digest_at(table["tree"], f"{where}.tree", entry_problems)
        if "files" in table:
            raw_files = table["files"]
            if not isinstance(raw_files, Mapping):
                entry_problems.append(f"{where}.files: expected a table of path = 'alg:hex'")
            else:
                files = {}
                for file_name, value in raw_files.items():
                    key = f"{where}.files.{json.dumps(file_name)}"
                    if problem := _check_file_name(file_name, key):
                        entry_problems.append(problem)
                        continue
                    if (file_digest := _digest_at(value, key, entry_problems)) is not None:
                        files[file_name] = file_digest
        registry = table.get("registry")
        registry_format = table.get("format")
        if registry is not None:
            if not isinstance(registry, str) or not registry:
                entry_problems.append(f"{where}.registry: expected a path to a registry file")
            elif problem := check_relative(registry, f"{where}.registry", path.parent, base):
                entry_problems.append(problem)
            if registry_format not in REGISTRY_FORMATS:
                formats = ", ".join(REGISTRY_FORMATS)
                entry_problems.append(
                    f"{where}.format: expected one of {formats}, got {registry_format!r}"
                )
        elif registry_format is not None:
            entry_problems.append(f"{where}.format: only meaningful with 'registry'")
        sources = [k for k in ("digest", "files", "registry") if k in table]
        if len(sources) != 1:
            entry_problems.append(
                f"{where}: needs exactly one of 'digest' (a file), 'files' (a directory) or "
                f"'registry', got {', '.join(sources) or 'none'}"
            )
        if "tree" in table and "files" not in table:
            entry_problems.append(f"{where}.tree: only meaningful with 'files'")
        if files is not None and tree is not None and not entry_problems:
            actual = tree_digest(files)
            if tree.algorithm == TREE_ALGORITHM and actual != tree:
                entry_problems.append(
                    f"{where}.tree: {tree} does not match the files listed ({actual}); "
                    "the files or the tree were edited by hand: fix them, or delete the entry "
                    "and record it again with `python -m pytest_mlsupply data add`"
                )
        if entry_problems:
            problems.extend(entry_problems)
            continue
        datasets[name] = DatasetEntry(
            name=name,
            path=data_path,
            digest=digest,
            files=files,
            tree=tree if files is not None else None,
            registry=registry,
            registry_format=registry_format,
        )
    if problems:
        raise DataManifestError(str(path), problems)
    return Manifest(path, datasets)


def load_manifest(path: str | Path, base: Path | None = None) -> Manifest:
    """Read and validate the manifest at *path*; ``DataManifestError`` when it cannot be used."""
    from pytest_mlsupply.registries import read_text_file
    from pytest_mlsupply.tomlfile import parse_toml

    manifest_path = Path(path)
    missing = MSG_NO_MANIFEST.format(path=manifest_path)
    text = read_text_file(manifest_path, DataManifestError, missing)
    document, problem = parse_toml(text)
    if document is None:
        raise DataManifestError(str(manifest_path), [problem or "not valid TOML"])
    return parse_manifest(document, manifest_path, base)


def format_manifest(datasets: Mapping[str, DatasetEntry]) -> str:
    """The manifest text: sorted datasets, one file a line, so a diff shows what changed."""
    import tomli_w

    header = (
        "# Expected digests of the data tests run on (pytest-mlsupply).\n"
        "# Refresh with `pytest --mlsupply-update-data` or "
        "`python -m pytest_mlsupply data add NAME PATH`.\n"
    )
    document: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "datasets": {name: datasets[name].to_toml_table() for name in sorted(datasets)},
    }
    return header + tomli_w.dumps(document)


def write_manifest(path: str | Path, datasets: Mapping[str, DatasetEntry]) -> None:
    write_text_atomic(path, format_manifest(datasets))


# --- Walking a dataset directory -------------------------------------------------------------


_STAT_RECORD = struct.Struct("<QQQqq")


def _state_text(st: os.stat_result) -> bytes:
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n".encode()


@dataclass
class TreeScan:
    """Every regular file under a dataset root with its stat, and what cannot be accepted."""

    files: dict[str, os.stat_result] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # (dev, ino, size, mtime_ns, ctime_ns) of each file in ``files`` order, packed as read
    states: list[bytes] = field(default_factory=list)
    # each symlink met: its name, the link's own lstat and where it resolves, so retargeting a
    # link changes the fingerprint even when the new target has the same stat
    links: list[bytes] = field(default_factory=list)


def _inside(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


@contextlib.contextmanager
def _listed(directory: str) -> Iterator[list[os.DirEntry[str]]]:
    """The entries of *directory*, listed through a directory fd where the platform allows.

    Then ``DirEntry.stat`` is an ``fstatat`` on the bare name while the fd is open, which
    skips resolving the whole path again for every file: a warm run is mostly these stats.
    """
    if os.scandir not in os.supports_fd:
        with os.scandir(directory) as iterator:
            yield list(iterator)
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        with os.scandir(fd) as iterator:
            yield list(iterator)
    finally:
        os.close(fd)


def shown_name(name: str) -> str:
    """*name* printable: bytes that are not UTF-8 (``os.fsdecode`` surrogates) as ``\\xff``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind_of(mode: int) -> str:
    for test, kind in (
        (stat_module.S_ISFIFO, "FIFO"),
        (stat_module.S_ISSOCK, "socket"),
        (stat_module.S_ISCHR, "character device"),
        (stat_module.S_ISBLK, "block device"),
        (stat_module.S_ISDIR, "directory"),
    ):
        if test(mode):
            return kind
    return f"special file (mode {stat_module.filemode(mode)})"


def link_state(path: str) -> bytes:
    """A symlink's own lstat and where it resolves now: what a cached verdict keys it on."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{path}\0lstat failed: {exc.errno}\n".encode("utf-8", "surrogateescape")
    if not stat_module.S_ISLNK(st.st_mode):
        return b""
    target = os.path.realpath(path)
    return _state_text(st) + os.fsencode(target) + b"\0"


def scan_tree(root: Path) -> TreeScan:
    """Stat every file under *root* once (``os.scandir``), keyed by relative posix path.

    Fail closed on anything the manifest cannot describe: a symlink is followed only when it
    resolves inside the dataset (judged on every scan, never cached), and one leading outside,
    a dangling one, a FIFO, socket or device, and a name that is not UTF-8 (a TOML manifest
    cannot list it) are problems.
    """
    scan = TreeScan()
    real_root = os.path.realpath(root)
    if state := link_state(str(root)):
        scan.links.append(b".\0" + state)
    seen_dirs = {real_root}
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            with _listed(directory) as entries:
                _scan_entries(scan, directory, prefix, entries, stack, real_root, seen_dirs)
        except OSError as exc:  # only listing raises: _scan_entries records per-file errors
            shown = shown_name(prefix.rstrip("/") or ".")
            scan.problems.append(MSG_UNREADABLE.format(file=shown, reason=exc.strerror))
    return scan


def _scan_entries(
    scan: TreeScan,
    directory: str,
    prefix: str,
    entries: list[os.DirEntry[str]],
    stack: list[tuple[str, str]],
    real_root: str,
    seen_dirs: set[str],
) -> None:
    pack = _STAT_RECORD.pack
    files = scan.files
    states = scan.states
    problems = scan.problems
    for entry in entries:
        relative = prefix + entry.name
        if not _utf8(entry.name):
            problems.append(MSG_NOT_UTF8.format(file=shown_name(relative)))
            continue
        if entry.is_file(follow_symlinks=False):  # the common case: one lstat, no more
            try:
                st = files[relative] = entry.stat(follow_symlinks=False)
            except OSError as exc:
                problems.append(MSG_UNREADABLE.format(file=relative, reason=exc.strerror))
                continue
            try:
                states.append(
                    pack(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                )
            except struct.error:  # a 128-bit inode (ReFS): fall back to text
                states.append(_state_text(st))
            continue
        path = os.path.join(directory, entry.name)  # entry.path is only the name with a dir fd
        if entry.is_symlink():
            target = os.path.realpath(path)
            shown_target = shown_name(target)
            scan.links.append(relative.encode("utf-8") + b"\0" + link_state(path))
            if not _inside(target, real_root):
                problems.append(MSG_SYMLINK_OUT.format(file=relative, target=shown_target))
                continue
            if not os.path.lexists(target) or os.path.islink(target):
                problems.append(MSG_DANGLING.format(file=relative, target=shown_target))
                continue
            if os.path.isdir(target):
                if target not in seen_dirs:  # a loop back into the tree is walked once
                    seen_dirs.add(target)
                    stack.append((path, relative + "/"))
                continue
        elif entry.is_dir(follow_symlinks=False):
            stack.append((path, relative + "/"))
            continue
        try:
            st = os.stat(path)
        except OSError as exc:
            problems.append(MSG_UNREADABLE.format(file=relative, reason=exc.strerror))
            continue
        if not stat_module.S_ISREG(st.st_mode):
            problems.append(MSG_SPECIAL_FILE.format(file=relative, kind=_kind_of(st.st_mode)))
            continue
        files[relative] = st
        states.append(_state_text(st))  # rare path (symlinks): no need to be compact


# --- Verdicts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetVerdict:
    """The outcome of verifying one dataset; a mismatch is a result, not an exception."""

    name: str
    path: Path
    manifest: str
    status: Status
    problems: tuple[str, ...] = ()
    checked: tuple[tuple[str, Digest], ...] = ()
    weak: tuple[str, ...] = ()
    source: Source = "hashed"
    files_hashed: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def message(self) -> str:
        """What a user reads when the dataset cannot be used: dataset, files, digests."""
        if self.status == "missing":
            return MSG_MISSING.format(name=self.name, path=self.path, manifest=self.manifest)
        head = MSG_MISMATCH.format(name=self.name, path=self.path, manifest=self.manifest)
        return "\n".join([head, *(f"  {problem}" for problem in self.problems)])

    def to_dict(self) -> dict[str, Any]:
        """The cacheable part; a clean verdict's digests are the manifest's, so not stored."""
        data: dict[str, Any] = {"status": self.status, "problems": list(self.problems)}
        if not self.ok:
            data["checked"] = [[name, str(digest)] for name, digest in self.checked]
        return data


def verified_digests(verdict: DatasetVerdict) -> tuple[tuple[Path, Digest], ...]:
    """Every ``(file, digest)`` a verdict vouches for: the seam for known-bad hash lists.

    A file whose bytes matched the manifest appears here with its digest, so a list of
    known-bad hashes can be matched against verified data the same way as installed files.
    """
    base = verdict.path
    return tuple((base if name == "." else base / name, digest) for name, digest in verdict.checked)


def _weak(digests: Iterable[Digest]) -> tuple[str, ...]:
    return tuple(sorted({d.algorithm for d in digests} & WEAK_ALGORITHMS))


def _is_lfs_pointer(path: Path, size: int | None) -> bool:
    if size is None or size > _LFS_POINTER_MAX:
        return False
    try:
        with open(path, "rb") as stream:
            return stream.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False


def _compare(
    expected: Mapping[str, Digest],
    outcomes: Mapping[str, HashOutcome],
    paths: Mapping[str, str],
) -> tuple[list[str], list[tuple[str, Digest]]]:
    """Problems and the (name, digest) pairs that matched, in name order."""
    problems: list[str] = []
    matched: list[tuple[str, Digest]] = []
    for name in sorted(expected):
        outcome = outcomes[paths[name]]
        want = expected[name]
        if outcome.digest is None:
            if outcome.error == FILE_MISSING:
                problems.append(MSG_REMOVED.format(file=name))
            elif outcome.error == FILE_NOT_REGULAR:
                problems.append(MSG_NOT_REGULAR.format(file=name))
            else:
                problems.append(MSG_UNREADABLE.format(file=name, reason=outcome.error))
        elif outcome.digest != want:
            template = (
                MSG_LFS_POINTER if _is_lfs_pointer(Path(paths[name]), outcome.size) else MSG_CHANGED
            )
            problems.append(template.format(file=name, expected=want, actual=outcome.digest))
        else:
            matched.append((name, want))
    return problems, matched


@dataclass(frozen=True)
class Expected:
    """What one dataset must hold: a single file's digest, or a directory's files.

    ``exact`` directories fail on files the manifest does not list; a registry names only the
    files it knows, so extra files beside them are allowed.
    """

    single: Digest | None
    files: Mapping[str, Digest]
    exact: bool
    tree: Digest | None = None
    weak: tuple[str, ...] | None = None  # known in advance for manifest entries


def expected_digests(entry: DatasetEntry, manifest_dir: Path) -> Expected:
    """The digests *entry* promises; raises ``MlsupplyError`` if its registry is unusable."""
    if entry.digest is not None:
        return Expected(entry.digest, {}, exact=True, weak=entry.weak_algorithms)
    if entry.files is not None:
        return Expected(None, entry.files, exact=True, tree=entry.tree, weak=entry.weak_algorithms)
    from pytest_mlsupply.registries import read_registry

    assert entry.registry is not None and entry.registry_format is not None
    registry = read_registry(manifest_dir / entry.registry, entry.registry_format)
    files: dict[str, Digest] = {}
    problems = []
    for record in registry:
        if problem := _check_file_name(record.name, f"{entry.registry}, line {record.line}"):
            problems.append(problem)
        files[record.name] = record.digest
    if problems:
        raise DataManifestError(str(manifest_dir / entry.registry), problems)
    return Expected(None, files, exact=False)


def file_paths(root: Path, names: Iterable[str]) -> dict[str, str]:
    """Each manifest file name (checked: relative, ``/``-separated) as a path under *root*.

    The same string ``str(root / name)`` gives, built by concatenation: for 20,000 files,
    pathlib's parsing cost a tenth of the time it takes to hash them.
    """
    prefix = os.path.join(str(root), "")
    if os.sep == "/":
        return {name: prefix + name for name in names}
    return {name: prefix + name.replace("/", os.sep) for name in names}


def verify_against(
    name: str,
    root: Path,
    expected: Expected,
    *,
    manifest: str,
    cache: Any = None,
    scan: TreeScan | None = None,
) -> DatasetVerdict:
    """Hash *root* and compare it with *expected*: the one place bytes meet digests."""
    if expected.single is not None:
        if not root.is_file() and not os.path.lexists(root):
            return DatasetVerdict(name, root, manifest, "missing")
        run = hash_many([(str(root), expected.single.algorithm)], cache=cache)
        problems, matched = _compare(
            {root.name: expected.single}, run.outcomes, {root.name: str(root)}
        )
        checked = tuple((".", digest) for _, digest in matched)
        status: Status = "mismatch" if problems else "ok"
        return DatasetVerdict(
            name, root, manifest, status, tuple(problems), checked,
            _weak([expected.single]), files_hashed=run.hashed,
        )  # fmt: skip
    if not root.is_dir():
        if os.path.lexists(root):
            problem = f"{root} is not a directory, the manifest lists files under it"
            return DatasetVerdict(name, root, manifest, "mismatch", (problem,))
        return DatasetVerdict(name, root, manifest, "missing")
    scan = scan if scan is not None else scan_tree(root)
    problems = list(scan.problems)
    present = set(scan.files)
    wanted = set(expected.files)
    added = sorted(present - wanted) if expected.exact else []
    paths = file_paths(root, expected.files)
    scanned = {paths[n]: st for n, st in scan.files.items() if n in paths}
    run = hash_many(
        ((paths[n], expected.files[n].algorithm) for n in sorted(expected.files)),
        cache=cache,
        stats=scanned,
    )
    compared, matched = _compare(expected.files, run.outcomes, paths)
    problems.extend(compared)
    problems.extend(MSG_ADDED.format(file=file_name) for file_name in added)
    if problems and expected.tree is not None:
        actual = {n: o.digest for n, o in ((n, run.outcomes[paths[n]]) for n in wanted) if o.digest}
        if expected.exact:
            added_paths = file_paths(root, added)
            extra = hash_many(((added_paths[n], TREE_ALGORITHM) for n in added), cache=cache)
            actual.update(
                {n: o.digest for n in added if (o := extra.outcomes[added_paths[n]]).digest}
            )
        if (actual_tree := tree_digest(actual)) != expected.tree:  # equal says nothing new
            problems.append(MSG_TREE.format(expected=expected.tree, actual=actual_tree))
    return DatasetVerdict(
        name, root, manifest, "mismatch" if problems else "ok", tuple(problems),
        tuple(matched), _weak(expected.files.values()), files_hashed=run.hashed,
    )  # fmt: skip


def dataset_root(entry: DatasetEntry, manifest_dir: Path) -> Path:
    return manifest_dir / entry.path


# --- Stat fingerprints and the verdict cache -------------------------------------------------


def stat_fingerprint(entry_text: str, root: Path, scan: TreeScan) -> str:
    """A digest of the entry, every file's name and (dev, ino, size, mtime_ns, ctime_ns), every
    symlink's own stat and resolved target, and every problem the scan found.

    Unchanged means no file was written, renamed, added or removed since the cached verdict;
    ctime changes on any write, even one that restores mtime. Files are taken in the order
    the directory listing gave them, not sorted: a listing that comes back in another order
    only costs one re-hash, and not sorting keeps a warm run close to the cost of its stats.
    """
    hasher = hashlib.sha256(entry_text.encode("utf-8"))
    hasher.update(b"\0" + os.fsencode(os.path.abspath(root)) + b"\0")
    hasher.update("\0".join(scan.files).encode("utf-8", "surrogateescape") + b"\0\0")
    hasher.update(b"".join(scan.states))
    # What is not a plain file counts too: a symlink retargeted, or a FIFO, a link leading out
    # of the dataset or an undecodable name appearing, must miss a cached pass.
    for record in (*scan.links, *(p.encode("utf-8", "surrogateescape") for p in scan.problems)):
        hasher.update(b"\0" + len(record).to_bytes(8, "little") + record)
    return hasher.hexdigest()


VERDICT_CACHE_VERSION = 1


def _cache_key(manifest: Path, name: str) -> str:
    raw = f"{os.path.abspath(manifest)}\0{name}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()[:32]


def read_cached_verdict(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The cached verdict at *path* if it was taken on exactly this fingerprint; tolerant."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERDICT_CACHE_VERSION:
        return None
    if data.get("plugin") != __version__:  # messages may differ: cached text is not reused
        return None
    if data.get("fingerprint") != fingerprint or data.get("status") not in ("ok", "mismatch"):
        return None
    return data


def _verdict_from_cache(
    data: Mapping[str, Any],
    base: DatasetVerdict,
    source: Source,
    expected: Expected,
    scan: TreeScan,
) -> DatasetVerdict | None:
    """The cached verdict as a ``DatasetVerdict``; None when it cannot be trusted here.

    A pass is taken only when it lists no problem and today's scan found none: a scan with
    problems can only fail, whatever a cache (or a peer) says.
    """
    raw_problems = data.get("problems")
    if not isinstance(raw_problems, list) or not all(isinstance(p, str) for p in raw_problems):
        return None  # a damaged cache file costs a re-hash, never a crash
    problems = tuple(raw_problems)
    if data["status"] == "ok" and (problems or scan.problems):
        return None
    try:
        if data["status"] == "ok":
            checked = _all_expected(expected)
        else:
            checked = tuple((str(n), Digest.parse(str(d))) for n, d in data["checked"])
    except (KeyError, TypeError, ValueError, MlsupplyError):
        return None
    weak = expected.weak if expected.weak is not None else _weak(d for _, d in checked)
    return DatasetVerdict(
        base.name, base.path, base.manifest, data["status"], problems, checked, weak,
        source=source,
    )  # fmt: skip


def _all_expected(expected: Expected) -> tuple[tuple[str, Digest], ...]:
    if expected.single is not None:
        return ((".", expected.single),)
    return tuple(expected.files.items())


def verify_dataset(
    manifest: Manifest,
    name: str,
    *,
    cache_dir: Path | None = None,
    wait_seconds: float = 600.0,
) -> DatasetVerdict:
    """Verify one dataset, reusing a verdict cached under *cache_dir* for unchanged files.

    With a cache directory, one process at a time hashes a dataset (others wait for its
    verdict): xdist workers and parallel runs hash each dataset once. The claim file is only a
    courtesy; if its owner dies, the waiter hashes after *wait_seconds*, so correctness never
    depends on it.
    """
    entry = manifest.entry(name)
    root = dataset_root(entry, manifest.directory)
    shown_manifest = str(manifest.path)
    expected = expected_digests(entry, manifest.directory)
    base = DatasetVerdict(name, root, shown_manifest, "missing")
    if expected.single is not None:
        try:
            st = os.stat(root)
        except OSError:
            return base
        link = link_state(str(root))
        stated = TreeScan({".": st}, [], [_state_text(st)], [link] if link else [])
        scan = None
    else:
        if not root.is_dir():
            return verify_against(name, root, expected, manifest=shown_manifest)
        scan = stated = scan_tree(root)
    if cache_dir is None:
        return verify_against(name, root, expected, manifest=shown_manifest, scan=scan)

    from pytest_mlsupply.hashcache import HashCache

    entry_text = entry.fingerprint_text
    if entry.kind == "registry":  # its digests live in another file: a pass holds for them only
        entry_text += "\0" + str(tree_digest(expected.files))
    fingerprint = stat_fingerprint(entry_text, root, stated)
    key = _cache_key(manifest.path, name)
    verdict_path = cache_dir / f"{key}.json"
    cached = read_cached_verdict(verdict_path, fingerprint)
    if cached is not None and (
        verdict := _verdict_from_cache(cached, base, "cache", expected, stated)
    ):
        return verdict
    claim = cache_dir / f"{key}.claim"
    claimed = _claim(claim)
    if claimed:  # the previous owner may have finished between our read and our claim
        cached = read_cached_verdict(verdict_path, fingerprint)
        if cached is not None and (
            verdict := _verdict_from_cache(cached, base, "peer", expected, stated)
        ):
            claim.unlink(missing_ok=True)
            return verdict
    else:
        waited = _wait_for_verdict(verdict_path, claim, fingerprint, wait_seconds)
        if waited is not None and (
            verdict := _verdict_from_cache(waited, base, "peer", expected, stated)
        ):
            return verdict
    try:
        hashes_path = cache_dir / f"{key}.hashes.json"
        hash_cache, _note = HashCache.load(hashes_path)
        verdict = verify_against(
            name, root, expected, manifest=shown_manifest, cache=hash_cache, scan=scan
        )
        record = {
            "version": VERDICT_CACHE_VERSION,
            "plugin": __version__,
            "fingerprint": fingerprint,
            "dataset": name,
        }
        record.update(verdict.to_dict())
        try:
            hash_cache.save(hashes_path)
            write_text_atomic(verdict_path, json.dumps(record))
        except OSError:  # a read-only cache only costs time
            pass
        return verdict
    finally:
        if claimed:
            with contextlib.suppress(OSError):
                claim.unlink()


def _claim(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError:
        return True  # cannot claim (read-only cache): just hash
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def _owner_alive(claim: Path) -> bool:
    """False when the process that claimed a dataset is gone (killed mid-hash), on POSIX."""
    if os.name != "posix":
        return True
    try:
        pid = int(claim.read_text(encoding="ascii").strip() or "0")
    except (OSError, ValueError):
        return True  # being written, or just removed: look again next poll
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _wait_for_verdict(
    verdict_path: Path, claim: Path, fingerprint: str, wait_seconds: float
) -> dict[str, Any] | None:
    import time

    deadline = time.monotonic() + wait_seconds
    delay = 0.01
    while time.monotonic() < deadline:
        if (cached := read_cached_verdict(verdict_path, fingerprint)) is not None:
            return cached
        if not claim.exists() or not _owner_alive(claim):
            return read_cached_verdict(verdict_path, fingerprint)
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    return None


# --- Recording digests -----------------------------------------------------------------------


def record_entry(
    name: str,
    data_path: Path,
    manifest_dir: Path,
    *,
    algorithm: str = DEFAULT_ALGORITHM,
    base: Path | None = None,
) -> DatasetEntry:
    """A fresh entry for the file or directory at *data_path*; ``MlsupplyError`` if unusable.

    The data must lie inside *base* (default: the manifest's directory).
    """
    relative = os.path.relpath(os.path.abspath(data_path), os.path.abspath(manifest_dir))
    relative = relative.replace(os.sep, "/")
    key = f"datasets.{_quoted(name)}.path"
    if not _utf8(relative):
        raise MlsupplyError(f"{key}: " + MSG_NOT_UTF8.format(file=shown_name(relative)))
    if problem := check_relative(relative, key, manifest_dir, base or manifest_dir):
        raise MlsupplyError(problem)
    _check_algorithm(algorithm)
    if data_path.is_file():
        run = hash_many([(str(data_path), algorithm)])
        outcome = run.outcomes[str(data_path)]
        if outcome.digest is None:
            raise MlsupplyError(f"{data_path}: {outcome.error}")
        return DatasetEntry(name, relative, digest=outcome.digest)
    if not data_path.is_dir():
        raise MlsupplyError(f"{data_path}: no such file or directory")
    scan = scan_tree(data_path)
    if scan.problems:
        raise FileProblemsError(str(data_path), scan.problems)
    files = hash_tree(data_path, sorted(scan.files), algorithm)
    return DatasetEntry(name, relative, files=files, tree=tree_digest(files))


def _check_algorithm(algorithm: str) -> None:
    """Fail before hashing anything when *algorithm* is unknown or has no fixed length."""
    try:
        Digest(algorithm, hashlib.new(algorithm).digest())
    except (ValueError, TypeError, DigestError) as exc:
        raise MlsupplyError(f"unknown or unusable hash algorithm {algorithm!r}") from exc


def hash_tree(root: Path, names: Iterable[str], algorithm: str) -> dict[str, Digest]:
    """Digests of *names* under *root*; ``FileProblemsError`` if any cannot be read."""
    paths = file_paths(root, names)
    run = hash_many((path, algorithm) for path in paths.values())
    files: dict[str, Digest] = {}
    problems = []
    for file_name, path in paths.items():
        outcome = run.outcomes[path]
        if outcome.digest is None:
            problems.append(MSG_UNREADABLE.format(file=file_name, reason=outcome.error))
        else:
            files[file_name] = outcome.digest
    if problems:
        raise FileProblemsError(str(root), problems)
    return files


def refresh_entry(
    entry: DatasetEntry, manifest_dir: Path, base: Path | None = None
) -> DatasetEntry:
    """The entry re-recorded from disk with its algorithm; registry entries are left as they are."""
    if entry.kind == "registry":
        return entry
    if entry.digest is not None:
        algorithm = entry.digest.algorithm
    else:
        assert entry.files is not None
        algorithms = {d.algorithm for d in entry.files.values()}
        algorithm = algorithms.pop() if len(algorithms) == 1 else DEFAULT_ALGORITHM
    return record_entry(
        entry.name, dataset_root(entry, manifest_dir), manifest_dir, algorithm=algorithm, base=base
    )


def add_to_manifest(
    manifest_path: Path,
    name: str,
    data_path: Path,
    *,
    algorithm: str = DEFAULT_ALGORITHM,
    base: Path | None = None,
) -> DatasetEntry:
    """Add or refresh one entry and rewrite the manifest atomically (created if absent)."""
    existing = load_manifest(manifest_path, base) if manifest_path.exists() else None
    datasets = dict(existing.datasets) if existing is not None else {}
    entry = record_entry(name, data_path, manifest_path.parent, algorithm=algorithm, base=base)
    datasets[name] = entry
    write_manifest(manifest_path, datasets)
    return entry


# --- The plain API ---------------------------------------------------------------------------


def _as_digest(value: str | Digest, what: str) -> Digest:
    if isinstance(value, Digest):
        return value
    try:
        return Digest.parse(value)
    except DigestError as exc:
        raise DataIntegrityError(f"{what}: {exc}") from None


def verify_file(path: str | os.PathLike[str], expected: str | Digest) -> Path:
    """Check that the file at *path* has digest *expected* (``"sha256:..."``); return its Path.

    Raises ``DataIntegrityError`` naming the file, the expected and the actual digest.
    """
    target = Path(path)
    digest = _as_digest(expected, str(target))
    verdict = verify_against(
        target.name, target, Expected(digest, {}, exact=True), manifest="the expected digest"
    )
    _raise_unless_ok(verdict, f"{target}")
    return target


def verify_tree(
    path: str | os.PathLike[str], expected: Mapping[str, str | Digest] | str | Digest
) -> Path:
    """Check the directory at *path* against a mapping of relative path -> digest, exactly.

    *expected* may also be a tree digest alone (``tree_digest`` of the mapping); then only
    "the tree differs" can be said, so prefer the mapping. Raises ``DataIntegrityError``.
    """
    root = Path(path)
    if isinstance(expected, (str, Digest)):
        want_tree = _as_digest(expected, str(root))
        if not root.is_dir():
            raise DataIntegrityError(f"{root}: data not found (expected a directory)")
        scan = scan_tree(root)
        if scan.problems:
            raise DataIntegrityError("\n".join([f"{root}:", *(f"  {p}" for p in scan.problems)]))
        actual = tree_digest(hash_tree(root, sorted(scan.files), TREE_ALGORITHM))
        if actual != want_tree:
            raise DataIntegrityError(
                f"{root}: {MSG_TREE.format(expected=want_tree, actual=actual)}"
            )
        return root
    files = {name: _as_digest(value, f"{root}: {name}") for name, value in expected.items()}
    bad = [p for name in files if (p := _check_file_name(name, "expected"))]
    if bad:
        raise DataIntegrityError("; ".join(bad))
    verdict = verify_against(
        root.name, root, Expected(None, files, exact=True), manifest="the expected digests"
    )
    _raise_unless_ok(verdict, str(root))
    return root


def _raise_unless_ok(verdict: DatasetVerdict, what: str) -> None:
    if verdict.status == "missing":
        raise DataIntegrityError(f"{what}: data not found", verdict)
    if verdict.problems:
        listed = "\n".join(f"  {problem}" for problem in verdict.problems)
        raise DataIntegrityError(f"{what} does not match {verdict.manifest}:\n{listed}", verdict)
